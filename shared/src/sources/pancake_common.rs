//! What the Pancake and Pancake POS providers have in common, kept once: the static API key
//! (header or `api_key` query parameter), the seed envelope
//! `{"payload":{"eventType", <tenant field>, "data", "timestamp"}}`, and the projection of a
//! provider object onto an [`EntityUpdate`] (id, version, order state).
//!
//! Pancake sends no delivery id, so both providers use [`crate::model::body_event_id`]:
//! a byte-identical redelivery is the same event.
//!
//! [`Provider`] is implemented here once for both: each provider module describes itself as a
//! [`Member`] (its [`Form`] and its key check).

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::guard::{Credential, Guard, Place};
use super::{
    canonical_event_type, id_of, opt_string, parse_object, required_str, unnamed_tenant,
    Normalised, Provider, UNRECOGNISED_TYPE,
};
use crate::error::IngestError;
use crate::http::{RawRequest, ResponseStyle};
use crate::lifecycle::Lifecycle;
use crate::model::{
    body_event_id, EntityKey, EntityKind, EntityUpdate, NormalisedEvent, Recognition, SameState,
    Source, Tenant, TransitionRule,
};
use crate::version::Version;

/// Header both providers may carry the key in (as the seed's setup guide configures it).
pub(crate) const API_KEY_HEADER: &str = "X-API-Key";
/// Query parameter both providers may carry the key in (`?api_key=`).
pub(crate) const API_KEY_QUERY: &str = "api_key";

/// Object fields read as an entity's version, most specific first: Pancake objects carry
/// `updated_at` (orders, conversations, customers) or only `inserted_at` (messages).
const VERSION_FIELDS: [&str; 3] = ["updated_at", "inserted_at", "timestamp"];

/// The static API key of both providers: presented in any of `headers` (names as displayed
/// in errors; matched case-insensitively) or in the `api_key` query parameter.
///
/// Every presented value is compared with every key in constant time (no short-circuit), so
/// neither which place carried the key nor which key matched shows in the timing. Error
/// messages name where a key is expected, never a value.
pub fn api_key(headers: &[&str]) -> Credential {
    let places = headers
        .iter()
        .map(|h| Place::Header(h.to_string()))
        .chain([Place::Query(API_KEY_QUERY)])
        .collect();
    Credential::static_key(places, "API key does not match")
}

/// The seed envelope's `payload`, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope<'a> {
    /// `eventType` exactly as sent (echoed in the response).
    pub event_type: &'a str,
    pub tenant: Tenant,
    /// `data` when it is an object. Anything else (the seed's connectivity test posts
    /// `{}`; a provider bug might post `null`) identifies no entity: the event is kept,
    /// not projected, rather than refused, since refusing only makes the provider retry.
    pub data: Option<&'a Map<String, Value>>,
    /// `timestamp`, the version of objects that carry no time of their own.
    pub timestamp: Option<Version>,
}

/// Reads the seed envelope. `Ok(None)` when the body has no `payload` (one of the
/// providers' real delivery forms); 400 naming the field when `payload` is not an object,
/// or `payload.eventType` / `payload.<tenant_field>` is missing, blank or of the wrong type
/// (the tenant may be a string or a number: `"123456789"`, `123`).
pub(crate) fn parse_envelope<'a>(
    body: &'a Map<String, Value>,
    tenant_field: &str,
) -> Result<Option<Envelope<'a>>, IngestError> {
    let Some(payload) = body.get("payload") else {
        return Ok(None);
    };
    let Value::Object(payload) = payload else {
        return Err(IngestError::invalid_field("payload"));
    };
    let event_type = required_str(payload, "eventType", "payload.eventType")?.trim();
    let tenant = id_of(payload.get(tenant_field))
        .map(Tenant::new)
        .ok_or_else(|| IngestError::invalid_field(format!("payload.{tenant_field}")))?;
    Ok(Some(Envelope {
        event_type,
        tenant,
        data: payload.get("data").and_then(Value::as_object),
        timestamp: payload.get("timestamp").and_then(Version::from_json),
    }))
}

/// What tells one provider of the family from the other.
pub struct Form {
    pub source: Source,
    /// The envelope's tenant field, echoed in responses (`pageId`, `shopId`).
    pub tenant_field: &'static str,
    /// The tenant field of the provider's own delivery forms (`page_id`, `shop_id`).
    pub delivery_tenant_field: &'static str,
    /// The entities of a seed-envelope event, by its canonical type.
    pub envelope_entities: fn(&str, &Map<String, Value>, &Projector) -> Vec<EntityUpdate>,
    /// The provider's own delivery forms (a body without `payload`): `None` when the body is
    /// of none of them, and is then kept as [`Recognition::Unrecognised`].
    pub real_delivery: fn(&Map<String, Value>, &Delivery) -> Option<NormalisedEvent>,
}

