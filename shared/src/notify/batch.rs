//! The SQS side of the notifier: one Lambda invocation's batch in, the partial batch
//! response (`ReportBatchItemFailures`) out. No AWS call is made here, so it is tested with
//! hand-built events.
//!
//! Rules:
//! - Messages are grouped by their `MessageGroupId` attribute (the entity key; for a
//!   record without one, the body's entity, else the message alone). Groups are delivered
//!   concurrently; the messages of one group sequentially, in batch order.
//! - FIFO: once a message of a group fails (retry or permanent), every later message of that
//!   group in the batch is reported failed too, without being attempted. Deleting a later
//!   message while an earlier one goes back to the queue would deliver them out of order.
//! - Each failed message is named by its `messageId`; everything else is deleted by SQS.
//!   Permanent failures are reported failed like retries, so SQS moves them to the DLQ
//!   after the redrive policy's `maxReceiveCount` rather than dropping them.
//! - A record without a `messageId` cannot be named in `batchItemFailures`, and an empty
//!   or unknown identifier makes Lambda treat the whole response as failed anyway. Rather
//!   than let that happen implicitly (or, worse, report success and lose the record), the
//!   batch is rejected before anything is delivered: [`handle`] returns
//!   [`BatchError::MissingMessageId`], the invocation fails, and SQS makes the whole batch
//!   visible again (each message then counts a receive toward the DLQ). SQS always sets the
//!   id, so this only guards against hand-built or corrupted events.
//!
//! Sizing (template.yaml): the messages of one group are sent one after another, so the
//! function timeout must cover `batch size × NOTIFY_TIMEOUT_MS` plus the store calls, and
//! the queue's visibility timeout should be at least six times the function timeout (AWS
//! guidance). If an invocation times out anyway, SQS redelivers the whole batch; messages
//! already delivered are then recognised by their recorded outcome and not sent again.

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use thiserror::Error;
use tracing::{error, info, warn};

use super::{parse_message, Notifier, Outcome, Tally};

/// FIFO attributes SQS sets on each record.
pub const GROUP_ATTRIBUTE: &str = "MessageGroupId";
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record #{index} of the SQS batch has no messageId, so it cannot be reported in batchItemFailures: failing the whole invocation so SQS redelivers the batch")]
    MissingMessageId { index: usize },
}

/// What became of one record of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Delivery was attempted (or found already done).
    Attempted(Outcome),
    /// Not attempted: an earlier message of its group failed in this batch.
    Deferred,
}

impl ItemResult {
    pub fn is_success(&self) -> bool {
        matches!(self, ItemResult::Attempted(o) if o.is_success())
    }
}

/// One record's message id and result, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    pub message_id: String,
    pub group: String,
    pub result: ItemResult,
}

/// Handles one SQS batch: delivers what it can, returns the failures to redeliver, and
/// writes the batch's counters through the notifier's metrics sink.
pub async fn handle(notifier: &Notifier, event: &SqsEvent) -> Result<SqsBatchResponse, BatchError> {
    let started = Instant::now();
    let reports = process(notifier, event).await?;
    let mut tally = Tally::default();
    let mut response = SqsBatchResponse::default();
    for report in &reports {
        match &report.result {
            ItemResult::Attempted(outcome) => tally.add(outcome),
            ItemResult::Deferred => tally.deferred += 1,
        }
        let already_named = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == report.message_id);
        if !report.result.is_success() && !already_named {
            response.add_failure(report.message_id.clone());
        }
    }
    info!(
        records = reports.len(),
        failures = response.batch_item_failures.len(),
        delivered = tally.delivered,
        already_delivered = tally.already_delivered,
        retried = tally.retried,
        failed_permanently = tally.permanent,
        deferred = tally.deferred,
        "notifier batch done"
    );
    tally
        .metric_line(started.elapsed().as_secs_f64() * 1_000.0)
        .emit(notifier.metrics());
    Ok(response)
}

