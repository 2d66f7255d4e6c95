//! The operator's use cases (`webhooks` CLI, console), written once and run against every
//! backend as the conformance suite is: listing and pagination, event and entity reports,
//! replay, dead letters, stats, and reprocess (projecting what an older release ignored,
//! idempotent, never regressing, converging after an interruption).

use std::collections::BTreeMap;

use webhook_core::config::Env;
use webhook_core::model::EventStatus;
use webhook_core::ops::{self, Operator, ReplayOutcome, ReprocessSummary};
use webhook_core::store::{
    DeliveryOutcome, DeliveryRecord, EventFilter, IncomingEvent, Order, TransitionSelector,
};
use webhook_core::Source;
use webhook_tests::kit::Kit;
use webhook_tests::samples::{
    as_unrecognised, order_event, order_key, under_delivery_id, RECEIVED_AT,
};

webhook_tests::on_every_backend!(
    events_list_newest_first_in_pages_and_filter,
    event_and_entity_reports_explain_what_happened,
    replay_requeues_once_and_force_keeps_the_webhook_id,
    dead_letters_are_listed_and_redriven,
    stats_count_per_source_and_status,
    stats_count_transitions_not_yet_on_the_queue,
    reprocess_projects_what_an_older_release_ignored_once,
    reprocess_projects_what_an_older_release_did_not_recognise,
    reprocess_never_regresses_a_newer_entity,
    interrupted_reprocess_converges_on_a_rerun,
    reprocess_rewrites_what_todays_code_projects_differently,
    reprocess_refuses_a_tenant_change,
);

/// An order status change received `offset` seconds after the samples' time.
fn order_at(
    delivery: &str,
    order: u64,
    from: &str,
    to: &str,
    minute: u32,
    offset: i64,
) -> IncomingEvent {
    let mut e = order_event(
        delivery,
        order,
        Some(from),
        to,
        &format!("2025-09-05T10:{minute:02}:00Z"),
    );
    e.received_at += time::Duration::seconds(offset);
    e
}

/// The same event as a release that did not project it would have stored it.
fn as_ignored(mut e: IncomingEvent) -> IncomingEvent {
    let mut event = (*e.event).clone();
    event.entities.clear();
    e.event = event.into();
    e
}

async fn persist(kit: &Kit, e: &IncomingEvent) {
    let outcome = kit.store.persist(e).await.expect("persist");
    for p in &outcome.to_publish {
        kit.queue.publish(&p.message).await.expect("publish");
    }
}

async fn delivered(kit: &Kit, e: &IncomingEvent) {
    let outcome = kit.store.persist(e).await.expect("persist");
    for p in &outcome.to_publish {
        let record = DeliveryRecord {
            outcome: DeliveryOutcome::Delivered,
            status: Some(200),
            attempt: 1,
            at: "2026-12-01T00:00:00Z".into(),
        };
        kit.store
            .record_delivery(&p.message, &record)
            .await
            .expect("record");
    }
}

async fn reprocess(op: &Operator, filter: &EventFilter, dry_run: bool) -> ReprocessSummary {
    ops::reprocess(op, &Env::default(), filter, dry_run, &mut |_| {})
        .await
        .expect("reprocess")
}

async fn events_list_newest_first_in_pages_and_filter(kit: &Kit) {
    let events: Vec<IncomingEvent> = (0..5u32)
        .map(|i| {
            order_at(
                &format!("d{i}"),
                100 + i as u64,
                "NEW",
                "PACKED",
                i,
                i as i64,
            )
        })
        .collect();
    for e in &events {
        persist(kit, e).await;
    }
    let ignored_event = as_ignored(order_at("d-ignored", 900, "NEW", "PACKED", 9, 10));
    persist(kit, &ignored_event).await;
    let key = |e: &IncomingEvent| e.key().to_string();
    let op = kit.operator().await;
    let all = EventFilter::default();
    let mut keys = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = op
            .list_events(&all, Order::NewestFirst, 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.events.len() <= 2, "[{}]", kit.name);
        keys.extend(page.events.into_iter().map(|e| e.event_key));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<String> = events.iter().rev().map(key).collect();
    expected.insert(0, key(&ignored_event));
    assert_eq!(
        keys, expected,
        "[{}] newest first, every event once",
        kit.name
    );

    let ignored = EventFilter {
        status: Some(EventStatus::Ignored),
        ..Default::default()
    };
    let page = op
        .list_events(&ignored, Order::NewestFirst, 50, None)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1, "[{}]", kit.name);
    assert_eq!(page.events[0].entities, 0, "[{}]", kit.name);
    let window = EventFilter {
        since: Some(RECEIVED_AT + 1),
        until: Some(RECEIVED_AT + 3),
        source: Some(Source::Fulfilment),
        ..Default::default()
    };
    let page = op
        .list_events(&window, Order::OldestFirst, 50, None)
        .await
        .unwrap();
    let got: Vec<&str> = page.events.iter().map(|e| e.event_key.as_str()).collect();
    assert_eq!(got, [key(&events[1]), key(&events[2])], "[{}]", kit.name);
    let other = EventFilter {
        source: Some(Source::Invoice),
        ..Default::default()
    };
    assert!(op
        .list_events(&other, Order::NewestFirst, 50, None)
        .await
        .unwrap()
        .events
        .is_empty());
    assert!(
        op.list_events(&all, Order::NewestFirst, 2, Some("not-a-cursor"))
            .await
            .is_err(),
        "[{}] a foreign cursor is refused",
        kit.name
    );
}

