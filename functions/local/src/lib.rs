//! `webhooks-local`: every webhook route and the notifier worker in one process over the
//! embedded SQLite store. The library part builds the axum app so tests run it in-process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use webhook_core::config::{ConfigError, Env, Mode};
use webhook_core::error::IngestError;
use webhook_core::http::{respond, RawRequest, RawResponse, ROUTES};
use webhook_core::pipeline::Handler;
use webhook_core::runtime::{self, Backends};

/// The handlers of every implemented source, keyed by route.
pub fn handlers(
    env: &Env,
    backends: &Backends,
) -> Result<HashMap<&'static str, Arc<Handler>>, ConfigError> {
    ROUTES
        .into_iter()
        .map(|(path, source)| Ok((path, runtime::handler(source, env, Mode::Local, backends)?)))
        .collect()
}

#[derive(Clone)]
struct RouteState {
    handler: Arc<Handler>,
    max_body: usize,
    requests: Arc<AtomicU64>,
}

/// The axum app: one POST route per source; other methods answer 405.
pub fn app(handlers: HashMap<&'static str, Arc<Handler>>, max_body: usize) -> Router {
    let requests = Arc::new(AtomicU64::new(0));
    let mut router = Router::new();
    for (path, handler) in handlers {
        let state = RouteState {
            handler,
            max_body,
            requests: requests.clone(),
        };
        router = router.route(path, post(serve).with_state(state));
    }
    router
}

async fn serve(State(state): State<RouteState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Read one byte past the limit so an oversized body is answered 413 in the provider's shape.
    let body = match to_bytes(Body::new(body), state.max_body.saturating_add(1)).await {
        Ok(b) => b,
        Err(_) => {
            let err = IngestError::TooLarge {
                size: state.max_body + 1,
                limit: state.max_body,
            };
            return to_axum(respond(
                state.handler.provider().response_style(),
                &Err(err),
            ));
        }
    };
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "local-{}",
                state.requests.fetch_add(1, Ordering::Relaxed) + 1
            )
        });
    let raw = RawRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(query_pairs).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
        request_id: Some(request_id),
    };
    to_axum(state.handler.handle(&raw).await)
}

/// The query's pairs, decoded as browsers and providers encode them (`+` is a space).
fn query_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn to_axum(resp: RawResponse) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, resp.body_bytes()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            query_pairs("api_key=a%2Bb&x=1+2&empty&bad=%zz"),
            vec![
                ("api_key".into(), "a+b".into()),
                ("x".into(), "1 2".into()),
                ("empty".into(), "".into()),
                ("bad".into(), "%zz".into())
            ]
        );
        assert_eq!(query_pairs("k=%4"), vec![("k".into(), "%4".into())]);
    }
}
