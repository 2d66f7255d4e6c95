//! The SQS FIFO transition queue (ARCHITECTURE §6): one `SendMessage` per transition to
//! `TRANSITIONS_QUEUE_URL`, `MessageGroupId` = the entity key (one entity's transitions stay
//! in order), `MessageDeduplicationId` = the transition id (a republished transition is
//! dropped by SQS within its 5-minute deduplication window; after that the notifier skips a
//! transition whose delivery is recorded), body = the [`TransitionMessage`] JSON.
//!
//! The transition is marked `published` by the notifier once it is handled, never here: the
//! ingest path's only store write is the event's transaction (see `pipeline`).

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};

use crate::config::{vars, ConfigError, Env};
use crate::error::QueueError;
use crate::model::TransitionMessage;
use crate::queue::{Requeue, TransitionQueue};

/// The largest body sent. SQS accepts 256 KiB on every queue (newer queues up to 1 MiB);
/// this is the conservative bound, so the same code works whatever the queue's
/// `MaximumMessageSize`.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS's limit for `MessageGroupId` and `MessageDeduplicationId`.
pub const MAX_FIFO_ID_CHARS: usize = 128;

/// SQS FIFO implementation of [`TransitionQueue`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue named by `TRANSITIONS_QUEUE_URL`.
    pub fn from_env(client: Client, env: &Env) -> Result<Self, ConfigError> {
        Ok(Self::new(
            client,
            env.require(&vars::TRANSITIONS_QUEUE_URL)?,
        ))
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The message body: the transition as JSON. A body over [`MAX_MESSAGE_BYTES`] would be
/// refused by SQS on every retry, so its `data` (the provider's object, the only unbounded
/// part) is replaced by a small marker instead,
/// `{"omitted": "message_too_large", "bytes": <original body size>, "limit": 262144}`;
/// the receiver reads the entity from the store by its key when it needs the data.
/// Characters SQS refuses in a body (U+FFFE, U+FFFF) are written as JSON escapes.
pub fn message_body(message: &TransitionMessage) -> Result<String, QueueError> {
    let body = serde_json::to_string(message)
        .map_err(|e| QueueError::Unavailable(format!("serialising message: {e}")))?;
    let body = if body.len() <= MAX_MESSAGE_BYTES {
        body
    } else {
        let mut slim = message.clone();
        slim.data = serde_json::json!({
            "omitted": "message_too_large",
            "bytes": body.len(),
            "limit": MAX_MESSAGE_BYTES,
        });
        serde_json::to_string(&slim)
            .map_err(|e| QueueError::Unavailable(format!("serialising message: {e}")))?
    };
    Ok(if body.contains(['\u{FFFE}', '\u{FFFF}']) {
        body.replace('\u{FFFE}', "\\ufffe")
            .replace('\u{FFFF}', "\\uffff")
    } else {
        body
    })
}

/// A valid FIFO id for `raw`: `raw` itself when SQS accepts it (1 to 128 printable ASCII
/// characters, the case for every key the providers produce), else its printable prefix,
/// `~` and a hash of the whole value, so it stays deterministic and distinct.
pub fn fifo_id(raw: &str) -> String {
    if !raw.is_empty()
        && raw.len() <= MAX_FIFO_ID_CHARS
        && raw.bytes().all(|b| b.is_ascii_graphic())
    {
        return raw.to_string();
    }
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let digest = &digest[..32];
    let prefix: String = raw
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_FIFO_ID_CHARS - digest.len() - 1)
        .collect();
    format!("{prefix}~{digest}")
}

#[async_trait::async_trait]
impl TransitionQueue for SqsQueue {
    async fn publish(&self, message: &TransitionMessage) -> Result<(), QueueError> {
        self.send(
            message_body(message)?,
            &message.group_id(),
            &message.transition_id,
        )
        .await
    }
}

#[async_trait::async_trait]
impl Requeue for SqsQueue {
    async fn requeue(
        &self,
        message: &TransitionMessage,
        replay_id: &str,
    ) -> Result<(), QueueError> {
        let dedup = format!("{}:{replay_id}", message.transition_id);
        self.send(message_body(message)?, &message.group_id(), &dedup)
            .await
    }
}

impl SqsQueue {
    /// One FIFO message: its group keeps an entity in order, `dedup` its deduplication id.
    pub(super) async fn send(
        &self,
        body: String,
        group: &str,
        dedup: &str,
    ) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(fifo_id(group))
            .message_deduplication_id(fifo_id(dedup))
            .message_body(body)
            .send()
            .await
            .map_err(|e| {
                QueueError::Unavailable(format!("sqs SendMessage: {}", DisplayErrorContext(&e)))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntityKind, EntityRef, Source};
    use serde_json::json;

    fn message(data: serde_json::Value) -> TransitionMessage {
        TransitionMessage {
            transition_id: "tr_0123".into(),
            source: Source::Fulfilment,
            tenant: "XYZ".into(),
            entity: EntityRef {
                kind: EntityKind::Order,
                id: "5342".into(),
            },
            from: Some("A".into()),
            to: "B".into(),
            occurred_at: "2022-06-07T09:55:58Z".into(),
            event_key: "fulfilment#1".into(),
            late: false,
            data,
        }
    }

    #[test]
    fn small_messages_are_sent_whole() {
        let m = message(json!({"id": 5342}));
        let body = message_body(&m).unwrap();
        let back: TransitionMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn oversized_data_is_replaced_by_a_marker() {
        let m = message(json!({"blob": "x".repeat(MAX_MESSAGE_BYTES)}));
        let body = message_body(&m).unwrap();
        assert!(body.len() < 1024, "{}", body.len());
        let back: TransitionMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(back.data["omitted"], "message_too_large");
        assert!(back.data["bytes"].as_u64().unwrap() > MAX_MESSAGE_BYTES as u64);
        assert_eq!(
            (back.transition_id, back.to, back.event_key),
            (m.transition_id, m.to, m.event_key)
        );
    }

    #[test]
    fn characters_sqs_refuses_are_escaped() {
        let m = message(json!({"note": "a\u{FFFF}b\u{FFFE}"}));
        let body = message_body(&m).unwrap();
        assert!(!body.contains('\u{FFFF}') && !body.contains('\u{FFFE}'));
        let back: TransitionMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(back.data, m.data);
    }

    #[test]
    fn fifo_ids_are_kept_when_valid_and_hashed_when_not() {
        assert_eq!(
            fifo_id("fulfilment#XYZ#order#5342"),
            "fulfilment#XYZ#order#5342"
        );
        let spaced = fifo_id("pancake#shop 1#order#1");
        assert!(spaced.len() <= MAX_FIFO_ID_CHARS && spaced.bytes().all(|b| b.is_ascii_graphic()));
        assert_ne!(spaced, fifo_id("pancake#shop 2#order#1"));
        assert_eq!(spaced, fifo_id("pancake#shop 1#order#1"));
        let long = fifo_id(&"é".repeat(300));
        assert!(long.len() <= MAX_FIFO_ID_CHARS);
    }
}
