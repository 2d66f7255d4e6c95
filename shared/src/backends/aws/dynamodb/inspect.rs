//! The operator side of the DynamoDB store (see `store::inspect`).
//!
//! Listing: the events table has no index by time (an index would cost write capacity on
//! every event, for an occasional operator query), so a page is one Scan of the table —
//! paginated, only the summary attributes projected — keeping the `limit` newest (or oldest)
//! events past the cursor in a bounded heap. Memory is O(limit) whatever the table size; the
//! cost is one read of the table per page (README: Operating).

use std::collections::{BTreeMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{from_item, EventItem, ItemKey, TransitionItem};
use super::plan::{self, distinct_keys, Condition};
use super::transact::Attempt;
use super::{scan_items, unavailable, DynamoDbStore, Item, MAX_ATTEMPTS};
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey, Source, Tenant};
use crate::store::{
    reapplied_status, DeliveryOutcome, EventFilter, EventPage, EventStatus, EventSummary,
    IncomingEvent, Order, Reapplied, Replayable, TransitionSelector,
};
use crate::version::Version;

/// What a page scan reads of each event.
#[derive(Debug, serde::Deserialize)]
struct SummaryItem {
    event_key: String,
    source: String,
    tenant: String,
    event_type: String,
    status: String,
    received_at: i64,
    #[serde(default)]
    entity_keys: Vec<String>,
}

/// A position in arrival order: (received_at, event_key).
type Position = (i64, String);

fn parse_cursor(raw: &str) -> Result<Position, StoreError> {
    let bad = || StoreError::BadCursor(raw.to_string());
    let (at, key) = raw
        .strip_prefix('t')
        .ok_or_else(bad)?
        .split_once('/')
        .ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, key.to_string()))
}

impl DynamoDbStore {
    pub(super) async fn list_events_page(
        &self,
        filter: &EventFilter,
        order: Order,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let beyond = |p: &Position| match (&after, order) {
            (None, _) => true,
            (Some(a), Order::NewestFirst) => p < a,
            (Some(a), Order::OldestFirst) => p > a,
        };
        // The `limit + 1` best events seen so far (one more tells a next page exists): the
        // heap is all that is kept, whatever the table's size.
        let mut best: BTreeMap<Position, EventSummary> = BTreeMap::new();
        scan_items(self.summary_scan(), |item| {
            let summary = summary(from_item(item)?)?;
            let position = (summary.received_at, summary.event_key.to_string());
            if !filter.matches(&summary) || !beyond(&position) {
                return Ok(());
            }
            best.insert(position, summary);
            if best.len() > limit + 1 {
                match order {
                    Order::NewestFirst => best.pop_first(),
                    Order::OldestFirst => best.pop_last(),
                };
            }
            Ok(())
        })
        .await?;
        let mut events: Vec<EventSummary> = best.into_values().collect();
        if order == Order::NewestFirst {
            events.reverse();
        }
        let more = events.len() > limit;
        events.truncate(limit);
        let next = more
            .then(|| {
                events
                    .last()
                    .map(|e| format!("t{}/{}", e.received_at, e.event_key))
            })
            .flatten();
        Ok(EventPage { events, next })
    }

    /// Events per (source, status) among those `filter` selects: one Scan of the summaries.
    pub(super) async fn count_events_scan(
        &self,
        filter: &EventFilter,
    ) -> Result<crate::store::EventCounts, StoreError> {
        let mut counts = BTreeMap::new();
        scan_items(self.summary_scan(), |item| {
            let summary = summary(from_item(item)?)?;
            if filter.matches(&summary) {
                *counts.entry((summary.source, summary.status)).or_insert(0) += 1;
            }
            Ok(())
        })
        .await?;
        Ok(counts)
    }

