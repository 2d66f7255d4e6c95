//! Abaha (seed 002): the merchant configures a static header (key and value of its choice)
//! on its webhook, and Abaha then POSTs the bare changed object: no envelope, no event
//! name, numbers as strings (`"208610"`), `modified` (`2022-06-10 10:53:56`) as its version.
//!
//! Verification: the header named by `ABAHA_TOKEN_HEADER` (default `X-Abaha-Token`) must
//! equal one of `ABAHA_TOKENS` (constant-time, every token tried, so two can be valid while
//! rotating). Abaha signs nothing, so the token proves the sender but does not bind the body;
//! the endpoint must therefore be HTTPS-only (API Gateway is).
//!
//! Kind from shape: `cart_code` = order (a cart), else `product_code` = product, else
//! `user_id` + `tel` = customer. Any other object is kept in the event log as
//! `unrecognised` and answered 2xx, not projected (`event_type` `unknown`), so a new Abaha
//! event never causes retries and `webhooks reprocess` can project it once understood.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::guard::{credential_header, Credential, Guard, Place};
use super::{id_of, opt_string, parse_object, unnamed_tenant, Normalised, Provider};
use crate::config::{resolve_credentials, ConfigError, Credentials, Env, Mode};
use crate::http::{RawRequest, ResponseStyle};
use crate::lifecycle::Lifecycle;
use crate::model::{
    body_event_id, EntityKey, EntityKind, EntityUpdate, NormalisedEvent, Recognition, SameState,
    Source, Tenant, TransitionRule,
};
use crate::version::Version;

pub const TOKENS_VAR: &str = crate::config::vars::ABAHA_TOKENS.name;
pub const HEADER_VAR: &str = crate::config::vars::ABAHA_TOKEN_HEADER.name;
pub(crate) const DEFAULT_HEADER: &str = "X-Abaha-Token";
/// Local-mode token the events/ samples carry (README).
pub const DEV_TOKEN: &str = "dev-abaha-token";

/// What an Abaha object is, told from its shape since the payload names no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Has `cart_code`: an order (Abaha calls it a cart).
    Cart,
    /// Has `product_code`.
    Product,
    /// Has `user_id` and a `tel` field, and no `cart_code` (a cart carries `user_id` too).
    Customer,
    /// None of the above: kept, not projected.
    Unknown,
}

impl Shape {
    /// Markers count when present with a non-null value, whatever its type: the shape is
    /// what Abaha's object schema looks like, and a cart with an odd `cart_code` is still a
    /// cart. `tel` only has to be present, since a customer without a phone number still
    /// carries the field (as null) while a cart never has it at the top level.
    pub fn of(obj: &Map<String, Value>) -> Shape {
        let has = |key: &str| obj.get(key).is_some_and(|v| !v.is_null());
        if has("cart_code") {
            Shape::Cart
        } else if has("product_code") {
            Shape::Product
        } else if has("user_id") && obj.contains_key("tel") {
            Shape::Customer
        } else {
            Shape::Unknown
        }
    }

    pub fn kind(self) -> Option<EntityKind> {
        match self {
            Shape::Cart => Some(EntityKind::Order),
            Shape::Product => Some(EntityKind::Product),
            Shape::Customer => Some(EntityKind::Customer),
            Shape::Unknown => None,
        }
    }

