//! Writing a plan as ordered conditional single writes (issue 12): the entity, then its
//! transitions, then the event item — the commit marker — each a conditional `UpdateItem`
//! or `PutItem` of its own.
//!
//! Why: an item in a `TransactWriteItems` is billed twice (2 WRU per started KB), a single
//! write once. For an event naming one entity (the common shape: a status change, an
//! order, a customer) the three writes cost half the transaction, for two more round trips.
//!
//! Why it is safe (ARCHITECTURE §5, decision 22):
//! - **Dedupe** is still decided by one conditional write, the event item's
//!   `attribute_not_exists(event_key)`, written last: concurrent duplicates resolve to one
//!   winner, the losers find the stored event in the failed condition's `ALL_OLD` item.
//! - **Nothing is half visible as an event**: until the event item is written the event is
//!   not recorded, the request answers 503 on any failure, and the provider's retry is not a
//!   duplicate: it writes again. Every step is idempotent for a retry: the entity update's
//!   condition also fails when the item is already this event's write (`last_event_key`),
//!   which the returned item (`ALL_OLD`) tells apart from a newer write — the rules then
//!   decide again on that item, as on a consistent read, and the next write is locked on it;
//!   a transition already stored is kept; the event item is written once.
//! - What a failed attempt can leave behind — the entity moved on, a transition recorded,
//!   no event — is exactly what a multi-transaction event (module doc of the store) could
//!   leave already, and is completed by the retry.
//!
//! Not used (a transaction is): for an event naming several entities (re-planning after a
//! conflict would see the event's own earlier writes), for an update whose transition is
//! inferred from the stored state (a retry after a partial write would no longer infer it),
//! for a plan with a condition check (an entity decided but not written), and for an event
//! under a declared id (not made of its body's bytes, ARCHITECTURE §4): another body may be
//! stored under it, and its entity write would land before the event item's condition said so;
//! nor for an entity versioned at receipt (a redelivery's version is newer than the stored
//! one, so its entity write would pass and move the entity back before the duplicate shows).

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::items::{to_item, EventItem, TransitionItem};
use super::plan::{distinct_keys, needs_read, Condition, EntityWrite, Plan};
use super::reads::current_of;
use super::transact::{Attempt, EntityUpsert};
use super::{unavailable, DynamoDbStore, Item};
use crate::error::StoreError;
use crate::model::{EventKey, Identity};
use crate::store::{IncomingEvent, TransitionRecord};
use crate::version::Version;

/// Whether `plan` for `incoming` is written as ordered single writes (see the module doc).
/// Only for an id made of the body's bytes: under a declared id another body may be stored,
/// and its entity and transition would be written before the event item's condition told
/// (ARCHITECTURE §4); a transaction writes nothing then.
/// Nor for an entity versioned at receipt (its body names no time): a redelivery would carry
/// a newer version than the stored event's, so its entity write would pass its condition and
/// move the entity back before the event item's condition found the duplicate.
pub(super) fn fits(incoming: &IncomingEvent, plan: &Plan) -> bool {
    let event = &incoming.event;
    let at_receipt = Version::from_datetime(incoming.received_at);
    incoming.identity() == Identity::OfBody
        && event.entities.iter().all(|u| u.version != at_receipt)
        && distinct_keys(event).len() <= 1
        && needs_read(event).is_empty()
        && plan.entities.iter().all(|e| e.item.is_some())
}

/// What became of a conditional single write whose condition may fail.
enum Written {
    Yes,
    /// The condition failed; the stored item, when one is there.
    ConditionFailed(Option<Item>),
}

impl DynamoDbStore {
    /// Writes `plan` in order: entity, transitions not yet stored, event item.
    pub(super) async fn write_ordered(
        &self,
        incoming: &IncomingEvent,
        plan: &Plan,
        stored_transitions: &HashSet<String>,
    ) -> Result<Attempt, StoreError> {
        let key = incoming.event.key();
        for write in &plan.entities {
            if let Written::ConditionFailed(stored) = self.update_entity(write, &key).await? {
                let Some(stored) = stored else {
                    return Ok(Attempt::Conflict);
                };
                let (at, current) = current_of(stored)?;
                // this event's own earlier write: done already; else a newer write, decided on
                if current.last_event_key != key {
                    let stream = format!("{}#{}", at.pk, at.sk);
                    return Ok(Attempt::Changed(HashMap::from([(stream, Some(current))])));
                }
            }
        }
        for t in &plan.transitions {
            if !stored_transitions.contains(&t.message.transition_id) {
                // A transition already stored (an earlier attempt, or an event whose record
                // expired) is kept as it is.
                self.put_transition(t, plan.expires_at).await?;
            }
        }
        let event = EventItem::of(incoming, plan.status, &plan.transitions)?;
        let condition = Condition::not_exists("event_key");
        match self
            .put_single(&self.tables.events, to_item(&event)?, condition)
            .await?
        {
            Written::Yes => Ok(Attempt::Committed),
            Written::ConditionFailed(stored) => Ok(Attempt::Duplicate(stored.map(Box::new))),
        }
    }

    /// The entity's upsert under its guard, failing also when the item already is this
    /// event's write (so a retry does not write it twice).
    async fn update_entity(
        &self,
        write: &EntityWrite,
        event: &EventKey,
    ) -> Result<Written, StoreError> {
        let Some(entity) = &write.item else {
            return Err(StoreError::Corrupt(
                "an ordered write needs the entity's item".to_string(),
            ));
        };
        let mut condition = write.guard.condition();
        condition.expression = format!(
            "({}) AND (attribute_not_exists(#own) OR #own <> :own)",
            condition.expression
        );
        let condition = condition
            .name("#own", "last_event_key")
            .value(":own", AttributeValue::S(event.to_string()));
        let upsert = EntityUpsert::of(&write.key, entity, condition)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.entities)
            .set_key(Some(upsert.key))
            .update_expression(upsert.expression)
            .condition_expression(upsert.condition.expression)
            .set_expression_attribute_names(Some(upsert.condition.names))
            .set_expression_attribute_values(Some(upsert.condition.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        written("UpdateItem", result, |e| match e {
            UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
            _ => None,
        })
    }

    async fn put_transition(
        &self,
        t: &TransitionRecord,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let item = to_item(&TransitionItem::from_record(t, expires_at)?)?;
        self.put_single(&self.tables.transitions, item, Condition::not_exists("pk"))
            .await
            .map(|_| ())
    }

    /// A conditional `PutItem`; a failed condition hands back the stored item.
    async fn put_single(
        &self,
        table: &str,
        item: Item,
        condition: Condition,
    ) -> Result<Written, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(Some(condition.values).filter(|v| !v.is_empty()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        written("PutItem", result, |e| match e {
            PutItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
            _ => None,
        })
    }
}

/// A single write's result: written, its condition failed (`failed` reads the stored item
/// out of the service error), or any other error: unavailable.
fn written<O, E, R>(
    operation: &str,
    result: Result<O, SdkError<E, R>>,
    failed: impl Fn(&E) -> Option<Option<Item>>,
) -> Result<Written, StoreError>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(Written::Yes),
        Err(e) => match e.as_service_error().and_then(failed) {
            Some(stored) => Ok(Written::ConditionFailed(stored)),
            None => Err(unavailable(operation, e)),
        },
    }
}