/// What a real delivery is normalised with besides its body.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// The body hash ([`body_event_id`]): the event id unless the body carries a delivery id.
    pub body_id: String,
    pub now: OffsetDateTime,
    /// The credential's one bound tenant, if any ([`super::Provider::normalise_for`]).
    pub bound: Option<&'a Tenant>,
}

impl Delivery<'_> {
    /// The tenant `id` names, else the bound one, else `default` ([`unnamed_tenant`]).
    pub(crate) fn tenant_or_unnamed(&self, id: Option<String>) -> Tenant {
        id.map(Tenant::new)
            .unwrap_or_else(|| unnamed_tenant(self.bound))
    }
}

/// A provider of the family: its [`Form`] and its key check. [`Provider`] is implemented
/// once, here, for both.
pub(crate) trait Member: Send + Sync {
    const FORM: Form;
    /// The key check (and any signature check) fixed at start-up.
    fn key_check(&self) -> &Guard;
}

impl<M: Member> Provider for M {
    fn source(&self) -> Source {
        M::FORM.source
    }

    fn response_style(&self) -> ResponseStyle {
        ResponseStyle::PancakeEnvelope {
            tenant_field: M::FORM.tenant_field,
        }
    }

    fn guard(&self) -> &Guard {
        self.key_check()
    }

    fn normalise(&self, req: &RawRequest, now: OffsetDateTime) -> Normalised {
        normalise_delivery(&M::FORM, req, now, None)
    }

    fn normalise_for(
        &self,
        req: &RawRequest,
        now: OffsetDateTime,
        bound: Option<&Tenant>,
    ) -> Normalised {
        normalise_delivery(&M::FORM, req, now, bound)
    }
}

/// Normalises a verified delivery: the seed envelope when the body has a valid `payload`,
/// else one of the provider's own forms, else (any other JSON object) an unrecognised event.
/// Only a body that is no JSON object is refused (400).
fn normalise_delivery(
    form: &Form,
    req: &RawRequest,
    now: OffsetDateTime,
    bound: Option<&Tenant>,
) -> Normalised {
    let body = parse_object(&req.body)?;
    let delivery = Delivery {
        body_id: body_event_id(&req.body),
        now,
        bound,
    };
    let event = match parse_envelope(&body, form.tenant_field) {
        Ok(Some(envelope)) => from_envelope(form, envelope, delivery.body_id.clone(), now),
        Ok(None) => (form.real_delivery)(&body, &delivery)
            .unwrap_or_else(|| unrecognised(form, &body, &delivery)),
        Err(_) => unrecognised(form, &body, &delivery),
    };
    Ok(event)
}

/// A seed-envelope event.
fn from_envelope(
    form: &Form,
    envelope: Envelope,
    event_id: String,
    now: OffsetDateTime,
) -> NormalisedEvent {
    let event_type = canonical_event_type(envelope.event_type);
    let tenant = envelope.tenant.clone();
    let projector = Projector::new(form.source, tenant, envelope.timestamp, now);
    let entities = envelope
        .data
        .map(|data| (form.envelope_entities)(&event_type, data, &projector))
        .unwrap_or_default();
    NormalisedEvent {
        recognition: Recognition::Known,
        source: form.source,
        event_id,
        event_type,
        provider_event: envelope.event_type.to_string(),
        tenant: envelope.tenant,
        entities,
    }
}

/// A verified JSON object of none of the provider's forms: kept under its body hash and
/// answered 2xx, never refused (a refusal only makes the provider retry, and enough of them
/// suspend the feed), with no entities, so `webhooks reprocess` can project it once a
/// release understands it. Its tenant is the one a documented tenant field names
/// (`payload.pageId`, `page_id`, ...), else the credential's bound one, else `default`.
pub fn unrecognised(
    form: &Form,
    body: &Map<String, Value>,
    delivery: &Delivery,
) -> NormalisedEvent {
    let named = body
        .get("payload")
        .and_then(Value::as_object)
        .and_then(|p| id_of(p.get(form.tenant_field)))
        .or_else(|| id_of(body.get(form.delivery_tenant_field)));
    NormalisedEvent {
        recognition: Recognition::Unrecognised,
        source: form.source,
        event_id: delivery.body_id.clone(),
        event_type: UNRECOGNISED_TYPE.to_string(),
        provider_event: UNRECOGNISED_TYPE.to_string(),
        tenant: delivery.tenant_or_unnamed(named),
        entities: Vec::new(),
    }
}

/// The object a `data` holds for one resource: `data.<wrapper>` or `data.record` when the
/// provider wrapped it (Pancake POS sends products and variations as `data.record`), else
/// `data` itself.
pub fn resource<'a>(data: &'a Map<String, Value>, wrapper: &str) -> &'a Map<String, Value> {
    [wrapper, "record"]
        .into_iter()
        .find_map(|w| data.get(w).and_then(Value::as_object))
        .unwrap_or(data)
}

