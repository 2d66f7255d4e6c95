//! The notifier Lambda's batch handler against a loopback receiver (axum on 127.0.0.1:0)
//! scripted per `webhook-id` to answer 200 / 500 / 429 / 410 / hang: the partial batch
//! response names exactly the failed message ids (with the FIFO group rule), every request
//! carries a Standard Webhooks signature that the receiver verifies with its own code, a
//! known vector computed independently (Python's hmac) matches, outcomes are recorded on
//! the transitions, and a redelivered SQS message is not notified twice.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};

use webhook_core::backends::sqlite::SqliteStore;
use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::http::RawRequest;
use webhook_core::model::{Source, TransitionMessage};
use webhook_core::notify::{batch, Notifier, Target};
use webhook_core::pipeline::Pipeline;
use webhook_core::queue::AlreadyQueued;
use webhook_core::sources::fulfilment::{Fulfilment, DEV_SECRET};
use webhook_core::sources::provider_from_env;
use webhook_core::store::{OperatorStore, Store};
use webhook_tests::events::repo_root;
use webhook_tests::inspect;
use webhook_tests::receiver::{Receiver, Reply};
use webhook_tests::samples::order_key;

/// `whsec_` + base64(sha256("webhook-tests notifier vector key")).
const SECRET: &str = "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=";
/// The notifier's clock (2025-09-05T10:45:00Z): every `webhook-timestamp` in these tests.
const NOW: i64 = 1_757_069_100;
/// Long enough for a loaded CI machine to answer on loopback; the `hang` reply outlasts it.
const TIMEOUT_MS: u64 = 2_000;

// ---- transitions made by the real ingest pipeline --------------------------------------

struct Harness {
    store: SqliteStore,
    pipeline: Pipeline,
    deliveries: u64,
}

impl Harness {
    fn new() -> Self {
        let store = SqliteStore::in_memory().unwrap();
        let pipeline = Pipeline::new(
            Arc::new(store.clone()),
            // The embedded store writes the outbox row in the event's own transaction: its
            // queue is the null adapter, as `runtime::sqlite_backends` wires it.
            Arc::new(AlreadyQueued),
            Arc::new(FixedClock::at_unix(NOW)),
            PipelineSettings::default(),
        );
        Harness {
            store,
            pipeline,
            deliveries: 0,
        }
    }

    /// Ingests a signed fulfilment ORDER.CHANGE_STATUS and returns the queued transition.
    async fn order_status(
        &mut self,
        order: u64,
        from: &str,
        to: &str,
        updated_at: &str,
    ) -> TransitionMessage {
        self.deliveries += 1;
        let body = json!({
            "event": "ORDER.CHANGE_STATUS",
            "payload": {
                "merchant_code": "XYZ", "from_status": from, "to_status": to,
                "order": {"id": order, "code": format!("dh{order}"), "status": to, "updated_at": updated_at}
            }
        })
        .to_string();
        let req = RawRequest::post("/api/v1/fulfilment/webhook", body.as_bytes())
            .with_header("content-type", "application/json")
            .with_header(
                "x-event-signature",
                &Fulfilment::sign(body.as_bytes(), DEV_SECRET),
            )
            .with_header(
                "x-event-delivery",
                &format!("9{order}{:03}", self.deliveries),
            );
        let provider = provider_from_env(Source::Fulfilment, &Env::default(), Mode::Local).unwrap();
        let accepted = self.pipeline.ingest(provider.as_ref(), &req).await.unwrap();
        assert_eq!(accepted.published, 1, "one transition queued");
        // The embedded store queues the transition in its outbox with the event; the body
        // there is what SQS would carry. Taken off the queue (through its port) as it comes,
        // so it is the one message there.
        let queued = inspect::drain_queue(&self.store.outbox()).await;
        assert_eq!(queued.len(), 1, "one message queued: {queued:?}");
        serde_json::from_str(&queued[0].body).unwrap()
    }

    fn notifier(&self, target: Target) -> Notifier {
        Notifier::new(
            target,
            Arc::new(self.store.clone()),
            Arc::new(FixedClock::at_unix(NOW)),
        )
    }
}

