//! Local end to end: the `webhooks-local` app (its routes over a SQLite file) and the
//! notifier worker over the embedded outbox, wired as its main does (`Target::from_env` with
//! NOTIFY_URL / NOTIFY_SECRET), in-process, with NOTIFY_URL at a loopback receiver that
//! verifies every Standard Webhooks signature with its own code. Samples from events/ and
//! signed fulfilment events are posted over HTTP; the receiver must get each transition
//! once, in order per entity; an outage (503s) delays delivery but loses nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use webhook_core::backends::sqlite::Outbox;
use webhook_core::clock::SystemClock;
use webhook_core::config::{Env, PipelineSettings};
use webhook_core::model::{
    scoped_body_event_id, transition_id, EntityKey, EntityKind, EventKey, Source, Tenant,
};
use webhook_core::notify::worker::{self, WorkerSettings};
use webhook_core::notify::{Notifier, Target};
use webhook_core::refusals::NoRecord;
use webhook_core::runtime;
use webhook_core::sources::fulfilment::{Fulfilment, DEV_SECRET};
use webhook_core::store::Store;
use webhook_tests::events::{repo_root, request_from_event, serve_in_background};
use webhook_tests::receiver::{Received, Receiver, Reply};

const SECRET: &str = "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=";

/// The Standard Webhooks tolerance for `webhook-timestamp` (the spec's five minutes).
const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// Signed as the spec says: the signature verifies and the timestamp is fresh.
fn signed(r: &Received) -> bool {
    r.verified && r.timestamp_within(TIMESTAMP_TOLERANCE_SECS)
}

// ---- webhooks-local in-process -------------------------------------------------------

struct Local {
    base: String,
    client: reqwest::Client,
    outbox: Outbox,
    store: Arc<dyn Store>,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Local {
    /// The app and the worker as webhooks-local's main wires them, with NOTIFY_URL set.
    async fn start(notify_url: &str) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([
            ("NOTIFY_URL", notify_url),
            ("NOTIFY_SECRET", SECRET),
            ("NOTIFY_TIMEOUT_MS", "5000"),
        ]);
        let (backends, sqlite) =
            runtime::sqlite_backends(&dir.path().join("webhooks.db"), &env).unwrap();
        let handlers = webhooks_local::handlers(&env, &backends, Arc::new(NoRecord)).unwrap();
        let max_body = PipelineSettings::from_env(&env).unwrap().max_body_bytes;
        let app = webhooks_local::app(handlers, max_body);
        let base = serve_in_background(app).await;

        let notifier = Arc::new(Notifier::new(
            Target::from_env(&env).unwrap(),
            backends.store.clone(),
            Arc::new(SystemClock),
        ));
        // Short backoff so an outage is retried quickly; receives are not bounded here.
        let settings = WorkerSettings {
            poll_interval: Duration::from_millis(20),
            batch: 10,
            batches_in_flight: 4,
            deliveries_in_flight: 16,
            visibility: Duration::from_secs(30),
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_receives: 100_000,
        };
        let (stop, stop_rx) = watch::channel(false);
        let outbox = sqlite.outbox();
        let worker = tokio::spawn(worker::run(
            Arc::new(outbox.clone()),
            notifier,
            settings,
            stop_rx,
        ));
        Local {
            base,
            client: reqwest::Client::new(),
            outbox,
            store: backends.store,
            stop,
            worker,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, headers: &[(String, String)], body: Vec<u8>) -> u16 {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// Posts an API Gateway v2 sample from events/ with its exact body and headers.
    async fn post_sample(&self, name: &str) -> u16 {
        let path = repo_root().join("events").join(name);
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_ne!(event["isBase64Encoded"], json!(true));
        let req = request_from_event(&path);
        let headers: Vec<(String, String)> = req
            .headers
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "host" | "content-length"))
            .collect();
        self.post(&req.path, &headers, req.body).await
    }

    /// A fulfilment ORDER.CHANGE_STATUS signed with the development secret.
    async fn order_status(&self, order: u64, from: &str, to: &str, minute: u32) -> u16 {
        let body = status_body(order, from, to, minute);
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (
                "x-event-signature".to_string(),
                Fulfilment::sign(body.as_bytes(), DEV_SECRET),
            ),
            ("x-event-delivery".to_string(), format!("{order}-{minute}")),
        ];
        self.post("/api/v1/fulfilment/webhook", &headers, body.into_bytes())
            .await
    }

    async fn depth(&self) -> u64 {
        self.outbox.depth().await.unwrap()
    }

    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.worker)
            .await
            .expect("the worker stops (upper bound only)")
            .unwrap();
    }
}

/// Polls `check` until it holds; the 60 s bound only keeps a broken build from hanging.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for: {what}");
}

