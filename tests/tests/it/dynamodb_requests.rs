//! What an accepted event costs in DynamoDB requests, counted by an SDK interceptor on the
//! store's client (every HTTP attempt, retries included) — ARCHITECTURE §5 (one write per event): one write
//! request on the happy path, plus one SQS send when it carries a transition.
//!
//! Run with `--nocapture` to see the figures printed.

use aws_sdk_dynamodb::types::AttributeValue;
use webhook_core::store::{EventStatus, Store};
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
async fn a_new_status_change_costs_one_dynamodb_request_and_one_sqs_send() {
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
    assert_eq!(dynamodb, vec!["TransactWriteItems"], "exactly one request");
    assert_eq!(sqs, vec!["SendMessage"]);

    // the one transaction wrote all three tables
    let item = fixture
        .dynamodb
        .get_item()
        .table_name(&fixture.tables.events)
        .key("event_key", AttributeValue::S("fulfilment#req-1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("event item");
    assert!(matches!(item["body_gz"], AttributeValue::B(_)));
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
    assert_eq!(c.dynamodb.take(), vec!["TransactWriteItems"]);

    // a duplicate: the cancelled transaction hands back the stored event (ALL_OLD), then
    // one consistent read of its transitions
    let dup = store.persist(&first).await.unwrap();
    assert!(dup.duplicate);
    let duplicate = c.dynamodb.take();
    println!("duplicate: {} requests {duplicate:?}", duplicate.len());
    assert_eq!(duplicate, vec!["TransactWriteItems", "BatchGetItem"]);

    // out of order: the optimistic write is cancelled by the entity's condition, the entity
    // is read, and the event + its late transition are written
    let older = order_event("c-0", 9002, Some("DRAFT"), "NEW", "2025-09-05T09:00:00Z");
    let outcome = store.persist(&older).await.unwrap();
    assert_eq!(outcome.status, EventStatus::Stale);
    let stale = c.dynamodb.take();
    println!("stale event: {} requests {stale:?}", stale.len());
    assert_eq!(
        stale,
        vec!["TransactWriteItems", "BatchGetItem", "TransactWriteItems"]
    );

    // a change inferred from the stored state reads the entity first (one read, one write)
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
