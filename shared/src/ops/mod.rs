//! What operators do with a deployment, written once over the ports so the `webhooks` CLI
//! and the console behave the same on SQLite and on DynamoDB + SQS: explain an event or an
//! entity, replay transitions, redrive dead letters, count, reprocess stored raw bodies
//! through today's provider code, and erase personal data on request (purge).

pub mod credentials;
pub mod filter;
mod purge;
mod reprocess;

use std::sync::Arc;

use thiserror::Error;

use crate::error::{QueueError, StoreError};
use crate::model::{EntityKey, EventKey};
use crate::queue::{DeadLetter, DeadLetters, Requeue, TransitionQueue};
use crate::store::{
    DeliveryRecord, DeliveryStore, Detail, EventFilter, EventPage, OperatorStore, Order,
    Replayable, StoredEntity, StoredEvent, StoredTransition, TransitionSelector,
};

pub use purge::AUDIT_TARGET;
pub use reprocess::{providers, reprocess, Progress, ReprocessSummary};

#[derive(Debug, Error)]
pub enum OpsError {
    /// No event, entity or transition of that key (the operator's input, not the system).
    #[error("{0}")]
    NotFound(String),
    /// The request breaks a rule of the data (a third active credential, a duplicate key):
    /// the operator's input, not the system.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The ports an operator works through. The pipeline's `queue` sends what reprocess newly
/// queues (the null adapter where the store queues in its own transaction); `requeue` and
/// `dead_letters` are the queue's operator side; `deliveries` tells a dead letter's recorded
/// outcome.
pub struct OperatorPorts {
    pub store: Arc<dyn OperatorStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub queue: Arc<dyn TransitionQueue>,
    pub requeue: Arc<dyn Requeue>,
    pub dead_letters: Arc<dyn DeadLetters>,
    /// The credential table (the null [`credentials::UnconfiguredCredentialTable`] where none is
    /// configured).
    pub credentials: Arc<dyn crate::credentials::CredentialAdmin>,
}

/// What operators do, over [`OperatorPorts`]. Its ports are private: the CLI and the console
/// ask the operator, so both go through the same rules (ARCHITECTURE §10).
#[derive(Clone)]
pub struct Operator {
    store: Arc<dyn OperatorStore>,
    deliveries: Arc<dyn DeliveryStore>,
    queue: Arc<dyn TransitionQueue>,
    requeue: Arc<dyn Requeue>,
    dead_letters: Arc<dyn DeadLetters>,
    credentials: Arc<dyn crate::credentials::CredentialAdmin>,
}

impl Operator {
    pub fn new(ports: OperatorPorts) -> Self {
        Operator {
            store: ports.store,
            deliveries: ports.deliveries,
            queue: ports.queue,
            requeue: ports.requeue,
            dead_letters: ports.dead_letters,
            credentials: ports.credentials,
        }
    }
}

/// An event with what it touched.
#[derive(Debug, Clone, PartialEq)]
pub struct EventReport {
    pub event: StoredEvent,
    pub entities: Vec<(EntityKey, Option<StoredEntity>)>,
    /// The transitions this event recorded, with their delivery outcomes.
    pub transitions: Vec<(EntityKey, StoredTransition)>,
}

/// A dead letter with its transition's recorded outcome (SQS keeps no failure reason).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterReport {
    pub letter: DeadLetter,
    pub transition_id: Option<String>,
    pub record: Option<DeliveryRecord>,
}

/// What a replay did, per transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    Requeued,
    /// Delivered already and not forced.
    AlreadyDelivered,
    /// Never queued (flagged by the lifecycle): there is nothing to send.
    NotQueued,
}

impl ReplayOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Requeued => "requeued",
            ReplayOutcome::AlreadyDelivered => "already_delivered",
            ReplayOutcome::NotQueued => "not_queued",
        }
    }
}

