//! A loopback HTTP proxy that forwards requests to moto_server one at a time, and can
//! inject faults ([`Faults`]: a service down, a caller dying after its request applied).
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
    faults: Arc<Faults>,
}

/// Faults a [`start_faulty`] proxy injects, switchable while it runs.
#[derive(Default)]
pub struct Faults {
    /// Requests whose `X-Amz-Target` starts with this are answered 503 without reaching
    /// the upstream (e.g. `AmazonSQS.`: the queue is down).
    down: std::sync::Mutex<Option<String>>,
    hold: std::sync::Mutex<Option<Hold>>,
    /// Requests refused by `down`.
    refused: std::sync::atomic::AtomicUsize,
}

/// A request to forward and then never answer, as if the caller died right after it was
/// applied (see [`Faults::hold_after`]).
struct Hold {
    target: String,
    body_contains: String,
    skip: usize,
    reached: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Faults {
    /// Refuses (503) every request whose `X-Amz-Target` starts with `prefix`; `None` ends it.
    pub fn set_down(&self, prefix: Option<&str>) {
        *self.down.lock().expect("lock") = prefix.map(str::to_string);
    }

    /// How many requests `set_down` refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After `skip` matching requests pass, the next request with this `X-Amz-Target` whose
    /// body contains `body_contains` is forwarded (so it takes effect) but its answer is
    /// never sent; the receiver fires when that happens, so the test can kill the caller.
    pub fn hold_after(
        &self,
        target: &str,
        body_contains: &str,
        skip: usize,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self.hold.lock().expect("lock") = Some(Hold {
            target: target.to_string(),
            body_contains: body_contains.to_string(),
            skip,
            reached: Some(tx),
        });
        rx
    }

    fn refuses(&self, target: &str) -> bool {
        let down = self.down.lock().expect("lock");
        let refused = down.as_deref().is_some_and(|p| target.starts_with(p));
        if refused {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        refused
    }

    /// Whether this request is the one to hold (and, if so, its signal).
    fn holds(&self, target: &str, body: &[u8]) -> Option<tokio::sync::oneshot::Sender<()>> {
        let mut hold = self.hold.lock().expect("lock");
        let h = hold.as_mut()?;
        let matches =
            h.target == target && String::from_utf8_lossy(body).contains(h.body_contains.as_str());
        if !matches {
            return None;
        }
        if h.skip > 0 {
            h.skip -= 1;
            return None;
        }
        hold.take().and_then(|mut h| h.reached.take())
    }
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
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if up.faults.refuses(&target) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "injected outage");
    }
    let held = up.faults.holds(&target, &body);
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
    if let Some(reached) = held {
        // Applied upstream; the caller never learns it.
        let _ = response.bytes().await;
        drop(_turn);
        let _ = reached.send(());
        let never: std::convert::Infallible = std::future::pending().await;
        match never {}
    }
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
    start_faulty(upstream).0
}

/// A serialising proxy to `upstream` that can also inject [`Faults`]: its endpoint and the
/// switches.
pub fn start_faulty(upstream: &str) -> (String, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let upstream = Arc::new(Upstream {
        base: upstream.trim_end_matches('/').to_string(),
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client"),
        turn: Mutex::new(()),
        faults: faults.clone(),
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
    (format!("http://{addr}"), faults)
}

/// The process-wide serialising proxy in front of the shared moto endpoint.
pub fn serialised_moto() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| start(&crate::moto::endpoint()))
        .clone()
}
