//! The transition queue port: FIFO per entity, deduplicated by transition id
//! (ARCHITECTURE §6). Adapters live in `backends`: SQS FIFO on AWS, and the embedded
//! outbox table in the SQLite file.
//!
//! Two sides: the pipeline *publishes* ([`TransitionQueue`]); the local notifier worker
//! *pulls* ([`PullQueue`]). On AWS the pull side is Lambda's SQS event source mapping, so
//! only the outbox implements it.

use async_trait::async_trait;

use crate::error::QueueError;
use crate::model::TransitionMessage;

#[async_trait]
pub trait TransitionQueue: Send + Sync {
    /// Enqueues a transition; sending the same `transition_id` twice enqueues it once.
    async fn publish(&self, message: &TransitionMessage) -> Result<(), QueueError>;

    /// Enqueues `messages` in their order and stops at the first one that fails, so no
    /// message is ever enqueued ahead of an earlier one of the same entity (the relay,
    /// ARCHITECTURE §6). An adapter may send several per request (SQS: `SendMessageBatch`);
    /// this default sends them one at a time.
    async fn publish_in_order(&self, messages: &[TransitionMessage]) -> Published {
        for (sent, message) in messages.iter().enumerate() {
            if let Err(error) = self.publish(message).await {
                return Published {
                    sent,
                    error: Some(error),
                };
            }
        }
        Published {
            sent: messages.len(),
            error: None,
        }
    }
}

/// What [`TransitionQueue::publish_in_order`] did: the first `sent` messages are enqueued;
/// `error` says why the next one is not (`None`: all of them are).
#[derive(Debug)]
pub struct Published {
    pub sent: usize,
    pub error: Option<QueueError>,
}

/// The null adapter for a store that is its own queue (the embedded transactional outbox):
/// the store's transaction already wrote the queued message with the event, so there is
/// nothing left to send. It lets the pipeline keep one path for every backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlreadyQueued;

#[async_trait]
impl TransitionQueue for AlreadyQueued {
    async fn publish(&self, _message: &TransitionMessage) -> Result<(), QueueError> {
        Ok(())
    }
}

/// One message handed to a pulling consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub seq: i64,
    pub group_id: String,
    pub body: String,
    /// 1 on the first delivery attempt.
    pub receive_count: u32,
}

/// What becomes of a handed-out message.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Done: removed.
    Ack { seq: i64 },
    /// Visible again at `retry_at_ms`, or dead-lettered.
    Nack {
        seq: i64,
        retry_at_ms: i64,
        dead: bool,
        error: String,
    },
}

impl Settlement {
    /// A failure: dead-lettered when `permanent` or received `max_receives` times.
    pub fn nack(
        message: &OutboxMessage,
        retry_at_ms: i64,
        max_receives: u32,
        permanent: bool,
        error: &str,
    ) -> Self {
        Settlement::Nack {
            seq: message.seq,
            retry_at_ms,
            dead: permanent || message.receive_count >= max_receives,
            error: error.to_string(),
        }
    }
}

/// A queue its consumer polls, with SQS FIFO semantics: only a group's oldest live message
/// is handed out, a handed-out message is invisible until settled or timed out.
#[async_trait]
pub trait PullQueue: Send + Sync {
    /// Up to `max` messages whose group head is visible at `now_ms`, oldest first, at most
    /// one per group, made invisible for `visibility_ms`.
    async fn receive(
        &self,
        now_ms: i64,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<OutboxMessage>, QueueError>;

    /// Acks and nacks of a whole batch, all or nothing.
    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), QueueError>;
}

/// Sends a stored transition again (an operator's replay).
#[async_trait]
pub trait Requeue: Send + Sync {
    /// Queues `message` again even though it was queued before. `replay_id` makes it a new
    /// message to the queue's deduplication (SQS remembers a deduplication id for five
    /// minutes) while the body, and so the receiver's `webhook-id`, stays the same. Where the
    /// queue can see a copy still waiting (the outbox) it is not queued twice; where it
    /// cannot (SQS), the notifier's recorded outcome keeps the second copy from notifying.
    async fn requeue(&self, message: &TransitionMessage, replay_id: &str)
        -> Result<(), QueueError>;
}

/// A message the queue gave up on (permanent failure, or too many receives).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The queue's own id of it (what `redrive` takes).
    pub id: String,
    pub group: String,
    pub body: String,
    pub receive_count: u32,
    /// The queue's note of the last failure, where it keeps one (the outbox does; SQS does
    /// not, and the transition's delivery record says it instead).
    pub last_error: Option<String>,
}

/// The dead-letter side of a queue.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `max` dead letters, oldest first; listing moves nothing.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Moves the named dead letters (`None`: all) back to the queue, each in its group, to be
    /// delivered again from its first attempt; returns how many moved.
    async fn redrive(&self, ids: Option<&[String]>) -> Result<usize, QueueError>;

    /// What the queue keeps that an erasure of the store cannot reach (messages waiting, in
    /// flight or dead-lettered), and for how long. The embedded outbox is erased with the
    /// store, so by default nothing.
    async fn kept_copies(&self) -> Vec<crate::model::KeptCopy> {
        Vec::new()
    }
}
