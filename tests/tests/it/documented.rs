//! What Pancake and Pancake POS really send (issue 20), through the real handlers over every
//! backend (SQLite + outbox, DynamoDB + SQS FIFO on moto): each delivery of the providers'
//! own documentation (`shared/fixtures/<source>/documented/`, as the signed samples in
//! `events/`) is answered 2xx, kept and projected; conversations keep their highest
//! `version`; a `request_id` retry is a duplicate; a page's reconnection is one notified
//! transition; the POS status flow, shuffled, ends in its newest status; and an object of
//! no documented form is kept as `unrecognised`, never refused, and reprocessable.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::http::{RawRequest, RawResponse};
use webhook_core::metrics::MetricsSink;
use webhook_core::model::{body_event_id, Recognition, TransitionMessage};
use webhook_core::ops;
use webhook_core::pipeline::{Handler, Pipeline};
use webhook_core::sources::provider_from_env;
use webhook_core::store::{EventFilter, EventStatus, IncomingEvent, StoredEvent};
use webhook_core::{EntityKey, EntityKind, EventKey, Source, Tenant};
use webhook_tests::events::{dev_credentialed, sample, samples};
use webhook_tests::kit::Kit;
use webhook_tests::samples::RECEIVED_AT;

webhook_tests::on_every_backend!(
    every_documented_delivery_is_acknowledged_kept_and_projected,
    conversation_versions_out_of_order_keep_the_highest,
    a_request_id_retry_with_a_new_timestamp_is_a_duplicate,
    a_page_going_disconnected_then_connected_is_one_notified_transition,
    the_pos_status_flow_delivered_shuffled_ends_in_the_newest_status,
    an_unknown_shape_is_kept_as_unrecognised_for_each_provider,
    an_unrecognised_event_is_projected_by_reprocess_once_understood,
);

const PAGE: &str = "100000000000901";
const SHOP: &str = "20462817";

/// The three sources' handlers, configured with the development credentials the samples
/// carry, over the kit's store and queue.
struct Rig<'a> {
    kit: &'a Kit,
    handlers: HashMap<Source, Handler>,
}

impl<'a> Rig<'a> {
    fn new(kit: &'a Kit) -> Self {
        let env = Env::from_pairs([
            ("PANCAKE_API_KEYS", "dev-pancake-key"),
            ("PANCAKE_POS_API_KEYS", "dev-pancake-pos-key"),
            ("ABAHA_TOKENS", "dev-abaha-token"),
        ]);
        let pipeline = Arc::new(Pipeline::new(
            kit.store.clone(),
            kit.queue.clone(),
            Arc::new(FixedClock::at_unix(RECEIVED_AT)),
            PipelineSettings::default(),
        ));
        let handlers = [Source::Pancake, Source::PancakePos, Source::Abaha]
            .into_iter()
            .map(|source| {
                let provider = provider_from_env(source, &env, Mode::Lambda).expect("provider");
                let handler = Handler::new(pipeline.clone(), provider, MetricsSink::Off);
                (source, handler)
            })
            .collect();
        Rig { kit, handlers }
    }

    async fn post(&self, source: Source, req: &RawRequest) -> RawResponse {
        let resp = self.handlers[&source].handle(req).await;
        assert_eq!(
            resp.status, 200,
            "[{}] {source}: {}",
            self.kit.name, resp.body
        );
        resp
    }

    /// Posts `body` with the source's development credential.
    async fn post_json(&self, source: Source, body: &Value) -> RawResponse {
        let req = dev_credentialed(source, body.to_string().as_bytes(), None);
        self.post(source, &req).await
    }

    async fn stored(&self, resp: &RawResponse) -> StoredEvent {
        let key = resp.body["data"]["eventKey"]
            .as_str()
            .expect("an event key");
        self.event(&EventKey::from_stored(key.to_string())).await
    }

    async fn event(&self, key: &EventKey) -> StoredEvent {
        self.kit
            .store
            .event(key)
            .await
            .expect("event lookup")
            .unwrap_or_else(|| panic!("[{}] {key} is stored", self.kit.name))
    }