    /// Abaha's own word for the object (echoed as `provider_event`).
    pub fn provider_event(self) -> &'static str {
        match self {
            Shape::Cart => "cart",
            Shape::Product => "product",
            Shape::Customer => "customer",
            Shape::Unknown => "unknown",
        }
    }

    /// Canonical event type. Abaha sends the object's full current state with no event
    /// name, and creation cannot be told from an update (a new cart arrives already
    /// modified), so every delivery is an upsert: `<kind>.updated`. A status change is not
    /// encoded in the type: it is the queued transition (before_status → status, or the
    /// stored status → status), which keeps one stable type per kind for metrics and queries.
    pub fn event_type(self) -> &'static str {
        match self {
            Shape::Cart => "order.updated",
            Shape::Product => "product.updated",
            Shape::Customer => "customer.updated",
            Shape::Unknown => "unknown",
        }
    }

    /// The field holding the entity id: customers are keyed by `user_id` (their `id`, if
    /// any, is not the account), everything else by `id`.
    fn id_field(self) -> &'static str {
        match self {
            Shape::Customer => "user_id",
            _ => "id",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Abaha {
    guard: Guard,
}

impl Abaha {
    /// `header` is the name of the token header (matched case-insensitively).
    pub fn new(credentials: Credentials, header: impl Into<String>) -> Self {
        let token =
            Credential::static_key(vec![Place::Header(header.into())], "token does not match");
        Abaha {
            guard: Guard::new(credentials, token),
        }
    }

    /// The token fails closed like every source's credential; the header name is refused at
    /// start-up when it could never match or would be stored ([`credential_header`]).
    pub fn from_env(env: &Env, mode: Mode) -> Result<Self, ConfigError> {
        let header = credential_header(
            env,
            &crate::config::vars::ABAHA_TOKEN_HEADER,
            DEFAULT_HEADER,
        )?;
        let credentials = resolve_credentials(env, mode, Source::Abaha, DEV_TOKEN)?;
        Ok(Self::new(credentials, header))
    }
}

impl Provider for Abaha {
    fn source(&self) -> Source {
        Source::Abaha
    }

    fn response_style(&self) -> ResponseStyle {
        ResponseStyle::Abaha
    }

    fn guard(&self) -> &Guard {
        &self.guard
    }

    fn normalise(&self, req: &RawRequest, now: OffsetDateTime) -> Normalised {
        self.normalise_for(req, now, None)
    }

    /// An object of no known shape is kept as unrecognised (answered 2xx, never refused:
    /// Abaha sends at most three times). The tenant is `store_id`, else the token's one
    /// bound tenant, else `default`.
    fn normalise_for(
        &self,
        req: &RawRequest,
        now: OffsetDateTime,
        bound: Option<&Tenant>,
    ) -> Normalised {
        let body = parse_object(&req.body)?;
        let shape = Shape::of(&body);
        let tenant = opt_string(&body, "store_id")
            .map(Tenant::new)
            .unwrap_or_else(|| unnamed_tenant(bound));
        let entities = entity_update(&body, shape, &tenant, now)
            .into_iter()
            .collect();
        Ok(NormalisedEvent {
            recognition: match shape {
                Shape::Unknown => Recognition::Unrecognised,
                _ => Recognition::Known,
            },
            source: Source::Abaha,
            event_id: body_event_id(&req.body),
            event_type: shape.event_type().to_string(),
            provider_event: shape.provider_event().to_string(),
            tenant,
            entities,
        })
    }
}

/// The object's entity, or `None` when its shape is unknown or it carries no usable id
/// (kept in the event log, not projected).
fn entity_update(
    body: &Map<String, Value>,
    shape: Shape,
    tenant: &Tenant,
    now: OffsetDateTime,
) -> Option<EntityUpdate> {
    let kind = shape.kind()?;
    let id = id_of(body.get(shape.id_field()))?;
    let (state, transition) = match shape {
        Shape::Cart => cart_status(body),
        _ => (None, TransitionRule::None),
    };
    Some(EntityUpdate {
        key: EntityKey::new(Source::Abaha, tenant.clone(), kind, id),
        version: body
            .get("modified")
            .and_then(Version::from_json)
            .unwrap_or_else(|| Version::from_datetime(now)),
        state,
        data: Value::Object(body.clone()),
        transition,
        lifecycle: Lifecycle::Free,
    })
}

/// A cart's state is its `status`. Abaha sends `before_status` too: when it differs the
/// cart declares its own change; when it is equal (or absent) a change shows only as the
/// status differing from the stored one.
fn cart_status(cart: &Map<String, Value>) -> (Option<String>, TransitionRule) {
    let to = opt_string(cart, "status");
    let before = opt_string(cart, "before_status");
    let transition = TransitionRule::from_previous(before, to.as_deref(), SameState::FromStored);
    (to, transition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IngestError;
    use crate::verify::SecretSet;
    use serde_json::json;

    const ORDER: &str = include_str!("../../fixtures/abaha/order.json");
    const PRODUCT: &str = include_str!("../../fixtures/abaha/product.json");
    const CUSTOMER: &str = include_str!("../../fixtures/abaha/customer.json");
    const PATH: &str = "/api/v1/abaha/webhook";

    fn provider() -> Abaha {
        Abaha::new(
            Credentials::Verified(crate::config::Keys::any(SecretSet::parse(
                "old-token,new-token",
            ))),
            DEFAULT_HEADER,
        )
    }

    fn with_token(body: &str, token: &str) -> RawRequest {
        RawRequest::post(PATH, body).with_header("X-Abaha-Token", token)
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    fn normalise(body: &str) -> NormalisedEvent {
        provider()
            .normalise(&with_token(body, "new-token"), now())
            .unwrap()
    }

    fn only_entity(e: &NormalisedEvent) -> &EntityUpdate {
        assert_eq!(e.entities.len(), 1, "{e:?}");
        &e.entities[0]
    }

    fn cart(patch: Value) -> String {
        let mut cart: Value = serde_json::from_str(ORDER).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            cart[k] = v.clone();
        }
        cart.to_string()
    }

    #[test]
    fn order_seed_is_a_cart_of_its_store() {
        let e = normalise(ORDER);
        assert_eq!(e.source, Source::Abaha);
        assert_eq!(e.event_type, "order.updated");
        assert_eq!(e.provider_event, "cart");
        assert_eq!(e.event_id, body_event_id(ORDER.as_bytes()));
        assert_eq!(e.tenant.as_str(), "552");
        let o = only_entity(&e);
        assert_eq!(o.key.stream(), "abaha#552#order#208610");
        assert_eq!(o.version, Version::parse("2022-06-10 10:53:56").unwrap());
        assert_eq!(o.state.as_deref(), Some("5"));
        // before_status equals status: a change can only be seen against the stored status
        assert_eq!(o.transition, TransitionRule::FromStored);
        assert_eq!(o.lifecycle, Lifecycle::Free);
        assert_eq!(o.data["cart_code"], "00000208610");
    }

    #[test]
    fn product_seed() {
        let e = normalise(PRODUCT);
        assert_eq!(
            (e.event_type.as_str(), e.provider_event.as_str()),
            ("product.updated", "product")
        );
        assert_eq!(e.tenant.as_str(), "default");
        let p = only_entity(&e);
        assert_eq!(p.key.stream(), "abaha#default#product#873167");
        assert_eq!(p.version, Version::parse("2022-06-09 13:10:30").unwrap());
        assert_eq!(p.state, None);
        assert_eq!(p.transition, TransitionRule::None);
    }

    #[test]
    fn customer_seed_is_keyed_by_user_id_and_null_store_is_default() {
        let e = normalise(CUSTOMER);
        assert_eq!(
            (e.event_type.as_str(), e.provider_event.as_str()),
            ("customer.updated", "customer")
        );
        assert_eq!(e.tenant.as_str(), "default");
        let c = only_entity(&e);
        assert_eq!(c.key.stream(), "abaha#default#customer#1347849");
        assert_eq!(c.version, Version::parse("2022-06-09 13:16:01").unwrap());
        assert_eq!(
            (c.state.as_ref(), &c.transition),
            (None, &TransitionRule::None)
        );
    }

    #[test]
    fn cart_with_a_different_before_status_declares_its_change() {
        let e = normalise(&cart(json!({"before_status": "5", "status": "6"})));
        let o = only_entity(&e);
        assert_eq!(o.state.as_deref(), Some("6"));
        assert_eq!(
            o.transition,
            TransitionRule::Declared {
                from: "5".into(),
                to: "6".into()
            }
        );
        let e = normalise(&cart(json!({"before_status": null, "status": "6"})));
        assert_eq!(only_entity(&e).transition, TransitionRule::FromStored);
    }

    #[test]
    fn numbers_and_strings_are_the_same_ids() {
        let e = normalise(&cart(json!({
            "id": 208610, "store_id": 552, "status": 6, "before_status": 5
        })));
        assert_eq!(e.tenant.as_str(), "552");
        let o = only_entity(&e);
        assert_eq!(o.key.stream(), "abaha#552#order#208610");
        assert_eq!(
            o.transition,
            TransitionRule::Declared {
                from: "5".into(),
                to: "6".into()
            }
        );
        let e = normalise(&json!({"user_id": 1347849, "tel": null}).to_string());
        assert_eq!(
            only_entity(&e).key.stream(),
            "abaha#default#customer#1347849"
        );
    }

    #[test]
    fn shape_precedence() {
        let shape = |v: Value| Shape::of(v.as_object().unwrap());
        // a cart carries user_id (and its address a tel): still a cart
        assert_eq!(
            shape(json!({"cart_code": "1", "user_id": "2", "tel": "3"})),
            Shape::Cart
        );
        assert_eq!(
            shape(json!({"cart_code": "1", "product_code": "p"})),
            Shape::Cart
        );
        assert_eq!(
            shape(json!({"product_code": "p", "user_id": "2", "tel": "3"})),
            Shape::Product
        );
        assert_eq!(shape(json!({"user_id": "2"})), Shape::Unknown);
        assert_eq!(shape(json!({"tel": "3"})), Shape::Unknown);
        assert_eq!(shape(json!({"cart_code": null, "id": "1"})), Shape::Unknown);
        assert_eq!(shape(json!({"user_id": null, "tel": "3"})), Shape::Unknown);
    }

    #[test]
    fn unknown_shapes_are_kept_as_unrecognised() {
        for body in [
            "{}".to_string(),
            json!({"store_id": "9", "voucher_code": "V1", "modified": "2022-06-10 10:00:00"})
                .to_string(),
        ] {
            let e = normalise(&body);
            assert_eq!(e.event_type, "unknown");
            assert_eq!(e.provider_event, "unknown");
            assert_eq!(e.recognition, Recognition::Unrecognised);
            assert!(e.entities.is_empty());
            assert_eq!(e.event_id, body_event_id(body.as_bytes()));
        }
        assert_eq!(normalise(r#"{"store_id": "9"}"#).tenant.as_str(), "9");
        for known in [ORDER, PRODUCT, CUSTOMER] {
            assert_eq!(normalise(known).recognition, Recognition::Known);
        }
    }

    #[test]
    fn a_body_without_store_id_takes_the_bound_tenant_else_default() {
        let req = with_token(r#"{"voucher_code": "V1"}"#, "new-token");
        let bound = Tenant::new("store-7");
        let e = provider().normalise_for(&req, now(), Some(&bound)).unwrap();
        assert_eq!(e.tenant, bound);
        assert_eq!(
            normalise(r#"{"voucher_code": "V1"}"#).tenant.as_str(),
            "default"
        );
        // a store_id in the body wins over the bound tenant
        let req = with_token(r#"{"store_id": "9", "voucher_code": "V1"}"#, "new-token");
        let e = provider().normalise_for(&req, now(), Some(&bound)).unwrap();
        assert_eq!(e.tenant.as_str(), "9");
    }

    #[test]
    fn wrong_types_degrade_without_failing() {
        // no usable id: kept, not projected
        for patch in [
            json!({"id": {"n": 1}}),
            json!({"id": ""}),
            json!({"id": "9".repeat(300)}),
        ] {
            let e = normalise(&cart(patch.clone()));
            assert_eq!(e.event_type, "order.updated", "{patch}");
            assert!(e.entities.is_empty(), "{patch}");
        }
        // an unusable version falls back to the receive time; an unusable status to none
        let e = normalise(&cart(json!({"modified": true, "status": ["5"]})));
        let o = only_entity(&e);
        assert_eq!(o.version, Version::from_datetime(now()));
        assert_eq!(
            (o.state.as_ref(), &o.transition),
            (None, &TransitionRule::None)
        );
        // a store_id that is not an id leaves the tenant at default
        assert_eq!(
            normalise(&cart(json!({"store_id": {}}))).tenant.as_str(),
            "default"
        );
    }

    #[test]
    fn malformed_bodies_are_400_naming_the_problem() {
        let p = provider();
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty"),
            (b"[]", "array"),
            (b"null", "null"),
            (b"{\"id\":", "EOF"),
            (b"\xff{}", "UTF-8"),
            (deep.as_bytes(), "recursion"),
        ];
        for (body, needle) in cases {
            let req = RawRequest::post(PATH, body).with_header("X-Abaha-Token", "new-token");
            let err = p.normalise(&req, now()).unwrap_err();
            assert_eq!(err.status(), 400, "{needle}");
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
        }
    }

    #[test]
    fn moderately_deep_data_is_kept_as_is() {
        let mut nested = json!("leaf");
        for _ in 0..100 {
            nested = json!({ "n": nested });
        }
        let e = normalise(&cart(json!({ "extra": nested })));
        let o = only_entity(&e);
        assert!(o.data["extra"]["n"]["n"]["n"].is_object());
    }

    #[test]
    fn accepts_every_configured_token() {
        let p = provider();
        assert!(p.verify(&with_token(ORDER, "new-token")).is_ok());
        assert!(p.verify(&with_token(ORDER, "old-token")).is_ok());
        // header names are case-insensitive, surrounding whitespace is not part of a token
        let req = RawRequest::post(PATH, ORDER).with_header("x-ABAHA-token", " new-token ");
        assert!(p.verify(&req).is_ok());
    }

    #[test]
    fn wrong_or_missing_token_is_401_and_never_echoed() {
        let p = provider();
        for token in ["wrong", "new-token2", "new-toke", "NEW-TOKEN"] {
            let err = p.verify(&with_token(ORDER, token)).unwrap_err();
            assert!(matches!(err, IngestError::BadCredential(_)), "{token}");
            assert_eq!(err.status(), 401);
            assert!(!err.to_string().contains("new-token"));
        }
        for req in [
            RawRequest::post(PATH, ORDER),
            with_token(ORDER, "   "),
            RawRequest::post(PATH, ORDER).with_header("X-Other", "new-token"),
        ] {
            let err = p.verify(&req).unwrap_err();
            assert!(matches!(err, IngestError::MissingCredential(_)));
            assert_eq!(err.status(), 401);
            assert!(err.to_string().contains("X-Abaha-Token"));
        }
    }

    #[test]
    fn token_header_name_is_configurable() {
        let env = Env::from_pairs([(TOKENS_VAR, "t1, t2"), (HEADER_VAR, "X-Shop-Secret")]);
        let p = Abaha::from_env(&env, Mode::Lambda).unwrap();
        assert!(p
            .verify(&RawRequest::post(PATH, ORDER).with_header("x-shop-secret", "t2"))
            .is_ok());
        assert!(matches!(
            p.verify(&with_token(ORDER, "t1")),
            Err(IngestError::MissingCredential(_))
        ));
    }

    #[test]
    fn config_fails_closed_and_rejects_unsafe_header_names() {
        let err = Abaha::from_env(&Env::default(), Mode::Lambda).unwrap_err();
        assert!(err.to_string().contains(TOKENS_VAR));
        for bad in ["X Abaha", "x-token:", "User-Agent", "content-type"] {
            let env = Env::from_pairs([(TOKENS_VAR, "t"), (HEADER_VAR, bad)]);
            let err = Abaha::from_env(&env, Mode::Lambda).unwrap_err();
            assert!(err.to_string().contains(HEADER_VAR), "{bad}: {err}");
        }
        // local mode falls back to the development token the samples carry
        let local = Abaha::from_env(&Env::default(), Mode::Local).unwrap();
        assert!(local.verify(&with_token(ORDER, DEV_TOKEN)).is_ok());
        assert!(local.verify(&with_token(ORDER, "new-token")).is_err());
    }

    #[test]
    fn unverified_mode_accepts_requests_without_token() {
        let p = Abaha::new(Credentials::Unverified, DEFAULT_HEADER);
        assert!(p.verify(&RawRequest::post(PATH, ORDER)).is_ok());
    }
}
