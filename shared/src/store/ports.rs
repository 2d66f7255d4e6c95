//! The storage ports, one per client (as `queue` and `credentials` are split): what ingest
//! writes and reads back ([`IngestStore`]), what the notifier reads and records
//! ([`DeliveryStore`]), what an operator lists, explains and repairs ([`OperatorStore`]), and
//! what `/healthz` asks ([`HealthProbe`]). A client is handed only its port, so a fake of one
//! client implements only what that client calls. Every method is atomic: on error nothing
//! was written.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::inspect::{EventFilter, Listed, Order, Reapplied, Replayable, TransitionSelector};
use super::purge::{PurgeTarget, Purged};
use super::{
    DeliveryRecord, IdentityEpoch, IncomingEvent, PersistOutcome, StoredEntity, StoredEvent,
    StoredTransition, Waiting,
};
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey, EventStatus, Source, TransitionMessage};

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// May miss a write of the last moments (DynamoDB: half the read units).
    Eventual,
    /// Sees every write acknowledged before it.
    Strong,
}

/// Stored events per (source, status), what `webhooks stats` and the console's overview list.
pub type EventCounts = BTreeMap<(Source, EventStatus), u64>;

/// The ingest pipeline's port.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Records the event, upserts its entities (never to an older version) and records
    /// its transitions, all or nothing. A duplicate event key changes nothing.
    async fn persist(&self, incoming: &IncomingEvent) -> Result<PersistOutcome, StoreError>;

    /// The raw body stored under `key`, for telling a redelivery from a conflict before
    /// writing (ARCHITECTURE §4). Eventually consistent when it is asked about deliveries
    /// stored earlier (a concurrent one is caught by the write's own dedupe); strong after
    /// that dedupe said the key is there.
    async fn stored_body(
        &self,
        key: &EventKey,
        read: Consistency,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// When today's event identity first served this store (ARCHITECTURE §4, "Upgrade"):
    /// read from the store's marker, which the first call writes, judging by whether the
    /// store held any event then. Ingest asks once per process, before its first write. A
    /// store that keeps no marker (a test double) answers [`IdentityEpoch::Unknown`], and
    /// ingest keeps reading earlier keys.
    async fn identity_epoch(&self, _now: OffsetDateTime) -> Result<IdentityEpoch, StoreError> {
        Ok(IdentityEpoch::Unknown)
    }
}

/// The notifier's port: the delivery record of each transition.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Records a delivery outcome on the transition and marks it `published` (taken by the
    /// notifier), so a redelivered event no longer republishes it.
    async fn record_delivery(
        &self,
        message: &TransitionMessage,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError>;

    /// The recorded delivery outcome, so a redelivered queue message is not notified twice.
    async fn delivery(
        &self,
        message: &TransitionMessage,
    ) -> Result<Option<DeliveryRecord>, StoreError>;

    /// [`DeliveryStore::delivery`] for several messages at once, in input order (the local
    /// worker reads a whole batch in one round trip).
    async fn deliveries(
        &self,
        messages: &[TransitionMessage],
    ) -> Result<Vec<Option<DeliveryRecord>>, StoreError> {
        let mut records = Vec::with_capacity(messages.len());
        for message in messages {
            records.push(self.delivery(message).await?);
        }
        Ok(records)
    }

    /// [`DeliveryStore::record_delivery`] for several outcomes; a backend that can writes
    /// them all at once.
    async fn record_deliveries(
        &self,
        records: &[(TransitionMessage, DeliveryRecord)],
    ) -> Result<(), StoreError> {
        for (message, record) in records {
            self.record_delivery(message, record).await?;
        }
        Ok(())
    }
}

/// How much of each event a page of [`OperatorStore::list_events`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// What a list line shows (a DynamoDB page projects only these attributes).
    Summary,
    /// Each event whole (raw body, kept headers): reprocess reads a page at once instead of
    /// one event at a time.
    Whole,
}

/// The operator's port (the `webhooks` CLI and the console, through `ops::Operator`):
/// explain, list and count, replay, reprocess, purge.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    async fn event(&self, key: &EventKey) -> Result<Option<StoredEvent>, StoreError>;
    async fn entity(&self, key: &EntityKey) -> Result<Option<StoredEntity>, StoreError>;
    /// An entity's transitions in version order.
    async fn transitions(&self, key: &EntityKey) -> Result<Vec<StoredTransition>, StoreError>;

    /// One page of stored events in `order`, at most `limit`, continuing after `cursor` (the
    /// `next` of the previous page, whatever its detail), each as `detail` asks. Bounded
    /// memory whatever the table size.
    async fn list_events(
        &self,
        filter: &EventFilter,
        order: Order,
        limit: usize,
        cursor: Option<&str>,
        detail: Detail,
    ) -> Result<Listed, StoreError>;

    /// How many events `filter` selects, per (source, status): one pass over the events.
    async fn count_events(&self, filter: &EventFilter) -> Result<EventCounts, StoreError>;

    /// Transitions recorded before `cutoff` (unix seconds) that have not reached the queue, as
    /// far as this store can tell without a write per transition (decision 62): the operator's
    /// "is anything stranded?".
    async fn waiting_transitions(&self, cutoff: i64) -> Result<Waiting, StoreError>;

    /// Re-applies an event stored under the same key by the rules of
    /// [`IngestStore::persist`] (version guard, a transition recorded once per key and queued
    /// only then, terminal states sticky) and records its new status and entities; its raw
    /// body, headers and arrival time stay. Atomic; `None` when no event has that key.
    async fn reapply(&self, incoming: &IncomingEvent) -> Result<Option<Reapplied>, StoreError>;

    /// The transitions `selector` names, with the message each was (or is to be) sent as.
    async fn replayable(
        &self,
        selector: &TransitionSelector,
    ) -> Result<Vec<Replayable>, StoreError>;

    /// Forgets a transition's delivery record (and `published`), so the notifier sends it
    /// again under the same `webhook-id`: a forced replay.
    async fn reset_delivery(&self, stream: &EntityKey, sort: &str) -> Result<(), StoreError>;

    /// Erases what `target` selects: events, entities, transitions and the queued copies
    /// the store holds (the SQLite outbox), so none of them is found again; with `dry_run`
    /// only reports what would go. [`Purged::kept`] names what the store could not reach.
    async fn purge(&self, target: &PurgeTarget, dry_run: bool) -> Result<Purged, StoreError>;
}

/// `/healthz`'s port: whether the store answers a read.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    async fn probe(&self) -> Result<(), StoreError>;
}

/// The key no event has, read by a backend's [`HealthProbe`]: one lookup that answers
/// whether the store is reachable, whatever it holds.
pub fn probe_key() -> EventKey {
    EventKey::new(Source::Pancake, "healthz-probe")
}

/// A whole backend: every port at once. Only the wiring (`runtime`, the binaries) and tests
/// hold one; each client is handed the port it uses (a `&dyn Store` is one by upcasting).
pub trait Store: IngestStore + DeliveryStore + OperatorStore + HealthProbe {}

impl<T: IngestStore + DeliveryStore + OperatorStore + HealthProbe + ?Sized> Store for T {}
