//! Unit tests of `sources::pancake` (its forms, the documented deliveries, nasty inputs).

use super::*;
use crate::error::IngestError;
use crate::http::RawRequest;
use crate::lifecycle::Lifecycle;
use crate::model::Recognition;
use crate::model::{body_event_id, TransitionRule};
use crate::sources::testing::assert_refused;
use crate::sources::Provider;
use serde_json::json;
use time::OffsetDateTime;

const CONVERSATION: &str = include_str!("../../fixtures/pancake/conversation_updated.json");
const MESSAGE: &str = include_str!("../../fixtures/pancake/message_received.json");
const ORDER_CREATED: &str = include_str!("../../fixtures/pancake/order_created.json");
const ORDER_UPDATED: &str = include_str!("../../fixtures/pancake/order_updated.json");
const CUSTOMER: &str = include_str!("../../fixtures/pancake/customer_updated.json");
const MESSAGING_FIXTURE: &str = include_str!("../../fixtures/pancake/messaging.json");
const MESSAGING_NESTED: &str =
    include_str!("../../fixtures/pancake/messaging_page_id_in_data.json");
const CONNECTIVITY: &str = include_str!("../../fixtures/pancake/connectivity_test.json");

fn provider() -> Pancake {
    Pancake::new(
        Credentials::Verified(crate::config::Keys::any(SecretSet::parse(
            "old-key,new-key",
        ))),
        SecretSet::default(),
    )
}

fn signing_provider() -> Pancake {
    Pancake::new(
        Credentials::Verified(crate::config::Keys::any(SecretSet::parse("new-key"))),
        SecretSet::parse("sign-old,sign-new"),
    )
}

