//! The real `fulfilment` Lambda binary, end to end: run as a process against a test Lambda
//! Runtime API (webhook_tests::lambda), fed the API Gateway v2 sample event from events/,
//! on DynamoDB + SQS served by moto_server (`AWS_ENDPOINT_URL`). Checks the response, the
//! items in all three tables and, after the real `relay` binary read the transitions stream,
//! the message on the FIFO queue.

use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use webhook_core::config::Env;
use webhook_core::model::TransitionMessage;
use webhook_core::runtime;
use webhook_core::store::{decompress, OperatorStore};
use webhook_core::version::Version;
use webhook_tests::aws::AwsFixture;
use webhook_tests::lambda::{build_function, Function, Outcome, RuntimeApi};
use webhook_tests::moto;
use webhook_tests::stream::RelayRig;

const DEV_SECRET: &str = "dev-fulfilment-secret";

fn sample_event() -> Value {
    let path = moto::workspace_root().join("events/fulfilment/order_change_status.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample event")).expect("json")
}

async fn fulfilment_binary() -> PathBuf {
    tokio::task::spawn_blocking(|| build_function("fulfilment"))
        .await
        .expect("build task")
}

fn env(api: &RuntimeApi, fixture: &AwsFixture) -> Vec<(String, String)> {
    let mut env = api.lambda_env("fulfilment");
    env.extend(fixture.lambda_env());
    env.push(("FULFILMENT_SECRETS".into(), DEV_SECRET.into()));
    env.push(("RUST_LOG".into(), "info".into()));
    env
}

fn response_of(outcome: Outcome) -> (u16, Value) {
    let Outcome::Response(response) = outcome else {
        panic!("the function reported an error: {outcome:?}")
    };
    let status = response["statusCode"].as_u64().expect("statusCode") as u16;
    let body = serde_json::from_str(response["body"].as_str().expect("body")).expect("json body");
    (status, body)
}

fn s(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    match &item[name] {
        AttributeValue::S(v) => v.clone(),
        other => panic!("{name} is not a string: {other:?}"),
    }
}

