//! Pancake (pages.fm, seed 000): conversations, messages, orders and customers of a page.
//!
//! Credential: `X-API-Key` header or `api_key` query parameter equal to a key in
//! `PANCAKE_API_KEYS`; when `PANCAKE_SIGNING_SECRETS` is set, `X-Pancake-Signature` must
//! also be the hex HMAC-SHA256 of the raw body (both checks constant-time, every key tried).
//! The envelope's own `"signature"` field is not checked: a signature inside the body
//! cannot cover the bytes that contain it.
//!
//! Payload forms:
//! - the seed envelope `{"payload":{"eventType","pageId","data","timestamp"},"signature"}`
//!   with `conversation_updated`, `message_received`, `order_created`, `order_updated`,
//!   `customer_updated` (dotted names such as `order.created` are read the same way);
//! - Pancake's own deliveries (developer.pancake.biz/webhook), `{"event_type","page_id",
//!   "data"}`, with the five documented types: `messaging` (the conversation and the
//!   message; `page_id` may sit at the top, in `data`, or in the conversation/message, and
//!   as a last resort is read from a `<pageId>_<senderId>` conversation id),
//!   `conversation` (the conversation, ordered by its own counter `version`), `post` (kind
//!   `post`), `connect_status` (kind `page`, state `connected`/`disconnected`, versioned by
//!   `timestamp`, a change is a transition) and `subscription` (account-level, no page:
//!   kind `subscription` under the credential's bound tenant, else `default`).
//!
//! Tenant = page id. Orders carry their `status` as state (a change against the stored one
//! is a queued transition). The event id is Pancake's `request_id` scoped by page where a
//! delivery carries one ([`request_event_id`]), else the body hash. Other event types are
//! kept and acknowledged, not projected; any other JSON object is kept as unrecognised.

use serde_json::{Map, Value};

use sha2::{Digest, Sha256};

use super::guard::{Credential, Guard};
use super::pancake_common::{api_key, resource, Delivery, Form, Member, Projector, API_KEY_HEADER};
use super::{canonical_event_type, id_of, opt_string, unnamed_tenant};
use crate::config::{resolve_credentials, ConfigError, Credentials, Env, Mode};
use crate::model::{
    EntityKind, EntityUpdate, NormalisedEvent, Recognition, SameState, Source, Tenant,
    TransitionRule,
};
use crate::verify::{BodyDigest, SecretSet};
use crate::version::Version;

pub const API_KEYS_VAR: &str = crate::config::vars::PANCAKE_API_KEYS.name;
pub const SIGNING_SECRETS_VAR: &str = crate::config::vars::PANCAKE_SIGNING_SECRETS.name;
/// Local-mode key the events/ samples carry (README).
pub const DEV_API_KEY: &str = "dev-pancake-key";
pub const SIGNATURE_HEADER: &str = "X-Pancake-Signature";
/// The tenant field of the seed envelope, echoed in responses.
pub(crate) const TENANT_FIELD: &str = "pageId";
/// `event_type` of the real chat delivery.
const MESSAGING: &str = "messaging";
/// Prefix of an event id made from Pancake's `request_id` ([`request_event_id`]).
pub(crate) const REQUEST_ID_PREFIX: &str = crate::model::CARRIED_ID_PREFIX;

#[derive(Debug, Clone)]
pub struct Pancake {
    guard: Guard,
}

impl Pancake {
    /// `signing` is optional: empty means no signature is required.
    pub fn new(keys: Credentials, signing: SecretSet) -> Self {
        let signature = Credential::signature(SIGNATURE_HEADER, BodyDigest::HmacSha256);
        Pancake {
            guard: Guard::new(keys, api_key(&[API_KEY_HEADER]))
                .and_if_configured(signing, signature),
        }
    }

    /// API keys fail closed like every source's credential; signing secrets are an extra,
    /// optional check (enforced whenever configured, even with `ALLOW_UNVERIFIED`).
    pub fn from_env(env: &Env, mode: Mode) -> Result<Self, ConfigError> {
        Ok(Self::new(
            resolve_credentials(env, mode, Source::Pancake, DEV_API_KEY)?,
            env.secrets(&crate::config::vars::PANCAKE_SIGNING_SECRETS),
        ))
    }

    /// The `X-Pancake-Signature` value for `body` under `secret` (tests and samples).
    pub fn sign(body: &[u8], secret: &str) -> String {
        BodyDigest::HmacSha256.sign_hex(body, secret)
    }
}