/// Delivers the batch per the module rules and reports each record, in batch order.
pub async fn process(notifier: &Notifier, event: &SqsEvent) -> Result<Vec<ItemReport>, BatchError> {
    let records = &event.records;
    let ids = message_ids(records)?;
    let group_keys: Vec<String> = records
        .iter()
        .zip(&ids)
        .map(|(record, id)| group_of(record, id))
        .collect();
    let groups = by_group(&group_keys);
    let per_group = futures::future::join_all(
        groups
            .iter()
            .map(|(group, indexes)| deliver_group(notifier, records, &ids, group, indexes)),
    )
    .await;

    let mut by_index: Vec<Option<ItemResult>> = vec![None; records.len()];
    for (i, result) in per_group.into_iter().flatten() {
        by_index[i] = Some(result);
    }
    Ok(by_index
        .into_iter()
        .zip(ids.into_iter().zip(group_keys))
        .map(|(result, (message_id, group))| ItemReport {
            message_id,
            group,
            // Every index belongs to exactly one group, so each slot is filled.
            result: result.unwrap_or(ItemResult::Deferred),
        })
        .collect())
}

/// Every record's message id; one without fails the whole batch (it could not be named
/// in `batchItemFailures`, so only a whole-batch failure gets it redelivered).
fn message_ids(records: &[SqsMessage]) -> Result<Vec<String>, BatchError> {
    let mut ids = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        match record.message_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => ids.push(id.to_string()),
            _ => {
                error!(
                    index,
                    records = records.len(),
                    "SQS record without messageId: failing the whole batch (nothing delivered) so SQS redelivers it"
                );
                return Err(BatchError::MissingMessageId { index });
            }
        }
    }
    Ok(ids)
}