async fn event_and_entity_reports_explain_what_happened(kit: &Kit) {
    persist(kit, &order_at("d1", 7, "NEW", "PACKED", 1, 0)).await;
    let d2 = order_at("d2", 7, "PACKED", "SHIPPED", 2, 1);
    persist(kit, &d2).await;
    let op = kit.operator().await;
    let report = op.event(d2.key().as_str()).await.expect("event");
    assert_eq!(report.event.status, EventStatus::Applied, "[{}]", kit.name);
    let body: serde_json::Value = serde_json::from_slice(&report.event.raw_body).unwrap();
    assert_eq!(body["event"], "ORDER.CHANGE_STATUS", "[{}]", kit.name);
    assert!(report
        .event
        .headers
        .iter()
        .any(|(k, v)| k == "x-event-delivery" && v == "d2"));
    assert!(
        !report
            .event
            .headers
            .iter()
            .any(|(k, _)| k == "x-event-signature"),
        "no credential kept"
    );
    assert_eq!(report.entities.len(), 1, "[{}]", kit.name);
    assert_eq!(
        report.entities[0].1.as_ref().unwrap().state.as_deref(),
        Some("SHIPPED")
    );
    assert_eq!(
        report.transitions.len(),
        1,
        "[{}] only this event's transition",
        kit.name
    );
    assert_eq!(report.transitions[0].1.to, "SHIPPED", "[{}]", kit.name);

    let (entity, history) = op.entity(&order_key(7)).await.expect("entity");
    assert_eq!(entity.state.as_deref(), Some("SHIPPED"), "[{}]", kit.name);
    let path: Vec<(Option<&str>, &str)> = history
        .iter()
        .map(|t| (t.from.as_deref(), t.to.as_str()))
        .collect();
    assert_eq!(
        path,
        [(Some("NEW"), "PACKED"), (Some("PACKED"), "SHIPPED")],
        "[{}]",
        kit.name
    );
    assert!(matches!(
        op.event("fulfilment#nope").await,
        Err(ops::OpsError::NotFound(_))
    ));
    assert!(matches!(
        op.entity(&order_key(8)).await,
        Err(ops::OpsError::NotFound(_))
    ));
}

async fn replay_requeues_once_and_force_keeps_the_webhook_id(kit: &Kit) {
    delivered(kit, &order_at("d1", 7, "NEW", "PACKED", 1, 0)).await;
    kit.drain_queue().await;
    let op = kit.operator().await;
    let entity = TransitionSelector::Entity(order_key(7));
    let done = op.replay(&entity, false, "r1").await.unwrap();
    assert_eq!(done.len(), 1, "[{}]", kit.name);
    assert_eq!(done[0].1, ReplayOutcome::AlreadyDelivered, "[{}]", kit.name);
    assert_eq!(
        kit.queue_depth().await,
        0,
        "[{}] nothing sent without --force",
        kit.name
    );

    let done = op.replay(&entity, true, "r2").await.unwrap();
    assert_eq!(done[0].1, ReplayOutcome::Requeued, "[{}]", kit.name);
    let id = done[0].0.transition.transition_id.clone();
    let queued = kit.drain_queue().await;
    assert_eq!(queued.len(), 1, "[{}] re-queued once", kit.name);
    assert_eq!(
        queued[0].message().transition_id,
        id,
        "[{}] same webhook-id",
        kit.name
    );
    if kit.aws().is_some() {
        assert_ne!(
            queued[0].dedup_id, id,
            "a forced replay is not swallowed by SQS's dedupe window"
        );
    }
    let history = kit.store.transitions(&order_key(7)).await.unwrap();
    assert_eq!(
        history[0].notification, None,
        "[{}] the notifier sends it again",
        kit.name
    );

    // An undelivered transition (its message consumed, no outcome recorded) replays once.
    persist(kit, &order_at("d2", 8, "NEW", "PACKED", 1, 1)).await;
    kit.drain_queue().await;
    let window = TransitionSelector::Undelivered {
        since: None,
        until: None,
    };
    let done = op.replay(&window, false, "r3").await.unwrap();
    let ids: Vec<String> = done.iter().map(|(r, _)| r.stream.stream()).collect();
    assert!(
        ids.contains(&order_key(8).stream()),
        "[{}] {ids:?}",
        kit.name
    );
    assert_eq!(kit.drain_queue().await.len(), done.len(), "[{}]", kit.name);
    let by_id = TransitionSelector::Id("tr_unknown".into());
    assert!(matches!(
        op.replay(&by_id, false, "r4").await,
        Err(ops::OpsError::NotFound(_))
    ));
}