fn transitions_of(requests: &[Received], entity_id: &str) -> Vec<(String, String)> {
    requests
        .iter()
        .map(Received::message)
        .filter(|m| m.entity.id == entity_id)
        .map(|m| (m.from.unwrap_or_default(), m.to))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// ---- tests ---------------------------------------------------------------------------

#[tokio::test]
async fn an_invoices_events_reach_the_receiver_once_in_order_and_signed() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let local = Local::start(&url).await;

    // The invoice's two transitions, each posted twice (the provider retrying).
    for sample in [
        "invoice/ready_pending.json",
        "invoice/ready_pending.json",
        "invoice/pending_complete.json",
        "invoice/pending_complete.json",
    ] {
        assert_eq!(local.post_sample(sample).await, 200, "{sample}");
    }
    eventually(
        "both transitions delivered and the queue drained",
        || async { receiver.accepted().len() >= 2 && local.depth().await == 0 },
    )
    .await;

    let requests = receiver.received();
    assert_eq!(
        requests.len(),
        2,
        "each transition notified once: {requests:?}"
    );
    assert!(requests
        .iter()
        .all(|r| signed(r) && r.answered == Some(200)));
    let invoice = "550e8400-e29b-41d4-a716-446655440000";
    assert_eq!(
        transitions_of(&requests, invoice),
        pairs(&[("Ready", "Pending"), ("Pending", "Complete")])
    );
    for r in &requests {
        assert_eq!(r.message().source, Source::Invoice);
        assert_eq!(r.id, r.message().transition_id);
    }

    // The outcome is recorded on each transition.
    let m = requests[0].message();
    let key = EntityKey::new(
        Source::Invoice,
        m.tenant.clone(),
        EntityKind::Invoice,
        invoice,
    );
    let stored = local.store.transitions(&key).await.unwrap();
    assert_eq!(stored.len(), 2);
    for t in &stored {
        let note = t.notification.as_ref().expect("outcome recorded");
        assert_eq!(
            (note.outcome.as_str(), note.status),
            ("delivered", Some(200))
        );
        assert!(t.published);
    }

    // Posting the samples again later changes nothing downstream.
    for sample in [
        "invoice/ready_pending.json",
        "invoice/pending_complete.json",
    ] {
        assert_eq!(local.post_sample(sample).await, 200);
    }
    assert_eq!(local.depth().await, 0, "nothing was queued again");
    local.shutdown().await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_receiver_outage_delays_delivery_but_loses_nothing_and_order_holds() {
    let (receiver, url) = Receiver::start(SECRET).await;
    receiver.set_down(true);
    let local = Local::start(&url).await;

    // Two orders' status histories, interleaved, posted while the receiver is down.
    let history_a = [
        ("NEW", "WAITING_CONFIRM"),
        ("WAITING_CONFIRM", "WAITING_PROCESSING"),
        ("WAITING_PROCESSING", "DELIVERING"),
        ("DELIVERING", "DELIVERED"),
    ];
    let history_b = [("NEW", "WAITING_CONFIRM"), ("WAITING_CONFIRM", "CANCELED")];
    for (i, (from, to)) in history_a.iter().enumerate() {
        assert_eq!(local.order_status(7001, from, to, i as u32).await, 200);
        if let Some((from, to)) = history_b.get(i) {
            assert_eq!(local.order_status(7002, from, to, i as u32).await, 200);
        }
    }
    eventually(
        "several delivery attempts refused during the outage",
        || async { receiver.received().len() >= 8 },
    )
    .await;
    assert!(receiver.accepted().is_empty());
    assert_eq!(local.depth().await, 6, "every transition still queued");
    assert_eq!(local.outbox.dead_letters().await.unwrap(), 0);

    // The receiver recovers.
    receiver.set_down(false);
    eventually(
        "all six transitions delivered and the queue drained",
        || async { receiver.accepted().len() >= 6 && local.depth().await == 0 },
    )
    .await;
    local.shutdown().await;

    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        6,
        "each transition accepted once: {accepted:?}"
    );
    assert_eq!(transitions_of(&accepted, "7001"), pairs(&history_a));
    assert_eq!(transitions_of(&accepted, "7002"), pairs(&history_b));

    // Across every attempt, refused ones included: all signed; within an order, never a
    // later transition before an earlier one was accepted; nothing sent after acceptance.
    let requests = receiver.received();
    assert!(requests.iter().all(signed));
    assert!(requests.iter().any(|r| r.answered == Some(503)));
    for order in ["7001", "7002"] {
        let ids: Vec<&Received> = requests
            .iter()
            .filter(|r| r.message().entity.id == order)
            .collect();
        let accepted_ids: Vec<&str> = ids
            .iter()
            .filter(|r| r.answered == Some(200))
            .map(|r| r.id.as_str())
            .collect();
        let mut position = 0;
        for r in &ids {
            let index = accepted_ids.iter().position(|id| *id == r.id).unwrap();
            assert_eq!(index, position, "order {order}: attempts out of order");
            if r.answered == Some(200) {
                position += 1;
            }
        }
    }
}

