//! Event identity (issue 21, ARCHITECTURE §4 "Event identity"), through the real pipeline on
//! both backends: an id the credential does not cover can neither erase another tenant's
//! event nor turn a replayed body into a new one; a store written before the change keeps
//! deduplicating the deliveries it holds; a declared id found with another body is kept as a
//! conflict, flagged, never taken for a duplicate.

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use webhook_core::clock::{Clock, FixedClock};
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::error::IngestError;
use webhook_core::http::{RawRequest, ResponseStyle};
use webhook_core::model::{
    scoped_body_event_id, Accepted, EntityKey, EntityKind, EventKey, Source, Tenant,
};
use webhook_core::notify::{Notifier, Outcome, Target};
use webhook_core::pipeline::Pipeline;
use webhook_core::sources::guard::Guard;
use webhook_core::sources::{fulfilment::Fulfilment, provider_from_env, Normalised, Provider};
use webhook_core::store::{EventFilter, EventStatus};
use webhook_tests::kit::Kit;
use webhook_tests::samples::{self, RECEIVED_AT};

webhook_tests::on_every_backend!(
    another_tenant_cannot_take_a_future_delivery_id,
    a_replayed_body_is_one_event_and_one_notification,
    a_store_of_the_previous_release_keeps_deduplicating_its_deliveries,
    a_declared_id_with_another_body_is_a_kept_and_flagged_conflict,
);

/// The pipeline over a kit's backends, on a clock the test moves.
struct Rig {
    pipeline: Pipeline,
    clock: Arc<FixedClock>,
}

impl Rig {
    fn new(kit: &Kit) -> Rig {
        let clock = Arc::new(FixedClock::at_unix(RECEIVED_AT));
        let pipeline = Pipeline::new(
            kit.store.clone(),
            kit.queue.clone(),
            clock.clone(),
            PipelineSettings::default(),
        )
        .asking_identity_epoch();
        Rig { pipeline, clock }
    }

    async fn post(&self, provider: &dyn Provider, req: &RawRequest) -> Accepted {
        self.pipeline
            .ingest(provider, req)
            .await
            .unwrap_or_else(|e| panic!("refused: {e}"))
    }

    fn advance(&self, secs: i64) {
        self.clock
            .set_unix(self.clock.now().unix_timestamp() + secs);
    }
}

/// Merchants A and B, each with its own bound signing secret (a Lambda's environment).
fn bound_fulfilment() -> Arc<dyn Provider> {
    let env = Env::from_pairs([(
        "FULFILMENT_SECRETS_BY_TENANT",
        r#"{"A":["secret-of-a-0001"],"B":["secret-of-b-0001"]}"#,
    )]);
    provider_from_env(Source::Fulfilment, &env, Mode::Lambda).expect("bound secrets configure it")
}

fn order_body(
    merchant: &str,
    order: u64,
    from: &str,
    to: &str,
    updated_at: Option<&str>,
) -> String {
    let mut o = json!({"id": order, "customer_name": "Nguyễn Văn A"});
    if let Some(at) = updated_at {
        o["updated_at"] = json!(at);
    }
    json!({"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": merchant,
        "from_status": from, "to_status": to, "order": o}})
    .to_string()
}

fn delivery(body: &str, secret: &str, id: &str) -> RawRequest {
    RawRequest::post(samples::ROUTE, body.as_bytes().to_vec())
        .with_header(
            "X-Event-Signature",
            &Fulfilment::sign(body.as_bytes(), secret),
        )
        .with_header("X-Event-Delivery", id)
}

fn order(merchant: &str, id: u64) -> EntityKey {
    EntityKey::new(
        Source::Fulfilment,
        Tenant::new(merchant),
        EntityKind::Order,
        id.to_string(),
    )
}

async fn stored_events(kit: &Kit) -> u64 {
    let counts = kit.store.count_events(&EventFilter::default()).await;
    counts.expect("counted").values().sum()
}

