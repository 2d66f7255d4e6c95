//! Fulfilment platform (seed 003): `X-Event-Signature` = lowercase hex
//! sha256(raw body ++ secret) — a plain hash, not an HMAC, as the provider defines it —
//! and `X-Event-Delivery` as the delivery id, which the signature does not cover: the event id
//! is therefore the tenant and the body's hash, and the delivery id only a kept header (and
//! the key an earlier release stored the event under, looked up on upgrade).
//!
//! Events: `ORDER.CHANGE_STATUS` → the order (tenant = merchant_code) with a transition
//! from_status → to_status; `SKU.CHANGE_STOCK` → one stock entity per `stocks[]` entry.
//! Other events are stored and acknowledged, not projected.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::guard::{Credential, Guard};
use super::{id_of, opt_string, parse_object, required_str, take_object, Normalised, Provider};
use crate::config::{resolve_credentials, ConfigError, Credentials, Env, Mode};
use crate::error::IngestError;
use crate::http::{RawRequest, ResponseStyle};
use crate::lifecycle::Lifecycle;
use crate::model::{
    scoped_body_event_id, EntityKey, EntityKind, EntityUpdate, NormalisedEvent, Recognition,
    SameState, Source, Tenant, TransitionRule,
};
use crate::verify::BodyDigest;
use crate::version::Version;

pub const SECRETS_VAR: &str = crate::config::vars::FULFILMENT_SECRETS.name;
/// Local-mode secret the events/ samples are signed with (README).
pub const DEV_SECRET: &str = "dev-fulfilment-secret";
pub const SIGNATURE_HEADER: &str = "X-Event-Signature";
pub(crate) const DELIVERY_HEADER: &str = "x-event-delivery";
/// Longest delivery id accepted (it becomes part of a key).
const MAX_DELIVERY_ID: usize = 128;

#[derive(Debug, Clone)]
pub struct Fulfilment {
    guard: Guard,
}

impl Fulfilment {
    pub fn new(credentials: Credentials) -> Self {
        let signature = Credential::signature_of(
            SIGNATURE_HEADER,
            BodyDigest::Sha256BodyThenSecret,
            claimed_tenant,
        );
        Fulfilment {
            guard: Guard::new(credentials, signature),
        }
    }

    pub fn from_env(env: &Env, mode: Mode) -> Result<Self, ConfigError> {
        Ok(Self::new(resolve_credentials(
            env,
            mode,
            Source::Fulfilment,
            DEV_SECRET,
        )?))
    }

    /// The signature header value for `body` under `secret` (tests and samples).
    pub fn sign(body: &[u8], secret: &str) -> String {
        BodyDigest::Sha256BodyThenSecret.sign_hex(body, secret)
    }
}

impl Provider for Fulfilment {
    fn source(&self) -> Source {
        Source::Fulfilment
    }

    fn response_style(&self) -> ResponseStyle {
        ResponseStyle::Plain
    }

    fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Releases before issue 21 keyed an event by its delivery id alone.
    fn earlier_event_id(&self, req: &RawRequest) -> Option<String> {
        delivery_id(req).ok().flatten().map(str::to_string)
    }

    fn normalise(&self, req: &RawRequest, now: OffsetDateTime) -> Normalised {
        let mut body = parse_object(&req.body)?;
        let event = required_str(&body, "event", "event")?.trim().to_string();
        // Still refused when malformed: an earlier release made it part of a key.
        delivery_id(req)?;
        let (event_type, tenant, entities) = match event.as_str() {
            "ORDER.CHANGE_STATUS" => {
                let payload = take_object(&mut body, "payload", "payload")?;
                let tenant = tenant_of(&payload);
                let entities = order_update(payload, &tenant, now).into_iter().collect();
                ("order.status_changed".to_string(), tenant, entities)
            }
            "SKU.CHANGE_STOCK" => {
                let payload = take_object(&mut body, "payload", "payload")?;
                let tenant = tenant_of(&payload);
                let entities = stock_updates(payload, &tenant, now);
                ("inventory.updated".to_string(), tenant, entities)
            }
            other => {
                let tenant = body
                    .get("payload")
                    .and_then(Value::as_object)
                    .map(tenant_of)
                    .unwrap_or_else(Tenant::default_tenant);
                (super::canonical_event_type(other), tenant, Vec::new())
            }
        };
        Ok(NormalisedEvent {
            recognition: Recognition::Known,
            source: Source::Fulfilment,
            // What the signature covers, scoped by tenant: the delivery id is not signed, so
            // it cannot say which event this is (ARCHITECTURE §4).
            event_id: scoped_body_event_id(&tenant, &req.body),
            event_type,
            provider_event: event,
            tenant,
            entities,
        })
    }
}

