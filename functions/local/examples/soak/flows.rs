//! What the soak sends: "flows", each the life of one fresh entity as its provider would
//! report it (an order moving through statuses, an invoice through its lifecycle, a product
//! or a chat message once), built from the fixtures in `shared/fixtures/` with the ids,
//! statuses and times changed, and credentialed with the development credentials. A flow's
//! steps go out in order, each after the previous one was acknowledged, so how many
//! transitions each step causes is known in advance (the end checks compare it with the
//! store). Plus the bad variants of a request: wrong or missing credential, malformed JSON,
//! oversized.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};
use webhook_core::http::route_for;
pub use webhook_core::model::Source;
use webhook_core::model::{body_event_id, scoped_body_event_id, EventKey, Tenant};
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::sources::invoice::Invoice;
use webhook_core::sources::{abaha, fulfilment, invoice, pancake, pancake_pos};

/// A small seeded generator (SplitMix64): the mix must be reproducible, and the workspace
/// has no `rand`.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        let mut s = SplitMix(seed);
        s.next_u64();
        s
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Abaha's answer carries no `duplicate` flag; the others say it.
pub fn reports_duplicates(source: Source) -> bool {
    source != Source::Abaha
}

/// One HTTP request, before it is framed.
#[derive(Debug, Clone)]
pub struct Request {
    pub provider: Source,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// `X-Event-Delivery` (fulfilment's event id).
    pub delivery: Option<String>,
}

impl Request {
    /// The provider's development credential over `body` (README, "Development credentials").
    pub fn signed(provider: Source, body: Vec<u8>, delivery: Option<String>) -> Request {
        let mut headers = credential(provider, &body, "");
        if let Some(d) = &delivery {
            headers.push(("x-event-delivery", d.clone()));
        }
        Request {
            provider,
            headers,
            body,
            delivery,
        }
    }

    /// `{source}#{event id}` as the gateway derives it: the body's sha256, for fulfilment
    /// prefixed by its merchant (ARCHITECTURE §4; the delivery id is only a kept header).
    pub fn event_key(&self) -> String {
        let id = match self.provider {
            Source::Fulfilment => {
                let body: serde_json::Value =
                    serde_json::from_slice(&self.body).unwrap_or_default();
                let merchant = body["payload"]["merchant_code"]
                    .as_str()
                    .unwrap_or_default();
                scoped_body_event_id(&Tenant::new(merchant), &self.body)
            }
            _ => body_event_id(&self.body),
        };
        EventKey::new(self.provider, &id).as_str().to_string()
    }

