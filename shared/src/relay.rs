//! The relay (ARCHITECTURE §6): transitions leave through the transitions table's change
//! stream, not through the ingest request. The Lambda service reads the stream in order per
//! shard and hands the relay batches of records; the relay sends the queued transitions
//! among them to the FIFO queue, in stream order, and reports where it stopped.
//!
//! Transport-agnostic: the records arrive already decoded ([`Record`]), the queue is the
//! port. `runtime::serve_relay_lambda` decodes the DynamoDB stream event and answers with
//! the partial batch response.
//!
//! Order per entity: everything after the first record that could not be sent is held back
//! and that record is named as the batch's failure, so the stream retries from it
//! (`ReportBatchItemFailures` checkpoints at the lowest failed sequence number). Records
//! before it that were sent are not reported: retrying them would only be dropped by SQS
//! deduplication (transition id) or, after its 5-minute window, skipped by the notifier's
//! recorded outcome.

use std::time::Instant;

use crate::error::StoreError;
use crate::metrics::{names, MetricLine, MetricsSink};
use crate::model::TransitionMessage;
use crate::queue::TransitionQueue;

/// The `Service` dimension of the relay's metrics.
pub const METRICS_SERVICE: &str = "relay";

/// One stream record, decoded: its identifier (the sequence number) and the transition to
/// send, `None` when the change is not one to send, or why it could not be read.
#[derive(Debug)]
pub struct Record {
    pub id: String,
    pub message: Result<Option<TransitionMessage>, StoreError>,
}

/// What became of a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Transitions now on the queue.
    pub relayed: usize,
    /// Records that are not transitions to send (the notifier's modifications, flagged
    /// transitions, removals).
    pub skipped: usize,
    /// The first record not handled, from which the stream must retry; `None`: all done.
    pub first_failed: Option<String>,
    /// Records held back from `first_failed` on (it included).
    pub held: usize,
}

/// Sends the queued transitions of `records` in order; see the module doc for what a
/// failure does.
pub async fn relay(queue: &dyn TransitionQueue, records: &[Record]) -> Report {
    let mut report = Report::default();
    let mut to_send = Vec::new();
    let mut ids = Vec::new();
    let mut unreadable = None;
    for (i, record) in records.iter().enumerate() {
        match &record.message {
            Ok(Some(message)) => {
                to_send.push(message.clone());
                ids.push(i);
            }
            Ok(None) => report.skipped += 1,
            Err(error) => {
                tracing::error!(record = %record.id, %error, "relay: unreadable stream record");
                unreadable = Some(i);
                break;
            }
        }
    }
    let published = queue.publish_in_order(&to_send).await;
    report.relayed = published.sent;
    let stop = match published.error {
        Some(error) => {
            tracing::warn!(%error, "relay: the queue refused a transition; the stream retries from it");
            Some(ids[published.sent])
        }
        None => unreadable,
    };
    if let Some(at) = stop {
        report.first_failed = Some(records[at].id.clone());
        report.held = records.len() - at;
        report.skipped = records[..at]
            .iter()
            .filter(|r| matches!(r.message, Ok(None)))
            .count();
    }
    report
}

/// [`relay`], then its log line and metrics.
pub(crate) async fn relay_and_report(
    queue: &dyn TransitionQueue,
    records: &[Record],
    metrics: MetricsSink,
) -> Report {
    let started = Instant::now();
    let report = relay(queue, records).await;
    tracing::info!(
        records = records.len(),
        relayed = report.relayed,
        skipped = report.skipped,
        held = report.held,
        first_failed = report.first_failed.as_deref().unwrap_or(""),
        duration_ms = started.elapsed().as_millis() as u64,
        "relay batch"
    );
    MetricLine::new(METRICS_SERVICE)
        .count(names::TRANSITIONS_RELAYED, report.relayed as u64)
        .count(
            names::RELAY_FAILURES,
            u64::from(report.first_failed.is_some()),
        )
        .count(names::RELAY_HELD, report.held as u64)
        .emit(metrics);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::QueueError;
    use crate::model::{EntityKind, EntityRef, Source};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Accepts `capacity` messages, then refuses.
    struct Limited {
        capacity: usize,
        sent: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TransitionQueue for Limited {
        async fn publish(&self, m: &TransitionMessage) -> Result<(), QueueError> {
            let mut sent = self.sent.lock().unwrap();
            if sent.len() == self.capacity {
                return Err(QueueError::Unavailable("full".into()));
            }
            sent.push(m.transition_id.clone());
            Ok(())
        }
    }

    fn queued(id: &str, seq: u32) -> Record {
        Record {
            id: seq.to_string(),
            message: Ok(Some(TransitionMessage {
                transition_id: id.into(),
                source: Source::Abaha,
                tenant: "s".into(),
                entity: EntityRef {
                    kind: EntityKind::Order,
                    id: "1".into(),
                },
                from: None,
                to: "x".into(),
                occurred_at: "2025-01-01T00:00:00Z".into(),
                event_key: "abaha#1".into(),
                late: false,
                data: serde_json::json!({}),
            })),
        }
    }

    fn other(seq: u32) -> Record {
        Record {
            id: seq.to_string(),
            message: Ok(None),
        }
    }

    fn queue(capacity: usize) -> Limited {
        Limited {
            capacity,
            sent: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test]
    async fn a_whole_batch_is_sent_in_order_and_others_skipped() {
        let q = queue(10);
        let records = [queued("a", 1), other(2), queued("b", 3)];
        let report = relay(&q, &records).await;
        assert_eq!(*q.sent.lock().unwrap(), ["a", "b"]);
        assert_eq!(
            report,
            Report {
                relayed: 2,
                skipped: 1,
                first_failed: None,
                held: 0
            }
        );
    }

    #[tokio::test]
    async fn the_first_refused_transition_is_where_the_stream_retries() {
        let q = queue(1);
        let records = [queued("a", 1), other(2), queued("b", 3), queued("c", 4)];
        let report = relay(&q, &records).await;
        assert_eq!(
            *q.sent.lock().unwrap(),
            ["a"],
            "nothing after b went ahead of it"
        );
        assert_eq!(report.first_failed.as_deref(), Some("3"));
        assert_eq!((report.relayed, report.skipped, report.held), (1, 1, 2));
    }

    #[tokio::test]
    async fn an_unreadable_record_holds_back_what_follows_it() {
        let q = queue(10);
        let bad = Record {
            id: "2".into(),
            message: Err(StoreError::Corrupt("corrupt".into())),
        };
        let records = [queued("a", 1), bad, queued("b", 3)];
        let report = relay(&q, &records).await;
        assert_eq!(*q.sent.lock().unwrap(), ["a"]);
        assert_eq!(report.first_failed.as_deref(), Some("2"));
        assert_eq!(report.held, 2);
    }
}