/// `X-Event-Delivery` when present and well formed (a kept header, not the identity); a
/// malformed one is 400, as before issue 21.
fn delivery_id(req: &RawRequest) -> Result<Option<&str>, IngestError> {
    match req.header(DELIVERY_HEADER).map(str::trim) {
        Some(id) if !id.is_empty() => {
            if id.len() > MAX_DELIVERY_ID || id.chars().any(|c| c.is_control()) {
                Err(IngestError::invalid_field("X-Event-Delivery"))
            } else {
                Ok(Some(id))
            }
        }
        _ => Ok(None),
    }
}

/// The tenant an unverified body claims, for the credential table's lookup of its secrets:
/// the same field `normalise` reads (the pipeline holds the two together).
fn claimed_tenant(body: &[u8]) -> Tenant {
    parse_object(body)
        .ok()
        .and_then(|body| {
            body.get("payload")
                .and_then(Value::as_object)
                .map(tenant_of)
        })
        .unwrap_or_else(Tenant::default_tenant)
}

fn tenant_of(payload: &Map<String, Value>) -> Tenant {
    opt_string(payload, "merchant_code")
        .map(Tenant::new)
        .unwrap_or_else(Tenant::default_tenant)
}

/// The order of an ORDER.CHANGE_STATUS, or `None` when it carries no order id.
fn order_update(
    payload: Map<String, Value>,
    tenant: &Tenant,
    now: OffsetDateTime,
) -> Option<EntityUpdate> {
    let order = payload.get("order").and_then(Value::as_object);
    let id = order.and_then(|o| id_of(o.get("id")).or_else(|| id_of(o.get("code"))))?;
    let to = opt_string(&payload, "to_status")
        .or_else(|| order.and_then(|o| opt_string(o, "status")))?;
    let version = version_of(order, now);
    // A from_status equal to to_status announces no change.
    let from = opt_string(&payload, "from_status");
    let transition = TransitionRule::from_previous(from, Some(&to), SameState::Ignore);
    Some(EntityUpdate {
        key: EntityKey::new(Source::Fulfilment, tenant.clone(), EntityKind::Order, id),
        version,
        state: Some(to),
        data: Value::Object(payload),
        transition,
        lifecycle: Lifecycle::Free,
    })
}

/// One stock entity per `stocks[]` entry with an identifiable stock.
fn stock_updates(
    mut payload: Map<String, Value>,
    tenant: &Tenant,
    now: OffsetDateTime,
) -> Vec<EntityUpdate> {
    let product_code = opt_string(&payload, "product_code");
    let Some(Value::Array(stocks)) = payload.remove("stocks") else {
        return Vec::new();
    };
    stocks
        .into_iter()
        .filter_map(|entry| match entry {
            Value::Object(entry) => Some(entry),
            _ => None,
        })
        .filter_map(|mut entry| {
            let stock = entry.get("stock").and_then(Value::as_object);
            let warehouse = opt_string(&entry, "warehouse_code");
            let id = stock.and_then(|s| id_of(s.get("id"))).or_else(|| {
                Some(format!(
                    "{}@{}",
                    product_code.as_deref()?,
                    warehouse.as_deref()?
                ))
            })?;
            let version = version_of(stock, now);
            if let Some(code) = &product_code {
                entry.insert("product_code".into(), Value::String(code.clone()));
            }
            Some(EntityUpdate {
                key: EntityKey::new(Source::Fulfilment, tenant.clone(), EntityKind::Stock, id),
                version,
                state: None,
                data: Value::Object(entry),
                transition: TransitionRule::None,
                lifecycle: Lifecycle::Free,
            })
        })
        .collect()
}

