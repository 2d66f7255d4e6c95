//! Handler-level tests of the fulfilment source over the embedded SQLite store, and the
//! local gateway over HTTP (issue 2's "must show").

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use webhook_core::backends::sqlite::Expired;
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::http::RawRequest;
use webhook_core::model::{scoped_body_event_id, EntityKey, EntityKind, EventKey, Source, Tenant};
use webhook_core::queue::PullQueue;
use webhook_core::refusals::NoRecord;
use webhook_core::runtime;
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::store::{EventStatus, OperatorStore};
use webhook_tests::events::SourceHarness;
use webhook_tests::inspect;
use webhook_tests::suite::Suite;

const ROUTE: &str = "/api/v1/fulfilment/webhook";
const SECRET: &str = "test-fulfilment-secret";

const SUITE: Suite = Suite::new(Source::Fulfilment, 1_760_000_000);

fn harness_with(env: &Env) -> SourceHarness {
    SUITE.harness_at(env, Mode::Lambda, SUITE.now_unix)
}

fn harness() -> SourceHarness {
    harness_with(&Env::from_pairs([(
        "FULFILMENT_SECRETS",
        format!("rotated-out,{SECRET}"),
    )]))
}

fn signed(body: &str, delivery: &str) -> RawRequest {
    RawRequest::post(ROUTE, body)
        .with_header(
            "X-Event-Signature",
            &Fulfilment::sign(body.as_bytes(), SECRET),
        )
        .with_header("X-Event-Delivery", delivery)
        .with_header("X-Api-Key", "must-not-be-stored")
}

fn status_change(order: u64, from: &str, to: &str, updated_at: &str) -> String {
    json!({
        "event": "ORDER.CHANGE_STATUS",
        "payload": {
            "order": {"id": order, "code": format!("dh{order}"), "status": to, "updated_at": updated_at},
            "merchant_code": "XYZ",
            "from_status": from,
            "to_status": to
        }
    })
    .to_string()
}

/// The key a fulfilment body is stored under: its tenant and its hash (ARCHITECTURE §4).
fn key_of(body: &str) -> EventKey {
    let id = scoped_body_event_id(&Tenant::new("XYZ"), body.as_bytes());
    EventKey::new(Source::Fulfilment, &id)
}

fn order_key(id: &str) -> EntityKey {
    EntityKey::new(
        Source::Fulfilment,
        Tenant::new("XYZ"),
        EntityKind::Order,
        id,
    )
}

/// Nothing stored or queued: no event listed, no dead letter, an empty queue.
async fn assert_nothing_stored(h: &SourceHarness) {
    let snapshot = h.snapshot().await;
    assert!(snapshot.is_empty(), "{snapshot:?}");
}

#[tokio::test]
async fn seed_order_is_stored_with_its_transition_and_queued() {
    let h = harness();
    let body = SUITE.fixture_text("order_change_status.json");
    let resp = h.handler.handle(&signed(&body, "5001")).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "ok");

    let entity = h
        .store
        .entity(&order_key("5342"))
        .await
        .unwrap()
        .expect("order stored");
    assert_eq!(entity.state.as_deref(), Some("WAITING_CONFIRM"));
    assert_eq!(entity.last_event_key, key_of(&body).as_str());
    let transitions = h.store.transitions(&order_key("5342")).await.unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].from.as_deref(), Some("WAITING_INSPECTION"));
    assert_eq!(transitions[0].to, "WAITING_CONFIRM");
    assert!(transitions[0].queued && transitions[0].flag.is_none());
    assert_eq!(h.outbox.depth().await.unwrap(), 1);

    let stored = h.store.event(&key_of(&body)).await.unwrap().unwrap();
    assert_eq!(
        stored.raw_body,
        body.as_bytes(),
        "raw body kept byte for byte"
    );
    assert_eq!(stored.status, EventStatus::Applied);
    assert!(
        stored.expires_at > stored.received_at + 89 * 86_400,
        "TTL ~90 days"
    );
}

#[tokio::test]
async fn redelivery_is_acknowledged_and_changes_nothing() {
    let h = harness();
    let body = status_change(1, "A", "B", "2024-01-01T00:00:00Z");
    assert_eq!(h.handler.handle(&signed(&body, "d1")).await.status, 200);
    let before = h.store.entity(&order_key("1")).await.unwrap();
    for _ in 0..3 {
        let resp = h.handler.handle(&signed(&body, "d1")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body["duplicate"], true);
    }
    assert_eq!(h.store.entity(&order_key("1")).await.unwrap(), before);
    assert_eq!(h.store.transitions(&order_key("1")).await.unwrap().len(), 1);
    assert_eq!(h.outbox.depth().await.unwrap(), 1, "queued once");
    let listed = h.events().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].event_key, key_of(&body).as_str());
}

