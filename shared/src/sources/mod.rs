//! One module per provider, all the same shape: a `Config` read from the environment, and a
//! type implementing [`Provider`] whose `verify` and `normalise` are pure (no I/O), so they
//! are unit-tested on the seed payloads. Adding a provider is copying `fulfilment.rs`.

pub mod abaha;
pub mod credential;
pub mod fulfilment;
pub mod invoice;
pub mod pancake;
pub mod pancake_common;
pub mod pancake_pos;

use serde_json::{Map, Value};
use std::sync::Arc;
use time::OffsetDateTime;

use crate::config::{ConfigError, Env, Mode};
use crate::error::IngestError;
use crate::http::{RawRequest, ResponseStyle};
use crate::model::{NormalisedEvent, Source};
use credential::{Admission, Guard};

/// What [`Provider::normalise`] gives: one event, or the 4xx that refuses the request.
pub type Normalised = Result<NormalisedEvent, IngestError>;

/// A webhook provider: credential check, then parse + normalise.
pub trait Provider: Send + Sync {
    fn source(&self) -> Source;
    fn response_style(&self) -> ResponseStyle;
    /// The credential check the provider fixed at start-up.
    fn guard(&self) -> &Guard;
    /// Checks the request's credential against the environment's secrets, in constant time:
    /// the same for every provider, through its [`Guard`]. Ingest also consults the
    /// credential table ([`crate::credentials::Admitter`]).
    fn verify(&self, req: &RawRequest) -> Result<Admission, IngestError> {
        self.guard().verify(req)
    }
    /// Parses a verified request into one normalised event; `now` drives replay windows.
    fn normalise(&self, req: &RawRequest, now: OffsetDateTime) -> Normalised;
    /// The event id an earlier release stored this delivery under, when it differs from
    /// today's (fulfilment's `X-Event-Delivery` before issue 21): ingest looks it up first so
    /// a redelivery of an event stored before an upgrade stays its duplicate (ARCHITECTURE §4).
    fn earlier_event_id(&self, _req: &RawRequest) -> Option<String> {
        None
    }
}

/// Builds a source's provider from the environment (used by every binary).
pub fn provider_from_env(
    source: Source,
    env: &Env,
    mode: Mode,
) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(match source {
        Source::Abaha => Arc::new(abaha::Abaha::from_env(env, mode)?),
        Source::Fulfilment => Arc::new(fulfilment::Fulfilment::from_env(env, mode)?),
        Source::Invoice => Arc::new(invoice::Invoice::from_env(env, mode)?),
        Source::Pancake => Arc::new(pancake::Pancake::from_env(env, mode)?),
        Source::PancakePos => Arc::new(pancake_pos::PancakePos::from_env(env, mode)?),
    })
}

// ---- parsing helpers shared by every provider -------------------------------------------

/// Parses the body as a JSON object: 400 naming the problem for non-UTF-8, malformed or
/// non-object bodies.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::MalformedJson("body is empty".into()));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(IngestError::MalformedJson("body is not valid UTF-8".into()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(IngestError::MalformedJson(format!(
            "expected a JSON object, got {}",
            json_type(&other)
        ))),
        Err(e) => Err(IngestError::MalformedJson(e.to_string())),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Longest identifier (tenant or entity id) accepted, in bytes. Ids become parts of store
/// keys, and DynamoDB refuses keys over 2048/1024 bytes: a longer id would fail every write
/// and make the provider retry forever, so it is treated as no id at all.
pub const MAX_ID_LEN: usize = 256;

/// An identifier that providers send either as a string or as a number ("208610" or 208610);
/// `None` when blank, of another type, or longer than [`MAX_ID_LEN`].
pub fn id_of(v: Option<&Value>) -> Option<String> {
    let id = match v? {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (id.len() <= MAX_ID_LEN).then_some(id)
}

/// A required string field: `InvalidField(name)` when absent, blank or not a string.
pub fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    name: &str,
) -> Result<&'a str, IngestError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.as_str()),
        _ => Err(IngestError::invalid_field(name)),
    }
}

/// Removes and returns a required object field, so its content moves into the normalised
/// event instead of being cloned (large bodies are parsed once and never copied).
pub fn take_object(
    obj: &mut Map<String, Value>,
    field: &str,
    name: &str,
) -> Result<Map<String, Value>, IngestError> {
    match obj.remove(field) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(IngestError::invalid_field(name)),
    }
}

