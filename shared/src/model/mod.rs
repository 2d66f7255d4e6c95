//! Domain types shared by providers, pipeline, stores and the notifier.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lifecycle::Lifecycle;
use crate::version::Version;

mod keys;

pub use keys::{EntityKey, EntityKind, EventKey, Source, Tenant};

/// How an event's state change becomes a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionRule {
    /// The event carries no state change.
    None,
    /// The provider states the change itself (fulfilment from/to, invoice previousState/state,
    /// Abaha before_status/status).
    Declared { from: String, to: String },
    /// A change is the new state differing from the stored one (Pancake POS orders).
    FromStored,
}

/// What an event that names the previous state as the new one means: the one choice in which
/// the providers differ when deriving a transition ([`TransitionRule::from_previous`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameState {
    /// The provider's word is taken: `Declared {from: s, to: s}` is recorded (Pancake, Pancake
    /// POS, invoice).
    Record,
    /// No change: `TransitionRule::None` (fulfilment: `from_status` equal to `to_status`).
    Ignore,
    /// As if no previous state were named, the stored one decides: `FromStored` (Abaha, whose
    /// `before_status` equals `status` on every delivery that changes no status).
    FromStored,
}

impl TransitionRule {
    /// The rule of an update to state `to` whose event may name the `previous` state: no
    /// state, no transition; no previous state, the stored one decides (`FromStored`); a
    /// different previous state is declared; the same one is as `same` says.
    pub(crate) fn from_previous(
        previous: Option<String>,
        to: Option<&str>,
        same: SameState,
    ) -> Self {
        let Some(to) = to else {
            return TransitionRule::None;
        };
        match (previous, same) {
            (None, _) => TransitionRule::FromStored,
            (Some(from), SameState::Ignore) if from == to => TransitionRule::None,
            (Some(from), SameState::FromStored) if from == to => TransitionRule::FromStored,
            (Some(from), _) => TransitionRule::Declared {
                from,
                to: to.to_string(),
            },
        }
    }
}

/// What one event says about one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityUpdate {
    pub key: EntityKey,
    pub version: Version,
    pub state: Option<String>,
    pub data: serde_json::Value,
    pub transition: TransitionRule,
    pub lifecycle: Lifecycle,
}

/// A provider event after verification and normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalisedEvent {
    pub source: Source,
    pub event_id: String,
    /// Canonical dotted form (`order.status_changed`), or the provider's own name when unknown.
    pub event_type: String,
    /// The provider's own event name as sent (echoed in Pancake-style responses).
    pub provider_event: String,
    pub tenant: Tenant,
    /// Empty when the event is kept but not projected (unknown type, no entity id).
    pub entities: Vec<EntityUpdate>,
    /// Whether the provider module understood the body's shape (ARCHITECTURE §4): a verified
    /// object of a shape it does not know is kept as `unrecognised`, never refused.
    pub recognition: Recognition,
}

/// Whether a verified body had a shape its provider module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recognition {
    /// A documented form (its event type may still be one we do not project: `ignored`).
    #[default]
    Known,
    /// A JSON object of none of the provider's documented forms: kept, answered 2xx, and
    /// re-projected by `webhooks reprocess` once a release understands it.
    Unrecognised,
}

impl NormalisedEvent {
    pub fn key(&self) -> EventKey {
        EventKey::new(self.source, &self.event_id)
    }
}

/// Lowercase hex sha256 of the raw body: the event id of providers without a delivery id,
/// so a byte-identical redelivery is the same event.
pub fn body_event_id(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// `{tenant}#{digest}`: an event id made only of what a signature covers, scoped by the
/// tenant (ARCHITECTURE §4, issue 21). Two tenants' deliveries can never share it, and a
/// replayed body is the same event whatever delivery id it is sent under. The digest is the
/// first 128 bits of the body's sha256 in unpadded base64url (22 characters): the key is
/// stored twice on the event item and inside the transition, and the 64 hex digits of the
/// whole hash pushed the reference webhook's items over DynamoDB's 1 KB billing unit. 128 bits
/// still make finding another body with the same id (a second preimage) infeasible.
pub fn scoped_body_event_id(tenant: &Tenant, body: &[u8]) -> String {
    format!("{tenant}#{}", short_digest(body))
}

fn short_digest(body: &[u8]) -> String {
    use base64::Engine;
    let digest = Sha256::digest(body);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Prefix of an event id made from a delivery id the body carries, scoped by its tenant
/// (Pancake's `request_id` per page, ARCHITECTURE §4): such an id is [`Identity::OfBody`].
pub(crate) const CARRIED_ID_PREFIX: &str = "rq_";

/// Where an event id comes from, which decides what finding it stored already means
/// (ARCHITECTURE §4, "Event identity").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Derived from the body's bytes (the id ends with their sha256, whole in hex or as the
    /// digest of [`scoped_body_event_id`]): a stored event under it holds the same bytes, so
    /// finding it is a duplicate. Also a delivery id the body itself carries, scoped by the
    /// tenant it names ([`CARRIED_ID_PREFIX`]: Pancake's `request_id` per page): inside the
    /// bytes the credential admitted, and meant by the provider to stay the same across its
    /// retries, whose other fields (`timestamp`) change, so finding it is a duplicate too.
    OfBody,
    /// Named from outside the bytes it is compared with (a delivery header, a body field an
    /// unsigned key cannot vouch for): finding it is a duplicate only when the stored body is
    /// byte-identical, otherwise a conflict ([`EventKey::conflicting`]).
    Declared,
}

impl Identity {
    /// The identity of `event_id` for `body`.
    pub fn of(event_id: &str, body: &[u8]) -> Self {
        if event_id.starts_with(CARRIED_ID_PREFIX)
            || event_id.ends_with(&body_event_id(body))
            || event_id.ends_with(&short_digest(body))
        {
            Identity::OfBody
        } else {
            Identity::Declared
        }
    }
}

/// Deterministic id of the transition one event causes on one entity, so a redelivery
/// produces the same id (SQS MessageDeduplicationId, Standard Webhooks `webhook-id`).
pub fn transition_id(event: &EventKey, entity: &EntityKey) -> String {
    let mut h = Sha256::new();
    h.update(event.as_str().as_bytes());
    h.update(b"|");
    h.update(entity.stream().as_bytes());
    format!("tr_{}", &hex::encode(h.finalize())[..40])
}

/// The queued message: the contract of ARCHITECTURE §6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionMessage {
    pub transition_id: String,
    pub source: Source,
    pub tenant: Tenant,
    pub entity: EntityRef,
    pub from: Option<String>,
    pub to: String,
    /// RFC 3339 time of the change (the entity version).
    pub occurred_at: String,
    pub event_key: EventKey,
    /// True when the event arrived after a newer one for the same entity.
    #[serde(default)]
    pub late: bool,
    pub data: serde_json::Value,
}

