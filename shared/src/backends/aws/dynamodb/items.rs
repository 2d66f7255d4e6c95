//! The three tables' items, converted with `serde_dynamo`, and their sizes.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

use super::Item;
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey};
use crate::store::{
    compress, decompress, DeliveryRecord, EventStatus, IncomingEvent, StoredEvent,
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
    /// The raw body, gzip-compressed, stored as Binary.
    #[serde(with = "binary")]
    pub body_gz: Vec<u8>,
    pub headers: Vec<HeaderItem>,
    /// Every entity the event names: `{source}#{tenant}#{kind}#{id}`.
    pub entity_keys: Vec<String>,
    /// The transitions the event recorded, so a duplicate finds them with one read.
    pub transition_keys: Vec<ItemKey>,
    /// Unix seconds.
    pub received_at: i64,
    /// TTL attribute: unix seconds after which DynamoDB may delete the item.
    pub expires_at: i64,
}

/// The port's view of an events-table item.
pub(super) fn stored_event(item: EventItem) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        status: EventStatus::parse(&item.status)
            .ok_or_else(|| StoreError::Corrupt(item.status.clone()))?,
        raw_body: decompress(&item.body_gz)?,
        headers: item
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        event_key: item.event_key,
        source: item.source,
        tenant: item.tenant,
        event_type: item.event_type,
        entity_keys: item.entity_keys,
        received_at: item.received_at,
        expires_at: item.expires_at,
    })
}

impl EventItem {
    /// The event's record: its kept request, what became of it, and the keys of the
    /// transitions it recorded (so a duplicate finds them with one read).
    pub(super) fn of(
        incoming: &IncomingEvent,
        status: EventStatus,
        transitions: &[TransitionRecord],
    ) -> Self {
        let event = &incoming.event;
        EventItem {
            event_key: event.key().to_string(),
            source: event.source.as_str().to_string(),
            tenant: event.tenant.to_string(),
            event_type: event.event_type.clone(),
            status: status.as_str().to_string(),
            body_gz: compress(&incoming.raw_body),
            headers: incoming
                .headers
                .iter()
                .map(|(name, value)| HeaderItem {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
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
    /// The provider's object as JSON text (kept byte-exact: no number conversion).
    pub data: String,
    pub last_event_key: String,
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
    pub event_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// `not_allowed` or `terminal` when the transition was flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    pub queued: bool,
    /// Set by the notifier (`record_delivery`); the ingest path never writes it.
    pub published: bool,
    /// The queued message, as JSON text.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<DeliveryRecord>,
}

impl TransitionItem {
    pub(super) fn from_record(
        record: &TransitionRecord,
        event_key: &EventKey,
    ) -> Result<Self, StoreError> {
        Ok(TransitionItem {
            pk: record.stream.clone(),
            sk: record.sort.clone(),
            transition_id: record.message.transition_id.clone(),
            event_key: event_key.to_string(),
            from: record.message.from.clone(),
            to: record.message.to.clone(),
            flag: record.flag.map(|f| f.as_str().to_string()),
            queued: record.queued,
            published: false,
            message: serde_json::to_string(&record.message)
                .map_err(|e| StoreError::Corrupt(format!("transition message: {e}")))?,
            notification: None,
        })
    }

    pub(super) fn into_stored(self) -> StoredTransition {
        StoredTransition {
            sort: self.sk,
            transition_id: self.transition_id,
            from: self.from,
            to: self.to,
            event_key: self.event_key,
            flag: self.flag,
            queued: self.queued,
            published: self.published,
            notification: self.notification,
        }
    }
}

/// Binary attributes for `Vec<u8>` (serde_dynamo writes `B` for `serialize_bytes`).
mod binary {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
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

    #[test]
    fn items_round_trip_through_serde_dynamo() {
        let item = EventItem {
            event_key: "fulfilment#1".into(),
            source: "fulfilment".into(),
            tenant: "XYZ".into(),
            event_type: "order.status_changed".into(),
            status: "applied".into(),
            body_gz: compress(b"{\"a\":1}"),
            headers: vec![HeaderItem {
                name: "user-agent".into(),
                value: "x".into(),
            }],
            entity_keys: vec![],
            transition_keys: vec![ItemKey {
                pk: "a".into(),
                sk: "b".into(),
            }],
            received_at: 1,
            expires_at: 2,
        };
        let attrs = to_item(&item).unwrap();
        assert!(matches!(attrs["body_gz"], AttributeValue::B(_)));
        assert_eq!(attrs["expires_at"], AttributeValue::N("2".into()));
        assert_eq!(from_item::<EventItem>(attrs).unwrap(), item);

        let t = TransitionItem {
            pk: "p".into(),
            sk: "s".into(),
            transition_id: "tr".into(),
            event_key: "e".into(),
            from: None,
            to: "B".into(),
            flag: None,
            queued: true,
            published: false,
            message: "{}".into(),
            notification: Some(DeliveryRecord {
                outcome: "delivered".into(),
                status: None,
                attempt: 1,
                at: "2025-01-01T00:00:00Z".into(),
            }),
        };
        let attrs = to_item(&t).unwrap();
        assert!(!attrs.contains_key("from") && !attrs.contains_key("flag"));
        assert_eq!(attrs["published"], AttributeValue::Bool(false));
        assert_eq!(from_item::<TransitionItem>(attrs).unwrap(), t);
    }
}
