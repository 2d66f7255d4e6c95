//! The embedded store: one SQLite file in WAL mode. Each event is persisted atomically under
//! its own savepoint inside a group-committed transaction ([`super::group_commit`]): dedupe,
//! entity upsert and transition record stand or fall together, and concurrent duplicates
//! serialise on the single writer (one winner).
//!
//! Durability: `synchronous=NORMAL` in WAL mode survives a process crash (every committed
//! event is in the WAL); an OS crash or power loss can lose the last commits. Set
//! `SQLITE_SYNC=full` to fsync every commit.
//!
//! The same file holds the embedded transition queue (the `outbox` table, see
//! `queue::outbox`).

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::group_commit::{exec, GroupCommit};
use super::{
    compress, decide, decompress, DeliveryRecord, EventStatus, IncomingEvent, PendingPublish,
    PersistOutcome, Snapshot, Store, StoredEntity, StoredEvent, StoredTransition,
};
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey, TransitionMessage};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    event_key    TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    status       TEXT NOT NULL,
    body_gz      BLOB NOT NULL,
    headers      TEXT NOT NULL,
    entity_keys  TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS entities (
    pk              TEXT NOT NULL,
    sk              TEXT NOT NULL,
    version         INTEGER NOT NULL,
    state           TEXT,
    data            TEXT NOT NULL,
    last_event_key  TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transitions (
    pk             TEXT NOT NULL,
    sk             TEXT NOT NULL,
    transition_id  TEXT NOT NULL UNIQUE,
    event_key      TEXT NOT NULL,
    from_state     TEXT,
    to_state       TEXT NOT NULL,
    flag           TEXT,
    queued         INTEGER NOT NULL,
    published      INTEGER NOT NULL DEFAULT 0,
    message        TEXT NOT NULL,
    notification   TEXT,
    PRIMARY KEY (pk, sk)
);
CREATE INDEX IF NOT EXISTS transitions_by_event ON transitions(event_key);
CREATE TABLE IF NOT EXISTS outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id         TEXT NOT NULL,
    dedup_id         TEXT NOT NULL UNIQUE,
    body             TEXT NOT NULL,
    receive_count    INTEGER NOT NULL DEFAULT 0,
    visible_at       INTEGER NOT NULL DEFAULT 0,
    dead             INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox(group_id, dead, seq);
"#;

/// SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    writer: GroupCommit,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, its parent folder and the schema.
    pub fn open(path: &Path, full_sync: bool) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(unavailable)?;
        }
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        // Checkpoints (copying the WAL into the database, with an fsync) mostly run on their
        // own thread and connection. The writer still checkpoints past 4000 pages: a passive
        // checkpoint cannot rewind the WAL while writes keep coming, the writer's own can, and
        // by then the background thread has already copied nearly every frame.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)
            .map_err(unavailable)?;
        let checkpointer = Connection::open(path).map_err(unavailable)?;
        let store = Self::init(conn, full_sync)?;
        if !spawn_checkpointer(checkpointer, Arc::downgrade(&store.conn)) {
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
        Self::init(Connection::open_in_memory().map_err(unavailable)?, false)
    }

    fn init(conn: Connection, full_sync: bool) -> Result<Self, StoreError> {
        conn.pragma_update(
            None,
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" },
        )
        .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        // Savepoint journals and sorts in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        conn.set_prepared_statement_cache_capacity(64);
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            writer: GroupCommit::start(conn.clone()),
            conn,
        })
    }

    /// The embedded queue over the same file, sharing this store's writer thread.
    pub fn outbox(&self) -> crate::queue::outbox::Outbox {
        crate::queue::outbox::Outbox::new(self.writer.clone())
    }

    /// The shared connection (the embedded queue lives in the same file).
    pub fn connection(&self) -> Arc<Mutex<Connection>> {
        self.conn.clone()
    }

    /// Runs `f` in the next group-committed transaction, off the async executor.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer
            .run(move |c| f(c).map_err(|e| e.to_string()))
            .await
            .map_err(StoreError::Unavailable)
    }

    /// Deletes events whose TTL has passed (DynamoDB does this itself).
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let now = now.unix_timestamp();
        self.with_conn(move |c| {
            exec(c, "DELETE FROM events WHERE expires_at < ?1", [now]).map_err(unavailable)
        })
        .await
    }
}

