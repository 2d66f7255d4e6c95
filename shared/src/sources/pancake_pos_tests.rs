//! Unit tests of `sources::pancake_pos` (its forms, the documented deliveries, nasty inputs).

use super::*;
use crate::error::IngestError;
use crate::http::RawRequest;
use crate::lifecycle::Lifecycle;
use crate::model::Recognition;
use crate::model::Tenant;
use crate::model::{body_event_id, TransitionRule};
use crate::sources::testing::assert_refused;
use crate::sources::Provider;
use crate::verify::SecretSet;
use crate::version::Version;
use serde_json::json;
use time::OffsetDateTime;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../fixtures/pancake_pos/", $name, ".json"))
    };
}

/// Every fixture: (file stem, body).
const FIXTURES: [(&str, &str); 18] = [
    ("connectivity_test", fixture!("connectivity_test")),
    ("customer_created", fixture!("customer_created")),
    ("customer_updated", fixture!("customer_updated")),
    ("flat_customer", fixture!("flat_customer")),
    ("flat_order", fixture!("flat_order")),
    ("flat_product", fixture!("flat_product")),
    (
        "flat_variations_warehouses",
        fixture!("flat_variations_warehouses"),
    ),
    ("inventory_updated", fixture!("inventory_updated")),
    ("loyalty_points_earned", fixture!("loyalty_points_earned")),
    (
        "loyalty_points_redeemed",
        fixture!("loyalty_points_redeemed"),
    ),
    ("order_cancelled", fixture!("order_cancelled")),
    ("order_created", fixture!("order_created")),
    ("order_status_changed", fixture!("order_status_changed")),
    ("order_updated", fixture!("order_updated")),
    ("product_created", fixture!("product_created")),
    ("product_deleted", fixture!("product_deleted")),
    ("product_updated", fixture!("product_updated")),
    ("transaction_created", fixture!("transaction_created")),
];

const SHOP: &str = "20462817";
const PRODUCT: &str = "e7c14b52-9d3a-4f6e-b8a1-3c5d7e9f1a2b";
const VARIATION_AT_WAREHOUSE: &str =
    "a3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d@5b8e2f14-6c3a-4d9b-a7e1-8f2c4d6b9e03";

fn body(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn provider() -> PancakePos {
    PancakePos::new(
        Credentials::Verified(crate::config::Keys::any(SecretSet::parse(
            "old-key,new-key",
        ))),
        DEFAULT_KEY_HEADER,
    )
}

fn keyed(body: &str) -> RawRequest {
    RawRequest::post("/api/v1/pancake-pos/webhook", body).with_header("x-webhook-secret", "new-key")
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_757_069_100).unwrap()
}

