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
mod throughput;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use webhook_core::ops::Operator;

pub use access::{Access, AccessError, ConsoleSettings};
pub use error::ConsoleError;
pub use throughput::Throughput;

/// Where the console is mounted, in both binaries.
pub const PREFIX: &str = "/console";

/// What every page handler reads.
#[derive(Clone)]
pub(crate) struct Console {
    pub op: Operator,
    pub access: Arc<Access>,
    /// Requests this process answered per minute; `None` when it serves no webhooks
    /// (`webhooks console`), where the chart shows stored events instead.
    pub throughput: Option<Arc<Throughput>>,
}

/// The console's routes, all under [`PREFIX`]: pages and forms behind the access guard,
/// the login page and the embedded assets outside it.
pub fn router(op: Operator, access: Access, throughput: Option<Arc<Throughput>>) -> Router {
    let console = Console {
        op,
        access: Arc::new(access),
        throughput,
    };
    let guarded = Router::new()
        .route(PREFIX, get(overview::page))
        .route(&format!("{PREFIX}/"), get(overview::page))
        .route(&format!("{PREFIX}/events"), get(events::page))
        .route(&format!("{PREFIX}/events/rows"), get(events::rows))
        .route(&format!("{PREFIX}/event"), get(event::page))
        .route(&format!("{PREFIX}/entity"), get(entity::page))
        .route(&format!("{PREFIX}/dlq"), get(actions::dead_letters))
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
        .with_state(console)
}