impl TransitionMessage {
    /// The entity the transition is of.
    pub fn entity_key(&self) -> EntityKey {
        EntityKey::new(
            self.source,
            self.tenant.clone(),
            self.entity.kind,
            self.entity.id.clone(),
        )
    }

    /// FIFO message group: one entity's transitions stay in order.
    pub fn group_id(&self) -> String {
        self.entity_key().stream()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    pub kind: EntityKind,
    pub id: String,
}

/// What became of an event in the events table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Every entity it names was written.
    Applied,
    /// At least one entity was newer already; the event and transitions are still recorded.
    Stale,
    /// A transition was flagged (not allowed by the lifecycle, or leaving a terminal state).
    Flagged,
    /// Kept but not projected (unknown event type, no entity id).
    Ignored,
    /// Kept but not understood: a verified object of no documented form of its provider.
    Unrecognised,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Applied => "applied",
            EventStatus::Stale => "stale",
            EventStatus::Flagged => "flagged",
            EventStatus::Ignored => "ignored",
            EventStatus::Unrecognised => "unrecognised",
        }
    }

    pub const ALL: [EventStatus; 5] = [
        Self::Applied,
        Self::Stale,
        Self::Flagged,
        Self::Ignored,
        Self::Unrecognised,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Kept without projecting anything (`ignored` or `unrecognised`): what reprocess looks at
    /// after an upgrade that understands more.
    pub(crate) fn is_unprojected(self) -> bool {
        matches!(self, EventStatus::Ignored | EventStatus::Unrecognised)
    }
}

/// What a successful ingest reports back (for the response and the log line).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub event_key: EventKey,
    pub event_type: String,
    pub provider_event: String,
    pub tenant: Tenant,
    pub duplicate: bool,
    pub status: EventStatus,
    pub published: usize,
    /// The stored event whose declared id this delivery shares with another body (a
    /// conflict, kept under its own key and flagged; ARCHITECTURE §4).
    pub conflict_with: Option<EventKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message queued before the read side was typed (tenant and event key were text)
    /// reads and writes the same bytes: the queue and the transitions tables keep them.
    #[test]
    fn a_message_of_the_string_era_round_trips_byte_for_byte() {
        let queued = r#"{"transitionId":"tr_6c1d0b5e","source":"pancake_pos","tenant":"shop-9","entity":{"kind":"order","id":"A#1"},"from":null,"to":"shipped","occurredAt":"2025-01-01T00:00:00.5Z","eventKey":"pancake_pos#shop-9#Yq3mKz_8","late":true,"data":{"id":"A#1","status":2}}"#;
        let message: TransitionMessage = serde_json::from_str(queued).unwrap();
        assert_eq!(serde_json::to_string(&message).unwrap(), queued);
        assert_eq!(message.tenant, "shop-9");
        assert_eq!(message.event_key, "pancake_pos#shop-9#Yq3mKz_8");
        assert_eq!(message.group_id(), "pancake_pos#shop-9#order#A#1");
        assert_eq!(
            EntityKey::parse(&message.group_id()),
            Some(message.entity_key())
        );
        // An older message without `late` still reads (the field defaults).
        let older = queued.replace(r#","late":true"#, "");
        let read: TransitionMessage = serde_json::from_str(&older).unwrap();
        assert!(!read.late);
    }

    #[test]
    fn transition_from_the_previous_state_under_each_same_state_policy() {
        let rule = |previous: Option<&str>, to: Option<&str>, same| {
            TransitionRule::from_previous(previous.map(str::to_string), to, same)
        };
        let declared = |from: &str, to: &str| TransitionRule::Declared {
            from: from.into(),
            to: to.into(),
        };
        for same in [SameState::Record, SameState::Ignore, SameState::FromStored] {
            assert_eq!(rule(Some("a"), None, same), TransitionRule::None);
            assert_eq!(rule(None, None, same), TransitionRule::None);
            assert_eq!(rule(None, Some("b"), same), TransitionRule::FromStored);
            assert_eq!(rule(Some("a"), Some("b"), same), declared("a", "b"));
        }
        let same_state = |same| rule(Some("b"), Some("b"), same);
        assert_eq!(same_state(SameState::Record), declared("b", "b"));
        assert_eq!(same_state(SameState::Ignore), TransitionRule::None);
        assert_eq!(
            same_state(SameState::FromStored),
            TransitionRule::FromStored
        );
    }
}

/// A place that still holds copies of erased data after a purge, and for how long: what
/// `webhooks purge` cannot reach (a backup window, a queue's retention, a log group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptCopy {
    pub place: String,
    /// What it holds and until when, in words.
    pub kept: String,
}
