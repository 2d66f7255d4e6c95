//! The Lambda adapter: an API Gateway v2 (HTTP API) event, deserialised as the Lambda
//! runtime does, then `http::lambda::request_from_event` (base64 bodies included), the
//! request every provider verifies; and, as a differential oracle, `lambda_http`'s own
//! conversion followed by `http::lambda::raw_request`.
//!
//! Input: byte 0 — bit 0 picks the form of the rest:
//! - *raw*: the rest is the event's JSON (seeded with `events/<source>/*.json`);
//! - *structured*: an event built from the bytes as API Gateway would send it: a method,
//!   a path and a query string of visible ASCII, an `api_key` parameter, up to 4 headers
//!   (names from a list or made of token characters, values without control characters),
//!   cookies, a stage, and a body that is arbitrary bytes, base64-encoded when a control
//!   bit says so, else text.
//!
//! Oracle: nothing panics; an event decodes to a request, or — only for a body flagged
//! base64 that is not — to a 400. For a structured event the request's body is exactly the
//! bytes sent, its method the event's, the `api_key` parameter comes back percent-decoded
//! and the `x-api-key` header unchanged; and wherever `lambda_http` can convert the event
//! (see [`lambda_http_converts`]) its request is the same one.

use arbitrary::Unstructured;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
use webhook_core::http::lambda::{event_response, raw_request, request_from_event};
use webhook_core::http::{respond, RawRequest, RawResponse, ResponseStyle};

use crate::input::{byte, item, text};

const METHODS: [&str; 4] = ["POST", "GET", "post", "PATCH"];
const STAGES: [&str; 3] = ["$default", "prod", ""];
const HEADERS: [&str; 6] = [
    "content-type",
    "x-event-signature",
    "x-signature",
    "x-event-delivery",
    "user-agent",
    "x-forwarded-proto",
];

/// Runs one input; panics when the oracle is violated.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if byte(&mut u) & 1 == 0 {
        raw(u.take_rest());
    } else {
        structured(&mut u);
    }
}

/// Any event JSON: it decodes, or is refused with a 400, never a panic.
fn raw(bytes: &[u8]) {
    let Ok(event) = serde_json::from_slice::<ApiGatewayV2httpRequest>(bytes) else {
        return; // The runtime reports a deserialisation error: no handler runs.
    };
    let response = match request_from_event(&event, None) {
        Ok(raw) => RawResponse {
            status: 200,
            body: json!({"bytes": raw.body.len()}),
        },
        Err(e) => {
            assert!(event.is_base64_encoded, "{e} for a body not flagged base64");
            assert_eq!(e.status(), 400);
            respond(ResponseStyle::Plain, &Err(e))
        }
    };
    assert!(serde_json::to_vec(&event_response(response)).is_ok());
}

/// What `lambda_http` needs to convert an event without panicking (it rebuilds a URI
/// from the scheme header, host, path and query string): a scheme it can parse and a URI
/// `http` accepts. Where it holds, both conversions must agree.
pub fn lambda_http_converts(path: &str, query: &str, headers: &Map<String, Value>) -> bool {
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(Value::as_str)
        .unwrap_or("https");
    matches!(scheme, "http" | "https")
        && lambda_http::http::Uri::try_from(format!("https://fuzz.example{path}?{query}")).is_ok()
}

/// What a structured event promises to give back.
struct Sent {
    method: &'static str,
    body: Vec<u8>,
    api_key: String,
    x_api_key: String,
}

fn structured(u: &mut Unstructured<'_>) {
    let (event, sent) = event(u);
    let text = event.to_string();
    let parsed: ApiGatewayV2httpRequest = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("an event API Gateway could send did not parse: {e}\n{text}"));
    let raw = request_from_event(&parsed, None).expect("a well-formed event decodes");
    check(&raw, &sent);
    let (path, query) = (event["rawPath"].as_str(), event["rawQueryString"].as_str());
    let headers = event["headers"].as_object().expect("headers");
    if lambda_http_converts(path.unwrap_or(""), query.unwrap_or(""), headers) {
        let req = lambda_http::request::from_str(&text).expect("lambda_http decodes it");
        assert_same(&raw_request(&req), &raw);
    }
}

