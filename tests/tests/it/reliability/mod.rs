//! Reliability runs (issue 7), over the embedded SQLite store through the real `Handler` of
//! every source: 100× redelivery of every events/ sample, 16 concurrent identical
//! deliveries, every order of an invoice's history, the notifier worker over the outbox (one
//! notification per transition, counted by a loopback receiver), and no configured secret
//! in any log line or response body (`secrets.rs`).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use webhook_console::ConsoleSettings;
use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode};
use webhook_core::http::{route_for, RawRequest, RawResponse};
use webhook_core::model::{Source, Tenant};
use webhook_core::notify::worker::{drain_once, WorkerSettings};
use webhook_core::notify::{Notifier, Target};
use webhook_core::ops::credentials::NewValue;
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::sources::invoice::Invoice;
use webhook_core::sources::pancake::Pancake;
use webhook_core::store::{OperatorStore, StoredEntity};
use webhook_tests::events::{self, repo_root, serve_in_background, SourcesHarness};
use webhook_tests::inspect;
use webhook_tests::logs::Buffer;
use webhook_tests::receiver::Receiver;
use webhook_tests::samples::invoice_key;

/// The samples' own time (2025-09-05T10:45:00Z).
const NOW: i64 = 1_757_069_100;
const REDELIVERIES: usize = 100;
const CONCURRENT: usize = 16;
const NOTIFY_SECRET: &str = "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=";

const SOURCES: [(Source, &str); 5] = [
    (Source::Pancake, "pancake"),
    (Source::PancakePos, "pancake-pos"),
    (Source::Abaha, "abaha"),
    (Source::Fulfilment, "fulfilment"),
    (Source::Invoice, "invoice"),
];

// ---- captured logs: one global subscriber for this test binary ------------------------

fn logs() -> &'static Buffer {
    webhook_tests::logs::captured()
}

// ---- the rig: every source's handler over one in-memory store ------------------------

/// The shared every-source harness, with this binary's logs captured, plus the helpers these
/// tests read the store with.
struct Rig(SourcesHarness);

impl Deref for Rig {
    type Target = SourcesHarness;

    fn deref(&self) -> &SourcesHarness {
        &self.0
    }
}

impl Rig {
    fn new(env: &Env, mode: Mode) -> Rig {
        logs();
        Rig(SourcesHarness::every_source(env, mode, NOW))
    }

    /// Local mode with no settings: the development credentials the samples are signed with.
    fn local() -> Rig {
        Rig::new(&Env::default(), Mode::Local)
    }

    /// Every entity the stored events name (version, state, data, last event), by stream:
    /// the read API reaches entities through the events naming them.
    async fn entities(&self) -> BTreeMap<String, Option<StoredEntity>> {
        self.snapshot().await.entities
    }