impl Member for Pancake {
    const FORM: Form = Form {
        source: Source::Pancake,
        tenant_field: TENANT_FIELD,
        delivery_tenant_field: "page_id",
        envelope_entities,
        real_delivery: real,
    };

    fn key_check(&self) -> &Guard {
        &self.guard
    }
}

/// Pancake's own deliveries (its webhook spec): `event_type` beside `page_id`, `data` and,
/// for `conversation` and `connect_status`, `request_id` and `timestamp`. `None` (kept as
/// unrecognised) when `event_type` is no string, or a page event names no page.
fn real(body: &Map<String, Value>, delivery: &Delivery) -> Option<NormalisedEvent> {
    let provider_event = match body.get("event_type")? {
        Value::String(s) if !s.trim().is_empty() => s.trim(),
        _ => return None,
    };
    let data = body.get("data").and_then(Value::as_object);
    let page = page_id(body, data);
    let event = PageEvent::of(provider_event);
    let tenant = match event {
        // Account-level: no page; the credential's tenant, else `default` (§4).
        PageEvent::Subscription => unnamed_tenant(delivery.bound),
        PageEvent::Other => page.unwrap_or_else(|| unnamed_tenant(delivery.bound)),
        _ => page?,
    };
    let timestamp = body.get("timestamp").and_then(Version::from_json);
    let p = Projector::new(Source::Pancake, tenant.clone(), timestamp, delivery.now);
    let entities = data
        .map(|d| event.entities(d, body, timestamp, &p))
        .unwrap_or_default();
    Some(NormalisedEvent {
        recognition: Recognition::Known,
        source: Source::Pancake,
        event_id: request_event_id(&tenant, body.get("request_id"))
            .unwrap_or_else(|| delivery.body_id.clone()),
        event_type: event.event_type(provider_event),
        provider_event: provider_event.to_string(),
        tenant,
        entities,
    })
}

/// The five event types of Pancake's webhook spec, and any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageEvent {
    Messaging,
    Conversation,
    Post,
    ConnectStatus,
    Subscription,
    Other,
}

impl PageEvent {
    fn of(name: &str) -> PageEvent {
        [
            (MESSAGING, PageEvent::Messaging),
            ("conversation", PageEvent::Conversation),
            ("post", PageEvent::Post),
            ("connect_status", PageEvent::ConnectStatus),
            ("subscription", PageEvent::Subscription),
        ]
        .into_iter()
        .find_map(|(n, e)| name.eq_ignore_ascii_case(n).then_some(e))
        .unwrap_or(PageEvent::Other)
    }

    /// `messaging` is the seed's `message.received`, `conversation` its
    /// `conversation.updated`; every other name is kept as Pancake spells it.
    fn event_type(self, provider_event: &str) -> String {
        match self {
            PageEvent::Messaging => "message.received".to_string(),
            PageEvent::Conversation => "conversation.updated".to_string(),
            _ => canonical_event_type(provider_event),
        }
    }

    fn entities(
        self,
        data: &Map<String, Value>,
        body: &Map<String, Value>,
        timestamp: Option<Version>,
        p: &Projector,
    ) -> Vec<EntityUpdate> {
        let object = |field: &str| data.get(field).and_then(Value::as_object);
        let update = match self {
            PageEvent::Messaging => return messaging_entities(data, p),
            PageEvent::Conversation => object("conversation").and_then(|c| conversation(c, p)),
            PageEvent::Post => object("post").and_then(|post| p.entity(EntityKind::Post, post)),
            PageEvent::ConnectStatus => connect_status(data, body, timestamp, p),
            PageEvent::Subscription => {
                object("subscription").and_then(|s| p.entity(EntityKind::Subscription, s))
            }
            PageEvent::Other => None,
        };
        update.into_iter().collect()
    }
}

/// A `conversation` delivery's conversation, ordered by Pancake's own counter
/// `version` ("apply an update only if its version is greater"), not by a time: a counter
/// version outranks any time ([`Version::from_counter`]). Without a usable counter the
/// object's time decides, as for the conversation of a `messaging` delivery.
fn conversation(obj: &Map<String, Value>, p: &Projector) -> Option<EntityUpdate> {
    let mut update = p.entity(EntityKind::Conversation, obj)?;
    if let Some(counter) = obj.get("version").and_then(Version::counter_from_json) {
        update.version = counter;
    }
    Some(update)
}

