//! The file's layout: the schema, with the migration of files written by an earlier version.

use rusqlite::Connection;

pub(super) const SCHEMA: &str = r#"
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
    expires_at   INTEGER NOT NULL,
    conflict_with TEXT
);
CREATE INDEX IF NOT EXISTS events_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS entities (
    pk              TEXT NOT NULL,
    sk              TEXT NOT NULL,
    version         INTEGER NOT NULL,
    state           TEXT,
    data            TEXT NOT NULL,
    last_event_key  TEXT NOT NULL,
    expires_at      INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transitions (
    pk             TEXT NOT NULL,
    sk             TEXT NOT NULL,
    transition_id  TEXT NOT NULL,
    event_key      TEXT NOT NULL,
    from_state     TEXT,
    to_state       TEXT NOT NULL,
    flag           TEXT,
    queued         INTEGER NOT NULL,
    published      INTEGER NOT NULL DEFAULT 0,
    notification   TEXT,
    sent_body      TEXT,
    expires_at     INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
DROP INDEX IF EXISTS transitions_by_event;
CREATE TABLE IF NOT EXISTS outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id         TEXT NOT NULL,
    dedup_id         TEXT NOT NULL,
    body             TEXT NOT NULL,
    receive_count    INTEGER NOT NULL DEFAULT 0,
    visible_at       INTEGER NOT NULL DEFAULT 0,
    dead             INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox(group_id, dead, seq);
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credentials (
    source      TEXT NOT NULL,
    id          TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    key_hash    TEXT,
    secret      TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS credentials_by_key
    ON credentials(source, key_hash) WHERE key_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS credentials_by_tenant ON credentials(source, tenant);
"#;

/// Brings a file written by an earlier version to the current layout. Earlier files kept
/// each queued message twice (on the transition and in the outbox); the outbox copy is the
/// one the notifier sends. Files from before the operator tools lack `sent_body` (the body
/// the notifier settled, kept for a replay once the outbox row is gone); their settled
/// transitions then have no message to replay. Files from before issue 21 lack the events'
/// `conflict_with` (ARCHITECTURE §4): none of their events is one. Files from before entity
/// expiry lack `expires_at` on entities and transitions: their rows get it on their next
/// write and are kept until then (`webhooks purge` erases them on request). Their other
/// differences (unique indexes on the transition and dedup ids) only cost speed and are left
/// in place.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_message: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('transitions') WHERE name = 'message'",
        [],
        |r| r.get(0),
    )?;
    if has_message {
        conn.execute_batch("ALTER TABLE transitions DROP COLUMN message")?;
    }
    let has_sent_body: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('transitions') WHERE name = 'sent_body'",
        [],
        |r| r.get(0),
    )?;
    if !has_sent_body {
        conn.execute_batch("ALTER TABLE transitions ADD COLUMN sent_body TEXT")?;
    }
    let has_conflict: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'conflict_with'",
        [],
        |r| r.get(0),
    )?;
    if !has_conflict {
        conn.execute_batch("ALTER TABLE events ADD COLUMN conflict_with TEXT")?;
    }
    for table in ["entities", "transitions"] {
        let has_expiry: bool = conn.query_row(
            &format!(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = 'expires_at'"
            ),
            [],
            |r| r.get(0),
        )?;
        if !has_expiry {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN expires_at INTEGER"
            ))?;
        }
    }
    Ok(())
}

/// The `meta` row naming when today's event identity first served this file.
const IDENTITY_EPOCH: &str = "identity_epoch";

/// Reads the file's identity epoch, writing it on the first call: `fresh` when the file held
/// no event, else the unix time of that call (ARCHITECTURE §4, "Upgrade"). Runs as a writer
/// job, so no event is written between the look and the marker.
pub(super) fn identity_epoch(
    c: &Connection,
    now: i64,
) -> rusqlite::Result<crate::store::IdentityEpoch> {
    use crate::store::IdentityEpoch;
    use rusqlite::OptionalExtension;
    let read = |c: &Connection| {
        c.query_row(
            "SELECT value FROM meta WHERE name = ?1",
            [IDENTITY_EPOCH],
            |r| r.get::<_, String>(0),
        )
        .optional()
    };
    let value = match read(c)? {
        Some(value) => value,
        None => {
            let held: bool =
                c.query_row("SELECT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?;
            let value = if held {
                now.to_string()
            } else {
                "fresh".to_string()
            };
            c.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)",
                [IDENTITY_EPOCH, value.as_str()],
            )?;
            value
        }
    };
    Ok(match value.parse::<i64>() {
        Ok(at) => time::OffsetDateTime::from_unix_timestamp(at)
            .map_or(IdentityEpoch::Unknown, IdentityEpoch::UpgradedAt),
        Err(_) if value == "fresh" => IdentityEpoch::Fresh,
        Err(_) => IdentityEpoch::Unknown,
    })
}
