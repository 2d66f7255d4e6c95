//! The storage ports, one per client (`ports`: ingest, delivery, operator, health): atomic
//! dedupe, version-guarded entity upsert and transition record, per ARCHITECTURE §5. The
//! adapters are `backends::sqlite` (local mode, tests) and
//! `backends::aws::dynamodb` (AWS); both apply the rules through the pure [`decide`] function,
//! so their semantics cannot drift apart.

pub mod decide;
pub mod inspect;
mod ports;
pub mod purge;

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use time::OffsetDateTime;

pub use crate::model::EventStatus;
pub use decide::{decide, Decision, Flag, Snapshot, TransitionRecord};
pub use inspect::{
    reapplied_status, EventFilter, EventPage, EventSummary, Listed, Order, Reapplied, Replayable,
    TransitionSelector,
};
pub use ports::{
    probe_key, Consistency, DeliveryStore, Detail, EventCounts, HealthProbe, IngestStore,
    OperatorStore, Store,
};
pub use purge::{Needle, PurgeTarget, Purged, QueuedCopy, VagueNeedle};

use crate::error::StoreError;
use crate::model::{
    EntityKey, EventKey, Identity, NormalisedEvent, Recognition, Source, Tenant, TransitionMessage,
};

/// A verified, normalised event with what the events table keeps of its request.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    /// Shared, so a store that hands the write to another thread (the SQLite writer) takes
    /// a reference, not a deep copy of every entity's `data`.
    pub event: std::sync::Arc<NormalisedEvent>,
    pub raw_body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub received_at: OffsetDateTime,
    /// TTL: unix seconds after which the event record may be deleted.
    pub expires_at: i64,
    /// Set when this delivery's declared id is stored already with another body: the event
    /// it conflicts with (stored on the event record as its flag; ARCHITECTURE §4).
    pub conflict_with: Option<EventKey>,
    /// TTL of the entities and transitions this event writes (unix seconds): each entity
    /// expires `ENTITY_RETENTION_DAYS` after the last event that wrote it (§5).
    pub entity_expires_at: i64,
}

impl IncomingEvent {
    pub fn key(&self) -> EventKey {
        self.event.key()
    }

    /// Whether the event id is made of the body's bytes or declared beside them.
    pub fn identity(&self) -> Identity {
        Identity::of(&self.event.event_id, &self.raw_body)
    }
}

impl EventStatus {
    /// The event's status from its shape and its entities' decisions.
    pub(crate) fn summarise(recognition: Recognition, decisions: &[Decision]) -> Self {
        if decisions.is_empty() && recognition == Recognition::Unrecognised {
            EventStatus::Unrecognised
        } else if decisions.is_empty() {
            EventStatus::Ignored
        } else if decisions
            .iter()
            .any(|d| d.future || d.transition.as_ref().is_some_and(|t| t.flag.is_some()))
        {
            EventStatus::Flagged
        } else if decisions.iter().any(|d| !d.write_entity) {
            EventStatus::Stale
        } else {
            EventStatus::Applied
        }
    }
}

/// A queued transition to send (again, on a duplicate, until the notifier marks it published).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPublish {
    pub stream: String,
    pub sort: String,
    pub message: TransitionMessage,
}

/// The result of [`IngestStore::persist`].
#[derive(Debug, Clone, PartialEq)]
pub struct PersistOutcome {
    /// The event key was already stored: nothing changed.
    pub duplicate: bool,
    pub status: EventStatus,
    /// Transitions to send: the new ones, or on a duplicate those not yet marked published.
    pub to_publish: Vec<PendingPublish>,
}

/// A stored event (read side, for tests and operators).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_key: EventKey,
    pub source: Source,
    pub tenant: Tenant,
    pub event_type: String,
    pub status: EventStatus,
    pub raw_body: Vec<u8>,
    /// The kept request headers (`http::KEPT_HEADERS`), in arrival order.
    pub headers: Vec<(String, String)>,
    pub entity_keys: Vec<EntityKey>,
    pub received_at: i64,
    pub expires_at: i64,
    /// The flag of a conflicting delivery: the event holding the same declared id with
    /// another body (ARCHITECTURE §4).
    pub conflict_with: Option<EventKey>,
}