fn normalise(body: &str) -> NormalisedEvent {
    provider().normalise(&keyed(body), now()).unwrap()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

/// A fixture and what it projects: (name, event type, (entity kind, id, version, state)).
type Row = (
    &'static str,
    &'static str,
    Option<(EntityKind, &'static str, &'static str, Option<&'static str>)>,
);

const EXPECTED: [Row; 18] = [
    ("connectivity_test", "order.created", None),
    (
        "customer_created",
        "customer.created",
        Some((
            EntityKind::Customer,
            "c9d3e1f0-2a4b-4c6d-8e0f-1a3b5c7d9e2f",
            "2025-09-05T08:15:00",
            None,
        )),
    ),
    (
        "customer_updated",
        "customer.updated",
        Some((
            EntityKind::Customer,
            "c9d3e1f0-2a4b-4c6d-8e0f-1a3b5c7d9e2f",
            "2025-09-05T10:06:00",
            None,
        )),
    ),
    (
        "flat_customer",
        "customer.created",
        Some((
            EntityKind::Customer,
            "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6",
            "2025-09-05T10:25:00",
            None,
        )),
    ),
    (
        "flat_order",
        "order.updated",
        Some((EntityKind::Order, "1534", "2025-09-05T10:20:00", Some("1"))),
    ),
    (
        "flat_product",
        "product.updated",
        Some((EntityKind::Product, PRODUCT, "2025-09-05T10:30:00", None)),
    ),
    (
        "flat_variations_warehouses",
        "inventory.updated",
        Some((
            EntityKind::Variation,
            VARIATION_AT_WAREHOUSE,
            "2025-09-05T10:31:00",
            None,
        )),
    ),
    (
        "inventory_updated",
        "inventory.updated",
        Some((
            EntityKind::Variation,
            VARIATION_AT_WAREHOUSE,
            "2025-09-05T10:05:00",
            None,
        )),
    ),
    ("loyalty_points_earned", "loyalty.points_earned", None),
    ("loyalty_points_redeemed", "loyalty.points_redeemed", None),
    (
        "order_cancelled",
        "order.cancelled",
        Some((EntityKind::Order, "1533", "2025-09-05T09:50:00", Some("6"))),
    ),
    (
        "order_created",
        "order.created",
        Some((EntityKind::Order, "1532", "2025-09-05T09:30:00", Some("0"))),
    ),
    (
        "order_status_changed",
        "order.status_changed",
        Some((EntityKind::Order, "1532", "2025-09-05T10:05:00", Some("2"))),
    ),
    (
        "order_updated",
        "order.updated",
        Some((EntityKind::Order, "1532", "2025-09-05T09:35:00", Some("1"))),
    ),
    (
        "product_created",
        "product.created",
        Some((EntityKind::Product, PRODUCT, "2025-09-01T07:00:00", None)),
    ),
    (
        "product_deleted",
        "product.deleted",
        Some((
            EntityKind::Product,
            "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f",
            "2025-09-05T10:10:00",
            None,
        )),
    ),
    (
        "product_updated",
        "product.updated",
        Some((EntityKind::Product, PRODUCT, "2025-09-05T09:00:00", None)),
    ),
    ("transaction_created", "transaction.created", None),
];

/// (event type, entity kind, id, version, state) of every fixture.
#[test]
fn every_fixture_projects_the_right_entity() {
    for row in EXPECTED {
        projects(row);
    }
}

fn projects((name, event_type, entity): Row) {
    let raw = body(name);
    assert!(provider().verify(&keyed(raw)).is_ok(), "{name}");
    let e = normalise(raw);
    assert_eq!(e.source, Source::PancakePos);
    assert_eq!(e.event_type, event_type, "{name}");
    assert_eq!(e.event_id, body_event_id(raw.as_bytes()));
    let tenant = if name == "connectivity_test" {
        "123"
    } else {
        SHOP
    };
    assert_eq!(e.tenant.as_str(), tenant, "{name}");
    match entity {
        None => assert!(e.entities.is_empty(), "{name}: {:?}", e.entities),
        Some((kind, id, version, state)) => {
            let [u] = e.entities.as_slice() else {
                panic!("{name}: {:?}", e.entities)
            };
            assert_eq!(u.key.kind, kind, "{name}");
            assert_eq!(u.key.id, id, "{name}");
            assert_eq!(u.key.tenant, e.tenant, "{name}");
            assert_eq!(u.version, v(version), "{name}");
            assert_eq!(u.state.as_deref(), state, "{name}");
            assert_eq!(u.lifecycle, Lifecycle::Free);
            if kind != EntityKind::Order {
                assert_eq!(u.transition, TransitionRule::None, "{name}");
            }
        }
    }
}

#[test]
fn orders_infer_transitions_from_the_stored_status() {
    for name in [
        "order_created",
        "order_updated",
        "order_cancelled",
        "flat_order",
    ] {
        let e = normalise(body(name));
        assert_eq!(
            e.entities[0].transition,
            TransitionRule::FromStored,
            "{name}"
        );
    }
}

#[test]
fn status_changed_with_old_status_declares_the_transition() {
    let e = normalise(body("order_status_changed"));
    assert_eq!(e.provider_event, "order_status_changed");
    assert_eq!(
        e.entities[0].transition,
        TransitionRule::Declared {
            from: "1".into(),
            to: "2".into()
        }
    );
    // beside a wrapped order, under another name, and with new_status
    let body = json!({"payload": {"eventType": "order.status_changed", "shopId": 5,
        "data": {"order": {"id": 9, "new_status": 3}, "previous_status": "2"}}});
    let e = normalise(&body.to_string());
    assert_eq!(
        e.entities[0].transition,
        TransitionRule::Declared {
            from: "2".into(),
            to: "3".into()
        }
    );
    // an old status equal to the new one is still declared
    let body = json!({"payload": {"eventType": "order_status_changed", "shopId": 5,
        "data": {"order_id": "123", "status": "2", "old_status": 2}}});
    let e = normalise(&body.to_string());
    assert_eq!(
        e.entities[0].transition,
        TransitionRule::Declared {
            from: "2".into(),
            to: "2".into()
        }
    );
    // without an old status the stored one decides
    let body = json!({"payload": {"eventType": "order_status_changed", "shopId": 5,
        "data": {"order_id": "123", "status": "completed"}}});
    let e = normalise(&body.to_string());
    assert_eq!(e.entities[0].key.id, "123");
    assert_eq!(e.entities[0].state.as_deref(), Some("completed"));
    assert_eq!(e.entities[0].transition, TransitionRule::FromStored);
}

#[test]
fn flat_order_keeps_the_whole_resource_as_data() {
    let e = normalise(body("flat_order"));
    assert_eq!(e.provider_event, "orders.update");
    let data = &e.entities[0].data;
    assert_eq!(data["status"], 1);
    assert_eq!(data["status_name"], "submitted");
    assert_eq!(data["status_history"].as_array().map(Vec::len), Some(2));
    assert_eq!(data["items"][0]["quantity"], 2);
}

#[test]
fn flat_product_is_unwrapped_from_data_record() {
    let e = normalise(body("flat_product"));
    assert_eq!(e.provider_event, "products.update");
    assert_eq!(e.entities[0].data["name"], "Áo thun cotton basic");
    assert!(e.entities[0].data.get("record").is_none());
}

#[test]
fn dotted_seed_001_names_read_like_underscored_ones() {
    for (name, kind) in [
        ("order.created", EntityKind::Order),
        ("order.updated", EntityKind::Order),
        ("customer.created", EntityKind::Customer),
        ("customer.updated", EntityKind::Customer),
        ("inventory.updated", EntityKind::Variation),
        ("product.created", EntityKind::Product),
        ("product.updated", EntityKind::Product),
    ] {
        let body = json!({"payload": {"eventType": name, "shopId": "20462817",
            "data": {"id": "x1", "status": 1}, "timestamp": 1757069000}});
        let e = normalise(&body.to_string());
        assert_eq!(e.event_type, name);
        assert_eq!(e.entities[0].key.kind, kind, "{name}");
        assert_eq!(e.entities[0].version, v("2025-09-05T10:43:20Z"));
    }
}

#[test]
fn key_in_any_accepted_place_with_rotation() {
    let p = provider();
    for key in ["old-key", "new-key"] {
        for req in [
            RawRequest::post("/", "{}").with_header("X-Webhook-Secret", key),
            RawRequest::post("/", "{}").with_header("x-api-key", key),
            RawRequest::post("/", "{}").with_query("api_key", key),
        ] {
            assert!(p.verify(&req).is_ok(), "{key} {req:?}");
        }
    }
}

#[test]
fn wrong_or_missing_key_is_401() {
    let p = provider();
    let padded = RawRequest::post("/", "{}").with_header("X-Webhook-Secret", " old-key ");
    assert!(
        p.verify(&padded).is_ok(),
        "surrounding blanks are not part of a key"
    );
    for wrong in ["old", "new-key-2", "dev-pancake-pos-key"] {
        let req = RawRequest::post("/", "{}").with_header("X-Webhook-Secret", wrong);
        let err = p.verify(&req).unwrap_err();
        assert!(matches!(err, IngestError::BadCredential(_)), "{wrong}");
        assert_eq!(err.code(), "AUTH_002");
    }
    let err = p.verify(&RawRequest::post("/", "{}")).unwrap_err();
    assert!(matches!(err, IngestError::MissingCredential(_)));
    assert!(err.to_string().contains("X-Webhook-Secret"));
    // a Pancake-chat signature header is no key here
    let other = RawRequest::post("/", "{}").with_header("X-Pancake-Signature", "new-key");
    assert_eq!(p.verify(&other).unwrap_err().status(), 401);
}

#[test]
fn key_header_is_configurable_and_validated() {
    let env = Env::from_pairs([(API_KEYS_VAR, "k1"), (KEY_HEADER_VAR, "X-Shop-Token")]);
    let p = PancakePos::from_env(&env, Mode::Lambda).unwrap();
    let custom = RawRequest::post("/", "{}").with_header("x-shop-token", "k1");
    assert!(p.verify(&custom).is_ok());
    let default_header = RawRequest::post("/", "{}").with_header("X-Webhook-Secret", "k1");
    assert!(matches!(
        p.verify(&default_header),
        Err(IngestError::MissingCredential(_))
    ));
    for bad in ["X Shop", "X-Token:", "Tên"] {
        let env = Env::from_pairs([(API_KEYS_VAR, "k1"), (KEY_HEADER_VAR, bad)]);
        let err = PancakePos::from_env(&env, Mode::Lambda).unwrap_err();
        assert!(err.to_string().contains(KEY_HEADER_VAR), "{err}");
    }
}

#[test]
fn from_env_fails_closed_and_local_uses_the_dev_key() {
    assert!(PancakePos::from_env(&Env::default(), Mode::Lambda).is_err());
    let local = PancakePos::from_env(&Env::default(), Mode::Local).unwrap();
    let dev = RawRequest::post("/", "{}").with_header("x-webhook-secret", DEV_API_KEY);
    assert!(local.verify(&dev).is_ok());
    let unverified = Env::from_pairs([("ALLOW_UNVERIFIED", "true")]);
    let p = PancakePos::from_env(&unverified, Mode::Lambda).unwrap();
    assert!(p.verify(&RawRequest::post("/", "{}")).is_ok());
}

#[test]
fn unknown_types_are_kept_without_entities_under_their_own_name() {
    // issue 20 item 6: names no seed knows keep POS's spelling (were
    // `shop.settings_updated`, `auto_call.updated`, `order.print`)
    let envelope = json!({"payload": {"eventType": "shop_settings_updated", "shopId": 1,
        "data": {"id": 1}}});
    let e = normalise(&envelope.to_string());
    assert_eq!(e.event_type, "shop_settings_updated");
    assert!(e.entities.is_empty());
    let flat = json!({"type": "auto_call", "event_type": "update", "shop_id": 1, "id": 4});
    let e = normalise(&flat.to_string());
    assert_eq!(e.event_type, "auto_call.update");
    assert_eq!(e.provider_event, "auto_call.update");
    assert_eq!(e.recognition, Recognition::Known);
    assert!(e.entities.is_empty());
    let odd_action =
        json!({"type": "orders", "event_type": "print", "shop_id": 1, "id": 4, "status": 1});
    let e = normalise(&odd_action.to_string());
    assert_eq!(e.event_type, "orders.print");
    assert!(e.entities.is_empty());
}

#[test]
fn malformed_bodies_are_400_naming_the_problem() {
    let deep = format!("{{\"type\":{}0{}}}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(String, &str, &str)> = vec![
        ("  ".into(), "empty", "VAL_002"),
        ("{\"payload\":{".into(), "JSON", "VAL_002"),
        ("[{\"payload\":{}}]".into(), "JSON object", "VAL_002"),
        ("17".into(), "JSON object", "VAL_002"),
        (deep, "recursion", "VAL_002"),
    ];
    assert_refused(
        &provider(),
        keyed,
        now(),
        &cases,
        b"{\"type\":\"orders\xc3\x28\"}",
    );
}

/// Issue 20 item 4: these were 400s; a verified object of no documented form is now kept
/// as unrecognised (2xx), under its documented tenant field when it has one.
#[test]
fn objects_of_no_documented_form_are_unrecognised_not_refused() {
    let cases = [
        (json!({}), "default"),
        (json!({"payload": null}), "default"),
        (json!({"payload": {"shopId": 123, "data": {}}}), "123"),
        (
            json!({"payload": {"eventType": "  ", "shopId": 123}}),
            "123",
        ),
        (
            json!({"payload": {"eventType": "order_created", "data": {}}}),
            "default",
        ),
        (
            json!({"payload": {"eventType": "order_created", "shopId": [123]}}),
            "default",
        ),
        (
            json!({"type": 3, "event_type": "update", "shop_id": 1}),
            "1",
        ),
        (json!({"id": 1, "shop_id": 5}), "5"),
        (json!({"id": 1, "status": 0}), "default"),
        (json!({"data": {"entries": []}, "success": true}), "default"),
        (json!({"type": "orders", "shop_id": 1}), "1"),
    ];
    for (body, tenant) in cases {
        let raw = body.to_string();
        let e = normalise(&raw);
        assert_eq!(e.recognition, Recognition::Unrecognised, "{body}");
        assert_eq!(e.event_type, "unknown", "{body}");
        assert_eq!(e.tenant.as_str(), tenant, "{body}");
        assert_eq!(e.event_id, body_event_id(raw.as_bytes()));
        assert!(e.entities.is_empty(), "{body}");
    }
}

#[test]
fn numbers_and_strings_name_the_same_shop_order_and_status() {
    let as_numbers = json!({"type": "orders", "event_type": "update", "shop_id": 20462817,
        "id": 1534, "status": 2, "updated_at": "2025-09-05T10:40:00"});
    let as_strings = json!({"type": "orders", "event_type": "update", "shop_id": "20462817",
        "id": "1534", "status": "2", "updated_at": "2025-09-05T10:40:00"});
    let a = normalise(&as_numbers.to_string());
    let b = normalise(&as_strings.to_string());
    assert_eq!(a.entities[0].key, b.entities[0].key);
    assert_eq!(a.entities[0].state, b.entities[0].state);
    assert_eq!(a.entities[0].version, b.entities[0].version);
    assert_ne!(a.event_id, b.event_id, "different bytes, different events");
}

#[test]
fn nasty_but_identifiable_inputs_are_kept_without_guessing() {
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!({"id": nested});
    }
    for data in [
        json!({}),
        json!([]),
        json!("order"),
        json!(null),
        json!({"id": true}),
        nested,
    ] {
        for event_type in [
            "order_created",
            "order_status_changed",
            "product_updated",
            "customer_created",
            "inventory_updated",
        ] {
            let body = json!({"payload": {"eventType": event_type, "shopId": 1, "data": data}});
            let e = normalise(&body.to_string());
            assert!(e.entities.is_empty(), "{body}");
        }
    }
    // a status that is no scalar is no state
    let body = json!({"type": "orders", "event_type": "update", "shop_id": 1, "id": 7,
        "status": [1], "updated_at": "not a time"});
    let e = normalise(&body.to_string());
    assert_eq!(e.entities[0].state, None);
    assert_eq!(e.entities[0].transition, TransitionRule::None);
    assert_eq!(e.entities[0].version, Version::from_datetime(now()));
    // a variation row without a warehouse is keyed by the variation alone
    let body = json!({"type": "variations_warehouses", "event_type": "update",
        "data": {"record": {"variation_id": "v-1", "shop_id": 9, "remain_quantity": 3}}});
    let e = normalise(&body.to_string());
    assert_eq!(e.tenant.as_str(), "9");
    assert_eq!(e.entities[0].key.id, "v-1");
    // data (not record) as the wrapper of a flat delivery
    let body = json!({"type": "customers", "event_type": "create", "shop_id": 9,
        "data": {"id": "c-1", "name": "Lan"}});
    assert_eq!(normalise(&body.to_string()).entities[0].key.id, "c-1");
}

// ---- the POS documentation's own deliveries (fixtures/pancake_pos/documented/) ------

const DOC_ORDER: &str = include_str!("../../fixtures/pancake_pos/documented/order.json");
const DOC_CUSTOMER: &str = include_str!("../../fixtures/pancake_pos/documented/customer.json");
const DOC_INVENTORY: &str = include_str!("../../fixtures/pancake_pos/documented/inventory.json");
const DOC_CRM: &str = include_str!("../../fixtures/pancake_pos/documented/crm_record.json");

fn patched(raw: &str, patch: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(raw).unwrap();
    patch(&mut v);
    v.to_string()
}

#[test]
fn bare_order_is_recognised_by_its_shape() {
    let e = normalise(DOC_ORDER);
    assert_eq!(e.recognition, Recognition::Known);
    assert_eq!(
        (e.event_type.as_str(), e.provider_event.as_str()),
        ("order.updated", "orders")
    );
    assert_eq!(e.tenant.as_str(), SHOP);
    let [o] = e.entities.as_slice() else {
        panic!("{:?}", e.entities)
    };
    assert_eq!((o.key.kind, o.key.id.as_str()), (EntityKind::Order, "1418"));
    assert_eq!(o.state.as_deref(), Some("0"), "the status code as text");
    assert_eq!(o.version, v("2025-09-05T04:51:54"));
    assert_eq!(o.transition, TransitionRule::FromStored);
    assert_eq!(o.data["status_name"], "new");
    // system_id alone names an order too
    let by_system = json!({"system_id": "20462817_1418", "status": 17, "shop_id": 20462817,
        "updated_at": "2025-09-05T05:00:00"});
    let e = normalise(&by_system.to_string());
    assert_eq!(e.entities[0].key.id, "20462817_1418");
    assert_eq!(e.entities[0].state.as_deref(), Some("17"));
    // an order without shop_id but with system_id: the bound shop, else `default`
    let no_shop = json!({"system_id": "s-1", "id": 5, "status": 1});
    let bound = Tenant::new("shop-bound");
    let req = keyed(&no_shop.to_string());
    let e = provider().normalise_for(&req, now(), Some(&bound)).unwrap();
    assert_eq!(e.tenant, bound);
    assert_eq!(e.entities[0].key.id, "5");
    assert_eq!(normalise(&no_shop.to_string()).tenant.as_str(), "default");
}

#[test]
fn order_versions_follow_updated_at_never_the_status_number() {
    // the POS flow: 0 → 17 → 11 → ... → 7; a later status may have a smaller number
    let at = |status: u64, updated_at: &str| {
        let raw = patched(DOC_ORDER, |v| {
            v["status"] = json!(status);
            v["updated_at"] = json!(updated_at);
        });
        normalise(&raw).entities[0].clone()
    };
    let confirmed = at(1, "2025-09-05T05:00:00");
    let waiting = at(17, "2025-09-05T04:55:00");
    assert!(waiting.version < confirmed.version);
    assert_eq!(confirmed.state.as_deref(), Some("1"));
}

#[test]
fn bare_customer_inventory_and_crm_rows() {
    let c = normalise(DOC_CUSTOMER);
    assert_eq!(
        (c.event_type.as_str(), c.provider_event.as_str()),
        ("customer.updated", "customers")
    );
    assert_eq!(c.tenant.as_str(), SHOP);
    assert_eq!(c.entities[0].key.kind, EntityKind::Customer);
    assert_eq!(c.entities[0].key.id, "00094712-0000-4000-8000-000000000901");
    assert_eq!(c.entities[0].version, Version::from_datetime(now()));

    let i = normalise(DOC_INVENTORY);
    assert_eq!(i.event_type, "inventory.updated");
    assert_eq!(i.provider_event, "variations_warehouses");
    assert_eq!(
        i.tenant.as_str(),
        "default",
        "no shop id and an any-shop key"
    );
    let [row] = i.entities.as_slice() else {
        panic!("{:?}", i.entities)
    };
    assert_eq!(row.key.kind, EntityKind::Variation);
    assert_eq!(
        row.key.id,
        "1996b3cd-0000-4000-8000-000000000901@77cbe2d5-0000-4000-8000-000000000901"
    );
    assert_eq!(row.version, v("2025-09-05T04:02:00.324609"));
    assert_eq!(row.data["change_quantity"], -1);
    // updated_at wins over inserted_at
    let updated = patched(DOC_INVENTORY, |v| {
        v["data"]["record"]["updated_at"] = json!("2025-09-05 05:00:00.000001");
    });
    assert_eq!(
        normalise(&updated).entities[0].version,
        v("2025-09-05T05:00:00.000001")
    );
    // `success` beside `data` (the reading) is the same form
    let outside = json!({"data": {"record": serde_json::from_str::<Value>(DOC_INVENTORY)
        .unwrap()["data"]["record"].clone()}, "success": true});
    assert_eq!(normalise(&outside.to_string()).entities[0].key, row.key);
    // the shop a key is bound to
    let bound = Tenant::new(SHOP);
    let req = keyed(DOC_INVENTORY);
    let e = provider().normalise_for(&req, now(), Some(&bound)).unwrap();
    assert_eq!(e.entities[0].key.tenant, bound);

    let crm = normalise(DOC_CRM);
    assert_eq!(crm.recognition, Recognition::Known);
    assert_eq!(
        (crm.event_type.as_str(), crm.provider_event.as_str()),
        ("crm.record_updated", "crm")
    );
    assert!(crm.entities.is_empty(), "a CRM row names no id");
}

#[test]
fn nasty_documented_forms_degrade_without_guessing() {
    for body in [
        json!({"type": "customers"}),
        json!({"type": "customers", "id": {"x": 1}, "shop_id": 3}),
        json!({"data": {"record": {"type": "variations_warehouses"}}}),
        json!({"data": {"record": {"type": "variations_warehouses", "variation_id": []}}}),
        json!({"id": null, "system_id": true, "status": 0, "shop_id": 1}),
        json!({"data": {"record": {}}}),
    ] {
        let e = normalise(&body.to_string());
        assert_eq!(e.recognition, Recognition::Known, "{body}");
        assert!(e.entities.is_empty(), "{body}");
    }
    // a page_id or warehouse id is never read as the shop
    let e = normalise(&patched(DOC_CUSTOMER, |v| {
        v.as_object_mut().unwrap().remove("shop_id");
    }));
    assert_eq!(e.tenant.as_str(), "default");
    // a status that is no scalar is no state
    let e = normalise(&patched(DOC_ORDER, |v| v["status"] = json!({"code": 1})));
    assert_eq!(e.entities[0].state, None);
}
