//! Notifier core (DESIGN §6), transport-agnostic: turns one queued transition into one
//! delivery attempt and classifies the result. Used by the `notifier` Lambda (SQS batch)
//! and by the local worker over the embedded outbox.
//!
//! With no `NOTIFY_URL` configured, each transition is written to the log as a
//! notification and counts as delivered.

#[cfg(feature = "sqlite")]
pub mod worker;

use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use tracing::info;

use crate::clock::Clock;
use crate::model::TransitionMessage;
use crate::store::{DeliveryRecord, Store};

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (2xx), or written to the log when no endpoint is configured.
    Delivered { status: Option<u16> },
    /// Already delivered earlier (queue redelivery): not sent again.
    AlreadyDelivered,
    /// Worth retrying: timeout, connection error, 5xx, 429, store hiccup.
    Retry { reason: String },
    /// Will never succeed as is (4xx other than 429, unparseable message): dead-letter it.
    Permanent { reason: String, status: Option<u16> },
}

/// Where notifications go.
pub enum Target {
    /// No `NOTIFY_URL`: log each transition.
    Log,
}

pub struct Notifier {
    target: Target,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Notifier {
    pub fn new(target: Target, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Notifier {
            target,
            store,
            clock,
        }
    }

    /// Delivers one queued message body (`receive_count` is 1 on the first attempt).
    pub async fn deliver(&self, body: &str, receive_count: u32) -> Outcome {
        let message: TransitionMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("poison message: not a transition ({e})"),
                    status: None,
                }
            }
        };
        match self.store.delivery(&message).await {
            Ok(Some(record)) if record.is_delivered() => return Outcome::AlreadyDelivered,
            Ok(_) => {}
            Err(e) => {
                return Outcome::Retry {
                    reason: e.to_string(),
                }
            }
        }
        let outcome = match &self.target {
            Target::Log => {
                info!(
                    notification = %body,
                    transition_id = %message.transition_id,
                    entity = %message.group_id(),
                    "notification (no NOTIFY_URL configured)"
                );
                Outcome::Delivered { status: None }
            }
        };
        self.record(&message, &outcome, receive_count).await
    }

    /// Records the final outcomes on the transition; a failure to record turns a delivery
    /// into a retry only when nothing was sent (a sent notification is never re-sent for it).
    async fn record(
        &self,
        message: &TransitionMessage,
        outcome: &Outcome,
        attempt: u32,
    ) -> Outcome {
        let (label, status) = match outcome {
            Outcome::Delivered { status } => ("delivered", *status),
            Outcome::Permanent { status, .. } => ("failed_permanently", *status),
            _ => return outcome.clone(),
        };
        let record = DeliveryRecord {
            outcome: label.to_string(),
            status,
            attempt,
            at: self.clock.now().format(&Rfc3339).unwrap_or_default(),
        };
        if let Err(e) = self.store.record_delivery(message, &record).await {
            tracing::warn!(transition_id = %message.transition_id, error = %e, "could not record the delivery outcome");
        }
        outcome.clone()
    }
}
