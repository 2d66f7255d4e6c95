//! The relay (ARCHITECTURE §6, decision 60), end to end through the real binaries on moto:
//! the `fulfilment` ingest Lambda writes DynamoDB and sends nothing; the transitions table's
//! stream, read as the Lambda service reads it (`webhook_tests::stream`), feeds the real
//! `relay` binary, which sends to the FIFO queue. Every case checks the promise that matters:
//! each acknowledged transition reaches the queue exactly once, each entity's in the order
//! its webhooks were accepted — with SQS down for a while, the relay dying mid-batch, the
//! ingest dying right after its commit, and a provider that never sends anything twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use webhook_core::store::{DeliveryOutcome, DeliveryRecord, DeliveryStore, OperatorStore};
use webhook_tests::aws::{AwsFixture, QueuedMessage};
use webhook_tests::lambda::{build_function, Function, Outcome, RuntimeApi};
use webhook_tests::stream::{RelayRig, Round};
use webhook_tests::{moto, proxy};

const SECRET: &str = "relay-test-fulfilment-secret";
const STATUSES: [&str; 6] = [
    "NEW",
    "WAITING_INSPECTION",
    "WAITING_CONFIRM",
    "WAITING_PACKING",
    "DELIVERING",
    "DELIVERED",
];
/// Pause between retries of a failed batch (the Lambda service backs off similarly).
const BACKOFF: Duration = Duration::from_millis(50);

/// The fulfilment Lambda on its own Runtime API, its AWS calls sent to `endpoint`.
struct Ingest {
    api: RuntimeApi,
    function: Function,
    delivered: usize,
}

impl Ingest {
    async fn start(fixture: &AwsFixture, endpoint: &str) -> Self {
        let bin: PathBuf = tokio::task::spawn_blocking(|| build_function("fulfilment"))
            .await
            .expect("build task");
        let api = RuntimeApi::start().await;
        let mut env = api.lambda_env("fulfilment");
        env.extend(fixture.lambda_env());
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL" && k != "TRANSITIONS_QUEUE_URL");
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.into()));
        env.push(("FULFILMENT_SECRETS".into(), SECRET.into()));
        let function = Function::spawn(&bin, &env);
        Ingest {
            api,
            function,
            delivered: 0,
        }
    }

    /// Delivers order `order`'s change `step` (STATUSES[step] → STATUSES[step + 1]) once,
    /// as a provider that never retries; the HTTP status answered.
    async fn deliver(&mut self, order: u64, step: usize) -> u16 {
        self.delivered += 1;
        match self.function.invoke(&self.api, webhook(order, step)).await {
            Outcome::Response(r) => r["statusCode"].as_u64().expect("statusCode") as u16,
            Outcome::Error(e) => panic!("the function failed: {e}"),
        }
    }
}

/// An API Gateway v2 event of a signed fulfilment `ORDER.CHANGE_STATUS` webhook.
fn webhook(order: u64, step: usize) -> Value {
    let body = json!({
        "event": "ORDER.CHANGE_STATUS",
        "payload": {
            "order": {
                "id": order,
                "status": STATUSES[step + 1],
                "updated_at": format!("2025-09-05T10:{:02}:00Z", step),
            },
            "merchant_code": "XYZ",
            "from_status": STATUSES[step],
            "to_status": STATUSES[step + 1],
        }
    })
    .to_string();
    let signature = hex::encode(Sha256::digest(
        [body.as_bytes(), SECRET.as_bytes()].concat(),
    ));
    let path = moto::workspace_root().join("events/fulfilment/order_change_status.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json");
    event["headers"]["x-event-signature"] = json!(signature);
    event["headers"]["x-event-delivery"] = json!(format!("relay-{order}-{step}"));
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["body"] = json!(body);
    event
}

/// The queue's messages per entity, in queue order: `(transition id, to)`.
async fn queued(fixture: &AwsFixture) -> BTreeMap<String, Vec<(String, String)>> {
    grouped(&fixture.drain_queue().await)
}

fn grouped(messages: &[QueuedMessage]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for m in messages.iter().cloned() {
        let message = m.message();
        assert_eq!(m.dedup_id, message.transition_id);
        out.entry(m.group_id)
            .or_default()
            .push((message.transition_id, message.to));
    }
    out
}

