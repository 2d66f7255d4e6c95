//! The notifier's SQS batch handling: the event as the Lambda runtime deserialises it,
//! then `notify::batch::{process, handle}` over a log target and an in-memory store.
//!
//! Input: byte 0 — bit 0 makes the store fail every call (the retry path), bit 1 picks the
//! form of the rest:
//! - *raw*: the rest is the invocation's JSON, deserialised as `SqsEvent` exactly as
//!   `lambda_runtime` does (seeded with `events/notifier/*.json`);
//! - *structured*: up to 10 records (a batch's maximum) built from the bytes: message ids
//!   present, blank, absent or repeated; groups present, blank, absent or shared; receive
//!   counts well-formed or not; bodies that are valid transition messages, near misses
//!   (ids that are too long or not visible ASCII, unknown kinds) or arbitrary text.
//!
//! Oracle (the rules in `notify/batch.rs`): a record without a message id fails the whole
//! batch, naming the first such record; otherwise there is one report per record, in batch
//! order, with its trimmed id and its group (the `MessageGroupId` attribute, else the
//! body's entity, else the message alone); an unparseable body fails permanently, a store
//! failure is a retry, anything else is delivered (or found delivered earlier in the
//! batch); within a group, everything after a failure is deferred and nothing before; and
//! the partial batch response names exactly the ids of the failed records, once each.

use std::sync::Arc;

use arbitrary::Unstructured;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::executor::block_on;
use serde_json::json;
use webhook_core::clock::FixedClock;
use webhook_core::notify::batch::{self, BatchError, ItemReport, ItemResult};
use webhook_core::notify::{parse_message, Notifier, Outcome, Target};

use crate::input::{byte, item, text};
use crate::store::DeliveryStore;

/// Any fixed time: the log target and the delivery records only format it.
const NOW: i64 = 1_757_069_100;
const SOURCES: [&str; 6] = [
    "pancake",
    "pancake_pos",
    "abaha",
    "fulfilment",
    "invoice",
    "nope",
];
const KINDS: [&str; 12] = [
    "conversation",
    "message",
    "order",
    "customer",
    "product",
    "variation",
    "stock",
    "invoice",
    "post",
    "page",
    "subscription",
    "nope",
];

/// Runs one input; panics when the oracle is violated.
pub fn fuzz(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let control = byte(&mut u);
    let down = control & 1 == 1;
    let event = if control & 2 == 0 {
        match serde_json::from_slice::<SqsEvent>(u.take_rest()) {
            Ok(event) => event,
            // The runtime reports a deserialisation error; none of our code runs.
            Err(_) => return,
        }
    } else {
        structured(&mut u)
    };
    check(&event, down);
}

// ---- structured batches -----------------------------------------------------------------

fn structured(u: &mut Unstructured<'_>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = (0..byte(u) % 11).map(|_| record(u)).collect();
    event
}

fn record(u: &mut Unstructured<'_>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = match byte(u) {
        b if b % 16 == 0 => None,
        b if b % 16 == 1 => Some(" ".into()),
        b if b % 16 == 2 => Some(text(item(u))),
        b => Some(format!(" m{} ", b % 5)),
    };
    if let Some(group) = match byte(u) % 4 {
        0 => None,
        1 => Some(" ".to_string()),
        2 => Some(format!("g{}", byte(u) % 3)),
        _ => Some(text(item(u))),
    } {
        m.attributes.insert(batch::GROUP_ATTRIBUTE.into(), group);
    }
    let count = match byte(u) % 3 {
        0 => None,
        1 => Some(byte(u).to_string()),
        _ => Some(text(item(u))),
    };
    if let Some(count) = count {
        m.attributes
            .insert(batch::RECEIVE_COUNT_ATTRIBUTE.into(), count);
    }
    m.body = body(u);
    m
}

/// A transition message (mostly well-formed), arbitrary text, or no body.
fn body(u: &mut Unstructured<'_>) -> Option<String> {
    match byte(u) % 4 {
        0 | 1 => Some(transition(u).to_string()),
        2 => Some(text(item(u))),
        _ => None,
    }
}

fn transition(u: &mut Unstructured<'_>) -> serde_json::Value {
    let id = match byte(u) % 4 {
        0 => text(item(u)),
        1 => "t".repeat(257),
        _ => format!("tr_{}", byte(u) % 4),
    };
    let pick = |u: &mut Unstructured<'_>, names: &[&'static str]| {
        names[usize::from(byte(u)) % names.len()]
    };
    let source = pick(u, &SOURCES);
    let kind = pick(u, &KINDS);
    json!({
        "transitionId": id, "source": source, "tenant": text(item(u)),
        "entity": {"kind": kind, "id": text(item(u))},
        "from": null, "to": text(item(u)), "occurredAt": "2025-09-05T10:45:00Z",
        "eventKey": format!("{source}#e"), "late": byte(u) & 1 == 1, "data": {"x": text(item(u))},
    })
}

