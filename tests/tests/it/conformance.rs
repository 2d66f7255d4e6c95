//! The store semantics of ARCHITECTURE §5/§6, written once and run against every backend: the
//! embedded SQLite store + outbox, and DynamoDB + SQS FIFO on moto_server.
//!
//! Each case gets fresh backends (a new SQLite file; new tables and queue on moto). The
//! events come from the real fulfilment provider (signed requests, normalised), except the
//! invoice cases, which build the invoice state machine's events directly.

use std::sync::Arc;

use futures::future::join_all;
use sha2::{Digest, Sha256};

use webhook_core::model::{EventKey, Source};
use webhook_core::store::{
    DeliveryOutcome, DeliveryRecord, EventStatus, IncomingEvent, PersistOutcome,
};
use webhook_tests::kit::Kit;
use webhook_tests::samples::{
    self, incoming, invoice_event, invoice_key, order_event, order_key, signed, stock_body,
    stock_key, RECEIVED_AT, RETENTION_DAYS,
};

webhook_tests::on_every_backend!(
    redelivery_is_a_duplicate_and_changes_nothing,
    concurrent_identical_deliveries_have_one_winner,
    older_event_never_overwrites_a_newer_entity,
    stale_event_is_recorded_with_status_stale,
    forbidden_invoice_transition_is_flagged_and_not_queued,
    terminal_invoice_state_is_never_left,
    redelivery_republishes_until_the_notifier_marks_published,
    event_record_keeps_the_exact_body_and_a_ttl,
    large_body_round_trips_through_compression,
    inferred_transition_compares_with_the_stored_state,
    event_naming_more_entities_than_one_transaction,
    concurrent_events_on_one_entity_converge_on_the_newest,
);

async fn persist(kit: &Kit, event: &IncomingEvent) -> PersistOutcome {
    kit.store
        .persist(event)
        .await
        .unwrap_or_else(|e| panic!("[{}] persist {}: {e}", kit.name, event.key()))
}

/// What the pipeline does after persisting: send every transition handed back.
async fn publish(kit: &Kit, outcome: &PersistOutcome) {
    for pending in &outcome.to_publish {
        kit.queue
            .publish(&pending.message)
            .await
            .unwrap_or_else(|e| panic!("[{}] publish: {e}", kit.name));
    }
}

