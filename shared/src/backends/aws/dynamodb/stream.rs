//! The transitions table's DynamoDB stream, as the relay reads it (ARCHITECTURE §6): which
//! records are transitions to send, and their message.
//!
//! The stream carries every change of the table: the `INSERT` of each recorded transition,
//! then the notifier's `MODIFY` when it records an outcome (and the REMOVE of an expired
//! item). Only the insert of a *queued* transition is sent: a flagged one is history, not a
//! notification, and a later modification of an item already sent must not send it again.

use aws_lambda_events::event::dynamodb::EventRecord;

use super::items::TransitionItem;
use crate::error::StoreError;
use crate::model::TransitionMessage;

/// The stream's name for a new item.
const INSERT: &str = "INSERT";

/// The message to send for `record`: `Some` for the insert of a queued transition, `None`
/// for any other change. An insert whose image is not a transitions-table item (the stream
/// must carry `NEW_IMAGE`) is `Corrupt`: the relay reports it failed rather than skip a
/// transition silently.
pub(crate) fn queued_message(
    record: &EventRecord,
) -> Result<Option<TransitionMessage>, StoreError> {
    if record.event_name != INSERT {
        return Ok(None);
    }
    let image = &record.change.new_image;
    if image.is_empty() {
        return Err(StoreError::Corrupt(
            "stream record without NEW_IMAGE (StreamViewType must be NEW_IMAGE)".to_string(),
        ));
    }
    let item: TransitionItem = serde_dynamo::from_item(image.clone())
        .map_err(|e| StoreError::Corrupt(format!("stream image: {e}")))?;
    if !item.queued {
        return Ok(None);
    }
    item.message().map(Some)
}

/// The record's sequence number: its `itemIdentifier` in a partial batch response.
pub(crate) fn sequence_number(record: &EventRecord) -> Option<&str> {
    record.change.sequence_number.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntityKind, EntityRef, Source};
    use crate::store::compress_small;
    use base64::Engine;
    use serde_json::json;

    fn message() -> TransitionMessage {
        TransitionMessage {
            transition_id: "tr_1".into(),
            source: Source::Fulfilment,
            tenant: "XYZ".into(),
            entity: EntityRef {
                kind: EntityKind::Order,
                id: "1".into(),
            },
            from: Some("A".into()),
            to: "B".into(),
            occurred_at: "2025-01-01T00:00:00Z".into(),
            event_key: "fulfilment#1".into(),
            late: false,
            data: json!({"id": 1}),
        }
    }

    /// A record as the Lambda service delivers it (the stream's JSON, Binary as base64).
    fn record(name: &str, queued: bool, published: bool) -> EventRecord {
        let z = compress_small(&serde_json::to_vec(&message()).unwrap());
        let b64 = base64::engine::general_purpose::STANDARD.encode(z);
        serde_json::from_value(json!({
            "eventID": "1", "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000.5,
                "Keys": {"pk": {"S": "fulfilment#XYZ#order#1"}, "sk": {"S": "v#1"}},
                "NewImage": {
                    "pk": {"S": "fulfilment#XYZ#order#1"}, "sk": {"S": "v#1"},
                    "transition_id": {"S": "tr_1"}, "queued": {"BOOL": queued},
                    "published": {"BOOL": published}, "message_z": {"B": b64}
                },
                "SequenceNumber": "100", "SizeBytes": 300, "StreamViewType": "NEW_IMAGE"
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_the_insert_of_a_queued_transition_is_sent() {
        let sent = queued_message(&record("INSERT", true, false)).unwrap();
        assert_eq!(sent, Some(message()));
        assert_eq!(sequence_number(&record("INSERT", true, false)), Some("100"));
        assert_eq!(queued_message(&record("MODIFY", true, true)).unwrap(), None);
        assert_eq!(queued_message(&record("REMOVE", true, true)).unwrap(), None);
        assert_eq!(
            queued_message(&record("INSERT", false, false)).unwrap(),
            None
        );
    }

    #[test]
    fn an_insert_without_its_image_is_an_error_not_a_skip() {
        let mut r = record("INSERT", true, false);
        r.change.new_image = Default::default();
        assert!(queued_message(&r).is_err());
        let mut r = record("INSERT", true, false);
        r.change.new_image.remove("message_z");
        assert!(queued_message(&r).is_err());
    }
}
