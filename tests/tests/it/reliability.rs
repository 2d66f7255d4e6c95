//! Reliability runs (issue 7), over the embedded SQLite store through the real `Handler` of
//! every source: 100× redelivery of every events/ sample, 16 concurrent identical
//! deliveries, every order of an invoice's history, the notifier worker over the outbox (one
//! notification per transition, counted by a loopback receiver), and no configured secret
//! in any log line or response body.

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

// ---- no secret in any log line or response -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_logs_or_responses() {
    let logs = logs();
    let (receiver, url) = Receiver::start(NOTIFY_SECRET).await;
    let secrets = [
        ("PANCAKE_API_KEYS", "pk-old-Q7e1x9", "pk-live-Zx81m2"),
        (
            "PANCAKE_SIGNING_SECRETS",
            "psig-old-Kd02a",
            "psig-live-Kd02b",
        ),
        ("PANCAKE_POS_API_KEYS", "pos-old-Mn55c", "pos-live-Mn55d"),
        ("ABAHA_TOKENS", "abaha-old-Rt31e", "abaha-live-Rt31f"),
        ("FULFILMENT_SECRETS", "ful-old-Wq09g", "ful-live-Wq09h"),
        ("INVOICE_SECRETS", "inv-old-Lp77i", "inv-live-Lp77j"),
    ];
    let mut env = Env::from_pairs(
        secrets
            .iter()
            .map(|(var, old, live)| (var.to_string(), format!("{old},{live}"))),
    );
    env.set("INVOICE_TOLERANCE_SECS", "300");
    for binding in &BINDINGS {
        env.set(binding.var, binding.json());
    }
    env.set("CONSOLE_TOKEN", CONSOLE_TOKEN);
    // The URL's own credentials are secrets too (a receiver may authenticate by them).
    let (scheme_host, path) = url.split_once("/notify").unwrap();
    let notify_url = format!(
        "{}://url-user:url-pass-Hh4k@{}/notify{path}?token=url-token-Jj6m",
        "http",
        scheme_host.trim_start_matches("http://")
    );
    env.set("NOTIFY_URL", notify_url.as_str());
    env.set("NOTIFY_SECRET", NOTIFY_SECRET);
    let mut forbidden: Vec<String> = secrets
        .iter()
        .flat_map(|(_, old, live)| [old.to_string(), live.to_string()])
        .collect();
    forbidden.extend(
        BINDINGS
            .iter()
            .flat_map(|b| [b.own_value, b.other_value].map(String::from)),
    );
    forbidden.extend([
        CONSOLE_TOKEN.to_string(),
        NOTIFY_SECRET.to_string(),
        NOTIFY_SECRET.trim_start_matches("whsec_").to_string(),
        "url-pass-Hh4k".to_string(),
        "url-token-Jj6m".to_string(),
    ]);

    let rig = Rig::new(&env, Mode::Lambda);
    let stored = store_credentials(&rig).await;
    forbidden.extend(stored.iter().map(|c| c.value.clone()));
    let live = |var: &str| secrets.iter().find(|s| s.0 == var).unwrap().2;
    // A wrong credential that is another source's secret: it must not be echoed either.
    let foreign = live("INVOICE_SECRETS");
    let mut seen = Seen::default();
    let mut check =
        |label: &str, resp: RawResponse, expected: u16| seen.check(label, resp, expected);

    // Pancake: API key (header or query) + signature.
    let body = fixture("pancake", "order_created.json");
    let signed = |b: &str, key: &str, sig_secret: &str| {
        RawRequest::post(route_for(Source::Pancake), b)
            .with_header("X-API-Key", key)
            .with_header(
                "X-Pancake-Signature",
                &Pancake::sign(b.as_bytes(), sig_secret),
            )
    };
    let k = live("PANCAKE_API_KEYS");
    let s = live("PANCAKE_SIGNING_SECRETS");
    check(
        "pancake valid",
        rig.post(Source::Pancake, &signed(&body, k, s)).await,
        200,
    );
    check(
        "pancake bad key",
        rig.post(Source::Pancake, &signed(&body, foreign, s)).await,
        401,
    );
    check(
        "pancake bad sig",
        rig.post(Source::Pancake, &signed(&body, k, foreign)).await,
        401,
    );
    let query = RawRequest::post(route_for(Source::Pancake), "{\"payload\":")
        .with_query("api_key", k)
        .with_header("X-Pancake-Signature", &Pancake::sign(b"{\"payload\":", s));
    check(
        "pancake malformed",
        rig.post(Source::Pancake, &query).await,
        400,
    );

    // Pancake POS: the configured key header, X-API-Key or ?api_key=.
    let body = fixture("pancake_pos", "order_created.json");
    let k = live("PANCAKE_POS_API_KEYS");
    let pos = |b: &str, h: &str, v: &str| {
        RawRequest::post(route_for(Source::PancakePos), b).with_header(h, v)
    };
    check(
        "pos valid",
        rig.post(Source::PancakePos, &pos(&body, "X-Webhook-Secret", k))
            .await,
        200,
    );
    check(
        "pos bad key",
        rig.post(Source::PancakePos, &pos(&body, "X-API-Key", foreign))
            .await,
        401,
    );
    check(
        "pos malformed",
        rig.post(Source::PancakePos, &pos("[1,", "X-Webhook-Secret", k))
            .await,
        400,
    );
    let q = RawRequest::post(route_for(Source::PancakePos), "null").with_query("api_key", k);
    check("pos null body", rig.post(Source::PancakePos, &q).await, 400);

    // Abaha: a token header.
    let body = fixture("abaha", "order.json");
    let k = live("ABAHA_TOKENS");
    let ab = |b: &str, v: &str| {
        RawRequest::post(route_for(Source::Abaha), b).with_header("X-Abaha-Token", v)
    };
    check(
        "abaha valid",
        rig.post(Source::Abaha, &ab(&body, k)).await,
        200,
    );
    check(
        "abaha bad token",
        rig.post(Source::Abaha, &ab(&body, foreign)).await,
        401,
    );
    check(
        "abaha malformed",
        rig.post(Source::Abaha, &ab("{\"cart_code\":", k)).await,
        400,
    );

    // Fulfilment: sha256(body ++ secret).
    let body = fixture("fulfilment", "order_change_status.json");
    let k = live("FULFILMENT_SECRETS");
    let ful = |b: &str, sig: &str| {
        RawRequest::post(route_for(Source::Fulfilment), b)
            .with_header("X-Event-Signature", sig)
            .with_header("X-Event-Delivery", "secret-test-1")
    };
    let good = Fulfilment::sign(body.as_bytes(), k);
    check(
        "fulfilment valid",
        rig.post(Source::Fulfilment, &ful(&body, &good)).await,
        200,
    );
    check(
        "fulfilment bad sig",
        rig.post(Source::Fulfilment, &ful(&body, foreign)).await,
        401,
    );
    let bad_body = "{\"event\":";
    let sig = Fulfilment::sign(bad_body.as_bytes(), k);
    check(
        "fulfilment malformed",
        rig.post(Source::Fulfilment, &ful(bad_body, &sig)).await,
        400,
    );

    // Invoice: HMAC, inside the replay window, and a replay.
    let k = live("INVOICE_SECRETS");
    let valid = invoice_req(
        "inv-secret-test",
        "Ready",
        "Pending",
        "2025-09-05T10:44:00.000Z",
        k,
    );
    check(
        "invoice valid",
        rig.post(Source::Invoice, &valid).await,
        200,
    );
    let replay = invoice_req(
        "inv-secret-test",
        "Pending",
        "Complete",
        "2025-09-01T10:44:00.000Z",
        k,
    );
    check(
        "invoice replay",
        rig.post(Source::Invoice, &replay).await,
        401,
    );
    let wrong = invoice_req(
        "inv-secret-test",
        "Ready",
        "Pending",
        "2025-09-05T10:44:00.000Z",
        live("FULFILMENT_SECRETS"),
    );
    check(
        "invoice bad sig",
        rig.post(Source::Invoice, &wrong).await,
        401,
    );
    let mut presented = RawRequest::post(route_for(Source::Invoice), "{\"event\":");
    presented = presented.with_header("X-Signature", live("ABAHA_TOKENS"));
    check(
        "invoice secret as signature",
        rig.post(Source::Invoice, &presented).await,
        401,
    );

    bound_credentials_answer_only_their_tenants(&rig, &mut seen).await;
    stored_credentials_answer_only_their_tenants(&rig, &stored, &mut seen).await;
    console_pages_with_and_without_the_token(&rig, &env, &mut seen).await;

    // The notifier, configured from the environment (its construction logs the target).
    let notifier = notifier(&rig, &env);
    let queued = rig.transition_ids(true).await;
    assert!(queued.len() >= 2, "{queued:?}");
    assert_eq!(drain(&rig, &notifier).await, queued.len());
    assert_eq!(receiver.counts(), exactly_once(&queued));

    let captured = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(captured.contains("webhook accepted") && captured.contains("webhook rejected"));
    assert!(captured.contains("Http"), "the notifier target was logged");
    for secret in &forbidden {
        assert!(
            !captured.contains(secret.as_str()),
            "a log line contains {secret:?}"
        );
        for (label, body) in &seen.responses {
            assert!(
                !body.contains(secret.as_str()),
                "{label} response contains {secret:?}"
            );
        }
    }
    println!(
        "secrets: {} requests, {} bytes of logs, {} secrets checked",
        seen.responses.len(),
        captured.len(),
        forbidden.len()
    );
}

