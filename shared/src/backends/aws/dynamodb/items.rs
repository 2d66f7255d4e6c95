//! The three tables' items, converted with `serde_dynamo`, and their sizes.
//!
//! # Two forms (issue 12)
//!
//! DynamoDB bills a write per started KB of the item, and the reference webhook's three
//! items were each just over 1 KB. Items are now written **compact**: the event's kept
//! request (headers and raw body) as one deflated Binary `request_z`, the entity's `data` as
//! deflated `data_z`, the transition's queued message as deflated `message_z` (the message
//! is the one copy of `from`, `to` and `event_key`). Items written before hold `body_gz` +
//! `headers`, `data` (JSON text) and `message` (JSON text) + `from`/`to`/`event_key`; both
//! forms are read, so an upgraded deployment keeps its data. An entity rewritten in the
//! compact form has its text `data` removed in the same update.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

use super::Item;
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey, Source, Tenant, TransitionMessage};
use crate::store::{
    compress_small, decompress, DeliveryRecord, EventStatus, IncomingEvent, StoredEvent,
    StoredTransition, TransitionRecord,
};

/// An events-table item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    pub event_key: String,
    pub source: String,
    pub tenant: String,
    pub event_type: String,
    pub status: String,
    /// The kept request (headers and raw body, length-prefixed: `KeptRequest::encode`),
    /// deflated (the compact form).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "binary_opt")]
    pub request_z: Option<Vec<u8>>,
    /// Earlier form: the raw body, deflated.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "binary_opt")]
    pub body_gz: Option<Vec<u8>>,
    /// Earlier form: the kept headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderItem>,
    /// Every entity the event names: `{source}#{tenant}#{kind}#{id}`.
    pub entity_keys: Vec<String>,
    /// The transitions the event recorded, so a duplicate finds them with one read.
    pub transition_keys: Vec<ItemKey>,
    /// Unix seconds.
    pub received_at: i64,
    /// TTL attribute: unix seconds after which DynamoDB may delete the item.
    pub expires_at: i64,
    /// A conflicting delivery's flag: the event holding its declared id with another body
    /// (ARCHITECTURE §4). Absent otherwise, so ordinary items keep their size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_with: Option<String>,
}

/// The port's view of an events-table item.
pub(super) fn stored_event(item: EventItem) -> Result<StoredEvent, StoreError> {
    let request = item.request()?;
    Ok(StoredEvent {
        status: EventStatus::parse(&item.status)
            .ok_or_else(|| StoreError::Corrupt(item.status.clone()))?,
        raw_body: request.body,
        headers: request.headers,
        entity_keys: entity_keys(&item.entity_keys)?,
        event_key: EventKey::from_stored(item.event_key),
        source: Source::parse(&item.source).ok_or(StoreError::Corrupt(item.source))?,
        tenant: Tenant::from_stored(item.tenant),
        event_type: item.event_type,
        received_at: item.received_at,
        expires_at: item.expires_at,
        conflict_with: item.conflict_with.map(EventKey::from_stored),
    })
}

/// The entity keys an event item lists.
pub(super) fn entity_keys(stored: &[String]) -> Result<Vec<EntityKey>, StoreError> {
    stored
        .iter()
        .map(|k| {
            EntityKey::parse(k).ok_or_else(|| StoreError::Corrupt(format!("entity key {k:?}")))
        })
        .collect()
}

/// The request an event keeps: its kept headers and exact raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeptRequest {
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

/// Format byte of [`KeptRequest::encode`].
const REQUEST_FORMAT: u8 = 1;

impl KeptRequest {
    /// Headers and body in one byte string, so one deflate stream covers both (the headers
    /// alone cost ~140 B as a list of maps): a format byte, the header count (u16), each
    /// name and value length-prefixed (u16 big-endian), then the body. Length prefixes, not
    /// separators, so no header value can be misread.
    pub(super) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let too_long = || StoreError::Corrupt("a kept header is over 64 KB".to_string());
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.push(REQUEST_FORMAT);
        let count = u16::try_from(self.headers.len()).map_err(|_| too_long())?;
        out.extend(count.to_be_bytes());
        for (name, value) in &self.headers {
            for part in [name, value] {
                let len = u16::try_from(part.len()).map_err(|_| too_long())?;
                out.extend(len.to_be_bytes());
                out.extend(part.as_bytes());
            }
        }
        out.extend(&self.body);
        Ok(out)
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (&format, rest) = bytes
            .split_first()
            .ok_or_else(|| corrupt_request("empty"))?;
        if format != REQUEST_FORMAT {
            return Err(corrupt_request(&format!("unknown format {format}")));
        }
        let mut cursor = Cursor(rest);
        let count = cursor.length()?;
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name = cursor.text()?;
            headers.push((name, cursor.text()?));
        }
        Ok(KeptRequest {
            headers,
            body: cursor.0.to_vec(),
        })
    }
}