/// Delivers every queued message through the notifier (log target) and returns the
/// transition ids it notified (a message already delivered is skipped, as in production).
async fn notify_all(kit: &Kit) -> Vec<String> {
    let clock = Arc::new(FixedClock::at_unix(RECEIVED_AT + 3600));
    let notifier = Notifier::new(Target::Log, kit.store.clone(), clock);
    let mut notified = Vec::new();
    for message in kit.drain_queue().await {
        match notifier.deliver(&message.body, 1).await {
            Outcome::Delivered { .. } => notified.push(message.dedup_id.clone()),
            Outcome::AlreadyDelivered => {}
            other => panic!("[{}] {other:?}", kit.name),
        }
    }
    notified
}

/// Issue 21's reproduction: A, holding its own bound secret, posts under the delivery id B
/// will use next. B's genuine event is then stored (not answered as a duplicate) and
/// notified; A's post is stored as A's own.
async fn another_tenant_cannot_take_a_future_delivery_id(kit: &Kit) {
    let rig = Rig::new(kit);
    let provider = bound_fulfilment();
    let forged = order_body("A", 5001, "NEW", "CANCELLED", Some("2025-09-05T10:00:00Z"));
    let a = rig
        .post(
            provider.as_ref(),
            &delivery(&forged, "secret-of-a-0001", "7001"),
        )
        .await;
    assert!(!a.duplicate, "[{}]", kit.name);
    assert_eq!(a.tenant, "A");
    // A cannot claim B's merchant with its own secret: 403, nothing stored
    let as_b = order_body("B", 5001, "NEW", "CANCELLED", Some("2025-09-05T10:00:00Z"));
    let refused = rig
        .pipeline
        .ingest(
            provider.as_ref(),
            &delivery(&as_b, "secret-of-a-0001", "7001"),
        )
        .await;
    assert!(
        matches!(refused, Err(IngestError::TenantNotBound(_))),
        "[{}] {refused:?}",
        kit.name
    );

    let genuine = order_body("B", 5001, "NEW", "PACKED", Some("2025-09-05T10:01:00Z"));
    let b = rig
        .post(
            provider.as_ref(),
            &delivery(&genuine, "secret-of-b-0001", "7001"),
        )
        .await;
    assert!(
        !b.duplicate,
        "[{}] B's event is not A's duplicate",
        kit.name
    );
    assert_eq!(b.status, EventStatus::Applied, "[{}]", kit.name);
    assert_eq!(b.published, 1, "[{}]", kit.name);
    let b_key = EventKey::new(
        Source::Fulfilment,
        &scoped_body_event_id(&Tenant::new("B"), genuine.as_bytes()),
    );
    assert_eq!(b.event_key, b_key.as_str());
    let stored = kit
        .store
        .event(&b_key)
        .await
        .unwrap()
        .expect("B's event stored");
    assert_eq!(stored.raw_body, genuine.as_bytes(), "[{}]", kit.name);
    assert_eq!(stored.conflict_with, None, "[{}]", kit.name);
    let entity = kit.store.entity(&order("B", 5001)).await.unwrap();
    assert_eq!(entity.expect("B's order").state.as_deref(), Some("PACKED"));
    assert_eq!(stored_events(kit).await, 2, "[{}]", kit.name);

    let notified = notify_all(kit).await;
    let b_transitions = kit.store.transitions(&order("B", 5001)).await.unwrap();
    assert_eq!(b_transitions.len(), 1, "[{}]", kit.name);
    assert!(
        notified.contains(&b_transitions[0].transition_id),
        "[{}] B's transition is notified: {notified:?}",
        kit.name
    );
    let b_after = kit.store.transitions(&order("B", 5001)).await.unwrap();
    assert!(b_after[0]
        .notification
        .as_ref()
        .is_some_and(|n| n.is_delivered()));
}

