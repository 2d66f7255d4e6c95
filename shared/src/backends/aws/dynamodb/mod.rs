//! The DynamoDB store (ARCHITECTURE §5): three tables, items converted with `serde_dynamo`.
//!
//! | table | key | item |
//! | --- | --- | --- |
//! | events (`EVENTS_TABLE`) | `event_key` | [`EventItem`]: the kept request (headers + raw body, deflated Binary), entity keys, the keys of its transitions, status, `received_at`, TTL `expires_at` (unix seconds) |
//! | entities (`ENTITIES_TABLE`) | `pk` = `{source}#{tenant}`, `sk` = `{kind}#{id}` | [`EntityItem`]: `version` (µs), `state`, `data` (JSON text, lossless, deflated), `last_event_key`, TTL `expires_at` |
//! | transitions (`TRANSITIONS_TABLE`) | `pk` = `{source}#{tenant}#{kind}#{id}`, `sk` = `{version}#{event_id}` | [`TransitionItem`]: id, flag, queued, published, the queued message (JSON text, deflated: its from, to and event key), notification outcome, TTL `expires_at` |
//!
//! Items are compact so the common ones stay under 1 KB (billed per started KB); items of
//! the earlier, uncompressed form are read too (`items`).
//!
//! # The writes of an accepted event
//!
//! [`IngestStore::persist`] applies the shared rules ([`decide()`]) and writes, without reading
//! first: the event (`Put`, condition `attribute_not_exists(event_key)`: the dedupe), each
//! entity to write (an `Update` setting every attribute of the serialised [`EntityItem`], so
//! an update without a state keeps the stored one, as SQLite's upsert does), and each
//! transition (`Put`, `attribute_not_exists(pk)`). An event naming one entity is written as
//! ordered conditional single writes, the event item last as the commit marker (`ordered`:
//! half the write units); any other event in ONE `TransactWriteItems`, described here. An
//! entity decided
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
//! When a transaction is cancelled, its `CancellationReasons` (one per item) say why (a
//! single write's failed condition means the same, see `ordered`):
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
//! read-then-write, and no event is ever half recorded: a transaction is all or nothing, and
//! ordered writes record the event only with their last write. Any
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
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;
use tracing::{debug, warn};

use crate::config::{vars, ConfigError, Env};
use crate::error::StoreError;
use crate::model::{EventKey, TransitionMessage};
use crate::store::{
    probe_key, Consistency, DeliveryRecord, DeliveryStore, HealthProbe, IncomingEvent, IngestStore,
    PersistOutcome,
};

mod epoch;
mod inspect;
mod items;
mod operator;
mod ordered;
mod plan;
mod purge;
mod reads;
pub mod stream;
mod transact;

use items::from_item;
pub use items::{EntityItem, EventItem, HeaderItem, ItemKey, TransitionItem};
use plan::{distinct_keys, needs_read};
use transact::Attempt;

type Item = HashMap<String, AttributeValue>;

/// Transaction attempts per event before giving up with [`StoreError::Contention`].
pub const MAX_ATTEMPTS: u32 = 8;
/// DynamoDB's limit of actions in one `TransactWriteItems`.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
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

fn unavailable<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("dynamodb {op}: {}", DisplayErrorContext(&err)))
}

/// Hands `each` every item `scan` returns, page by page as the pages arrive: the operator
/// side's one paginated Scan loop. It holds one page (at most 1 MB) at a time, so what a
/// caller keeps (keys, counts, the best `limit` rows) is all that grows with the table.
async fn scan_items(
    scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
    mut each: impl FnMut(Item) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut pages = scan.into_paginator().items().send();
    while let Some(item) = pages.next().await {
        each(item.map_err(|e| unavailable("Scan", e))?)?;
    }
    Ok(())
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("dynamodb request: {e}"))
}

// ---- the store ---------------------------------------------------------------------------

/// DynamoDB implementation of every store port ([`crate::store::Store`]). Cheap to clone (the SDK client is shared).
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
impl IngestStore for DynamoDbStore {
    async fn persist(&self, incoming: &IncomingEvent) -> Result<PersistOutcome, StoreError> {
        let event = &incoming.event;
        let key = event.key();
        let mut known = self.read_entities(&needs_read(event)).await?;
        let mut stored_transitions = HashSet::new();
        for attempt in 0..MAX_ATTEMPTS {
            let plan = plan::plan(event, received_version(incoming), &known)
                .expiring(incoming.entity_expires_at);
            let written = if ordered::fits(incoming, &plan) {
                self.write_ordered(incoming, &plan, &stored_transitions)
                    .await?
            } else {
                let transactions = self.transactions(incoming, &plan, &stored_transitions)?;
                self.write(transactions).await?
            };
            match written {
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
                Attempt::Changed(now) => {
                    debug!(event_key = %key, attempt, "entity changed under the write, deciding on it");
                    if attempt > 0 {
                        backoff(attempt).await;
                    }
                    known = now;
                }
            }
        }
        warn!(event_key = %key, attempts = MAX_ATTEMPTS, "giving up on contention");
        Err(StoreError::Contention(key.to_string()))
    }

    /// One `GetItem` of the event item, eventually consistent before the write (0.5 RRU for
    /// the usual item under 4 KB: it is asked about deliveries stored earlier, ARCHITECTURE
    /// §4), strong after it.
    async fn stored_body(
        &self,
        key: &EventKey,
        read: Consistency,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.event_item(key, read == Consistency::Strong).await? {
            Some(item) => Ok(Some(item.request()?.body)),
            None => Ok(None),
        }
    }

    async fn identity_epoch(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<crate::store::IdentityEpoch, StoreError> {
        self.read_identity_epoch(now).await
    }
}

#[async_trait]
impl DeliveryStore for DynamoDbStore {
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
        // Eventually consistent (half the read units, decision 61): a copy of a transition
        // reaches the notifier seconds to minutes after the first was recorded (SQS
        // redelivers after the visibility timeout; the relay re-sends only on a retry).
        let Some(item) = self.get_eventually(&self.tables.transitions, &key).await? else {
            return Ok(None);
        };
        let item: TransitionItem = from_item(item)?;
        Ok(item
            .notification
            .filter(|_| item.transition_id == message.transition_id))
    }
}

#[async_trait]
impl HealthProbe for DynamoDbStore {
    async fn probe(&self) -> Result<(), StoreError> {
        self.event_item(&probe_key(), true).await.map(|_| ())
    }
}

/// When `incoming` arrived, as a version (the far-future rule of `decide`).
pub(super) fn received_version(incoming: &IncomingEvent) -> crate::version::Version {
    crate::version::Version::from_datetime(incoming.received_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_env_name_the_missing_variable() {
        let env = Env::from_pairs([("EVENTS_TABLE", "e"), ("ENTITIES_TABLE", "n")]);
        let err = Tables::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("TRANSITIONS_TABLE"), "{err}");
    }
}