fn corrupt_request(what: &str) -> StoreError {
    StoreError::Corrupt(format!("stored request: {what}"))
}

/// Reads [`KeptRequest::encode`]'s length-prefixed parts.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt_request("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn length(&mut self) -> Result<usize, StoreError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn text(&mut self) -> Result<String, StoreError> {
        let len = self.length()?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| corrupt_request("header not UTF-8"))
    }
}

impl EventItem {
    /// The event's record: its kept request, what became of it, and the keys of the
    /// transitions it recorded (so a duplicate finds them with one read).
    pub(super) fn of(
        incoming: &IncomingEvent,
        status: EventStatus,
        transitions: &[TransitionRecord],
    ) -> Result<Self, StoreError> {
        let event = &incoming.event;
        let request = KeptRequest {
            headers: incoming.headers.clone(),
            body: incoming.raw_body.clone(),
        };
        Ok(EventItem {
            event_key: event.key().to_string(),
            source: event.source.as_str().to_string(),
            tenant: event.tenant.to_string(),
            event_type: event.event_type.clone(),
            status: status.as_str().to_string(),
            request_z: Some(compress_small(&request.encode()?)),
            body_gz: None,
            headers: Vec::new(),
            entity_keys: event.entities.iter().map(|u| u.key.stream()).collect(),
            transition_keys: transitions
                .iter()
                .map(|t| ItemKey {
                    pk: t.stream.clone(),
                    sk: t.sort.clone(),
                })
                .collect(),
            received_at: incoming.received_at.unix_timestamp(),
            expires_at: incoming.expires_at,
            conflict_with: incoming.conflict_with.as_ref().map(|k| k.to_string()),
        })
    }

    /// The kept request, from either form.
    pub(super) fn request(&self) -> Result<KeptRequest, StoreError> {
        match (&self.request_z, &self.body_gz) {
            (Some(z), _) => KeptRequest::decode(&decompress(z)?),
            (None, Some(body)) => Ok(KeptRequest {
                headers: self
                    .headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
                body: decompress(body)?,
            }),
            (None, None) => Err(StoreError::Corrupt(format!(
                "event {} keeps no request",
                self.event_key
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderItem {
    pub name: String,
    pub value: String,
}

/// A `pk`/`sk` key (entities and transitions tables).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    pub(super) fn of_entity(key: &EntityKey) -> Self {
        ItemKey {
            pk: key.partition(),
            sk: key.sort(),
        }
    }

    pub(super) fn to_item(&self) -> Result<Item, StoreError> {
        to_item(self)
    }
}

/// An entities-table item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityItem {
    pub pk: String,
    pub sk: String,
    /// Microseconds since the epoch (see `version`).
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The provider's object as JSON text (kept byte-exact: no number conversion), deflated
    /// (the compact form).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "binary_opt")]
    pub data_z: Option<Vec<u8>>,
    /// Earlier form: the same JSON text, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub last_event_key: String,
    /// TTL attribute: unix seconds after which DynamoDB may delete the item
    /// (`ENTITY_RETENTION_DAYS` after the last event that wrote it). Items written before
    /// entity expiry have none until their next write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The attribute of the earlier form an entity update removes.
pub(super) const LEGACY_ENTITY_DATA: &str = "data";

impl EntityItem {
    /// The compact form's `data_z` of the provider's object.
    pub(super) fn compact_data(data: &serde_json::Value) -> Option<Vec<u8>> {
        Some(compress_small(data.to_string().as_bytes()))
    }

    /// The provider's object, from either form.
    pub(super) fn data(&self) -> Result<serde_json::Value, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("entity data: {e}"));
        match (&self.data_z, &self.data) {
            (Some(z), _) => serde_json::from_slice(&decompress(z)?).map_err(corrupt),
            (None, Some(text)) => serde_json::from_str(text).map_err(corrupt),
            (None, None) => Err(StoreError::Corrupt(format!(
                "entity {}/{} has no data",
                self.pk, self.sk
            ))),
        }
    }
}

/// The part of an entity item the rules and the locking condition need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(super) struct EntityHead {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) version: i64,
    #[serde(default)]
    pub(super) state: Option<String>,
    pub(super) last_event_key: String,
}

/// A transitions-table item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionItem {
    pub pk: String,
    pub sk: String,
    pub transition_id: String,
    /// `not_allowed`, `terminal` or `future` when the transition was flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    pub queued: bool,
    /// Set by the notifier (`record_delivery`); the ingest path never writes it.
    pub published: bool,
    /// The queued message as JSON text, deflated (the compact form): its one copy of
    /// `from`, `to` and `event_key`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "binary_opt")]
    pub message_z: Option<Vec<u8>>,
    /// Earlier form: the queued message as JSON text (`from`, `to` and `event_key` were
    /// attributes of their own too; the message holds the same values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<DeliveryRecord>,
    /// TTL attribute, as the entity's (none on items written before entity expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl TransitionItem {
    pub(super) fn from_record(
        record: &TransitionRecord,
        expires_at: Option<i64>,
    ) -> Result<Self, StoreError> {
        let message = serde_json::to_vec(&record.message)
            .map_err(|e| StoreError::Corrupt(format!("transition message: {e}")))?;
        Ok(TransitionItem {
            pk: record.stream.clone(),
            sk: record.sort.clone(),
            transition_id: record.message.transition_id.clone(),
            flag: record.flag.map(|f| f.as_str().to_string()),
            queued: record.queued,
            published: false,
            message_z: Some(compress_small(&message)),
            message: None,
            notification: None,
            expires_at,
        })
    }