#[tokio::test]
async fn bad_credentials_are_401_and_store_nothing() {
    let h = harness();
    let body = status_change(2, "A", "B", "2024-01-01T00:00:00Z");
    let mut tampered = signed(&body, "d2");
    tampered.body = body.replace("\"B\"", "\"C\"").into_bytes();
    let wrong_secret = RawRequest::post(ROUTE, body.clone()).with_header(
        "X-Event-Signature",
        &Fulfilment::sign(body.as_bytes(), "not-the-secret"),
    );
    let missing = RawRequest::post(ROUTE, body.clone());
    for (name, req) in [
        ("tampered", tampered),
        ("wrong secret", wrong_secret),
        ("missing header", missing),
    ] {
        let resp = h.handler.handle(&req).await;
        assert_eq!(resp.status, 401, "{name}");
        assert_eq!(resp.body["status"], "error");
        let text = resp.body.to_string();
        assert!(!text.contains(SECRET), "{name}: secret leaked");
    }
    assert_nothing_stored(&h).await;
    assert!(h.store.entity(&order_key("2")).await.unwrap().is_none());
    assert!(h
        .store
        .transitions(&order_key("2"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(h.outbox.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_problem() {
    let h = harness();
    for (body, needle) in [
        ("{\"event\": \"ORDER.CHANGE_STATUS\",", "JSON"),
        ("[1,2]", "object"),
        ("{\"payload\": {}}", "event"),
        ("{\"event\": \"ORDER.CHANGE_STATUS\"}", "payload"),
    ] {
        let resp = h.handler.handle(&signed(body, "d3")).await;
        assert_eq!(resp.status, 400, "{body}");
        assert!(
            resp.body["message"].as_str().unwrap().contains(needle),
            "{}",
            resp.body
        );
    }
    let non_utf8 = b"{\"event\": \"\xff\xfe\"}".to_vec();
    let req = RawRequest::post(ROUTE, non_utf8.clone())
        .with_header("X-Event-Signature", &Fulfilment::sign(&non_utf8, SECRET));
    let resp = h.handler.handle(&req).await;
    assert_eq!(resp.status, 400);
    assert!(resp.body["message"].as_str().unwrap().contains("UTF-8"));
    assert_nothing_stored(&h).await;
}

#[tokio::test]
async fn oversized_body_is_413_and_not_stored() {
    let env = Env::from_pairs([("FULFILMENT_SECRETS", SECRET), ("MAX_BODY_BYTES", "1024")]);
    let h = harness_with(&env);
    let padding = "x".repeat(2_000);
    let body = json!({"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": "XYZ", "note": padding}}).to_string();
    let resp = h.handler.handle(&signed(&body, "d4")).await;
    assert_eq!(resp.status, 413);
    assert!(resp.body["message"].as_str().unwrap().contains("1024"));
    assert_nothing_stored(&h).await;
}

#[tokio::test]
async fn older_status_after_newer_keeps_the_newer_state_and_records_both() {
    let h = harness();
    let newer = status_change(
        7,
        "WAITING_PICKING",
        "WAITING_PACKING",
        "2024-03-01T10:05:00Z",
    );
    let older = status_change(
        7,
        "WAITING_PROCESSING",
        "WAITING_PICKING",
        "2024-03-01T10:00:00Z",
    );
    assert_eq!(h.handler.handle(&signed(&newer, "n")).await.status, 200);
    let resp = h.handler.handle(&signed(&older, "o")).await;
    assert_eq!(resp.status, 200);

    let entity = h.store.entity(&order_key("7")).await.unwrap().unwrap();
    assert_eq!(entity.state.as_deref(), Some("WAITING_PACKING"));
    assert_eq!(entity.last_event_key, key_of(&newer).as_str());
    let transitions = h.store.transitions(&order_key("7")).await.unwrap();
    let pairs: Vec<_> = transitions
        .iter()
        .map(|t| (t.from.clone().unwrap(), t.to.clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (
                "WAITING_PROCESSING".to_string(),
                "WAITING_PICKING".to_string()
            ),
            ("WAITING_PICKING".to_string(), "WAITING_PACKING".to_string())
        ],
        "history in version order"
    );
    let stale = h.store.event(&key_of(&older)).await.unwrap().unwrap();
    assert_eq!(stale.status, EventStatus::Stale);
}

#[tokio::test]
async fn unknown_event_is_kept_and_acknowledged() {
    let h = harness();
    let body =
        json!({"event": "ORDER.CREATED", "payload": {"merchant_code": "XYZ", "order": {"id": 9}}})
            .to_string();
    let resp = h.handler.handle(&signed(&body, "u1")).await;
    assert_eq!(resp.status, 200);
    let stored = h.store.event(&key_of(&body)).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Ignored);
    assert!(h.store.entity(&order_key("9")).await.unwrap().is_none());
}

#[tokio::test]
async fn stock_event_writes_one_entity_per_warehouse_entry() {
    let h = harness();
    let body = String::from_utf8(SUITE.sample("sku_change_stock").body).unwrap();
    assert_eq!(h.handler.handle(&signed(&body, "s1")).await.status, 200);
    for id in ["543", "544"] {
        let key = EntityKey::new(
            Source::Fulfilment,
            Tenant::new("XYZ"),
            EntityKind::Stock,
            id,
        );
        let e = h.store.entity(&key).await.unwrap().expect("stock stored");
        assert_eq!(e.data["product_code"], "ABC");
    }
    assert_eq!(
        h.outbox.depth().await.unwrap(),
        0,
        "stock changes carry no transition"
    );
}

#[tokio::test]
async fn expired_records_are_purged_and_live_ones_kept() {
    let h = harness();
    let body = status_change(4, "A", "B", "2024-01-01T00:00:00Z");
    assert_eq!(h.handler.handle(&signed(&body, "ttl")).await.status, 200);
    let key = key_of(&body);
    let stored = h.store.event(&key).await.unwrap().unwrap();
    let at = |secs| time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let purge = |secs| {
        let store = h.store.clone();
        async move { store.purge_expired(at(secs)).await.unwrap() }
    };
    let none = Expired::default();

    assert_eq!(purge(stored.expires_at).await, none);
    assert!(h.store.event(&key).await.unwrap().is_some());
    let events = Expired { events: 1, ..none };
    assert_eq!(purge(stored.expires_at + 1).await, events);
    assert!(h.store.event(&key).await.unwrap().is_none());
    // the entity outlives its events (ENTITY_RETENTION_DAYS after the last write)
    assert!(h.store.entity(&order_key("4")).await.unwrap().is_some());
    let entity_expiry =
        stored.received_at + PipelineSettings::DEFAULT_ENTITY_RETENTION_DAYS as i64 * 86_400;
    assert_eq!(purge(entity_expiry).await, none);
    // The entity goes; its transition waits for its queued message to be delivered.
    let entity = Expired {
        entities: 1,
        ..none
    };
    assert_eq!(purge(entity_expiry + 1).await, entity);
    assert!(h.store.entity(&order_key("4")).await.unwrap().is_none());
    assert_eq!(h.store.transitions(&order_key("4")).await.unwrap().len(), 1);
    for m in h.outbox.receive(i64::MAX / 2, 10, 0).await.unwrap() {
        h.outbox.ack(m.seq).await.unwrap();
    }
    let transition = Expired {
        transitions: 1,
        ..none
    };
    assert_eq!(purge(entity_expiry + 1).await, transition);
    assert!(h
        .store
        .transitions(&order_key("4"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn stored_headers_never_include_credentials() {
    let h = harness();
    let body = status_change(3, "A", "B", "2024-01-01T00:00:00Z");
    h.handler.handle(&signed(&body, "h1")).await;
    let events = inspect::stored_events(&h.store).await;
    assert_eq!(events.len(), 1);
    let headers = &events[0].headers;
    assert!(
        headers.contains(&("x-event-delivery".to_string(), "h1".to_string())),
        "{headers:?}"
    );
    assert!(
        headers.iter().all(|(name, value)| name != "x-api-key"
            && !name.contains("must-not-be-stored")
            && !value.contains("must-not-be-stored")),
        "{headers:?}"
    );
}

// ---- the local gateway over HTTP ------------------------------------------------------

async fn serve_local(db: &Path) -> (String, tokio::task::JoinHandle<()>) {
    let env = Env::default();
    let (backends, _sqlite) = runtime::sqlite_backends(db, &env).unwrap();
    let handlers = webhooks_local::handlers(&env, &backends, Arc::new(NoRecord)).unwrap();
    let app = webhooks_local::app(handlers, PipelineSettings::default().max_body_bytes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

async fn post_sample(client: &reqwest::Client, url: &str, name: &str) -> (u16, Value) {
    let event = SUITE.sample(name.trim_end_matches(".json"));
    let mut req = client.post(format!("{url}{ROUTE}")).body(event.body);
    for (k, v) in event.headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn local_gateway_accepts_the_samples_and_remembers_them_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/webhooks.db");
    let client = reqwest::Client::new();
    let samples = ["order_change_status.json", "sku_change_stock.json"];

    let (url, server) = serve_local(&db).await;
    for name in samples {
        let (status, body) = post_sample(&client, &url, name).await;
        assert_eq!(
            (status, body["duplicate"].clone()),
            (200, json!(false)),
            "{name}: {body}"
        );
        let (status, body) = post_sample(&client, &url, name).await;
        assert_eq!(
            (status, body["duplicate"].clone()),
            (200, json!(true)),
            "{name}: {body}"
        );
    }
    let resp = client.get(format!("{url}{ROUTE}")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let big = vec![b'x'; PipelineSettings::default().max_body_bytes + 10];
    let resp = client
        .post(format!("{url}{ROUTE}"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    server.abort();
    let _ = server.await;

    // A new process over the same file still knows the deliveries.
    let (url, server) = serve_local(&db).await;
    for name in samples {
        let (status, body) = post_sample(&client, &url, name).await;
        assert_eq!(
            (status, body["duplicate"].clone()),
            (200, json!(true)),
            "{name} after restart"
        );
    }
    server.abort();
}