#[tokio::test]
async fn a_permanent_rejection_is_dead_lettered_and_recorded_and_the_order_goes_on() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let local = Local::start(&url).await;
    let key = EntityKey::new(
        Source::Fulfilment,
        Tenant::new("XYZ"),
        EntityKind::Order,
        "7102",
    );
    // The receiver answers 410 Gone to the order's first transition (its id is derived
    // from the event key and the entity, so it is known before posting).
    let rejected_id = transition_id(&status_key(7102, "NEW", "WAITING_CONFIRM", 0), &key);
    receiver.answer(&rejected_id, 410);
    assert_eq!(
        local.order_status(7102, "NEW", "WAITING_CONFIRM", 0).await,
        200
    );
    assert_eq!(
        local
            .order_status(7102, "WAITING_CONFIRM", "CANCELED", 1)
            .await,
        200
    );
    eventually(
        "the rejected transition dead-lettered and its successor delivered",
        || async { local.outbox.dead_letters().await.unwrap() == 1 && local.depth().await == 0 },
    )
    .await;
    let store = local.store.clone();
    local.shutdown().await;

    let stored = store.transitions(&key).await.unwrap();
    assert_eq!(stored[0].transition_id, rejected_id);
    let note = stored[0].notification.as_ref().expect("recorded");
    assert_eq!(
        (note.outcome.as_str(), note.status),
        ("failed_permanently", Some(410))
    );
    let note = stored[1].notification.as_ref().expect("recorded");
    assert_eq!(
        (note.outcome.as_str(), note.status),
        ("delivered", Some(200))
    );
    let requests = receiver.received();
    assert_eq!(
        requests.iter().filter(|r| r.id == rejected_id).count(),
        1,
        "a permanent rejection is not retried by the local worker"
    );
    assert_eq!(
        transitions_of(&receiver.accepted(), "7102"),
        pairs(&[("WAITING_CONFIRM", "CANCELED")])
    );
}

/// A receiver that holds one request until the notifier's timeout must not hold back the
/// other entities: their transitions are delivered while that request is outstanding, i.e.
/// before its retry arrives (one batch at a time, they waited behind it; under a receiver
/// that hangs 1 % of requests the outbox then grew without bound).
#[tokio::test]
async fn a_hung_delivery_does_not_hold_back_other_entities() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let local = Local::start(&url).await;
    let held = EntityKey::new(
        Source::Fulfilment,
        Tenant::new("XYZ"),
        EntityKind::Order,
        "7200",
    );
    let held_id = transition_id(&status_key(7200, "NEW", "WAITING_CONFIRM", 0), &held);
    receiver.script(&held_id, &[Reply::Hang]);
    assert_eq!(
        local.order_status(7200, "NEW", "WAITING_CONFIRM", 0).await,
        200
    );
    let others = 40;
    for order in 7201..7201 + others {
        assert_eq!(
            local.order_status(order, "NEW", "WAITING_CONFIRM", 0).await,
            200
        );
    }
    eventually(
        "every transition delivered and the queue drained",
        || async { receiver.accepted().len() as u64 == others + 1 && local.depth().await == 0 },
    )
    .await;
    local.shutdown().await;

    let requests = receiver.received();
    let attempts: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].id == held_id)
        .collect();
    assert_eq!(attempts.len(), 2, "held once, then accepted on its retry");
    let before_retry = requests[..attempts[1]]
        .iter()
        .filter(|r| r.id != held_id && r.answered == Some(200))
        .count() as u64;
    assert_eq!(
        before_retry, others,
        "every other entity was delivered while the held request was outstanding"
    );
}

/// The body [`Local::order_status`] posts.
fn status_body(order: u64, from: &str, to: &str, minute: u32) -> String {
    json!({
        "event": "ORDER.CHANGE_STATUS",
        "payload": {
            "merchant_code": "XYZ", "from_status": from, "to_status": to,
            "order": {"id": order, "status": to,
                      "updated_at": format!("2025-09-05T10:{minute:02}:00Z")}
        }
    })
    .to_string()
}

/// The key [`Local::order_status`]'s event is stored under: its merchant and body hash
/// (ARCHITECTURE §4), known before posting.
fn status_key(order: u64, from: &str, to: &str, minute: u32) -> EventKey {
    let body = status_body(order, from, to, minute);
    let id = scoped_body_event_id(&Tenant::new("XYZ"), body.as_bytes());
    EventKey::new(Source::Fulfilment, &id)
}