    /// The queued message, from either form.
    pub(super) fn message(&self) -> Result<TransitionMessage, StoreError> {
        let corrupt =
            |e: serde_json::Error| StoreError::Corrupt(format!("transition message: {e}"));
        match (&self.message_z, &self.message) {
            (Some(z), _) => serde_json::from_slice(&decompress(z)?).map_err(corrupt),
            (None, Some(text)) => serde_json::from_str(text).map_err(corrupt),
            (None, None) => Err(StoreError::Corrupt(format!(
                "transition {} has no message",
                self.transition_id
            ))),
        }
    }

    pub(super) fn into_stored(self) -> Result<StoredTransition, StoreError> {
        let message = self.message()?;
        Ok(StoredTransition {
            sort: self.sk,
            transition_id: self.transition_id,
            from: message.from,
            to: message.to,
            event_key: message.event_key,
            flag: self.flag,
            queued: self.queued,
            published: self.published,
            notification: self.notification,
        })
    }
}

/// Optional Binary attributes (`None` is left out of the item).
mod binary_opt {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        super::binary::deserialize(d).map(Some)
    }
}

/// Reading Binary attributes into `Vec<u8>` (serde_dynamo writes `B` for
/// `serialize_bytes`, and hands `B` back as bytes).
mod binary {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::Deserializer;
    use std::fmt;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("binary data")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

pub(super) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    dynamo::to_item(value).map_err(|e| StoreError::Corrupt(format!("item conversion: {e}")))
}

pub(super) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("stored item: {e}")))
}

