//! The DynamoDB store (DESIGN §5): three tables, items converted with `serde_dynamo`.
//!
//! | table | key | item |
//! | --- | --- | --- |
//! | events (`EVENTS_TABLE`) | `event_key` | [`EventItem`]: gzip body (Binary), kept headers, entity keys, the keys of its transitions, status, `received_at`, TTL `expires_at` (unix seconds) |
//! | entities (`ENTITIES_TABLE`) | `pk` = `{source}#{tenant}`, `sk` = `{kind}#{id}` | [`EntityItem`]: `version` (µs), `state`, `data` (JSON text, lossless), `last_event_key` |
//! | transitions (`TRANSITIONS_TABLE`) | `pk` = `{source}#{tenant}#{kind}#{id}`, `sk` = `{version}#{event_id}` | [`TransitionItem`]: id, event key, from, to, flag, queued, published, the queued message (JSON text), notification outcome |
//!
//! # One write per accepted event
//!
//! [`Store::persist`] applies the shared rules ([`decide()`]) and writes everything in ONE
//! `TransactWriteItems`: the event (`Put`, condition `attribute_not_exists(event_key)`: the
//! dedupe), each entity to write (an `Update` setting every attribute of the serialised
//! [`EntityItem`], so an update without a state keeps the stored one, as SQLite's upsert
//! does), and each transition (`Put`, `attribute_not_exists(pk)`). An entity decided
//! optimistically but not written (a transition its lifecycle forbids) gets a
//! `ConditionCheck` of the same guard, so the decision stays exact. On the happy path
//! nothing is read first: the decision is taken *optimistically* as if nothing were stored,
//! and the entity's condition states exactly when that decision is right —
//! `attribute_not_exists(pk) OR (version <= :v AND (NOT state IN (terminal states) OR
//! state = :new_state))`, i.e. nothing stored, or an older-or-equal version the event may
//! move on from. Only an entity with an update whose transition is inferred from the stored
//! state (`TransitionRule::FromStored`) is read first (consistent `BatchGetItem`), and
//! then guards the write with `version = :read AND last_event_key = :read` (optimistic
//! locking; `last_event_key` names the one write that produced the item).
//!
//! When the transaction is cancelled, its `CancellationReasons` (one per item) say why:
//! - the event item's condition failed: a **duplicate**. Nothing was written. The stored event
//!   comes back in the reason (`ReturnValuesOnConditionCheckFailure = ALL_OLD`); its
//!   transitions are read (consistent `BatchGetItem` of the keys kept on the event) and those
//!   queued but not yet `published` are handed back to be sent again (outbox semantics);
//! - an entity's condition failed (the entity is newer, terminal, or was changed since it was
//!   read) or a `TransactionConflict`: the entities are read (consistently), the rules are
//!   applied to what is really stored, and the transaction is sent again with locking
//!   conditions. Bounded: after [`MAX_ATTEMPTS`] the request fails with
//!   [`StoreError::Contention`] (503, the provider retries);
//! - a transition's condition failed alone: it is already stored (an event whose record
//!   expired by TTL was redelivered). It is left as it is and the rest is written.
//!
//! Concurrent duplicates therefore resolve to one winner by the event's condition, never by
//! read-then-write, and nothing is ever half written: a transaction is all or nothing. Any
//! SDK failure (throttling after the SDK's own retries, an unreachable endpoint, 5xx) is
//! [`StoreError::Unavailable`], which the pipeline answers with 503.
//!
//! # Events naming more entities than one transaction holds
//!
//! DynamoDB allows 100 actions per transaction (4 MB in total). An event naming more
//! entities than fit (a `SKU.CHANGE_STOCK` with a hundred warehouses) is still accepted —
//! answering 4xx to valid input would lose it — but it cannot be atomic: its entity and
//! transition writes go out in several transactions of at most the limit, and the **event
//! item is always written last, in the final transaction**, as the commit marker. If a
//! chunk fails the request answers 503 and the event is not recorded, so the provider's
//! retry is not a duplicate and re-applies every chunk: entity writes are version-guarded
//! upserts (re-applying the same version is a no-op in effect) and transitions already
//! stored are kept. Dedupe keeps working because only the event item decides duplicates.
//! The one imperfection: a transition inferred from the stored state (`FromStored`) that was
//! written by a failed attempt is not inferred again on the retry (the entity already holds
//! the new state), so it stays recorded but is not queued. No current provider sends such
//! fan-out events with inferred transitions. The limit is configurable
//! ([`DynamoDbStore::with_transaction_limit`]): moto 5.2 still enforces the old limit of 25.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, ConditionCheck,
    KeySchemaElement, KeyType, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use tracing::{debug, warn};

use crate::config::{vars, ConfigError, Env};
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey, NormalisedEvent, TransitionMessage, TransitionRule};
use crate::store::{
    compress, decide, decompress, DeliveryRecord, EventStatus, IncomingEvent, PendingPublish,
    PersistOutcome, Snapshot, Store, StoredEntity, StoredEvent, StoredTransition, TransitionRecord,
};
use crate::version::Version;

type Item = HashMap<String, AttributeValue>;

/// Transaction attempts per event before giving up with [`StoreError::Contention`].
pub const MAX_ATTEMPTS: u32 = 8;
/// DynamoDB's limit of actions in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Bytes per transaction we allow ourselves (DynamoDB's limit is 4 MB).
const MAX_TRANSACTION_BYTES: usize = 3_500_000;
/// `BatchGetItem` takes at most 100 keys.
const MAX_BATCH_GET: usize = 100;

/// The three table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub events: String,
    pub entities: String,
    pub transitions: String,
}

impl Tables {
    /// `EVENTS_TABLE`, `ENTITIES_TABLE`, `TRANSITIONS_TABLE`; a missing one is named.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Tables {
            events: env.require(&vars::EVENTS_TABLE)?,
            entities: env.require(&vars::ENTITIES_TABLE)?,
            transitions: env.require(&vars::TRANSITIONS_TABLE)?,
        })
    }

    /// `{prefix}-events`, `{prefix}-entities`, `{prefix}-transitions`.
    pub fn with_prefix(prefix: &str) -> Self {
        Tables {
            events: format!("{prefix}-events"),
            entities: format!("{prefix}-entities"),
            transitions: format!("{prefix}-transitions"),
        }
    }
}