/// What a leak test was answered, as text, by label: the webhook responses' bodies, and the
/// console's pages with their headers.
#[derive(Default)]
struct Seen {
    responses: Vec<(String, String)>,
}

impl Seen {
    /// Keeps `resp`, which must have answered `expected`.
    fn check(&mut self, label: &str, resp: RawResponse, expected: u16) {
        assert_eq!(resp.status, expected, "{label}: {:?}", resp.body);
        let body = String::from_utf8_lossy(&resp.body_bytes()).to_string();
        self.responses.push((label.to_string(), body));
    }

    /// Keeps a console page (its headers too: a cookie could carry the token).
    async fn page(&mut self, label: &str, resp: reqwest::Response, expected: u16) {
        assert_eq!(resp.status().as_u16(), expected, "{label}");
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap();
        self.responses
            .push((label.to_string(), format!("{headers}\n{body}")));
    }
}

const CONSOLE_TOKEN: &str = "console-token-Yc58n-4f1d0b2c9e7a6385d";

/// A `_BY_TENANT` variable of the leak test: a value bound to the tenant the test's events
/// name, and one bound to another tenant.
struct Binding {
    source: Source,
    var: &'static str,
    tenant: &'static str,
    own_value: &'static str,
    other_value: &'static str,
}

impl Binding {
    fn json(&self) -> String {
        json!({self.tenant: [self.own_value], "tenant-elsewhere": [self.other_value]}).to_string()
    }
}

