//! An in-memory delivery port ([`webhook_core::store::DeliveryStore`]), all the notifier
//! reads and writes: the delivery record of each transition. The fuzz crate links
//! `webhook-core` without its SQLite and DynamoDB backends, and the SQS batch harness needs a
//! store that answers instantly (deterministic, no I/O) and that can be told to fail, so the
//! retry path is fuzzed too.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use webhook_core::model::TransitionMessage;
use webhook_core::store::DeliveryRecord;
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

#[async_trait]
impl webhook_core::store::DeliveryStore for DeliveryStore {
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
}
