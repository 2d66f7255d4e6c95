//! The events/ samples as the transport hands them over, and a source's handler over a
//! fresh in-memory store: the harness every handler-level test file shares.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;
use webhook_core::backends::sqlite::Outbox;
use webhook_core::backends::sqlite::SqliteStore;
use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode};
use webhook_core::http::{route_for, RawRequest, RawResponse};
use webhook_core::metrics::MetricsSink;
use webhook_core::pipeline::{Handler, Pipeline};
use webhook_core::runtime;
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::sources::invoice::Invoice;
use webhook_core::sources::{abaha, fulfilment, invoice, pancake, pancake_pos, provider_from_env};
use webhook_core::store::{EventSummary, OperatorStore, StoredEvent};
use webhook_core::{EventKey, Source};

use crate::inspect::{self, Snapshot};

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

/// The `.json` files directly in `dir`, sorted by path.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
}

/// Every sample of one events/ folder (e.g. `"abaha"`, `"pancake-pos"`): (file stem, request),
/// sorted by name.
pub fn samples(folder: &str) -> Vec<(String, RawRequest)> {
    json_files(&repo_root().join("events").join(folder))
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

/// Serves `app` on a free localhost port in the background; returns its base URL
/// (`http://127.0.0.1:<port>`).
pub async fn serve_in_background(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free localhost port");
    let base = format!("http://{}", listener.local_addr().expect("bound address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

/// The name of the header carrying a source's credential.
pub fn credential_header(source: Source) -> &'static str {
    match source {
        Source::Pancake => "X-API-Key",
        Source::PancakePos => "X-Webhook-Secret",
        Source::Abaha => "X-Abaha-Token",
        Source::Fulfilment => "X-Event-Signature",
        Source::Invoice => "X-Signature",
    }
}

/// `body` posted to the source's route presenting `value` as its credential, in the
/// source's default header: the key or token itself, or (fulfilment, invoice) the signature
/// of the exact bytes with `value` as the secret.
pub fn credentialed(source: Source, body: &[u8], value: &str) -> RawRequest {
    let req = RawRequest::post(route_for(source), body.to_vec());
    let header = credential_header(source);
    match source {
        Source::Pancake | Source::PancakePos | Source::Abaha => req.with_header(header, value),
        Source::Fulfilment => req.with_header(header, &Fulfilment::sign(body, value)),
        Source::Invoice => req.with_header(header, &Invoice::sign(body, value)),
    }
}

/// `body` posted to the source's route with its development credential over the exact
/// bytes (and, for fulfilment, `delivery` as `X-Event-Delivery` when given).
pub fn dev_credentialed(source: Source, body: &[u8], delivery: Option<&str>) -> RawRequest {
    let value = match source {
        Source::Pancake => pancake::DEV_API_KEY,
        Source::PancakePos => pancake_pos::DEV_API_KEY,
        Source::Abaha => abaha::DEV_TOKEN,
        Source::Fulfilment => fulfilment::DEV_SECRET,
        Source::Invoice => invoice::DEV_SECRET,
    };
    let req = credentialed(source, body, value);
    match delivery {
        Some(d) if source == Source::Fulfilment => req.with_header("X-Event-Delivery", d),
        _ => req,
    }
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
        let SourcesHarness {
            mut handlers,
            store,
            outbox,
            clock,
            ..
        } = SourcesHarness::new(&[source], env, mode, now_unix);
        SourceHarness {
            handler: handlers.remove(&source).expect("the source's handler"),
            store,
            outbox,
            clock,
        }
    }

    /// Every stored event's summary, oldest first ([`inspect::events`]).
    pub async fn events(&self) -> Vec<EventSummary> {
        inspect::events(&self.store).await
    }

    /// What the store and its outbox hold, through the read API ([`inspect::snapshot`]).
    pub async fn snapshot(&self) -> Snapshot {
        inspect::snapshot(&self.store, &self.outbox).await
    }

    /// The handler's answer to `req`.
    pub async fn post(&self, req: &RawRequest) -> RawResponse {
        self.handler.handle(req).await
    }

    /// The stored event a success answer names in `data.eventKey` (the Pancake shapes).
    pub async fn event_stored(&self, resp: &RawResponse) -> Option<StoredEvent> {
        let key = resp.body["data"]["eventKey"].as_str()?;
        self.store
            .event(&EventKey::from_stored(key.to_string()))
            .await
            .expect("event lookup")
    }
}

/// Several sources' handlers as the binaries build them from `env`, sharing one pipeline
/// over a fresh in-memory store, its outbox and its credential table (empty until a test
/// adds to it, through [`runtime::sqlite_operator_over`]), with a fixed clock.
pub struct SourcesHarness {
    pub handlers: HashMap<Source, Handler>,
    pub pipeline: Arc<Pipeline>,
    pub store: SqliteStore,
    pub outbox: Outbox,
    pub clock: Arc<FixedClock>,
}

impl SourcesHarness {
    pub fn new(sources: &[Source], env: &Env, mode: Mode, now_unix: i64) -> Self {
        let store = SqliteStore::in_memory().expect("in-memory store");
        let outbox = store.outbox();
        let clock = Arc::new(FixedClock::at_unix(now_unix));
        // Wired by the product's own runtime functions, on the fixed clock.
        let backends = runtime::sqlite_backends_over(&store);
        let pipeline = runtime::pipeline(env, &backends, clock.clone()).expect("pipeline settings");
        let handlers = sources
            .iter()
            .map(|&source| {
                let provider = provider_from_env(source, env, mode).expect("provider config");
                (
                    source,
                    Handler::new(pipeline.clone(), provider, MetricsSink::Off),
                )
            })
            .collect();
        SourcesHarness {
            handlers,
            pipeline,
            store,
            outbox,
            clock,
        }
    }

    /// Every source's handler ([`Source::ALL`]), as webhooks-local builds them from `env`.
    pub fn every_source(env: &Env, mode: Mode, now_unix: i64) -> Self {
        Self::new(&Source::ALL, env, mode, now_unix)
    }

    /// Every stored event's summary, oldest first ([`inspect::events`]).
    pub async fn events(&self) -> Vec<EventSummary> {
        inspect::events(&self.store).await
    }

    /// What the store and its outbox hold, through the read API ([`inspect::snapshot`]).
    pub async fn snapshot(&self) -> Snapshot {
        inspect::snapshot(&self.store, &self.outbox).await
    }

    /// `source`'s handler's answer to `req`.
    pub async fn post(&self, source: Source, req: &RawRequest) -> RawResponse {
        self.handlers[&source].handle(req).await
    }
}