// ---- items -------------------------------------------------------------------------------

/// An events-table item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    pub event_key: String,
    pub source: String,
    pub tenant: String,
    pub event_type: String,
    pub status: String,
    /// The raw body, gzip-compressed, stored as Binary.
    #[serde(with = "binary")]
    pub body_gz: Vec<u8>,
    pub headers: Vec<HeaderItem>,
    /// Every entity the event names: `{source}#{tenant}#{kind}#{id}`.
    pub entity_keys: Vec<String>,
    /// The transitions the event recorded, so a duplicate finds them with one read.
    pub transition_keys: Vec<ItemKey>,
    /// Unix seconds.
    pub received_at: i64,
    /// TTL attribute: unix seconds after which DynamoDB may delete the item.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderItem {
    pub name: String,
    pub value: String,
}

/// A `pk`/`sk` key (entities and transitions tables).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    fn of_entity(key: &EntityKey) -> Self {
        ItemKey {
            pk: key.partition(),
            sk: key.sort(),
        }
    }

    fn to_item(&self) -> Result<Item, StoreError> {
        to_item(self)
    }
}

/// An entities-table item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityItem {
    pub pk: String,
    pub sk: String,
    /// Microseconds since the epoch (see `version`).
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The provider's object as JSON text (kept byte-exact: no number conversion).
    pub data: String,
    pub last_event_key: String,
}

/// The part of an entity item the rules and the locking condition need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct EntityHead {
    pk: String,
    sk: String,
    version: i64,
    #[serde(default)]
    state: Option<String>,
    last_event_key: String,
}

/// A transitions-table item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionItem {
    pub pk: String,
    pub sk: String,
    pub transition_id: String,
    pub event_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// `not_allowed` or `terminal` when the transition was flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    pub queued: bool,
    /// Set by the notifier (`record_delivery`); the ingest path never writes it.
    pub published: bool,
    /// The queued message, as JSON text.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<DeliveryRecord>,
}

impl TransitionItem {
    fn from_record(record: &TransitionRecord, event_key: &EventKey) -> Result<Self, StoreError> {
        Ok(TransitionItem {
            pk: record.stream.clone(),
            sk: record.sort.clone(),
            transition_id: record.message.transition_id.clone(),
            event_key: event_key.to_string(),
            from: record.message.from.clone(),
            to: record.message.to.clone(),
            flag: record.flag.map(|f| f.as_str().to_string()),
            queued: record.queued,
            published: false,
            message: serde_json::to_string(&record.message)
                .map_err(|e| StoreError::Corrupt(format!("transition message: {e}")))?,
            notification: None,
        })
    }

    fn into_stored(self) -> StoredTransition {
        StoredTransition {
            sort: self.sk,
            transition_id: self.transition_id,
            from: self.from,
            to: self.to,
            event_key: self.event_key,
            flag: self.flag,
            queued: self.queued,
            published: self.published,
            notification: self.notification,
        }
    }
}

/// Binary attributes for `Vec<u8>` (serde_dynamo writes `B` for `serialize_bytes`).
mod binary {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("binary data")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    dynamo::to_item(value).map_err(|e| StoreError::Corrupt(format!("item conversion: {e}")))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("stored item: {e}")))
}

fn unavailable<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("dynamodb {op}: {}", DisplayErrorContext(&err)))
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("dynamodb request: {e}"))
}

// ---- planning (pure) ---------------------------------------------------------------------

/// What the store holds for an entity, as read with a consistent read.
#[derive(Debug, Clone, PartialEq)]
struct Current {
    snapshot: Snapshot,
    last_event_key: String,
}

/// The condition an entity write is sent with.
#[derive(Debug, Clone, PartialEq)]
enum Guard {
    /// Not read: holds when nothing is stored, or the stored version is not newer and its
    /// state is not one this update may not leave — exactly the stored items for which
    /// `decide(.., None)` (the decision taken) equals `decide(.., Some(stored))`.
    Optimistic {
        version: i64,
        terminal: &'static [&'static str],
        state: Option<String>,
    },
    /// Read, and nothing was stored.
    Absent,
    /// Read: the item is still the one read (the write that produced it is named by
    /// `last_event_key`, since every event writes an entity at most once).
    Unchanged {
        version: i64,
        last_event_key: String,
    },
}

/// A DynamoDB condition with its placeholders.
#[derive(Debug, Clone, PartialEq, Default)]
struct Condition {
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Condition {
    fn not_exists(attribute: &str) -> Self {
        Condition {
            expression: "attribute_not_exists(#k)".to_string(),
            names: HashMap::from([("#k".to_string(), attribute.to_string())]),
            values: HashMap::new(),
        }
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_string(), attribute.to_string());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_string(), value);
        self
    }
}

impl Guard {
    fn condition(&self) -> Condition {
        match self {
            Guard::Absent => Condition::not_exists("pk"),
            Guard::Unchanged {
                version,
                last_event_key,
            } => Condition {
                expression: "#v = :v AND #le = :le".to_string(),
                ..Default::default()
            }
            .name("#v", "version")
            .name("#le", "last_event_key")
            .value(":v", AttributeValue::N(version.to_string()))
            .value(":le", AttributeValue::S(last_event_key.clone())),
            Guard::Optimistic {
                version,
                terminal,
                state,
            } => {
                let mut cond = Condition::default()
                    .name("#pk", "pk")
                    .name("#v", "version")
                    .value(":v", AttributeValue::N(version.to_string()));
                let mut expression = "attribute_not_exists(#pk) OR (#v <= :v".to_string();
                if !terminal.is_empty() {
                    let placeholders: Vec<String> =
                        (0..terminal.len()).map(|i| format!(":t{i}")).collect();
                    for (p, s) in placeholders.iter().zip(terminal.iter()) {
                        cond = cond.value(p, AttributeValue::S(s.to_string()));
                    }
                    cond = cond.name("#st", "state");
                    let not_terminal = format!("NOT (#st IN ({}))", placeholders.join(", "));
                    match state {
                        Some(s) => {
                            cond = cond.value(":st", AttributeValue::S(s.clone()));
                            expression.push_str(&format!(" AND ({not_terminal} OR #st = :st)"));
                        }
                        None => expression.push_str(&format!(" AND {not_terminal}")),
                    }
                }
                expression.push(')');
                cond.expression = expression;
                cond
            }
        }
    }
}