    /// Transitions queued, not `published`, of a version before `cutoff` (unix seconds): one
    /// Scan of the transitions table reading only keys (an operator's occasional question,
    /// decision 18: no index costs a write on every transition).
    pub(super) async fn undelivered_scan(&self, cutoff: i64) -> Result<u64, StoreError> {
        let before =
            crate::version::Version::from_micros(cutoff.saturating_mul(1_000_000)).sort_key();
        let mut count = 0;
        let scan = self
            .client
            .scan()
            .table_name(&self.tables.transitions)
            .projection_expression("sk")
            .filter_expression("queued = :t AND published = :f")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":f", AttributeValue::Bool(false));
        scan_items(scan, |item| {
            if let Some(AttributeValue::S(sk)) = item.get("sk") {
                if sk.as_str() < before.as_str() {
                    count += 1;
                }
            }
            Ok(())
        })
        .await?;
        Ok(count)
    }

    /// A Scan of the events table reading only what a list line shows (not the bodies).
    fn summary_scan(&self) -> aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.tables.events)
            .projection_expression("#k, #s, #t, #y, #st, #r, #e");
        for (placeholder, name) in [
            ("#k", "event_key"),
            ("#s", "source"),
            ("#t", "tenant"),
            ("#y", "event_type"),
            ("#st", "status"),
            ("#r", "received_at"),
            ("#e", "entity_keys"),
        ] {
            scan = scan.expression_attribute_names(placeholder, name);
        }
        scan
    }

    /// Re-applies a stored event: the rules against consistent reads of every entity, the
    /// event item rewritten (status, entities, transition keys) on condition it still exists.
    pub(super) async fn reapply_event(
        &self,
        incoming: &IncomingEvent,
    ) -> Result<Option<Reapplied>, StoreError> {
        let event = &incoming.event;
        let key = event.key();
        let Some(stored) = self.event_item(&key, true).await? else {
            return Ok(None);
        };
        let mut known = self.read_entities(&distinct_keys(event)).await?;
        let mut existing = HashSet::new();
        for attempt in 0..MAX_ATTEMPTS {
            let plan = plan::plan(event, super::received_version(incoming), &known)
                .expiring(incoming.entity_expires_at);
            let was = EventStatus::parse(&stored.status).unwrap_or(EventStatus::Applied);
            let (item, status) = reapplied_item(&stored, incoming, &plan, was);
            let put = self.put(
                &self.tables.events,
                super::items::to_item(&item)?,
                Condition::exists("event_key"),
                false,
            )?;
            let transactions = self.transactions_with(&plan, &existing, put)?;
            match self.write(transactions).await? {
                Attempt::Committed => {
                    return Ok(Some(Reapplied {
                        was,
                        status,
                        entities_were: super::items::entity_keys(&stored.entity_keys)?,
                        entities: super::items::entity_keys(&item.entity_keys)?,
                        new_transitions: plan
                            .transitions
                            .into_iter()
                            .filter(|t| !existing.contains(&t.message.transition_id))
                            .collect(),
                    }))
                }
                // The event item's condition failed: it expired (TTL) meanwhile.
                Attempt::Duplicate(_) => return Ok(None),
                Attempt::TransitionsExist(ids) => existing.extend(ids),
                // reprocess writes transactions only: a conflict is read again
                Attempt::Conflict | Attempt::Changed(_) => {
                    if attempt > 0 {
                        super::backoff(attempt).await;
                    }
                    known = self.read_entities(&distinct_keys(event)).await?;
                }
            }
        }
        Err(StoreError::Contention(key.to_string()))
    }

    /// The transitions a selector names. By entity this is one Query; by id or window a
    /// Scan with a filter (operator queries; no index is paid for on the ingest path).
    pub(super) async fn replayable_transitions(
        &self,
        selector: &TransitionSelector,
    ) -> Result<Vec<Replayable>, StoreError> {
        let items = match selector {
            TransitionSelector::Entity(key) => self.query_transitions(&key.stream()).await?,
            TransitionSelector::Id(id) => {
                self.scan_transitions(
                    "#id = :id",
                    &[("#id", "transition_id")],
                    vec![(":id", AttributeValue::S(id.clone()))],
                )
                .await?
            }
            TransitionSelector::Undelivered { since, until } => {
                let bound = |unix: i64| {
                    AttributeValue::S(
                        Version::from_micros(unix.saturating_mul(1_000_000)).sort_key(),
                    )
                };
                self.scan_transitions(
                    "#q = :q AND (attribute_not_exists(#n) OR #n.#o <> :d) AND #sk BETWEEN :a AND :b",
                    &[("#q", "queued"), ("#n", "notification"), ("#o", "outcome"), ("#sk", "sk")],
                    vec![
                        (":q", AttributeValue::Bool(true)),
                        (
                            ":d",
                            AttributeValue::S(DeliveryOutcome::Delivered.as_str().into()),
                        ),
                        (":a", bound(since.unwrap_or(0))),
                        (":b", bound(until.unwrap_or(i64::MAX / 1_000_000))),
                    ],
                )
                .await?
            }
        };
        let mut out: Vec<Replayable> = items
            .into_iter()
            .map(replayable)
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (&a.stream, &a.transition.sort).cmp(&(&b.stream, &b.transition.sort)));
        Ok(out)
    }

    /// An entity's transitions in version order (one paginated Query).
    pub(super) async fn query_transitions(
        &self,
        stream: &str,
    ) -> Result<Vec<TransitionItem>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.transitions)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", AttributeValue::S(stream.to_string()))
            .consistent_read(true)
            .scan_index_forward(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(from_item(item.map_err(|e| unavailable("Query", e))?)?);
        }
        Ok(out)
    }

    async fn scan_transitions(
        &self,
        filter: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Vec<TransitionItem>, StoreError> {
        self.filtered_scan(&self.tables.transitions, filter, None, names, values)
            .await?
            .into_iter()
            .map(from_item::<TransitionItem>)
            .collect()
    }

    pub(super) async fn reset_transition(
        &self,
        stream: &str,
        sort: &str,
    ) -> Result<(), StoreError> {
        let key: Item = super::items::to_item(&ItemKey {
            pk: stream.to_string(),
            sk: sort.to_string(),
        })?;
        self.client
            .update_item()
            .table_name(&self.tables.transitions)
            .set_key(Some(key))
            .update_expression("SET #p = :f REMOVE #n")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#p", "published")
            .expression_attribute_names("#n", "notification")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .send()
            .await
            .map_err(|e| unavailable("UpdateItem", e))?;
        Ok(())
    }
}