/// A deflated Binary attribute, inflated.
fn inflated(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Vec<u8> {
    match &item[name] {
        AttributeValue::B(b) => decompress(b.as_ref()).expect("raw deflate"),
        other => panic!("{name} is not binary: {other:?}"),
    }
}

fn n(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    match &item[name] {
        AttributeValue::N(v) => v.parse().expect("number"),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulfilment_lambda_stores_and_queues_the_sample_event() {
    let bin = fulfilment_binary().await;
    let fixture = AwsFixture::on(&moto::endpoint(), "lambda-e2e").await;
    let api = RuntimeApi::start().await;
    let mut function = Function::spawn(&bin, &env(&api, &fixture));

    let event = sample_event();
    let body = event["body"].as_str().expect("body").to_string();
    // the event id: the merchant and what the signature covers (ARCHITECTURE §4)
    let event_id = webhook_core::model::scoped_body_event_id(
        &webhook_core::model::Tenant::new("XYZ"),
        body.as_bytes(),
    );
    let event_key = format!("fulfilment#{event_id}");
    let (status, response) = response_of(function.invoke(&api, event.clone()).await);
    assert_eq!(status, 200, "{response}\n{}", function.output());
    assert_eq!(response["status"], "ok");
    assert_eq!(response["duplicate"], false);

    assert_event_item(&fixture, &event_key, &body).await;
    assert_entity_item(&fixture, &event_key).await;
    let transition_id = assert_transition_item(&fixture, &event_id).await;

    // the provider redelivers: 200, a duplicate; ingest sends nothing to SQS either time
    let (status, again) = response_of(function.invoke(&api, event).await);
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(fixture.queue_depth().await, 0);

    // the relay binary sends the one transition from the table's stream to the FIFO queue
    assert_relayed(&fixture, &transition_id, &event_key).await;

    // A forged signature: 401, and the refusal is one structured log line (the record the
    // template's saved Logs Insights query lists), without the body or the credential.
    let logs = assert_refusal_logged(&mut function, &api, &body).await;
    assert!(logs.contains("webhook accepted"), "{logs}");
    assert!(!logs.contains(DEV_SECRET), "a secret reached the log");
    assert!(api.init_errors().is_empty());
    function.kill().await;
}

/// The sample's order status change, in microseconds as stored.
fn sample_version() -> Version {
    Version::parse("2022-06-07T09:55:58.000000Z").unwrap()
}

/// The events table's item: applied, the exact request kept deflated without credentials,
/// the default TTL; the store reads the same event back.
async fn assert_event_item(fixture: &AwsFixture, event_key: &str, body: &str) {
    let db = &fixture.dynamodb;
    let item = db
        .get_item()
        .table_name(&fixture.tables.events)
        .key("event_key", AttributeValue::S(event_key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("event item");
    assert_eq!(s(&item, "status"), "applied");
    assert_eq!(s(&item, "event_type"), "order.status_changed");
    // the kept request (headers and body) is one deflated Binary attribute
    let request = String::from_utf8(inflated(&item, "request_z")).unwrap();
    assert!(request.ends_with(body), "the exact body is kept");
    assert!(request.contains("sample-provider/1.0") && request.contains("3252898194"));
    assert!(
        !request.contains("x-event-signature"),
        "credentials are not kept"
    );
    assert_eq!(
        n(&item, "expires_at") - n(&item, "received_at"),
        90 * 86_400,
        "TTL: RETENTION_DAYS default"
    );
    let stored = fixture
        .store()
        .event(&webhook_core::EventKey::from_stored(event_key.to_string()))
        .await
        .unwrap()
        .expect("the stored event");
    assert_eq!(stored.raw_body, body.as_bytes());
    assert!(stored
        .headers
        .contains(&("user-agent".to_string(), "sample-provider/1.0".to_string())));
}

/// The entities table's item: the order's state, version, last event and data.
async fn assert_entity_item(fixture: &AwsFixture, event_key: &str) {
    let db = &fixture.dynamodb;
    let version = sample_version();
    let entity = db
        .get_item()
        .table_name(&fixture.tables.entities)
        .key("pk", AttributeValue::S("fulfilment#XYZ".into()))
        .key("sk", AttributeValue::S("order#5342".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("entity item");
    assert_eq!(s(&entity, "state"), "WAITING_CONFIRM");
    assert_eq!(n(&entity, "version"), version.micros());
    assert_eq!(s(&entity, "last_event_key"), event_key);
    let data: Value = serde_json::from_slice(&inflated(&entity, "data_z")).unwrap();
    assert_eq!(data["order"]["code"], "dh07060099");
}

/// The transitions table's item, queued and not yet published; returns its transition id.
async fn assert_transition_item(fixture: &AwsFixture, event_id: &str) -> String {
    let db = &fixture.dynamodb;
    let version = sample_version();
    let transition = db
        .get_item()
        .table_name(&fixture.tables.transitions)
        .key("pk", AttributeValue::S("fulfilment#XYZ#order#5342".into()))
        .key(
            "sk",
            AttributeValue::S(format!("{}#{event_id}", version.sort_key())),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("transition item");
    let recorded: TransitionMessage =
        serde_json::from_slice(&inflated(&transition, "message_z")).unwrap();
    assert_eq!(recorded.from.as_deref(), Some("WAITING_INSPECTION"));
    assert_eq!(recorded.to, "WAITING_CONFIRM");
    assert_eq!(transition["queued"], AttributeValue::Bool(true));
    assert_eq!(transition["published"], AttributeValue::Bool(false));
    s(&transition, "transition_id")
}

/// The relay binary puts the one transition on the FIFO queue, in its entity's group.
async fn assert_relayed(fixture: &AwsFixture, transition_id: &str, event_key: &str) {
    let mut relay = RelayRig::start(fixture, &fixture.endpoint, 100).await;
    relay.drain(5, std::time::Duration::from_millis(50)).await;
    let queued = fixture.drain_queue().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].group_id, "fulfilment#XYZ#order#5342");
    assert_eq!(queued[0].dedup_id, transition_id);
    let message: TransitionMessage = serde_json::from_str(&queued[0].body).unwrap();
    assert_eq!(message.transition_id, transition_id);
    assert_eq!(message.from.as_deref(), Some("WAITING_INSPECTION"));
    assert_eq!(message.to, "WAITING_CONFIRM");
    assert_eq!(message.event_key, event_key);
    assert_eq!(message.occurred_at, "2022-06-07T09:55:58Z");
    assert_eq!(message.data["merchant_code"], "XYZ");
}

/// A forged signature is refused (401) with one structured refusal line that names neither
/// the body nor the credential; returns the function's output so far.
async fn assert_refusal_logged(function: &mut Function, api: &RuntimeApi, body: &str) -> String {
    let mut forged = sample_event();
    forged["headers"]["x-event-signature"] = Value::from("ab".repeat(32));
    let (status, _) = response_of(function.invoke(api, forged).await);
    assert_eq!(status, 401);
    let refusal_line = |logs: &str| {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["outcome"] == "rejected")
    };
    // The process's output is read as it comes: wait (up to 5 s) for the line to arrive.
    let mut logs = function.output();
    for _ in 0..50 {
        if refusal_line(&logs).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        logs = function.output();
    }
    let refusal = refusal_line(&logs).unwrap_or_else(|| panic!("no refusal line: {logs}"));
    for (field, value) in [
        ("source", Value::from("fulfilment")),
        ("status", Value::from(401)),
        ("reason", Value::from("bad_credential")),
        ("code", Value::from("AUTH_002")),
        ("size", Value::from(body.len())),
        ("request_id", refusal["request_id"].clone()),
    ] {
        assert_eq!(refusal[field], value, "{field} in {refusal}");
    }
    let logged: Vec<&String> = refusal.as_object().unwrap().keys().collect();
    for field in webhook_core::refusals::LOG_FIELDS {
        assert!(
            field == "tenant" || logged.iter().any(|k| *k == field),
            "{field} missing from {refusal}"
        );
    }
    assert!(
        refusal.get("tenant").is_none(),
        "an unverified body's tenant is not read: {refusal}"
    );
    assert!(refusal["request_id"].is_string(), "{refusal}");
    assert!(
        !logs.contains("abababab"),
        "the presented signature was logged"
    );
    assert!(
        !refusal.to_string().contains("WAITING"),
        "the body was logged: {refusal}"
    );
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_without_its_tables_refuses_to_start() {
    // the wiring itself names what is missing
    let err = match runtime::lambda_backends(&Env::default()).await {
        Ok(_) => panic!("backends built without configuration"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("EVENTS_TABLE"), "{err}");
    let mut partial = Env::default();
    for (k, v) in [
        ("EVENTS_TABLE", "e"),
        ("ENTITIES_TABLE", "n"),
        ("TRANSITIONS_TABLE", "t"),
    ] {
        partial.set(k, v);
    }
    assert!(
        runtime::lambda_backends(&partial).await.is_ok(),
        "ingest needs no queue: the relay sends"
    );
    let err = match runtime::relay_queue(&Env::default()).await {
        Ok(_) => panic!("the relay built without its queue"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("TRANSITIONS_QUEUE_URL"), "{err}");

    // and the binary exits with that error instead of serving
    let bin = fulfilment_binary().await;
    let fixture = AwsFixture::on(&moto::endpoint(), "lambda-refuses").await;
    let api = RuntimeApi::start().await;
    let env: Vec<_> = env(&api, &fixture)
        .into_iter()
        .filter(|(k, _)| k != "ENTITIES_TABLE")
        .collect();
    let mut function = Function::spawn(&bin, &env);
    let status = function.wait().await;
    assert!(!status.success());
    let output = function.output();
    assert!(output.contains("ENTITIES_TABLE"), "{output}");
    assert!(output.contains("refusing to start"), "{output}");
}
