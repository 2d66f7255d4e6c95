//! Faults: moto_server stopped mid-run answers 503 with nothing half written; restarted, the
//! provider's retry completes the work exactly once (one entity write, one transition, one
//! queue message). An event naming one entity is written as ordered single writes (entity,
//! transition, event item last): each step is made to fail in turn — before it is sent, and
//! after DynamoDB applied it but its answer was lost (on every attempt of the SDK, then on
//! the first only) — and the retry still completes exactly once; so does an event written
//! as one transaction whose answer was lost.
//!
//! Each test runs a private moto_server with moto's request recorder on
//! (`MOTO_ENABLE_RECORDING`, a file per test): moto keeps its state in memory, so after a
//! restart the recording is replayed (`POST /moto-api/recorder/replay-recording`) to bring
//! back every table, item and queue as they were when the server stopped. What the tests
//! then see is exactly what a real outage would leave behind.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use webhook_core::backends::aws::sdk::AwsSettings;
use webhook_core::http::RawRequest;
use webhook_core::model::{scoped_body_event_id, EventKey, Source, Tenant};
use webhook_core::pipeline::Handler;
use webhook_core::store::{DeliveryOutcome, DeliveryRecord, EventStatus};
use webhook_tests::aws::{AwsFixture, CountedPipeline, SentRequest};
use webhook_tests::moto::MotoServer;
use webhook_tests::samples::{
    order_key, order_status_body, provider, signed, MERCHANT, RECEIVED_AT,
};

/// A moto_server that records every request to a file in `dir`.
fn recording_moto(dir: &Path) -> MotoServer {
    let file = dir.join("moto-recording.jsonl");
    MotoServer::start(&[
        ("MOTO_ENABLE_RECORDING", "True"),
        ("MOTO_RECORDER_FILEPATH", file.to_str().expect("utf-8 path")),
    ])
}

/// Restarts `server` and replays its recording, restoring its state.
async fn restart_with_state(server: &mut MotoServer) {
    server.restart();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/recorder/replay-recording",
            server.endpoint()
        ))
        .send()
        .await
        .expect("replaying the recording");
    assert!(response.status().is_success(), "replay: {response:?}");
}

/// The counted pipeline over the store of `tables` and the queue of `queue`, and the
/// fulfilment handler over it.
fn rig(tables: &AwsFixture, queue: &AwsFixture) -> (CountedPipeline, Handler) {
    let rig = CountedPipeline::new(tables, queue, RECEIVED_AT);
    let handler = rig.handler(Arc::new(provider()));
    (rig, handler)
}

/// `body` signed, without `X-Event-Delivery`: no earlier release's key is read first
/// (ARCHITECTURE §4), so the requests counted here are the writes these tests fail.
fn unnumbered(body: &str) -> RawRequest {
    let mut req = signed(body, "-");
    req.headers.retain(|(name, _)| name != "x-event-delivery");
    req
}