impl StoredEvent {
    /// What a list line shows of the event.
    pub fn summary(&self) -> EventSummary {
        EventSummary {
            event_key: self.event_key.clone(),
            source: self.source,
            tenant: self.tenant.clone(),
            event_type: self.event_type.clone(),
            status: self.status,
            received_at: self.received_at,
            entities: self.entity_keys.len(),
        }
    }
}

/// A stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    pub version: i64,
    pub state: Option<String>,
    pub data: serde_json::Value,
    pub last_event_key: EventKey,
}

/// One row of an entity's state history.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTransition {
    pub sort: String,
    pub transition_id: String,
    pub from: Option<String>,
    pub to: String,
    pub event_key: EventKey,
    pub flag: Option<String>,
    pub queued: bool,
    pub published: bool,
    pub notification: Option<DeliveryRecord>,
}

/// The outcome of delivering a transition downstream, recorded on the transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub outcome: DeliveryOutcome,
    pub status: Option<u16>,
    pub attempt: u32,
    /// RFC 3339.
    pub at: String,
}

impl DeliveryRecord {
    pub fn is_delivered(&self) -> bool {
        self.outcome == DeliveryOutcome::Delivered
    }
}

/// How a delivery ended, stored as its snake_case name (`delivered`, `failed_permanently`):
/// the spelling of every record written before it was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver's answer can never turn into a success: the message is dead-lettered.
    FailedPermanently,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::FailedPermanently => "failed_permanently",
        }
    }
}

impl std::fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`OperatorStore::waiting_transitions`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Outbox messages not yet taken by the notifier worker (SQLite): exactly those not yet
    /// on their way; aged by their event's receive time.
    NotTaken(u64),
    /// Transitions queued and not yet `published` (DynamoDB): recorded, not yet delivered,
    /// an upper bound of those not yet on the queue (the relay's exact lag is its
    /// `IteratorAge`); aged by the transition's version (the provider's time of the change).
    Undelivered(u64),
}

impl Waiting {
    pub fn count(self) -> u64 {
        match self {
            Waiting::NotTaken(n) | Waiting::Undelivered(n) => n,
        }
    }

    /// What was counted, for an operator.
    pub fn meaning(self) -> &'static str {
        match self {
            Waiting::NotTaken(_) => "not yet taken from the outbox",
            Waiting::Undelivered(_) => {
                "queued and not yet delivered (an upper bound of those not yet on the queue; \
                 the relay's IteratorAge is the exact lag)"
            }
        }
    }
}

/// Whether a store may hold events keyed the way releases before issue 21 keyed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityEpoch {
    /// Empty when today's identity first served it: no earlier key was ever written.
    Fresh,
    /// It held events when today's identity first served it, at this time: earlier keys
    /// may exist until their records expire (`RETENTION_DAYS` later).
    UpgradedAt(OffsetDateTime),
    /// Not known (the store keeps no marker).
    Unknown,
}

impl IdentityEpoch {
    /// Whether a delivery received at `now` may be stored under an earlier release's key:
    /// never in a fresh store; in an upgraded one, until the earlier release's last records
    /// have expired (`retention_days` after the upgrade); always when not known.
    pub(crate) fn may_hold_earlier_keys(self, now: OffsetDateTime, retention_days: u64) -> bool {
        match self {
            IdentityEpoch::Fresh => false,
            IdentityEpoch::UpgradedAt(at) => {
                let days = i64::try_from(retention_days).unwrap_or(i64::MAX);
                now < at.saturating_add(time::Duration::days(days))
            }
            IdentityEpoch::Unknown => true,
        }
    }
}

/// A deflate encoder kept per thread (one per level).
type EncoderSlot = std::cell::RefCell<Option<DeflateEncoder<Vec<u8>>>>;

