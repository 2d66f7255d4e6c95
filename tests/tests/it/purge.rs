//! Erasure on request (`webhooks purge`, issue 21), on every backend: by entity, by tenant
//! and by a matched value, each dry first (nothing goes), then for real (the operator's
//! `event` and `entity` find nothing, the rest stays); on SQLite the value is gone from the
//! file's bytes and its WAL's.

use serde_json::json;
use webhook_core::model::{EntityKey, EntityKind, Source, Tenant};
use webhook_core::ops::{Operator, OpsError};
use webhook_core::store::{IncomingEvent, Needle, PurgeTarget};
use webhook_tests::kit::Kit;
use webhook_tests::samples::{incoming, signed, under_delivery_id};

webhook_tests::on_every_backend!(
    purge_by_entity_erases_it_its_events_and_transitions,
    purge_by_tenant_erases_that_tenant_only,
    purge_by_matched_value_erases_every_record_holding_it,
);

const PHONE: &str = "0912345678";
const OTHER_PHONE: &str = "0987654321";

/// An order status change of `merchant`'s order `order` whose customer has `phone`.
fn order(delivery: &str, merchant: &str, order: u64, to: &str, phone: &str) -> IncomingEvent {
    let body = json!({"event": "ORDER.CHANGE_STATUS", "payload": {
        "merchant_code": merchant, "from_status": "NEW", "to_status": to,
        "order": {"id": order, "status": to, "updated_at": format!("2025-09-05T10:0{}:00Z", delivery.len() % 10),
            "customer": {"name": "Nguyễn Văn A", "phone": phone, "email": "a@example.vn"}}}})
    .to_string();
    under_delivery_id(incoming(&signed(&body, delivery)))
}

fn key(merchant: &str, order: u64) -> EntityKey {
    EntityKey::new(
        Source::Fulfilment,
        Tenant::new(merchant),
        EntityKind::Order,
        order.to_string(),
    )
}

async fn store_all(kit: &Kit, events: &[IncomingEvent]) {
    for e in events {
        let outcome = kit.store.persist(e).await.expect("persist");
        for p in &outcome.to_publish {
            kit.queue.publish(&p.message).await.expect("publish");
        }
    }
}

async fn gone_event(op: &Operator, key: &str) -> bool {
    matches!(op.event(key).await, Err(OpsError::NotFound(_)))
}

async fn gone_entity(op: &Operator, key: &EntityKey) -> bool {
    matches!(op.entity(key).await, Err(OpsError::NotFound(_)))
}

/// Whether the SQLite file or its WAL holds `value` (`None` on other backends). The WAL is
/// read as it is: a purge checkpoints and truncates it.
fn in_sqlite_bytes(kit: &Kit, value: &str) -> Option<bool> {
    let file = kit.sqlite_file()?;
    let mut wal = file.clone().into_os_string();
    wal.push("-wal");
    let found = [file.into_os_string(), wal].iter().any(|path| {
        std::fs::read(path)
            .is_ok_and(|bytes| bytes.windows(value.len()).any(|w| w == value.as_bytes()))
    });
    Some(found)
}

async fn purge_by_entity_erases_it_its_events_and_transitions(kit: &Kit) {
    store_all(
        kit,
        &[
            order("e1", "XYZ", 1, "PACKED", PHONE),
            order("e22", "XYZ", 1, "SHIPPED", PHONE),
            order("e333", "XYZ", 2, "PACKED", OTHER_PHONE),
        ],
    )
    .await;
    let op = kit.operator().await;
    assert!(
        in_sqlite_bytes(kit, PHONE).unwrap_or(true),
        "[{}] stored before",
        kit.name
    );
    let target = PurgeTarget::Entity(key("XYZ", 1));

    let dry = op.purge(&target, true).await.expect("dry run");
    let mut events = dry.events.clone();
    events.sort();
    assert_eq!(
        events,
        ["fulfilment#e1", "fulfilment#e22"],
        "[{}]",
        kit.name
    );
    assert_eq!(dry.entities, ["fulfilment#XYZ#order#1"], "[{}]", kit.name);
    assert_eq!(
        dry.transitions.len(),
        2,
        "[{}] {:?}",
        kit.name,
        dry.transitions
    );
    assert!(
        !gone_event(&op, "fulfilment#e1").await,
        "[{}] a dry run deletes nothing",
        kit.name
    );

    let done = op.purge(&target, false).await.expect("purge");
    assert_eq!(done.events.len(), 2, "[{}]", kit.name);
    for e in ["fulfilment#e1", "fulfilment#e22"] {
        assert!(gone_event(&op, e).await, "[{}] {e} still found", kit.name);
    }
    assert!(gone_entity(&op, &key("XYZ", 1)).await, "[{}]", kit.name);
    assert!(kit
        .store
        .transitions(&key("XYZ", 1))
        .await
        .unwrap()
        .is_empty());
    // The other order is untouched.
    assert!(!gone_event(&op, "fulfilment#e333").await, "[{}]", kit.name);
    assert!(!gone_entity(&op, &key("XYZ", 2)).await, "[{}]", kit.name);
    if kit.name == "sqlite" {
        // Both queued messages of order 1 went with it; order 2's waits.
        assert_eq!(done.queued.len(), 2, "{:?}", done.queued);
        assert_eq!(kit.queue_depth().await, 1);
    }
    assert_eq!(
        in_sqlite_bytes(kit, PHONE),
        kit.sqlite_file().map(|_| false)
    );
    // Nothing found twice.
    assert!(op.purge(&target, false).await.unwrap().is_empty());
}