fn status_change(order: u64) -> String {
    order_status_body(order, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z")
}

fn request(order: u64) -> RawRequest {
    unnumbered(&status_change(order))
}

/// The key `body` is stored under: its tenant and its hash.
fn key_of(body: &str) -> EventKey {
    let id = scoped_body_event_id(&Tenant::new(MERCHANT), body.as_bytes());
    EventKey::new(Source::Fulfilment, &id)
}

fn error_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Committed writes (2xx) to the events, entities and transitions tables, whatever form the
/// writes took (single writes or a transaction).
fn committed(rig: &CountedPipeline, fixture: &AwsFixture) -> [usize; 3] {
    let t = &fixture.tables;
    [&t.events, &t.entities, &t.transitions].map(|table| rig.dynamodb.committed_writes_to(table))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_down_answers_503_and_the_retry_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut moto = recording_moto(dir.path());
    let fixture = AwsFixture::on(&moto.endpoint(), "faults-dynamodb").await;
    let (rig, handler) = rig(&fixture, &fixture);
    let req = request(11);
    let key = key_of(&status_change(11));

    moto.stop();
    let down = handler.handle(&req).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(error_code(&down.body), "SYS_001", "{}", down.body);
    assert!(
        rig.dynamodb.requests().iter().any(SentRequest::is_write),
        "the write was attempted"
    );
    assert_eq!(rig.sqs.count(), 0, "nothing to send without a stored event");

    restart_with_state(&mut moto).await;
    // nothing half written
    assert_eq!(rig.store.event(&key).await.unwrap(), None);
    assert_eq!(rig.store.entity(&order_key(11)).await.unwrap(), None);
    assert!(rig
        .store
        .transitions(&order_key(11))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(fixture.queue_depth().await, 0);

    // the provider retries: done, exactly once
    retry_then_again(&handler, &req, false, "after the outage").await;

    assert_eq!(committed(&rig, &fixture), [1, 1, 1], "one write");
    let entity = rig.store.entity(&order_key(11)).await.unwrap().unwrap();
    assert_eq!(entity.state.as_deref(), Some("PACKED"));
    assert_eq!(entity.last_event_key, key.as_str());
    assert_eq!(
        rig.store.transitions(&order_key(11)).await.unwrap().len(),
        1
    );
    assert_eq!(
        rig.store.event(&key).await.unwrap().unwrap().status,
        EventStatus::Applied
    );
    assert_eq!(fixture.queue_depth().await, 1, "one message");
    let queued = fixture.drain_queue().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].group_id, order_key(11).stream());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_down_after_the_store_write_answers_503_and_the_retry_publishes_once() {
    // DynamoDB stays up (the shared moto); SQS is a private moto that goes down
    let tables = AwsFixture::new("faults-sqs-tables").await;
    let dir = tempfile::tempdir().unwrap();
    let mut sqs_moto = recording_moto(dir.path());
    let queue = AwsFixture::on(&sqs_moto.endpoint(), "faults-sqs-queue").await;
    let (rig, handler) = rig(&tables, &queue);
    let req = request(12);
    let key = key_of(&status_change(12));

    sqs_moto.stop();
    let down = handler.handle(&req).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(error_code(&down.body), "SYS_002", "{}", down.body);
    // the event and its transition are stored (the outbox), not yet published
    assert_eq!(committed(&rig, &tables), [1, 1, 1]);
    assert!(rig.store.event(&key).await.unwrap().is_some());
    let transitions = rig.store.transitions(&order_key(12)).await.unwrap();
    assert_eq!(transitions.len(), 1);
    assert!(transitions[0].queued && !transitions[0].published);

    restart_with_state(&mut sqs_moto).await;
    assert_eq!(queue.queue_depth().await, 0, "nothing was sent");

    // the provider retries: a duplicate, and its transition is published now
    let retry = handler.handle(&req).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["duplicate"], true);
    assert_eq!(queue.queue_depth().await, 1);
    // a second retry sends it again; the FIFO queue deduplicates by transition id
    let again = handler.handle(&req).await;
    assert_eq!(again.status, 200);
    assert_eq!(queue.queue_depth().await, 1, "one message");
    assert_eq!(committed(&rig, &tables), [1, 1, 1], "one write");
    assert_eq!(
        rig.store.transitions(&order_key(12)).await.unwrap().len(),
        1
    );
    let entity = rig.store.entity(&order_key(12)).await.unwrap().unwrap();
    assert_eq!(entity.last_event_key, key.as_str());

    // once the notifier has recorded the delivery, a redelivery sends nothing
    let queued = queue.drain_queue().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].dedup_id, transitions[0].transition_id);
    let record = DeliveryRecord {
        outcome: DeliveryOutcome::Delivered,
        status: Some(200),
        attempt: 1,
        at: "2025-09-05T10:00:01Z".into(),
    };
    rig.store
        .record_delivery(&queued[0].message(), &record)
        .await
        .unwrap();
    let sends = rig.sqs.count_of("SendMessage");
    let late = handler.handle(&req).await;
    assert_eq!(late.status, 200);
    assert_eq!(rig.sqs.count_of("SendMessage"), sends, "nothing sent again");
    assert_eq!(queue.queue_depth().await, 0);
}

/// The ordered single writes of a new one-entity event, in order.
const STEPS: [&str; 3] = ["UpdateItem", "PutItem", "PutItem"];

