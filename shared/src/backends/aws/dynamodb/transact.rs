//! Writing a plan: its items as `TransactWriteItems` (chunked past the limit, the event item
//! last as the commit marker), and what a cancelled transaction's reasons mean.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::items::{
    approx_size, to_item, EntityItem, EventItem, ItemKey, TransitionItem, LEGACY_ENTITY_DATA,
};
use super::plan::{Condition, Current, EntityWrite, Plan};
use super::Item;
use super::{build_error, unavailable, DynamoDbStore, MAX_TRANSACTION_BYTES};
use crate::error::StoreError;
use crate::store::{IncomingEvent, TransitionRecord};

/// What one item of a transaction is, to read its cancellation reason.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    Event,
    Entity,
    /// A transition, by id.
    Transition(String),
}

/// The outcome of one attempt to write a plan.
#[derive(Debug, PartialEq)]
pub(super) enum Attempt {
    Committed,
    /// The event is stored already; the stored item when the reason carried it.
    Duplicate(Option<Box<Item>>),
    /// An entity changed under us (or a transaction conflict): read and plan again.
    Conflict,
    /// An entity changed under a single write: plan again on what its failed condition
    /// returned (by stream), which is what a consistent read would say.
    Changed(HashMap<String, Option<Current>>),
    /// These transitions are stored already: plan again without writing them.
    TransitionsExist(Vec<String>),
}

/// Reads the cancellation reasons of a transaction of `ops` (same order).
pub(super) fn classify(ops: &[Op], reasons: &[CancellationReason]) -> Result<Attempt, StoreError> {
    let mut conflict = false;
    let mut existing = Vec::new();
    let mut failure = None;
    for (op, reason) in ops.iter().zip(reasons) {
        match (reason.code().unwrap_or("None"), op) {
            ("None", _) => {}
            ("ConditionalCheckFailed", Op::Event) => {
                return Ok(Attempt::Duplicate(reason.item().cloned().map(Box::new)))
            }
            ("ConditionalCheckFailed", Op::Entity) | ("TransactionConflict", _) => conflict = true,
            ("ConditionalCheckFailed", Op::Transition(id)) => existing.push(id.clone()),
            (code, _) => {
                failure.get_or_insert_with(|| {
                    format!(
                        "dynamodb transaction cancelled: {code}: {}",
                        reason.message().unwrap_or("")
                    )
                });
            }
        }
    }
    if let Some(message) = failure {
        return Err(StoreError::Unavailable(message));
    }
    if conflict {
        Ok(Attempt::Conflict)
    } else if !existing.is_empty() {
        Ok(Attempt::TransitionsExist(existing))
    } else {
        Err(StoreError::Unavailable(
            "dynamodb transaction cancelled without a reason".to_string(),
        ))
    }
}

/// Splits the writes into transactions of at most `limit` items and
/// [`MAX_TRANSACTION_BYTES`], the event item last in the final one (the commit marker).
pub(super) fn chunk(
    writes: Vec<(Op, TransactWriteItem, usize)>,
    event: (Op, TransactWriteItem, usize),
    limit: usize,
) -> Vec<Vec<(Op, TransactWriteItem)>> {
    let mut chunks: Vec<Vec<(Op, TransactWriteItem)>> = Vec::new();
    let mut current: Vec<(Op, TransactWriteItem)> = Vec::new();
    let mut bytes = 0;
    let event_bytes = event.2;
    for (op, item, size) in writes {
        if !current.is_empty() && (current.len() >= limit || bytes + size > MAX_TRANSACTION_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((op, item));
    }
    if !current.is_empty()
        && (current.len() + 1 > limit || bytes + event_bytes > MAX_TRANSACTION_BYTES)
    {
        chunks.push(std::mem::take(&mut current));
    }
    // The event item first within its transaction (index 0 in the reasons), written with
    // the final chunk.
    current.insert(0, (event.0, event.1));
    chunks.push(current);
    chunks
}

/// An entity's upsert, in a transaction or alone: an update expression setting every
/// attribute of the serialised [`EntityItem`] but the key (one without a state leaves the
/// stored state as it is) and removing the earlier form's text `data`, under the guard's
/// condition (their placeholders share one map).
pub(super) struct EntityUpsert {
    pub(super) key: Item,
    pub(super) expression: String,
    pub(super) condition: Condition,
    /// Approximate size of the item written.
    pub(super) size: usize,
}

impl EntityUpsert {
    pub(super) fn of(
        key: &ItemKey,
        entity: &EntityItem,
        mut condition: Condition,
    ) -> Result<Self, StoreError> {
        let item = to_item(entity)?;
        let size = approx_size(&item);
        let mut attributes: Vec<(String, AttributeValue)> = item
            .into_iter()
            .filter(|(name, _)| name != "pk" && name != "sk")
            .collect();
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut sets = Vec::with_capacity(attributes.len());
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            condition = condition
                .name(&format!("#u{i}"), &name)
                .value(&format!(":u{i}"), value);
            sets.push(format!("#u{i} = :u{i}"));
        }
        Ok(EntityUpsert {
            key: key.to_item()?,
            expression: format!("SET {} REMOVE #legacy", sets.join(", ")),
            condition: condition.name("#legacy", LEGACY_ENTITY_DATA),
            size,
        })
    }
}