/// The tenant the leak test's events name (invoice's are always `default`'s).
const TENANT: &str = "tenant-leak";

const BINDINGS: [Binding; 5] = [
    Binding {
        source: Source::Pancake,
        var: "PANCAKE_API_KEYS_BY_TENANT",
        tenant: TENANT,
        own_value: "pk-bound-Vb40a",
        other_value: "pk-elsewhere-Vb40b",
    },
    Binding {
        source: Source::PancakePos,
        var: "PANCAKE_POS_API_KEYS_BY_TENANT",
        tenant: TENANT,
        own_value: "pos-bound-Vb41a",
        other_value: "pos-elsewhere-Vb41b",
    },
    Binding {
        source: Source::Abaha,
        var: "ABAHA_TOKENS_BY_TENANT",
        tenant: TENANT,
        own_value: "abaha-bound-Vb42a",
        other_value: "abaha-elsewhere-Vb42b",
    },
    Binding {
        source: Source::Fulfilment,
        var: "FULFILMENT_SECRETS_BY_TENANT",
        tenant: TENANT,
        own_value: "ful-bound-Vb43a",
        other_value: "ful-elsewhere-Vb43b",
    },
    Binding {
        source: Source::Invoice,
        var: "INVOICE_SECRETS_BY_TENANT",
        tenant: Tenant::DEFAULT,
        own_value: "inv-bound-Vb44a",
        other_value: "inv-elsewhere-Vb44b",
    },
];

/// An event of `source` for `tenant` (ignored by invoice), distinct per `n`.
fn event_of(source: Source, tenant: &str, n: u64) -> String {
    match source {
        Source::Pancake => json!({"payload": {"eventType": "order_created", "pageId": tenant,
            "data": {"id": n, "status": 0}}}),
        Source::PancakePos => json!({"payload": {"eventType": "order_created", "shopId": tenant,
            "data": {"id": n, "status": 0}}}),
        Source::Abaha => {
            json!({"id": n, "cart_code": format!("C{n}"), "status": "1", "store_id": tenant})
        }
        Source::Fulfilment => json!({"event": "ORDER.CHANGE_STATUS", "payload": {
            "merchant_code": tenant, "to_status": "PACKED", "order": {"id": n}}}),
        Source::Invoice => json!({"event": "invoice.updated", "timestamp": "2025-09-05T10:44:00Z",
            "data": {"invoiceId": format!("inv-leak-{n}"), "state": "Pending",
                "previousState": "Ready"}}),
    }
    .to_string()
}

