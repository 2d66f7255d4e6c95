//! The keys of the domain: the source, the tenant, an event's key and an entity's key, each
//! with the one spelling the stores, the queue and operators use (`as_str`, `stream`) and
//! the one parser that reads it back.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::body_event_id;

/// The five webhook sources. `as_str` is the stored/canonical spelling, and sources sort
/// by it (as the stores' text did before they were typed: `stats` lists them so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Pancake,
    PancakePos,
    Abaha,
    Fulfilment,
    Invoice,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Pancake,
        Source::PancakePos,
        Source::Abaha,
        Source::Fulfilment,
        Source::Invoice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pancake => "pancake",
            Source::PancakePos => "pancake_pos",
            Source::Abaha => "abaha",
            Source::Fulfilment => "fulfilment",
            Source::Invoice => "invoice",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|src| src.as_str() == s)
    }
}

impl PartialOrd for Source {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Source {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The account an event belongs to: page id, shop id, store id or merchant code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tenant(String);

impl Tenant {
    pub const DEFAULT: &'static str = "default";

    /// Empty or missing tenants become `default`; `#` is replaced since it separates key parts.
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let raw = raw.trim();
        if raw.is_empty() {
            Tenant(Self::DEFAULT.to_string())
        } else {
            Tenant(raw.replace('#', "_"))
        }
    }

    pub fn default_tenant() -> Self {
        Tenant(Self::DEFAULT.to_string())
    }