/// `updated_at` of the object; the receive time when the provider sent none.
fn version_of(obj: Option<&Map<String, Value>>, now: OffsetDateTime) -> Version {
    obj.and_then(|o| o.get("updated_at"))
        .and_then(Version::from_json)
        .unwrap_or_else(|| Version::from_datetime(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identity;
    use crate::verify::SecretSet;
    use serde_json::json;

    const ORDER: &str = include_str!("../../fixtures/fulfilment/order_change_status.json");
    const STOCK: &str = include_str!("../../fixtures/fulfilment/sku_change_stock.json");

    fn provider() -> Fulfilment {
        Fulfilment::new(Credentials::Verified(crate::config::Keys::any(
            SecretSet::parse("old-secret,s3cret"),
        )))
    }

    fn signed(body: &str, secret: &str) -> RawRequest {
        RawRequest::post("/api/v1/fulfilment/webhook", body)
            .with_header(
                "X-Event-Signature",
                &Fulfilment::sign(body.as_bytes(), secret),
            )
            .with_header("X-Event-Delivery", "1001")
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn seed_signature_scheme_is_sha256_of_body_then_secret() {
        // Independent vector: sha256("{}" + "abc") computed outside this crate.
        assert_eq!(
            Fulfilment::sign(b"{}", "abc"),
            "b1131bb4f70138692414186f8d716784611369e6c41b08d2652d8897b6356618"
        );
    }

    #[test]
    fn accepts_any_configured_secret() {
        assert!(provider().verify(&signed(ORDER, "s3cret")).is_ok());
        assert!(provider().verify(&signed(ORDER, "old-secret")).is_ok());
    }

    #[test]
    fn rejects_wrong_secret_tampered_body_and_missing_header() {
        let p = provider();
        assert!(matches!(
            p.verify(&signed(ORDER, "wrong")),
            Err(IngestError::BadCredential(_))
        ));
        let mut tampered = signed(ORDER, "s3cret");
        tampered.body = ORDER
            .replace("WAITING_CONFIRM\"\n", "FINISH\"\n")
            .into_bytes();
        tampered.body.push(b' ');
        assert!(matches!(
            p.verify(&tampered),
            Err(IngestError::BadCredential(_))
        ));
        let unsigned = RawRequest::post("/", ORDER);
        let err = p.verify(&unsigned).unwrap_err();
        assert!(matches!(err, IngestError::MissingCredential(_)));
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn order_change_status_seed() {
        let e = provider()
            .normalise(&signed(ORDER, "s3cret"), now())
            .unwrap();
        assert_eq!(
            e.event_id,
            scoped_body_event_id(&Tenant::new("XYZ"), ORDER.as_bytes())
        );
        assert_eq!(e.event_type, "order.status_changed");
        assert_eq!(e.tenant.as_str(), "XYZ");
        assert_eq!(e.entities.len(), 1);
        let o = &e.entities[0];
        assert_eq!(o.key.stream(), "fulfilment#XYZ#order#5342");
        assert_eq!(o.state.as_deref(), Some("WAITING_CONFIRM"));
        assert_eq!(
            o.version,
            Version::parse("2022-06-07T09:55:58.000000Z").unwrap()
        );
        assert_eq!(
            o.transition,
            TransitionRule::Declared {
                from: "WAITING_INSPECTION".into(),
                to: "WAITING_CONFIRM".into()
            }
        );
    }

    #[test]
    fn sku_change_stock_seed_gives_one_stock_per_entry() {
        let e = provider()
            .normalise(&signed(STOCK, "s3cret"), now())
            .unwrap();
        assert_eq!(e.event_type, "inventory.updated");
        let ids: Vec<_> = e.entities.iter().map(|u| u.key.id.as_str()).collect();
        assert_eq!(ids, ["543", "544"]);
        assert!(e
            .entities
            .iter()
            .all(|u| u.key.kind == EntityKind::Stock && u.state.is_none()));
        assert_eq!(
            e.entities[1].version,
            Version::parse("2022-06-07T10:50:23.000000Z").unwrap()
        );
        assert_eq!(e.entities[0].data["product_code"], "ABC");
    }

    /// Issue 21: the id is the tenant and what the signature covers; the unsigned delivery
    /// id changes nothing about it and is only the key an earlier release used.
    #[test]
    fn the_id_is_the_tenant_and_body_hash_whatever_the_delivery_id() {
        let p = provider();
        let ids: Vec<_> = [signed(ORDER, "s3cret"), RawRequest::post("/", ORDER)]
            .iter()
            .map(|req| p.normalise(req, now()).unwrap().event_id)
            .collect();
        assert!(
            ids[0].starts_with("XYZ#") && ids[0].len() == 4 + 22,
            "{}",
            ids[0]
        );
        assert_eq!(Identity::of(&ids[0], ORDER.as_bytes()), Identity::OfBody);
        assert_eq!(Identity::of("1001", ORDER.as_bytes()), Identity::Declared);
        assert_eq!(ids[0], ids[1]);
        assert_eq!(
            p.earlier_event_id(&signed(ORDER, "s3cret")).as_deref(),
            Some("1001")
        );
        assert_eq!(p.earlier_event_id(&RawRequest::post("/", ORDER)), None);
        let other = ORDER.replace("\"XYZ\"", "\"ABC\"");
        let e = p
            .normalise(&RawRequest::post("/", other.clone()), now())
            .unwrap();
        assert_eq!(
            e.event_id,
            scoped_body_event_id(&Tenant::new("ABC"), other.as_bytes())
        );
        assert_ne!(e.event_id[4..], ids[0][4..], "another body, another digest");
    }

    #[test]
    fn unknown_event_is_kept_but_not_projected() {
        let body =
            json!({"event": "WAREHOUSE.CREATED", "payload": {"merchant_code": "M1"}}).to_string();
        let e = provider()
            .normalise(&signed(&body, "s3cret"), now())
            .unwrap();
        assert_eq!(e.event_type, "WAREHOUSE.CREATED");
        assert_eq!(e.tenant.as_str(), "M1");
        assert!(e.entities.is_empty());
    }

    #[test]
    fn nasty_inputs_are_400_naming_the_field() {
        let p = provider();
        let cases = [
            ("{}", "event"),
            (r#"{"event": 5}"#, "event"),
            (r#"{"event": "ORDER.CHANGE_STATUS"}"#, "payload"),
            (
                r#"{"event": "ORDER.CHANGE_STATUS", "payload": []}"#,
                "payload",
            ),
            ("[]", "JSON object"),
            ("{\"event\":", "JSON"),
        ];
        for (body, needle) in cases {
            let err = p.normalise(&signed(body, "s3cret"), now()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(
                err.to_string().contains(needle),
                "{err} should name {needle}"
            );
        }
        let long = RawRequest::post("/", ORDER).with_header("X-Event-Delivery", &"9".repeat(500));
        assert_eq!(p.normalise(&long, now()).unwrap_err().status(), 400);
    }

    #[test]
    fn order_without_id_or_stocks_without_ids_project_nothing() {
        let body = json!({"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": "M", "order": {}, "to_status": "X"}});
        let e = provider()
            .normalise(&signed(&body.to_string(), "s3cret"), now())
            .unwrap();
        assert!(e.entities.is_empty());
        let body = json!({"event": "SKU.CHANGE_STOCK", "payload": {"stocks": [1, {"stock": {}}]}});
        let e = provider()
            .normalise(&signed(&body.to_string(), "s3cret"), now())
            .unwrap();
        assert!(e.entities.is_empty());
        assert_eq!(e.tenant.as_str(), "default");
    }

    #[test]
    fn from_status_equal_to_to_status_declares_no_change() {
        let body = json!({"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": "M",
            "order": {"id": 1}, "from_status": "PACKED", "to_status": "PACKED"}});
        let e = provider()
            .normalise(&signed(&body.to_string(), "s3cret"), now())
            .unwrap();
        assert_eq!(e.entities[0].state.as_deref(), Some("PACKED"));
        assert_eq!(e.entities[0].transition, TransitionRule::None);
    }

    #[test]
    fn unverified_mode_accepts_unsigned() {
        let p = Fulfilment::new(Credentials::Unverified);
        assert!(p.verify(&RawRequest::post("/", ORDER)).is_ok());
    }
}
