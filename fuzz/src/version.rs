//! The version (timestamp) parser: every provider's `updated_at`, `timestamp`, `modified`
//! goes through `Version::parse` or `Version::from_json`, and the transitions table sorts
//! an entity's history by `Version::sort_key`.
//!
//! Input: byte 0 picks how the rest is read — as one string, as a JSON value
//! (numbers, strings, anything), or as two strings (a length-prefixed one, then the rest)
//! to compare.
//!
//! Oracle (the contract of `version.rs` and ARCHITECTURE §5): parsing never panics; a
//! parsed version renders as RFC 3339 and parses back to itself; its sort key is 20
//! characters; and for any two versions, sort-key order is version order ("string order
//! is time order").

use arbitrary::Unstructured;
use webhook_core::version::Version;

use crate::input::{byte, item, text};

/// Runs one input; panics when the oracle is violated.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    match byte(&mut u) % 3 {
        0 => {
            let _ = parsed(&text(u.take_rest()));
        }
        1 => {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(u.take_rest()) {
                if let Some(v) = Version::from_json(&value) {
                    check(v);
                }
            }
        }
        _ => {
            let first = text(item(&mut u));
            let second = text(u.take_rest());
            if let (Some(a), Some(b)) = (parsed(&first), parsed(&second)) {
                let (ka, kb) = (a.sort_key(), b.sort_key());
                assert_eq!(
                    a.cmp(&b),
                    ka.cmp(&kb),
                    "{first:?} -> {a}, {second:?} -> {b}: sort keys {ka} {kb}"
                );
            }
        }
    }
}

/// Parses `s` and checks the parsed version on its own.
fn parsed(s: &str) -> Option<Version> {
    let v = Version::parse(s)?;
    check(v);
    Some(v)
}

/// A version renders and parses back to itself, with a 20-character sort key.
fn check(v: Version) {
    let rendered = v.to_rfc3339();
    assert_eq!(
        Version::parse(&rendered),
        Some(v),
        "{v} rendered as {rendered:?}"
    );
    assert_eq!(v.sort_key().len(), 20, "sort key of {v}");
}
