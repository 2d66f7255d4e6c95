//! An in-memory [`Store`] holding only what the notifier reads and writes: the delivery
//! record of each transition. The fuzz crate links `webhook-core` without its SQLite and
//! DynamoDB backends, and the SQS batch harness needs a store that answers instantly
//! (deterministic, no I/O) and that can be told to fail, so the retry path is fuzzed too.
//!
//! The ingest-side methods are never called by the notifier; they answer `Unavailable`
//! rather than panic, so a call to one would show up as a wrong outcome, not a crash in the
//! fake.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use webhook_core::model::{EntityKey, EventKey, TransitionMessage};
use webhook_core::store::{
    DeliveryRecord, EventFilter, EventPage, EventStatus, IncomingEvent, Order, PersistOutcome,
    Reapplied, Replayable, Store, StoredEntity, StoredEvent, StoredTransition, TransitionSelector,
};
use webhook_core::StoreError;

/// Delivery records by transition id; `down` makes every call fail.
#[derive(Default)]
pub struct DeliveryStore {
    records: Mutex<HashMap<String, DeliveryRecord>>,
    down: bool,
}

impl DeliveryStore {
    /// A store that is up (`down == false`) or answers every call with an error.
    pub fn new(down: bool) -> Self {
        DeliveryStore {
            records: Mutex::default(),
            down,
        }
    }

    fn up(&self) -> Result<(), StoreError> {
        match self.down {
            true => Err(StoreError::Unavailable("the fuzz store is down".into())),
            false => Ok(()),
        }
    }
}

/// The answer of every method the notifier never calls.
fn unused<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("not used by the notifier".into()))
}

#[async_trait]
impl Store for DeliveryStore {
    async fn persist(&self, _: &IncomingEvent) -> Result<PersistOutcome, StoreError> {
        unused()
    }

    async fn record_delivery(
        &self,
        message: &TransitionMessage,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        self.up()?;
        let mut records = self.records.lock().expect("not poisoned");
        records.insert(message.transition_id.clone(), record.clone());
        Ok(())
    }

    async fn delivery(
        &self,
        message: &TransitionMessage,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.up()?;
        let records = self.records.lock().expect("not poisoned");
        Ok(records.get(&message.transition_id).cloned())
    }

    async fn event(&self, _: &EventKey) -> Result<Option<StoredEvent>, StoreError> {
        unused()
    }

    async fn entity(&self, _: &EntityKey) -> Result<Option<StoredEntity>, StoreError> {
        unused()
    }

    async fn transitions(&self, _: &EntityKey) -> Result<Vec<StoredTransition>, StoreError> {
        unused()
    }

    async fn list_events(
        &self,
        _: &EventFilter,
        _: Order,
        _: usize,
        _: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        unused()
    }

    async fn count_events(
        &self,
        _: &EventFilter,
    ) -> Result<BTreeMap<(String, EventStatus), u64>, StoreError> {
        unused()
    }

    async fn waiting_transitions(
        &self,
        _: i64,
    ) -> Result<webhook_core::store::Waiting, StoreError> {
        unused()
    }

    async fn events_page(
        &self,
        _: &EventFilter,
        _: Order,
        _: usize,
        _: Option<&str>,
    ) -> Result<(Vec<StoredEvent>, Option<String>), StoreError> {
        unused()
    }

    async fn reapply(&self, _: &IncomingEvent) -> Result<Option<Reapplied>, StoreError> {
        unused()
    }

    async fn replayable(&self, _: &TransitionSelector) -> Result<Vec<Replayable>, StoreError> {
        unused()
    }

    async fn reset_delivery(&self, _: &str, _: &str) -> Result<(), StoreError> {
        unused()
    }
}
