//! Pancake POS (seeds 000 and 001): orders, order status, products, customers, inventory.
//!
//! Pancake POS signs nothing: the shop configures static request headers on its webhook.
//! Accepted credential: `X-API-Key`, the `api_key` query parameter, or the header named by
//! `PANCAKE_POS_KEY_HEADER` (default `X-Webhook-Secret`), equal to a key in
//! `PANCAKE_POS_API_KEYS` (constant-time, every key tried so keys rotate two at once).
//!
//! Payload forms:
//! - the seed envelope `{"payload":{"eventType","shopId","data","timestamp"}}`, with the
//!   seed 000 names (`order_created`, `order_status_changed`, `inventory_updated`, ...) or
//!   seed 001's dotted ones (`order.cancelled`, `product.deleted`, `transaction.created`,
//!   `loyalty.points_earned`, ...);
//! - the real flat delivery: the resource object itself with `type` (`orders`, `products`,
//!   `customers`, `variations_warehouses`, ...) and `event_type` (`create`, `update`,
//!   `delete`) added at the top level; products and variations may be wrapped in
//!   `data.record`.
//!
//! Tenant = shop id (`shopId`, `shop_id`). An order's state is its `status` as a string
//! (`1`, a number in the real deliveries): a status differing from the stored one is a queued
//! transition; an `order_status_changed` that names the old status (`old_status`,
//! `previous_status` or `from_status`) declares it. Inventory is keyed per variation and
//! warehouse (`<variation_id>@<warehouse_id>`), so stock updates of one variation in two
//! warehouses never overwrite each other. Transactions, loyalty points and unknown types are
//! kept and acknowledged, not projected; so is an event whose data has no id.

use serde_json::{Map, Value};

use super::guard::{credential_header, Guard};
use super::pancake_common::{api_key, resource, Delivery, Form, Member, Projector, API_KEY_HEADER};
use super::{id_of, opt_string};
use crate::config::{resolve_credentials, ConfigError, Credentials, Env, Mode};
use crate::model::{
    EntityKind, EntityUpdate, NormalisedEvent, Recognition, SameState, Source, TransitionRule,
};

pub const API_KEYS_VAR: &str = crate::config::vars::PANCAKE_POS_API_KEYS.name;
pub const KEY_HEADER_VAR: &str = crate::config::vars::PANCAKE_POS_KEY_HEADER.name;
pub(crate) const DEFAULT_KEY_HEADER: &str = "X-Webhook-Secret";
/// Local-mode key the events/ samples carry in `X-Webhook-Secret` (README).
pub const DEV_API_KEY: &str = "dev-pancake-pos-key";
/// The tenant field of the seed envelope, echoed in responses.
pub(crate) const TENANT_FIELD: &str = "shopId";

/// `type` of an inventory row (`variations_warehouses`), flat or in `data.record`.
const INVENTORY_TYPE: &str = "variations_warehouses";

/// Fields a status-change event may name the previous status in.
const OLD_STATUS_FIELDS: [&str; 3] = ["old_status", "previous_status", "from_status"];

#[derive(Debug, Clone)]
pub struct PancakePos {
    guard: Guard,
}

impl PancakePos {
    /// `key_header`: the shop's custom key header, as configured (matched case-insensitively).
    pub fn new(keys: Credentials, key_header: impl Into<String>) -> Self {
        let key = api_key(&[API_KEY_HEADER, &key_header.into()]);
        PancakePos {
            guard: Guard::new(keys, key),
        }
    }

    /// Keys fail closed like every source's credential; the header name is refused at
    /// start-up when it could never match or would be stored ([`credential_header`]).
    pub fn from_env(env: &Env, mode: Mode) -> Result<Self, ConfigError> {
        let header = credential_header(
            env,
            &crate::config::vars::PANCAKE_POS_KEY_HEADER,
            DEFAULT_KEY_HEADER,
        )?;
        Ok(Self::new(
            resolve_credentials(env, mode, Source::PancakePos, DEV_API_KEY)?,
            header,
        ))
    }
}