/// Checkpoints the WAL every 200 ms (PASSIVE: never blocks the writer) until the store is
/// dropped; a final TRUNCATE checkpoint on the way out keeps the file compact. `false` when
/// the thread could not be started.
fn spawn_checkpointer(conn: Connection, store: std::sync::Weak<Mutex<Connection>>) -> bool {
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while store.strong_count() > 0 {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        });
    if let Err(e) = &spawned {
        tracing::error!(error = %e, "could not start the WAL checkpoint thread");
    }
    spawned.is_ok()
}

/// Persists one event; runs inside the writer's transaction, under the job's savepoint.
/// What can be computed before taking the writer: the writer thread is the local gateway's
/// bottleneck, so compression and serialisation happen on the request's own thread.
struct Prepared {
    body: Vec<u8>,
    headers: String,
    entity_keys: String,
    data: Vec<String>,
}

impl Prepared {
    fn of(incoming: &IncomingEvent) -> Self {
        let entity_keys: Vec<String> = incoming
            .event
            .entities
            .iter()
            .map(|u| u.key.stream())
            .collect();
        Prepared {
            body: compress(&incoming.raw_body),
            headers: serde_json::to_string(&incoming.headers).unwrap_or_default(),
            entity_keys: serde_json::to_string(&entity_keys).unwrap_or_default(),
            data: incoming
                .event
                .entities
                .iter()
                .map(|u| u.data.to_string())
                .collect(),
        }
    }
}

