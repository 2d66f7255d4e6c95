//! Erasure on request (`webhooks purge`, ARCHITECTURE §5): what a purge selects and what it
//! found. Each backend selects and deletes in its own way (SQLite in one transaction,
//! DynamoDB by Query, Scan and `DeleteItem`); the target and the matching of a value are
//! defined here once.

use std::fmt;

use crate::model::{EntityKey, KeptCopy, Source, Tenant};

/// What to erase.
#[derive(Debug, Clone, PartialEq)]
pub enum PurgeTarget {
    /// One entity: its item, its transitions, every event that named it and their queued
    /// messages.
    Entity(EntityKey),
    /// Everything of one tenant of one source.
    Tenant { source: Source, tenant: Tenant },
    /// Every event, entity and transition whose stored body, data or message holds the value.
    Match(Needle),
}

impl PurgeTarget {
    /// The target as it may be logged: keys and ids, never a matched value.
    pub fn describe(&self) -> String {
        match self {
            PurgeTarget::Entity(key) => format!("entity {}", key.stream()),
            PurgeTarget::Tenant { source, tenant } => format!("tenant {source}#{tenant}"),
            PurgeTarget::Match(n) => format!("match (a value of {} characters)", n.chars()),
        }
    }
}

/// A value to find in stored bytes, in each form a JSON body may carry it: as it is, with
/// non-ASCII characters `\u`-escaped (Python's and PHP's default) and with `/` escaped
/// (PHP's default). Its `Debug` withholds the value, so it never reaches a log line.
#[derive(Clone, PartialEq)]
pub struct Needle {
    forms: Vec<Vec<u8>>,
    chars: usize,
}

/// A value to find that would match nearly everything (or that has surrounding spaces).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--match needs a value of at least {min} characters without surrounding spaces",
    min = Needle::MIN_CHARS
)]
pub struct VagueNeedle;

impl Needle {
    /// Fewer characters than this would match nearly everything: refused.
    pub(crate) const MIN_CHARS: usize = 4;

    pub fn new(text: &str) -> Result<Self, VagueNeedle> {
        let chars = text.chars().count();
        if chars < Self::MIN_CHARS || text.trim().len() != text.len() {
            return Err(VagueNeedle);
        }
        // As a JSON string's content (quotes and backslashes escaped), then the variants.
        let json = serde_json::to_string(text).unwrap_or_default();
        let json = json[1..json.len() - 1].to_string();
        let ascii: String = json
            .chars()
            .map(|c| match c {
                c if c.is_ascii() => c.to_string(),
                c => c
                    .encode_utf16(&mut [0; 2])
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect(),
            })
            .collect();
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for form in [text.to_string(), json.clone(), ascii.clone()] {
            for variant in [form.clone(), form.replace('/', "\\/")] {
                let bytes = variant.into_bytes();
                if !forms.contains(&bytes) {
                    forms.push(bytes);
                }
            }
        }
        Ok(Needle { forms, chars })
    }

    /// Whether `haystack` holds the value in any of its forms.
    pub(crate) fn found_in(&self, haystack: &[u8]) -> bool {
        self.forms.iter().any(|form| {
            haystack
                .windows(form.len())
                .any(|window| window == form.as_slice())
        })
    }

    pub fn chars(&self) -> usize {
        self.chars
    }
}

impl fmt::Debug for Needle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Needle(<withheld, {} characters>)", self.chars)
    }
}

/// A queued copy of a transition's message a purge deleted (or would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCopy {
    pub transition_id: String,
    /// Where it was: `outbox` (waiting), `outbox (dead)`.
    pub place: String,
}

/// What a purge deleted, or with `dry_run` would delete, and what still holds copies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Purged {
    /// Event keys.
    pub events: Vec<String>,
    /// Entity streams (`{source}#{tenant}#{kind}#{id}`).
    pub entities: Vec<String>,
    /// (stream, transition id).
    pub transitions: Vec<(String, String)>,
    pub queued: Vec<QueuedCopy>,
    /// Tables read whole to find them (DynamoDB has no index to ask, decision 18).
    pub scanned: Vec<String>,
    /// What the purge could not reach.
    pub kept: Vec<KeptCopy>,
}

impl Purged {
    /// Nothing found.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.entities.is_empty()
            && self.transitions.is_empty()
            && self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_in_each_form_a_json_body_carries_it() {
        let name = Needle::new("Nguyễn Văn A").unwrap();
        assert!(name.found_in("{\"name\":\"Nguyễn Văn A\"}".as_bytes()));
        assert!(name.found_in(br#"{"name":"Nguy\u1ec5n V\u0103n A"}"#));
        assert!(!name.found_in("{\"name\":\"Nguyễn Văn B\"}".as_bytes()));
        let url = Needle::new("https://x.vn/a").unwrap();
        assert!(url.found_in(br#"{"u":"https:\/\/x.vn\/a"}"#));
        let quoted = Needle::new("say \"hi\"").unwrap();
        assert!(quoted.found_in(br#"{"q":"say \"hi\""}"#));
        assert!(quoted.found_in(br#"say "hi""#));
    }

    #[test]
    fn short_values_are_refused_and_the_value_never_shows_in_debug() {
        assert!(Needle::new("0912").is_ok());
        assert!(Needle::new("091").is_err());
        assert!(Needle::new(" 0912345678").is_err());
        let needle = Needle::new("0912345678").unwrap();
        let target = PurgeTarget::Match(needle.clone());
        assert!(!format!("{needle:?} {target:?}").contains("0912345678"));
        assert!(!target.describe().contains("0912345678"));
    }
}
