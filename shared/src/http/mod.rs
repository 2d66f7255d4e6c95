//! Transport-agnostic HTTP: the raw request every provider verifies (exact body bytes),
//! the route table, the provider-shaped responses, and the Lambda adapter.

pub mod lambda;
mod response;

pub use response::{respond, ResponseStyle};

use serde_json::Value;

use crate::model::Source;

/// The headers the event log keeps with an event: the one list, so a source can refuse a
/// configured credential header that would be stored. Credentials are never kept.
pub const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "user-agent",
    "x-event-delivery",
    "x-forwarded-for",
    "x-amzn-trace-id",
];

/// Longest client-supplied request id kept (an `X-Request-Id` to the local gateway), in
/// bytes: ids are logged with every request, and a client must not be able to write
/// kilobytes into each log line. UUIDs and trace ids fit with room to spare.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 64;

/// A client's request id as logged: its visible ASCII characters (no spaces or controls),
/// cut to [`MAX_REQUEST_ID_LEN`]; `None` when nothing is left, so the caller numbers it.
pub fn client_request_id(value: &str) -> Option<String> {
    let id: String = value
        .chars()
        .filter(char::is_ascii_graphic)
        .take(MAX_REQUEST_ID_LEN)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// A request as it reached us; `body` holds the exact bytes the provider signed.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// API Gateway / local request id, for logs.
    pub request_id: Option<String>,
}

impl RawRequest {
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        RawRequest {
            method: "POST".into(),
            path: path.into(),
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn with_query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response ready for any transport.
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    pub status: u16,
    pub body: Value,
}

impl RawResponse {
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

/// The HTTP API routes of ARCHITECTURE §2: the one place that maps a path to its source.
pub const ROUTES: [(&str, Source); 5] = [
    ("/api/v1/pancake/webhook", Source::Pancake),
    ("/api/v1/pancake-pos/webhook", Source::PancakePos),
    ("/api/v1/abaha/webhook", Source::Abaha),
    ("/api/v1/fulfilment/webhook", Source::Fulfilment),
    ("/callback/update-invoice", Source::Invoice),
];

pub fn route_for(source: Source) -> &'static str {
    ROUTES
        .iter()
        .find(|(_, s)| *s == source)
        .map(|(p, _)| *p)
        .expect("every source has a route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_cut_and_cleaned() {
        assert_eq!(client_request_id("req-42").as_deref(), Some("req-42"));
        let long = "x".repeat(100_000);
        assert_eq!(client_request_id(&long).unwrap().len(), MAX_REQUEST_ID_LEN);
        assert_eq!(
            client_request_id("a b\tc\u{1b}[2Jd").as_deref(),
            Some("abc[2Jd")
        );
        assert_eq!(client_request_id("  \t "), None);
    }
}
