//! Wiring shared by the binaries: builds a source's handler over the configured backends,
//! so each `functions/<name>/src/main.rs` stays a few lines.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::{ConfigError, Env, Mode, PipelineSettings};
use crate::metrics::MetricsSink;
use crate::model::Source;
use crate::pipeline::{Handler, Pipeline};
use crate::queue::TransitionQueue;
use crate::sources::provider_from_env;
use crate::store::Store;

/// A store and the queue that goes with it.
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn TransitionQueue>,
}

/// The embedded backends over the SQLite file at `path` (store + outbox queue).
#[cfg(feature = "sqlite")]
pub fn sqlite_backends(
    path: &std::path::Path,
    env: &Env,
) -> Result<(Backends, crate::queue::outbox::Outbox), crate::error::StoreError> {
    let full_sync = env
        .get("SQLITE_SYNC")
        .is_some_and(|v| v.eq_ignore_ascii_case("full"));
    let store = crate::store::sqlite::SqliteStore::open(path, full_sync)?;
    let outbox = crate::queue::outbox::Outbox::new(store.connection());
    Ok((
        Backends {
            store: Arc::new(store),
            queue: Arc::new(outbox.clone()),
        },
        outbox,
    ))
}

/// The backends a Lambda binary uses. Until the DynamoDB/SQS backends land this is the
/// embedded store in `/tmp` (ephemeral; `SQLITE_PATH` overrides).
pub async fn lambda_backends(env: &Env) -> Result<Backends, crate::error::StoreError> {
    let path = PathBuf::from(env.get_or("SQLITE_PATH", "/tmp/webhooks.db"));
    Ok(sqlite_backends(&path, env)?.0)
}

/// Logs a start-up failure as one clear line, then hands it back for the binary to exit on.
pub fn refuse_to_start<E: std::fmt::Display>(err: E) -> E {
    tracing::error!(error = %err, "refusing to start: configuration error");
    err
}

/// The handler of one source over `backends`.
pub fn handler(
    source: Source,
    env: &Env,
    mode: Mode,
    backends: &Backends,
) -> Result<Arc<Handler>, ConfigError> {
    let provider = provider_from_env(source, env, mode)?;
    let pipeline = Arc::new(Pipeline::new(
        backends.store.clone(),
        backends.queue.clone(),
        Arc::new(SystemClock),
        PipelineSettings::from_env(env)?,
    ));
    let metrics = match mode {
        Mode::Lambda => MetricsSink::Emf,
        Mode::Local => MetricsSink::Off,
    };
    Ok(Arc::new(Handler::new(pipeline, provider, metrics)))
}
