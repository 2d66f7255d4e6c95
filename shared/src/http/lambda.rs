//! The Lambda side of `http`: API Gateway v2 (HTTP API) events in and out. `lambda_http`
//! decodes `isBase64Encoded` bodies, so the bytes verified are the bytes the provider sent.

use lambda_http::{Body, Request, RequestExt, Response};

use super::{RawRequest, RawResponse};

/// Converts a Lambda HTTP request into the transport-agnostic form.
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
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    RawRequest {
        method: req.method().as_str().to_string(),
        path: req.raw_http_path().to_string(),
        query,
        headers,
        body,
        request_id: req.lambda_context_ref().map(|c| c.request_id.clone()),
    }
}

pub fn lambda_response(resp: RawResponse) -> Response<Body> {
    Response::builder()
        .status(resp.status)
        .header("content-type", "application/json")
        .body(Body::Text(
            String::from_utf8(resp.body_bytes()).unwrap_or_default(),
        ))
        .expect("static response parts are valid")
}