/// One entity's item in the transaction.
#[derive(Debug, Clone, PartialEq)]
struct EntityWrite {
    key: ItemKey,
    /// The upsert; `None` for an entity decided optimistically but not written (a transition
    /// the lifecycle forbids): a `ConditionCheck` of its guard then keeps the decision exact.
    item: Option<EntityItem>,
    guard: Guard,
}

/// Everything one attempt writes, decided from what is known of the stored entities.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    status: EventStatus,
    /// At most one per distinct entity, in the order the event names them.
    entities: Vec<EntityWrite>,
    /// One per distinct transition id, in decision order.
    transitions: Vec<TransitionRecord>,
}

impl Plan {
    fn outcome(&self) -> PersistOutcome {
        PersistOutcome {
            duplicate: false,
            status: self.status,
            to_publish: self
                .transitions
                .iter()
                .filter(|t| t.queued)
                .map(|t| PendingPublish {
                    stream: t.stream.clone(),
                    sort: t.sort.clone(),
                    message: t.message.clone(),
                })
                .collect(),
        }
    }
}

/// The entities that need their stored state to be decided: those with an update whose
/// transition is inferred from it (`FromStored`).
fn needs_read(event: &NormalisedEvent) -> Vec<EntityKey> {
    let inferred: HashSet<String> = event
        .entities
        .iter()
        .filter(|u| u.transition == TransitionRule::FromStored)
        .map(|u| u.key.stream())
        .collect();
    distinct_keys(event)
        .into_iter()
        .filter(|k| inferred.contains(&k.stream()))
        .collect()
}

/// Distinct entity keys in the order the event names them.
fn distinct_keys(event: &NormalisedEvent) -> Vec<EntityKey> {
    let mut seen = HashSet::new();
    event
        .entities
        .iter()
        .filter(|u| seen.insert(u.key.stream()))
        .map(|u| u.key.clone())
        .collect()
}

/// Applies the rules to the event's updates in order, as the SQLite backend does in its
/// transaction: `known` holds the entities read (by stream; `None` = not stored); any other
/// entity is decided optimistically (as if nothing were stored) under a
/// [`Guard::Optimistic`] condition. An entity the event names twice is decided the second
/// time against the first update's result, and written once (its last written state). An
/// update without a state keeps the stored one (as the SQLite upsert's `COALESCE`).
fn plan(event: &NormalisedEvent, known: &HashMap<String, Option<Current>>) -> Plan {
    struct Slot {
        key: ItemKey,
        guard: Guard,
        /// What the entity holds at this point of the event.
        now: Option<Snapshot>,
        write: Option<EntityItem>,
    }
    let event_key = event.key();
    let mut slots: Vec<Slot> = Vec::new();
    let mut transitions: Vec<TransitionRecord> = Vec::new();
    let mut transition_ids = HashSet::new();
    let mut decisions = Vec::with_capacity(event.entities.len());

    for update in &event.entities {
        let stream = update.key.stream();
        let key = ItemKey::of_entity(&update.key);
        let index = match slots.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                let (guard, now) = match known.get(&stream) {
                    Some(Some(current)) => (
                        Guard::Unchanged {
                            version: current.snapshot.version.micros(),
                            last_event_key: current.last_event_key.clone(),
                        },
                        Some(current.snapshot.clone()),
                    ),
                    Some(None) => (Guard::Absent, None),
                    None => {
                        debug_assert!(
                            event.entities.iter().all(|u| u.key != update.key
                                || u.transition != TransitionRule::FromStored),
                            "an entity with a FromStored update is decided on a read"
                        );
                        (
                            Guard::Optimistic {
                                version: update.version.micros(),
                                terminal: update.lifecycle.terminal_states(),
                                state: update.state.clone(),
                            },
                            None,
                        )
                    }
                };
                slots.push(Slot {
                    key,
                    guard,
                    now,
                    write: None,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        let decision = decide(&event_key, &event.event_id, update, slot.now.as_ref());
        if decision.write_entity {
            let state = update
                .state
                .clone()
                .or_else(|| slot.now.as_ref().and_then(|s| s.state.clone()));
            slot.now = Some(Snapshot {
                version: update.version,
                state,
            });
            slot.write = Some(EntityItem {
                pk: update.key.partition(),
                sk: update.key.sort(),
                version: update.version.micros(),
                state: update.state.clone(),
                data: update.data.to_string(),
                last_event_key: event_key.to_string(),
            });
        }
        if let Some(t) = &decision.transition {
            if transition_ids.insert(t.message.transition_id.clone()) {
                transitions.push(t.clone());
            }
        }
        decisions.push(decision);
    }

    let entities = slots
        .into_iter()
        .filter(|s| s.write.is_some() || matches!(s.guard, Guard::Optimistic { .. }))
        .map(|s| EntityWrite {
            key: s.key,
            item: s.write,
            guard: s.guard,
        })
        .collect();
    Plan {
        status: EventStatus::summarise(&decisions),
        entities,
        transitions,
    }
}

/// What one item of a transaction is, to read its cancellation reason.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Event,
    Entity,
    /// A transition, by id.
    Transition(String),
}

/// The outcome of one attempt to write a plan.
#[derive(Debug, PartialEq)]
enum Attempt {
    Committed,
    /// The event is stored already; the stored item when the reason carried it.
    Duplicate(Option<Box<Item>>),
    /// An entity changed under us (or a transaction conflict): read and plan again.
    Conflict,
    /// These transitions are stored already: plan again without writing them.
    TransitionsExist(Vec<String>),
}

/// Reads the cancellation reasons of a transaction of `ops` (same order).
fn classify(ops: &[Op], reasons: &[CancellationReason]) -> Result<Attempt, StoreError> {
    let mut conflict = false;
    let mut existing = Vec::new();
    let mut failure = None;
    for (op, reason) in ops.iter().zip(reasons) {
        match (reason.code().unwrap_or("None"), op) {
            ("None", _) => {}
            ("ConditionalCheckFailed", Op::Event) => {
                return Ok(Attempt::Duplicate(reason.item().cloned().map(Box::new)))
            }
            ("ConditionalCheckFailed", Op::Entity) | ("TransactionConflict", _) => conflict = true,
            ("ConditionalCheckFailed", Op::Transition(id)) => existing.push(id.clone()),
            (code, _) => {
                failure.get_or_insert_with(|| {
                    format!(
                        "dynamodb transaction cancelled: {code}: {}",
                        reason.message().unwrap_or("")
                    )
                });
            }
        }
    }
    if let Some(message) = failure {
        return Err(StoreError::Unavailable(message));
    }
    if conflict {
        Ok(Attempt::Conflict)
    } else if !existing.is_empty() {
        Ok(Attempt::TransitionsExist(existing))
    } else {
        Err(StoreError::Unavailable(
            "dynamodb transaction cancelled without a reason".to_string(),
        ))
    }
}

/// Approximate stored size of an item (names + values), for the transaction byte limit.
fn approx_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + approx_size(m),
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + 1 + value(v)).sum()
}

