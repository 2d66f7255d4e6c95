//! The operator's port over the DynamoDB store: the reads and repairs of `inspect` and
//! `purge`, and the single-item reads an explanation needs.

use async_trait::async_trait;

use super::items::{self, from_item, EntityItem, ItemKey, TransitionItem};
use super::DynamoDbStore;
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey};
use crate::store::{
    Detail, EventFilter, EventPage, IncomingEvent, Listed, OperatorStore, Order, PurgeTarget,
    Purged, Reapplied, Replayable, StoredEntity, StoredEvent, StoredTransition, TransitionSelector,
};

#[async_trait]
impl OperatorStore for DynamoDbStore {
    async fn event(&self, key: &EventKey) -> Result<Option<StoredEvent>, StoreError> {
        self.event_item(key, true)
            .await?
            .map(items::stored_event)
            .transpose()
    }

    async fn entity(&self, key: &EntityKey) -> Result<Option<StoredEntity>, StoreError> {
        let Some(item) = self
            .get(&self.tables.entities, &ItemKey::of_entity(key))
            .await?
        else {
            return Ok(None);
        };
        let item: EntityItem = from_item(item)?;
        let data = item.data()?;
        Ok(Some(StoredEntity {
            version: item.version,
            state: item.state,
            data,
            last_event_key: EventKey::from_stored(item.last_event_key),
        }))
    }

    async fn transitions(&self, key: &EntityKey) -> Result<Vec<StoredTransition>, StoreError> {
        Ok(self
            .query_transitions(&key.stream())
            .await?
            .into_iter()
            .map(TransitionItem::into_stored)
            .collect::<Result<_, _>>()?)
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        order: Order,
        limit: usize,
        cursor: Option<&str>,
        detail: Detail,
    ) -> Result<Listed, StoreError> {
        let page = self.list_events_page(filter, order, limit, cursor).await?;
        if detail == Detail::Summary {
            return Ok(Listed::Summaries(page));
        }
        // A page of summaries, then each event read whole (consistently).
        let mut events = Vec::with_capacity(page.events.len());
        for e in &page.events {
            if let Some(item) = self.event_item(&e.event_key, true).await? {
                events.push(items::stored_event(item)?);
            }
        }
        Ok(Listed::Whole(EventPage {
            events,
            next: page.next,
        }))
    }

    async fn waiting_transitions(&self, cutoff: i64) -> Result<crate::store::Waiting, StoreError> {
        self.undelivered_scan(cutoff)
            .await
            .map(crate::store::Waiting::Undelivered)
    }

    async fn count_events(
        &self,
        filter: &EventFilter,
    ) -> Result<crate::store::EventCounts, StoreError> {
        self.count_events_scan(filter).await
    }

    async fn reapply(&self, incoming: &IncomingEvent) -> Result<Option<Reapplied>, StoreError> {
        self.reapply_event(incoming).await
    }

    async fn replayable(
        &self,
        selector: &TransitionSelector,
    ) -> Result<Vec<Replayable>, StoreError> {
        self.replayable_transitions(selector).await
    }

    async fn reset_delivery(&self, stream: &EntityKey, sort: &str) -> Result<(), StoreError> {
        self.reset_transition(&stream.stream(), sort).await
    }

    async fn purge(&self, target: &PurgeTarget, dry_run: bool) -> Result<Purged, StoreError> {
        self.purge_items(target, dry_run).await
    }
}