/// The stored event item as reprocessing leaves it: its status, entities, and the keys of
/// every transition it has recorded (so a duplicate still finds them all).
fn reapplied_item(
    stored: &EventItem,
    incoming: &IncomingEvent,
    plan: &plan::Plan,
    was: EventStatus,
) -> (EventItem, EventStatus) {
    let mut item = stored.clone();
    item.entity_keys = incoming
        .event
        .entities
        .iter()
        .map(|u| u.key.stream())
        .collect();
    let status = reapplied_status(was, plan.status, &stored.entity_keys, &item.entity_keys);
    item.status = status.as_str().to_string();
    for t in &plan.transitions {
        let k = ItemKey {
            pk: t.stream.clone(),
            sk: t.sort.clone(),
        };
        if !item.transition_keys.contains(&k) {
            item.transition_keys.push(k);
        }
    }
    (item, status)
}

fn summary(item: SummaryItem) -> Result<EventSummary, StoreError> {
    Ok(EventSummary {
        status: EventStatus::parse(&item.status).unwrap_or(EventStatus::Applied),
        event_key: EventKey::from_stored(item.event_key),
        source: Source::parse(&item.source).ok_or(StoreError::Corrupt(item.source))?,
        tenant: Tenant::from_stored(item.tenant),
        event_type: item.event_type,
        received_at: item.received_at,
        entities: item.entity_keys.len(),
    })
}

fn replayable(item: TransitionItem) -> Result<Replayable, StoreError> {
    let message = if item.queued {
        Some(item.message()?)
    } else {
        None
    };
    Ok(Replayable {
        stream: EntityKey::parse(&item.pk).ok_or_else(|| StoreError::Corrupt(item.pk.clone()))?,
        message,
        transition: item.into_stored()?,
    })
}