impl Operator {
    pub async fn event(&self, key: &str) -> Result<EventReport, OpsError> {
        let event_key = EventKey::parse(key).ok_or_else(|| {
            OpsError::NotFound(format!("{key:?} is not an event key (source#id)"))
        })?;
        let event = self
            .store
            .event(&event_key)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("no event {key}")))?;
        let mut entities = Vec::new();
        let mut transitions = Vec::new();
        // An event may name an entity twice (not necessarily side by side): report it once.
        let mut seen = std::collections::HashSet::new();
        for entity in event.entity_keys.iter().filter(|k| seen.insert(*k)) {
            let stored = self.store.entity(entity).await?;
            for t in self.store.transitions(entity).await? {
                if t.event_key == event.event_key {
                    transitions.push((entity.clone(), t));
                }
            }
            entities.push((entity.clone(), stored));
        }
        Ok(EventReport {
            event,
            entities,
            transitions,
        })
    }

    /// One page of event summaries, newest or oldest first, continuing after `cursor`.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        order: Order,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EventPage, OpsError> {
        let listed = self
            .store
            .list_events(filter, order, limit, cursor, Detail::Summary)
            .await?;
        Ok(listed.into_summaries())
    }

    /// The transitions `selector` names, with the message each was (or is to be) sent as.
    pub async fn replayable(
        &self,
        selector: &TransitionSelector,
    ) -> Result<Vec<Replayable>, OpsError> {
        Ok(self.store.replayable(selector).await?)
    }

    /// An entity's current state and its whole history.
    pub async fn entity(
        &self,
        key: &EntityKey,
    ) -> Result<(StoredEntity, Vec<StoredTransition>), OpsError> {
        let entity = self
            .store
            .entity(key)
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("no entity {}", key.stream())))?;
        Ok((entity, self.store.transitions(key).await?))
    }

    /// Queues the selected transitions again. Delivered ones only with `force`, which first
    /// forgets their delivery record so the notifier sends them again under the same
    /// `webhook-id` (receivers that deduplicate on it see a repeat, not a new event).
    pub async fn replay(
        &self,
        selector: &TransitionSelector,
        force: bool,
        replay_id: &str,
    ) -> Result<Vec<(Replayable, ReplayOutcome)>, OpsError> {
        let selected = self.store.replayable(selector).await?;
        if selected.is_empty() {
            let named = match selector {
                TransitionSelector::Id(id) => Some(id.clone()),
                TransitionSelector::Entity(key) => Some(key.stream()),
                TransitionSelector::Undelivered { .. } => None,
            };
            if let Some(named) = named {
                return Err(OpsError::NotFound(format!("no transition of {named}")));
            }
        }
        let mut out = Vec::with_capacity(selected.len());
        for r in selected {
            let outcome = match &r.message {
                None => ReplayOutcome::NotQueued,
                Some(_) if r.delivered() && !force => ReplayOutcome::AlreadyDelivered,
                Some(message) => {
                    if r.transition.notification.is_some() {
                        self.store
                            .reset_delivery(&r.stream, &r.transition.sort)
                            .await?;
                    }
                    self.requeue.requeue(message, replay_id).await?;
                    ReplayOutcome::Requeued
                }
            };
            out.push((r, outcome));
        }
        Ok(out)
    }

    pub async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetterReport>, OpsError> {
        let mut out = Vec::new();
        for letter in self.dead_letters.dead_letters(max).await? {
            let message = crate::notify::parse_message(&letter.body).ok();
            // A dead letter that names no stored transition has no record; an unreachable
            // store fails the listing rather than showing every failure as unknown.
            let record = match &message {
                Some(m) => match self.deliveries.delivery(m).await {
                    Ok(record) => record,
                    Err(StoreError::Corrupt(_)) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            out.push(DeadLetterReport {
                transition_id: message.map(|m| m.transition_id),
                letter,
                record,
            });
        }
        Ok(out)
    }

    pub async fn redrive(&self, ids: Option<&[String]>) -> Result<usize, OpsError> {
        Ok(self.dead_letters.redrive(ids).await?)
    }

    /// Transitions recorded more than `minutes` before `now` (unix seconds) and not yet on
    /// the queue, as far as the store can tell (`store::Waiting` says how it counted).
    pub async fn waiting_transitions(
        &self,
        now: i64,
        minutes: u64,
    ) -> Result<crate::store::Waiting, OpsError> {
        let cutoff = now.saturating_sub((minutes as i64).saturating_mul(60));
        Ok(self.store.waiting_transitions(cutoff).await?)
    }

    /// Events per (source, status) among those `filter` selects.
    pub async fn stats(&self, filter: &EventFilter) -> Result<crate::store::EventCounts, OpsError> {
        Ok(self.store.count_events(filter).await?)
    }
}