/// Each of `orders` reached the queue once per accepted change, in order.
fn assert_once_in_order(queue: &BTreeMap<String, Vec<(String, String)>>, orders: &[(u64, usize)]) {
    for &(order, steps) in orders {
        let group = format!("fulfilment#XYZ#order#{order}");
        let got = queue.get(&group).cloned().unwrap_or_default();
        let tos: Vec<&str> = got.iter().map(|(_, to)| to.as_str()).collect();
        assert_eq!(tos, STATUSES[1..=steps].to_vec(), "order {order}: {got:?}");
        let ids: BTreeSet<_> = got.iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids.len(),
            got.len(),
            "order {order} has a duplicate: {got:?}"
        );
    }
    let total: usize = queue.values().map(Vec::len).sum();
    assert_eq!(
        total,
        orders.iter().map(|(_, s)| s).sum::<usize>(),
        "{queue:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_sends_each_queued_transition_once_in_entity_order() {
    let fixture = AwsFixture::new("relay-order").await;
    let mut ingest = Ingest::start(&fixture, &fixture.endpoint).await;
    for step in 0..4 {
        for order in 1..=3 {
            assert_eq!(ingest.deliver(order, step).await, 200);
        }
    }
    assert_eq!(
        fixture.queue_depth().await,
        0,
        "ingest sends nothing to SQS"
    );

    // batches of 5 straddle the entities; some hold two changes of one entity
    let mut relay = RelayRig::start(&fixture, &fixture.endpoint, 5).await;
    let rounds = relay.drain(20, BACKOFF).await;
    assert!(rounds
        .iter()
        .all(|r| matches!(r, Round::Answered { failures: 0, .. } | Round::Idle)));
    let messages = fixture.drain_queue().await;
    assert_once_in_order(&grouped(&messages), &[(1, 4), (2, 4), (3, 4)]);

    // the notifier's record of an outcome modifies the item: that is not sent again
    let store = fixture.store();
    let message = messages[0].message();
    let delivered = DeliveryRecord {
        outcome: DeliveryOutcome::Delivered,
        status: Some(200),
        attempt: 1,
        at: "2025-09-05T10:00:00Z".into(),
    };
    store.record_delivery(&message, &delivered).await.unwrap();
    let rounds = relay.drain(5, BACKOFF).await;
    assert_eq!(rounds.len(), 2, "one batch of the modification: {rounds:?}");
    assert_eq!(
        fixture.queue_depth().await,
        0,
        "a modification is not republished"
    );
    let logs = relay.function.output();
    assert!(logs.contains("relay batch"), "{logs}");
    assert!(relay.api.init_errors().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_outage_delays_transitions_and_loses_none() {
    let fixture = AwsFixture::new("relay-outage").await;
    let (faulty, faults) = proxy::start_faulty(&moto::endpoint());
    let mut ingest = Ingest::start(&fixture, &faulty).await;
    let mut relay = RelayRig::start(&fixture, &faulty, 10).await;
    for order in 1..=3 {
        assert_eq!(ingest.deliver(order, 0).await, 200);
    }
    relay.drain(10, BACKOFF).await;

    // SQS goes down: every webhook is still answered 200 at once (ingest never calls SQS),
    // and the provider sends each one once only
    faults.set_down(Some("AmazonSQS."));
    for step in 1..3 {
        for order in 1..=3 {
            assert_eq!(ingest.deliver(order, step).await, 200);
        }
    }
    for _ in 0..3 {
        let round = relay.round().await;
        assert!(
            matches!(round, Round::Answered { failures: 1, .. }),
            "{round:?}\n{}",
            relay.function.output()
        );
    }
    assert!(faults.refused() >= 3);
    assert_eq!(ingest.deliver(4, 0).await, 200);

    // back: everything waiting goes, once, in order
    faults.set_down(None);
    relay.drain(20, BACKOFF).await;
    assert_once_in_order(&queued(&fixture).await, &[(1, 3), (2, 3), (3, 3), (4, 1)]);
    assert_eq!(ingest.delivered, 10, "no webhook was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_crash_mid_batch_neither_loses_nor_reorders() {
    let fixture = AwsFixture::new("relay-crash").await;
    let (faulty, faults) = proxy::start_faulty(&moto::endpoint());
    let mut ingest = Ingest::start(&fixture, &fixture.endpoint).await;
    for step in 0..5 {
        for order in 1..=3 {
            assert_eq!(ingest.deliver(order, step).await, 200);
        }
    }
    // one batch of 15 records: five requests of one message per entity; the second is
    // applied by SQS and then the process dies before hearing back
    let mut relay = RelayRig::start(&fixture, &faulty, 15).await;
    let crash = faults.hold_after("AmazonSQS.SendMessageBatch", "", 1);
    let round = relay.round_or_crash(Some(crash)).await;
    assert_eq!(round, Round::Crashed);
    assert_eq!(fixture.queue_depth().await, 6, "two requests of three went");

    // the service retries the whole batch on a new process
    let rounds = relay.drain(10, BACKOFF).await;
    assert_eq!(
        rounds[0],
        Round::Answered {
            records: 15,
            failures: 0
        }
    );
    assert_once_in_order(&queued(&fixture).await, &[(1, 5), (2, 5), (3, 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_right_after_its_commit_still_delivers() {
    let fixture = AwsFixture::new("relay-killed").await;
    let (faulty, faults) = proxy::start_faulty(&moto::endpoint());
    let mut ingest = Ingest::start(&fixture, &faulty).await;
    assert_eq!(ingest.deliver(1, 0).await, 200);

    // the event item (the commit marker) is written, then the function dies unanswered;
    // the provider never retries
    let committed = faults.hold_after("DynamoDB_20120810.PutItem", &fixture.tables.events, 0);
    let request = webhook(1, 1);
    let body = request["body"].as_str().expect("a body").to_string();
    let answer = ingest.api.enqueue(request);
    committed.await.expect("the commit was reached");
    ingest.function.kill().await;
    drop(answer);
    let id = webhook_core::model::scoped_body_event_id(
        &webhook_core::model::Tenant::new("XYZ"),
        body.as_bytes(),
    );
    let stored = fixture
        .store()
        .event(&webhook_core::EventKey::new(
            webhook_core::model::Source::Fulfilment,
            &id,
        ))
        .await
        .unwrap();
    assert!(stored.is_some(), "the event was committed");

    let mut relay = RelayRig::start(&fixture, &fixture.endpoint, 10).await;
    relay.drain(10, BACKOFF).await;
    assert_once_in_order(&queued(&fixture).await, &[(1, 2)]);
}