fn persist_tx(
    tx: &Connection,
    incoming: &IncomingEvent,
    prepared: &Prepared,
) -> Result<PersistOutcome, StoreError> {
    let event = &incoming.event;
    let event_key = event.key();
    // One writer, one savepoint: looking first and inserting last cannot race.
    let stored_status: Option<String> = tx
        .prepare_cached("SELECT status FROM events WHERE event_key = ?1")
        .and_then(|mut st| st.query_row([event_key.as_str()], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    if let Some(status) = stored_status {
        let to_publish = unpublished(tx, event_key.as_str())?;
        return Ok(PersistOutcome {
            duplicate: true,
            status: EventStatus::parse(&status).unwrap_or(EventStatus::Applied),
            to_publish,
        });
    }

    let mut decisions = Vec::with_capacity(event.entities.len());
    for (update, data) in event.entities.iter().zip(&prepared.data) {
        let (pk, sk) = (update.key.partition(), update.key.sort());
        let current = tx
            .prepare_cached("SELECT version, state FROM entities WHERE pk = ?1 AND sk = ?2")
            .and_then(|mut st| {
                st.query_row(params![pk, sk], |r| {
                    Ok(Snapshot {
                        version: crate::version::Version::from_micros(r.get(0)?),
                        state: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(unavailable)?;
        let decision = decide(&event_key, &event.event_id, update, current.as_ref());
        if decision.write_entity {
            exec(tx,
                "INSERT INTO entities (pk, sk, version, state, data, last_event_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(pk, sk) DO UPDATE SET version = excluded.version, state = COALESCE(excluded.state, entities.state),
                   data = excluded.data, last_event_key = excluded.last_event_key",
                params![
                    pk,
                    sk,
                    update.version.micros(),
                    update.state,
                    data,
                    event_key.as_str()
                ],
            )
            .map_err(unavailable)?;
        }
        if let Some(t) = &decision.transition {
            exec(tx,
                "INSERT INTO transitions (pk, sk, transition_id, event_key, from_state, to_state, flag, queued, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                params![
                    t.stream,
                    t.sort,
                    t.message.transition_id,
                    event_key.as_str(),
                    t.message.from,
                    t.message.to,
                    t.flag.map(|f| f.as_str()),
                    t.queued,
                    serde_json::to_string(&t.message).unwrap_or_default(),
                ],
            )
            .map_err(unavailable)?;
        }
        decisions.push(decision);
    }
    let status = EventStatus::summarise(&decisions);
    exec(tx,
        "INSERT INTO events (event_key, source, tenant, event_type, status, body_gz, headers, entity_keys, received_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            event_key.as_str(),
            event.source.as_str(),
            event.tenant.as_str(),
            event.event_type,
            status.as_str(),
            prepared.body,
            prepared.headers,
            prepared.entity_keys,
            incoming.received_at.unix_timestamp(),
            incoming.expires_at,
        ],
    )
    .map_err(unavailable)?;

    let to_publish = decisions
        .into_iter()
        .filter_map(|d| d.transition)
        .filter(|t| t.queued)
        .map(|t| PendingPublish {
            stream: t.stream,
            sort: t.sort,
            message: t.message,
        })
        .collect();
    Ok(PersistOutcome {
        duplicate: false,
        status,
        to_publish,
    })
}

fn unpublished(conn: &Connection, event_key: &str) -> Result<Vec<PendingPublish>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT pk, sk, message FROM transitions WHERE event_key = ?1 AND queued = 1 AND published = 0 ORDER BY pk, sk",
        )
        .map_err(unavailable)?;
    let rows = stmt
        .query_map([event_key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(unavailable)?;
    rows.map(|row| {
        let (stream, sort, message) = row.map_err(unavailable)?;
        let message =
            serde_json::from_str(&message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(PendingPublish {
            stream,
            sort,
            message,
        })
    })
    .collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn persist(&self, incoming: &IncomingEvent) -> Result<PersistOutcome, StoreError> {
        let prepared = Prepared::of(incoming);
        let incoming = incoming.clone();
        self.with_conn(move |c| persist_tx(c, &incoming, &prepared))
            .await
    }

    async fn record_delivery(
        &self,
        message: &TransitionMessage,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        let id = message.transition_id.clone();
        let json = serde_json::to_string(record).unwrap_or_default();
        self.with_conn(move |c| {
            exec(
                c,
                "UPDATE transitions SET notification = ?1, published = 1 WHERE transition_id = ?2",
                params![json, id],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn delivery(
        &self,
        message: &TransitionMessage,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let id = message.transition_id.clone();
        self.with_conn(move |c| {
            let raw: Option<Option<String>> = c
                .query_row(
                    "SELECT notification FROM transitions WHERE transition_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            raw.flatten()
                .map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()
        })
        .await
    }

    async fn event(&self, key: &EventKey) -> Result<Option<StoredEvent>, StoreError> {
        let key = key.to_string();
        self.with_conn(move |c| {
            let row = c
                .query_row(
                    "SELECT event_key, event_type, status, body_gz, entity_keys, received_at, expires_at FROM events WHERE event_key = ?1",
                    [key],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(unavailable)?;
            row.map(|(event_key, event_type, status, body, keys, received_at, expires_at)| {
                Ok(StoredEvent {
                    event_key,
                    event_type,
                    status: EventStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(status.clone()))?,
                    raw_body: decompress(&body)?,
                    entity_keys: serde_json::from_str(&keys).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    received_at,
                    expires_at,
                })
            })
            .transpose()
        })
        .await
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
                    last_event_key,
                })
            })
            .transpose()
        })
        .await
    }

    async fn transitions(&self, key: &EntityKey) -> Result<Vec<StoredTransition>, StoreError> {
        let pk = key.stream();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT sk, transition_id, from_state, to_state, event_key, flag, queued, published, notification
                     FROM transitions WHERE pk = ?1 ORDER BY sk",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([pk], |r| {
                    Ok(StoredTransition {
                        sort: r.get(0)?,
                        transition_id: r.get(1)?,
                        from: r.get(2)?,
                        to: r.get(3)?,
                        event_key: r.get(4)?,
                        flag: r.get(5)?,
                        queued: r.get(6)?,
                        published: r.get(7)?,
                        notification: r
                            .get::<_, Option<String>>(8)?
                            .and_then(|s| serde_json::from_str(&s).ok()),
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}