/// An optional string (or number) field rendered as a string.
pub fn opt_string(obj: &Map<String, Value>, field: &str) -> Option<String> {
    id_of(obj.get(field))
}

/// Lowercases and dots a provider event name: `ORDER.CHANGE_STATUS` → `order.change_status`,
/// `order_created` → `order.created`.
pub fn dotted(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    if lower.contains('.') {
        return lower;
    }
    match lower.split_once('_') {
        Some((head, tail)) => format!("{head}.{tail}"),
        None => lower,
    }
}

/// Assertions the providers' unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `p` refuses each `(body, needle, code)`, sent as `keyed(body)`, with a 400 of that code
    /// whose message names `needle`; and refuses the bytes `not_utf8`, saying so.
    pub fn assert_refused(
        p: &dyn Provider,
        keyed: fn(&str) -> RawRequest,
        now: OffsetDateTime,
        cases: &[(String, &str, &str)],
        not_utf8: &[u8],
    ) {
        for (body, needle, code) in cases {
            let err = p.normalise(&keyed(body), now).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.code(), *code, "{body}");
            assert!(
                err.to_string().contains(needle),
                "{err} should name {needle}"
            );
        }
        let mut req = keyed("");
        req.body = not_utf8.to_vec();
        let err = p.normalise(&req, now).unwrap_err();
        assert!(err.to_string().contains("UTF-8"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::KEPT_HEADERS;
    use serde_json::json;

    /// Every configurable credential header: (source, variable naming it).
    const CONFIGURABLE_HEADERS: [(Source, &str); 3] = [
        (Source::PancakePos, pancake_pos::KEY_HEADER_VAR),
        (Source::Abaha, abaha::HEADER_VAR),
        (Source::Invoice, invoice::HEADER_VAR),
    ];

    /// `Content-Type`, `X-Amzn-Trace-Id`: each word capitalised.
    fn title_case(name: &str) -> String {
        name.split('-')
            .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
            .collect::<Vec<_>>()
            .join("-")
    }

    #[test]
    fn no_credential_header_may_be_one_the_event_log_keeps() {
        for (source, var) in CONFIGURABLE_HEADERS {
            for mode in [Mode::Local, Mode::Lambda] {
                let ok = Env::from_pairs([("ALLOW_UNVERIFIED", "true"), (var, "X-Custom-Key")]);
                assert!(provider_from_env(source, &ok, mode).is_ok(), "{source}");
                for kept in KEPT_HEADERS {
                    for name in [
                        kept.to_string(),
                        kept.to_ascii_uppercase(),
                        title_case(kept),
                    ] {
                        let env = Env::from_pairs([("ALLOW_UNVERIFIED", "true"), (var, &name)]);
                        let Err(err) = provider_from_env(source, &env, mode) else {
                            panic!("{source}: {var}={name} must be refused");
                        };
                        let err = err.to_string();
                        assert!(err.contains(var), "{source}: {err}");
                        assert!(err.contains("stored with every event"), "{source}: {err}");
                    }
                }
            }
        }
    }

    #[test]
    fn parse_object_names_the_problem() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "empty"),
            (b"[1]", "array"),
            (b"{\"a\":", "EOF"),
            (b"\xff\xfe{}", "UTF-8"),
            (b"\"x\"", "string"),
        ];
        for (body, needle) in cases {
            let err = parse_object(body).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        assert!(parse_object(b"{}").unwrap().is_empty());
    }

    #[test]
    fn ids_accept_strings_and_numbers() {
        assert_eq!(id_of(Some(&json!("208610"))), Some("208610".into()));
        assert_eq!(id_of(Some(&json!(5342))), Some("5342".into()));
        assert_eq!(id_of(Some(&json!(" "))), None);
        assert_eq!(id_of(Some(&json!(null))), None);
        assert_eq!(id_of(Some(&json!({"a":1}))), None);
        // Over-long ids cannot be store keys: treated as no id (kept, not projected).
        assert_eq!(
            id_of(Some(&json!("x".repeat(MAX_ID_LEN)))).map(|s| s.len()),
            Some(MAX_ID_LEN)
        );
        assert_eq!(id_of(Some(&json!("x".repeat(MAX_ID_LEN + 1)))), None);
    }

    #[test]
    fn dotted_names() {
        assert_eq!(dotted("order_created"), "order.created");
        assert_eq!(dotted("order_status_changed"), "order.status_changed");
        assert_eq!(dotted("order.cancelled"), "order.cancelled");
        assert_eq!(dotted("SKU.CHANGE_STOCK"), "sku.change_stock");
    }
}