// ---- the oracle -------------------------------------------------------------------------

fn notifier(down: bool) -> Notifier {
    Notifier::new(
        Target::Log,
        Arc::new(DeliveryStore::new(down)),
        Arc::new(FixedClock::at_unix(NOW)),
    )
}

fn check(event: &SqsEvent, down: bool) {
    let processed = block_on(batch::process(&notifier(down), event));
    let handled = block_on(batch::handle(&notifier(down), event));
    if let Some(index) = event.records.iter().position(|r| id_of(r).is_none()) {
        assert_eq!(
            processed.unwrap_err(),
            BatchError::MissingMessageId { index }
        );
        assert_eq!(handled.unwrap_err(), BatchError::MissingMessageId { index });
        return;
    }
    let reports = processed.expect("every record has an id");
    assert_eq!(reports.len(), event.records.len());
    for (i, (report, record)) in reports.iter().zip(&event.records).enumerate() {
        assert_eq!(Some(report.message_id.as_str()), id_of(record));
        assert_eq!(report.group, expected_group(record, &report.message_id));
        check_outcome(&reports, &event.records, i, down);
    }
    check_fifo(&reports);
    check_response(&reports, &handled.expect("the same batch"));
}

/// A record's trimmed, non-blank message id.
fn id_of(record: &SqsMessage) -> Option<&str> {
    record
        .message_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

fn expected_group(record: &SqsMessage, id: &str) -> String {
    let attribute = record
        .attributes
        .get(batch::GROUP_ATTRIBUTE)
        .map(|g| g.trim());
    match attribute.filter(|g| !g.is_empty()) {
        Some(group) => group.to_string(),
        None => match record.body.as_deref().map(parse_message) {
            Some(Ok(message)) => message.group_id(),
            _ => format!("message:{id}"),
        },
    }
}

/// What an attempted record may have come to, from its body and the store alone.
fn check_outcome(reports: &[ItemReport], records: &[SqsMessage], i: usize, down: bool) {
    let ItemResult::Attempted(outcome) = &reports[i].result else {
        return; // Deferred: judged by `check_fifo`.
    };
    let parsed = transition_of(&records[i]);
    match (&parsed, outcome) {
        (Err(_), Outcome::Permanent { status: None, .. }) => {}
        (Ok(_), Outcome::Retry { .. }) if down => {}
        (Ok(m), Outcome::Delivered { status: None }) if !down => assert_eq!(
            delivered(reports, records, &m.transition_id),
            1,
            "transition {} delivered twice in one batch",
            m.transition_id
        ),
        // Only when another record of this batch delivered the same transition.
        (Ok(m), Outcome::AlreadyDelivered) if !down => assert_eq!(
            delivered(reports, records, &m.transition_id),
            1,
            "transition {} already delivered, but not by this batch",
            m.transition_id
        ),
        _ => panic!("record {i}: {outcome:?} for {parsed:?} (store down: {down})"),
    }
}

fn transition_of(
    record: &SqsMessage,
) -> Result<webhook_core::model::TransitionMessage, webhook_core::notify::BadMessage> {
    parse_message(record.body.as_deref().unwrap_or(""))
}

/// How many records delivered transition `id`.
fn delivered(reports: &[ItemReport], records: &[SqsMessage], id: &str) -> usize {
    reports
        .iter()
        .zip(records)
        .filter(|(r, _)| matches!(r.result, ItemResult::Attempted(Outcome::Delivered { .. })))
        .filter(|(_, record)| transition_of(record).is_ok_and(|m| m.transition_id == id))
        .count()
}

/// FIFO per group: no deferral before the group's first failure, only deferrals after it.
fn check_fifo(reports: &[ItemReport]) {
    for (i, report) in reports.iter().enumerate() {
        let earlier_failed = reports[..i]
            .iter()
            .any(|r| r.group == report.group && !r.result.is_success());
        let deferred = report.result == ItemResult::Deferred;
        assert_eq!(
            deferred, earlier_failed,
            "record {i} of group {:?}",
            report.group
        );
    }
}

/// The partial batch response names each failed record's id once, in batch order.
fn check_response(reports: &[ItemReport], response: &SqsBatchResponse) {
    let mut expected: Vec<&str> = Vec::new();
    for r in reports.iter().filter(|r| !r.result.is_success()) {
        if !expected.contains(&r.message_id.as_str()) {
            expected.push(&r.message_id);
        }
    }
    let named: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(named, expected);
    assert!(serde_json::to_vec(response).is_ok());
}