async fn redelivery_is_a_duplicate_and_changes_nothing(kit: &Kit) {
    let event = order_event("d-1", 1001, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let first = persist(kit, &event).await;
    assert!(!first.duplicate, "[{}]", kit.name);
    assert_eq!(first.status, EventStatus::Applied, "[{}]", kit.name);
    assert_eq!(first.to_publish.len(), 1, "[{}]", kit.name);
    let message = first.to_publish[0].message.clone();
    assert_eq!(
        (message.from.as_deref(), message.to.as_str()),
        (Some("NEW"), "PACKED")
    );
    assert_eq!(message.group_id(), order_key(1001).stream());
    publish(kit, &first).await;
    let entity = kit.store.entity(&order_key(1001)).await.unwrap();

    let second = persist(kit, &event).await;
    assert!(
        second.duplicate,
        "[{}] the redelivery is a duplicate",
        kit.name
    );
    assert_eq!(second.status, EventStatus::Applied, "[{}]", kit.name);
    // not yet marked published by the notifier: handed back to be sent again
    assert_eq!(second.to_publish, first.to_publish, "[{}]", kit.name);
    publish(kit, &second).await;

    assert_eq!(
        kit.store.entity(&order_key(1001)).await.unwrap(),
        entity,
        "[{}]",
        kit.name
    );
    assert_eq!(
        kit.store.transitions(&order_key(1001)).await.unwrap().len(),
        1
    );
    assert_eq!(
        kit.queue_depth().await,
        1,
        "[{}] the queue deduplicates",
        kit.name
    );
    let queued = kit.drain_queue().await;
    assert_eq!(queued.len(), 1, "[{}]", kit.name);
    assert_eq!(queued[0].group_id, order_key(1001).stream());
    assert_eq!(queued[0].dedup_id, message.transition_id);
    assert_eq!(queued[0].message(), message);
}

async fn concurrent_identical_deliveries_have_one_winner(kit: &Kit) {
    let event = Arc::new(order_event(
        "d-race",
        2002,
        Some("NEW"),
        "PACKED",
        "2025-09-05T10:00:00Z",
    ));
    let outcomes = join_all((0..16).map(|_| {
        let (store, queue, event) = (kit.store.clone(), kit.queue.clone(), event.clone());
        tokio::spawn(async move {
            let outcome = store.persist(&event).await.expect("persist");
            for pending in &outcome.to_publish {
                queue.publish(&pending.message).await.expect("publish");
            }
            outcome
        })
    }))
    .await;
    let outcomes: Vec<PersistOutcome> = outcomes.into_iter().map(|r| r.unwrap()).collect();
    let winners = outcomes.iter().filter(|o| !o.duplicate).count();
    assert_eq!(winners, 1, "[{}] exactly one delivery wins", kit.name);
    assert!(outcomes.iter().all(|o| o.status == EventStatus::Applied));
    let transitions = kit.store.transitions(&order_key(2002)).await.unwrap();
    assert_eq!(transitions.len(), 1, "[{}]", kit.name);
    let entity = kit.store.entity(&order_key(2002)).await.unwrap().unwrap();
    assert_eq!(entity.last_event_key, event.key().to_string());
    assert_eq!(kit.queue_depth().await, 1, "[{}] one message", kit.name);
}

async fn older_event_never_overwrites_a_newer_entity(kit: &Kit) {
    let newer = order_event(
        "d-new",
        3003,
        Some("PACKED"),
        "SHIPPED",
        "2025-09-05T11:00:00Z",
    );
    let older = order_event("d-old", 3003, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let first = persist(kit, &newer).await;
    assert_eq!(first.status, EventStatus::Applied);
    let late = persist(kit, &older).await;
    assert!(!late.duplicate);
    assert_eq!(late.status, EventStatus::Stale, "[{}]", kit.name);
    // a declared transition is a fact of the history: recorded and queued, marked late
    assert_eq!(late.to_publish.len(), 1, "[{}]", kit.name);
    assert!(late.to_publish[0].message.late);

    let entity = kit.store.entity(&order_key(3003)).await.unwrap().unwrap();
    assert_eq!(entity.state.as_deref(), Some("SHIPPED"), "[{}]", kit.name);
    assert_eq!(entity.last_event_key, newer.key().to_string());
    assert_eq!(entity.data["to_status"], "SHIPPED");
    let transitions = kit.store.transitions(&order_key(3003)).await.unwrap();
    let history: Vec<(&str, &str)> = transitions
        .iter()
        .map(|t| (t.from.as_deref().unwrap_or("-"), t.to.as_str()))
        .collect();
    assert_eq!(
        history,
        vec![("NEW", "PACKED"), ("PACKED", "SHIPPED")],
        "[{}] both recorded, in version order",
        kit.name
    );
    assert!(transitions.iter().all(|t| t.queued && t.flag.is_none()));
}

async fn stale_event_is_recorded_with_status_stale(kit: &Kit) {
    let newer = incoming(&signed(
        &stock_body("SKU-S", 1, "2025-09-05T11:00:00Z"),
        "s-new",
    ));
    let older = incoming(&signed(
        &stock_body("SKU-S", 1, "2025-09-05T10:00:00Z"),
        "s-old",
    ));
    persist(kit, &newer).await;
    let outcome = persist(kit, &older).await;
    assert_eq!(outcome.status, EventStatus::Stale, "[{}]", kit.name);
    assert!(outcome.to_publish.is_empty());
    let stored = kit.store.event(&older.key()).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Stale, "[{}]", kit.name);
    assert_eq!(stored.raw_body, older.raw_body);
    let entity = kit
        .store
        .entity(&stock_key("SKU-S", 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entity.last_event_key,
        newer.key().to_string(),
        "[{}]",
        kit.name
    );
    // a redelivery of the stale event is a duplicate that keeps its status
    let again = persist(kit, &older).await;
    assert!(again.duplicate);
    assert_eq!(again.status, EventStatus::Stale);
}

async fn forbidden_invoice_transition_is_flagged_and_not_queued(kit: &Kit) {
    let event = invoice_event("i-1", "inv-1", "Ready", "Complete", 1_757_000_000);
    let outcome = persist(kit, &event).await;
    assert_eq!(outcome.status, EventStatus::Flagged, "[{}]", kit.name);
    assert!(outcome.to_publish.is_empty(), "[{}] not queued", kit.name);
    let transitions = kit.store.transitions(&invoice_key("inv-1")).await.unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].flag.as_deref(), Some("not_allowed"));
    assert!(!transitions[0].queued);
    assert_eq!(
        kit.store.entity(&invoice_key("inv-1")).await.unwrap(),
        None,
        "[{}] a forbidden transition is not applied",
        kit.name
    );
    assert_eq!(kit.queue_depth().await, 0);
}