#[tokio::test]
async fn each_write_step_failing_answers_503_and_the_retry_applies_once() {
    for step in 1..=STEPS.len() {
        let fixture = AwsFixture::new(&format!("faults-step-{step}")).await;
        let (rig, handler) = rig(&fixture, &fixture);
        let order = 20 + step as u64;
        let req = request(order);
        let key = key_of(&status_change(order));

        rig.dynamodb.fail_request(step);
        let failed = handler.handle(&req).await;
        assert_eq!(failed.status, 503, "step {step}: {}", failed.body);
        assert_eq!(error_code(&failed.body), "SYS_001", "{}", failed.body);
        let sent: Vec<String> = rig
            .dynamodb
            .requests()
            .into_iter()
            .map(|r| r.operation)
            .collect();
        assert_eq!(
            sent,
            STEPS[..step],
            "step {step}: the writes up to the failed one"
        );
        // the event is not recorded (its item is the last write): the retry is not a
        // duplicate, and nothing was queued
        assert_eq!(rig.store.event(&key).await.unwrap(), None, "step {step}");
        assert_eq!(fixture.queue_depth().await, 0, "step {step}");

        retry_then_again(&handler, &req, false, &format!("step {step}")).await;

        assert_applied_once(&rig, &fixture, order, &format!("step {step}")).await;
    }
}

/// The provider's retry after a failed attempt, answered 200 (a duplicate exactly when the
/// failed attempt had recorded the event), and one more delivery, answered as a duplicate.
async fn retry_then_again(
    handler: &Handler,
    req: &RawRequest,
    retry_is_duplicate: bool,
    label: &str,
) {
    let retry = handler.handle(req).await;
    assert_eq!(retry.status, 200, "{label}: {}", retry.body);
    assert_eq!(retry.body["duplicate"], retry_is_duplicate, "{label}");
    let again = handler.handle(req).await;
    assert_eq!(again.status, 200, "{label}");
    assert_eq!(again.body["duplicate"], true, "{label}");
}

/// Exactly once, over a failed attempt, the retry and a duplicate: each item written once;
/// the entity at the event, one transition, the event applied, one message.
async fn assert_applied_once(rig: &CountedPipeline, fixture: &AwsFixture, order: u64, label: &str) {
    let key = key_of(&status_change(order));
    assert_eq!(committed(rig, fixture), [1, 1, 1], "{label}");
    let entity = rig.store.entity(&order_key(order)).await.unwrap().unwrap();
    assert_eq!(entity.state.as_deref(), Some("PACKED"), "{label}");
    assert_eq!(entity.last_event_key, key.as_str());
    let transitions = rig.store.transitions(&order_key(order)).await.unwrap();
    assert_eq!(transitions.len(), 1, "{label}");
    assert_eq!(
        rig.store.event(&key).await.unwrap().unwrap().status,
        EventStatus::Applied,
        "{label}"
    );
    let queued = fixture.drain_queue().await;
    assert_eq!(queued.len(), 1, "{label}: one message");
    assert_eq!(queued[0].dedup_id, transitions[0].transition_id);
}

/// Attempts per SDK call, as the Lambdas configure them (`AWS_MAX_ATTEMPTS`'s default).
const SDK_ATTEMPTS: u32 = AwsSettings::DEFAULT_MAX_ATTEMPTS;

/// The operations logged since the counter was last taken, each with DynamoDB's answer.
fn answered(rig: &CountedPipeline) -> Vec<(String, Option<u16>)> {
    let requests = rig.dynamodb.requests().into_iter();
    requests.map(|r| (r.operation, r.status)).collect()
}

/// Each ordered write applied by DynamoDB with its answer lost on every attempt: the SDK's
/// own retries of it find its condition failed by its own write (400), the call fails, 503.
/// The provider's retry completes exactly once: before the event item the event is not
/// recorded and the retry writes again; after it, the retry is a duplicate that publishes
/// the stored transition.
#[tokio::test]
async fn each_write_step_applied_with_its_answer_lost_answers_503_and_the_retry_applies_once() {
    for step in 1..=STEPS.len() {
        let fixture = AwsFixture::new(&format!("faults-lost-{step}")).await;
        let (rig, handler) = rig(&fixture, &fixture);
        let order = 30 + step as u64;
        let req = request(order);

        rig.dynamodb.lose_answer(step, SDK_ATTEMPTS);
        let failed = handler.handle(&req).await;
        assert_eq!(failed.status, 503, "step {step}: {}", failed.body);
        assert_eq!(error_code(&failed.body), "SYS_001", "{}", failed.body);
        let ok = |op: &str| (op.to_string(), Some(200));
        let mut expected: Vec<_> = STEPS[..step].iter().map(|op| ok(op)).collect();
        let refused = (STEPS[step - 1].to_string(), Some(400));
        expected.extend(std::iter::repeat_n(refused, SDK_ATTEMPTS as usize - 1));
        assert_eq!(
            answered(&rig),
            expected,
            "step {step}: applied once, retries refused"
        );
        let key = key_of(&status_change(order));
        let recorded = rig.store.event(&key).await.unwrap().is_some();
        assert_eq!(
            recorded,
            step == STEPS.len(),
            "step {step}: recorded by its item"
        );
        assert_eq!(fixture.queue_depth().await, 0, "step {step}");

        retry_then_again(&handler, &req, recorded, &format!("step {step}")).await;
        assert_applied_once(&rig, &fixture, order, &format!("lost {step}")).await;
    }
}

