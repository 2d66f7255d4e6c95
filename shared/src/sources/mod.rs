//! One module per provider, all the same shape: a `Config` read from the environment, and a
//! type implementing [`Provider`] whose `verify` and `normalise` are pure (no I/O), so they
//! are unit-tested on the seed payloads. A new provider starts as a copy of `fulfilment.rs`;
//! the other places it touches are ARCHITECTURE §2's checklist, held by `it/providers.rs`.

pub mod abaha;
pub mod fulfilment;
pub mod guard;
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
use crate::model::{NormalisedEvent, Source, Tenant};
use guard::{Admission, Guard};

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
    /// credential table (the pipeline's `Admitter`: sources never import the pipeline).
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

    /// As [`normalise`](Self::normalise), knowing the one tenant the credential is bound to
    /// ([`Admission::single_tenant`]), if any: the tenant of a body that names none (a
    /// Pancake POS inventory row, a Pancake subscription), where the providers would
    /// otherwise use [`Tenant::DEFAULT`]. A tenant the body names always wins. Providers
    /// whose every body names its tenant need not override it.
    fn normalise_for(
        &self,
        req: &RawRequest,
        now: OffsetDateTime,
        bound: Option<&Tenant>,
    ) -> Normalised {
        let _ = bound;
        self.normalise(req, now)
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
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::MalformedJson("body is empty".into()));
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(IngestError::MalformedJson("body is not valid UTF-8".into()));
    };
    match serde_json::from_str::<Value>(&quote_big_integers(text)) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(IngestError::MalformedJson(format!(
            "expected a JSON object, got {}",
            json_type(&other)
        ))),
        Err(e) => Err(IngestError::MalformedJson(e.to_string())),
    }
}

/// Digits from which an integer may not fit `u64`/`i64` (u64::MAX has 20, i64::MIN 19).
const BIG_INTEGER_DIGITS: usize = 19;

/// The body with every integer literal that fits neither `i64` nor `u64` turned into a
/// string of its digits, so `serde_json` (which reads such a number as an `f64`, keeping
/// 17 significant digits) cannot merge two different ids into one: `18446744073709551616`
/// and `18446744073709551617` stay two orders. Only the parsed value changes (the raw body
/// is stored as sent), and only for such numbers; a body without a run of 19 digits is
/// parsed as it is. Chosen over serde_json's `arbitrary_precision` feature, which would
/// change every `Value` number in the workspace (serde_dynamo would write them as maps,
/// and equal numbers written differently would compare unequal): ARCHITECTURE §11.
fn quote_big_integers(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    if !has_long_digit_run(bytes) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let number = starts_number(&bytes[i]);
        let end = match bytes[i] {
            b'"' => string_end(bytes, i),
            _ if number => end_of(bytes, i, |c| {
                !(c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
            }),
            // Up to the next string or number (keeps UTF-8 sequences whole).
            _ => end_of(bytes, i + 1, |c| *c == b'"' || starts_number(c)),
        };
        let piece = &text[i..end];
        if number {
            push_number(&mut out, piece);
        } else {
            out.push_str(piece);
        }
        i = end;
    }
    std::borrow::Cow::Owned(out)
}

/// Whether `bytes` hold a run of `BIG_INTEGER_DIGITS` digits anywhere (in a string too: a
/// cheap first pass, so most bodies skip the copy).
fn has_long_digit_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    bytes.iter().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= BIG_INTEGER_DIGITS
    })
}

fn starts_number(c: &u8) -> bool {
    matches!(c, b'-' | b'0'..=b'9')
}

/// The index of the first byte from `from` on that `stop` accepts (the end of the text when
/// none does).
fn end_of(bytes: &[u8], from: usize, stop: impl Fn(&u8) -> bool) -> usize {
    bytes[from..]
        .iter()
        .position(stop)
        .map_or(bytes.len(), |p| from + p)
}

/// The index just past the closing quote of the string opening at `start` (the end of the
/// text when it is not closed). Strings are most of a body, so this jumps from quote or
/// backslash to the next with `memchr`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(p) = bytes
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        i += p;
        if bytes[i] == b'"' {
            return i + 1;
        }
        i += 2; // a backslash and the byte it escapes
    }
    bytes.len()
}