/// `body` presenting `value` as `source`'s credential (Pancake's requests also carry the
/// configured signing secret's signature, which is required whenever one is set).
fn presenting(source: Source, body: &str, value: &str) -> RawRequest {
    let req = events::credentialed(source, body.as_bytes(), value);
    match source {
        Source::Pancake => req.with_header(
            "X-Pancake-Signature",
            &Pancake::sign(body.as_bytes(), "psig-live-Kd02b"),
        ),
        _ => req,
    }
}

/// The environment's bindings: each value admits its own tenant's event and is refused
/// (403 `tenant_not_bound`) for another's.
async fn bound_credentials_answer_only_their_tenants(rig: &Rig, seen: &mut Seen) {
    for (n, b) in (100..).step_by(2).zip(&BINDINGS) {
        let own = presenting(b.source, &event_of(b.source, b.tenant, n), b.own_value);
        let label = format!("{} bound, own tenant", b.source);
        seen.check(&label, rig.post(b.source, &own).await, 200);
        let other = presenting(
            b.source,
            &event_of(b.source, b.tenant, n + 1),
            b.other_value,
        );
        let label = format!("{} bound, another tenant", b.source);
        seen.check(&label, rig.post(b.source, &other).await, 403);
    }
}

/// A credential stored in the SQLite file's table: its source, tenant and generated value.
struct Stored {
    source: Source,
    tenant: &'static str,
    value: String,
}

/// Generates a credential of every source in the table, as `webhooks credentials add` does
/// (the value is printed once, then only its hash or the encrypted secret is kept), before
/// any request: a lookup that misses is cached, as in a Lambda.
async fn store_credentials(rig: &Rig) -> Vec<Stored> {
    let op = webhook_core::runtime::sqlite_operator_over(&rig.store);
    let mut stored = Vec::new();
    for source in Source::ALL {
        let tenant = match source {
            Source::Invoice => Tenant::DEFAULT,
            _ => "tenant-stored",
        };
        let issued = op
            .add_credential(source, &Tenant::new(tenant), NewValue::Generate, None, NOW)
            .await
            .unwrap();
        let value = issued.generated.expect("a generated value");
        stored.push(Stored {
            source,
            tenant,
            value,
        });
    }
    stored
}

/// The stored credentials: each admits its tenant's event; used for another tenant's it is
/// refused (403 for a key, found by its hash; 401 for a signing secret, looked up by the
/// tenant the body claims). Invoice has the one tenant `default`.
async fn stored_credentials_answer_only_their_tenants(
    rig: &Rig,
    stored: &[Stored],
    seen: &mut Seen,
) {
    for (n, c) in (200..).step_by(2).zip(stored) {
        let own = presenting(c.source, &event_of(c.source, c.tenant, n), &c.value);
        let label = format!("{} stored, own tenant", c.source);
        seen.check(&label, rig.post(c.source, &own).await, 200);
        if c.source != Source::Invoice {
            let other = presenting(c.source, &event_of(c.source, TENANT, n + 1), &c.value);
            let refused = if c.source == Source::Fulfilment {
                401
            } else {
                403
            };
            let label = format!("{} stored, another tenant", c.source);
            seen.check(&label, rig.post(c.source, &other).await, refused);
        }
    }
}

/// The console, configured from the same environment (`CONSOLE_TOKEN`), over the store the
/// events went to: refused without the token or with a wrong one, then its pages by bearer
/// and by the login cookie.
async fn console_pages_with_and_without_the_token(rig: &Rig, env: &Env, seen: &mut Seen) {
    let access = ConsoleSettings::from_env(env)
        .access("127.0.0.1:0".parse().unwrap(), "")
        .expect("a token console");
    let op = webhook_core::runtime::sqlite_operator_over(&rig.store);
    let base = serve_in_background(webhook_console::router(op, access, None)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, bearer: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(bearer)
            .send()
    };
    let wrong = get("/console", "not-the-console-token").await.unwrap();
    seen.page("console wrong bearer", wrong, 401).await;
    let right = get("/console/events", CONSOLE_TOKEN).await.unwrap();
    seen.page("console events by bearer", right, 200).await;
    let login = |token: &'static str| {
        client
            .post(format!("{base}/console/login"))
            .form(&[("token", token), ("next", "/console/events")])
            .send()
    };
    seen.page("console failed login", login("guess").await.unwrap(), 401)
        .await;
    let ok = login(CONSOLE_TOKEN).await.unwrap();
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    seen.page("console login", ok, 303).await;
    let session = cookie.split(';').next().unwrap().to_string();
    let page = client
        .get(format!("{base}/console/events"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    seen.page("console events by cookie", page, 200).await;
}