impl DynamoDbStore {
    /// The transaction items of one attempt, split into transactions (see the module doc).
    pub(super) fn transactions(
        &self,
        incoming: &IncomingEvent,
        plan: &Plan,
        stored_transitions: &HashSet<String>,
    ) -> Result<Vec<Vec<(Op, TransactWriteItem)>>, StoreError> {
        let event_item = EventItem::of(incoming, plan.status, &plan.transitions)?;
        let event_put = self.put(
            &self.tables.events,
            to_item(&event_item)?,
            Condition::not_exists("event_key"),
            true,
        )?;
        self.transactions_with(plan, stored_transitions, event_put)
    }

    /// [`Self::transactions`] with the event item's write given: a new event's conditional
    /// insert, or a reprocessed event's rewrite of the item that is there.
    pub(super) fn transactions_with(
        &self,
        plan: &Plan,
        stored_transitions: &HashSet<String>,
        (event_put, event_size): (TransactWriteItem, usize),
    ) -> Result<Vec<Vec<(Op, TransactWriteItem)>>, StoreError> {
        let transition_write =
            |t: &TransitionRecord| -> Result<(Op, TransactWriteItem, usize), StoreError> {
                let item = to_item(&TransitionItem::from_record(t, plan.expires_at)?)?;
                let (put, size) = self.put(
                    &self.tables.transitions,
                    item,
                    Condition::not_exists("pk"),
                    false,
                )?;
                Ok((Op::Transition(t.message.transition_id.clone()), put, size))
            };
        let pending: Vec<&TransitionRecord> = plan
            .transitions
            .iter()
            .filter(|t| !stored_transitions.contains(&t.message.transition_id))
            .collect();
        let mut placed = vec![false; pending.len()];
        // Each entity followed by its transitions, so a split keeps them together.
        let mut writes = Vec::with_capacity(plan.entities.len() + pending.len());
        for write in &plan.entities {
            let stream = format!("{}#{}", write.key.pk, write.key.sk);
            let (item, size) = self.entity_write(write)?;
            writes.push((Op::Entity, item, size));
            for (i, t) in pending.iter().enumerate() {
                if !placed[i] && t.stream == stream {
                    writes.push(transition_write(t)?);
                    placed[i] = true;
                }
            }
        }
        for (i, t) in pending.iter().enumerate() {
            if !placed[i] {
                writes.push(transition_write(t)?);
            }
        }
        Ok(chunk(
            writes,
            (Op::Event, event_put, event_size),
            self.transaction_limit,
        ))
    }

    /// An entity's transaction item: an `Update` setting every attribute of the serialised
    /// [`EntityItem`] (one without a state leaves the stored state as it is) and removing
    /// the earlier form's text `data`, or a `ConditionCheck` of the guard when the entity is
    /// not written.
    pub(super) fn entity_write(
        &self,
        write: &EntityWrite,
    ) -> Result<(TransactWriteItem, usize), StoreError> {
        let condition = write.guard.condition();
        let key = write.key.to_item()?;
        let Some(entity) = &write.item else {
            let check = ConditionCheck::builder()
                .table_name(&self.tables.entities)
                .set_key(Some(key))
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values(Some(condition.values).filter(|v| !v.is_empty()))
                .build()
                .map_err(build_error)?;
            return Ok((
                TransactWriteItem::builder().condition_check(check).build(),
                200,
            ));
        };
        let upsert = EntityUpsert::of(&write.key, entity, condition)?;
        let size = upsert.size;
        let update = Update::builder()
            .table_name(&self.tables.entities)
            .set_key(Some(upsert.key))
            .update_expression(upsert.expression)
            .condition_expression(upsert.condition.expression)
            .set_expression_attribute_names(Some(upsert.condition.names))
            .set_expression_attribute_values(Some(upsert.condition.values))
            .build()
            .map_err(build_error)?;
        Ok((TransactWriteItem::builder().update(update).build(), size))
    }