fn keyed(body: &str) -> RawRequest {
    RawRequest::post("/api/v1/pancake/webhook", body).with_header("X-API-Key", "new-key")
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

#[test]
fn every_fixture_is_accepted_with_its_page_as_tenant() {
    for (body, provider_event) in [
        (CONVERSATION, "conversation_updated"),
        (MESSAGE, "message_received"),
        (ORDER_CREATED, "order_created"),
        (ORDER_UPDATED, "order_updated"),
        (CUSTOMER, "customer_updated"),
        (MESSAGING_FIXTURE, "messaging"),
        (MESSAGING_NESTED, "messaging"),
        (CONNECTIVITY, "conversation_updated"),
    ] {
        assert!(provider().verify(&keyed(body)).is_ok());
        let e = normalise(body);
        assert_eq!(e.source, Source::Pancake);
        assert_eq!(e.provider_event, provider_event);
        assert_eq!(e.event_id, body_event_id(body.as_bytes()));
        let expected_tenant = if body == CONNECTIVITY {
            "123456789"
        } else {
            "104582318532114"
        };
        assert_eq!(e.tenant.as_str(), expected_tenant, "{provider_event}");
        assert!(e
            .entities
            .iter()
            .all(|u| u.key.tenant == e.tenant && u.key.source == Source::Pancake));
    }
}

#[test]
fn conversation_updated() {
    let e = normalise(CONVERSATION);
    assert_eq!(e.event_type, "conversation.updated");
    let [c] = e.entities.as_slice() else {
        panic!("{:?}", e.entities)
    };
    assert_eq!(c.key.kind, EntityKind::Conversation);
    assert_eq!(c.key.id, "104582318532114_6512987345120987");
    assert_eq!(c.version, v("2025-09-05T10:44:12.000000Z"));
    assert_eq!(c.state, None);
    assert_eq!(c.transition, TransitionRule::None);
}

#[test]
fn message_received_is_the_message_versioned_by_inserted_at() {
    let e = normalise(MESSAGE);
    assert_eq!(e.event_type, "message.received");
    let [m] = e.entities.as_slice() else {
        panic!("{:?}", e.entities)
    };
    assert_eq!(m.key.kind, EntityKind::Message);
    assert_eq!(m.key.id, "m_Bd9hZf4sR2kXq0Wc7tYv1A");
    assert_eq!(m.version, v("2025-09-05T10:44:12.000000"));
    assert_eq!(m.state, None);
    assert_eq!(m.data["message"], "Shop ơi, áo này còn size M không?");
}

#[test]
fn orders_carry_their_status_as_state_from_stored() {
    let created = normalise(ORDER_CREATED);
    assert_eq!(created.event_type, "order.created");
    let [o] = created.entities.as_slice() else {
        panic!("{:?}", created.entities)
    };
    assert_eq!(o.key.kind, EntityKind::Order);
    assert_eq!(o.key.id, "2871");
    assert_eq!(o.state.as_deref(), Some("0"));
    assert_eq!(o.version, v("2025-09-05T10:40:00"));
    assert_eq!(o.transition, TransitionRule::FromStored);
    assert_eq!(o.lifecycle, Lifecycle::Free);

    let updated = normalise(ORDER_UPDATED);
    assert_eq!(updated.event_type, "order.updated");
    let [o2] = updated.entities.as_slice() else {
        panic!("{:?}", updated.entities)
    };
    assert_eq!(o2.key, o.key);
    assert_eq!(o2.state.as_deref(), Some("1"));
    assert!(o2.version > o.version);
}

#[test]
fn customer_updated() {
    let e = normalise(CUSTOMER);
    assert_eq!(e.event_type, "customer.updated");
    let [c] = e.entities.as_slice() else {
        panic!("{:?}", e.entities)
    };
    assert_eq!(c.key.kind, EntityKind::Customer);
    assert_eq!(c.key.id, "8c2a6f0e-3c1d-4d8e-9a51-0b7f2e4c9d11");
    assert_eq!(c.version, v("2025-09-05T10:41:30"));
    assert_eq!(c.state, None);
}

#[test]
fn messaging_delivery_yields_conversation_and_message() {
    for body in [MESSAGING_FIXTURE, MESSAGING_NESTED] {
        let e = normalise(body);
        assert_eq!(e.event_type, "message.received");
        let kinds: Vec<_> = e
            .entities
            .iter()
            .map(|u| (u.key.kind, u.key.id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (EntityKind::Conversation, "104582318532114_6512987345120987"),
                (EntityKind::Message, "m_Qe5TzL0pW8nVb3Rk6yHs2D"),
            ]
        );
        assert_eq!(e.entities[0].version, v("2025-09-05T10:45:00.000000"));
        assert_eq!(e.entities[1].version, v("2025-09-05T10:45:00.000000"));
        assert!(e.entities.iter().all(|u| u.state.is_none()));
    }
}

#[test]
fn seed_connectivity_test_is_kept_not_projected() {
    let e = normalise(CONNECTIVITY);
    assert_eq!(e.event_type, "conversation.updated");
    assert!(e.entities.is_empty());
}

#[test]
fn page_id_found_in_data_in_objects_or_in_the_conversation_id() {
    let cases = [
        json!({"event_type": "messaging", "data": {"conversation": {"id": "c1", "page_id": 77}}}),
        json!({"event_type": "messaging", "data": {"message": {"id": "m1", "page_id": "77"}}}),
        json!({"event_type": "messaging", "data": {"conversation": {"id": "77_555"}}}),
    ];
    for body in cases {
        let e = normalise(&body.to_string());
        assert_eq!(e.tenant.as_str(), "77", "{body}");
        assert_eq!(e.entities.len(), 1);
    }
    // page ids with an underscore of their own (other channels) survive the split
    let body = json!({"event_type": "messaging", "data": {"conversation": {"id": "pzl_12_9"}}});
    assert_eq!(normalise(&body.to_string()).tenant.as_str(), "pzl_12");
}

#[test]
fn api_key_header_query_and_rotation() {
    let p = provider();
    for key in ["old-key", "new-key"] {
        let req = RawRequest::post("/", MESSAGE).with_header("x-api-key", key);
        assert!(p.verify(&req).is_ok(), "{key}");
        let req = RawRequest::post("/", MESSAGE).with_query("api_key", key);
        assert!(p.verify(&req).is_ok(), "{key}");
    }
}

#[test]
fn wrong_or_missing_key_is_401() {
    let p = provider();
    let wrong = RawRequest::post("/", MESSAGE).with_header("X-API-Key", "guess");
    let err = p.verify(&wrong).unwrap_err();
    assert!(matches!(err, IngestError::BadCredential(_)));
    assert_eq!((err.status(), err.code()), (401, "AUTH_002"));
    let missing = p.verify(&RawRequest::post("/", MESSAGE)).unwrap_err();
    assert!(matches!(missing, IngestError::MissingCredential(_)));
    assert_eq!((missing.status(), missing.code()), (401, "AUTH_001"));
    // another provider's header does not count
    let other = RawRequest::post("/", MESSAGE).with_header("X-Webhook-Secret", "new-key");
    assert_eq!(p.verify(&other).unwrap_err().status(), 401);
}

#[test]
fn signing_secrets_add_an_hmac_check() {
    let p = signing_provider();
    for secret in ["sign-old", "sign-new"] {
        let req = keyed(ORDER_UPDATED).with_header(
            "X-Pancake-Signature",
            &Pancake::sign(ORDER_UPDATED.as_bytes(), secret),
        );
        assert!(p.verify(&req).is_ok(), "{secret}");
    }
    let unsigned = p.verify(&keyed(ORDER_UPDATED)).unwrap_err();
    assert!(matches!(unsigned, IngestError::MissingCredential(_)));
    let wrong = keyed(ORDER_UPDATED).with_header(
        "X-Pancake-Signature",
        &Pancake::sign(ORDER_UPDATED.as_bytes(), "nope"),
    );
    assert!(matches!(
        p.verify(&wrong),
        Err(IngestError::BadCredential(_))
    ));
    let mut tampered = keyed(ORDER_UPDATED).with_header(
        "X-Pancake-Signature",
        &Pancake::sign(ORDER_UPDATED.as_bytes(), "sign-new"),
    );
    tampered.body.push(b'\n');
    assert!(matches!(
        p.verify(&tampered),
        Err(IngestError::BadCredential(_))
    ));
    // a valid signature does not stand in for the API key
    let no_key = RawRequest::post("/", ORDER_UPDATED).with_header(
        "X-Pancake-Signature",
        &Pancake::sign(ORDER_UPDATED.as_bytes(), "sign-new"),
    );
    assert!(matches!(
        p.verify(&no_key),
        Err(IngestError::MissingCredential(_))
    ));
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231 test case 2
    assert_eq!(
        Pancake::sign(b"what do ya want for nothing?", "Jefe"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn from_env_fails_closed_and_reads_signing_secrets() {
    assert!(Pancake::from_env(&Env::default(), Mode::Lambda).is_err());
    let local = Pancake::from_env(&Env::default(), Mode::Local).unwrap();
    let dev = RawRequest::post("/", MESSAGE).with_header("x-api-key", DEV_API_KEY);
    assert!(local.verify(&dev).is_ok());
    let env = Env::from_pairs([(API_KEYS_VAR, "k1,k2"), (SIGNING_SECRETS_VAR, "s1")]);
    let p = Pancake::from_env(&env, Mode::Lambda).unwrap();
    let req = RawRequest::post("/", MESSAGE).with_header("x-api-key", "k2");
    assert!(matches!(
        p.verify(&req),
        Err(IngestError::MissingCredential(_))
    ));
    let req = req.with_header(
        "x-pancake-signature",
        &Pancake::sign(MESSAGE.as_bytes(), "s1"),
    );
    assert!(p.verify(&req).is_ok());
    // signing secrets stay enforced when keys are waived
    let env = Env::from_pairs([("ALLOW_UNVERIFIED", "true"), (SIGNING_SECRETS_VAR, "s1")]);
    let p = Pancake::from_env(&env, Mode::Lambda).unwrap();
    assert!(p.verify(&RawRequest::post("/", MESSAGE)).is_err());
    let env = Env::from_pairs([("ALLOW_UNVERIFIED", "true")]);
    let p = Pancake::from_env(&env, Mode::Lambda).unwrap();
    assert!(p.verify(&RawRequest::post("/", MESSAGE)).is_ok());
}

#[test]
fn unknown_event_types_are_kept_without_entities_under_their_own_name() {
    // issue 20 item 6: an unknown name keeps Pancake's spelling (was `post.published`)
    let body = json!({"payload": {"eventType": "post_published", "pageId": "p1",
        "data": {"id": "post-1"}, "timestamp": 1757069000}});
    let e = normalise(&body.to_string());
    assert_eq!(e.event_type, "post_published");
    assert_eq!(e.provider_event, "post_published");
    assert_eq!(e.tenant.as_str(), "p1");
    assert_eq!(e.recognition, Recognition::Known);
    assert!(e.entities.is_empty());
    let flat = json!({"event_type": "brand_new_thing", "page_id": "p1", "data": {"id": 1}});
    let e = normalise(&flat.to_string());
    assert_eq!(e.event_type, "brand_new_thing");
    assert_eq!(e.tenant.as_str(), "p1");
    assert_eq!(e.recognition, Recognition::Known);
    assert!(e.entities.is_empty());
}

#[test]
fn malformed_bodies_are_400_naming_the_problem() {
    let deep = format!("{{\"payload\":{}1{}}}", "[".repeat(300), "]".repeat(300));
    let cases: Vec<(String, &str, &str)> = vec![
        ("".into(), "empty", "VAL_002"),
        ("{\"payload\":".into(), "JSON", "VAL_002"),
        ("[1,2]".into(), "JSON object", "VAL_002"),
        ("\"messaging\"".into(), "JSON object", "VAL_002"),
        (deep, "recursion", "VAL_002"),
    ];
    assert_refused(&provider(), keyed, now(), &cases, b"{\"payload\":\"\xff\"}");
}

/// Issue 20 item 4: these were 400s; a verified object of no documented form is now kept
/// as unrecognised (2xx), under its documented tenant field when it has one.
#[test]
fn objects_of_no_documented_form_are_unrecognised_not_refused() {
    let cases = [
        (json!({}), "default"),
        (json!({"payload": "x"}), "default"),
        (json!({"payload": {"pageId": "1", "data": {}}}), "1"),
        (json!({"payload": {"eventType": ["a"], "pageId": "1"}}), "1"),
        (
            json!({"payload": {"eventType": "order_created", "data": {}}}),
            "default",
        ),
        (
            json!({"payload": {"eventType": "order_created", "pageId": true}}),
            "default",
        ),
        (json!({"event_type": 5, "page_id": "1"}), "1"),
        (
            json!({"event_type": "messaging", "data": {"message": {"id": "m"}}}),
            "default",
        ),
        (
            json!({"event_type": "conversation", "data": {"conversation": {"id": "c"}}}),
            "default",
        ),
        (
            json!({"event_type": "messaging", "data": {"conversation": {"id": "nounderscore"}}}),
            "default",
        ),
        (json!({"hello": "world", "page_id": "p9"}), "p9"),
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
    // with a key bound to one page, a body naming none is that page's
    let page = Tenant::new("p-bound");
    let e = provider()
        .normalise_for(&keyed("{}"), now(), Some(&page))
        .unwrap();
    assert_eq!(e.tenant, page);
}

#[test]
fn nasty_but_identifiable_inputs_are_kept() {
    // numeric page id and ids, data of the wrong type, ids of the wrong type, deep data
    let numeric = json!({"payload": {"eventType": "order_updated", "pageId": 104582318532114_u64,
        "data": {"id": 2871, "status": 3, "updated_at": 1757069000123_u64}}});
    let e = normalise(&numeric.to_string());
    assert_eq!(e.tenant.as_str(), "104582318532114");
    assert_eq!(e.entities[0].key.id, "2871");
    assert_eq!(e.entities[0].state.as_deref(), Some("3"));
    assert_eq!(
        e.entities[0].version,
        Version::from_micros(1_757_069_000_123_000)
    );

    let mut nested = json!({"leaf": 1});
    for _ in 0..60 {
        nested = json!({"inner": nested});
    }
    for data in [
        json!([1, 2]),
        json!("text"),
        json!(null),
        json!({"id": {"nested": true}}),
        json!({"id": ""}),
        json!({"conversation": {"id": false}}),
        nested,
    ] {
        for event_type in [
            "conversation_updated",
            "message_received",
            "order_created",
            "customer_updated",
        ] {
            let body = json!({"payload": {"eventType": event_type, "pageId": "p", "data": data}});
            let e = normalise(&body.to_string());
            assert!(e.entities.is_empty(), "{body}");
        }
    }
    // an order whose status is not a scalar has no state and so no transition rule
    let body = json!({"payload": {"eventType": "order_updated", "pageId": "p",
        "data": {"id": "o1", "status": {"code": 1}}}});
    let e = normalise(&body.to_string());
    assert_eq!(e.entities[0].state, None);
    assert_eq!(e.entities[0].transition, TransitionRule::None);
    // a messaging delivery without data still names its page
    let e = normalise(r#"{"event_type":"messaging","page_id":"p"}"#);
    assert!(e.entities.is_empty());
}

#[test]
fn envelope_timestamp_versions_objects_without_their_own() {
    let body = json!({"payload": {"eventType": "customer_updated", "pageId": "p",
        "data": {"id": "c1", "name": "Lan"}, "timestamp": 1757069000}});
    let e = normalise(&body.to_string());
    assert_eq!(e.entities[0].version, v("2025-09-05T10:43:20Z"));
    let body = json!({"payload": {"eventType": "customer_updated", "pageId": "p",
        "data": {"id": "c1"}}});
    let e = normalise(&body.to_string());
    assert_eq!(e.entities[0].version, Version::from_datetime(now()));
}

// ---- Pancake's own documented deliveries (fixtures/pancake/documented/) -------------

const DOC_MESSAGING: &str = include_str!("../../fixtures/pancake/documented/messaging.json");
const DOC_CONVERSATION: &str = include_str!("../../fixtures/pancake/documented/conversation.json");
const DOC_POST: &str = include_str!("../../fixtures/pancake/documented/post.json");
const DOC_CONNECT: &str = include_str!("../../fixtures/pancake/documented/connect_status.json");
const DOC_SUBSCRIPTION: &str = include_str!("../../fixtures/pancake/documented/subscription.json");
const DOC_PAGE: &str = "100000000000901";

fn patched(raw: &str, patch: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(raw).unwrap();
    patch(&mut v);
    v.to_string()
}

/// (fixture, event type, tenant, (kind, id, state) of each entity).
#[test]
fn every_documented_delivery_is_known_and_projected() {
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        Vec<(EntityKind, &'static str, Option<&'static str>)>,
    );
    let rows: [Row; 5] = [
        (
            DOC_MESSAGING,
            "message.received",
            "tt_7300000000000000001",
            vec![
                (
                    EntityKind::Conversation,
                    "tt_0:1:7300000000000000002:7300000000000000001",
                    None,
                ),
                (EntityKind::Message, "tt_7400000000000000003", None),
            ],
        ),
        (
            DOC_CONVERSATION,
            "conversation.updated",
            DOC_PAGE,
            vec![(
                EntityKind::Conversation,
                "100000000000901_100000000000902",
                None,
            )],
        ),
        (
            DOC_POST,
            "post",
            DOC_PAGE,
            vec![(EntityKind::Post, "100000000000901_128700000000902", None)],
        ),
        (
            DOC_CONNECT,
            "connect_status",
            DOC_PAGE,
            vec![(EntityKind::Page, DOC_PAGE, Some("disconnected"))],
        ),
        (
            DOC_SUBSCRIPTION,
            "subscription",
            "default",
            vec![(EntityKind::Subscription, "SUB901", None)],
        ),
    ];
    for (raw, event_type, tenant, entities) in rows {
        let e = normalise(raw);
        assert_eq!(e.recognition, Recognition::Known, "{event_type}");
        assert_eq!(e.event_type, event_type);
        assert_eq!(e.tenant.as_str(), tenant, "{event_type}");
        let got: Vec<_> = e
            .entities
            .iter()
            .map(|u| (u.key.kind, u.key.id.as_str(), u.state.as_deref()))
            .collect();
        assert_eq!(got, entities, "{event_type}");
        assert!(e.entities.iter().all(|u| u.key.tenant == e.tenant));
    }
}

#[test]
fn conversation_is_ordered_by_its_counter_not_by_a_time() {
    let at = |version: Value| {
        let raw = patched(DOC_CONVERSATION, |v| {
            v["data"]["conversation"]["version"] = version;
        });
        normalise(&raw).entities[0].version
    };
    assert_eq!(at(json!(306)), Version::from_counter(306).unwrap());
    assert!(at(json!(305)) < at(json!(306)));
    assert!(at(json!(9)) < at(json!(10)), "not read as unix seconds");
    assert!(at(json!(99_999_999_999_u64)) < at(json!(100_000_000_000_u64)));
    assert_eq!(at(json!("307")), Version::from_counter(307).unwrap());
    // a counter outranks any time, so a messaging snapshot never overwrites it
    let messaging_conversation = normalise(MESSAGING_FIXTURE).entities[0].version;
    assert!(messaging_conversation < at(json!(0)));
    // no usable counter: the delivery's timestamp, as for any object without a time
    for odd in [json!(null), json!(-1), json!("v3"), json!(1.5)] {
        assert_eq!(at(odd.clone()), v("2025-09-05T10:44:00Z"), "{odd}");
    }
}

#[test]
fn request_id_is_the_delivery_identity_within_its_page() {
    let first = normalise(DOC_CONVERSATION);
    assert!(first.event_id.starts_with(REQUEST_ID_PREFIX));
    assert_eq!(first.event_id.len(), REQUEST_ID_PREFIX.len() + 64);
    // Pancake's retry: same request_id, another timestamp: the same event
    let retry = patched(DOC_CONVERSATION, |v| v["timestamp"] = json!(1757069999));
    assert_eq!(normalise(&retry).event_id, first.event_id);
    let connect_retry = patched(DOC_CONNECT, |v| v["timestamp"] = json!(1757069999));
    assert_eq!(
        normalise(&connect_retry).event_id,
        normalise(DOC_CONNECT).event_id
    );
    // the same request_id on another page is another delivery
    let other_page = patched(DOC_CONVERSATION, |v| {
        v["page_id"] = json!("100000000000999")
    });
    assert_ne!(normalise(&other_page).event_id, first.event_id);
    // page and id are not simply concatenated
    let a = request_event_id(&Tenant::new("12"), Some(&json!("3")));
    let b = request_event_id(&Tenant::new("1"), Some(&json!("23")));
    assert_ne!(a, b);
    // no usable request_id: the body hash
    for odd in [
        json!(null),
        json!(""),
        json!("  "),
        json!({"id": 1}),
        json!("x".repeat(crate::sources::MAX_ID_LEN + 1)),
        json!("line\nbreak"),
    ] {
        let raw = patched(DOC_CONVERSATION, |v| v["request_id"] = odd.clone());
        assert_eq!(
            normalise(&raw).event_id,
            body_event_id(raw.as_bytes()),
            "{odd}"
        );
    }
    // a delivery without one (post, messaging) is identified by its bytes
    assert_eq!(
        normalise(DOC_POST).event_id,
        body_event_id(DOC_POST.as_bytes())
    );
}

#[test]
fn connect_status_is_the_page_state_versioned_by_timestamp() {
    let e = normalise(DOC_CONNECT);
    let [page] = e.entities.as_slice() else {
        panic!("{:?}", e.entities)
    };
    assert_eq!(page.version, v("2025-09-05T10:44:17Z"));
    assert_eq!(page.transition, TransitionRule::FromStored);
    assert_eq!(page.data["connect_status"], "disconnected");
    let connected = patched(DOC_CONNECT, |v| {
        v["data"]["connect_status"] = json!("connected");
    });
    assert_eq!(
        normalise(&connected).entities[0].state.as_deref(),
        Some("connected")
    );
    // the page id from the delivery when data names none
    let bare = patched(DOC_CONNECT, |v| {
        v["data"].as_object_mut().unwrap().remove("page_id");
    });
    assert_eq!(normalise(&bare).entities[0].key.id, DOC_PAGE);
    // a status that is no string is no state: kept, with no transition
    let odd = patched(DOC_CONNECT, |v| v["data"]["connect_status"] = json!(1));
    let e = normalise(&odd);
    assert_eq!(e.entities[0].state, None);
    assert_eq!(e.entities[0].transition, TransitionRule::None);
}

#[test]
fn subscription_belongs_to_the_bound_tenant_else_default() {
    let bound = Tenant::new("100000000000901");
    let e = provider()
        .normalise_for(&keyed(DOC_SUBSCRIPTION), now(), Some(&bound))
        .unwrap();
    assert_eq!(e.tenant, bound);
    assert_eq!(e.entities[0].key.tenant, bound);
    // its page_ids are never read as the tenant
    assert_eq!(normalise(DOC_SUBSCRIPTION).tenant.as_str(), "default");
    let e = normalise(DOC_SUBSCRIPTION);
    assert_eq!(e.entities[0].version, v("2025-08-26T03:08:51"));
    assert_eq!(e.entities[0].data["page_ids"][0], "In_1660000901");
}

#[test]
fn tiktok_and_instagram_ids_keep_working() {
    let e = normalise(DOC_MESSAGING);
    assert_eq!(e.tenant.as_str(), "tt_7300000000000000001");
    assert_eq!(e.entities[1].version, v("2025-09-05T10:44:07"));
    // Instagram: page id only inside the conversation id (`<page>_<sender>`)
    let body = json!({"event_type": "messaging", "data": {
        "conversation": {"id": "In_1660000901_17840000000000901", "snippet": "hi"},
        "message": {"id": "In_m_0901", "inserted_at": "2025-09-05T10:00:00"}}});
    let e = normalise(&body.to_string());
    assert_eq!(e.tenant.as_str(), "In_1660000901");
    let ids: Vec<_> = e.entities.iter().map(|u| u.key.id.as_str()).collect();
    assert_eq!(ids, ["In_1660000901_17840000000000901", "In_m_0901"]);
    // a TikTok conversation id names no page by `_`: the page comes from page_id
    let body = json!({"event_type": "messaging", "page_id": "tt_1", "data": {
        "conversation": {"id": "tt_0:1:2:1"}}});
    assert_eq!(
        normalise(&body.to_string()).entities[0].key.id,
        "tt_0:1:2:1"
    );
}

#[test]
fn nasty_page_events_degrade_without_guessing() {
    for body in [
        json!({"event_type": "post", "page_id": "p", "data": {"post": {"id": {}}}}),
        json!({"event_type": "post", "page_id": "p", "data": []}),
        json!({"event_type": "conversation", "page_id": "p", "data": {"conversation": "c"}}),
        json!({"event_type": "connect_status", "page_id": "p", "data": "connected"}),
        json!({"event_type": "subscription", "data": {"subscription": {"id": null}}}),
        json!({"event_type": "subscription"}),
    ] {
        let e = normalise(&body.to_string());
        assert_eq!(e.recognition, Recognition::Known, "{body}");
        assert!(e.entities.is_empty(), "{body}");
    }
    // an over-long page id is no page: unrecognised
    let long = json!({"event_type": "post", "page_id": "p".repeat(300),
        "data": {"post": {"id": "x"}}});
    assert_eq!(
        normalise(&long.to_string()).recognition,
        Recognition::Unrecognised
    );
    // event types differing in case are the same type
    let upper = patched(DOC_CONNECT, |v| v["event_type"] = json!("CONNECT_STATUS"));
    assert_eq!(normalise(&upper).entities[0].key.kind, EntityKind::Page);
}