/// A `connect_status` delivery: the page (id `data.page_id`, else the delivery's page) in
/// state `connected` / `disconnected`, versioned by the delivery's `timestamp`; a state
/// differing from the stored one is a transition, queued like an order's.
fn connect_status(
    data: &Map<String, Value>,
    body: &Map<String, Value>,
    timestamp: Option<Version>,
    p: &Projector,
) -> Option<EntityUpdate> {
    let id = id_of(data.get("page_id")).or_else(|| id_of(body.get("page_id")))?;
    let state = match data.get("connect_status") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    let mut update = p.update(EntityKind::Page, id, data);
    update.version = timestamp.unwrap_or(update.version);
    update.transition = TransitionRule::from_previous(None, state.as_deref(), SameState::Record);
    update.state = state;
    Some(update)
}

/// The event id of a delivery carrying Pancake's `request_id` ("unique ID of this webhook
/// delivery, for idempotent processing"): `rq_` + hex sha256 of the page and the id, so a
/// retry (even with another `timestamp`) is the same event and two pages' ids never
/// collide (the body is signed by no key of the page: a request id alone is no identity).
/// `None` for a missing, blank, over-long ([`super::MAX_ID_LEN`]) or control-character id, which
/// leaves the body hash as the id.
pub(crate) fn request_event_id(page: &Tenant, request_id: Option<&Value>) -> Option<String> {
    let id = id_of(request_id).filter(|id| !id.chars().any(char::is_control))?;
    let mut h = Sha256::new();
    h.update((page.as_str().len() as u64).to_be_bytes());
    h.update(page.as_str().as_bytes());
    h.update(id.as_bytes());
    Some(format!("{REQUEST_ID_PREFIX}{}", hex::encode(h.finalize())))
}

/// The entities of a seed-envelope event, by its canonical type.
fn envelope_entities(
    event_type: &str,
    data: &Map<String, Value>,
    p: &Projector,
) -> Vec<EntityUpdate> {
    match event_type {
        "conversation.updated" => p
            .entity(EntityKind::Conversation, resource(data, "conversation"))
            .into_iter()
            .collect(),
        // `data` is the message itself, or the chat delivery's {conversation, message}.
        "message.received" if data.get("message").is_some_and(Value::is_object) => {
            messaging_entities(data, p)
        }
        "message.received" => p.entity(EntityKind::Message, data).into_iter().collect(),
        "order.created" | "order.updated" => {
            let order = resource(data, "order");
            // Pancake names no previous status: the stored one decides.
            p.order(order, opt_string(order, "status"), None, SameState::Record)
                .into_iter()
                .collect()
        }
        "customer.updated" => p
            .entity(EntityKind::Customer, resource(data, "customer"))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The conversation and the message of a chat delivery (each only when it has an id).
fn messaging_entities(data: &Map<String, Value>, p: &Projector) -> Vec<EntityUpdate> {
    [
        (EntityKind::Conversation, "conversation"),
        (EntityKind::Message, "message"),
    ]
    .into_iter()
    .filter_map(|(kind, field)| p.entity(kind, data.get(field)?.as_object()?))
    .collect()
}

/// The page of a chat delivery: `page_id` at the top, in `data`, in the conversation or the
/// message, else the `<pageId>` part of a `<pageId>_<senderId>` conversation id (split at
/// the last `_`, since page ids of some channels contain one themselves).
fn page_id(body: &Map<String, Value>, data: Option<&Map<String, Value>>) -> Option<Tenant> {
    let nested = |field: &str| {
        data.and_then(|d| d.get(field))
            .and_then(Value::as_object)
            .and_then(|o| id_of(o.get("page_id")))
    };
    id_of(body.get("page_id"))
        .or_else(|| data.and_then(|d| id_of(d.get("page_id"))))
        .or_else(|| nested("conversation"))
        .or_else(|| nested("message"))
        .or_else(|| {
            let conversation = data?.get("conversation")?.as_object()?;
            let id = id_of(conversation.get("id"))?;
            let (page, sender) = id.rsplit_once('_')?;
            (!page.is_empty() && !sender.is_empty()).then(|| page.to_string())
        })
        .map(Tenant::new)
}

#[cfg(test)]
#[path = "pancake_tests.rs"]
mod tests;