    /// One conditional `Put` of a transaction, and its approximate size.
    pub(super) fn put(
        &self,
        table: &str,
        item: Item,
        condition: Condition,
        return_old: bool,
    ) -> Result<(TransactWriteItem, usize), StoreError> {
        let size = approx_size(&item);
        let mut put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names));
        if !condition.values.is_empty() {
            put = put.set_expression_attribute_values(Some(condition.values));
        }
        if return_old {
            put = put.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        let put = put.build().map_err(build_error)?;
        Ok((TransactWriteItem::builder().put(put).build(), size))
    }

    /// Sends an attempt's transactions in order; the first that is cancelled decides.
    pub(super) async fn write(
        &self,
        transactions: Vec<Vec<(Op, TransactWriteItem)>>,
    ) -> Result<Attempt, StoreError> {
        for transaction in transactions {
            let (ops, items): (Vec<Op>, Vec<TransactWriteItem>) = transaction.into_iter().unzip();
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => {}
                Err(err) => {
                    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                        err.as_service_error()
                    {
                        return classify(&ops, cancelled.cancellation_reasons());
                    }
                    return Err(unavailable("TransactWriteItems", err));
                }
            }
        }
        Ok(Attempt::Committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_put_the_event_last_and_respect_the_limit() {
        let put = || TransactWriteItem::builder().build();
        let writes: Vec<_> = (0..7).map(|_| (Op::Entity, put(), 10)).collect();
        let chunks = chunk(writes, (Op::Event, put(), 10), 3);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 2]);
        assert_eq!(chunks.last().unwrap()[0].0, Op::Event);
        assert!(chunks[..2]
            .iter()
            .flatten()
            .all(|(op, _)| *op == Op::Entity));
        // everything fits: one transaction, event first
        let writes: Vec<_> = (0..2).map(|_| (Op::Entity, put(), 10)).collect();
        let chunks = chunk(writes, (Op::Event, put(), 10), 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 3);
        assert_eq!(chunks[0][0].0, Op::Event);
        // a full last chunk leaves the event on its own
        let writes: Vec<_> = (0..3).map(|_| (Op::Entity, put(), 10)).collect();
        let sizes: Vec<usize> = chunk(writes, (Op::Event, put(), 10), 3)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![3, 1]);
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellation_reasons_tell_duplicates_from_conflicts() {
        let ops = [Op::Event, Op::Entity, Op::Transition("tr_1".into())];
        let dup = classify(
            &ops,
            &[
                reason("ConditionalCheckFailed"),
                reason("ConditionalCheckFailed"),
                reason("None"),
            ],
        )
        .unwrap();
        assert_eq!(dup, Attempt::Duplicate(None));
        let conflict = classify(
            &ops,
            &[
                reason("None"),
                reason("ConditionalCheckFailed"),
                reason("None"),
            ],
        )
        .unwrap();
        assert_eq!(conflict, Attempt::Conflict);
        let busy = classify(
            &ops,
            &[
                reason("None"),
                reason("TransactionConflict"),
                reason("None"),
            ],
        )
        .unwrap();
        assert_eq!(busy, Attempt::Conflict);
        let exists = classify(
            &ops,
            &[
                reason("None"),
                reason("None"),
                reason("ConditionalCheckFailed"),
            ],
        )
        .unwrap();
        assert_eq!(exists, Attempt::TransitionsExist(vec!["tr_1".into()]));
        let throttled = classify(
            &ops,
            &[reason("ThrottlingError"), reason("None"), reason("None")],
        );
        assert!(matches!(throttled, Err(StoreError::Unavailable(_))));
    }
}