fn http_target(url: &str) -> Target {
    Target::from_env(&Env::from_pairs([
        ("NOTIFY_URL", url.to_string()),
        ("NOTIFY_SECRET", SECRET.to_string()),
        ("NOTIFY_TIMEOUT_MS", TIMEOUT_MS.to_string()),
    ]))
    .unwrap()
}

/// An SQS FIFO record as Lambda hands it over.
fn record(message_id: &str, body: &str, group: &str, seq: u64, receive_count: u32) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": "1757069100000",
            "SequenceNumber": format!("{:020}", 18_897_437_582_612_254_720_u128 + seq as u128),
            "MessageGroupId": group,
            "MessageDeduplicationId": format!("dedup-{message_id}"),
            "SenderId": "AROAEXAMPLE:ingest",
            "ApproximateFirstReceiveTimestamp": "1757069100120"
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-southeast-1:123456789012:webhook-transitions.fifo",
        "awsRegion": "ap-southeast-1"
    })
}

fn transition_record(message_id: &str, m: &TransitionMessage, seq: u64, receive: u32) -> Value {
    record(
        message_id,
        &serde_json::to_string(m).unwrap(),
        &m.group_id(),
        seq,
        receive,
    )
}

fn sqs_event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// The batch of the FIFO group rule's test: six groups of transitions (stored through the
/// pipeline) interleaved as SQS may hand them out, a poison message among them, and the
/// receiver's scripted answers: A (order 1) ok, 500, then one that must not be attempted;
/// B ok; C 429; D 410 then one not attempted; E a hang past the timeout; F ok.
struct Groups {
    a1: TransitionMessage,
    a2: TransitionMessage,
    b1: TransitionMessage,
    c1: TransitionMessage,
    d1: TransitionMessage,
    e1: TransitionMessage,
    f1: TransitionMessage,
}