/// Deflates `bytes` with the thread's encoder of `level`, reset rather than rebuilt: a fresh
/// deflate state allocates and zeroes hundreds of KB, which dominated the local gateway's
/// profile under load.
fn deflate(slot: &EncoderSlot, level: Compression, bytes: &[u8]) -> Vec<u8> {
    let mut slot = slot.borrow_mut();
    let out = Vec::with_capacity(bytes.len() / 3 + 64);
    let encoder = match slot.as_mut() {
        Some(enc) => {
            enc.reset(out).expect("resetting into a Vec cannot fail");
            enc
        }
        None => slot.insert(DeflateEncoder::new(out, level)),
    };
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.try_finish().expect("writing to a Vec cannot fail");
    std::mem::take(encoder.get_mut())
}

/// Raw deflate for raw bodies (JSON compresses 5-10x, keeping items far under DynamoDB's
/// 400 KB), at the fast level: the local gateway compresses every body on its hot path.
pub fn compress(body: &[u8]) -> Vec<u8> {
    thread_local! {
        static FAST: EncoderSlot = const { std::cell::RefCell::new(None) };
    }
    FAST.with(|slot| deflate(slot, Compression::fast(), body))
}

/// Raw deflate at the best level, for small values billed by the byte (a DynamoDB item is
/// billed per started KB): ~8 % smaller than [`compress`] on a 1.4 KB JSON body, for a few
/// tens of µs. The output is plain raw deflate, read by [`decompress`] like any other.
pub(crate) fn compress_small(bytes: &[u8]) -> Vec<u8> {
    thread_local! {
        static BEST: EncoderSlot = const { std::cell::RefCell::new(None) };
    }
    BEST.with(|slot| deflate(slot, Compression::best(), bytes))
}

pub fn decompress(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    DeflateDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| StoreError::Corrupt(format!("deflated value: {e}")))?;
    Ok(out)
}

/// The transitions-table key (stream, sort) of a queued message: how the notifier finds the
/// transition it records a delivery on.
pub(crate) fn transition_key(message: &TransitionMessage) -> Result<(String, String), StoreError> {
    let sort = transition_sort(message).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "message {} names no transition (occurredAt/eventKey)",
            message.transition_id
        ))
    })?;
    Ok((message.group_id(), sort))
}

/// The transitions-table sort key of a message (its entity's version and event id).
pub(crate) fn transition_sort(message: &TransitionMessage) -> Option<String> {
    let version = crate::version::Version::parse(&message.occurred_at)?;
    let event_id = message.event_key.as_str().split_once('#')?.1;
    Some(format!("{}#{}", version.sort_key(), event_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivery records are stored as JSON (SQLite) and as a DynamoDB map written by serde:
    /// the typed outcome keeps the text of every record written before it.
    #[test]
    fn delivery_records_keep_their_stored_spelling() {
        for (stored, outcome) in [
            (
                r#"{"outcome":"delivered","status":200,"attempt":1,"at":"2026-11-23T00:00:00Z"}"#,
                DeliveryOutcome::Delivered,
            ),
            (
                r#"{"outcome":"failed_permanently","status":410,"attempt":3,"at":"2026-11-23T00:00:00Z"}"#,
                DeliveryOutcome::FailedPermanently,
            ),
        ] {
            let record: DeliveryRecord = serde_json::from_str(stored).unwrap();
            assert_eq!(record.outcome, outcome);
            assert_eq!(record.is_delivered(), outcome == DeliveryOutcome::Delivered);
            assert_eq!(serde_json::to_string(&record).unwrap(), stored);
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::json!(outcome.as_str())
            );
        }
    }

    #[test]
    fn compression_round_trips_and_reuses_the_encoder() {
        let big = br#"{"event":"ORDER.CHANGE_STATUS","payload":{"order":{"id":1}}}"#.repeat(100);
        for body in [&b""[..], &b"{}"[..], &big[..], &b"\xff\x00 not json"[..]] {
            let packed = compress(body);
            assert_eq!(decompress(&packed).unwrap(), body);
        }
        assert!(compress(&big).len() < big.len() / 5);
    }
}