/// Splits the writes into transactions of at most `limit` items and
/// [`MAX_TRANSACTION_BYTES`], the event item last in the final one (the commit marker).
fn chunk(
    writes: Vec<(Op, TransactWriteItem, usize)>,
    event: (Op, TransactWriteItem, usize),
    limit: usize,
) -> Vec<Vec<(Op, TransactWriteItem)>> {
    let mut chunks: Vec<Vec<(Op, TransactWriteItem)>> = Vec::new();
    let mut current: Vec<(Op, TransactWriteItem)> = Vec::new();
    let mut bytes = 0;
    let event_bytes = event.2;
    for (op, item, size) in writes {
        if !current.is_empty() && (current.len() >= limit || bytes + size > MAX_TRANSACTION_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((op, item));
    }
    if !current.is_empty()
        && (current.len() + 1 > limit || bytes + event_bytes > MAX_TRANSACTION_BYTES)
    {
        chunks.push(std::mem::take(&mut current));
    }
    // The event item first within its transaction (index 0 in the reasons), written with
    // the final chunk.
    current.insert(0, (event.0, event.1));
    chunks.push(current);
    chunks
}

// ---- the store ---------------------------------------------------------------------------

/// DynamoDB implementation of [`Store`]. Cheap to clone (the SDK client is shared).
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: Client,
    tables: Tables,
    transaction_limit: usize,
}