/// A captured signed body sent again under fresh delivery ids is one event and one
/// notification; a replayed body without `updated_at` (versioned at receipt) no longer
/// rolls its entity back.
async fn a_replayed_body_is_one_event_and_one_notification(kit: &Kit) {
    let rig = Rig::new(kit);
    let provider = bound_fulfilment();
    let captured = order_body("B", 6001, "NEW", "PACKED", None);
    let first = rig
        .post(
            provider.as_ref(),
            &delivery(&captured, "secret-of-b-0001", "8001"),
        )
        .await;
    assert!(
        !first.duplicate && first.published == 1,
        "[{}] {first:?}",
        kit.name
    );
    rig.advance(60);
    let newer = order_body("B", 6001, "PACKED", "SHIPPED", None);
    rig.post(
        provider.as_ref(),
        &delivery(&newer, "secret-of-b-0001", "8002"),
    )
    .await;

    for fresh in ["9001", "9002", "9003"] {
        rig.advance(60);
        let replay = rig
            .post(
                provider.as_ref(),
                &delivery(&captured, "secret-of-b-0001", fresh),
            )
            .await;
        assert!(replay.duplicate, "[{}] replay under {fresh}", kit.name);
        assert_eq!(replay.event_key, first.event_key, "[{}]", kit.name);
    }
    let entity = kit
        .store
        .entity(&order("B", 6001))
        .await
        .unwrap()
        .expect("entity");
    assert_eq!(
        entity.state.as_deref(),
        Some("SHIPPED"),
        "[{}] not rolled back",
        kit.name
    );
    assert_eq!(stored_events(kit).await, 2, "[{}]", kit.name);
    let transitions = kit.store.transitions(&order("B", 6001)).await.unwrap();
    assert_eq!(
        transitions.len(),
        2,
        "[{}] NEW→PACKED, PACKED→SHIPPED",
        kit.name
    );

    let notified = notify_all(kit).await;
    let packed = &transitions
        .iter()
        .find(|t| t.to == "PACKED")
        .expect("the captured change")
        .transition_id;
    let times = notified.iter().filter(|id| *id == packed).count();
    assert_eq!(
        times, 1,
        "[{}] the captured change is notified once: {notified:?}",
        kit.name
    );
    assert_eq!(notified.len(), 2, "[{}] {notified:?}", kit.name);
}