/// Each ordered write applied with only its first answer lost (a timed-out attempt): the
/// SDK's own retry is refused by the write's condition, which hands back this event's own
/// write, and the call completes: 200, exactly once. After the event item the store cannot
/// tell its own write from a concurrent duplicate's, so that one answers `duplicate: true`
/// (and publishes the transition, as a duplicate does).
#[tokio::test]
async fn each_write_step_with_its_first_answer_lost_is_completed_by_the_sdk_retry() {
    for step in 1..=STEPS.len() {
        let fixture = AwsFixture::new(&format!("faults-lost-once-{step}")).await;
        let (rig, handler) = rig(&fixture, &fixture);
        let order = 40 + step as u64;
        let req = request(order);

        rig.dynamodb.lose_answer(step, 1);
        let first = handler.handle(&req).await;
        assert_eq!(first.status, 200, "step {step}: {}", first.body);
        assert_eq!(first.body["duplicate"], step == STEPS.len(), "step {step}");
        let lost = &answered(&rig)[step - 1..=step];
        let op = STEPS[step - 1].to_string();
        assert_eq!(
            lost,
            [(op.clone(), Some(200)), (op, Some(400))],
            "step {step}"
        );
        let again = handler.handle(&req).await;
        assert_eq!(again.body["duplicate"], true, "step {step}");
        assert_applied_once(&rig, &fixture, order, &format!("lost once {step}")).await;
    }
}

/// An event written as one transaction (a status inferred from the stored state: read
/// first, then `TransactWriteItems`) applied with its answer lost on every attempt: 503, and
/// the provider's retry is a duplicate (the transaction recorded the event with its
/// writes) that publishes the stored transition once.
#[tokio::test]
async fn a_transaction_applied_with_its_answer_lost_answers_503_and_the_retry_publishes_once() {
    let fixture = AwsFixture::new("faults-lost-transaction").await;
    let (rig, handler) = rig(&fixture, &fixture);
    let first = handler.handle(&request(50)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(fixture.drain_queue().await.len(), 1);
    rig.dynamodb.take();
    let shipped = order_status_body(50, None, "SHIPPED", "2025-09-05T11:00:00Z");
    let req = unnumbered(&shipped);

    rig.dynamodb.lose_answer(2, SDK_ATTEMPTS);
    let failed = handler.handle(&req).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    let sent = answered(&rig);
    println!("transaction, answers lost: {sent:?}");
    let ops: Vec<&str> = sent.iter().map(|(op, _)| op.as_str()).collect();
    let mut expected = vec!["BatchGetItem"];
    expected.extend(std::iter::repeat_n(
        "TransactWriteItems",
        SDK_ATTEMPTS as usize,
    ));
    assert_eq!(
        ops, expected,
        "read, then the transaction and the SDK's retries"
    );
    assert_eq!(sent[1].1, Some(200), "the first attempt was applied");
    let key = key_of(&shipped);
    assert!(rig.store.event(&key).await.unwrap().is_some(), "recorded");
    assert_eq!(fixture.queue_depth().await, 0);

    let retry = handler.handle(&req).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["duplicate"], true);
    let again = handler.handle(&req).await;
    assert_eq!(again.body["duplicate"], true);
    // since the first event: the inferred one's writes applied once, by its lost transaction
    assert_eq!(committed(&rig, &fixture), [1, 1, 1]);
    let entity = rig.store.entity(&order_key(50)).await.unwrap().unwrap();
    assert_eq!(entity.state.as_deref(), Some("SHIPPED"));
    assert_eq!(entity.last_event_key, key.as_str());
    let transitions = rig.store.transitions(&order_key(50)).await.unwrap();
    assert_eq!(transitions.len(), 2);
    let queued = fixture.drain_queue().await;
    assert_eq!(queued.len(), 1, "the inferred transition, once");
    assert_eq!(queued[0].message().to, "SHIPPED");
}
