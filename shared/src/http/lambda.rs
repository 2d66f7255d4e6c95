//! The Lambda side of `http`: API Gateway v2 (HTTP API) events in and out.
//!
//! The ingest Lambdas read the event themselves ([`request_from_event`], answered with
//! [`event_response`]): `isBase64Encoded` bodies are decoded, so the bytes verified are the
//! bytes the provider sent. They do not go through `lambda_http`'s conversion to an
//! `http::Request`, which panics on events it cannot rebuild a URI from (a query string with
//! `"`, `{`, `|` or a space, as some HTTP clients send them unencoded) or on a body flagged
//! base64 that does not decode; the runtime then reports an invocation error and API Gateway
//! answers 500 (found by the `apigw_event` fuzz target, fuzz/RESULTS.md). [`raw_request`]
//! converts `lambda_http`'s request the same way, for callers that have one; the fuzz target
//! checks that both agree wherever `lambda_http` can convert.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::http::header::{HeaderValue, CONTENT_TYPE, COOKIE};
use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use lambda_http::{Body, Request, RequestExt};

use super::{RawRequest, RawResponse};
use crate::error::IngestError;

/// Converts an API Gateway v2 event into the transport-agnostic form, reading its fields
/// as sent: the method, `rawPath`, `rawQueryString` percent-decoded (else
/// `queryStringParameters`), the headers (names lowercased, values that are not visible
/// ASCII dropped, `cookies` as one `cookie` header) and the body, base64-decoded when
/// flagged. Never panics: a flagged body that is not base64 is a 400.
pub fn request_from_event(
    event: &ApiGatewayV2httpRequest,
    request_id: Option<String>,
) -> Result<RawRequest, IngestError> {
    Ok(RawRequest {
        method: event.request_context.http.method.as_str().to_string(),
        path: event.raw_path.clone().unwrap_or_default(),
        query: query_of(event),
        headers: headers_of(event),
        body: body_of(event)?,
        request_id,
    })
}

/// The body's bytes: base64-decoded when the event says so, else the text's bytes.
fn body_of(event: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, IngestError> {
    let Some(body) = event.body.as_deref() else {
        return Ok(Vec::new());
    };
    if !event.is_base64_encoded {
        return Ok(body.as_bytes().to_vec());
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| IngestError::MalformedJson("isBase64Encoded body is not base64".into()))
}

/// Query parameters as `lambda_http` reads them: `rawQueryString` when present.
fn query_of(event: &ApiGatewayV2httpRequest) -> Vec<(String, String)> {
    let parsed;
    let map = match event.raw_query_string.as_deref() {
        Some(raw) => {
            parsed = raw.parse::<QueryMap>().unwrap_or_default();
            &parsed
        }
        None => &event.query_string_parameters,
    };
    map.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The event's headers, with its `cookies` joined into a `cookie` header as `lambda_http`
/// does.
fn headers_of(event: &ApiGatewayV2httpRequest) -> Vec<(String, String)> {
    let mut headers = event.headers.clone();
    if let Some(cookies) = &event.cookies {
        if let Ok(value) = HeaderValue::from_str(&cookies.join("; ")) {
            headers.insert(COOKIE, value);
        }
    }
    header_pairs(&headers)
}

/// Header names lowercased; values that are not visible ASCII (not `&str`) dropped.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

/// The API Gateway v2 response for `resp`: its status, a JSON body, `content-type`.
pub fn event_response(resp: RawResponse) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(resp.status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.multi_value_headers = response.headers.clone();
    response.body = Some(EventBody::Text(
        String::from_utf8(resp.body_bytes()).unwrap_or_default(),
    ));
    response
}

/// Converts a `lambda_http` request into the transport-agnostic form (as
/// [`request_from_event`] converts the event it came from).
pub fn raw_request(req: &Request) -> RawRequest {
    let body = match req.body() {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    let query = req
        .query_string_parameters_ref()
        .map(|q| {
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let headers = header_pairs(req.headers());
    RawRequest {
        method: req.method().as_str().to_string(),
        path: req.raw_http_path().to_string(),
        query,
        headers,
        body,
        request_id: req.lambda_context_ref().map(|c| c.request_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// An API Gateway v2 event around `body`, with `query` as its raw query string.
    fn event(query: &str, body: &str, base64: bool) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/callback/update-invoice",
            "rawQueryString": query, "cookies": ["a=1", "b=2"],
            "headers": {"X-Signature": "abc", "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/callback/update-invoice",
                "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}, "stage": "$default",
                "requestId": "r", "timeEpoch": 0, "domainName": "example.com"},
            "body": body, "isBase64Encoded": base64,
        })
    }

    fn decode(event: &Value) -> Result<RawRequest, IngestError> {
        request_from_event(&serde_json::from_value(event.clone()).unwrap(), None)
    }

    /// Fuzz finding (`apigw_event`): `lambda_http` panics building a URI from a query
    /// string with characters `http::Uri` refuses, which API Gateway passes on as sent.
    /// The event is read as it is: the request decodes, the parameters percent-decoded.
    #[test]
    fn query_strings_lambda_http_cannot_rebuild_decode() {
        for query in [
            r#"api_key=k&q={"a":1}"#,
            "api_key=k&q=a|b^c`d",
            "api_key=k&q=a b",
            "api_key=k&q=<x>\\",
        ] {
            let req = decode(&event(query, "{}", false)).unwrap();
            assert_eq!(req.query_param("api_key"), Some("k"), "{query}");
            assert_eq!(req.body, b"{}");
        }
        let req = decode(&event("api_key=a%2Bb+c&x=%7B%22%7D", "", false)).unwrap();
        assert_eq!(req.query_param("api_key"), Some("a+b c"));
        assert_eq!(req.query_param("x"), Some("{\"}"));
    }

    /// Fuzz finding (`apigw_event`): a body flagged base64 that is not made `lambda_http`
    /// panic; it is a 400 now. A valid one is decoded to the exact bytes.
    #[test]
    fn base64_bodies_decode_or_answer_400() {
        let err = decode(&event("", "not base64!", true)).unwrap_err();
        assert_eq!(err.status(), 400);
        let bytes = b"{\"event\":\"\xff\x00\"}";
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(decode(&event("", &encoded, true)).unwrap().body, bytes);
    }

    /// What `lambda_http` gives the handler, field for field, where it can convert.
    #[test]
    fn agrees_with_lambda_http() {
        let e = event("api_key=k&a=1&a=2", "{\"x\":1}", false);
        let ours = decode(&e).unwrap();
        let theirs = raw_request(&lambda_http::request::from_str(&e.to_string()).unwrap());
        let sorted = |mut v: Vec<(String, String)>| {
            v.sort();
            v
        };
        assert_eq!(ours.method, theirs.method);
        assert_eq!(ours.path, theirs.path);
        assert_eq!(ours.body, theirs.body);
        assert_eq!(sorted(ours.headers.clone()), sorted(theirs.headers));
        assert_eq!(sorted(ours.query.clone()), sorted(theirs.query));
        assert_eq!(ours.header("cookie"), Some("a=1; b=2"));
        assert_eq!(ours.header("x-signature"), Some("abc"));
    }

    #[test]
    fn responses_are_json_with_the_status() {
        let resp = event_response(RawResponse {
            status: 401,
            body: json!({"status": "error"}),
        });
        let v = serde_json::to_value(&resp).unwrap();
        assert_eq!(v["statusCode"], 401);
        assert_eq!(v["headers"]["content-type"], "application/json");
        assert_eq!(v["body"], r#"{"status":"error"}"#);
        assert_eq!(v["isBase64Encoded"], false);
    }
}