/// Approximate stored size of an item (names + values), for the transaction byte limit.
pub(super) fn approx_size(item: &Item) -> usize {
    pub(super) fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + approx_size(m),
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + 1 + value(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::compress;
    use std::collections::HashMap;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_string())
    }

    #[test]
    fn compact_items_round_trip_through_serde_dynamo() {
        let request = KeptRequest {
            headers: vec![("user-agent".into(), "x".into())],
            body: b"{\"a\":1}".to_vec(),
        };
        let item = EventItem {
            event_key: "fulfilment#1".into(),
            source: "fulfilment".into(),
            tenant: "XYZ".into(),
            event_type: "order.status_changed".into(),
            status: "applied".into(),
            request_z: Some(compress_small(&request.encode().unwrap())),
            body_gz: None,
            headers: vec![],
            entity_keys: vec![],
            transition_keys: vec![ItemKey {
                pk: "a".into(),
                sk: "b".into(),
            }],
            received_at: 1,
            expires_at: 2,
            conflict_with: None,
        };
        let attrs = to_item(&item).unwrap();
        assert!(matches!(attrs["request_z"], AttributeValue::B(_)));
        assert!(!attrs.contains_key("body_gz") && !attrs.contains_key("headers"));
        assert_eq!(attrs["expires_at"], AttributeValue::N("2".into()));
        let back = from_item::<EventItem>(attrs).unwrap();
        assert_eq!(back, item);
        assert_eq!(back.request().unwrap(), request);

        let t = TransitionItem {
            pk: "p".into(),
            sk: "s".into(),
            transition_id: "tr".into(),
            flag: None,
            queued: true,
            published: false,
            message_z: Some(compress_small(b"{}")),
            message: None,
            notification: Some(DeliveryRecord {
                outcome: crate::store::DeliveryOutcome::Delivered,
                status: None,
                attempt: 1,
                at: "2025-01-01T00:00:00Z".into(),
            }),
            expires_at: Some(3),
        };
        let attrs = to_item(&t).unwrap();
        assert!(!attrs.contains_key("flag") && !attrs.contains_key("message"));
        assert_eq!(attrs["published"], AttributeValue::Bool(false));
        assert_eq!(from_item::<TransitionItem>(attrs).unwrap(), t);
    }

    #[test]
    fn a_kept_request_survives_any_header_bytes_and_rejects_damage() {
        let request = KeptRequest {
            headers: vec![
                ("x-odd".into(), "a: b\r\n\r\nc\u{0}é".into()),
                ("empty".into(), String::new()),
            ],
            body: vec![0, 255, 13, 10, 13, 10],
        };
        let bytes = request.encode().unwrap();
        assert_eq!(KeptRequest::decode(&bytes).unwrap(), request);
        let none = KeptRequest {
            headers: vec![],
            body: vec![],
        };
        assert_eq!(KeptRequest::decode(&none.encode().unwrap()).unwrap(), none);
        assert!(KeptRequest::decode(&bytes[..6]).is_err(), "truncated");
        assert!(KeptRequest::decode(&[9, 0, 0]).is_err(), "unknown format");
        assert!(KeptRequest::decode(&[]).is_err(), "empty");
    }

    /// Items as the release before issue 12 wrote them read the same.
    #[test]
    fn the_earlier_form_still_reads() {
        let event: Item = HashMap::from([
            ("event_key".to_string(), s("fulfilment#1")),
            ("source".to_string(), s("fulfilment")),
            ("tenant".to_string(), s("XYZ")),
            ("event_type".to_string(), s("order.status_changed")),
            ("status".to_string(), s("applied")),
            (
                "body_gz".to_string(),
                AttributeValue::B(compress(b"{\"a\":1}").into()),
            ),
            (
                "headers".to_string(),
                AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                    ("name".to_string(), s("user-agent")),
                    ("value".to_string(), s("x")),
                ]))]),
            ),
            ("entity_keys".to_string(), AttributeValue::L(vec![])),
            ("transition_keys".to_string(), AttributeValue::L(vec![])),
            ("received_at".to_string(), AttributeValue::N("1".into())),
            ("expires_at".to_string(), AttributeValue::N("2".into())),
        ]);
        let stored = stored_event(from_item(event).unwrap()).unwrap();
        assert_eq!(stored.raw_body, b"{\"a\":1}");
        assert_eq!(stored.headers, vec![("user-agent".into(), "x".into())]);

        let entity: Item = HashMap::from([
            ("pk".to_string(), s("fulfilment#XYZ")),
            ("sk".to_string(), s("order#1")),
            ("version".to_string(), AttributeValue::N("5".into())),
            ("data".to_string(), s("{\"id\":1,\"n\":1.50}")),
            ("last_event_key".to_string(), s("fulfilment#1")),
        ]);
        let entity: EntityItem = from_item(entity).unwrap();
        let expected: serde_json::Value = serde_json::from_str("{\"id\":1,\"n\":1.50}").unwrap();
        assert_eq!(entity.data().unwrap(), expected);

        let message = r#"{"transitionId":"tr_1","source":"fulfilment","tenant":"XYZ","entity":{"kind":"order","id":"1"},"from":"A","to":"B","occurredAt":"2025-01-01T00:00:00Z","eventKey":"fulfilment#1","late":false,"data":{"id":1}}"#;
        let transition: Item = HashMap::from([
            ("pk".to_string(), s("fulfilment#XYZ#order#1")),
            ("sk".to_string(), s("v#1")),
            ("transition_id".to_string(), s("tr_1")),
            ("event_key".to_string(), s("fulfilment#1")),
            ("from".to_string(), s("A")),
            ("to".to_string(), s("B")),
            ("queued".to_string(), AttributeValue::Bool(true)),
            ("published".to_string(), AttributeValue::Bool(false)),
            ("message".to_string(), s(message)),
        ]);
        let transition: TransitionItem = from_item(transition).unwrap();
        assert_eq!(transition.message().unwrap().to, "B");
        let stored = transition.into_stored().unwrap();
        assert_eq!(
            (
                stored.from.as_deref(),
                stored.to.as_str(),
                stored.event_key.as_str()
            ),
            (Some("A"), "B", "fulfilment#1")
        );
    }
}