async fn dead_letters_are_listed_and_redriven(kit: &Kit) {
    persist(kit, &order_at("d1", 7, "NEW", "PACKED", 1, 0)).await;
    let message = kit.drain_queue().await.remove(0).message();
    kit.dead_letter(&message).await;
    let op = kit.operator().await;
    let letters = op.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "[{}]", kit.name);
    assert_eq!(
        letters[0].transition_id.as_deref(),
        Some(message.transition_id.as_str())
    );
    assert_eq!(
        op.dead_letters(10).await.unwrap().len(),
        1,
        "[{}] listing moves nothing",
        kit.name
    );
    assert_eq!(op.redrive(None).await.unwrap(), 1, "[{}]", kit.name);
    assert!(
        op.dead_letters(10).await.unwrap().is_empty(),
        "[{}]",
        kit.name
    );
    let back = kit.drain_queue().await;
    assert_eq!(back.len(), 1, "[{}] back in the queue", kit.name);
    assert_eq!(back[0].message(), message, "[{}] the same body", kit.name);
}

async fn stats_count_per_source_and_status(kit: &Kit) {
    persist(kit, &order_at("d1", 7, "NEW", "PACKED", 2, 0)).await;
    persist(kit, &order_at("d2", 7, "NEW", "PACKED", 1, 1)).await;
    persist(kit, &as_ignored(order_at("d3", 9, "NEW", "PACKED", 1, 2))).await;
    let op = kit.operator().await;
    let counts = op.stats(&EventFilter::default()).await.unwrap();
    let expected: BTreeMap<(Source, EventStatus), u64> = [
        ((Source::Fulfilment, EventStatus::Applied), 1),
        ((Source::Fulfilment, EventStatus::Stale), 1),
        ((Source::Fulfilment, EventStatus::Ignored), 1),
    ]
    .into();
    assert_eq!(counts, expected, "[{}]", kit.name);
}

/// `webhooks stats`' "not yet on the queue": what each backend can tell (decision 62), aged
/// from the given time, nothing counted before it is old enough.
async fn stats_count_transitions_not_yet_on_the_queue(kit: &Kit) {
    persist(kit, &order_at("d1", 7, "NEW", "PACKED", 1, 0)).await;
    persist(kit, &order_at("d2", 8, "NEW", "PACKED", 2, 0)).await;
    persist(kit, &as_ignored(order_at("d3", 9, "NEW", "PACKED", 3, 0))).await;
    let op = kit.operator().await;
    let hour_later = RECEIVED_AT + 3600;
    let waiting = op.waiting_transitions(hour_later, 5).await.unwrap();
    assert_eq!(waiting.count(), 2, "[{}] {waiting:?}", kit.name);
    let expected = if kit.aws().is_some() {
        webhook_core::store::Waiting::Undelivered(2)
    } else {
        webhook_core::store::Waiting::NotTaken(2)
    };
    assert_eq!(waiting, expected, "[{}]", kit.name);
    let recent = op.waiting_transitions(hour_later, 24 * 60).await.unwrap();
    assert_eq!(recent.count(), 0, "[{}] none is a day old", kit.name);
}