    /// Transition ids of the entities the stored events name, all of them or only the
    /// queued ones, sorted.
    async fn transition_ids(&self, queued_only: bool) -> Vec<String> {
        let mut ids: Vec<String> = self
            .snapshot()
            .await
            .all_transitions()
            .filter(|(_, t)| !queued_only || t.queued)
            .map(|(_, t)| t.transition_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// How many live messages the queue holds; there is no dead letter.
    async fn queue_depth(&self) -> usize {
        assert_eq!(
            self.outbox.dead_letters().await.unwrap(),
            0,
            "no dead letter"
        );
        self.outbox.depth().await.unwrap() as usize
    }

    /// The transition ids of every queued message, sorted; there is no dead letter. Drains
    /// the queue (through its port): for a rig no notifier reads.
    async fn take_queued_ids(&self) -> Vec<String> {
        assert_eq!(
            self.outbox.dead_letters().await.unwrap(),
            0,
            "no dead letter"
        );
        let mut ids: Vec<String> = inspect::drain_bodies(&self.outbox)
            .await
            .iter()
            .map(|m| m["transitionId"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

// ---- samples and requests ------------------------------------------------------------

struct Sample {
    source: Source,
    name: String,
    req: RawRequest,
}

/// Every API Gateway v2 event under events/<source>/, as the handler receives it.
fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for (source, dir) in SOURCES {
        for (stem, req) in events::samples(dir) {
            let path = repo_root()
                .join("events")
                .join(dir)
                .join(format!("{stem}.json"));
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(
                event["isBase64Encoded"], false,
                "{path:?}: plain-text samples"
            );
            out.push(Sample {
                source,
                name: format!("{dir}/{stem}.json"),
                req,
            });
        }
    }
    assert!(out.len() >= 30, "events/ samples found: {}", out.len());
    out
}

/// The `duplicate` flag of a success response, where its shape carries one (Abaha's
/// `{"status":200,"message":"OK"}` does not).
fn duplicate_flag(resp: &RawResponse) -> Option<bool> {
    resp.body
        .get("duplicate")
        .or_else(|| resp.body.get("data").and_then(|d| d.get("duplicate")))
        .and_then(Value::as_bool)
}

const INVOICE_ID: &str = "inv-permutations-1";

fn invoice_req(id: &str, from: &str, to: &str, timestamp: &str, secret: &str) -> RawRequest {
    let body = json!({
        "event": "invoice.updated",
        "timestamp": timestamp,
        "data": {"invoiceId": id, "state": to, "previousState": from, "title": "USDT"},
    })
    .to_string();
    RawRequest::post(route_for(Source::Invoice), body.clone())
        .with_header("Content-Type", "application/json")
        .with_header("X-Signature", &Invoice::sign(body.as_bytes(), secret))
}

fn fixture(source_dir: &str, name: &str) -> String {
    std::fs::read_to_string(
        repo_root()
            .join("shared/fixtures")
            .join(source_dir)
            .join(name),
    )
    .unwrap()
}

// ---- the notifier, against the loopback receiver ----------------------------------

fn notifier(rig: &Rig, env: &Env) -> Notifier {
    Notifier::new(
        Target::from_env(env).unwrap(),
        Arc::new(rig.store.clone()),
        Arc::new(FixedClock::at_unix(NOW)),
    )
}

fn notify_env(url: &str) -> Env {
    Env::from_pairs([("NOTIFY_URL", url), ("NOTIFY_SECRET", NOTIFY_SECRET)])
}

/// Runs the worker until nothing is visible; returns how many messages it handled.
async fn drain(rig: &Rig, notifier: &Notifier) -> usize {
    let settings = WorkerSettings {
        visibility: Duration::from_secs(60),
        ..WorkerSettings::default()
    };
    let mut total = 0;
    for _ in 0..10_000 {
        let n = drain_once(&rig.outbox, notifier, &settings).await;
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("the outbox never drained");
}

fn exactly_once(ids: &[String]) -> BTreeMap<String, usize> {
    ids.iter().map(|id| (id.clone(), 1)).collect()
}

// ---- 100× redelivery -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_redelivered_100_times_is_stored_and_notified_once() {
    let rig = Rig::local();
    let (receiver, url) = Receiver::start(NOTIFY_SECRET).await;
    let notifier = notifier(&rig, &notify_env(&url));
    let samples = samples();

    for s in &samples {
        let resp = rig.post(s.source, &s.req).await;
        assert_eq!(resp.status, 200, "{}: {:?}", s.name, resp.body);
        assert_ne!(duplicate_flag(&resp), Some(true), "{}", s.name);
    }
    let events = rig.events().await;
    assert_eq!(events.len(), samples.len(), "one event per sample");
    let entities = rig.entities().await;
    let transitions = rig.transition_ids(false).await;
    let queued = rig.transition_ids(true).await;
    assert!(
        queued.len() >= 5,
        "the samples carry transitions: {queued:?}"
    );
    // One queued message per transition: as many as queued transitions here, and the
    // receiver's count at the end names each of them exactly once (the queue is read
    // through its port only by the notifier, which must find the messages).
    assert_eq!(
        rig.queue_depth().await,
        queued.len(),
        "one outbox message per transition"
    );

    for round in 0..REDELIVERIES {
        if round == REDELIVERIES / 2 {
            // Half the redeliveries arrive before the notifier ran, half after.
            assert_eq!(
                rig.queue_depth().await,
                queued.len(),
                "redeliveries queue nothing new"
            );
            assert_eq!(drain(&rig, &notifier).await, queued.len());
        }
        for s in &samples {
            let resp = rig.post(s.source, &s.req).await;
            assert_eq!(
                resp.status, 200,
                "{} round {round}: {:?}",
                s.name, resp.body
            );
            if s.source != Source::Abaha {
                assert_eq!(
                    duplicate_flag(&resp),
                    Some(true),
                    "{}: {:?}",
                    s.name,
                    resp.body
                );
            }
        }
    }
    // Abaha's response has no duplicate flag: ask the pipeline itself, for every source.
    let mut keys = std::collections::BTreeSet::new();
    for s in &samples {
        let provider = rig.handlers[&s.source].provider().clone();
        let accepted = rig
            .pipeline
            .ingest(provider.as_ref(), &s.req)
            .await
            .unwrap();
        assert!(accepted.duplicate, "{}", s.name);
        assert!(keys.insert(accepted.event_key), "{}: its own event", s.name);
    }

    assert_eq!(rig.events().await, events);
    assert_eq!(
        rig.entities().await,
        entities,
        "entities unchanged after the first delivery"
    );
    assert_eq!(
        rig.transition_ids(false).await,
        transitions,
        "no new transition rows"
    );
    assert_eq!(
        rig.queue_depth().await,
        0,
        "published transitions are not re-queued"
    );
    assert_eq!(drain(&rig, &notifier).await, 0);
    assert_eq!(
        receiver.counts(),
        exactly_once(&queued),
        "one notification per transition"
    );
    println!(
        "redelivery: {} samples x {} deliveries, {} transitions, {} notifications",
        samples.len(),
        REDELIVERIES + 2,
        queued.len(),
        receiver.counts().len()
    );
}

// ---- concurrent identical deliveries ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_deliveries_have_one_winner() {
    let mut with_transition = 0;
    for s in samples() {
        // What one delivery records, on a fresh store.
        let reference = Rig::local();
        assert_eq!(reference.post(s.source, &s.req).await.status, 200);
        let expected_transitions = reference.transition_ids(false).await.len();

        let rig = Rig::local();
        let provider = rig.handlers[&s.source].provider().clone();
        let req = Arc::new(s.req.clone());
        let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT));
        let tasks: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (pipeline, provider, req, barrier) = (
                    rig.pipeline.clone(),
                    provider.clone(),
                    req.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    pipeline.ingest(provider.as_ref(), &req).await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            let accepted = t
                .await
                .expect("no panic")
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            winners += usize::from(!accepted.duplicate);
        }
        assert_eq!(winners, 1, "{}: exactly one non-duplicate", s.name);
        assert_eq!(rig.events().await.len(), 1, "{}", s.name);
        let transitions = rig.transition_ids(false).await;
        assert_eq!(transitions.len(), expected_transitions, "{}", s.name);
        assert_eq!(
            rig.take_queued_ids().await,
            rig.transition_ids(true).await,
            "{}",
            s.name
        );
        if s.source == Source::Fulfilment && s.name.contains("order") || s.source == Source::Invoice
        {
            assert_eq!(transitions.len(), 1, "{}: one transition", s.name);
        }
        with_transition += usize::from(!transitions.is_empty());
    }
    assert!(
        with_transition >= 8,
        "{with_transition} samples carried a transition"
    );
}

// ---- every order of an invoice's history ---------------------------------------------

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// Ready→Wait→Pending→Complete, delivered in `order` (indices into the history, a repeated
/// index being a byte-identical redelivery), then notified.
async fn deliver_history(history: &[RawRequest], order: &[usize]) {
    let rig = Rig::local();
    let (receiver, url) = Receiver::start(NOTIFY_SECRET).await;
    let notifier = notifier(&rig, &notify_env(&url));
    let mut duplicates = 0;
    for &i in order {
        let resp = rig.post(Source::Invoice, &history[i]).await;
        assert_eq!(resp.status, 200, "order {order:?}: {:?}", resp.body);
        duplicates += usize::from(duplicate_flag(&resp) == Some(true));
    }
    assert_eq!(duplicates, order.len() - history.len(), "order {order:?}");
    let entity = rig
        .store
        .entity(&invoice_key(INVOICE_ID))
        .await
        .unwrap()
        .expect("invoice stored");
    assert_eq!(entity.state.as_deref(), Some("Complete"), "order {order:?}");
    let transitions = rig
        .store
        .transitions(&invoice_key(INVOICE_ID))
        .await
        .unwrap();
    let steps: Vec<_> = transitions
        .iter()
        .map(|t| (t.from.clone().unwrap_or_default(), t.to.clone()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("Ready", "Wait"),
        ("Wait", "Pending"),
        ("Pending", "Complete"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        steps, expected,
        "order {order:?}: the history, in version order"
    );
    assert!(
        transitions.iter().all(|t| t.queued && t.flag.is_none()),
        "order {order:?}: {transitions:?}"
    );
    let queued = rig.transition_ids(true).await;
    // Each queued once: as many messages as queued transitions, and (below) the notifier
    // delivers each of those ids exactly once.
    assert_eq!(
        rig.queue_depth().await,
        queued.len(),
        "order {order:?}: each queued once"
    );
    assert_eq!(drain(&rig, &notifier).await, 3, "order {order:?}");
    assert_eq!(receiver.counts(), exactly_once(&queued), "order {order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_of_an_invoice_history_ends_complete_with_each_transition_queued_once() {
    let secret = webhook_core::sources::invoice::DEV_SECRET;
    let history = [
        invoice_req(
            INVOICE_ID,
            "Ready",
            "Wait",
            "2025-09-05T10:00:00.000Z",
            secret,
        ),
        invoice_req(
            INVOICE_ID,
            "Wait",
            "Pending",
            "2025-09-05T10:05:00.000Z",
            secret,
        ),
        invoice_req(
            INVOICE_ID,
            "Pending",
            "Complete",
            "2025-09-05T10:10:00.000Z",
            secret,
        ),
    ];
    let orders = permutations(3);
    assert_eq!(orders.len(), 6);
    for order in &orders {
        deliver_history(&history, order).await;
    }
    // Plus a redelivery of each event in turn: 4 deliveries, every order (3 × 24).
    let mut runs = 0;
    for dup in 0..3 {
        for p in permutations(4) {
            let order: Vec<usize> = p
                .into_iter()
                .map(|i| if i == 3 { dup } else { i })
                .collect();
            deliver_history(&history, &order).await;
            runs += 1;
        }
    }
    assert_eq!(runs, 72);
}

mod secrets;
