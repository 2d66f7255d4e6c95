//! The transition queue: FIFO per entity, deduplicated by transition id (DESIGN §6).
//! Backends: the embedded [`outbox`] (a table in the SQLite file, drained by the local
//! notifier worker) and SQS FIFO in AWS.

#[cfg(feature = "sqlite")]
pub mod outbox;
#[cfg(feature = "aws")]
pub mod sqs;

use async_trait::async_trait;

use crate::error::QueueError;
use crate::model::TransitionMessage;

#[async_trait]
pub trait TransitionQueue: Send + Sync {
    /// Enqueues a transition; sending the same `transition_id` twice enqueues it once.
    async fn publish(&self, message: &TransitionMessage) -> Result<(), QueueError>;
}
