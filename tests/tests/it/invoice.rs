//! Handler-level tests of the invoice source (`POST /callback/update-invoice`) over the
//! embedded SQLite store and outbox queue: the events/ samples, duplicates, the replay
//! window on an injected clock, rejected requests leaving nothing behind, the state machine's
//! flags, and a property test that any arrival order of a valid invoice history (with
//! byte-identical redeliveries) converges on the true final state with every transition
//! queued exactly once.

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use webhook_core::config::{Env, Mode};
use webhook_core::http::{RawRequest, RawResponse};
use webhook_core::model::{body_event_id, EventKey, Source};
use webhook_core::queue::TransitionQueue;
use webhook_core::store::{EventStatus, OperatorStore, StoredTransition, TransitionSelector};
use webhook_core::version::Version;
use webhook_tests::events::SourceHarness;
use webhook_tests::samples::invoice_key;
use webhook_tests::suite::Suite;

const ROUTE: &str = "/callback/update-invoice";
const SECRET: &str = "test-invoice-secret";
/// 2025-09-05T10:30:00Z, the morning of the seed's samples.
const T0: i64 = 1_757_068_200;

const SUITE: Suite = Suite::new(Source::Invoice, T0);

fn harness(env: &Env, mode: Mode, now_unix: i64) -> SourceHarness {
    SUITE.harness_at(env, mode, now_unix)
}

/// A Lambda-mode harness (default 300 s replay window) with the clock at `now_unix`.
fn lambda(now_unix: i64) -> SourceHarness {
    harness(
        &Env::from_pairs([("INVOICE_SECRETS", format!("rotated-out,{SECRET}"))]),
        Mode::Lambda,
        now_unix,
    )
}

async fn post(h: &SourceHarness, body: &str) -> RawResponse {
    h.handler.handle(&signed(body, SECRET)).await
}

/// Every queued message (transition id, parsed body) in queue order, and no dead letter.
/// Drains the queue: read it last.
async fn queued_messages(h: &SourceHarness) -> Vec<(String, Value)> {
    h.queued()
        .await
        .into_iter()
        .map(|m| (m["transitionId"].as_str().unwrap().to_string(), m))
        .collect()
}

/// Nothing stored or queued, and nothing for `invoice`: no event listed, an empty queue, no
/// entity or transition under the key the requests named.
async fn assert_nothing_stored(h: &SourceHarness, invoice: &str) {
    let snapshot = h.snapshot().await;
    assert!(snapshot.is_empty(), "{snapshot:?}");
    assert_eq!(state(h, invoice).await, None);
    assert!(h
        .store
        .entity(&invoice_key(invoice))
        .await
        .unwrap()
        .is_none());
    assert!(transitions(h, invoice).await.is_empty());
}

async fn state(h: &SourceHarness, invoice: &str) -> Option<String> {
    h.store
        .entity(&invoice_key(invoice))
        .await
        .unwrap()
        .and_then(|e| e.state)
}

async fn transitions(h: &SourceHarness, invoice: &str) -> Vec<StoredTransition> {
    h.store.transitions(&invoice_key(invoice)).await.unwrap()
}

