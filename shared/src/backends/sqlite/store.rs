//! The embedded store: one SQLite file in WAL mode. Each event is persisted atomically as one
//! job of a group-committed transaction ([`super::writer`], which undoes a failing job
//! alone): dedupe, entity upsert and transition record stand or fall together, and
//! concurrent duplicates serialise on the single writer (one winner).
//!
//! Durability: `synchronous=NORMAL` in WAL mode survives a process crash (every committed
//! event is in the WAL); an OS crash or power loss can lose the last commits. Set
//! `SQLITE_SYNC=full` to fsync every commit.
//!
//! The same file holds the embedded transition queue (the `outbox` table, see
//! [`super::outbox`]), written in the event's own job: a transactional outbox, so an accepted
//! event's transitions are queued exactly when the event is stored.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::checkpoint::{WriterPause, WRITER_CHECKPOINT_PAGES};
use super::error::unavailable;
use super::persist::{persist_tx, record_json, Prepared};
use super::schema::{migrate, SCHEMA};
use super::writer::{exec, GroupCommit};
use crate::error::StoreError;
use crate::model::{EventKey, TransitionMessage};
use crate::store::{
    probe_key, transition_key, Consistency, DeliveryRecord, DeliveryStore, HealthProbe,
    IdentityEpoch, IncomingEvent, IngestStore, OperatorStore, PersistOutcome,
};

/// `(pk, sk, delivery record JSON)` of one settled transition.
type DeliveryRow = (String, String, String);

/// SQLite implementation of every store port ([`crate::store::Store`]).
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) conn: Arc<Mutex<Connection>>,
    writer: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, its parent folder and the schema.
    pub fn open(path: &Path, full_sync: bool) -> Result<Self, StoreError> {
        // Owner-only: raw bodies and signing secrets (files.rs).
        super::files::prepare_private(path).map_err(unavailable)?;
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        // Checkpoints (copying the WAL into the database, with fsyncs) and rewinds run on
        // their own thread and connection (`checkpoint::spawn`); the writer's own
        // checkpoint is a safety net past `WRITER_CHECKPOINT_PAGES`.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(unavailable)?;
        let checkpointer = Connection::open(path).map_err(unavailable)?;
        let pause = Arc::new(WriterPause::default());
        let store = Self::init(conn, full_sync, pause.clone())?;
        if !super::checkpoint::spawn(checkpointer, path, Arc::downgrade(&store.conn), pause) {
            // No background thread: the writer checkpoints at SQLite's usual threshold.
            let conn = store
                .conn
                .lock()
                .map_err(|_| unavailable("connection lock poisoned"))?;
            conn.pragma_update(None, "wal_autocheckpoint", 1000)
                .map_err(unavailable)?;
        }
        Ok(store)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(
            Connection::open_in_memory().map_err(unavailable)?,
            false,
            Arc::default(),
        )
    }

    fn init(
        conn: Connection,
        full_sync: bool,
        pause: Arc<WriterPause>,
    ) -> Result<Self, StoreError> {
        conn.pragma_update(
            None,
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" },
        )
        .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        // A deleted row's bytes are overwritten, not left in free pages (erasure, §5).
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(unavailable)?;
        // Savepoint journals and sorts in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        migrate(&conn).map_err(unavailable)?;
        conn.set_prepared_statement_cache_capacity(64);
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            writer: GroupCommit::start(conn.clone(), pause),
            conn,
        })
    }

    /// The embedded queue over the same file, sharing this store's writer thread.
    pub fn outbox(&self) -> super::Outbox {
        super::Outbox::new(self.writer.clone())
    }

    /// The credential table of the same file, sharing this store's writer thread.
    pub fn credentials(&self) -> super::SqliteCredentialTable {
        super::SqliteCredentialTable::new(self.writer.clone())
    }

    /// The shared connection (the embedded queue lives in the same file).
    pub fn connection(&self) -> Arc<Mutex<Connection>> {
        self.conn.clone()
    }

    /// Runs `f` in the next group-committed transaction, off the async executor.
    pub(super) async fn with_conn<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer
            .run(move |c| f(c).map_err(|e| e.to_string()))
            .await
            .map_err(StoreError::Unavailable)
    }

    /// Writes delivery outcomes, marking the transitions published.
    async fn write_delivery_rows(&self, rows: Vec<DeliveryRow>) -> Result<(), StoreError> {
        self.with_conn(move |c| {
            for (pk, sk, json) in &rows {
                exec(
                    c,
                    "UPDATE transitions SET notification = ?1, published = 1 WHERE pk = ?2 AND sk = ?3",
                    params![json, pk, sk],
                )
                .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    /// Deletes events, entities and transitions whose TTL has passed (DynamoDB does this
    /// itself), by the rules of [`super::purge::expire`].
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<super::Expired, StoreError> {
        let now = now.unix_timestamp();
        self.with_conn(move |c| super::purge::expire(c, now)).await
    }
}

#[async_trait]
impl IngestStore for SqliteStore {
    async fn identity_epoch(&self, now: OffsetDateTime) -> Result<IdentityEpoch, StoreError> {
        let now = now.unix_timestamp();
        self.with_conn(move |c| super::schema::identity_epoch(c, now).map_err(unavailable))
            .await
    }

    async fn persist(&self, incoming: &IncomingEvent) -> Result<PersistOutcome, StoreError> {
        let prepared = Prepared::of(incoming);
        // The writer job shares the event (an `Arc`) instead of copying it.
        let event = incoming.event.clone();
        self.with_conn(move |c| persist_tx(c, &event, &prepared))
            .await
    }

    async fn stored_body(
        &self,
        key: &EventKey,
        _: Consistency,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.event(key).await?.map(|e| e.raw_body))
    }
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn record_delivery(
        &self,
        message: &TransitionMessage,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        let (pk, sk) = transition_key(message)?;
        self.write_delivery_rows(vec![(pk, sk, record_json(record))])
            .await
    }

    async fn record_deliveries(
        &self,
        records: &[(TransitionMessage, DeliveryRecord)],
    ) -> Result<(), StoreError> {
        // A message that names no transition has nothing to record on; it must not keep
        // the rest of the batch from being recorded.
        let rows = records
            .iter()
            .filter_map(|(message, record)| {
                let (pk, sk) = transition_key(message).ok()?;
                Some((pk, sk, record_json(record)))
            })
            .collect();
        self.write_delivery_rows(rows).await
    }

    async fn delivery(
        &self,
        message: &TransitionMessage,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(self
            .deliveries(std::slice::from_ref(message))
            .await?
            .pop()
            .flatten())
    }

    async fn deliveries(
        &self,
        messages: &[TransitionMessage],
    ) -> Result<Vec<Option<DeliveryRecord>>, StoreError> {
        // A message that names no transition has no recorded outcome (and must not fail the
        // lookup of the rest of the batch).
        let keys: Vec<Option<(String, String)>> =
            messages.iter().map(|m| transition_key(m).ok()).collect();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT notification FROM transitions WHERE pk = ?1 AND sk = ?2")
                .map_err(unavailable)?;
            keys.iter()
                .map(|key| {
                    let Some((pk, sk)) = key else {
                        return Ok(None);
                    };
                    let raw: Option<Option<String>> = stmt
                        .query_row(params![pk, sk], |r| r.get(0))
                        .optional()
                        .map_err(unavailable)?;
                    raw.flatten()
                        .map(|s| {
                            serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string()))
                        })
                        .transpose()
                })
                .collect()
        })
        .await
    }
}