/// An integer literal that fits neither `i64` nor `u64` is written as a string of its
/// digits; anything else as it is.
fn push_number(out: &mut String, token: &str) {
    let integer = !token.contains(['.', 'e', 'E']);
    if integer && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
        out.push('"');
        out.push_str(token);
        out.push('"');
    } else {
        out.push_str(token);
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
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
pub(crate) fn required_str<'a>(
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
pub(crate) fn take_object(
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
pub(crate) fn opt_string(obj: &Map<String, Value>, field: &str) -> Option<String> {
    id_of(obj.get(field))
}

/// The canonical event types: the seeds' event names in dotted form (seed 000's
/// `order_created`, seed 001's `order.created`, Pancake's `conversation_updated`).
pub(crate) const KNOWN_EVENT_TYPES: [&str; 15] = [
    "conversation.updated",
    "message.received",
    "order.created",
    "order.updated",
    "order.status_changed",
    "order.cancelled",
    "customer.created",
    "customer.updated",
    "product.created",
    "product.updated",
    "product.deleted",
    "inventory.updated",
    "transaction.created",
    "loyalty.points_earned",
    "loyalty.points_redeemed",
];

/// A provider's event name as stored: a known name in its canonical dotted form
/// (`order_created`, `ORDER.CREATED` → `order.created`), anything else exactly as sent
/// (trimmed): `connect_status` stays `connect_status`, never an invented `connect.status`.
pub(crate) fn canonical_event_type(name: &str) -> String {
    let name = name.trim();
    let lower = name.to_ascii_lowercase();
    let dotted = match lower.split_once('_') {
        Some((head, tail)) if !lower.contains('.') => format!("{head}.{tail}"),
        _ => lower,
    };
    match KNOWN_EVENT_TYPES.contains(&dotted.as_str()) {
        true => dotted,
        false => name.to_string(),
    }
}

/// The event type (and provider event) of a body of none of its provider's forms.
pub(crate) const UNRECOGNISED_TYPE: &str = "unknown";

/// The tenant of a body that names none: the credential's one bound tenant, else
/// [`Tenant::DEFAULT`] (ARCHITECTURE §4). Never read from another field of the body.
pub(crate) fn unnamed_tenant(bound: Option<&Tenant>) -> Tenant {
    bound.cloned().unwrap_or_else(Tenant::default_tenant)
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
    fn integers_beyond_64_bits_keep_every_digit() {
        let id = |body: &str| id_of(parse_object(body.as_bytes()).unwrap().get("id"));
        let a = id(r#"{"id": 18446744073709551616}"#).unwrap();
        let b = id(r#"{"id":18446744073709551617}"#).unwrap();
        assert_eq!(a, "18446744073709551616");
        assert_eq!(b, "18446744073709551617");
        assert_ne!(a, b, "two orders stay two entities");
        assert_eq!(
            id(r#"{"id":-99999999999999999999}"#).as_deref(),
            Some("-99999999999999999999")
        );
        // Numbers that fit stay numbers; strings and fractions are not touched.
        let body = r#"{"u":18446744073709551615,"i":-9223372036854775808,"f":1234567890123456789012.5,"e":12345678901234567890123e2,"s":"x\"12345678901234567890123\\","n":[{"id":123456789012345678901}],"t":true,"v":"đơn 99999999999999999999"}"#;
        let v = parse_object(body.as_bytes()).unwrap();
        assert_eq!(v["u"], json!(u64::MAX));
        assert_eq!(v["i"], json!(i64::MIN));
        assert!(v["f"].is_f64() && v["e"].is_f64());
        assert_eq!(v["s"], "x\"12345678901234567890123\\");
        assert_eq!(v["n"][0]["id"], "123456789012345678901");
        assert_eq!(v["t"], true);
        assert_eq!(v["v"], "đơn 99999999999999999999");
        assert!(matches!(
            quote_big_integers(r#"{"id":123456789012345678}"#),
            std::borrow::Cow::Borrowed(_)
        ));
        // Long ids inside strings (Pancake's conversation ids) take the copying path and
        // come out unchanged, escapes and all; an unclosed string is left to serde_json.
        let strings = r#"{"c":"104582318532114_1765144800000000001","m":"a\\\"1234567890123456789012\\","k":[1,-2,12345678901234567890123]}"#;
        assert_eq!(
            quote_big_integers(strings),
            r#"{"c":"104582318532114_1765144800000000001","m":"a\\\"1234567890123456789012\\","k":[1,-2,"12345678901234567890123"]}"#
        );
        assert_eq!(
            quote_big_integers(r#"{"a":"12345678901234567890\"#),
            r#"{"a":"12345678901234567890\"#
        );
        assert!(parse_object(br#"{"a":"12345678901234567890\"#).is_err());
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
    fn only_known_names_are_dotted() {
        assert_eq!(canonical_event_type("order_created"), "order.created");
        assert_eq!(
            canonical_event_type(" order_status_changed "),
            "order.status_changed"
        );
        assert_eq!(canonical_event_type("order.cancelled"), "order.cancelled");
        assert_eq!(canonical_event_type("ORDER.CANCELLED"), "order.cancelled");
        assert_eq!(
            canonical_event_type("loyalty_points_earned"),
            "loyalty.points_earned"
        );
        // names no seed knows keep the provider's own spelling
        assert_eq!(canonical_event_type("SKU.CHANGE_STOCK"), "SKU.CHANGE_STOCK");
        assert_eq!(canonical_event_type("connect_status"), "connect_status");
        assert_eq!(canonical_event_type("brand_new_thing"), "brand_new_thing");
        assert_eq!(canonical_event_type("Post_Published"), "Post_Published");
        assert_eq!(canonical_event_type("order_created_v2"), "order_created_v2");
        assert_eq!(canonical_event_type(""), "");
    }

    #[test]
    fn a_body_without_a_tenant_takes_the_bound_one_or_default() {
        assert_eq!(unnamed_tenant(None).as_str(), Tenant::DEFAULT);
        assert_eq!(
            unnamed_tenant(Some(&Tenant::new("shop-9"))).as_str(),
            "shop-9"
        );
    }
}