/// hex HMAC-SHA256(secret, body), computed here with the `hmac` crate rather than the code
/// under test.
fn signature(body: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn signed(body: &str, secret: &str) -> RawRequest {
    RawRequest::post(ROUTE, body).with_header("X-Signature", &signature(body, secret))
}

fn rfc3339(unix_ms: i64) -> String {
    Version::from_micros(unix_ms * 1_000).to_rfc3339()
}

/// An `invoice.updated` body as the gateway sends it; `previous: None` omits previousState.
fn update(id: &str, previous: Option<&str>, state: &str, unix_ms: i64) -> String {
    let mut data = json!({
        "invoiceId": id,
        "customerId": "customer-cuid-123",
        "state": state,
        "title": "USDT 10만원 구매",
        "cashAmount": "100000.000000",
    });
    if let Some(previous) = previous {
        data["previousState"] = json!(previous);
    }
    json!({"event": "invoice.updated", "timestamp": rfc3339(unix_ms), "data": data}).to_string()
}

#[tokio::test]
async fn every_sample_is_accepted_by_the_local_defaults_and_redelivery_changes_nothing() {
    // No configuration at all, as webhooks-local starts: dev secret, replay window off
    // (the samples carry 2025 timestamps). The clock is years later on purpose.
    let h = harness(&Env::default(), Mode::Local, T0 + 3 * 365 * 86_400);
    // events/invoice holds one sample per edge
    let samples = SUITE.samples(7);
    for (name, req) in &samples {
        assert_eq!(req.path, ROUTE, "{name}");
        let resp = h.handler.handle(req).await;
        assert_eq!(resp.status, 200, "{name}: {:?}", resp.body);
        assert_eq!(
            resp.body,
            json!({"status": "ok", "duplicate": false}),
            "{name}"
        );
        let stored = h
            .store
            .event(&EventKey::new(Source::Invoice, &body_event_id(&req.body)))
            .await
            .unwrap()
            .expect("event stored");
        assert_eq!(stored.event_type, "invoice.updated");
        assert_eq!(stored.raw_body, req.body, "{name}: raw bytes kept");
    }
    assert_eq!(h.events().await.len(), samples.len());
    // The seed's four samples are alternative endings of one invoice: Complete came first
    // (in file order) and is terminal, so the later Fail and Cancel are flagged.
    assert_eq!(
        state(&h, "550e8400-e29b-41d4-a716-446655440000")
            .await
            .as_deref(),
        Some("Complete")
    );
    assert_eq!(
        state(&h, "550e8400-e29b-41d4-a716-446655440001")
            .await
            .as_deref(),
        Some("Reject")
    );
    assert_eq!(
        state(&h, "550e8400-e29b-41d4-a716-446655440002")
            .await
            .as_deref(),
        Some("Pending")
    );
    let flagged: Vec<_> = transitions(&h, "550e8400-e29b-41d4-a716-446655440000")
        .await
        .into_iter()
        .filter(|t| t.flag.is_some())
        .map(|t| t.to)
        .collect();
    assert_eq!(flagged, ["Fail", "Cancel"]);

    let before = h.snapshot().await;
    for (name, req) in &samples {
        let resp = h.handler.handle(req).await;
        assert_eq!(resp.status, 200, "{name}");
        assert_eq!(
            resp.body,
            json!({"status": "ok", "duplicate": true}),
            "{name}"
        );
    }
    assert_eq!(h.snapshot().await, before);
}

#[tokio::test]
async fn replay_window_follows_the_injected_clock() {
    let sent_ms = (T0 + 600) * 1_000;
    let body = update("inv-w", Some("Ready"), "Pending", sent_ms);
    let h = lambda(T0 + 600 + 301);
    let resp = post(&h, &body).await;
    assert_eq!(resp.status, 401, "{:?}", resp.body);
    assert_eq!(resp.body["error"], "AUTH_003");
    h.clock.set_unix(T0 + 600 - 301);
    assert_eq!(post(&h, &body).await.status, 401, "too far in the future");
    assert_nothing_stored(&h, "inv-w").await;

    h.clock.set_unix(T0 + 600 + 300);
    let resp = post(&h, &body).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(state(&h, "inv-w").await.as_deref(), Some("Pending"));

    // explicitly turned off, even a Lambda accepts an old timestamp
    let env = Env::from_pairs([("INVOICE_SECRETS", SECRET), ("INVOICE_TOLERANCE_SECS", "0")]);
    let off = harness(&env, Mode::Lambda, T0 + 86_400 * 30);
    assert_eq!(post(&off, &body).await.status, 200);
}

#[tokio::test]
async fn rejected_requests_store_nothing_and_leak_no_secret() {
    let h = lambda(T0);
    let body = update("inv-r", Some("Ready"), "Pending", T0 * 1_000);
    let mut tampered = signed(&body, SECRET);
    tampered.body = body.replace("Pending", "Complete").into_bytes();
    let cases = [
        (signed(&body, "wrong-secret"), 401, "AUTH_002"),
        (RawRequest::post(ROUTE, body.as_str()), 401, "AUTH_001"),
        (tampered, 401, "AUTH_002"),
        (
            signed(&body.replace("invoice.updated", "invoice.deleted"), SECRET),
            400,
            "VAL_003",
        ),
        (
            signed(&body.replace("\"state\"", "\"status\""), SECRET),
            400,
            "VAL_001",
        ),
        (signed("[1,2]", SECRET), 400, "VAL_002"),
    ];
    for (req, status, code) in cases {
        let resp = h.handler.handle(&req).await;
        assert_eq!(resp.status, status, "{:?}", resp.body);
        assert_eq!(resp.body["error"], code);
        let text = resp.body.to_string();
        assert!(!text.contains(SECRET) && !text.contains("rotated-out"));
    }
    let resp = h
        .handler
        .handle(&signed(&body.replace("\"state\"", "\"status\""), SECRET))
        .await;
    assert!(resp.body["message"]
        .as_str()
        .unwrap()
        .contains("data.state"));
    assert_nothing_stored(&h, "inv-r").await;

    // the rotated-out secret still works while it is listed
    assert_eq!(
        h.handler.handle(&signed(&body, "rotated-out")).await.status,
        200
    );
}

#[tokio::test]
async fn signature_header_name_comes_from_the_environment() {
    let env = Env::from_pairs([
        ("INVOICE_SECRETS", SECRET),
        ("INVOICE_SIGNATURE_HEADER", "X-Gateway-Signature"),
    ]);
    let h = harness(&env, Mode::Lambda, T0);
    let body = update("inv-h", Some("Ready"), "Pending", T0 * 1_000);
    let sig = signature(&body, SECRET);
    let default_name = RawRequest::post(ROUTE, body.as_str()).with_header("X-Signature", &sig);
    assert_eq!(h.handler.handle(&default_name).await.status, 401);
    let custom = RawRequest::post(ROUTE, body.as_str()).with_header("x-gateway-signature", &sig);
    assert_eq!(h.handler.handle(&custom).await.status, 200);
}

#[tokio::test]
async fn a_disallowed_or_terminal_leaving_transition_is_flagged_not_queued() {
    let h = lambda(T0 + 60);
    let id = "inv-flag";
    let ms = |s: i64| (T0 + s) * 1_000;
    for body in [
        update(id, Some("Ready"), "Pending", ms(0)),
        update(id, Some("Pending"), "Complete", ms(10)),
        // newer, but Complete → Pending is no edge of the machine
        update(id, Some("Complete"), "Pending", ms(20)),
        // an allowed edge, but the invoice already reached a terminal state
        update(id, Some("Pending"), "Fail", ms(30)),
    ] {
        let resp = post(&h, &body).await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        assert_eq!(resp.body["duplicate"], false);
    }
    assert_eq!(state(&h, id).await.as_deref(), Some("Complete"));

    let ts = transitions(&h, id).await;
    // `queued`: handed to the transition queue. (`published` is the notifier's mark after
    // delivery; no notifier runs here.)
    let summary: Vec<_> = ts
        .iter()
        .map(|t| {
            (
                t.from.as_deref().unwrap(),
                t.to.as_str(),
                t.flag.as_deref(),
                t.queued,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Ready", "Pending", None, true),
            ("Pending", "Complete", None, true),
            ("Complete", "Pending", Some("not_allowed"), false),
            ("Pending", "Fail", Some("terminal"), false),
        ]
    );
    let queued: Vec<_> = queued_messages(&h)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        queued,
        [ts[0].transition_id.clone(), ts[1].transition_id.clone()]
    );
    let flagged_event = EventKey::new(
        Source::Invoice,
        &body_event_id(update(id, Some("Complete"), "Pending", ms(20)).as_bytes()),
    );
    let stored = h.store.event(&flagged_event).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Flagged);
}

