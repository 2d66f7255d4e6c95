//! A loopback HTTP proxy that forwards requests to moto_server one at a time.
//!
//! Why: DynamoDB executes each request atomically (a conditional write or a
//! `TransactWriteItems` is all or nothing, isolated from concurrent requests), and the store
//! relies on exactly that for "concurrent duplicates resolve to one winner". moto_server
//! serves requests on concurrent threads without that isolation: its `TransactWriteItems`
//! checks conditions and writes item by item, and a cancelled transaction restores a copy of
//! the tables taken when *it* started, erasing what a concurrent transaction committed in
//! between (observed here as lost transitions and half-written entities under 16 concurrent
//! deliveries). Serialising the requests gives moto the per-request atomicity DynamoDB
//! guarantees, while the clients still send them concurrently, so the store's concurrency
//! handling (conditions, cancellation reasons, retries) is exercised as it is against AWS.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};
use axum::Router;
use tokio::sync::Mutex;

struct Upstream {
    base: String,
    client: reqwest::Client,
    turn: Mutex<()>,
}

/// Hop-by-hop and framing headers, set again by each side.
const SKIPPED: [&str; 5] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "host",
];

fn skipped(name: &HeaderName) -> bool {
    SKIPPED.contains(&name.as_str())
}

async fn forward(State(up): State<Arc<Upstream>>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut outbound = up
        .client
        .request(parts.method.clone(), format!("{}{path}", up.base))
        .body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !skipped(n)) {
        outbound = outbound.header(name, value);
    }
    let _turn = up.turn.lock().await;
    let response = match outbound.send().await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e),
    };
    let mut builder = Response::builder().status(response.status());
    for (name, value) in response.headers().iter().filter(|(n, _)| !skipped(n)) {
        builder = builder.header(name, value);
    }
    match response.bytes().await {
        Ok(bytes) => builder
            .body(Body::from(bytes))
            .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e)),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

fn error(status: StatusCode, e: impl std::fmt::Display) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("proxy: {e}")));
    *response.status_mut() = status;
    response
}

/// Starts a serialising proxy to `upstream` on its own thread and runtime (so it outlives
/// any one test's runtime) and returns its endpoint.
pub fn start(upstream: &str) -> String {
    let upstream = Arc::new(Upstream {
        base: upstream.trim_end_matches('/').to_string(),
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client"),
        turn: Mutex::new(()),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr: SocketAddr = listener.local_addr().expect("proxy address");
    std::thread::Builder::new()
        .name("moto-serial-proxy".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
                let app = Router::new().fallback(forward).with_state(upstream);
                let _ = axum::serve(listener, app).await;
            });
        })
        .expect("proxy thread");
    format!("http://{addr}")
}

/// The process-wide serialising proxy in front of the shared moto endpoint.
pub fn serialised_moto() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| start(&crate::moto::endpoint()))
        .clone()
}