/// Projects provider objects onto entities of one source and tenant.
#[derive(Debug, Clone)]
pub struct Projector {
    source: Source,
    tenant: Tenant,
    /// Version of objects without a timestamp of their own: the envelope's `timestamp`,
    /// else the receive time.
    fallback: Version,
}

impl Projector {
    pub fn new(
        source: Source,
        tenant: Tenant,
        timestamp: Option<Version>,
        now: OffsetDateTime,
    ) -> Self {
        Projector {
            source,
            tenant,
            fallback: timestamp.unwrap_or_else(|| Version::from_datetime(now)),
        }
    }

    /// A stateless entity (conversation, message, customer, product): `None` when the object
    /// has no id (`id`, else `<kind>_id`), since an entity without one cannot be keyed.
    pub fn entity(&self, kind: EntityKind, obj: &Map<String, Value>) -> Option<EntityUpdate> {
        let id = id_of(obj.get("id")).or_else(|| opt_string(obj, &format!("{kind}_id")))?;
        Some(self.update(kind, id, obj))
    }

    /// An entity keyed by an id the caller derived (e.g. a variation's stock per warehouse).
    pub fn update(&self, kind: EntityKind, id: String, obj: &Map<String, Value>) -> EntityUpdate {
        EntityUpdate {
            key: EntityKey::new(self.source, self.tenant.clone(), kind, id),
            version: self.version_of(obj),
            state: None,
            data: Value::Object(obj.clone()),
            transition: TransitionRule::None,
            lifecycle: Lifecycle::Free,
        }
    }

    /// An order in `state`. Without a declared previous state, a transition is the state
    /// differing from the stored one (`FromStored`); with one (a status-change event that
    /// says where it came from) the provider's word is taken (`Declared`), so even a late
    /// delivery is recorded; `same` says what a declared previous state equal to `state`
    /// means ([`TransitionRule::from_previous`]). Orders move freely between provider statuses.
    pub fn order(
        &self,
        obj: &Map<String, Value>,
        state: Option<String>,
        declared_from: Option<String>,
        same: SameState,
    ) -> Option<EntityUpdate> {
        let mut update = self.entity(EntityKind::Order, obj)?;
        update.transition = TransitionRule::from_previous(declared_from, state.as_deref(), same);
        update.state = state;
        Some(update)
    }

