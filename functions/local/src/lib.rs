//! `webhooks-local`: every webhook route and the notifier worker in one process over the
//! embedded SQLite store, plus `/healthz` and the web console under `/console`. The library
//! part builds the axum app so tests run it in-process.

pub mod dev_credentials;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use webhook_console::{Access, Served, Throughput};
use webhook_core::config::{ConfigError, Env, Mode};
use webhook_core::error::IngestError;
use webhook_core::http::{client_request_id, RawRequest, RawResponse, ROUTES};
use webhook_core::ops::Operator;
use webhook_core::pipeline::Handler;
use webhook_core::refusals::RefusalSink;
use webhook_core::runtime::{self, Backends};
use webhook_core::store::HealthProbe;

/// The handlers of every implemented source, keyed by route, each reporting its refusals
/// to `refusals` (the console's `Served::refusals`).
pub fn handlers(
    env: &Env,
    backends: &Backends,
    refusals: Arc<dyn RefusalSink>,
) -> Result<HashMap<&'static str, Arc<Handler>>, ConfigError> {
    ROUTES
        .into_iter()
        .map(|(path, source)| {
            let handler = runtime::handler(source, env, Mode::Local, backends, refusals.clone())?;
            Ok((path, handler))
        })
        .collect()
}

#[derive(Clone)]
struct RouteState {
    handler: Arc<Handler>,
    max_body: usize,
    requests: Arc<AtomicU64>,
    /// Answers per minute and source, for the console's chart and suspension-risk table.
    throughput: Arc<Throughput>,
}

/// The axum app: one POST route per source; other methods answer 405.
pub fn app(handlers: HashMap<&'static str, Arc<Handler>>, max_body: usize) -> Router {
    webhook_routes(handlers, max_body, Arc::default())
}

fn webhook_routes(
    handlers: HashMap<&'static str, Arc<Handler>>,
    max_body: usize,
    throughput: Arc<Throughput>,
) -> Router {
    let requests = Arc::new(AtomicU64::new(0));
    let mut router = Router::new();
    for (path, handler) in handlers {
        let state = RouteState {
            handler,
            max_body,
            requests: requests.clone(),
            throughput: throughput.clone(),
        };
        router = router.route(path, post(serve).with_state(state));
    }
    router
}

/// The console's ports and access rule (`None`: `--no-console`, webhook routes only).
pub struct ConsoleParts {
    pub operator: Operator,
    pub access: Access,
}

/// Everything `webhooks-local` serves: the webhook routes (counting their answers in
/// `served`, whose refusals the `handlers` report to), `GET /healthz` over `health`, and
/// unless `console` is `None`, the console under `/console` with `/` redirecting to it.
pub fn site(
    handlers: HashMap<&'static str, Arc<Handler>>,
    max_body: usize,
    health: Arc<dyn HealthProbe>,
    served: Served,
    console: Option<ConsoleParts>,
) -> Router {
    let router = webhook_routes(handlers, max_body, served.throughput.clone())
        .route("/healthz", get(healthz).with_state(health));
    match console {
        None => router,
        Some(c) => router
            .merge(webhook_console::router(c.operator, c.access, Some(served)))
            .route("/", get(|| async { Redirect::to(webhook_console::PREFIX) })),
    }
}

/// 200 when the store answers a read, else 503 naming the store: no detail, no auth (a
/// load balancer or uptime check reads it). The read is one lookup of a key no event has.
async fn healthz(State(health): State<Arc<dyn HealthProbe>>) -> Response {
    let (status, body) = match health.probe().await {
        Ok(_) => (StatusCode::OK, r#"{"status":"ok","store":"ok"}"#),
        Err(e) => {
            tracing::warn!(error = %e, "healthz: the store did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"unavailable","store":"unavailable"}"#,
            )
        }
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

async fn serve(State(state): State<RouteState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(client_request_id)
        .unwrap_or_else(|| {
            format!(
                "local-{}",
                state.requests.fetch_add(1, Ordering::Relaxed) + 1
            )
        });
    // Read one byte past the limit so an oversized body is answered 413 in the provider's
    // shape, logged and recorded like any refusal.
    let body = match to_bytes(Body::new(body), state.max_body.saturating_add(1)).await {
        Ok(b) => b,
        Err(e) if webhook_console::server::is_body_timeout(&e) => {
            let message = "the request body did not arrive in time";
            return (StatusCode::REQUEST_TIMEOUT, message).into_response();
        }
        Err(_) => {
            let size = state.max_body + 1;
            let err = IngestError::TooLarge {
                size,
                limit: state.max_body,
            };
            let response = state.handler.refuse(err, Some(&request_id), size);
            return answered(&state, response);
        }
    };
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
    let response = state.handler.handle(&raw).await;
    answered(&state, response)
}

/// Counts the answer for the console, then converts it.
fn answered(state: &RouteState, response: RawResponse) -> Response {
    state.throughput.record(
        time::OffsetDateTime::now_utc().unix_timestamp(),
        state.handler.provider().source(),
        response.status,
    );
    to_axum(response)
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