async fn fifo_rule_batch(h: &mut Harness, receiver: &Receiver) -> (Groups, SqsEvent) {
    // Group A (order 1): ok, 500, then a third message that must not be attempted.
    let a1 = h
        .order_status(1, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    let a2 = h
        .order_status(
            1,
            "WAITING_CONFIRM",
            "WAITING_PROCESSING",
            "2025-09-05T10:01:00Z",
        )
        .await;
    let a3 = h
        .order_status(
            1,
            "WAITING_PROCESSING",
            "DELIVERING",
            "2025-09-05T10:02:00Z",
        )
        .await;
    // Group B (order 2): ok.
    let b1 = h
        .order_status(2, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    // Group C (order 3): 429.
    let c1 = h
        .order_status(3, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    // Group D (order 4): 410 (permanent), then a message that must not be attempted.
    let d1 = h
        .order_status(4, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    let d2 = h
        .order_status(4, "WAITING_CONFIRM", "CANCELED", "2025-09-05T10:05:00Z")
        .await;
    // Group E (order 5): the receiver hangs past the notifier's timeout.
    let e1 = h
        .order_status(5, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    // Group F (order 6): ok, listed after the poison message.
    let f1 = h
        .order_status(6, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;

    receiver.script(&a2.transition_id, &[Reply::Status(500)]);
    receiver.script(&c1.transition_id, &[Reply::Status(429)]);
    receiver.script(&d1.transition_id, &[Reply::Status(410)]);
    receiver.script(&e1.transition_id, &[Reply::Hang]);

    // The groups interleave in the batch, as SQS may hand them out.
    let event = sqs_event(vec![
        transition_record("msg-a1", &a1, 1, 1),
        transition_record("msg-b1", &b1, 2, 1),
        transition_record("msg-a2", &a2, 3, 1),
        transition_record("msg-c1", &c1, 4, 1),
        transition_record("msg-d1", &d1, 5, 1),
        transition_record("msg-a3", &a3, 6, 1),
        transition_record("msg-e1", &e1, 7, 1),
        transition_record("msg-d2", &d2, 8, 1),
        // A poison message in its own group, and a healthy group after it.
        record(
            "msg-p1",
            "{\"not\":\"a transition\"",
            "fulfilment#XYZ#order#99",
            9,
            1,
        ),
        transition_record("msg-f1", &f1, 10, 1),
    ]);
    let groups = Groups {
        a1,
        a2,
        b1,
        c1,
        d1,
        e1,
        f1,
    };
    (groups, event)
}

// ---- tests ---------------------------------------------------------------------------

#[tokio::test]
async fn batch_response_names_exactly_the_failed_messages_with_the_fifo_group_rule() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let mut h = Harness::new();
    let (
        Groups {
            a1,
            a2,
            b1,
            c1,
            d1,
            e1,
            f1,
        },
        event,
    ) = fifo_rule_batch(&mut h, &receiver).await;
    let notifier = h.notifier(http_target(&url));
    let response = tokio::time::timeout(Duration::from_secs(60), batch::handle(&notifier, &event))
        .await
        .expect("the batch finishes (upper bound only)")
        .unwrap();

    assert_eq!(
        failures(&response),
        ["msg-a2", "msg-c1", "msg-d1", "msg-a3", "msg-e1", "msg-d2", "msg-p1"],
        "failed ids in batch order: a2 (500), c1 (429), d1 (410), a3 and d2 (after a failure in their group), e1 (timeout), p1 (poison)"
    );
    // The raw object Lambda expects.
    let raw = serde_json::to_value(&response).unwrap();
    assert_eq!(
        raw["batchItemFailures"][0],
        json!({"itemIdentifier": "msg-a2"})
    );
    assert_eq!(raw.as_object().unwrap().len(), 1);

    // Deferred messages were never sent; everything sent was signed and verified.
    let mut sent = receiver.ids();
    sent.sort();
    let mut expected: Vec<String> = [&a1, &a2, &b1, &c1, &d1, &e1, &f1]
        .iter()
        .map(|m| m.transition_id.clone())
        .collect();
    expected.sort();
    assert_eq!(sent, expected);
    for r in receiver.received() {
        assert!(r.verified, "signature of {} did not verify", r.id);
        assert_eq!(r.timestamp, NOW.to_string());
        assert_eq!(r.content_type, "application/json");
        assert_eq!(
            r.message().transition_id,
            r.id,
            "webhook-id is the transition id"
        );
    }
    // Within group A, a1 was sent before a2.
    let a_order: Vec<String> = receiver
        .ids()
        .into_iter()
        .filter(|id| *id == a1.transition_id || *id == a2.transition_id)
        .collect();
    assert_eq!(
        a_order,
        [a1.transition_id.clone(), a2.transition_id.clone()]
    );

    // Outcomes recorded on the transitions: delivered (status, attempt, time) and the
    // permanent failure; retried ones carry no outcome yet.
    let store: &dyn Store = &h.store;
    let a = store.transitions(&order_key(1)).await.unwrap();
    let note = a[0].notification.as_ref().expect("a1 recorded");
    assert_eq!(
        (note.outcome.as_str(), note.status, note.attempt),
        ("delivered", Some(200), 1)
    );
    assert_eq!(note.at, "2025-09-05T10:45:00Z");
    assert!(a[0].published);
    assert!(
        a[1].notification.is_none() && !a[1].published,
        "a2 will be retried"
    );
    assert!(a[2].notification.is_none(), "a3 was not attempted");
    let d = store.transitions(&order_key(4)).await.unwrap();
    let note = d[0].notification.as_ref().expect("d1 recorded");
    assert_eq!(
        (note.outcome.as_str(), note.status),
        ("failed_permanently", Some(410))
    );
    assert!(d[1].notification.is_none());
    let c = store.transitions(&order_key(3)).await.unwrap();
    assert!(
        c[0].notification.is_none(),
        "a 429 is retried, not recorded"
    );
    let e = store.transitions(&order_key(5)).await.unwrap();
    assert!(
        e[0].notification.is_none(),
        "a timeout is retried, not recorded"
    );
}

#[tokio::test]
async fn a_retried_group_is_delivered_in_order_on_the_next_receive() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let mut h = Harness::new();
    let m1 = h
        .order_status(10, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    let m2 = h
        .order_status(10, "WAITING_CONFIRM", "DELIVERING", "2025-09-05T10:01:00Z")
        .await;
    receiver.script(&m1.transition_id, &[Reply::Status(503)]);
    let notifier = h.notifier(http_target(&url));

    let first = sqs_event(vec![
        transition_record("m1", &m1, 1, 1),
        transition_record("m2", &m2, 2, 1),
    ]);
    let response = batch::handle(&notifier, &first).await.unwrap();
    assert_eq!(failures(&response), ["m1", "m2"]);
    assert_eq!(receiver.ids(), vec![m1.transition_id.clone()]);

    // SQS hands both out again, in order, with their receive counts raised.
    let second = sqs_event(vec![
        transition_record("m1", &m1, 1, 2),
        transition_record("m2", &m2, 2, 2),
    ]);
    let response = batch::handle(&notifier, &second).await.unwrap();
    assert!(failures(&response).is_empty());
    assert_eq!(
        receiver.ids(),
        [
            m1.transition_id.clone(),
            m1.transition_id.clone(),
            m2.transition_id.clone()
        ]
    );
    let t = h.store.transitions(&order_key(10)).await.unwrap();
    assert_eq!(t[0].notification.as_ref().unwrap().attempt, 2);
    assert_eq!(t[1].notification.as_ref().unwrap().attempt, 2);
}

#[tokio::test]
async fn redelivery_of_a_delivered_message_does_not_notify_twice() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let mut h = Harness::new();
    let m = h
        .order_status(20, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    let notifier = h.notifier(http_target(&url));

    let event = sqs_event(vec![transition_record("msg-1", &m, 1, 1)]);
    assert!(failures(&batch::handle(&notifier, &event).await.unwrap()).is_empty());
    assert_eq!(receiver.received().len(), 1);

    // The same SQS message again (e.g. the delete was lost), and the same transition under
    // a new message id (republished after the FIFO deduplication window).
    let again = sqs_event(vec![transition_record("msg-1", &m, 1, 2)]);
    assert!(failures(&batch::handle(&notifier, &again).await.unwrap()).is_empty());
    let republished = sqs_event(vec![transition_record("msg-2", &m, 2, 1)]);
    assert!(failures(&batch::handle(&notifier, &republished).await.unwrap()).is_empty());

    assert_eq!(
        receiver.received().len(),
        1,
        "the receiver was notified once"
    );
    let t = h.store.transitions(&order_key(20)).await.unwrap();
    let note = t[0].notification.as_ref().unwrap();
    assert_eq!((note.outcome.as_str(), note.attempt), ("delivered", 1));
}

#[tokio::test]
async fn signature_matches_an_independently_computed_vector() {
    let (receiver, url) = Receiver::start(SECRET).await;
    // Body and expected signature computed with Python's hmac/hashlib/base64:
    //   key = sha256(b"webhook-tests notifier vector key").digest()
    //   "v1," + b64encode(hmac.new(key, f"{id}.1757069100.{body}".encode(), sha256).digest())
    let id = "tr_0123456789abcdef0123456789abcdef01234567";
    let body = r#"{"transitionId":"tr_0123456789abcdef0123456789abcdef01234567","source":"invoice","tenant":"default","entity":{"kind":"invoice","id":"550e8400-e29b-41d4-a716-446655440000"},"from":"Ready","to":"Pending","occurredAt":"2025-09-05T10:44:52.516Z","eventKey":"invoice#c04ba8bcb610fab402bc6147bbaa908b30602fd8f66152281f776787afe61f33","late":false,"data":{"invoiceId":"550e8400-e29b-41d4-a716-446655440000","state":"Pending","previousState":"Ready"}}"#;
    let expected = "v1,8dt2l7+fePM4ApXOgG773VqIoDER0Mksd1kQSZ4LmqA=";

    let notifier = Notifier::new(
        http_target(&url),
        Arc::new(SqliteStore::in_memory().unwrap()),
        Arc::new(FixedClock::at_unix(NOW)),
    );
    let event = sqs_event(vec![record(
        "msg-vector",
        body,
        "invoice#default#invoice#550e8400-e29b-41d4-a716-446655440000",
        1,
        1,
    )]);
    assert!(failures(&batch::handle(&notifier, &event).await.unwrap()).is_empty());
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].timestamp, "1757069100");
    assert_eq!(got[0].signature, expected);
    assert_eq!(got[0].body, body, "the queued body is sent byte for byte");
    assert!(got[0].verified);
}

#[tokio::test]
async fn a_receiver_with_another_secret_rejects_the_signature() {
    // Guards the receiver's own check: it must not accept just anything.
    let (receiver, url) = Receiver::start("whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=").await;
    let mut h = Harness::new();
    let m = h
        .order_status(30, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    let notifier = h.notifier(http_target(&url));
    let event = sqs_event(vec![transition_record("msg-1", &m, 1, 1)]);
    batch::handle(&notifier, &event).await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(!got[0].verified);
}

#[tokio::test]
async fn sample_events_succeed_with_and_without_notify_url() {
    let root = repo_root().join("events/notifier");
    let single: SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(root.join("single_message.json")).unwrap())
            .unwrap();
    let batch_event: SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(root.join("batch_two_groups.json")).unwrap())
            .unwrap();
    assert_eq!(single.records.len(), 1);
    assert_eq!(batch_event.records.len(), 3);
    let groups: std::collections::BTreeSet<&str> = batch_event
        .records
        .iter()
        .map(|r| r.attributes["MessageGroupId"].as_str())
        .collect();
    assert_eq!(groups.len(), 2, "two FIFO groups");
    for r in &batch_event.records {
        let m: TransitionMessage = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(r.attributes["MessageGroupId"], m.group_id());
        assert_eq!(r.attributes["MessageDeduplicationId"], m.transition_id);
    }

    // No NOTIFY_URL: written to the log, the batch succeeds.
    let log = Notifier::new(
        Target::from_env(&Env::default()).unwrap(),
        Arc::new(SqliteStore::in_memory().unwrap()),
        Arc::new(FixedClock::at_unix(NOW)),
    );
    for event in [&single, &batch_event] {
        let response = batch::handle(&log, event).await.unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": []})
        );
    }

    // With NOTIFY_URL: every message delivered, each group in its batch order.
    let (receiver, url) = Receiver::start(SECRET).await;
    let http = Notifier::new(
        http_target(&url),
        Arc::new(SqliteStore::in_memory().unwrap()),
        Arc::new(FixedClock::at_unix(NOW)),
    );
    let response = batch::handle(&http, &batch_event).await.unwrap();
    assert!(failures(&response).is_empty());
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.verified));
    let invoice: Vec<(String, String)> = got
        .iter()
        .map(|r| r.message())
        .filter(|m| m.source == Source::Invoice)
        .map(|m| (m.from.unwrap_or_default(), m.to))
        .collect();
    assert_eq!(
        invoice,
        [
            ("Ready".to_string(), "Pending".to_string()),
            ("Pending".to_string(), "Complete".to_string())
        ]
    );
}

#[tokio::test]
async fn a_record_without_message_id_fails_the_invocation_and_sends_nothing() {
    let (receiver, url) = Receiver::start(SECRET).await;
    let mut h = Harness::new();
    let m = h
        .order_status(40, "NEW", "WAITING_CONFIRM", "2025-09-05T10:00:00Z")
        .await;
    let mut nameless = transition_record("x", &m, 2, 1);
    nameless.as_object_mut().unwrap().remove("messageId");
    let event = sqs_event(vec![transition_record("msg-1", &m, 1, 1), nameless]);
    let notifier = h.notifier(http_target(&url));
    let err = batch::handle(&notifier, &event).await.unwrap_err();
    assert!(err.to_string().contains("messageId"), "{err}");
    assert!(receiver.received().is_empty());
}