// ---- property: any arrival order converges -----------------------------------------------

/// Valid invoice histories, state by state (ARCHITECTURE §6).
const HISTORIES: [&[&str]; 4] = [
    &["Ready", "Pending", "Complete"],
    &["Ready", "Wait", "Pending", "Fail"],
    &["Ready", "Wait", "Reject"],
    &["Ready", "Cancel"],
];

#[derive(Debug, Clone)]
struct Scenario {
    history: usize,
    /// Whether the history starts with a creation event (state Ready, no previousState).
    created: bool,
    /// Milliseconds between consecutive events (strictly increasing timestamps).
    gaps_ms: Vec<i64>,
    /// Arrival order: indices into the history's events; every event at least once, some
    /// again (a byte-identical redelivery).
    arrivals: Vec<usize>,
}

impl Scenario {
    fn states(&self) -> &'static [&'static str] {
        HISTORIES[self.history]
    }

    /// The history's event bodies with their timestamps (unix ms), oldest first, all within
    /// the replay window of a clock at `T0 + 200`.
    fn events(&self) -> Vec<(String, i64)> {
        let states = self.states();
        let mut at_ms = T0 * 1_000;
        let mut events = Vec::new();
        if self.created {
            events.push((update("inv-p", None, states[0], at_ms), at_ms));
        }
        for (i, pair) in states.windows(2).enumerate() {
            at_ms += self.gaps_ms[i];
            events.push((update("inv-p", Some(pair[0]), pair[1], at_ms), at_ms));
        }
        events
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0..HISTORIES.len(),
        any::<bool>(),
        prop::collection::vec(1i64..100_000, 3),
        prop::collection::vec(any::<Index>(), 0..6),
    )
        .prop_flat_map(|(history, created, gaps_ms, redeliveries)| {
            let n = HISTORIES[history].len() - 1 + usize::from(created);
            let mut arrivals: Vec<usize> = (0..n).collect();
            arrivals.extend(redeliveries.iter().map(|i| i.index(n)));
            Just(arrivals)
                .prop_shuffle()
                .prop_map(move |arrivals| Scenario {
                    history,
                    created,
                    gaps_ms: gaps_ms.clone(),
                    arrivals,
                })
        })
}

