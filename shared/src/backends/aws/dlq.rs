//! The transitions queue's SQS dead-letter queue, for operators: listing what it holds and
//! moving messages back. SQS has no peek: a listing receives with a short visibility timeout
//! and makes each message visible again at once, so listing moves nothing.

use std::collections::HashSet;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;

use super::sqs::SqsQueue;
use crate::error::QueueError;
use crate::model::KeptCopy;
use crate::queue::{DeadLetter, DeadLetters};

/// Receives per call, and how long a received message stays hidden meanwhile.
const RECEIVE_MAX: i32 = 10;
const HIDE_SECS: i32 = 30;

/// The DLQ and the queue it redrives to.
#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    client: Client,
    dlq_url: String,
    queue: SqsQueue,
}

fn sqs_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    op: &str,
    e: aws_sdk_sqs::error::SdkError<E, R>,
) -> QueueError {
    QueueError::Unavailable(format!("sqs {op}: {}", DisplayErrorContext(&e)))
}

impl SqsDeadLetters {
    /// The DLQ at `dlq_url`, reached with the queue's own client.
    pub fn new(dlq_url: impl Into<String>, queue: SqsQueue) -> Self {
        SqsDeadLetters {
            client: queue.client().clone(),
            dlq_url: dlq_url.into(),
            queue,
        }
    }

    /// Every message visible in the DLQ, each once, hidden for [`HIDE_SECS`] meanwhile.
    async fn receive_all(&self, max: usize) -> Result<Vec<Message>, QueueError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while out.len() < max {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(RECEIVE_MAX)
                .visibility_timeout(HIDE_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| sqs_error("ReceiveMessage", e))?;
            let batch = received.messages.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                if seen.insert(m.message_id.clone().unwrap_or_default()) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// Makes listed messages visible again at once.
    async fn release(&self, messages: &[Message]) -> Result<(), QueueError> {
        for chunk in messages.chunks(RECEIVE_MAX as usize) {
            let entries = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle.clone())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }
}

fn attribute(m: &Message, name: MessageSystemAttributeName) -> Option<String> {
    m.attributes.as_ref()?.get(&name).cloned()
}

fn dead_letter(m: &Message) -> DeadLetter {
    DeadLetter {
        id: m.message_id.clone().unwrap_or_default(),
        group: attribute(m, MessageSystemAttributeName::MessageGroupId).unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        receive_count: attribute(m, MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        last_error: None,
    }
}

#[async_trait::async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let messages = self.receive_all(max).await?;
        self.release(&messages).await?;
        Ok(messages.iter().map(dead_letter).collect())
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        let messages = self.receive_all(usize::MAX).await?;
        let (chosen, others): (Vec<Message>, Vec<Message>) = messages.into_iter().partition(|m| {
            ids.is_none_or(|ids| ids.iter().any(|id| Some(id) == m.message_id.as_ref()))
        });
        self.release(&others).await?;
        let mut moved = 0;
        for m in &chosen {
            let letter = dead_letter(m);
            // A new deduplication id: the original is remembered for five minutes.
            self.queue
                .send(
                    letter.body,
                    &letter.group,
                    &format!("redrive:{}", letter.id),
                )
                .await?;
            self.client
                .delete_message()
                .queue_url(&self.dlq_url)
                .set_receipt_handle(m.receipt_handle.clone())
                .send()
                .await
                .map_err(|e| sqs_error("DeleteMessage", e))?;
            moved += 1;
        }
        Ok(moved)
    }

    async fn kept_copies(&self) -> Vec<KeptCopy> {
        let places = [
            (
                self.queue.queue_url(),
                "transitions waiting or in flight to the notifier, each message with its entity's data (SQS deletes a message only through the receipt of whoever received it, so a purge cannot pick them out)",
            ),
            (
                self.dlq_url.as_str(),
                "dead-lettered transitions, until redriven or expired (`webhooks dlq list` shows them)",
            ),
        ];
        let mut kept = Vec::new();
        for (url, what) in places {
            let retention = self.retention(url).await;
            kept.push(KeptCopy {
                place: format!("SQS {url}"),
                kept: format!("{what}; kept at most {retention}"),
            });
        }
        kept
    }
}

impl SqsDeadLetters {
    /// A queue's `MessageRetentionPeriod` in words (template.yaml: 4 days for the queue,
    /// 14 for the DLQ).
    async fn retention(&self, url: &str) -> String {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::MessageRetentionPeriod)
            .send()
            .await;
        match answer {
            Ok(a) => a
                .attributes()
                .and_then(|m| m.get(&QueueAttributeName::MessageRetentionPeriod))
                .and_then(|secs| secs.parse::<u64>().ok())
                .map(|secs| match secs % 86_400 {
                    0 => format!("{} days", secs / 86_400),
                    _ => format!("{secs} seconds"),
                })
                .unwrap_or_else(|| "its MessageRetentionPeriod".to_string()),
            Err(e) => format!(
                "its MessageRetentionPeriod (unread: {})",
                sqs_error("GetQueueAttributes", e)
            ),
        }
    }
}