/// Groups in order of first appearance, each with its records' indexes in batch order.
fn by_group(group_keys: &[String]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut group_index: HashMap<&str, usize> = HashMap::new();
    for (i, group) in group_keys.iter().enumerate() {
        let group = group.as_str();
        let slot = *group_index.entry(group).or_insert_with(|| {
            groups.push((group, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(i);
    }
    groups
}

/// One group's records in order; after a failure the rest of the group is deferred (FIFO:
/// a later transition must not overtake the one that failed).
async fn deliver_group(
    notifier: &Notifier,
    records: &[SqsMessage],
    ids: &[String],
    group: &str,
    indexes: &[usize],
) -> Vec<(usize, ItemResult)> {
    let mut results = Vec::with_capacity(indexes.len());
    let mut failed = false;
    for &i in indexes {
        let record = &records[i];
        let result = if failed {
            warn!(
                message_id = %ids[i],
                group = %group,
                "notification deferred: an earlier message of its FIFO group failed in this batch"
            );
            ItemResult::Deferred
        } else {
            let body = record.body.as_deref().unwrap_or("");
            let outcome = notifier.deliver(body, receive_count(record)).await;
            failed = !outcome.is_success();
            ItemResult::Attempted(outcome)
        };
        results.push((i, result));
    }
    results
}

/// The record's FIFO group: the `MessageGroupId` attribute; on a queue without one, the
/// body's entity (so one entity still goes in order); else the message alone.
fn group_of(record: &SqsMessage, message_id: &str) -> String {
    if let Some(group) = record
        .attributes
        .get(GROUP_ATTRIBUTE)
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
    {
        return group.to_string();
    }
    record
        .body
        .as_deref()
        .and_then(|b| parse_message(b).ok())
        .map(|m| m.group_id())
        .unwrap_or_else(|| format!("message:{message_id}"))
}

/// `ApproximateReceiveCount` (1 on the first delivery); 1 when absent or malformed.
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get(RECEIVE_COUNT_ATTRIBUTE)
        .and_then(|c| c.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::backends::sqlite::SqliteStore;
    use crate::clock::FixedClock;
    use crate::notify::Target;
    use serde_json::json;
    use std::sync::Arc;

    fn transition(id: &str, entity: &str) -> String {
        json!({
            "transitionId": id, "source": "fulfilment", "tenant": "XYZ",
            "entity": {"kind": "order", "id": entity}, "from": "A", "to": "B",
            "occurredAt": "2022-06-07T10:00:00Z", "eventKey": "fulfilment#1", "data": {}
        })
        .to_string()
    }

    fn record(id: Option<&str>, group: Option<&str>, body: &str) -> serde_json::Value {
        let mut attributes = json!({"ApproximateReceiveCount": "1", "SequenceNumber": "1"});
        if let Some(g) = group {
            attributes["MessageGroupId"] = json!(g);
        }
        let mut r = json!({"receiptHandle": "rh", "body": body, "attributes": attributes,
            "messageAttributes": {}, "eventSource": "aws:sqs"});
        if let Some(id) = id {
            r["messageId"] = json!(id);
        }
        r
    }

    fn event(records: Vec<serde_json::Value>) -> SqsEvent {
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn log_notifier() -> Notifier {
        Notifier::new(
            Target::Log,
            Arc::new(SqliteStore::in_memory().unwrap()),
            Arc::new(FixedClock::at_unix(1_700_000_000)),
        )
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn log_target_succeeds_the_whole_batch() {
        let ev = event(vec![
            record(Some("m1"), Some("g1"), &transition("tr_1", "1")),
            record(Some("m2"), Some("g1"), &transition("tr_2", "1")),
            record(Some("m3"), Some("g2"), &transition("tr_3", "2")),
        ]);
        let response = handle(&log_notifier(), &ev).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": []})
        );
    }

    #[tokio::test]
    async fn poison_fails_and_defers_the_rest_of_its_group_only() {
        let ev = event(vec![
            record(Some("m1"), Some("g1"), "this is not json"),
            record(Some("m2"), Some("g2"), &transition("tr_2", "2")),
            record(Some("m3"), Some("g1"), &transition("tr_3", "1")),
        ]);
        let notifier = log_notifier();
        let reports = process(&notifier, &ev).await.unwrap();
        assert!(matches!(
            reports[0].result,
            ItemResult::Attempted(Outcome::Permanent { .. })
        ));
        assert!(reports[1].result.is_success());
        assert_eq!(reports[2].result, ItemResult::Deferred);
        let response = handle(&notifier, &ev).await.unwrap();
        assert_eq!(failures(&response), ["m1", "m3"]);
    }

    #[tokio::test]
    async fn a_record_without_message_id_fails_the_invocation() {
        for missing in [None, Some(""), Some("  ")] {
            let ev = event(vec![
                record(Some("m1"), Some("g1"), &transition("tr_1", "1")),
                record(missing, Some("g2"), &transition("tr_2", "2")),
            ]);
            assert_eq!(
                handle(&log_notifier(), &ev).await.unwrap_err(),
                BatchError::MissingMessageId { index: 1 }
            );
        }
    }

    #[test]
    fn groups_fall_back_to_the_body_entity() {
        let ev = event(vec![
            record(Some("m1"), None, &transition("tr_1", "7")),
            record(Some("m2"), None, "{}"),
            record(Some("m3"), Some(" g "), "{}"),
        ]);
        assert_eq!(group_of(&ev.records[0], "m1"), "fulfilment#XYZ#order#7");
        assert_eq!(group_of(&ev.records[1], "m2"), "message:m2");
        assert_eq!(group_of(&ev.records[2], "m3"), "g");
    }

    #[test]
    fn receive_count_defaults_to_one() {
        let mut ev = event(vec![record(Some("m1"), None, "{}")]);
        assert_eq!(receive_count(&ev.records[0]), 1);
        ev.records[0]
            .attributes
            .insert(RECEIVE_COUNT_ATTRIBUTE.into(), "4".into());
        assert_eq!(receive_count(&ev.records[0]), 4);
        ev.records[0]
            .attributes
            .insert(RECEIVE_COUNT_ATTRIBUTE.into(), "x".into());
        assert_eq!(receive_count(&ev.records[0]), 1);
    }
}