    /// The request as HTTP/1.1 bytes (keep-alive unless `close`).
    pub fn frame(&self, port: u16, close: bool) -> Vec<u8> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\nuser-agent: soak/1.0\r\ncontent-length: {}\r\n",
            route_for(self.provider),
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The development credential headers of `provider` for `body` (README, "Development
/// credentials"), signed by the providers' own code; `spoil` non-empty makes them wrong.
fn credential(provider: Source, body: &[u8], spoil: &str) -> Vec<(&'static str, String)> {
    let key = |v: &str| format!("{v}{spoil}");
    match provider {
        Source::Pancake => vec![("x-api-key", key(pancake::DEV_API_KEY))],
        Source::PancakePos => vec![("x-webhook-secret", key(pancake_pos::DEV_API_KEY))],
        Source::Abaha => vec![("x-abaha-token", key(abaha::DEV_TOKEN))],
        Source::Fulfilment => vec![(
            "x-event-signature",
            Fulfilment::sign(body, &key(fulfilment::DEV_SECRET)),
        )],
        Source::Invoice => vec![(
            "x-signature",
            Invoice::sign(body, &key(invoice::DEV_SECRET)),
        )],
    }
}

/// A bad request and what the gateway must answer; `forbidden` is an event key that must
/// never be stored (the bad request's own, were it accepted).
pub struct Bad {
    pub label: &'static str,
    pub request: Request,
    pub expected: u16,
    pub forbidden: Option<String>,
}

/// Bad variant `which` (0-3) of a good request. Each body differs from every good one (a
/// trailing space, a prefix, a padding), so a bad request can never collide with a good one.
pub fn bad(good: &Request, which: u64, max_body: usize) -> Bad {
    let delivery = good.delivery.as_ref().map(|d| format!("bad{which}-{d}"));
    let (label, body, expected) = match which {
        0 => ("wrong credential", [&good.body[..], b" "].concat(), 401),
        1 => ("no credential", [&good.body[..], b"  "].concat(), 401),
        2 => (
            "malformed JSON",
            good.body[..good.body.len() / 2].to_vec(),
            400,
        ),
        _ => {
            let mut body = good.body.clone();
            body.resize(max_body + 1024, b' ');
            ("oversized", body, 413)
        }
    };
    let mut request = Request::signed(good.provider, body, delivery);
    match which {
        0 => {
            let spoiled = credential(good.provider, &request.body, "-wrong");
            request.headers.retain(|(k, _)| *k == "x-event-delivery");
            request.headers.extend(spoiled);
        }
        1 => request.headers.retain(|(k, _)| *k == "x-event-delivery"),
        _ => {}
    }
    let forbidden = Some(request.event_key());
    Bad {
        label,
        request,
        expected,
        forbidden,
    }
}

/// One request of a flow and the transitions it must cause.
pub struct Step {
    pub request: Request,
    pub transitions: u32,
}

/// The fixtures by `dir/name`.
pub struct Fixtures(HashMap<String, Value>);

impl Fixtures {
    pub fn load(dir: &Path) -> anyhow::Result<Fixtures> {
        let mut map = HashMap::new();
        for sub in ["pancake", "pancake_pos", "abaha", "fulfilment", "invoice"] {
            for entry in std::fs::read_dir(dir.join(sub))? {
                let path = entry?.path();
                // The folders also hold a README and the documented shapes' subfolder.
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let value: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
                map.insert(format!("{sub}/{name}"), value);
            }
        }
        Ok(Fixtures(map))
    }

    /// A copy of fixture `name` with `changes` (JSON pointer, value) applied.
    fn with(&self, name: &str, changes: &[(&str, Value)]) -> Vec<u8> {
        let mut v = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("fixture {name}"))
            .clone();
        for (pointer, value) in changes {
            match v.pointer_mut(pointer) {
                Some(slot) => *slot = value.clone(),
                None => panic!("fixture {name} has no {pointer}"),
            }
        }
        serde_json::to_vec(&v).expect("JSON")
    }
}

/// The kinds of flow, drawn uniformly (invoices twice: they are one flow kind for a source).
#[derive(Debug, Clone, Copy)]
pub enum FlowKind {
    FulfilmentOrder,
    FulfilmentStock,
    Invoice,
    PancakeOrder,
    PancakeChat,
    PosOrder,
    PosCatalog,
    AbahaOrder,
    AbahaCatalog,
}

pub const KINDS: [FlowKind; 10] = [
    FlowKind::FulfilmentOrder,
    FlowKind::FulfilmentStock,
    FlowKind::Invoice,
    FlowKind::Invoice,
    FlowKind::PancakeOrder,
    FlowKind::PancakeChat,
    FlowKind::PosOrder,
    FlowKind::PosCatalog,
    FlowKind::AbahaOrder,
    FlowKind::AbahaCatalog,
];

/// The steps of flow `n` of kind `kind` in run `run` (entity ids are unique per `(run, n)`).
pub fn flow(fx: &Fixtures, kind: FlowKind, n: u64, run: u64) -> Vec<Step> {
    match kind {
        FlowKind::FulfilmentOrder => fulfilment_order(fx, n, run),
        FlowKind::FulfilmentStock => fulfilment_stock(fx, n, run),
        FlowKind::Invoice => invoice(fx, n, run),
        FlowKind::PancakeOrder => pancake_order(fx, n),
        FlowKind::PancakeChat => pancake_chat(fx, n, run),
        FlowKind::PosOrder => pos_order(fx, n),
        FlowKind::PosCatalog => pos_catalog(fx, n, run),
        FlowKind::AbahaOrder => abaha_order(fx, n),
        FlowKind::AbahaCatalog => abaha_catalog(fx, n, run),
    }
}

/// The time of step `i` of a flow: later steps are newer versions.
fn at(i: usize) -> String {
    format!("2025-09-05T10:{:02}:00", 10 + i)
}

fn step(provider: Source, body: Vec<u8>, delivery: Option<String>, transitions: u32) -> Step {
    Step {
        request: Request::signed(provider, body, delivery),
        transitions,
    }
}

/// A fulfilment order through four statuses: three declared transitions.
fn fulfilment_order(fx: &Fixtures, n: u64, run: u64) -> Vec<Step> {
    let statuses = [
        "WAITING_INSPECTION",
        "WAITING_CONFIRM",
        "WAITING_PROCESSING",
        "DELIVERING",
    ];
    (0..3)
        .map(|i| {
            let body = fx.with(
                "fulfilment/order_change_status",
                &[
                    ("/payload/merchant_code", json!("SOAK")),
                    ("/payload/from_status", json!(statuses[i])),
                    ("/payload/to_status", json!(statuses[i + 1])),
                    ("/payload/order/id", json!(n)),
                    ("/payload/order/code", json!(format!("soak{n}"))),
                    ("/payload/order/status", json!(statuses[i + 1])),
                    ("/payload/order/updated_at", json!(format!("{}Z", at(i)))),
                ],
            );
            step(
                Source::Fulfilment,
                body,
                Some(format!("soak-{run}-{n}-{i}")),
                1,
            )
        })
        .collect()
}

/// A fulfilment stock change of two fresh stock rows: no state, no transition.
fn fulfilment_stock(fx: &Fixtures, n: u64, run: u64) -> Vec<Step> {
    let body = fx.with(
        "fulfilment/sku_change_stock",
        &[
            ("/payload/merchant_code", json!("SOAK")),
            ("/payload/product_code", json!(format!("P{n}"))),
            ("/payload/stocks/0/stock/id", json!(2 * n)),
            ("/payload/stocks/1/stock/id", json!(2 * n + 1)),
        ],
    );
    vec![step(
        Source::Fulfilment,
        body,
        Some(format!("soak-{run}-{n}-s")),
        0,
    )]
}

/// An invoice Ready → Wait → Pending → Complete: three declared transitions.
fn invoice(fx: &Fixtures, n: u64, run: u64) -> Vec<Step> {
    let states = ["Ready", "Wait", "Pending", "Complete"];
    (0..3)
        .map(|i| {
            let body = fx.with(
                "invoice/ready_wait",
                &[
                    ("/timestamp", json!(format!("{}.000Z", at(i)))),
                    ("/data/invoiceId", json!(format!("soak-{run}-{n}"))),
                    ("/data/previousState", json!(states[i])),
                    ("/data/state", json!(states[i + 1])),
                ],
            );
            step(Source::Invoice, body, None, 1)
        })
        .collect()
}

/// A Pancake order created (status 0), then updated to 1: the stored state decides, so the
/// first causes no transition and the second one.
fn pancake_order(fx: &Fixtures, n: u64) -> Vec<Step> {
    [("pancake/order_created", 0), ("pancake/order_updated", 1)]
        .into_iter()
        .enumerate()
        .map(|(i, (name, status))| {
            let body = fx.with(
                name,
                &[
                    ("/payload/data/id", json!(n)),
                    ("/payload/data/status", json!(status)),
                    ("/payload/data/updated_at", json!(at(i))),
                ],
            );
            step(Source::Pancake, body, None, i as u32)
        })
        .collect()
}

/// A Pancake chat message and its conversation's update: stateless.
fn pancake_chat(fx: &Fixtures, n: u64, run: u64) -> Vec<Step> {
    let conversation = format!("104582318532114_{run}{n}");
    let message = fx.with(
        "pancake/message_received",
        &[
            ("/payload/data/id", json!(format!("m_soak_{run}_{n}"))),
            ("/payload/data/conversation_id", json!(conversation)),
        ],
    );
    let updated = fx.with(
        "pancake/conversation_updated",
        &[("/payload/data/id", json!(conversation))],
    );
    vec![
        step(Source::Pancake, message, None, 0),
        step(Source::Pancake, updated, None, 0),
    ]
}

/// A Pancake POS order: created (0), status changed 0 → 2 (declared), updated to 3 (the
/// stored state decides): two transitions.
fn pos_order(fx: &Fixtures, n: u64) -> Vec<Step> {
    let created = fx.with(
        "pancake_pos/order_created",
        &[
            ("/payload/data/id", json!(n)),
            ("/payload/data/updated_at", json!(at(0))),
        ],
    );
    let changed = fx.with(
        "pancake_pos/order_status_changed",
        &[
            ("/payload/data/id", json!(n)),
            ("/payload/data/old_status", json!(0)),
            ("/payload/data/status", json!(2)),
            ("/payload/data/updated_at", json!(at(1))),
        ],
    );
    let updated = fx.with(
        "pancake_pos/order_updated",
        &[
            ("/payload/data/id", json!(n)),
            ("/payload/data/status", json!(3)),
            ("/payload/data/updated_at", json!(at(2))),
        ],
    );
    vec![
        step(Source::PancakePos, created, None, 0),
        step(Source::PancakePos, changed, None, 1),
        step(Source::PancakePos, updated, None, 1),
    ]
}

/// A Pancake POS product and customer update: stateless.
fn pos_catalog(fx: &Fixtures, n: u64, run: u64) -> Vec<Step> {
    let product = fx.with(
        "pancake_pos/product_updated",
        &[("/payload/data/id", json!(format!("soak-{run}-{n}")))],
    );
    let customer = fx.with(
        "pancake_pos/customer_updated",
        &[("/payload/data/id", json!(format!("soak-{run}-{n}")))],
    );
    vec![
        step(Source::PancakePos, product, None, 0),
        step(Source::PancakePos, customer, None, 0),
    ]
}

/// An Abaha cart: first seen in status 1 (nothing stored to compare with), then 1 → 2 and
/// 2 → 5 declared by `before_status`: two transitions.
fn abaha_order(fx: &Fixtures, n: u64) -> Vec<Step> {
    [("1", "1", 0), ("1", "2", 1), ("2", "5", 1)]
        .into_iter()
        .enumerate()
        .map(|(i, (before, status, transitions))| {
            let body = fx.with(
                "abaha/order",
                &[
                    ("/id", json!(n.to_string())),
                    ("/cart_code", json!(format!("{n:011}"))),
                    ("/before_status", json!(before)),
                    ("/status", json!(status)),
                    ("/modified", json!(at(i).replace('T', " "))),
                ],
            );
            step(Source::Abaha, body, None, transitions)
        })
        .collect()
}

/// An Abaha product and customer: stateless.
fn abaha_catalog(fx: &Fixtures, n: u64, run: u64) -> Vec<Step> {
    let product = fx.with(
        "abaha/product",
        &[
            ("/id", json!(n.to_string())),
            ("/product_code", json!(format!("S{run}x{n}"))),
        ],
    );
    let customer = fx.with(
        "abaha/customer",
        &[("/user_id", json!(format!("{run}{n}")))],
    );
    vec![
        step(Source::Abaha, product, None, 0),
        step(Source::Abaha, customer, None, 0),
    ]
}
