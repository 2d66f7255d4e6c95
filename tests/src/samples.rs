//! Events for the store tests: signed fulfilment requests normalised by the real provider,
//! and invoice events built directly (the invoice provider is not used here).

use serde_json::json;
use time::OffsetDateTime;

use webhook_core::config::Credentials;
use webhook_core::http::RawRequest;
use webhook_core::http::KEPT_HEADERS;
use webhook_core::lifecycle::Lifecycle;
use webhook_core::model::{
    EntityKey, EntityKind, EntityUpdate, NormalisedEvent, Recognition, Source, Tenant,
    TransitionRule,
};
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::sources::Provider;
use webhook_core::store::IncomingEvent;
use webhook_core::verify::SecretSet;
use webhook_core::version::Version;

pub const SECRET: &str = "store-tests-secret";
pub const MERCHANT: &str = "XYZ";
pub const ROUTE: &str = "/api/v1/fulfilment/webhook";
/// Events are received at this time (unix seconds) unless a test says otherwise.
pub const RECEIVED_AT: i64 = 1_757_069_100;
pub const RETENTION_DAYS: i64 = 90;
/// The entities' and transitions' retention the samples are written with (the default).
pub const ENTITY_RETENTION_DAYS: i64 = 180;

pub fn provider() -> Fulfilment {
    Fulfilment::new(Credentials::Verified(webhook_core::config::Keys::any(
        SecretSet::parse(SECRET),
    )))
}

/// A signed request with a delivery id.
pub fn signed(body: &str, delivery: &str) -> RawRequest {
    RawRequest::post(ROUTE, body)
        .with_header("Content-Type", "application/json")
        .with_header(
            "X-Event-Signature",
            &Fulfilment::sign(body.as_bytes(), SECRET),
        )
        .with_header("X-Event-Delivery", delivery)
}

/// An `ORDER.CHANGE_STATUS` body; `from: None` leaves the change to be inferred from the
/// stored state.
pub fn order_status_body(order: u64, from: Option<&str>, to: &str, updated_at: &str) -> String {
    let mut payload = json!({
        "merchant_code": MERCHANT,
        "to_status": to,
        "order": {"id": order, "code": format!("dh{order}"), "status": to, "updated_at": updated_at},
    });
    if let Some(from) = from {
        payload["from_status"] = json!(from);
    }
    json!({"event": "ORDER.CHANGE_STATUS", "payload": payload}).to_string()
}

/// A `SKU.CHANGE_STOCK` body naming `stocks` warehouses.
pub fn stock_body(product: &str, stocks: usize, updated_at: &str) -> String {
    let entries: Vec<_> = (0..stocks)
        .map(|i| {
            json!({
                "warehouse_code": format!("WH{i:03}"),
                "stock": {"id": format!("{product}-{i}"), "quantity": i * 3, "updated_at": updated_at},
            })
        })
        .collect();
    json!({
        "event": "SKU.CHANGE_STOCK",
        "payload": {"merchant_code": MERCHANT, "product_code": product, "stocks": entries},
    })
    .to_string()
}

pub fn received_at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(RECEIVED_AT).expect("valid time")
}

/// What the pipeline hands the store for `req`: verified and normalised by the fulfilment
/// provider, received at [`RECEIVED_AT`], kept [`RETENTION_DAYS`].
pub fn incoming(req: &RawRequest) -> IncomingEvent {
    let p = provider();
    p.verify(req).expect("signed request verifies");
    let now = received_at();
    IncomingEvent {
        event: p.normalise(req, now).expect("normalises").into(),
        raw_body: req.body.clone(),
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
            .cloned()
            .collect(),
        received_at: now,
        expires_at: RECEIVED_AT + RETENTION_DAYS * 86_400,
        conflict_with: None,
        entity_expires_at: RECEIVED_AT + ENTITY_RETENTION_DAYS * 86_400,
    }
}