impl DynamoDbStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        DynamoDbStore {
            client,
            tables,
            transaction_limit: MAX_TRANSACTION_ITEMS,
        }
    }

    /// Caps the items per transaction (2 to 100; moto 5.2 accepts at most 25).
    pub fn with_transaction_limit(mut self, limit: usize) -> Self {
        self.transaction_limit = limit.clamp(2, MAX_TRANSACTION_ITEMS);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates the three tables (on-demand capacity, TTL on `expires_at`) unless they exist.
    /// For emulators and local development: in AWS, template.yaml owns the tables. Tables
    /// are usable at once on moto and DynamoDB Local; on AWS they take a few seconds.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        self.create_table(&self.tables.events, "event_key", None)
            .await?;
        self.create_table(&self.tables.entities, "pk", Some("sk"))
            .await?;
        self.create_table(&self.tables.transitions, "pk", Some("sk"))
            .await?;
        self.client
            .update_time_to_live()
            .table_name(&self.tables.events)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| unavailable("UpdateTimeToLive", e))?;
        Ok(())
    }

    async fn create_table(
        &self,
        name: &str,
        hash: &str,
        range: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attribute, key_type) in [(Some(hash), KeyType::Hash), (range, KeyType::Range)] {
            let Some(attribute) = attribute else { continue };
            request = request
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attribute)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(build_error)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attribute)
                        .key_type(key_type)
                        .build()
                        .map_err(build_error)?,
                );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("CreateTable", e)),
        }
    }

    /// Consistent reads of the given entities: for each, what is stored (`None`: nothing).
    async fn read_entities(
        &self,
        keys: &[EntityKey],
    ) -> Result<HashMap<String, Option<Current>>, StoreError> {
        let mut out: HashMap<String, Option<Current>> = HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut by_key = HashMap::new();
        let mut item_keys = Vec::with_capacity(keys.len());
        for key in keys {
            let item_key = ItemKey::of_entity(key);
            out.insert(key.stream(), None);
            by_key.insert(item_key.clone(), key.stream());
            item_keys.push(item_key);
        }
        let projection = (
            "#pk, #sk, #v, #st, #le",
            [
                ("#pk", "pk"),
                ("#sk", "sk"),
                ("#v", "version"),
                ("#st", "state"),
                ("#le", "last_event_key"),
            ],
        );
        for item in self
            .batch_get(&self.tables.entities, &item_keys, Some(projection))
            .await?
        {
            let head: EntityHead = from_item(item)?;
            let key = ItemKey {
                pk: head.pk.clone(),
                sk: head.sk.clone(),
            };
            if let Some(stream) = by_key.get(&key) {
                out.insert(
                    stream.clone(),
                    Some(Current {
                        snapshot: Snapshot {
                            version: Version::from_micros(head.version),
                            state: head.state,
                        },
                        last_event_key: head.last_event_key,
                    }),
                );
            }
        }
        Ok(out)
    }

    /// Consistent `BatchGetItem` of `keys` (any number), retrying unprocessed keys.
    async fn batch_get(
        &self,
        table: &str,
        keys: &[ItemKey],
        projection: Option<(&str, [(&str, &str); 5])>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut request_keys = chunk
                .iter()
                .map(ItemKey::to_item)
                .collect::<Result<Vec<_>, _>>()?;
            let mut round = 0u32;
            while !request_keys.is_empty() {
                let mut spec = KeysAndAttributes::builder()
                    .set_keys(Some(request_keys))
                    .consistent_read(true);
                if let Some((expression, names)) = projection {
                    spec = spec.projection_expression(expression);
                    for (placeholder, name) in names {
                        spec = spec.expression_attribute_names(placeholder, name);
                    }
                }
                let response = self
                    .client
                    .batch_get_item()
                    .request_items(table, spec.build().map_err(build_error)?)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", e))?;
                if let Some(items) = response.responses().and_then(|r| r.get(table)) {
                    found.extend(items.iter().cloned());
                }
                request_keys = response
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !request_keys.is_empty() {
                    round += 1;
                    if round >= MAX_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "dynamodb BatchGetItem: {} keys of {table} left unprocessed",
                            request_keys.len()
                        )));
                    }
                    backoff(round).await;
                }
            }
        }
        Ok(found)
    }

    /// The transaction items of one attempt, split into transactions (see the module doc).
    fn transactions(
        &self,
        incoming: &IncomingEvent,
        plan: &Plan,
        stored_transitions: &HashSet<String>,
    ) -> Result<Vec<Vec<(Op, TransactWriteItem)>>, StoreError> {
        let event = &incoming.event;
        let event_key = event.key();
        let event_item = EventItem {
            event_key: event_key.to_string(),
            source: event.source.as_str().to_string(),
            tenant: event.tenant.to_string(),
            event_type: event.event_type.clone(),
            status: plan.status.as_str().to_string(),
            body_gz: compress(&incoming.raw_body),
            headers: incoming
                .headers
                .iter()
                .map(|(name, value)| HeaderItem {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            entity_keys: event.entities.iter().map(|u| u.key.stream()).collect(),
            transition_keys: plan
                .transitions
                .iter()
                .map(|t| ItemKey {
                    pk: t.stream.clone(),
                    sk: t.sort.clone(),
                })
                .collect(),
            received_at: incoming.received_at.unix_timestamp(),
            expires_at: incoming.expires_at,
        };
        let (event_put, event_size) = self.put(
            &self.tables.events,
            to_item(&event_item)?,
            Condition::not_exists("event_key"),
            true,
        )?;

        let transition_write =
            |t: &TransitionRecord| -> Result<(Op, TransactWriteItem, usize), StoreError> {
                let item = to_item(&TransitionItem::from_record(t, &event_key)?)?;
                let (put, size) = self.put(
                    &self.tables.transitions,
                    item,
                    Condition::not_exists("pk"),
                    false,
                )?;
                Ok((Op::Transition(t.message.transition_id.clone()), put, size))
            };
        let pending: Vec<&TransitionRecord> = plan
            .transitions
            .iter()
            .filter(|t| !stored_transitions.contains(&t.message.transition_id))
            .collect();
        let mut placed = vec![false; pending.len()];
        // Each entity followed by its transitions, so a split keeps them together.
        let mut writes = Vec::with_capacity(plan.entities.len() + pending.len());
        for write in &plan.entities {
            let stream = format!("{}#{}", write.key.pk, write.key.sk);
            let (item, size) = self.entity_write(write)?;
            writes.push((Op::Entity, item, size));
            for (i, t) in pending.iter().enumerate() {
                if !placed[i] && t.stream == stream {
                    writes.push(transition_write(t)?);
                    placed[i] = true;
                }
            }
        }
        for (i, t) in pending.iter().enumerate() {
            if !placed[i] {
                writes.push(transition_write(t)?);
            }
        }
        Ok(chunk(
            writes,
            (Op::Event, event_put, event_size),
            self.transaction_limit,
        ))
    }

    /// An entity's transaction item: an `Update` setting every attribute of the serialised
    /// [`EntityItem`] (one without a state leaves the stored state as it is), or a
    /// `ConditionCheck` of the guard when the entity is not written.
    fn entity_write(&self, write: &EntityWrite) -> Result<(TransactWriteItem, usize), StoreError> {
        let condition = write.guard.condition();
        let key = write.key.to_item()?;
        let Some(entity) = &write.item else {
            let check = ConditionCheck::builder()
                .table_name(&self.tables.entities)
                .set_key(Some(key))
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values(Some(condition.values).filter(|v| !v.is_empty()))
                .build()
                .map_err(build_error)?;
            return Ok((
                TransactWriteItem::builder().condition_check(check).build(),
                200,
            ));
        };
        let item = to_item(entity)?;
        let size = approx_size(&item);
        let mut names = condition.names;
        let mut values = condition.values;
        let mut sets = Vec::with_capacity(item.len());
        let mut attributes: Vec<(String, AttributeValue)> = item
            .into_iter()
            .filter(|(name, _)| name != "pk" && name != "sk")
            .collect();
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            names.insert(format!("#u{i}"), name);
            values.insert(format!(":u{i}"), value);
            sets.push(format!("#u{i} = :u{i}"));
        }
        let update = Update::builder()
            .table_name(&self.tables.entities)
            .set_key(Some(key))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        Ok((TransactWriteItem::builder().update(update).build(), size))
    }

    /// One conditional `Put` of a transaction, and its approximate size.
    fn put(
        &self,
        table: &str,
        item: Item,
        condition: Condition,
        return_old: bool,
    ) -> Result<(TransactWriteItem, usize), StoreError> {
        let size = approx_size(&item);
        let mut put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names));
        if !condition.values.is_empty() {
            put = put.set_expression_attribute_values(Some(condition.values));
        }
        if return_old {
            put = put.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        let put = put.build().map_err(build_error)?;
        Ok((TransactWriteItem::builder().put(put).build(), size))
    }

    /// Sends an attempt's transactions in order; the first that is cancelled decides.
    async fn write(
        &self,
        transactions: Vec<Vec<(Op, TransactWriteItem)>>,
    ) -> Result<Attempt, StoreError> {
        for transaction in transactions {
            let (ops, items): (Vec<Op>, Vec<TransactWriteItem>) = transaction.into_iter().unzip();
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => {}
                Err(err) => {
                    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                        err.as_service_error()
                    {
                        return classify(&ops, cancelled.cancellation_reasons());
                    }
                    return Err(unavailable("TransactWriteItems", err));
                }
            }
        }
        Ok(Attempt::Committed)
    }

    /// A duplicate: the stored event's status, and its transitions not yet published.
    async fn duplicate(
        &self,
        key: &EventKey,
        stored: Option<Box<Item>>,
    ) -> Result<PersistOutcome, StoreError> {
        let item: EventItem = match stored {
            Some(item) => from_item(*item)?,
            None => match self.event_item(key, true).await? {
                Some(item) => item,
                // Deleted (TTL) between the failed condition and this read: try again.
                None => return Err(StoreError::Contention(key.to_string())),
            },
        };
        let mut transitions: Vec<TransitionItem> = self
            .batch_get(&self.tables.transitions, &item.transition_keys, None)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        transitions.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        let to_publish = transitions
            .into_iter()
            .filter(|t| t.queued && !t.published)
            .map(|t| {
                Ok(PendingPublish {
                    message: serde_json::from_str(&t.message)
                        .map_err(|e| StoreError::Corrupt(format!("transition message: {e}")))?,
                    stream: t.pk,
                    sort: t.sk,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(PersistOutcome {
            duplicate: true,
            status: EventStatus::parse(&item.status).unwrap_or(EventStatus::Applied),
            to_publish,
        })
    }

    async fn event_item(
        &self,
        key: &EventKey,
        consistent: bool,
    ) -> Result<Option<EventItem>, StoreError> {
        let response = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .key("event_key", AttributeValue::S(key.to_string()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        response.item.map(from_item).transpose()
    }

    async fn get(&self, table: &str, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        let response = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key.to_item()?))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(response.item)
    }
}

/// Exponential backoff with jitter between attempts (10 ms doubling, capped at 320 ms).
async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(5);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % base)
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// The transitions-table key of a queued message.
fn message_key(message: &TransitionMessage) -> Result<ItemKey, StoreError> {
    let (pk, sk) = crate::store::transition_key(message)?;
    Ok(ItemKey { pk, sk })
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn persist(&self, incoming: &IncomingEvent) -> Result<PersistOutcome, StoreError> {
        let event = &incoming.event;
        let key = event.key();
        let mut known = self.read_entities(&needs_read(event)).await?;
        let mut stored_transitions = HashSet::new();
        for attempt in 0..MAX_ATTEMPTS {
            let plan = plan(event, &known);
            let transactions = self.transactions(incoming, &plan, &stored_transitions)?;
            match self.write(transactions).await? {
                Attempt::Committed => return Ok(plan.outcome()),
                Attempt::Duplicate(stored) => return self.duplicate(&key, stored).await,
                Attempt::TransitionsExist(ids) => {
                    debug!(event_key = %key, ?ids, "transitions already stored, keeping them");
                    stored_transitions.extend(ids);
                }
                Attempt::Conflict => {
                    debug!(event_key = %key, attempt, "entity changed under the write, reading it");
                    if attempt > 0 {
                        backoff(attempt).await;
                    }
                    known = self.read_entities(&distinct_keys(event)).await?;
                }
            }
        }
        warn!(event_key = %key, attempts = MAX_ATTEMPTS, "giving up on contention");
        Err(StoreError::Contention(key.to_string()))
    }

    async fn record_delivery(
        &self,
        message: &TransitionMessage,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        let key = message_key(message)?;
        let notification = dynamo::to_attribute_value(record)
            .map_err(|e| StoreError::Corrupt(format!("delivery record: {e}")))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.transitions)
            .set_key(Some(key.to_item()?))
            .update_expression("SET #n = :n, #p = :p")
            .condition_expression("attribute_exists(#pk) AND #id = :id")
            .expression_attribute_names("#n", "notification")
            .expression_attribute_names("#p", "published")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#id", "transition_id")
            .expression_attribute_values(":n", notification)
            .expression_attribute_values(":p", AttributeValue::Bool(true))
            .expression_attribute_values(":id", AttributeValue::S(message.transition_id.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                warn!(
                    transition_id = %message.transition_id,
                    "delivery recorded for a transition that is not stored"
                );
                Ok(())
            }
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    async fn delivery(
        &self,
        message: &TransitionMessage,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let key = message_key(message)?;
        let Some(item) = self.get(&self.tables.transitions, &key).await? else {
            return Ok(None);
        };
        let item: TransitionItem = from_item(item)?;
        Ok(item
            .notification
            .filter(|_| item.transition_id == message.transition_id))
    }

    async fn event(&self, key: &EventKey) -> Result<Option<StoredEvent>, StoreError> {
        let Some(item) = self.event_item(key, true).await? else {
            return Ok(None);
        };
        Ok(Some(StoredEvent {
            status: EventStatus::parse(&item.status)
                .ok_or_else(|| StoreError::Corrupt(item.status.clone()))?,
            raw_body: decompress(&item.body_gz)?,
            event_key: item.event_key,
            event_type: item.event_type,
            entity_keys: item.entity_keys,
            received_at: item.received_at,
            expires_at: item.expires_at,
        }))
    }

    async fn entity(&self, key: &EntityKey) -> Result<Option<StoredEntity>, StoreError> {
        let Some(item) = self
            .get(&self.tables.entities, &ItemKey::of_entity(key))
            .await?
        else {
            return Ok(None);
        };
        let item: EntityItem = from_item(item)?;
        Ok(Some(StoredEntity {
            version: item.version,
            state: item.state,
            data: serde_json::from_str(&item.data)
                .map_err(|e| StoreError::Corrupt(format!("entity data: {e}")))?,
            last_event_key: item.last_event_key,
        }))
    }

    async fn transitions(&self, key: &EntityKey) -> Result<Vec<StoredTransition>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.transitions)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", AttributeValue::S(key.stream()))
            .consistent_read(true)
            .scan_index_forward(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| unavailable("Query", e))?;
            out.push(from_item::<TransitionItem>(item)?.into_stored());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Lifecycle;
    use crate::model::{EntityUpdate, Source, Tenant};
    use crate::store::Flag;
    use serde_json::json;

    fn update(id: &str, version: i64, state: &str, rule: TransitionRule) -> EntityUpdate {
        EntityUpdate {
            key: EntityKey::new(
                Source::Fulfilment,
                Tenant::new("XYZ"),
                crate::model::EntityKind::Order,
                id,
            ),
            version: Version::from_micros(version),
            state: Some(state.to_string()),
            data: json!({"id": id, "n": 1.50}),
            transition: rule,
            lifecycle: Lifecycle::Free,
        }
    }

    fn event(entities: Vec<EntityUpdate>) -> NormalisedEvent {
        NormalisedEvent {
            source: Source::Fulfilment,
            event_id: "d1".into(),
            event_type: "order.status_changed".into(),
            provider_event: "ORDER.CHANGE_STATUS".into(),
            tenant: Tenant::new("XYZ"),
            entities,
        }
    }

    fn declared(from: &str, to: &str) -> TransitionRule {
        TransitionRule::Declared {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn happy_path_is_optimistic_and_reads_nothing() {
        let e = event(vec![update("1", 5, "B", declared("A", "B"))]);
        assert!(needs_read(&e).is_empty());
        let p = plan(&e, &HashMap::new());
        assert_eq!(p.status, EventStatus::Applied);
        assert_eq!(p.entities.len(), 1);
        assert_eq!(
            p.entities[0].guard,
            Guard::Optimistic {
                version: 5,
                terminal: &[],
                state: Some("B".into())
            }
        );
        assert_eq!(
            p.entities[0].item.as_ref().unwrap().last_event_key,
            "fulfilment#d1"
        );
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.outcome().to_publish.len(), 1);
        let c = p.entities[0].guard.condition();
        assert_eq!(c.expression, "attribute_not_exists(#pk) OR (#v <= :v)");
        assert_eq!(c.values[":v"], AttributeValue::N("5".into()));
    }

    #[test]
    fn invoice_guard_excludes_terminal_states_unless_unchanged() {
        let mut u = update("inv", 7, "Pending", declared("Ready", "Pending"));
        u.lifecycle = Lifecycle::Invoice;
        let p = plan(&event(vec![u.clone()]), &HashMap::new());
        let c = p.entities[0].guard.condition();
        assert_eq!(
            c.expression,
            "attribute_not_exists(#pk) OR (#v <= :v AND (NOT (#st IN (:t0, :t1, :t2, :t3)) OR #st = :st))"
        );
        assert_eq!(c.names["#st"], "state");
        assert_eq!(c.values[":st"], AttributeValue::S("Pending".into()));
        assert_eq!(c.values.len(), 6);
        u.state = None;
        let c = plan(&event(vec![u]), &HashMap::new()).entities[0]
            .guard
            .condition();
        assert!(c
            .expression
            .ends_with("AND NOT (#st IN (:t0, :t1, :t2, :t3)))"));
    }

    #[test]
    fn from_stored_needs_a_read_and_locks_on_what_was_read() {
        let e = event(vec![update("1", 9, "PAID", TransitionRule::FromStored)]);
        assert_eq!(needs_read(&e).len(), 1);
        let stream = e.entities[0].key.stream();
        let known = HashMap::from([(
            stream.clone(),
            Some(Current {
                snapshot: Snapshot {
                    version: Version::from_micros(3),
                    state: Some("NEW".into()),
                },
                last_event_key: "fulfilment#d0".into(),
            }),
        )]);
        let p = plan(&e, &known);
        assert_eq!(
            p.entities[0].guard,
            Guard::Unchanged {
                version: 3,
                last_event_key: "fulfilment#d0".into()
            }
        );
        assert_eq!(p.transitions[0].message.from.as_deref(), Some("NEW"));
        assert_eq!(
            p.entities[0].guard.condition().expression,
            "#v = :v AND #le = :le"
        );
        let absent = plan(&e, &HashMap::from([(stream, None)]));
        assert_eq!(absent.entities[0].guard, Guard::Absent);
        assert!(absent.transitions.is_empty());
    }

    #[test]
    fn stale_and_terminal_entities_are_not_written_but_transitions_are() {
        let mut u = update("inv", 5, "Fail", declared("Pending", "Fail"));
        u.lifecycle = Lifecycle::Invoice;
        let e = event(vec![u]);
        let stream = e.entities[0].key.stream();
        let current = |v: i64, s: &str| {
            HashMap::from([(
                stream.clone(),
                Some(Current {
                    snapshot: Snapshot {
                        version: Version::from_micros(v),
                        state: Some(s.into()),
                    },
                    last_event_key: "invoice#x".into(),
                }),
            )])
        };
        let terminal = plan(&e, &current(4, "Complete"));
        assert!(terminal.entities.is_empty());
        assert_eq!(terminal.status, EventStatus::Flagged);
        assert_eq!(terminal.transitions[0].flag, Some(Flag::Terminal));
        assert!(terminal.outcome().to_publish.is_empty());
        let stale = plan(&e, &current(6, "Pending"));
        assert!(stale.entities.is_empty());
        assert_eq!(stale.status, EventStatus::Stale);
        assert!(stale.transitions[0].message.late);
    }

    #[test]
    fn a_forbidden_transition_checks_its_guard_without_writing() {
        let mut u = update("inv", 5, "Pending", declared("Complete", "Pending"));
        u.lifecycle = Lifecycle::Invoice;
        let p = plan(&event(vec![u]), &HashMap::new());
        assert_eq!(p.status, EventStatus::Flagged);
        assert_eq!(p.entities.len(), 1);
        assert!(p.entities[0].item.is_none());
        assert!(matches!(
            p.entities[0].guard,
            Guard::Optimistic { version: 5, .. }
        ));
        assert_eq!(p.transitions[0].flag, Some(Flag::NotAllowed));
        assert!(p.outcome().to_publish.is_empty());
    }

    #[test]
    fn an_update_without_state_keeps_the_state_for_later_updates() {
        let mut first = update("1", 5, "B", TransitionRule::None);
        first.state = None;
        let second = update("1", 6, "C", TransitionRule::FromStored);
        let e = event(vec![first, second]);
        let stream = e.entities[0].key.stream();
        let known = HashMap::from([(
            stream,
            Some(Current {
                snapshot: Snapshot {
                    version: Version::from_micros(3),
                    state: Some("A".into()),
                },
                last_event_key: "fulfilment#d0".into(),
            }),
        )]);
        assert_eq!(needs_read(&e).len(), 1);
        let p = plan(&e, &known);
        // the second update sees A (kept by the first), so it records A -> C
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.transitions[0].message.from.as_deref(), Some("A"));
    }

    #[test]
    fn an_entity_named_twice_is_written_once_with_its_last_state() {
        let e = event(vec![
            update("1", 5, "B", declared("A", "B")),
            update("2", 5, "X", TransitionRule::None),
            update("1", 6, "C", declared("B", "C")),
        ]);
        let p = plan(&e, &HashMap::new());
        assert_eq!(p.entities.len(), 2);
        let written = p.entities[0].item.as_ref().unwrap();
        assert_eq!(written.version, 6);
        assert_eq!(written.state.as_deref(), Some("C"));
        // guarded by the first update (what the stored item must satisfy)
        assert!(matches!(
            p.entities[0].guard,
            Guard::Optimistic { version: 5, .. }
        ));
        // same event + entity = same transition id: recorded once
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.transitions[0].message.to, "B");
    }

    #[test]
    fn chunks_put_the_event_last_and_respect_the_limit() {
        let put = || TransactWriteItem::builder().build();
        let writes: Vec<_> = (0..7).map(|_| (Op::Entity, put(), 10)).collect();
        let chunks = chunk(writes, (Op::Event, put(), 10), 3);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 2]);
        assert_eq!(chunks.last().unwrap()[0].0, Op::Event);
        assert!(chunks[..2]
            .iter()
            .flatten()
            .all(|(op, _)| *op == Op::Entity));
        // everything fits: one transaction, event first
        let writes: Vec<_> = (0..2).map(|_| (Op::Entity, put(), 10)).collect();
        let chunks = chunk(writes, (Op::Event, put(), 10), 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 3);
        assert_eq!(chunks[0][0].0, Op::Event);
        // a full last chunk leaves the event on its own
        let writes: Vec<_> = (0..3).map(|_| (Op::Entity, put(), 10)).collect();
        let sizes: Vec<usize> = chunk(writes, (Op::Event, put(), 10), 3)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![3, 1]);
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellation_reasons_tell_duplicates_from_conflicts() {
        let ops = [Op::Event, Op::Entity, Op::Transition("tr_1".into())];
        let dup = classify(
            &ops,
            &[
                reason("ConditionalCheckFailed"),
                reason("ConditionalCheckFailed"),
                reason("None"),
            ],
        )
        .unwrap();
        assert_eq!(dup, Attempt::Duplicate(None));
        let conflict = classify(
            &ops,
            &[
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
            ],
        )
        .unwrap();
        assert_eq!(conflict, Attempt::Conflict);
        let busy = classify(
            &ops,
            &[
                reason("None"),
                reason("TransactionConflict"),
                reason("None"),
            ],
        )
        .unwrap();
        assert_eq!(busy, Attempt::Conflict);
        let exists = classify(
            &ops,
            &[
                reason("None"),
                reason("None"),
                reason("ConditionalCheckFailed"),
            ],
        )
        .unwrap();
        assert_eq!(exists, Attempt::TransitionsExist(vec!["tr_1".into()]));
        let throttled = classify(
            &ops,
            &[reason("ThrottlingError"), reason("None"), reason("None")],
        );
        assert!(matches!(throttled, Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn items_round_trip_through_serde_dynamo() {
        let item = EventItem {
            event_key: "fulfilment#1".into(),
            source: "fulfilment".into(),
            tenant: "XYZ".into(),
            event_type: "order.status_changed".into(),
            status: "applied".into(),
            body_gz: compress(b"{\"a\":1}"),
            headers: vec![HeaderItem {
                name: "user-agent".into(),
                value: "x".into(),
            }],
            entity_keys: vec![],
            transition_keys: vec![ItemKey {
                pk: "a".into(),
                sk: "b".into(),
            }],
            received_at: 1,
            expires_at: 2,
        };
        let attrs = to_item(&item).unwrap();
        assert!(matches!(attrs["body_gz"], AttributeValue::B(_)));
        assert_eq!(attrs["expires_at"], AttributeValue::N("2".into()));
        assert_eq!(from_item::<EventItem>(attrs).unwrap(), item);

        let t = TransitionItem {
            pk: "p".into(),
            sk: "s".into(),
            transition_id: "tr".into(),
            event_key: "e".into(),
            from: None,
            to: "B".into(),
            flag: None,
            queued: true,
            published: false,
            message: "{}".into(),
            notification: Some(DeliveryRecord {
                outcome: "delivered".into(),
                status: None,
                attempt: 1,
                at: "2025-01-01T00:00:00Z".into(),
            }),
        };
        let attrs = to_item(&t).unwrap();
        assert!(!attrs.contains_key("from") && !attrs.contains_key("flag"));
        assert_eq!(attrs["published"], AttributeValue::Bool(false));
        assert_eq!(from_item::<TransitionItem>(attrs).unwrap(), t);
    }

    #[test]
    fn tables_from_env_name_the_missing_variable() {
        let env = Env::from_pairs([("EVENTS_TABLE", "e"), ("ENTITIES_TABLE", "n")]);
        let err = Tables::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("TRANSITIONS_TABLE"), "{err}");
    }
}