#[async_trait]
impl HealthProbe for SqliteStore {
    async fn probe(&self) -> Result<(), StoreError> {
        self.event(&probe_key()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Lifecycle;
    use crate::model::{
        EntityKey, EntityKind, EntityUpdate, NormalisedEvent, Recognition, Source, Tenant,
        TransitionRule,
    };
    use crate::version::Version;
    use serde_json::json;

    fn incoming(event_id: &str, order: &str, from: &str, to: &str, micros: i64) -> IncomingEvent {
        let key = EntityKey::new(
            Source::Fulfilment,
            Tenant::new("XYZ"),
            EntityKind::Order,
            order,
        );
        IncomingEvent {
            event: NormalisedEvent {
                recognition: Recognition::Known,
                source: Source::Fulfilment,
                event_id: event_id.into(),
                event_type: "order.status_changed".into(),
                provider_event: "ORDER.CHANGE_STATUS".into(),
                tenant: Tenant::new("XYZ"),
                entities: vec![EntityUpdate {
                    key,
                    version: Version::from_micros(micros),
                    state: Some(to.into()),
                    data: json!({"id": order, "status": to}),
                    transition: TransitionRule::Declared {
                        from: from.into(),
                        to: to.into(),
                    },
                    lifecycle: Lifecycle::Free,
                }],
            }
            .into(),
            raw_body: br#"{"event":"ORDER.CHANGE_STATUS"}"#.to_vec(),
            headers: vec![],
            received_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: i64::MAX,
            conflict_with: None,
            entity_expires_at: i64::MAX,
        }
    }

    /// The first column of every row `sql` returns.
    fn strings(store: &SqliteStore, sql: &str) -> Vec<String> {
        let conn = store.connection();
        let conn = conn.lock().unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    fn outbox_bodies(store: &SqliteStore) -> Vec<String> {
        strings(store, "SELECT body FROM outbox ORDER BY seq")
    }

    #[tokio::test]
    async fn transitions_are_queued_in_the_events_own_transaction() {
        let store = SqliteStore::in_memory().unwrap();
        let event = incoming("d1", "7", "NEW", "PAID", 1_000);
        let first = store.persist(&event).await.unwrap();
        assert!(!first.duplicate);
        assert_eq!(first.to_publish.len(), 1);
        let queued = outbox_bodies(&store);
        assert_eq!(
            queued.len(),
            1,
            "queued with the event, not by a later publish"
        );
        let message: TransitionMessage = serde_json::from_str(&queued[0]).unwrap();
        assert_eq!(message, first.to_publish[0].message);

        // A redelivery hands the pending transition back (from the outbox) and queues nothing.
        let again = store.persist(&event).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.to_publish, first.to_publish);
        assert_eq!(outbox_bodies(&store).len(), 1);

        // Once the notifier has recorded the delivery, a redelivery has nothing pending.
        let record = DeliveryRecord {
            outcome: crate::store::DeliveryOutcome::Delivered,
            status: Some(200),
            attempt: 1,
            at: "2026-11-23T00:00:00Z".into(),
        };
        store.record_delivery(&message, &record).await.unwrap();
        assert_eq!(store.delivery(&message).await.unwrap(), Some(record));
        assert!(store.persist(&event).await.unwrap().to_publish.is_empty());
    }

    #[tokio::test]
    async fn batched_delivery_reads_and_writes_follow_input_order() {
        let store = SqliteStore::in_memory().unwrap();
        let mut messages = Vec::new();
        for (id, order) in [("d1", "1"), ("d2", "2"), ("d3", "3")] {
            let outcome = store
                .persist(&incoming(id, order, "NEW", "PAID", 1_000))
                .await
                .unwrap();
            messages.push(outcome.to_publish[0].message.clone());
        }
        let record = |attempt| DeliveryRecord {
            outcome: crate::store::DeliveryOutcome::Delivered,
            status: Some(200),
            attempt,
            at: "2026-11-23T00:00:00Z".into(),
        };
        // A message naming no transition (unparseable occurredAt) is skipped, not fatal to
        // the batch it came with.
        let mut nameless = messages[1].clone();
        nameless.occurred_at = "not a time".into();
        store
            .record_deliveries(&[
                (messages[2].clone(), record(3)),
                (nameless.clone(), record(2)),
                (messages[0].clone(), record(1)),
            ])
            .await
            .unwrap();
        let found = store.deliveries(&messages).await.unwrap();
        assert_eq!(found, vec![Some(record(1)), None, Some(record(3))]);
        let mut with_nameless = messages.clone();
        with_nameless.push(nameless);
        let found = store.deliveries(&with_nameless).await.unwrap();
        assert_eq!(found, vec![Some(record(1)), None, Some(record(3)), None]);
    }

    /// The layout written before the transactional outbox: the message on the transition,
    /// unique indexes on the transition and dedup ids, an index by event key.
    const PREVIOUS_LAYOUT: &str = r#"
        CREATE TABLE transitions (
            pk TEXT NOT NULL, sk TEXT NOT NULL, transition_id TEXT NOT NULL UNIQUE,
            event_key TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, flag TEXT,
            queued INTEGER NOT NULL, published INTEGER NOT NULL DEFAULT 0,
            message TEXT NOT NULL, notification TEXT, PRIMARY KEY (pk, sk));
        CREATE INDEX transitions_by_event ON transitions(event_key);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, group_id TEXT NOT NULL,
            dedup_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
            receive_count INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL DEFAULT 0,
            dead INTEGER NOT NULL DEFAULT 0, last_error TEXT);
        INSERT INTO transitions (pk, sk, transition_id, event_key, to_state, queued, message)
            VALUES ('fulfilment#XYZ#order#1', 's1', 'tr_old', 'fulfilment#old', 'PAID', 1, '{}');
    "#;

    #[tokio::test]
    async fn a_file_of_the_previous_layout_is_migrated_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(PREVIOUS_LAYOUT)
            .unwrap();

        let store = SqliteStore::open(&path, false).unwrap();
        let columns = strings(&store, "SELECT name FROM pragma_table_info('transitions')");
        assert!(!columns.iter().any(|c| c == "message"), "{columns:?}");
        let key = EntityKey::new(
            Source::Fulfilment,
            Tenant::new("XYZ"),
            EntityKind::Order,
            "1",
        );
        let kept = store.transitions(&key).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].transition_id, "tr_old");

        // New events work on the migrated file, duplicates included.
        let event = incoming("d9", "1", "NEW", "SHIPPED", 2_000);
        let first = store.persist(&event).await.unwrap();
        assert_eq!(first.to_publish.len(), 1);
        let again = store.persist(&event).await.unwrap();
        assert_eq!(again.to_publish, first.to_publish);
        assert_eq!(outbox_bodies(&store).len(), 1);
        drop(store);
        // Opening it again is a no-op.
        SqliteStore::open(&path, false).unwrap();
    }
}