/// An order status change, ready for the store.
pub fn order_event(
    delivery: &str,
    order: u64,
    from: Option<&str>,
    to: &str,
    updated_at: &str,
) -> IncomingEvent {
    incoming(&signed(
        &order_status_body(order, from, to, updated_at),
        delivery,
    ))
}

pub fn order_key(order: u64) -> EntityKey {
    EntityKey::new(
        Source::Fulfilment,
        Tenant::new(MERCHANT),
        EntityKind::Order,
        order.to_string(),
    )
}

pub fn stock_key(product: &str, i: usize) -> EntityKey {
    EntityKey::new(
        Source::Fulfilment,
        Tenant::new(MERCHANT),
        EntityKind::Stock,
        format!("{product}-{i}"),
    )
}

pub fn invoice_key(invoice: &str) -> EntityKey {
    EntityKey::new(
        Source::Invoice,
        Tenant::default_tenant(),
        EntityKind::Invoice,
        invoice,
    )
}

/// An `invoice.updated` moving `invoice` from `from` to `to` at `version_secs` (built
/// directly: the invoice state machine is the store's business, not the provider's).
pub fn invoice_event(
    event_id: &str,
    invoice: &str,
    from: &str,
    to: &str,
    version_secs: i64,
) -> IncomingEvent {
    let body = json!({
        "event": "invoice.updated",
        "timestamp": version_secs,
        "data": {"invoiceId": invoice, "state": to, "previousState": from},
    })
    .to_string();
    IncomingEvent {
        event: NormalisedEvent {
            recognition: Recognition::Known,
            source: Source::Invoice,
            event_id: event_id.to_string(),
            event_type: "invoice.updated".to_string(),
            provider_event: "invoice.updated".to_string(),
            tenant: Tenant::default_tenant(),
            entities: vec![EntityUpdate {
                key: invoice_key(invoice),
                version: Version::from_micros(version_secs * 1_000_000),
                state: Some(to.to_string()),
                data: json!({"invoiceId": invoice, "state": to}),
                transition: TransitionRule::Declared {
                    from: from.to_string(),
                    to: to.to_string(),
                },
                lifecycle: Lifecycle::Invoice,
            }],
        }
        .into(),
        raw_body: body.into_bytes(),
        headers: vec![("content-type".into(), "application/json".into())],
        received_at: received_at(),
        expires_at: RECEIVED_AT + RETENTION_DAYS * 86_400,
        conflict_with: None,
        entity_expires_at: RECEIVED_AT + ENTITY_RETENTION_DAYS * 86_400,
    }
}

/// `e` as a release that did not understand its body stored it: kept, projecting nothing,
/// `unrecognised` (ARCHITECTURE §4). Today's provider understands the same bytes, so
/// `webhooks reprocess` projects it.
/// `e` keyed by its `X-Event-Delivery` id (`fulfilment#<delivery>`), as the release before
/// issue 21 stored fulfilment deliveries: for suites about what happens to stored events
/// (purge, reprocess, the CLI), which then name them plainly; what a key is made of is the
/// identity suite's concern.
pub fn under_delivery_id(mut e: IncomingEvent) -> IncomingEvent {
    let delivery = e
        .headers
        .iter()
        .find(|(k, _)| k == "x-event-delivery")
        .map(|(_, v)| v.clone())
        .expect("a delivery id header");
    let mut event = (*e.event).clone();
    event.event_id = delivery;
    e.event = event.into();
    e
}

pub fn as_unrecognised(mut e: IncomingEvent) -> IncomingEvent {
    let mut event = (*e.event).clone();
    event.entities.clear();
    event.recognition = Recognition::Unrecognised;
    e.event = event.into();
    e
}

/// The event as releases before issue 21 normalised `req`: keyed by its delivery id
/// (`fulfilment#<X-Event-Delivery>`).
pub fn as_previous_release(req: &RawRequest) -> IncomingEvent {
    let mut incoming = incoming(req);
    let mut event = (*incoming.event).clone();
    event.event_id = req
        .header("x-event-delivery")
        .expect("a delivery id")
        .to_string();
    incoming.event = std::sync::Arc::new(event);
    incoming
}
