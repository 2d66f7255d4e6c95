//! The HTTP server of both binaries that serve the console (`webhooks-local`, with or without
//! the console, and `webhooks console`): axum's router on hyper's HTTP/1 connection with the
//! limits `axum::serve` does not offer. A client that opens a connection and sends half a
//! request, or nothing, or trickles a body, holds a slot for a bounded time; at most
//! [`Limits::max_connections`] are served at once (the next waits in the listen backlog, it is
//! not refused); and a stop signal ends the process within [`Limits::grace`] whatever clients
//! hold open. Every piece is a maintained crate's: hyper's header-read timer, hyper-util's
//! graceful shutdown, tower-http's body and request timeouts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower_http::add_extension::AddExtensionLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// How long a client may take, and how many may be served at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the first poll for a request's head to its last header byte. The same hyper
    /// timer runs while a kept-alive connection waits for its next request, so it is also
    /// the idle keep-alive timeout: a silent connection is closed after it.
    pub header_read: Duration,
    /// The longest pause between two pieces of a request body (408 after it).
    pub body_idle: Duration,
    /// The whole request, body and answer (408 after it): a body trickled a byte at a time
    /// cannot hold a slot for ever. Cutting a webhook short is safe: its write is atomic or
    /// completed by the provider's retry (ARCHITECTURE §5).
    pub request: Duration,
    /// Connections served at once; the next is accepted when one closes.
    pub max_connections: usize,
    /// After the stop signal: how long open requests may finish before the connections are
    /// dropped.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            body_idle: Duration::from_secs(10),
            request: Duration::from_secs(60),
            max_connections: 1024,
            grace: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop` completes, then stops accepting,
/// lets open requests finish for at most `limits.grace` and drops whatever is left. Each
/// request carries its peer's `ConnectInfo<SocketAddr>` (the console throttles failed
/// logins per address).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let app = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request,
        ))
        .layer(RequestBodyTimeoutLayer::new(limits.body_idle))
        .service(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: retry shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = ServiceBuilder::new()
            .layer(AddExtensionLayer::new(ConnectInfo(peer)))
            .service(app.clone());
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the grace period: closing them"
        );
    }
    connections.shutdown().await;
}

/// Ctrl-C or SIGTERM (what a service manager or `docker stop` sends).
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Whether a body read failed because the client paused longer than [`Limits::body_idle`]
/// (a handler that reads the body itself answers 408 then, not 413 or 400).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}
