//! The operator's port over the embedded store: every read and repair runs as a job of
//! the writer thread (`SqliteStore::with_conn`), so it sees every committed event.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::error::unavailable;
use super::inspect;
use super::persist::{reapply_tx, Prepared};
use super::store::SqliteStore;
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey};
use crate::store::{
    Detail, EventFilter, EventPage, IncomingEvent, Listed, OperatorStore, Order, PurgeTarget,
    Purged, Reapplied, Replayable, StoredEntity, StoredEvent, StoredTransition, TransitionSelector,
};

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn event(&self, key: &EventKey) -> Result<Option<StoredEvent>, StoreError> {
        let key = key.to_string();
        self.with_conn(move |c| inspect::stored_event(c, &key))
            .await?
            .map(inspect::RawEvent::into_stored)
            .transpose()
    }

    async fn entity(&self, key: &EntityKey) -> Result<Option<StoredEntity>, StoreError> {
        let (pk, sk) = (key.partition(), key.sort());
        self.with_conn(move |c| {
            let row = c
                .query_row(
                    "SELECT version, state, data, last_event_key FROM entities WHERE pk = ?1 AND sk = ?2",
                    params![pk, sk],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)),
                )
                .optional()
                .map_err(unavailable)?;
            row.map(|(version, state, data, last_event_key)| {
                Ok(StoredEntity {
                    version,
                    state,
                    data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    last_event_key: EventKey::from_stored(last_event_key),
                })
            })
            .transpose()
        })
        .await
    }

    async fn transitions(&self, key: &EntityKey) -> Result<Vec<StoredTransition>, StoreError> {
        let pk = key.stream();
        self.with_conn(move |c| {
            let sql = format!(
                "SELECT {} FROM transitions WHERE pk = ?1 ORDER BY sk",
                inspect::HISTORY_COLUMNS
            );
            let mut stmt = c.prepare_cached(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map([&pk], |r| inspect::stored_transition(r, 0))
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        order: Order,
        limit: usize,
        cursor: Option<&str>,
        detail: Detail,
    ) -> Result<Listed, StoreError> {
        let (filter, after) = (filter.clone(), inspect::parse_cursor(cursor)?);
        if detail == Detail::Summary {
            return self
                .with_conn(move |c| inspect::list_events(c, &filter, order, limit, after))
                .await
                .map(Listed::Summaries);
        }
        let (raw, next) = self
            .with_conn(move |c| inspect::raw_page(c, &filter, order, limit, after))
            .await?;
        let events = raw
            .into_iter()
            .map(inspect::RawEvent::into_stored)
            .collect::<Result<_, _>>()?;
        Ok(Listed::Whole(EventPage {
            events,
            next: next.map(|n| format!("r{n}")),
        }))
    }

    async fn waiting_transitions(&self, cutoff: i64) -> Result<crate::store::Waiting, StoreError> {
        self.with_conn(move |c| inspect::not_taken(c, cutoff))
            .await
            .map(crate::store::Waiting::NotTaken)
    }

    async fn count_events(
        &self,
        filter: &EventFilter,
    ) -> Result<crate::store::EventCounts, StoreError> {
        let filter = filter.clone();
        self.with_conn(move |c| inspect::count_events(c, &filter))
            .await
    }

    async fn reapply(&self, incoming: &IncomingEvent) -> Result<Option<Reapplied>, StoreError> {
        let prepared = Prepared::of(incoming);
        let event = incoming.event.clone();
        self.with_conn(move |c| reapply_tx(c, &event, &prepared))
            .await
    }

    async fn replayable(
        &self,
        selector: &TransitionSelector,
    ) -> Result<Vec<Replayable>, StoreError> {
        let selector = selector.clone();
        self.with_conn(move |c| inspect::replayable(c, &selector))
            .await
    }

    async fn reset_delivery(&self, stream: &EntityKey, sort: &str) -> Result<(), StoreError> {
        let (stream, sort) = (stream.stream(), sort.to_string());
        self.with_conn(move |c| inspect::reset_delivery(c, &stream, &sort))
            .await
    }

    async fn purge(&self, target: &PurgeTarget, dry_run: bool) -> Result<Purged, StoreError> {
        let target = target.clone();
        let mut purged = self
            .with_conn(move |c| super::purge::purge(c, &target, dry_run))
            .await?;
        if dry_run {
            return Ok(purged);
        }
        // After the commit, outside the writer's transaction.
        let conn = self.conn.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let c = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let path = c.path().map(str::to_string);
            super::purge::truncate_wal(&c, path.as_deref())
        })
        .await
        .map_err(unavailable)?;
        purged.kept.extend(kept);
        Ok(purged)
    }
}