impl Member for PancakePos {
    const FORM: Form = Form {
        source: Source::PancakePos,
        tenant_field: TENANT_FIELD,
        delivery_tenant_field: "shop_id",
        envelope_entities,
        real_delivery: real,
    };

    fn key_check(&self) -> &Guard {
        &self.guard
    }
}

/// The entities of a seed-envelope event, by its canonical type.
fn envelope_entities(
    event_type: &str,
    data: &Map<String, Value>,
    p: &Projector,
) -> Vec<EntityUpdate> {
    let update = match event_type {
        "order.created" | "order.updated" | "order.cancelled" => {
            let order = resource(data, "order");
            p.order(order, opt_string(order, "status"), None, SameState::Record)
        }
        "order.status_changed" => {
            // The old status may sit beside the order (`{order, old_status}`) or in it.
            let order = resource(data, "order");
            let first = |fields: &[&str]| {
                [order, data]
                    .iter()
                    .find_map(|m| fields.iter().find_map(|f| opt_string(m, f)))
            };
            // A declared old status equal to the new one is recorded as declared.
            p.order(
                order,
                first(&["status", "new_status"]),
                first(&OLD_STATUS_FIELDS),
                SameState::Record,
            )
        }
        "product.created" | "product.updated" | "product.deleted" => {
            p.entity(EntityKind::Product, resource(data, "product"))
        }
        "customer.created" | "customer.updated" => {
            p.entity(EntityKind::Customer, resource(data, "customer"))
        }
        "inventory.updated" => variation(resource(data, "variation"), p),
        _ => None,
    };
    update.into_iter().collect()
}

/// Pancake POS's own deliveries (api-docs.pancake.vn, WEBHOOK), told apart by shape:
/// the flat form (`type` + `event_type`), the bare customer (`"type": "customers"`), a
/// `data.record` row (inventory when it says `"type": "variations_warehouses"`, else a CRM
/// table row), and the bare order (`id` + `status` + `shop_id`, or `system_id`). `None`
/// (kept as unrecognised) for anything else.
fn real(body: &Map<String, Value>, delivery: &Delivery) -> Option<NormalisedEvent> {
    let type_name = body.get("type").and_then(Value::as_str).map(str::trim);
    let record = body
        .get("data")
        .and_then(Value::as_object)
        .and_then(|d| d.get("record"))
        .and_then(Value::as_object);
    if body.contains_key("type") && body.contains_key("event_type") {
        return flat(body, delivery);
    }
    let has = |field: &str| body.get(field).is_some_and(|v| !v.is_null());
    let (provider_event, event_type, obj, kind) =
        if type_name.is_some_and(|t| t.eq_ignore_ascii_case("customers")) {
            (
                "customers",
                "customer.updated",
                body,
                Some(EntityKind::Customer),
            )
        } else if let Some(record) = record {
            match record.get("type").and_then(Value::as_str).map(str::trim) {
                Some(t) if t.eq_ignore_ascii_case(INVENTORY_TYPE) => (
                    INVENTORY_TYPE,
                    "inventory.updated",
                    record,
                    Some(EntityKind::Variation),
                ),
                // A CRM table row names no id of its own: kept, not projected.
                _ => ("crm", "crm.record_updated", record, None),
            }
        } else if (has("id") && has("status") && has("shop_id")) || has("system_id") {
            ("orders", "order.updated", body, Some(EntityKind::Order))
        } else {
            return None;
        };
    let tenant = delivery.tenant_or_unnamed(opt_string(obj, "shop_id"));
    let p = Projector::new(Source::PancakePos, tenant.clone(), None, delivery.now);
    Some(NormalisedEvent {
        recognition: Recognition::Known,
        source: Source::PancakePos,
        event_id: delivery.body_id.clone(),
        event_type: event_type.to_string(),
        provider_event: provider_event.to_string(),
        tenant,
        entities: project(kind, obj, &p).into_iter().collect(),
    })
}

