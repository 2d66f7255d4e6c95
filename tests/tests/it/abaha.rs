//! Handler-level tests of the Abaha source (`POST /api/v1/abaha/webhook`) over the embedded
//! SQLite store and outbox queue: the events/ samples, duplicates, unknown shapes kept but
//! not projected, the token check (custom header, rotation) leaving nothing behind on
//! failure, and cart status transitions (declared and inferred, late ones too).

use serde_json::{json, Value};
use webhook_core::config::{Env, Mode};
use webhook_core::http::{RawRequest, RawResponse};
use webhook_core::model::{body_event_id, EntityKey, EntityKind, EventKey, Source};
use webhook_core::store::{EventStatus, OperatorStore};
use webhook_core::version::Version;
use webhook_tests::events::SourceHarness;
use webhook_tests::suite::Suite;

const ROUTE: &str = "/api/v1/abaha/webhook";
const TOKEN: &str = "test-abaha-token";

/// Abaha's expected success body (seed 002).
fn ok() -> Value {
    json!({"status": 200, "message": "OK"})
}

const SUITE: Suite = Suite::new(Source::Abaha, 1_760_000_000);

fn harness(env: &Env, mode: Mode) -> SourceHarness {
    SUITE.harness_at(env, mode, SUITE.now_unix)
}

/// A Lambda-mode harness accepting `TOKEN` (and a second one, as during rotation).
fn lambda() -> SourceHarness {
    harness(
        &Env::from_pairs([("ABAHA_TOKENS", format!("{TOKEN},next-token"))]),
        Mode::Lambda,
    )
}

async fn post(h: &SourceHarness, body: &str) -> RawResponse {
    let req = RawRequest::post(ROUTE, body).with_header("X-Abaha-Token", TOKEN);
    h.handler.handle(&req).await
}

/// Transition ids of every queued message, in queue order (the queue is drained: read it
/// last), and no dead letter.
async fn queued_ids(h: &SourceHarness) -> Vec<String> {
    h.queued()
        .await
        .iter()
        .map(|m| m["transitionId"].as_str().unwrap().to_string())
        .collect()
}

fn key(tenant: &str, kind: EntityKind, id: &str) -> EntityKey {
    SUITE.key(tenant, kind, id)
}

fn fixture(name: &str) -> Value {
    SUITE.fixture(name)
}

/// The seed cart with some fields replaced.
fn cart(patch: Value) -> String {
    let mut cart = fixture("order.json");
    for (k, v) in patch.as_object().unwrap() {
        cart[k] = v.clone();
    }
    cart.to_string()
}

#[tokio::test]
async fn every_sample_is_accepted_projected_and_redelivery_changes_nothing() {
    // No configuration at all, as webhooks-local starts: the development token.
    let h = harness(&Env::default(), Mode::Local);
    let samples = SUITE.samples(3);
    let expected = [
        (
            "customer",
            key("default", EntityKind::Customer, "1347849"),
            "2022-06-09 13:16:01",
            None,
        ),
        (
            "order",
            key("552", EntityKind::Order, "208610"),
            "2022-06-10 10:53:56",
            Some("5"),
        ),
        (
            "product",
            key("default", EntityKind::Product, "873167"),
            "2022-06-09 13:10:30",
            None,
        ),
    ];
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for ((name, req), (_, entity, modified, state)) in samples.iter().zip(&expected) {
        assert_eq!(req.path, ROUTE, "{name}");
        let resp = h.handler.handle(req).await;
        assert_eq!((resp.status, &resp.body), (200, &ok()), "{name}");
        let event_key = EventKey::new(Source::Abaha, &body_event_id(&req.body));
        let stored = h
            .store
            .event(&event_key)
            .await
            .unwrap()
            .expect("event stored");
        assert_eq!(stored.status, EventStatus::Applied, "{name}");
        assert_eq!(stored.entity_keys, [entity.stream()]);
        assert_eq!(stored.raw_body, req.body, "{name}: raw bytes kept");
        let e = h
            .store
            .entity(entity)
            .await
            .unwrap()
            .expect("entity stored");
        assert_eq!(
            e.version,
            Version::parse(modified).unwrap().micros(),
            "{name}"
        );
        assert_eq!(e.state.as_deref(), *state, "{name}");
        assert_eq!(e.last_event_key, event_key.as_str());
        assert_eq!(e.data, serde_json::from_slice::<Value>(&req.body).unwrap());
    }
    // The token is a credential: never stored with the event.
    let before = h.snapshot().await;
    assert_eq!(before.events.len(), samples.len());
    let headers: Vec<_> = before.events.iter().flat_map(|e| &e.headers).collect();
    assert!(
        headers.iter().all(|(name, value)| name != "x-abaha-token"
            && !name.contains("dev-abaha-token")
            && !value.contains("dev-abaha-token")),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|(name, _)| name == "user-agent"),
        "{headers:?}"
    );
    // The seed cart's status equals its before_status and nothing was stored: no change
    // (no transition on any entity an event names).
    assert_eq!(before.all_transitions().count(), 0);

    for (name, req) in &samples {
        let resp = h.handler.handle(req).await;
        assert_eq!((resp.status, &resp.body), (200, &ok()), "{name}");
    }
    assert_eq!(h.snapshot().await, before);
}

