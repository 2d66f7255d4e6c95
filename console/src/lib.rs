//! The operator web console: the `webhooks` CLI's reads and actions (ARCHITECTURE §9) as
//! server-rendered pages, written once over [`webhook_core::ops::Operator`] so that
//! `webhooks-local` (mounted under `/console`) and `webhooks console` show the same thing
//! on SQLite and on DynamoDB + SQS. Every asset is compiled into the binary; the only
//! script is a few lines of plain JavaScript (live list, confirmations).

mod access;
mod actions;
mod assets;
mod entity;
mod error;
mod event;
mod events;
mod layout;
mod overview;
mod refusals;
pub mod server;
mod session;
mod throttle;
mod throughput;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use webhook_core::ops::Operator;
use webhook_core::refusals::RecentRefusals;

pub use access::{Access, AccessError, ConsoleSettings, MIN_TOKEN_CHARS};
pub use error::ConsoleError;
pub use throughput::{Answers, Throughput};

/// What only a process that answers webhooks knows, since a refused request stores nothing
/// (`webhooks-local`; `webhooks console` has neither): its answers per minute and source,
/// and its most recent refusals.
#[derive(Clone, Default)]
pub struct Served {
    pub throughput: Arc<Throughput>,
    pub refusals: Arc<RecentRefusals>,
}

/// Where the console is mounted, in both binaries.
pub const PREFIX: &str = "/console";

/// What every page handler reads.
#[derive(Clone)]
pub(crate) struct Console {
    pub op: Operator,
    pub access: Arc<Access>,
    /// What this process recorded of the requests it answered; `None` when it serves no
    /// webhooks (`webhooks console`), where the chart shows stored events instead.
    pub served: Option<Served>,
}

/// The console's routes, all under [`PREFIX`]: pages and forms behind the access guard,
/// the login page and the embedded assets outside it.
pub fn router(op: Operator, access: Access, served: Option<Served>) -> Router {
    let console = Console {
        op,
        access: Arc::new(access),
        served,
    };
    let guarded = Router::new()
        .route(PREFIX, get(overview::page))
        .route(&format!("{PREFIX}/"), get(overview::page))
        .route(&format!("{PREFIX}/events"), get(events::page))
        .route(&format!("{PREFIX}/events/rows"), get(events::rows))
        .route(&format!("{PREFIX}/event"), get(event::page))
        .route(&format!("{PREFIX}/entity"), get(entity::page))
        .route(&format!("{PREFIX}/dlq"), get(actions::dead_letters))
        .route(&format!("{PREFIX}/refusals"), get(refusals::page))
        .route(&format!("{PREFIX}/replay"), post(actions::replay))
        .route(&format!("{PREFIX}/redrive"), post(actions::redrive))
        .route(&format!("{PREFIX}/logout"), post(access::logout))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            access::guard,
        ));
    Router::new()
        .merge(guarded)
        .route(
            &format!("{PREFIX}/login"),
            get(access::login_page).post(access::login),
        )
        .route(&format!("{PREFIX}/assets/{{name}}"), get(assets::serve))
        .route(&format!("{PREFIX}/{{*rest}}"), get(error::unknown_page))
        .layer(middleware::map_response(security_headers))
        .with_state(console)
}

/// Pages show customers' data: never cached, framed, or allowed to load or post anywhere
/// but this console (the script and stylesheet are its own files, nothing is inline).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