/// A store written by the previous release keys a fulfilment event by its delivery id. A
/// redelivery after the upgrade is still that event's duplicate (same key, same transition
/// ids, nothing notified twice); another body under that delivery id is a conflict, stored
/// under today's key, flagged, and notified.
async fn a_store_of_the_previous_release_keeps_deduplicating_its_deliveries(kit: &Kit) {
    let rig = Rig::new(kit);
    let provider = samples::provider();
    let body = samples::order_status_body(4001, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let req = samples::signed(&body, "7001");
    // what the previous release stored: the same event under `fulfilment#7001`
    let old = samples::as_previous_release(&req);
    assert_eq!(old.key().as_str(), "fulfilment#7001");
    let first = kit.store.persist(&old).await.unwrap();
    for pending in &first.to_publish {
        kit.queue.publish(&pending.message).await.unwrap();
    }
    let old_ids: Vec<String> = first
        .to_publish
        .iter()
        .map(|p| p.message.transition_id.clone())
        .collect();
    assert_eq!(
        notify_all(kit).await,
        old_ids,
        "[{}] notified before the upgrade",
        kit.name
    );

    let again = rig.post(&provider, &req).await;
    assert!(again.duplicate, "[{}] {again:?}", kit.name);
    assert_eq!(again.event_key, "fulfilment#7001", "[{}]", kit.name);
    assert_eq!(again.conflict_with, None);
    assert_eq!(stored_events(kit).await, 1, "[{}]", kit.name);
    let transitions = kit
        .store
        .transitions(&samples::order_key(4001))
        .await
        .unwrap();
    let ids: Vec<_> = transitions
        .iter()
        .map(|t| t.transition_id.clone())
        .collect();
    assert_eq!(ids, old_ids, "[{}] the same transition ids", kit.name);
    assert!(
        notify_all(kit).await.is_empty(),
        "[{}] nothing notified twice",
        kit.name
    );

    let other = samples::order_status_body(4001, Some("PACKED"), "SHIPPED", "2025-09-05T11:00:00Z");
    let conflict = rig.post(&provider, &samples::signed(&other, "7001")).await;
    assert!(
        !conflict.duplicate,
        "[{}] another body is not a duplicate",
        kit.name
    );
    assert_eq!(
        conflict.conflict_with.as_ref().map(EventKey::as_str),
        Some("fulfilment#7001")
    );
    let today = EventKey::new(
        Source::Fulfilment,
        &scoped_body_event_id(&Tenant::new(samples::MERCHANT), other.as_bytes()),
    );
    assert_eq!(conflict.event_key, today.as_str(), "[{}]", kit.name);
    let stored = kit.store.event(&today).await.unwrap().expect("kept");
    assert_eq!(
        stored.conflict_with.as_ref().map(EventKey::as_str),
        Some("fulfilment#7001"),
        "[{}] flagged",
        kit.name
    );
    assert_eq!(
        notify_all(kit).await.len(),
        1,
        "[{}] the conflict is notified",
        kit.name
    );
    // its redelivery is its own duplicate, still flagged
    let again = rig.post(&provider, &samples::signed(&other, "7001")).await;
    assert!(
        again.duplicate && again.event_key == today.as_str(),
        "[{}] {again:?}",
        kit.name
    );
    assert_eq!(stored_events(kit).await, 2, "[{}]", kit.name);
}

/// A provider whose event id is declared by the delivery (its header), as an id from
/// outside the verified bytes is: fulfilment's parsing, with the header as the id.
struct DeclaredIds(Fulfilment);

impl Provider for DeclaredIds {
    fn source(&self) -> Source {
        Source::Fulfilment
    }
    fn response_style(&self) -> ResponseStyle {
        ResponseStyle::Plain
    }
    fn guard(&self) -> &Guard {
        self.0.guard()
    }
    fn normalise(&self, req: &RawRequest, now: OffsetDateTime) -> Normalised {
        let mut event = self.0.normalise(req, now)?;
        event.event_id = format!("declared-{}", req.header("x-event-delivery").unwrap_or("-"));
        Ok(event)
    }
}

/// Under a declared id, the same body again is a duplicate; another body is kept beside it
/// under `{key}~{body hash}`, flagged with the key it conflicts with, applied and notified;
/// and its own redelivery is its duplicate.
async fn a_declared_id_with_another_body_is_a_kept_and_flagged_conflict(kit: &Kit) {
    let rig = Rig::new(kit);
    let provider = DeclaredIds(samples::provider());
    let body = samples::order_status_body(3001, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let first = rig.post(&provider, &samples::signed(&body, "r1")).await;
    assert_eq!(first.event_key, "fulfilment#declared-r1");
    let again = rig.post(&provider, &samples::signed(&body, "r1")).await;
    assert!(
        again.duplicate && again.conflict_with.is_none(),
        "[{}] {again:?}",
        kit.name
    );

    let other = samples::order_status_body(3001, Some("PACKED"), "SHIPPED", "2025-09-05T11:00:00Z");
    let conflict = rig.post(&provider, &samples::signed(&other, "r1")).await;
    assert!(!conflict.duplicate, "[{}] {conflict:?}", kit.name);
    let key = EventKey::new(Source::Fulfilment, "declared-r1").conflicting(other.as_bytes());
    assert_eq!(conflict.event_key, key.as_str(), "[{}]", kit.name);
    assert_eq!(
        conflict.conflict_with.as_ref().map(EventKey::as_str),
        Some("fulfilment#declared-r1")
    );
    assert_eq!(conflict.published, 1, "[{}] applied and queued", kit.name);
    let stored = kit.store.event(&key).await.unwrap().expect("kept");
    assert_eq!(
        stored.conflict_with.as_ref().map(EventKey::as_str),
        Some("fulfilment#declared-r1")
    );
    assert_eq!(stored.raw_body, other.as_bytes());
    let original = kit
        .store
        .event(&EventKey::new(Source::Fulfilment, "declared-r1"))
        .await;
    assert_eq!(
        original.unwrap().expect("kept").raw_body,
        body.as_bytes(),
        "[{}] untouched",
        kit.name
    );

    let redelivered = rig.post(&provider, &samples::signed(&other, "r1")).await;
    assert!(redelivered.duplicate, "[{}] {redelivered:?}", kit.name);
    assert_eq!(redelivered.event_key, key.as_str());
    assert_eq!(stored_events(kit).await, 2, "[{}]", kit.name);
    let entity = kit.store.entity(&samples::order_key(3001)).await.unwrap();
    assert_eq!(entity.expect("entity").state.as_deref(), Some("SHIPPED"));
    assert_eq!(
        notify_all(kit).await.len(),
        2,
        "[{}] one per event",
        kit.name
    );
}