#[tokio::test]
async fn unknown_shapes_are_kept_as_unrecognised_and_answered_ok() {
    let h = lambda();
    for body in [
        json!({"voucher_code": "V1", "store_id": "552", "modified": "2022-06-10 10:00:00"}),
        json!({}),
        json!({"user_id": "56913"}),
    ] {
        let body = body.to_string();
        let resp = post(&h, &body).await;
        assert_eq!((resp.status, &resp.body), (200, &ok()), "{body}");
        let stored = h
            .store
            .event(&EventKey::new(
                Source::Abaha,
                &body_event_id(body.as_bytes()),
            ))
            .await
            .unwrap()
            .expect("kept in the event log");
        // issue 20: not understood (was `ignored`), so reprocess can project it later
        assert_eq!(stored.status, EventStatus::Unrecognised);
        assert_eq!(stored.event_type, "unknown");
        assert!(stored.entity_keys.is_empty());
    }
    // A cart without a usable id is kept the same way.
    let resp = post(&h, &cart(json!({"id": null}))).await;
    assert_eq!(resp.status, 200);
    // No entity anywhere: every listed event names none (the read API lists entities only
    // through the events naming them), and the cart's order is absent.
    let listed = h.events().await;
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|e| e.entities == 0), "{listed:?}");
    assert_eq!(h.snapshot().await.entities.len(), 0);
    let order = key("552", EntityKind::Order, "208610");
    assert!(h.store.entity(&order).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_or_missing_token_is_401_and_stores_nothing() {
    let h = lambda();
    let body = cart(json!({}));
    let cases = [
        RawRequest::post(ROUTE, body.as_str()),
        RawRequest::post(ROUTE, body.as_str()).with_header("X-Abaha-Token", "wrong"),
        RawRequest::post(ROUTE, body.as_str()).with_header("X-Abaha-Token", &TOKEN[1..]),
        RawRequest::post(ROUTE, body.as_str()).with_header("X-Other-Token", TOKEN),
        RawRequest::post(ROUTE, body.as_str()).with_query("token", TOKEN),
    ];
    for req in cases {
        let resp = h.handler.handle(&req).await;
        assert_eq!(resp.status, 401, "{:?}", req.headers);
        assert_eq!(resp.body["status"], 401);
        let text = resp.body.to_string();
        assert!(
            !text.contains(TOKEN) && !text.contains("next-token"),
            "{text}"
        );
    }
    // malformed bodies are 400 and stored nowhere either
    for bad in ["", "[]", "{\"id\":", "\"cart\""] {
        let resp = post(&h, bad).await;
        assert_eq!(resp.status, 400, "{bad:?}");
        assert_eq!(resp.body["code"], "VAL_002");
    }
    // Nothing stored or queued: no event listed, and no entity or transition for the cart
    // the requests named.
    let snapshot = h.snapshot().await;
    assert!(snapshot.is_empty(), "{snapshot:?}");
    let order = key("552", EntityKind::Order, "208610");
    assert!(h.store.entity(&order).await.unwrap().is_none());
    assert!(h.store.transitions(&order).await.unwrap().is_empty());
    // the second configured token (rotation) is accepted
    let next = RawRequest::post(ROUTE, body.as_str()).with_header("x-abaha-token", "next-token");
    assert_eq!(h.handler.handle(&next).await.status, 200);
}

#[tokio::test]
async fn token_header_name_comes_from_the_environment() {
    let env = Env::from_pairs([
        ("ABAHA_TOKENS", TOKEN),
        ("ABAHA_TOKEN_HEADER", "X-Merchant-Key"),
    ]);
    let h = harness(&env, Mode::Lambda);
    let body = cart(json!({}));
    let default_name = RawRequest::post(ROUTE, body.as_str()).with_header("X-Abaha-Token", TOKEN);
    assert_eq!(h.handler.handle(&default_name).await.status, 401);
    let custom = RawRequest::post(ROUTE, body.as_str()).with_header("x-merchant-key", TOKEN);
    let resp = h.handler.handle(&custom).await;
    assert_eq!((resp.status, &resp.body), (200, &ok()));
}

#[tokio::test]
async fn cart_status_changes_are_queued_once_and_late_carts_never_regress() {
    let h = lambda();
    let order = key("552", EntityKind::Order, "208610");
    // 1. the seed cart (status 5, before_status 5): nothing stored yet, so no change
    assert_eq!(post(&h, &cart(json!({}))).await.status, 200);
    // 2. newer, status 6 but before_status also 6: a change against the stored 5
    let inferred =
        cart(json!({"status": "6", "before_status": "6", "modified": "2022-06-10 11:00:00"}));
    assert_eq!(post(&h, &inferred).await.status, 200);
    // 3. newer, declares 6 → 7 itself (numbers as numbers this time)
    let declared =
        cart(json!({"status": 7, "before_status": 6, "modified": "2022-06-10 12:00:00"}));
    assert_eq!(post(&h, &declared).await.status, 200);
    // 4. older than what is stored, declares 5 → 4: recorded and queued as late, not applied
    let late =
        cart(json!({"status": "4", "before_status": "5", "modified": "2022-06-10 10:55:00"}));
    assert_eq!(post(&h, &late).await.status, 200);
    // 5. redelivery of 3: nothing new
    assert_eq!(post(&h, &declared).await.status, 200);

    let e = h.store.entity(&order).await.unwrap().unwrap();
    assert_eq!(e.state.as_deref(), Some("7"));
    assert_eq!(
        e.version,
        Version::parse("2022-06-10 12:00:00").unwrap().micros()
    );

    let ts = h.store.transitions(&order).await.unwrap();
    let edges: Vec<_> = ts
        .iter()
        .map(|t| {
            (
                t.from.as_deref().unwrap(),
                t.to.as_str(),
                t.flag.is_none() && t.queued,
            )
        })
        .collect();
    // in version order: the late 5 → 4 (10:55) first
    assert_eq!(
        edges,
        [("5", "4", true), ("5", "6", true), ("6", "7", true)]
    );
    let mut queued = queued_ids(&h).await;
    queued.sort();
    let mut ids: Vec<_> = ts.iter().map(|t| t.transition_id.clone()).collect();
    ids.sort();
    assert_eq!(queued, ids, "one message per transition");

    let late_event = EventKey::new(Source::Abaha, &body_event_id(late.as_bytes()));
    assert_eq!(
        h.store.event(&late_event).await.unwrap().unwrap().status,
        EventStatus::Stale
    );
}

#[tokio::test]
async fn products_and_customers_follow_their_modified_version() {
    let h = lambda();
    let product = key("default", EntityKind::Product, "873167");
    let mut newer = fixture("product.json");
    newer["inventory"] = json!("997");
    newer["modified"] = json!("2022-06-09 14:00:00");
    assert_eq!(post(&h, &newer.to_string()).await.status, 200);
    // the seed product is older: stored as an event, the entity keeps the newer inventory
    assert_eq!(
        post(&h, &fixture("product.json").to_string()).await.status,
        200
    );
    let e = h.store.entity(&product).await.unwrap().unwrap();
    assert_eq!(e.data["inventory"], "997");
    let snapshot = h.snapshot().await;
    assert_eq!(snapshot.events.len(), 2);
    assert_eq!(
        snapshot.all_transitions().count(),
        0,
        "products carry no state"
    );
    assert!(h.store.transitions(&product).await.unwrap().is_empty());

    // a customer without a phone number still carries `tel` (null): still a customer
    let mut customer = fixture("customer.json");
    customer["tel"] = Value::Null;
    assert_eq!(post(&h, &customer.to_string()).await.status, 200);
    let c = key("default", EntityKind::Customer, "1347849");
    assert!(h.store.entity(&c).await.unwrap().is_some());
}