async fn reprocess_projects_what_an_older_release_ignored_once(kit: &Kit) {
    persist(kit, &as_ignored(order_at("d1", 7, "NEW", "PACKED", 1, 0))).await;
    let op = kit.operator().await;
    let ignored = EventFilter {
        status: Some(EventStatus::Ignored),
        ..Default::default()
    };
    let dry = reprocess(&op, &ignored, true).await;
    assert_eq!(
        (dry.scanned, dry.newly_projected),
        (1, 1),
        "[{}] {dry:?}",
        kit.name
    );
    assert!(
        kit.store.entity(&order_key(7)).await.unwrap().is_none(),
        "[{}] a dry run writes nothing",
        kit.name
    );

    let first = reprocess(&op, &ignored, false).await;
    assert_eq!(
        (first.newly_projected, first.queued, first.failed.len()),
        (1, 1, 0),
        "[{}] {first:?}",
        kit.name
    );
    let entity = kit
        .store
        .entity(&order_key(7))
        .await
        .unwrap()
        .expect("projected");
    assert_eq!(entity.state.as_deref(), Some("PACKED"), "[{}]", kit.name);
    let queued = kit.drain_queue().await;
    assert_eq!(queued.len(), 1, "[{}] its transition queued once", kit.name);

    let again = reprocess(&op, &EventFilter::default(), false).await;
    assert_eq!(
        (again.scanned, again.unchanged, again.queued),
        (1, 1, 0),
        "[{}] {again:?}",
        kit.name
    );
    assert_eq!(
        kit.queue_depth().await,
        0,
        "[{}] nothing queued again",
        kit.name
    );
    let event = kit
        .store
        .event(&order_at("d1", 7, "NEW", "PACKED", 1, 0).key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status, EventStatus::Applied, "[{}]", kit.name);
}