    async fn entity(&self, key: &EntityKey) -> webhook_core::store::StoredEntity {
        self.kit
            .store
            .entity(key)
            .await
            .expect("entity lookup")
            .unwrap_or_else(|| panic!("[{}] {key} is projected", self.kit.name))
    }

    /// Every queued message, in the order a receiver would get it.
    async fn notified(&self) -> Vec<TransitionMessage> {
        self.kit
            .drain_queue()
            .await
            .iter()
            .map(|m| m.message())
            .collect()
    }
}

fn key(source: Source, tenant: &str, kind: EntityKind, id: &str) -> EntityKey {
    EntityKey::new(source, Tenant::new(tenant), kind, id)
}

fn fixture(source_dir: &str, name: &str) -> Value {
    let path = webhook_tests::events::repo_root()
        .join("shared/fixtures")
        .join(source_dir)
        .join("documented")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// (source, sample, tenant, entity kind, entity id, state) of one documented delivery.
type Projected = (
    Source,
    &'static str,
    &'static str,
    EntityKind,
    &'static str,
    Option<&'static str>,
);

async fn every_documented_delivery_is_acknowledged_kept_and_projected(kit: &Kit) {
    let rig = Rig::new(kit);
    let expected: [Projected; 8] = [
        (
            Source::Pancake,
            "documented_messaging",
            "tt_7300000000000000001",
            EntityKind::Message,
            "tt_7400000000000000003",
            None,
        ),
        (
            Source::Pancake,
            "documented_conversation",
            PAGE,
            EntityKind::Conversation,
            "100000000000901_100000000000902",
            None,
        ),
        (
            Source::Pancake,
            "documented_post",
            PAGE,
            EntityKind::Post,
            "100000000000901_128700000000902",
            None,
        ),
        (
            Source::Pancake,
            "documented_connect_status",
            PAGE,
            EntityKind::Page,
            PAGE,
            Some("disconnected"),
        ),
        (
            Source::Pancake,
            "documented_subscription",
            "default",
            EntityKind::Subscription,
            "SUB901",
            None,
        ),
        (
            Source::PancakePos,
            "documented_order",
            SHOP,
            EntityKind::Order,
            "1418",
            Some("0"),
        ),
        (
            Source::PancakePos,
            "documented_customer",
            SHOP,
            EntityKind::Customer,
            "00094712-0000-4000-8000-000000000901",
            None,
        ),
        (
            Source::PancakePos,
            "documented_inventory",
            "default",
            EntityKind::Variation,
            "1996b3cd-0000-4000-8000-000000000901@77cbe2d5-0000-4000-8000-000000000901",
            None,
        ),
    ];
    for (source, name, tenant, kind, id, state) in expected {
        let folder = if source == Source::Pancake {
            "pancake"
        } else {
            "pancake-pos"
        };
        let req = sample(folder, name);
        let resp = rig.post(source, &req).await;
        assert_eq!(resp.body["status"], "success", "[{}] {name}", kit.name);
        assert_eq!(
            resp.body["data"]["duplicate"], false,
            "[{}] {name}",
            kit.name
        );
        let stored = rig.stored(&resp).await;
        assert_eq!(stored.raw_body, req.body, "[{}] {name}", kit.name);
        assert_eq!(stored.status, EventStatus::Applied, "[{}] {name}", kit.name);
        assert_eq!(stored.tenant, tenant, "[{}] {name}", kit.name);
        let entity = rig.entity(&key(source, tenant, kind, id)).await;
        assert_eq!(entity.state.as_deref(), state, "[{}] {name}", kit.name);
        let again = rig.post(source, &req).await;
        assert_eq!(
            again.body["data"]["duplicate"], true,
            "[{}] {name}",
            kit.name
        );
    }
    // the CRM row: acknowledged and kept, not projected (it names no id)
    let resp = rig
        .post(
            Source::PancakePos,
            &sample("pancake-pos", "documented_crm_record"),
        )
        .await;
    assert_eq!(rig.stored(&resp).await.status, EventStatus::Ignored);
    // every documented sample of both sources was covered above
    for folder in ["pancake", "pancake-pos"] {
        let documented = samples(folder)
            .into_iter()
            .filter(|(name, _)| name.starts_with("documented_"))
            .count();
        assert_eq!(documented, if folder == "pancake" { 5 } else { 4 });
    }
}

/// A `conversation` delivery of `version`, with its own `request_id`.
fn conversation(version: i64) -> Value {
    let mut body = fixture("pancake", "conversation");
    body["request_id"] = json!(format!("req-{version}"));
    body["data"]["conversation"]["version"] = json!(version);
    body["data"]["conversation"]["snippet"] = json!(format!("at {version}"));
    body
}

async fn conversation_versions_out_of_order_keep_the_highest(kit: &Kit) {
    let rig = Rig::new(kit);
    let id = key(
        Source::Pancake,
        PAGE,
        EntityKind::Conversation,
        "100000000000901_100000000000902",
    );
    let mut statuses = Vec::new();
    for version in [306, 9, 310, 307, 99] {
        let resp = rig.post_json(Source::Pancake, &conversation(version)).await;
        statuses.push(rig.stored(&resp).await.status);
    }
    let stored = rig.entity(&id).await;
    assert_eq!(stored.data["version"], 310, "[{}]", kit.name);
    assert_eq!(stored.data["snippet"], "at 310", "[{}]", kit.name);
    use EventStatus::{Applied, Stale};
    assert_eq!(
        statuses,
        [Applied, Stale, Applied, Stale, Stale],
        "[{}]",
        kit.name
    );
    // a messaging snapshot of the same conversation (a time, no counter) does not win
    let messaging = json!({"event_type": "messaging", "page_id": PAGE, "data": {
        "conversation": {"id": "100000000000901_100000000000902", "snippet": "snapshot",
            "updated_at": "2025-01-01T00:00:00"},
        "message": {"id": "m-901", "inserted_at": "2025-01-01T00:00:00"}}});
    rig.post_json(Source::Pancake, &messaging).await;
    assert_eq!(
        rig.entity(&id).await.data["snippet"],
        "at 310",
        "[{}]",
        kit.name
    );
    assert!(rig
        .kit
        .store
        .entity(&key(Source::Pancake, PAGE, EntityKind::Message, "m-901"))
        .await
        .unwrap()
        .is_some());
}

async fn a_request_id_retry_with_a_new_timestamp_is_a_duplicate(kit: &Kit) {
    let rig = Rig::new(kit);
    for name in ["conversation", "connect_status"] {
        let first = fixture("pancake", name);
        let mut retry = first.clone();
        retry["timestamp"] = json!(first["timestamp"].as_i64().unwrap() + 30);
        let a = rig.post_json(Source::Pancake, &first).await;
        let b = rig.post_json(Source::Pancake, &retry).await;
        assert_eq!(a.body["data"]["duplicate"], false, "[{}] {name}", kit.name);
        assert_eq!(b.body["data"]["duplicate"], true, "[{}] {name}", kit.name);
        assert_eq!(a.body["data"]["eventKey"], b.body["data"]["eventKey"]);
        // the first bytes are the ones kept
        let stored = rig.stored(&a).await;
        assert_eq!(stored.raw_body, first.to_string().into_bytes());
        // the same request_id from another page is another delivery
        let mut other = first.clone();
        other["page_id"] = json!("100000000000999");
        if let Some(data) = other["data"].as_object_mut() {
            data.insert("page_id".into(), json!("100000000000999"));
        }
        let c = rig.post_json(Source::Pancake, &other).await;
        assert_eq!(c.body["data"]["duplicate"], false, "[{}] {name}", kit.name);
        assert_ne!(c.body["data"]["eventKey"], a.body["data"]["eventKey"]);
    }
}

/// A `connect_status` delivery in `state` at `timestamp`, with its own `request_id`.
fn connect(state: &str, timestamp: i64) -> Value {
    let mut body = fixture("pancake", "connect_status");
    body["request_id"] = json!(format!("req-{state}-{timestamp}"));
    body["timestamp"] = json!(timestamp);
    body["data"]["connect_status"] = json!(state);
    body
}

async fn a_page_going_disconnected_then_connected_is_one_notified_transition(kit: &Kit) {
    let rig = Rig::new(kit);
    let page = key(Source::Pancake, PAGE, EntityKind::Page, PAGE);
    let disconnected = connect("disconnected", 1_757_069_000);
    let connected = connect("connected", 1_757_069_600);
    rig.post_json(Source::Pancake, &disconnected).await;
    rig.post_json(Source::Pancake, &connected).await;
    // redeliveries and an older report change nothing
    rig.post_json(Source::Pancake, &connected).await;
    rig.post_json(Source::Pancake, &connect("disconnected", 1_757_068_000))
        .await;
    assert_eq!(rig.entity(&page).await.state.as_deref(), Some("connected"));
    let history = kit.store.transitions(&page).await.unwrap();
    let changes: Vec<_> = history
        .iter()
        .map(|t| (t.from.clone(), t.to.clone()))
        .collect();
    assert_eq!(
        changes,
        [(Some("disconnected".to_string()), "connected".to_string())],
        "[{}]",
        kit.name
    );
    let notified = rig.notified().await;
    assert_eq!(notified.len(), 1, "[{}] {notified:?}", kit.name);
    let m = &notified[0];
    assert_eq!(
        (m.entity.kind, m.entity.id.as_str()),
        (EntityKind::Page, PAGE)
    );
    assert_eq!(
        (m.from.as_deref(), m.to.as_str()),
        (Some("disconnected"), "connected")
    );
    assert_eq!(m.occurred_at, "2025-09-05T10:53:20Z");
    assert!(!m.late);
}

/// Pancake POS's documented status flow, in the order an order moves through it.
const POS_FLOW: [u64; 17] = [0, 17, 11, 12, 13, 20, 1, 8, 9, 2, 3, 16, 4, 15, 5, 6, 7];
/// A fixed shuffle of the flow's indexes, as a retrying sender delivers them: pairs swapped
/// (a status overtaken by the next one) and the first status arriving after a later one.
const SHUFFLE: [usize; 17] = [1, 0, 2, 4, 3, 5, 7, 6, 8, 10, 9, 11, 13, 12, 14, 16, 15];

/// The documented bare order in the flow's `i`-th status, one minute after the previous.
fn order_at(i: usize) -> Value {
    let mut body = fixture("pancake_pos", "order");
    body["status"] = json!(POS_FLOW[i]);
    body["updated_at"] = json!(format!("2025-09-05T05:{:02}:00", i));
    body
}

async fn the_pos_status_flow_delivered_shuffled_ends_in_the_newest_status(kit: &Kit) {
    let rig = Rig::new(kit);
    let order = key(Source::PancakePos, SHOP, EntityKind::Order, "1418");
    // What the store must do: apply a delivery newer than the stored one, recording a
    // change from the stored status; an older one is stale and changes nothing.
    let mut expected = Vec::new();
    let mut newest: Option<usize> = None;
    for &i in &SHUFFLE {
        rig.post_json(Source::PancakePos, &order_at(i)).await;
        rig.post_json(Source::PancakePos, &order_at(i)).await; // a redelivery
        match newest {
            Some(n) if i < n => {}
            Some(n) => {
                expected.push((POS_FLOW[n].to_string(), POS_FLOW[i].to_string()));
                newest = Some(i);
            }
            None => newest = Some(i),
        }
    }
    let stored = rig.entity(&order).await;
    assert_eq!(
        stored.state.as_deref(),
        Some("7"),
        "[{}] the newest status",
        kit.name
    );
    let history = kit.store.transitions(&order).await.unwrap();
    let recorded: Vec<_> = history
        .iter()
        .map(|t| (t.from.clone().unwrap(), t.to.clone()))
        .collect();
    assert_eq!(
        recorded, expected,
        "[{}] one transition per change",
        kit.name
    );
    // 10 changes applied in version order; the 6 statuses overtaken are stale (kept,
    // notify nothing: a status older than the order's is never announced after it)
    assert_eq!(expected.len(), 10, "{expected:?}");
    assert_eq!(expected[0], ("17".to_string(), "11".to_string()));
    let notified = rig.notified().await;
    let sent: Vec<_> = notified
        .iter()
        .map(|m| (m.from.clone().unwrap(), m.to.clone()))
        .collect();
    assert_eq!(
        sent, expected,
        "[{}] notified once each, in order",
        kit.name
    );
    let times: Vec<_> = notified.iter().map(|m| m.occurred_at.clone()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "[{}] in version order", kit.name);
    assert!(notified.iter().all(|m| !m.late));
}

async fn an_unknown_shape_is_kept_as_unrecognised_for_each_provider(kit: &Kit) {
    let rig = Rig::new(kit);
    let odd = json!({"kind": "something_new", "id": 5, "at": "2025-09-05T10:00:00"});
    for source in [Source::Pancake, Source::PancakePos, Source::Abaha] {
        let body = odd.to_string();
        let resp = rig.post_json(source, &odd).await;
        match source {
            Source::Abaha => assert_eq!(resp.body, json!({"status": 200, "message": "OK"})),
            _ => assert_eq!(resp.body["status"], "success", "[{}] {source}", kit.name),
        }
        let stored = rig
            .event(&EventKey::new(source, &body_event_id(body.as_bytes())))
            .await;
        assert_eq!(
            stored.status,
            EventStatus::Unrecognised,
            "[{}] {source}",
            kit.name
        );
        assert_eq!(stored.event_type, "unknown");
        assert_eq!(stored.tenant, "default");
        assert!(stored.entity_keys.is_empty());
    }
    // still refused: not a JSON object
    for source in [Source::Pancake, Source::PancakePos, Source::Abaha] {
        let req = dev_credentialed(source, b"[1,2]", None);
        assert_eq!(rig.handlers[&source].handle(&req).await.status, 400);
    }
}

async fn an_unrecognised_event_is_projected_by_reprocess_once_understood(kit: &Kit) {
    // An older release kept the documented inventory row as unrecognised.
    let req = sample("pancake-pos", "documented_inventory");
    let provider = provider_from_env(
        Source::PancakePos,
        &Env::from_pairs([("PANCAKE_POS_API_KEYS", "k")]),
        Mode::Lambda,
    )
    .unwrap();
    let at = webhook_tests::samples::received_at();
    let mut event = provider.normalise(&req, at).unwrap();
    event.entities.clear();
    event.recognition = Recognition::Unrecognised;
    event.event_type = "unknown".into();
    let incoming = IncomingEvent {
        raw_body: req.body.clone(),
        headers: Vec::new(),
        received_at: at,
        expires_at: RECEIVED_AT + 86_400,
        event: Arc::new(event),
        conflict_with: None,
        entity_expires_at: RECEIVED_AT + webhook_tests::samples::ENTITY_RETENTION_DAYS * 86_400,
    };
    let outcome = kit.store.persist(&incoming).await.unwrap();
    assert_eq!(outcome.status, EventStatus::Unrecognised, "[{}]", kit.name);
    let op = kit.operator().await;
    let filter = EventFilter {
        status: Some(EventStatus::Unrecognised),
        ..Default::default()
    };
    let summary = ops::reprocess(&op, &Env::default(), &filter, false, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (summary.newly_projected, summary.failed.len()),
        (1, 0),
        "[{}] {summary:?}",
        kit.name
    );
    let row = key(
        Source::PancakePos,
        "default",
        EntityKind::Variation,
        "1996b3cd-0000-4000-8000-000000000901@77cbe2d5-0000-4000-8000-000000000901",
    );
    assert_eq!(
        kit.store.entity(&row).await.unwrap().unwrap().data["change_quantity"],
        -1
    );
    let stored = kit.store.event(&incoming.key()).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Applied, "[{}]", kit.name);
}
