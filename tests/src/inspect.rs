//! The store and its queue as the product's read API shows them: what behaviour tests
//! assert on. Built only from the `OperatorStore` port (`list_events`, `event`, `entity`,
//! `transitions`) and the queue's own ports (`Outbox::depth`/`dead_letters`, `PullQueue`,
//! `DeadLetters`); table SQL stays in the SQLite backend's own tests.

use std::collections::{BTreeMap, BTreeSet};

use webhook_core::backends::sqlite::Outbox;
use webhook_core::model::EntityKey;
use webhook_core::queue::{DeadLetter, DeadLetters, OutboxMessage, PullQueue, Settlement};
use webhook_core::store::{
    Detail, EventFilter, EventSummary, Order, Store, StoredEntity, StoredEvent, StoredTransition,
};

/// How many events one `list_events` page asks for.
const PAGE: usize = 500;

/// Every stored event's summary, oldest first (every page of `list_events`).
pub async fn events(store: &dyn Store) -> Vec<EventSummary> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_events(
                &EventFilter::default(),
                Order::OldestFirst,
                PAGE,
                cursor.as_deref(),
                Detail::Summary,
            )
            .await
            .expect("list_events")
            .into_summaries();
        out.extend(page.events);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Every stored event in full (`OperatorStore::event` of each listed key), oldest first.
pub async fn stored_events(store: &dyn Store) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    for summary in events(store).await {
        out.push(
            store
                .event(&summary.event_key)
                .await
                .expect("event lookup")
                .unwrap_or_else(|| panic!("{} listed but not found", summary.event_key)),
        );
    }
    out
}

/// An entity key from its stored stream (`{source}#{tenant}#{kind}#{id}`).
pub fn entity_key(stream: &str) -> EntityKey {
    EntityKey::parse(stream).unwrap_or_else(|| panic!("{stream:?} is not an entity stream"))
}

/// What a store holds, as its read API shows it: every event (status, type, kept headers,
/// raw body, entity keys, times), every entity those events name (version, state, data, last
/// event) with its transitions (flag, queued, published, notification), and the queue's
/// depth and dead letters.
///
/// Entities and transitions are reached through the events naming them: the product writes
/// neither without its event, and the read API lists no entity by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub events: Vec<StoredEvent>,
    /// Stream → entity (`None`: named by an event but not stored).
    pub entities: BTreeMap<String, Option<StoredEntity>>,
    /// Stream → its transitions in version order.
    pub transitions: BTreeMap<String, Vec<StoredTransition>>,
    /// Live queued messages.
    pub depth: u64,
    pub dead_letters: Vec<DeadLetter>,
}

impl Snapshot {
    /// Nothing stored and nothing queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.entities.is_empty()
            && self.depth == 0
            && self.dead_letters.is_empty()
    }

    /// Every transition, with its entity's stream.
    pub fn all_transitions(&self) -> impl Iterator<Item = (&str, &StoredTransition)> {
        self.transitions
            .iter()
            .flat_map(|(stream, ts)| ts.iter().map(move |t| (stream.as_str(), t)))
    }
}

/// A [`Snapshot`] of `store` and its `outbox`.
pub async fn snapshot(store: &dyn Store, outbox: &Outbox) -> Snapshot {
    let events = stored_events(store).await;
    let streams: BTreeSet<String> = events
        .iter()
        .flat_map(|e| e.entity_keys.iter().map(EntityKey::stream))
        .collect();
    let mut entities = BTreeMap::new();
    let mut transitions = BTreeMap::new();
    for stream in streams {
        let key = entity_key(&stream);
        entities.insert(
            stream.clone(),
            store.entity(&key).await.expect("entity lookup"),
        );
        transitions.insert(
            stream,
            store.transitions(&key).await.expect("transitions lookup"),
        );
    }
    Snapshot {
        events,
        entities,
        transitions,
        depth: outbox.depth().await.expect("queue depth"),
        dead_letters: DeadLetters::dead_letters(outbox, usize::MAX >> 1)
            .await
            .expect("dead letters"),
    }
}

/// Takes every live message off the queue in queue order (received one at a time through
/// `PullQueue`, each acked), leaving it empty; dead letters stay. Destructive: for the end
/// of a test, or where the queue is the test's own to read.
pub async fn drain_queue(outbox: &Outbox) -> Vec<OutboxMessage> {
    let mut out = Vec::new();
    loop {
        // Far in the future: every message is visible, whatever its retry time.
        let batch = outbox.receive(i64::MAX >> 1, 1, 0).await.expect("receive");
        let Some(message) = batch.into_iter().next() else {
            break;
        };
        outbox
            .settle(vec![Settlement::Ack { seq: message.seq }])
            .await
            .expect("ack");
        out.push(message);
    }
    assert_eq!(outbox.depth().await.expect("queue depth"), 0, "drained");
    out
}

/// [`drain_queue`]'s bodies, parsed.
pub async fn drain_bodies(outbox: &Outbox) -> Vec<serde_json::Value> {
    drain_queue(outbox)
        .await
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("a JSON message body"))
        .collect()
}