/// The entity of a POS object of `kind`: an order by `id` (else `system_id`), its integer
/// `status` as the state (`"0"`, `"17"`): a status differing from the stored one is a
/// transition, and the order of statuses is the order of `updated_at`, never of the status
/// numbers (POS's flow is 0 → 17 → 11 → ... → 7); a variation row per warehouse.
fn project(
    kind: Option<EntityKind>,
    obj: &Map<String, Value>,
    p: &Projector,
) -> Option<EntityUpdate> {
    match kind? {
        EntityKind::Order => {
            let status = opt_string(obj, "status");
            match p.order(obj, status.clone(), None, SameState::Record) {
                Some(order) => Some(order),
                None => {
                    let id = opt_string(obj, "system_id")?;
                    let mut order = p.update(EntityKind::Order, id, obj);
                    order.transition =
                        TransitionRule::from_previous(None, status.as_deref(), SameState::Record);
                    order.state = status;
                    Some(order)
                }
            }
        }
        EntityKind::Variation => variation(obj, p),
        kind => p.entity(kind, obj),
    }
}

/// The flat delivery: `type` + `event_type` beside (or around, as `data.record`) the
/// resource. `None` (unrecognised) when either is not a string. The tenant is `shop_id`,
/// else the bound one, else `default`.
fn flat(body: &Map<String, Value>, delivery: &Delivery) -> Option<NormalisedEvent> {
    let text = |field: &str| match body.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
        _ => None,
    };
    let resource_type = text("type")?;
    let action = text("event_type")?;
    let obj = flat_resource(body);
    let tenant = delivery
        .tenant_or_unnamed(id_of(body.get("shop_id")).or_else(|| opt_string(obj, "shop_id")));
    let p = Projector::new(Source::PancakePos, tenant.clone(), None, delivery.now);
    let lower_type = resource_type.to_ascii_lowercase();
    let (noun, kind) = match lower_type.as_str() {
        "orders" => ("order", Some(EntityKind::Order)),
        "products" => ("product", Some(EntityKind::Product)),
        "customers" => ("customer", Some(EntityKind::Customer)),
        INVENTORY_TYPE => ("inventory", Some(EntityKind::Variation)),
        _ => (resource_type, None),
    };
    let verb = match action.to_ascii_lowercase().as_str() {
        "create" | "created" => Some("created"),
        "update" | "updated" => Some("updated"),
        "delete" | "deleted" => Some("deleted"),
        _ => None,
    };
    let update = match (kind, verb) {
        (Some(kind), Some(_)) => project(Some(kind), obj, &p),
        _ => None,
    };
    // A known resource and action is the canonical `<noun>.<verb>`; else as POS spells it.
    let event_type = match (kind, verb) {
        (Some(_), Some(verb)) => format!("{noun}.{verb}"),
        _ => format!("{resource_type}.{action}"),
    };
    Some(NormalisedEvent {
        recognition: Recognition::Known,
        source: Source::PancakePos,
        event_id: delivery.body_id.clone(),
        event_type,
        provider_event: format!("{resource_type}.{action}"),
        tenant,
        entities: update.into_iter().collect(),
    })
}

/// The resource of a flat delivery: `data.record`, else `data` when the body is only a
/// wrapper (no `id` of its own), else the body itself.
fn flat_resource(body: &Map<String, Value>) -> &Map<String, Value> {
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return body;
    };
    match data.get("record").and_then(Value::as_object) {
        Some(record) => record,
        None if !body.contains_key("id") => data,
        None => body,
    }
}

/// A variation's stock: keyed `<variation_id>@<warehouse_id>` when the warehouse is named
/// (a `variations_warehouses` row), else by the variation id.
fn variation(obj: &Map<String, Value>, p: &Projector) -> Option<EntityUpdate> {
    let variation = opt_string(obj, "variation_id").or_else(|| opt_string(obj, "id"))?;
    let id = match opt_string(obj, "warehouse_id") {
        Some(warehouse) => format!("{variation}@{warehouse}"),
        None => variation,
    };
    Some(p.update(EntityKind::Variation, id, obj))
}

#[cfg(test)]
#[path = "pancake_pos_tests.rs"]
mod tests;