/// The two conversions agree (query parameters compared as a multiset: both come from a
/// hash map).
fn assert_same(theirs: &RawRequest, ours: &RawRequest) {
    assert_eq!(theirs.method, ours.method);
    assert_eq!(theirs.path, ours.path);
    assert_eq!(theirs.body, ours.body);
    assert_eq!(sorted(&theirs.headers), sorted(&ours.headers));
    assert_eq!(sorted(&theirs.query), sorted(&ours.query));
}

fn sorted(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs = pairs.to_vec();
    pairs.sort();
    pairs
}

/// An event as API Gateway builds one, and what it should decode to.
fn event(u: &mut Unstructured<'_>) -> (Value, Sent) {
    let control = byte(u);
    let method = METHODS[usize::from(control) % METHODS.len()];
    let base64 = control & 0x10 != 0;
    let api_key = visible(item(u));
    let x_api_key = visible(item(u));
    let query = format!("api_key={}&{}", percent(&api_key), visible(item(u)));
    let path = format!("/{}", visible(item(u)));
    let mut headers = Map::new();
    headers.insert("x-api-key".into(), json!(x_api_key));
    for _ in 0..byte(u) % 5 {
        let name = header_name(u);
        let value = match name.as_str() {
            "x-forwarded-proto" if byte(u) % 4 != 0 => "https".to_string(),
            _ => field_value(item(u)),
        };
        headers.insert(name, json!(value));
    }
    let stage = STAGES[usize::from(byte(u)) % STAGES.len()];
    let cookies: Vec<String> = (0..byte(u) % 3).map(|_| visible(item(u))).collect();
    let body = u.bytes(u.len()).unwrap_or_default().to_vec();
    let body_field = match base64 {
        true => B64.encode(&body),
        false => String::from_utf8_lossy(&body).into_owned(),
    };
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "cookies": cookies, "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "fuzz", "domainName": "fuzz.example",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "fuzz", "routeKey": "$default", "stage": stage, "timeEpoch": 0
        },
        "body": body_field, "isBase64Encoded": base64,
    });
    let body = match base64 {
        true => body,
        false => body_field.into_bytes(),
    };
    (
        event,
        Sent {
            method,
            body,
            api_key,
            x_api_key,
        },
    )
}

/// A header name from the list, or made of token characters.
fn header_name(u: &mut Unstructured<'_>) -> String {
    let pick = byte(u);
    if pick % 2 == 0 {
        return HEADERS[usize::from(pick / 2) % HEADERS.len()].to_string();
    }
    let token: String = item(u)
        .iter()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => char::from(*b),
            _ => 'x',
        })
        .collect();
    format!("x-{token}")
}

/// A header value as HTTP allows one: no control characters but tab (a request with a
/// line break in a header is no request).
fn field_value(bytes: &[u8]) -> String {
    text(bytes)
        .chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect()
}

/// Visible ASCII only (what a request line and most header values carry).
fn visible(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .map(|b| char::from(*b))
        .collect()
}

/// Percent-encodes everything but ASCII letters and digits.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b.is_ascii_alphanumeric() {
            true => char::from(b).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

fn check(raw: &RawRequest, sent: &Sent) {
    assert_eq!(raw.body, sent.body, "the body bytes changed in decoding");
    assert_eq!(raw.method, sent.method);
    assert!(raw
        .headers
        .iter()
        .all(|(k, _)| k.bytes().all(|b| !b.is_ascii_uppercase())));
    assert_eq!(
        raw.query_param("api_key"),
        Some(sent.api_key.as_str()),
        "query {:?}",
        raw.query
    );
    assert_eq!(raw.header("x-api-key"), Some(sent.x_api_key.as_str()));
}
