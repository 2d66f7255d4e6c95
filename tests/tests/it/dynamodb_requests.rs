//! What an accepted event costs in DynamoDB requests, counted by an SDK interceptor on the
//! store's client (every HTTP attempt, retries included) — ARCHITECTURE §5: an event naming
//! one entity is three ordered conditional single writes (entity, transition, event item
//! last), plus one SQS send when it carries a transition; events naming several entities,
//! or inferring a transition from the stored state, are one transaction. What the requests
//! cost in capacity units is `cost.rs`.
//!
//! Run with `--nocapture` to see the figures printed.

use aws_sdk_dynamodb::types::AttributeValue;
use webhook_core::store::{EventStatus, IngestStore, OperatorStore};
use webhook_tests::aws::{AwsFixture, CountedPipeline};
use webhook_tests::samples::{
    order_event, order_key, order_status_body, provider, signed, RECEIVED_AT,
};

/// A test's tables and queue, and the pipeline over them on counted clients.
async fn counted(test: &str) -> (AwsFixture, CountedPipeline) {
    let fixture = AwsFixture::new(test).await;
    let counted = CountedPipeline::new(&fixture, &fixture, RECEIVED_AT);
    (fixture, counted)
}

#[tokio::test]
async fn a_new_status_change_costs_three_single_writes_and_one_sqs_send() {
    let (fixture, c) = counted("one-request").await;
    let body = order_status_body(9001, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let accepted = c
        .pipeline
        .ingest(&provider(), &signed(&body, "req-1"))
        .await
        .expect("accepted");
    assert!(!accepted.duplicate);
    assert_eq!(accepted.status, EventStatus::Applied);
    assert_eq!(accepted.published, 1);
    let dynamodb = c.dynamodb.take();
    let sqs = c.sqs.take();
    println!("accepted event: DynamoDB {dynamodb:?}, SQS {sqs:?}");
    assert_eq!(
        dynamodb,
        vec!["GetItem", "UpdateItem", "PutItem", "PutItem"],
        "the earlier release's key for its delivery id (ARCHITECTURE §4), then entity, \
         transition, event item: three single writes"
    );
    assert_eq!(sqs, vec!["SendMessage"]);

    // the writes reached all three tables, the request kept compressed
    let item = fixture
        .dynamodb
        .get_item()
        .table_name(&fixture.tables.events)
        .key(
            "event_key",
            AttributeValue::S(accepted.event_key.to_string()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("event item");
    assert!(matches!(item["request_z"], AttributeValue::B(_)));
    assert!(matches!(item["expires_at"], AttributeValue::N(_)));
    let store = fixture.store();
    assert!(store.entity(&order_key(9001)).await.unwrap().is_some());
    assert_eq!(store.transitions(&order_key(9001)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn what_other_outcomes_cost() {
    let (fixture, c) = counted("other-costs").await;
    let store = fixture.counted_store(&c.dynamodb);

    let first = order_event("c-1", 9002, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    store.persist(&first).await.unwrap();
    assert_eq!(c.dynamodb.take(), vec!["UpdateItem", "PutItem", "PutItem"]);

    // a duplicate: the entity's condition fails (it is this event's write), the transition
    // is there, the event item's condition fails and hands back the stored event
    // (ALL_OLD); then one consistent read of its transitions
    let dup = store.persist(&first).await.unwrap();
    assert!(dup.duplicate);
    let duplicate = c.dynamodb.take();
    println!("duplicate: {} requests {duplicate:?}", duplicate.len());
    assert_eq!(
        duplicate,
        vec!["UpdateItem", "PutItem", "PutItem", "BatchGetItem"]
    );

    // out of order: the optimistic update fails the entity's condition, which hands back
    // the newer entity (ALL_OLD, no read), and the late transition + the event are written
    let older = order_event("c-0", 9002, Some("DRAFT"), "NEW", "2025-09-05T09:00:00Z");
    let outcome = store.persist(&older).await.unwrap();
    assert_eq!(outcome.status, EventStatus::Stale);
    let stale = c.dynamodb.take();
    println!("stale event: {} requests {stale:?}", stale.len());
    assert_eq!(stale, vec!["UpdateItem", "PutItem", "PutItem"]);

    // a change inferred from the stored state reads the entity first, then writes one
    // transaction (a retry after a partial write could no longer infer it)
    let inferred = order_event("c-2", 9002, None, "SHIPPED", "2025-09-05T11:00:00Z");
    let outcome = store.persist(&inferred).await.unwrap();
    assert_eq!(outcome.to_publish.len(), 1);
    let read_then_write = c.dynamodb.take();
    println!(
        "inferred transition: {} requests {read_then_write:?}",
        read_then_write.len()
    );
    assert_eq!(read_then_write, vec!["BatchGetItem", "TransactWriteItems"]);
    assert_eq!(c.sqs.count(), 0, "the store alone sends nothing");
}