    /// The object's own time (`updated_at`, `inserted_at`, `timestamp`), else the fallback.
    pub fn version_of(&self, obj: &Map<String, Value>) -> Version {
        VERSION_FIELDS
            .iter()
            .find_map(|f| obj.get(*f).and_then(Version::from_json))
            .unwrap_or(self.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::SecretSet;
    use serde_json::json;

    fn check_api_key(
        req: &RawRequest,
        headers: &[&str],
        keys: &SecretSet,
    ) -> Result<(), IngestError> {
        api_key(headers)
            .check(req, &crate::config::Keys::any(keys.clone()))
            .map(drop)
    }

    fn expected_places(headers: &[&str]) -> String {
        match api_key(headers) {
            Credential::StaticKey { expected, .. } => expected,
            other => panic!("not a static key: {other:?}"),
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn api_key_from_any_place_and_rotation() {
        let keys = SecretSet::parse("old-key,new-key");
        let via_header = RawRequest::post("/", "{}").with_header("x-api-key", "new-key");
        assert!(check_api_key(&via_header, &[API_KEY_HEADER], &keys).is_ok());
        let via_query = RawRequest::post("/", "{}").with_query("api_key", "old-key");
        assert!(check_api_key(&via_query, &[API_KEY_HEADER], &keys).is_ok());
        let custom = RawRequest::post("/", "{}").with_header("X-Shop-Token", "old-key");
        assert!(check_api_key(&custom, &[API_KEY_HEADER, "X-Shop-Token"], &keys).is_ok());
        // a wrong value in one place does not hide a right one in another
        let both = RawRequest::post("/", "{}")
            .with_header("x-api-key", "stale")
            .with_query("api_key", "new-key");
        assert!(check_api_key(&both, &[API_KEY_HEADER], &keys).is_ok());
    }

    #[test]
    fn api_key_missing_wrong_or_prefix_is_401_without_the_value() {
        let keys = SecretSet::parse("new-key");
        let err = check_api_key(
            &RawRequest::post("/", "{}").with_header("x-api-key", "  "),
            &[API_KEY_HEADER, "X-Webhook-Secret"],
            &keys,
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::MissingCredential(_)));
        assert_eq!(
            err.to_string(),
            "missing credential: header X-API-Key, header X-Webhook-Secret or query parameter api_key"
        );
        for wrong in ["new-ke", "new-key2", "NEW-KEY", "x"] {
            let req = RawRequest::post("/", "{}").with_header("x-api-key", wrong);
            let err = check_api_key(&req, &[API_KEY_HEADER], &keys).unwrap_err();
            assert!(matches!(err, IngestError::BadCredential(_)), "{wrong}");
            assert_eq!(err.status(), 401);
            assert!(!err.to_string().contains("new-key"));
        }
    }

    #[test]
    fn duplicate_header_names_are_described_once() {
        assert_eq!(
            expected_places(&["X-API-Key", "x-api-key"]),
            "header X-API-Key or query parameter api_key"
        );
        assert_eq!(expected_places(&[]), "query parameter api_key");
    }

    #[test]
    fn envelope_fields_are_validated_and_named() {
        let ok = obj(
            json!({"payload": {"eventType": " order_created ", "shopId": 123,
            "data": {"id": 1}, "timestamp": 1234567890}}),
        );
        let env = parse_envelope(&ok, "shopId").unwrap().unwrap();
        assert_eq!(env.event_type, "order_created");
        assert_eq!(env.tenant.as_str(), "123");
        assert_eq!(env.timestamp, Version::parse("2009-02-13T23:31:30Z"));
        assert!(env.data.is_some());
        assert_eq!(
            parse_envelope(&obj(json!({"event_type": "x"})), "pageId").unwrap(),
            None
        );
        let cases = [
            (json!({"payload": []}), "`payload`"),
            (json!({"payload": {"pageId": "1"}}), "payload.eventType"),
            (
                json!({"payload": {"eventType": 7, "pageId": "1"}}),
                "payload.eventType",
            ),
            (json!({"payload": {"eventType": "x"}}), "payload.pageId"),
            (
                json!({"payload": {"eventType": "x", "pageId": " "}}),
                "payload.pageId",
            ),
            (
                json!({"payload": {"eventType": "x", "pageId": {"id": 1}}}),
                "payload.pageId",
            ),
        ];
        for (body, field) in cases {
            let err = parse_envelope(&obj(body.clone()), "pageId").unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
        let odd_data = obj(json!({"payload": {"eventType": "x", "pageId": "1", "data": [1]}}));
        assert_eq!(
            parse_envelope(&odd_data, "pageId").unwrap().unwrap().data,
            None
        );
    }

    #[test]
    fn resource_unwraps_named_or_record_wrappers() {
        let inner = json!({"id": "p1"});
        assert_eq!(
            Value::Object(resource(&obj(json!({"record": inner})), "product").clone()),
            inner
        );
        assert_eq!(
            Value::Object(resource(&obj(json!({"order": inner, "record": 1})), "order").clone()),
            inner
        );
        let flat = obj(json!({"id": "p1", "record": "not an object"}));
        assert_eq!(resource(&flat, "product"), &flat);
    }

    #[test]
    fn ids_versions_and_order_rules() {
        let p = Projector::new(Source::PancakePos, Tenant::new("7"), None, now());
        let by_kind_id = p
            .entity(EntityKind::Customer, &obj(json!({"customer_id": 42})))
            .unwrap();
        assert_eq!(by_kind_id.key.id, "42");
        assert_eq!(by_kind_id.version, Version::from_datetime(now()));
        assert!(p
            .entity(EntityKind::Customer, &obj(json!({"id": null})))
            .is_none());
        let msg = p
            .entity(
                EntityKind::Message,
                &obj(json!({"id": "m1", "inserted_at": "2024-05-01T10:00:00"})),
            )
            .unwrap();
        assert_eq!(msg.version, Version::parse("2024-05-01T10:00:00Z").unwrap());
        // an unparseable updated_at falls through to the next field
        let o = obj(json!({"id": 1, "updated_at": "soon", "timestamp": 1714557600}));
        let order = p
            .order(&o, Some("1".into()), None, SameState::Record)
            .unwrap();
        assert_eq!(
            order.version,
            Version::parse("2024-05-01T10:00:00Z").unwrap()
        );
        assert_eq!(order.transition, TransitionRule::FromStored);
        assert_eq!(order.state.as_deref(), Some("1"));
        let declared = p
            .order(&o, Some("2".into()), Some("1".into()), SameState::Record)
            .unwrap();
        assert_eq!(
            declared.transition,
            TransitionRule::Declared {
                from: "1".into(),
                to: "2".into()
            }
        );
        assert_eq!(
            p.order(&o, None, None, SameState::Record)
                .unwrap()
                .transition,
            TransitionRule::None
        );
        let with_ts = Projector::new(
            Source::Pancake,
            Tenant::new("p"),
            Version::parse("2020-01-01T00:00:00Z"),
            now(),
        );
        assert_eq!(
            with_ts.version_of(&Map::new()),
            Version::parse("2020-01-01T00:00:00Z").unwrap()
        );
    }
}