async fn purge_by_tenant_erases_that_tenant_only(kit: &Kit) {
    store_all(
        kit,
        &[
            order("t1", "XYZ", 1, "PACKED", PHONE),
            order("t22", "XYZ", 2, "PACKED", PHONE),
            // A tenant whose name continues the other's: a prefix is not a tenant.
            order("t333", "XYZ_2", 3, "PACKED", OTHER_PHONE),
        ],
    )
    .await;
    let op = kit.operator().await;
    let target = PurgeTarget::Tenant {
        source: Source::Fulfilment,
        tenant: Tenant::new("XYZ"),
    };
    let dry = op.purge(&target, true).await.expect("dry run");
    let mut entities = dry.entities.clone();
    entities.sort();
    assert_eq!(
        entities,
        ["fulfilment#XYZ#order#1", "fulfilment#XYZ#order#2"],
        "[{}]",
        kit.name
    );
    assert_eq!(dry.events.len(), 2, "[{}] {:?}", kit.name, dry.events);
    assert_eq!(dry.transitions.len(), 2, "[{}]", kit.name);
    assert!(!gone_entity(&op, &key("XYZ", 1)).await, "[{}]", kit.name);

    op.purge(&target, false).await.expect("purge");
    for e in ["fulfilment#t1", "fulfilment#t22"] {
        assert!(gone_event(&op, e).await, "[{}] {e}", kit.name);
    }
    for k in [key("XYZ", 1), key("XYZ", 2)] {
        assert!(gone_entity(&op, &k).await, "[{}] {k}", kit.name);
        assert!(kit.store.transitions(&k).await.unwrap().is_empty());
    }
    assert!(!gone_event(&op, "fulfilment#t333").await, "[{}]", kit.name);
    assert!(!gone_entity(&op, &key("XYZ_2", 3)).await, "[{}]", kit.name);
    assert_eq!(
        in_sqlite_bytes(kit, PHONE),
        kit.sqlite_file().map(|_| false)
    );
    assert_eq!(
        in_sqlite_bytes(kit, OTHER_PHONE),
        kit.sqlite_file().map(|_| true)
    );
}

async fn purge_by_matched_value_erases_every_record_holding_it(kit: &Kit) {
    store_all(
        kit,
        &[
            order("m1", "XYZ", 1, "PACKED", PHONE),
            order("m22", "ABC", 2, "PACKED", PHONE),
            order("m333", "XYZ", 3, "PACKED", OTHER_PHONE),
        ],
    )
    .await;
    let op = kit.operator().await;
    assert!(
        in_sqlite_bytes(kit, PHONE).unwrap_or(true),
        "[{}]",
        kit.name
    );
    let target = PurgeTarget::Match(Needle::new(PHONE).unwrap());

    let dry = op.purge(&target, true).await.expect("dry run");
    let mut events = dry.events.clone();
    events.sort();
    assert_eq!(
        events,
        ["fulfilment#m1", "fulfilment#m22"],
        "[{}]",
        kit.name
    );
    assert_eq!(dry.entities.len(), 2, "[{}] {:?}", kit.name, dry.entities);
    assert_eq!(
        dry.transitions.len(),
        2,
        "[{}] {:?}",
        kit.name,
        dry.transitions
    );
    if kit.name == "dynamodb" {
        assert_eq!(dry.scanned.len(), 3, "every table is read: no index");
        assert!(
            dry.kept.iter().any(|k| k.place.contains("SQS")),
            "{:?}",
            dry.kept
        );
    }
    assert!(!gone_event(&op, "fulfilment#m1").await, "[{}]", kit.name);

    op.purge(&target, false).await.expect("purge");
    for e in ["fulfilment#m1", "fulfilment#m22"] {
        assert!(gone_event(&op, e).await, "[{}] {e}", kit.name);
    }
    for k in [key("XYZ", 1), key("ABC", 2)] {
        assert!(gone_entity(&op, &k).await, "[{}] {k}", kit.name);
    }
    assert!(!gone_event(&op, "fulfilment#m333").await, "[{}]", kit.name);
    assert!(!gone_entity(&op, &key("XYZ", 3)).await, "[{}]", kit.name);
    // Nothing left holds it.
    assert!(
        op.purge(&target, true).await.unwrap().is_empty(),
        "[{}]",
        kit.name
    );
    assert_eq!(
        in_sqlite_bytes(kit, PHONE),
        kit.sqlite_file().map(|_| false)
    );
    assert_eq!(
        in_sqlite_bytes(kit, OTHER_PHONE),
        kit.sqlite_file().map(|_| true)
    );
}