async fn converges(s: Scenario) -> Result<(), TestCaseError> {
    let h = lambda(T0 + 200);
    let events = s.events();
    let first = usize::from(s.created); // index of the first transition event
    let mut first_arrival: BTreeMap<usize, usize> = BTreeMap::new();
    for (position, &i) in s.arrivals.iter().enumerate() {
        let resp = post(&h, &events[i].0).await;
        prop_assert_eq!(resp.status, 200, "{:?}", resp.body);
        let redelivery = first_arrival.contains_key(&i);
        prop_assert_eq!(&resp.body["duplicate"], &json!(redelivery));
        first_arrival.entry(i).or_insert(position);
    }

    // the entity ends in the history's true final state, at its newest version
    let states = s.states();
    let entity = h
        .store
        .entity(&invoice_key("inv-p"))
        .await
        .unwrap()
        .unwrap();
    prop_assert_eq!(entity.state.as_deref(), states.last().copied());
    let newest_ms = events.last().unwrap().1;
    prop_assert_eq!(entity.version, newest_ms * 1_000);

    // every edge recorded once, allowed and queued
    let ts = transitions(&h, "inv-p").await;
    let edges: Vec<(&str, &str)> = ts
        .iter()
        .map(|t| (t.from.as_deref().unwrap_or("-"), t.to.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = states.windows(2).map(|p| (p[0], p[1])).collect();
    prop_assert_eq!(&edges, &expected);
    for t in &ts {
        prop_assert!(t.flag.is_none() && t.queued, "{:?}", t);
    }

    // the queue deduplicates by transition id: each transition published again while it is
    // queued adds nothing (what the outbox's dedup id being the transition id means)
    let depth = h.outbox.depth().await.unwrap();
    for t in &ts {
        let replayable = h
            .store
            .replayable(&TransitionSelector::Id(t.transition_id.clone()))
            .await
            .unwrap();
        prop_assert_eq!(replayable.len(), 1);
        let message = replayable[0].message.as_ref().expect("a queued transition");
        h.outbox.publish(message).await.unwrap();
    }
    prop_assert_eq!(h.outbox.depth().await.unwrap(), depth);

    // the outbox holds exactly one message per transition, and only those
    let outbox = queued_messages(&h).await;
    prop_assert_eq!(outbox.len(), ts.len());
    let mut queued_ids: Vec<&str> = outbox.iter().map(|(id, _)| id.as_str()).collect();
    queued_ids.sort_unstable();
    let mut transition_ids: Vec<&str> = ts.iter().map(|t| t.transition_id.as_str()).collect();
    transition_ids.sort_unstable();
    prop_assert_eq!(queued_ids, transition_ids);

    // a transition is `late` exactly when a newer event of the invoice arrived before it
    for (id, message) in &outbox {
        let k = first
            + expected
                .iter()
                .position(|(f, t)| message["from"] == *f && message["to"] == *t)
                .unwrap();
        let late = first_arrival
            .iter()
            .any(|(&j, &pos)| j > k && pos < first_arrival[&k]);
        prop_assert_eq!(&message["late"], &json!(late), "{}", id);
    }
    prop_assert_eq!(h.events().await.len(), first_arrival.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_arrival_order_with_redeliveries_converges(s in scenario()) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(converges(s))?;
    }
}