    /// A tenant as a store or a queued message holds it: normalised when it was first read,
    /// so kept as it is.
    pub fn from_stored(raw: String) -> Self {
        Tenant(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant as written by hand (tests, messages built in code): normalised as [`Tenant::new`].
impl From<&str> for Tenant {
    fn from(raw: &str) -> Self {
        Tenant::new(raw)
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compares a typed key with its stored spelling (operators and tests hold the text).
macro_rules! eq_text {
    ($t:ty, $text:ident) => {
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.$text()[..] == *other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self == *other
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self == other.as_str()
            }
        }
        impl PartialEq<$t> for str {
            fn eq(&self, other: &$t) -> bool {
                other == self
            }
        }
        impl PartialEq<$t> for &str {
            fn eq(&self, other: &$t) -> bool {
                other == *self
            }
        }
        impl PartialEq<$t> for String {
            fn eq(&self, other: &$t) -> bool {
                other == self.as_str()
            }
        }
    };
}

eq_text!(Source, as_str);
eq_text!(Tenant, as_str);
eq_text!(EventKey, as_str);

/// `{source}#{event_id}`: the dedupe key of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventKey(String);

impl EventKey {
    pub fn new(source: Source, event_id: &str) -> Self {
        EventKey(format!("{}#{}", source.as_str(), event_id))
    }
    pub fn from_stored(raw: String) -> Self {
        EventKey(raw)
    }
    /// An operator's `{source}#{event_id}`: `None` unless it names a source and an id.
    pub fn parse(raw: &str) -> Option<Self> {
        let (source, id) = raw.split_once('#')?;
        (Source::parse(source).is_some() && !id.is_empty()).then(|| EventKey(raw.to_string()))
    }
    pub fn source(&self) -> Option<Source> {
        Source::parse(self.0.split_once('#')?.0)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The event id part (after `{source}#`).
    pub fn event_id(&self) -> &str {
        self.0.split_once('#').map_or("", |(_, id)| id)
    }
    /// Where a delivery is kept whose declared id is already stored with another body:
    /// `{key}~{sha256 of its body}`, so it is kept beside the other (never taken for a
    /// duplicate of it), and a redelivery of the same bytes finds it again.
    pub fn conflicting(&self, body: &[u8]) -> EventKey {
        EventKey(format!("{}~{}", self.0, body_event_id(body)))
    }
}

/// An event key as stored or sent (as [`EventKey::from_stored`]).
impl From<&str> for EventKey {
    fn from(raw: &str) -> Self {
        EventKey::from_stored(raw.to_string())
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of entity the providers' events are projected onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Conversation,
    Message,
    Order,
    Customer,
    Product,
    Variation,
    Stock,
    Invoice,
    /// A Pancake page post (`post` deliveries).
    Post,
    /// A Pancake page's connection to its platform (`connect_status`), state
    /// `connected` / `disconnected`.
    Page,
    /// A Pancake account subscription (`subscription`, no page).
    Subscription,
}

impl EntityKind {
    /// Every kind, in the order operators see them listed.
    pub const ALL: [EntityKind; 11] = [
        EntityKind::Conversation,
        EntityKind::Message,
        EntityKind::Order,
        EntityKind::Customer,
        EntityKind::Product,
        EntityKind::Variation,
        EntityKind::Stock,
        EntityKind::Invoice,
        EntityKind::Post,
        EntityKind::Page,
        EntityKind::Subscription,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Conversation => "conversation",
            EntityKind::Message => "message",
            EntityKind::Order => "order",
            EntityKind::Customer => "customer",
            EntityKind::Product => "product",
            EntityKind::Variation => "variation",
            EntityKind::Stock => "stock",
            EntityKind::Invoice => "invoice",
            EntityKind::Post => "post",
            EntityKind::Page => "page",
            EntityKind::Subscription => "subscription",
        }
    }

    pub fn parse(s: &str) -> Option<EntityKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// `conversation, message, ...`: every kind's stored spelling, for messages that list them.
    pub fn listed() -> String {
        Self::ALL.map(EntityKind::as_str).join(", ")
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entity of one tenant of one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityKey {
    pub source: Source,
    pub tenant: Tenant,
    pub kind: EntityKind,
    pub id: String,
}

impl EntityKey {
    pub fn new(source: Source, tenant: Tenant, kind: EntityKind, id: impl Into<String>) -> Self {
        EntityKey {
            source,
            tenant,
            kind,
            id: id.into(),
        }
    }
    /// Entities table partition key: `{source}#{tenant}`.
    pub fn partition(&self) -> String {
        format!("{}#{}", self.source, self.tenant)
    }
    /// Entities table sort key: `{kind}#{id}`.
    pub fn sort(&self) -> String {
        format!("{}#{}", self.kind, self.id)
    }
    /// `{source}#{tenant}#{kind}#{id}`: transitions partition key and FIFO message group.
    /// The one place the key is spelled; [`EntityKey::parse`] reads it back.
    pub fn stream(&self) -> String {
        format!("{}#{}#{}#{}", self.source, self.tenant, self.kind, self.id)
    }

    /// Reads [`EntityKey::stream`] back. A tenant never holds `#` ([`Tenant::new`] replaces
    /// it), so the third segment is the kind and the rest, `#` included, is the id.
    pub fn parse(stream: &str) -> Option<EntityKey> {
        let mut parts = stream.splitn(4, '#');
        let source = Source::parse(parts.next()?)?;
        let tenant = parts.next()?;
        let kind = EntityKind::parse(parts.next()?)?;
        let id = parts.next()?;
        Some(EntityKey::new(
            source,
            Tenant::from_stored(tenant.to_string()),
            kind,
            id,
        ))
    }
}

impl Serialize for EntityKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EntityKey::parse(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("{raw:?} is not an entity key")))
    }
}

impl PartialOrd for EntityKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// In the order of the stored key, as the stores list them.
impl Ord for EntityKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.stream().cmp(&other.stream())
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream())
    }
}

eq_text!(EntityKey, stream);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_key_reads_back_as_it_was_spelled() {
        let keys = [
            EntityKey::new(
                Source::PancakePos,
                Tenant::new("9"),
                EntityKind::Order,
                "A#1",
            ),
            // A tenant spelled like a kind, and an id holding separators and kinds.
            EntityKey::new(
                Source::Pancake,
                Tenant::new("message"),
                EntityKind::Conversation,
                "p#order#",
            ),
            EntityKey::new(Source::Invoice, Tenant::new("a#b"), EntityKind::Invoice, ""),
        ];
        for key in keys {
            let stream = key.stream();
            assert_eq!(EntityKey::parse(&stream), Some(key.clone()), "{stream}");
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(json, serde_json::to_string(&stream).unwrap());
            assert_eq!(serde_json::from_str::<EntityKey>(&json).unwrap(), key);
            assert_eq!(key, stream);
        }
        for bad in [
            "",
            "pancake",
            "stripe#t#order#1",
            "pancake#t#nothing#1",
            "pancake#t",
        ] {
            assert_eq!(EntityKey::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sources_sort_by_their_stored_spelling() {
        let mut sorted = Source::ALL;
        sorted.sort();
        let names = sorted.map(Source::as_str);
        let mut spelled = Source::ALL.map(Source::as_str);
        spelled.sort();
        assert_eq!(names, spelled);
    }
}