async fn terminal_invoice_state_is_never_left(kit: &Kit) {
    let t0 = 1_757_000_000;
    for (id, from, to, at) in [
        ("i-a", "Ready", "Pending", t0),
        ("i-b", "Pending", "Complete", t0 + 10),
    ] {
        let o = persist(kit, &invoice_event(id, "inv-2", from, to, at)).await;
        assert_eq!(o.status, EventStatus::Applied, "[{}] {id}", kit.name);
        publish(kit, &o).await;
    }
    // newer, but Complete is terminal
    let leave = persist(
        kit,
        &invoice_event("i-c", "inv-2", "Pending", "Fail", t0 + 20),
    )
    .await;
    assert_eq!(leave.status, EventStatus::Flagged, "[{}]", kit.name);
    assert!(leave.to_publish.is_empty());
    let entity = kit
        .store
        .entity(&invoice_key("inv-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entity.state.as_deref(), Some("Complete"), "[{}]", kit.name);
    assert_eq!(entity.version, (t0 + 10) * 1_000_000);
    let transitions = kit.store.transitions(&invoice_key("inv-2")).await.unwrap();
    let flags: Vec<Option<&str>> = transitions.iter().map(|t| t.flag.as_deref()).collect();
    assert_eq!(flags, vec![None, None, Some("terminal")], "[{}]", kit.name);
    assert_eq!(kit.queue_depth().await, 2);
}

async fn redelivery_republishes_until_the_notifier_marks_published(kit: &Kit) {
    let event = order_event("d-pub", 4004, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let first = persist(kit, &event).await;
    assert_eq!(first.to_publish.len(), 1);
    // the send failed (the request answered 503): the provider retries
    let retry = persist(kit, &event).await;
    assert!(retry.duplicate);
    assert_eq!(
        retry.to_publish, first.to_publish,
        "[{}] republished",
        kit.name
    );
    publish(kit, &retry).await;

    let message = &retry.to_publish[0].message;
    assert_eq!(kit.store.delivery(message).await.unwrap(), None);
    let record = DeliveryRecord {
        outcome: DeliveryOutcome::Delivered,
        status: Some(200),
        attempt: 1,
        at: "2025-09-05T10:00:01Z".to_string(),
    };
    kit.store.record_delivery(message, &record).await.unwrap();
    assert_eq!(
        kit.store.delivery(message).await.unwrap(),
        Some(record.clone()),
        "[{}]",
        kit.name
    );
    let transitions = kit.store.transitions(&order_key(4004)).await.unwrap();
    assert!(transitions[0].published, "[{}]", kit.name);
    assert_eq!(transitions[0].notification, Some(record));

    let after = persist(kit, &event).await;
    assert!(after.duplicate);
    assert!(
        after.to_publish.is_empty(),
        "[{}] published transitions are not sent again",
        kit.name
    );
    assert_eq!(kit.queue_depth().await, 1);
}

async fn event_record_keeps_the_exact_body_and_a_ttl(kit: &Kit) {
    // odd spacing, unicode and a trailing newline: the bytes as sent, not re-serialised
    let body = "{\"event\" : \"ORDER.CHANGE_STATUS\",\n \"payload\":{\"merchant_code\":\"XYZ\",\
                \"from_status\":\"NEW\",\"to_status\":\"PACKED\",\"note\":\"đơn hàng ✓\",\
                \"order\":{\"id\":5005,\"updated_at\":\"2025-09-05T10:00:00Z\"}}}\n";
    let event = incoming(&signed(body, "d-ttl"));
    persist(kit, &event).await;
    let stored = kit.store.event(&event.key()).await.unwrap().unwrap();
    assert_eq!(stored.raw_body, body.as_bytes(), "[{}]", kit.name);
    assert_eq!(stored.received_at, RECEIVED_AT);
    assert_eq!(stored.expires_at, RECEIVED_AT + RETENTION_DAYS * 86_400);
    assert_eq!(stored.event_type, "order.status_changed");
    assert_eq!(stored.event_key, event.key().as_str());
    assert_eq!(stored.entity_keys, vec![order_key(5005).stream()]);
    assert_eq!(stored.status, EventStatus::Applied);
    assert_eq!(
        kit.store
            .event(&EventKey::new(Source::Fulfilment, "never-sent"))
            .await
            .unwrap(),
        None
    );
}

async fn large_body_round_trips_through_compression(kit: &Kit) {
    // ~200 KB of poorly compressible text (a hash chain), under the 256 KiB body limit
    let mut blob = String::new();
    let mut h = Sha256::digest(b"seed");
    while blob.len() < 200_000 {
        blob.push_str(&hex::encode(h));
        h = Sha256::digest(h);
    }
    let body = serde_json::json!({
        "event": "ORDER.CHANGE_STATUS",
        "payload": {"merchant_code": samples::MERCHANT, "from_status": "NEW", "to_status": "PACKED",
                    "order": {"id": 6006, "updated_at": "2025-09-05T10:00:00Z", "blob": blob}},
    })
    .to_string();
    let event = incoming(&signed(&body, "d-large"));
    let outcome = persist(kit, &event).await;
    assert_eq!(outcome.status, EventStatus::Applied, "[{}]", kit.name);
    let stored = kit.store.event(&event.key()).await.unwrap().unwrap();
    assert_eq!(stored.raw_body, body.as_bytes(), "[{}]", kit.name);
    let entity = kit.store.entity(&order_key(6006)).await.unwrap().unwrap();
    assert_eq!(
        entity.data["order"]["blob"].as_str().map(str::len),
        Some(blob.len())
    );
}

async fn inferred_transition_compares_with_the_stored_state(kit: &Kit) {
    let first = persist(
        kit,
        &order_event("d-i1", 7007, None, "NEW", "2025-09-05T10:00:00Z"),
    )
    .await;
    assert_eq!(first.status, EventStatus::Applied);
    assert!(
        first.to_publish.is_empty(),
        "[{}] nothing stored to compare",
        kit.name
    );
    let second = persist(
        kit,
        &order_event("d-i2", 7007, None, "PACKED", "2025-09-05T11:00:00Z"),
    )
    .await;
    assert_eq!(second.to_publish.len(), 1, "[{}]", kit.name);
    let m = &second.to_publish[0].message;
    assert_eq!((m.from.as_deref(), m.to.as_str()), (Some("NEW"), "PACKED"));
    let third = order_event("d-i3", 7007, None, "PACKED", "2025-09-05T12:00:00Z");
    let same = persist(kit, &third).await;
    assert!(same.to_publish.is_empty(), "[{}] no change", kit.name);
    let entity = kit.store.entity(&order_key(7007)).await.unwrap().unwrap();
    assert_eq!(entity.last_event_key, third.key().as_str());
    assert_eq!(
        kit.store.transitions(&order_key(7007)).await.unwrap().len(),
        1
    );
}

async fn event_naming_more_entities_than_one_transaction(kit: &Kit) {
    let stocks = 60; // DynamoDB on moto writes at most 25 items per transaction
    let event = incoming(&signed(
        &stock_body("SKU-F", stocks, "2025-09-05T10:00:00Z"),
        "s-fan",
    ));
    let outcome = persist(kit, &event).await;
    assert!(!outcome.duplicate);
    assert_eq!(outcome.status, EventStatus::Applied, "[{}]", kit.name);
    for i in [0, 24, 25, 59] {
        let entity = kit.store.entity(&stock_key("SKU-F", i)).await.unwrap();
        let entity = entity.unwrap_or_else(|| panic!("[{}] stock {i} written", kit.name));
        assert_eq!(entity.data["stock"]["quantity"], i * 3);
        assert_eq!(entity.last_event_key, event.key().as_str());
    }
    let stored = kit.store.event(&event.key()).await.unwrap().unwrap();
    assert_eq!(stored.entity_keys.len(), stocks);
    let again = persist(kit, &event).await;
    assert!(again.duplicate, "[{}]", kit.name);
}

async fn concurrent_events_on_one_entity_converge_on_the_newest(kit: &Kit) {
    // eight different events on one order, delivered at once in a scrambled order
    let events: Vec<Arc<IncomingEvent>> = [5, 2, 8, 1, 7, 3, 6, 4]
        .into_iter()
        .map(|i: u32| {
            Arc::new(order_event(
                &format!("d-c{i}"),
                8008,
                Some(&format!("S{}", i - 1)),
                &format!("S{i}"),
                &format!("2025-09-05T10:00:0{i}Z"),
            ))
        })
        .collect();
    let outcomes = join_all(events.iter().cloned().map(|event| {
        let store = kit.store.clone();
        tokio::spawn(async move { store.persist(&event).await })
    }))
    .await;
    for outcome in outcomes {
        let outcome = outcome
            .unwrap()
            .unwrap_or_else(|e| panic!("[{}] {e}", kit.name));
        assert!(!outcome.duplicate);
        assert_eq!(outcome.to_publish.len(), 1);
    }
    let entity = kit.store.entity(&order_key(8008)).await.unwrap().unwrap();
    assert_eq!(
        entity.state.as_deref(),
        Some("S8"),
        "[{}] the newest wins",
        kit.name
    );
    assert_eq!(
        entity.last_event_key,
        events[2].key().as_str(),
        "the S8 event"
    );
    let transitions = kit.store.transitions(&order_key(8008)).await.unwrap();
    let to: Vec<&str> = transitions.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(
        to,
        vec!["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"],
        "[{}]",
        kit.name
    );
    for event in &events {
        assert!(kit.store.event(&event.key()).await.unwrap().is_some());
    }
}