/// A body an older release kept as `unrecognised` (a form it did not know) is listed by
/// `--status unrecognised` and projected by reprocess once the provider understands it.
async fn reprocess_projects_what_an_older_release_did_not_recognise(kit: &Kit) {
    persist(
        kit,
        &as_unrecognised(under_delivery_id(order_at("u1", 7, "NEW", "PACKED", 1, 0))),
    )
    .await;
    persist(kit, &as_ignored(order_at("i1", 8, "NEW", "PACKED", 2, 1))).await;
    persist(kit, &order_at("a1", 9, "NEW", "PACKED", 3, 2)).await;
    kit.drain_queue().await;
    let op = kit.operator().await;
    let unrecognised = EventFilter {
        status: Some(EventStatus::Unrecognised),
        ..Default::default()
    };
    let page = op
        .list_events(&unrecognised, Order::NewestFirst, 50, None)
        .await
        .unwrap();
    let keys: Vec<&str> = page.events.iter().map(|e| e.event_key.as_str()).collect();
    assert_eq!(
        keys,
        ["fulfilment#u1"],
        "[{}] only the unrecognised one",
        kit.name
    );
    assert_eq!(
        page.events[0].status,
        EventStatus::Unrecognised,
        "[{}]",
        kit.name
    );

    let dry = reprocess(&op, &unrecognised, true).await;
    assert_eq!(
        (dry.scanned, dry.newly_projected),
        (1, 1),
        "[{}] {dry:?}",
        kit.name
    );
    let done = reprocess(&op, &unrecognised, false).await;
    assert_eq!(
        (
            done.scanned,
            done.newly_projected,
            done.queued,
            done.failed.len()
        ),
        (1, 1, 1, 0),
        "[{}] {done:?}",
        kit.name
    );
    let entity = kit
        .store
        .entity(&order_key(7))
        .await
        .unwrap()
        .expect("projected");
    assert_eq!(entity.state.as_deref(), Some("PACKED"), "[{}]", kit.name);
    assert_eq!(
        kit.drain_queue().await.len(),
        1,
        "[{}] its transition, once",
        kit.name
    );
    let event = kit
        .store
        .event(&webhook_core::EventKey::parse("fulfilment#u1").expect("key"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status, EventStatus::Applied, "[{}]", kit.name);
    assert!(
        kit.store.entity(&order_key(8)).await.unwrap().is_none(),
        "[{}] the filter left the ignored one alone",
        kit.name
    );
    let again = reprocess(&op, &unrecognised, false).await;
    assert_eq!(
        again.scanned, 0,
        "[{}] nothing unrecognised is left",
        kit.name
    );
}

async fn reprocess_never_regresses_a_newer_entity(kit: &Kit) {
    persist(kit, &as_ignored(order_at("d1", 7, "NEW", "PACKED", 1, 0))).await;
    persist(kit, &order_at("d2", 7, "PACKED", "SHIPPED", 5, 1)).await;
    kit.drain_queue().await;
    let op = kit.operator().await;
    let summary = reprocess(&op, &EventFilter::default(), false).await;
    assert_eq!(summary.failed.len(), 0, "[{}] {summary:?}", kit.name);
    let entity = kit.store.entity(&order_key(7)).await.unwrap().unwrap();
    assert_eq!(
        entity.state.as_deref(),
        Some("SHIPPED"),
        "[{}] never moved back",
        kit.name
    );
    let event = kit
        .store
        .event(&order_at("d1", 7, "NEW", "PACKED", 1, 0).key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status, EventStatus::Stale, "[{}]", kit.name);
    let late: Vec<_> = kit
        .drain_queue()
        .await
        .into_iter()
        .map(|q| q.message())
        .collect();
    assert_eq!(
        late.len(),
        1,
        "[{}] the older transition is a fact, notified once",
        kit.name
    );
    assert!(late[0].late, "[{}] marked late", kit.name);
}

async fn interrupted_reprocess_converges_on_a_rerun(kit: &Kit) {
    for i in 0..6u32 {
        let order = 10 + (i as u64 % 3);
        let step = if i < 3 {
            ("NEW", "PACKED")
        } else {
            ("PACKED", "SHIPPED")
        };
        persist(
            kit,
            &as_ignored(order_at(
                &format!("d{i}"),
                order,
                step.0,
                step.1,
                i,
                i as i64,
            )),
        )
        .await;
    }
    let op = kit.operator().await;
    // Killed half-way: only the first three events were re-applied.
    let half = EventFilter {
        until: Some(RECEIVED_AT + 3),
        ..Default::default()
    };
    assert_eq!(
        reprocess(&op, &half, false).await.newly_projected,
        3,
        "[{}]",
        kit.name
    );
    let rerun = reprocess(&op, &EventFilter::default(), false).await;
    assert_eq!(
        (rerun.newly_projected, rerun.unchanged),
        (3, 3),
        "[{}] {rerun:?}",
        kit.name
    );
    let queued = kit.drain_queue().await;
    let mut ids: Vec<String> = queued.iter().map(|q| q.message().transition_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (queued.len(), ids.len()),
        (6, 6),
        "[{}] every transition queued exactly once",
        kit.name
    );
    for order in 10..13 {
        let entity = kit.store.entity(&order_key(order)).await.unwrap().unwrap();
        assert_eq!(entity.state.as_deref(), Some("SHIPPED"), "[{}]", kit.name);
        assert_eq!(
            kit.store
                .transitions(&order_key(order))
                .await
                .unwrap()
                .len(),
            2
        );
    }
}

async fn reprocess_rewrites_what_todays_code_projects_differently(kit: &Kit) {
    let today = order_at("d1", 7, "NEW", "PACKED", 1, 0);
    // As an older release might have projected it: same entity and version, other data.
    let mut older = today.clone();
    let mut event = (*older.event).clone();
    event.entities[0].data = serde_json::json!({"projected_by": "an older release"});
    older.event = event.into();
    persist(kit, &older).await;
    let op = kit.operator().await;
    let summary = reprocess(&op, &EventFilter::default(), false).await;
    assert_eq!(summary.failed.len(), 0, "[{}] {summary:?}", kit.name);
    let entity = kit.store.entity(&order_key(7)).await.unwrap().unwrap();
    assert_eq!(
        entity.data, today.event.entities[0].data,
        "[{}] today's data",
        kit.name
    );
    assert_eq!(entity.state.as_deref(), Some("PACKED"), "[{}]", kit.name);
}

async fn reprocess_refuses_a_tenant_change(kit: &Kit) {
    // Stored under another tenant than today's code derives from the same body (a release
    // that read the tenant from another field, or a row edited by hand).
    let mut stored = as_ignored(order_at("d1", 7, "NEW", "PACKED", 1, 0));
    let mut event = (*stored.event).clone();
    event.tenant = webhook_core::model::Tenant::new("another-shop");
    stored.event = event.into();
    persist(kit, &stored).await;
    let op = kit.operator().await;
    let summary = reprocess(&op, &EventFilter::default(), false).await;
    assert_eq!(summary.failed.len(), 1, "[{}] {summary:?}", kit.name);
    let (key, reason) = &summary.failed[0];
    assert_eq!(*key, stored.key().to_string(), "[{}]", kit.name);
    assert!(
        reason.contains("tenant") && reason.contains("another-shop"),
        "[{}] {reason}",
        kit.name
    );
    assert!(
        kit.store.entity(&order_key(7)).await.unwrap().is_none(),
        "[{}] nothing projected under the new tenant",
        kit.name
    );
    let event = kit.store.event(&stored.key()).await.unwrap().unwrap();
    assert_eq!(event.status, EventStatus::Ignored, "[{}]", kit.name);
    assert_eq!(event.tenant, "another-shop", "[{}]", kit.name);
}
