//! The SQS FIFO transition queue (ARCHITECTURE §6): transitions sent to
//! `TRANSITIONS_QUEUE_URL` (by the relay in `SendMessageBatch`es of up to 10, by an operator's
//! replay and by `webhooks-local --store dynamodb` one `SendMessage` each), `MessageGroupId` = the entity key (one entity's transitions stay
//! in order), `MessageDeduplicationId` = the transition id (a republished transition is
//! dropped by SQS within its 5-minute deduplication window; after that the notifier skips a
//! transition whose delivery is recorded), body = the [`TransitionMessage`] JSON.
//!
//! The transition is marked `published` by the notifier once it is handled, never here.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};

use crate::config::{vars, ConfigError, Env};
use crate::error::QueueError;
use crate::model::TransitionMessage;
use crate::queue::{Published, Requeue, TransitionQueue};

/// The largest body sent. SQS accepts 256 KiB on every queue (newer queues up to 1 MiB);
/// this is the conservative bound, so the same code works whatever the queue's
/// `MaximumMessageSize`.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS's limit for `MessageGroupId` and `MessageDeduplicationId`.
pub(crate) const MAX_FIFO_ID_CHARS: usize = 128;
/// Entries per `SendMessageBatch` (SQS's limit).
pub(crate) const MAX_BATCH_ENTRIES: usize = 10;

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
pub(crate) fn fifo_id(raw: &str) -> String {
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

/// One message ready to send: what [`message_body`] and [`fifo_id`] make of a transition,
/// so a batch and a single send carry the same bytes and ids.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub body: String,
    pub group: String,
    pub dedup: String,
}

impl Prepared {
    pub fn of(message: &TransitionMessage) -> Result<Self, QueueError> {
        Ok(Prepared {
            body: message_body(message)?,
            group: fifo_id(&message.group_id()),
            dedup: fifo_id(&message.transition_id),
        })
    }
}

/// Splits `prepared` (in order) into consecutive `SendMessageBatch` requests: at most
/// [`MAX_BATCH_ENTRIES`] entries and [`MAX_MESSAGE_BYTES`] of bodies each (SQS's limits for
/// one request), and **at most one message per group**, so whatever SQS does with the other
/// entries of a request that fails in part, no entity's message can reach the queue ahead of
/// its predecessor. Returns the end index of each request.
pub(crate) fn batch_ends(prepared: &[Prepared]) -> Vec<usize> {
    let mut ends = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, p) in prepared.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES
            || bytes + p.body.len() > MAX_MESSAGE_BYTES
            || prepared[start..i].iter().any(|q| q.group == p.group);
        if full && i > start {
            ends.push(i);
            start = i;
            bytes = 0;
        }
        bytes += p.body.len();
    }
    if start < prepared.len() {
        ends.push(prepared.len());
    }
    ends
}

#[async_trait::async_trait]
impl TransitionQueue for SqsQueue {
    async fn publish(&self, message: &TransitionMessage) -> Result<(), QueueError> {
        let p = Prepared::of(message)?;
        self.send(p.body, &p.group, &p.dedup).await
    }

    /// `SendMessageBatch`es as [`batch_ends`] cuts them, one after the other; the first
    /// entry SQS reports failed (or a request that fails whole) stops everything after it.
    async fn publish_in_order(&self, messages: &[TransitionMessage]) -> Published {
        let mut prepared = Vec::with_capacity(messages.len());
        for m in messages {
            match Prepared::of(m) {
                Ok(p) => prepared.push(p),
                Err(error) => {
                    // Nothing after an unsendable message goes ahead of it.
                    let sent = prepared.len();
                    return self.send_prepared(&prepared).await.stopped_at(sent, error);
                }
            }
        }
        self.send_prepared(&prepared).await
    }
}

trait StoppedAt {
    fn stopped_at(self, at: usize, error: QueueError) -> Published;
}

impl StoppedAt for Published {
    /// The messages before `at` went as they went; `at` itself failed with `error`.
    fn stopped_at(self, at: usize, error: QueueError) -> Published {
        match self.error {
            Some(_) => self,
            None => Published {
                sent: at,
                error: Some(error),
            },
        }
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
    /// Sends `prepared` in the requests [`batch_ends`] cuts, stopping at the first failure.
    async fn send_prepared(&self, prepared: &[Prepared]) -> Published {
        let mut start = 0;
        for end in batch_ends(prepared) {
            if let Err((failed, error)) = self.send_batch(&prepared[start..end]).await {
                return Published {
                    sent: start + failed,
                    error: Some(error),
                };
            }
            start = end;
        }
        Published {
            sent: prepared.len(),
            error: None,
        }
    }

    /// One `SendMessageBatch` (entry ids are the positions); on failure, the position of
    /// the first entry not enqueued (0 when the request failed whole) and why.
    async fn send_batch(&self, batch: &[Prepared]) -> Result<(), (usize, QueueError)> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, p)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_group_id(&p.group)
                    .message_deduplication_id(&p.dedup)
                    .message_body(&p.body)
                    .build()
                    .map_err(|e| (0, QueueError::Unavailable(format!("batch entry: {e}"))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                let e = format!("sqs SendMessageBatch: {}", DisplayErrorContext(&e));
                (0, QueueError::Unavailable(e))
            })?;
        let first_failed = output
            .failed()
            .iter()
            .map(|f| (f.id().parse::<usize>().unwrap_or(0), f))
            .min_by_key(|(i, _)| *i);
        match first_failed {
            None => Ok(()),
            Some((i, f)) => Err((
                i,
                QueueError::Unavailable(format!(
                    "sqs SendMessageBatch entry {i}: {} {}",
                    f.code(),
                    f.message().unwrap_or_default()
                )),
            )),
        }
    }

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

    fn prepared(group: &str, bytes: usize) -> Prepared {
        Prepared {
            body: "x".repeat(bytes),
            group: group.into(),
            dedup: format!("{group}-{bytes}"),
        }
    }

    #[test]
    fn batches_hold_ten_one_per_entity_within_the_size_limit() {
        let many: Vec<_> = (0..23).map(|i| prepared(&format!("g{i}"), 10)).collect();
        assert_eq!(batch_ends(&many), vec![10, 20, 23]);
        // a second message of an entity starts a new request
        let same = vec![
            prepared("a", 1),
            prepared("b", 1),
            prepared("a", 2),
            prepared("c", 1),
        ];
        assert_eq!(batch_ends(&same), vec![2, 4]);
        // bodies over the request's byte limit are split
        let big = vec![
            prepared("a", MAX_MESSAGE_BYTES / 2),
            prepared("b", MAX_MESSAGE_BYTES / 2),
            prepared("c", 1),
        ];
        assert_eq!(batch_ends(&big), vec![2, 3]);
        let huge = vec![prepared("a", MAX_MESSAGE_BYTES), prepared("b", 1)];
        assert_eq!(batch_ends(&huge), vec![1, 2]);
        assert!(batch_ends(&[]).is_empty());
    }

    #[test]
    fn a_prepared_message_is_what_a_single_send_carries() {
        let m = message(json!({"id": 1}));
        let p = Prepared::of(&m).unwrap();
        assert_eq!(p.body, message_body(&m).unwrap());
        assert_eq!(p.group, fifo_id(&m.group_id()));
        assert_eq!(p.dedup, m.transition_id);
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
