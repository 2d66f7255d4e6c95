//! The events/ samples as the transport hands them over, and a source's handler over a
//! fresh in-memory store: the harness every handler-level test file shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;
use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::http::RawRequest;
use webhook_core::metrics::MetricsSink;
use webhook_core::pipeline::{Handler, Pipeline};
use webhook_core::queue::outbox::Outbox;
use webhook_core::sources::provider_from_env;
use webhook_core::store::sqlite::SqliteStore;
use webhook_core::Source;

/// The repository root (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// An API Gateway v2 sample event as a request: exact body bytes (base64-decoded when
/// `isBase64Encoded`), its method, path, query and headers.
pub fn request_from_event(path: &Path) -> RawRequest {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let event: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw = event["body"].as_str().unwrap_or_default();
    let body = if event["isBase64Encoded"] == Value::Bool(true) {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .expect("base64 body")
    } else {
        raw.as_bytes().to_vec()
    };
    let mut req = RawRequest::post(event["rawPath"].as_str().expect("rawPath"), body);
    if let Some(method) = event["requestContext"]["http"]["method"].as_str() {
        req.method = method.to_string();
    }
    for (name, value) in event["headers"].as_object().into_iter().flatten() {
        req = req.with_header(name, value.as_str().unwrap_or_default());
    }
    for pair in event["rawQueryString"]
        .as_str()
        .unwrap_or_default()
        .split('&')
    {
        if let Some((k, v)) = pair.split_once('=') {
            req = req.with_query(k, v);
        }
    }
    req
}

/// Every sample of one events/ folder (e.g. `"abaha"`, `"pancake-pos"`): (file stem, request),
/// sorted by name.
pub fn samples(folder: &str) -> Vec<(String, RawRequest)> {
    let dir = repo_root().join("events").join(folder);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, request_from_event(&p))
        })
        .collect()
}

/// One sample by folder and file stem.
pub fn sample(folder: &str, name: &str) -> RawRequest {
    request_from_event(
        &repo_root()
            .join("events")
            .join(folder)
            .join(format!("{name}.json")),
    )
}

/// A source's handler as a binary builds it from `env`, over a fresh in-memory store and
/// its outbox, with a fixed clock.
pub struct SourceHarness {
    pub handler: Handler,
    pub store: SqliteStore,
    pub outbox: Outbox,
    pub clock: Arc<FixedClock>,
}

impl SourceHarness {
    pub fn new(source: Source, env: &Env, mode: Mode, now_unix: i64) -> Self {
        let store = SqliteStore::in_memory().expect("in-memory store");
        let outbox = store.outbox();
        let clock = Arc::new(FixedClock::at_unix(now_unix));
        let pipeline = Pipeline::new(
            Arc::new(store.clone()),
            Arc::new(outbox.clone()),
            clock.clone(),
            PipelineSettings::from_env(env).expect("pipeline settings"),
        );
        let provider = provider_from_env(source, env, mode).expect("provider config");
        SourceHarness {
            handler: Handler::new(Arc::new(pipeline), provider, MetricsSink::Off),
            store,
            outbox,
            clock,
        }
    }

    /// One integer from a SQL query over the store's file (`SELECT COUNT(*) ...`).
    pub fn count(&self, sql: &str) -> i64 {
        let conn = self.store.connection();
        let c = conn.lock().expect("connection");
        c.query_row(sql, [], |r| r.get(0)).expect("count query")
    }
}
