//! The operator reads and writes of the embedded store (see `store::inspect`): event pages
//! by arrival (the table's rowid, so no index is paid for on the ingest path), and the
//! transitions a replay names with their messages (the outbox copy while queued, the copy
//! the notifier recorded once settled).

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::error::unavailable;
use super::writer::exec;
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey, Source, Tenant};
use crate::store::{
    decompress, DeliveryOutcome, EventFilter, EventPage, EventStatus, EventSummary, Order,
    Replayable, StoredEvent, StoredTransition, TransitionSelector,
};
use crate::version::Version;

/// Events per (source, status) among those `filter` selects.
/// Live outbox messages never handed to the worker whose event was received before `cutoff`
/// (unix seconds).
pub(super) fn not_taken(c: &Connection, cutoff: i64) -> Result<u64, StoreError> {
    c.query_row(
        "SELECT COUNT(*) FROM outbox o
         JOIN transitions t ON t.pk = o.group_id AND t.transition_id = o.dedup_id
         JOIN events e ON e.event_key = t.event_key
         WHERE o.dead = 0 AND o.receive_count = 0 AND e.received_at < ?1",
        [cutoff],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(unavailable)
}

pub(super) fn count_events(
    c: &Connection,
    filter: &EventFilter,
) -> Result<crate::store::EventCounts, StoreError> {
    let (mut sql, args) = filter_sql(filter, "source, status, COUNT(*)");
    sql.push_str(" GROUP BY source, status");
    let mut stmt = c.prepare_cached(&sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(unavailable)?;
    let mut counts = BTreeMap::new();
    for row in rows {
        let (source, status, n) = row.map_err(unavailable)?;
        let Some(parsed) = EventStatus::parse(&status) else {
            return Err(StoreError::Corrupt(status));
        };
        let Some(source) = Source::parse(&source) else {
            return Err(StoreError::Corrupt(source));
        };
        counts.insert((source, parsed), n as u64);
    }
    Ok(counts)
}

/// The rowid a cursor continues after; checked before the writer is asked (its jobs' errors
/// come back as text).
pub(super) fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, StoreError> {
    cursor
        .map(|raw| {
            raw.strip_prefix('r')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StoreError::BadCursor(raw.to_string()))
        })
        .transpose()
}

/// A page of events: rowid order is arrival (commit) order. The cursor is the last rowid.
pub(super) fn list_events(
    c: &Connection,
    filter: &EventFilter,
    order: Order,
    limit: usize,
    after: Option<i64>,
) -> Result<EventPage, StoreError> {
    let (sql, args) = page_sql(filter, SUMMARY, order, limit, after);
    let mut stmt = c.prepare_cached(&sql).map_err(unavailable)?;
    let mut rows: Vec<(i64, EventSummary)> = stmt
        .query_map(params_from_iter(args), summary)
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        format!("r{}", rows.last().map(|(id, _)| *id).unwrap_or(0))
    });
    Ok(EventPage {
        events: rows.into_iter().map(|(_, e)| e).collect(),
        next,
    })
}

/// The filter, the cursor and the order, asking one more than `limit` (to tell whether a
/// next page exists).
fn page_sql(
    filter: &EventFilter,
    columns: &str,
    order: Order,
    limit: usize,
    after: Option<i64>,
) -> (String, Vec<SqlValue>) {
    let (mut sql, mut args) = filter_sql(filter, columns);
    if let Some(after) = after {
        sql.push_str(match order {
            Order::NewestFirst => " AND rowid < ?",
            Order::OldestFirst => " AND rowid > ?",
        });
        args.push(SqlValue::Integer(after));
    }
    sql.push_str(match order {
        Order::NewestFirst => " ORDER BY rowid DESC LIMIT ?",
        Order::OldestFirst => " ORDER BY rowid ASC LIMIT ?",
    });
    // One more than asked tells whether there is a next page.
    args.push(SqlValue::Integer(limit as i64 + 1));
    (sql, args)
}

/// Summary columns of a list line.
const SUMMARY: &str =
    "rowid, event_key, source, tenant, event_type, status, received_at, entity_keys";
/// Every column of an event, for reading it whole.
const WHOLE: &str = "rowid, event_key, source, tenant, event_type, status, body_gz, headers, \
     entity_keys, received_at, expires_at, conflict_with";

fn filter_sql(filter: &EventFilter, columns: &str) -> (String, Vec<SqlValue>) {
    let mut sql = format!("SELECT {columns} FROM events WHERE 1 = 1");
    let mut args = Vec::new();
    let mut text = |clause: &str, value: &str| {
        sql.push_str(clause);
        args.push(SqlValue::Text(value.to_string()));
    };
    if let Some(s) = filter.source {
        text(" AND source = ?", s.as_str());
    }
    if let Some(t) = &filter.tenant {
        text(" AND tenant = ?", t);
    }
    if let Some(t) = &filter.event_type {
        text(" AND event_type = ?", t);
    }
    if let Some(s) = filter.status {
        text(" AND status = ?", s.as_str());
    }
    for (clause, bound) in [
        (" AND received_at >= ?", filter.since),
        (" AND received_at < ?", filter.until),
    ] {
        if let Some(b) = bound {
            sql.push_str(clause);
            args.push(SqlValue::Integer(b));
        }
    }
    (sql, args)
}

/// A column of a typed key: a value no release wrote is a conversion failure.
fn typed<T>(r: &Row<'_>, at: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let raw: String = r.get(at)?;
    parse(&raw).ok_or_else(|| {
        let err = StoreError::Corrupt(format!("column {at}: {raw:?}"));
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, Box::new(err))
    })
}

fn event_key(raw: &str) -> Option<EventKey> {
    Some(EventKey::from_stored(raw.to_string()))
}

fn summary(r: &Row<'_>) -> rusqlite::Result<(i64, EventSummary)> {
    let status: String = r.get(5)?;
    let keys: String = r.get(7)?;
    Ok((
        r.get(0)?,
        EventSummary {
            event_key: typed(r, 1, event_key)?,
            source: typed(r, 2, Source::parse)?,
            tenant: Tenant::from_stored(r.get(3)?),
            event_type: r.get(4)?,
            status: EventStatus::parse(&status).unwrap_or(EventStatus::Applied),
            received_at: r.get(6)?,
            entities: serde_json::from_str::<Vec<String>>(&keys).map_or(0, |k| k.len()),
        },
    ))
}

/// The columns of one row of an entity's history, in the order [`stored_transition`] reads.
pub(super) const HISTORY_COLUMNS: &str =
    "sk, transition_id, from_state, to_state, event_key, flag, queued, published, notification";

/// A history row whose first column is at `at`.
pub(super) fn stored_transition(r: &Row<'_>, at: usize) -> rusqlite::Result<StoredTransition> {
    Ok(StoredTransition {
        sort: r.get(at)?,
        transition_id: r.get(at + 1)?,
        from: r.get(at + 2)?,
        to: r.get(at + 3)?,
        event_key: typed(r, at + 4, event_key)?,
        flag: r.get(at + 5)?,
        queued: r.get(at + 6)?,
        published: r.get(at + 7)?,
        notification: r
            .get::<_, Option<String>>(at + 8)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// The message of a transition: the outbox copy while queued, else the settled body.
const MESSAGE_COLUMN: &str = "COALESCE((SELECT o.body FROM outbox o \
     WHERE o.group_id = t.pk AND o.dedup_id = t.transition_id ORDER BY o.seq DESC LIMIT 1), t.sent_body)";

/// The transitions a selector names, oldest first within an entity. By id and by window
/// this scans the table (an operator's occasional query; no index is paid for on ingest).
pub(super) fn replayable(
    c: &Connection,
    selector: &TransitionSelector,
) -> Result<Vec<Replayable>, StoreError> {
    let (condition, args): (&str, Vec<SqlValue>) = match selector {
        TransitionSelector::Id(id) => ("t.transition_id = ?", vec![SqlValue::Text(id.clone())]),
        TransitionSelector::Entity(key) => ("t.pk = ?", vec![SqlValue::Text(key.stream())]),
        TransitionSelector::Undelivered { since, until } => (
            "t.queued = 1 AND (t.notification IS NULL OR t.notification NOT LIKE ?) \
             AND substr(t.sk, 1, 20) >= ? AND substr(t.sk, 1, 20) < ?",
            vec![
                SqlValue::Text(delivered_pattern()),
                SqlValue::Text(window_key(since.unwrap_or(0))),
                SqlValue::Text(window_key(until.unwrap_or(i64::MAX / 1_000_000))),
            ],
        ),
    };
    let sql = format!(
        "SELECT pk, {HISTORY_COLUMNS}, {MESSAGE_COLUMN} FROM transitions t \
         WHERE {condition} ORDER BY t.pk, t.sk"
    );
    let mut stmt = c.prepare(&sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((
                typed(r, 0, EntityKey::parse)?,
                stored_transition(r, 1)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })
        .map_err(unavailable)?;
    rows.map(|row| {
        let (stream, transition, body) = row.map_err(unavailable)?;
        let message = body
            .filter(|_| transition.queued)
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("queued message: {e}")))?;
        Ok(Replayable {
            stream,
            transition,
            message,
        })
    })
    .collect()
}

/// A LIKE pattern matching a recorded delivery (JSON, `record_json`) that was delivered.
fn delivered_pattern() -> String {
    format!(r#"%"outcome":"{}"%"#, DeliveryOutcome::Delivered.as_str())
}

/// The sort-key prefix of a unix time (the transitions' `sk` starts with the version).
fn window_key(unix: i64) -> String {
    Version::from_micros(unix.saturating_mul(1_000_000)).sort_key()
}

pub(super) fn reset_delivery(c: &Connection, stream: &str, sort: &str) -> Result<(), StoreError> {
    exec(
        c,
        "UPDATE transitions SET notification = NULL, published = 0 WHERE pk = ?1 AND sk = ?2",
        params![stream, sort],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// A whole event as read on the writer thread; decompressed and parsed by the caller, off
/// the writer (the embedded store's bottleneck).
pub(super) struct RawEvent {
    rowid: i64,
    text: [String; 5],
    body: Vec<u8>,
    json: [String; 2],
    times: [i64; 2],
    conflict_with: Option<String>,
}

fn raw_event(r: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        rowid: r.get(0)?,
        text: [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
        body: r.get(6)?,
        json: [r.get(7)?, r.get(8)?],
        times: [r.get(9)?, r.get(10)?],
        conflict_with: r.get(11)?,
    })
}

impl RawEvent {
    pub(super) fn into_stored(self) -> Result<StoredEvent, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let [event_key, source, tenant, event_type, status] = self.text;
        Ok(StoredEvent {
            status: EventStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(status.clone()))?,
            event_key: EventKey::from_stored(event_key),
            source: Source::parse(&source).ok_or(StoreError::Corrupt(source))?,
            tenant: Tenant::from_stored(tenant),
            event_type,
            raw_body: decompress(&self.body)?,
            headers: serde_json::from_str(&self.json[0]).map_err(corrupt)?,
            entity_keys: serde_json::from_str(&self.json[1]).map_err(corrupt)?,
            received_at: self.times[0],
            expires_at: self.times[1],
            conflict_with: self.conflict_with.map(EventKey::from_stored),
        })
    }
}

/// A page of whole events (reprocess), and the rowid the next page continues after.
pub(super) fn raw_page(
    c: &Connection,
    filter: &EventFilter,
    order: Order,
    limit: usize,
    after: Option<i64>,
) -> Result<(Vec<RawEvent>, Option<i64>), StoreError> {
    let (sql, args) = page_sql(filter, WHOLE, order, limit, after);
    let mut stmt = c.prepare_cached(&sql).map_err(unavailable)?;
    let mut rows: Vec<RawEvent> = stmt
        .query_map(params_from_iter(args), raw_event)
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map_or(0, |r| r.rowid)
    });
    Ok((rows, next))
}

/// One stored event with its kept request.
pub(super) fn stored_event(c: &Connection, key: &str) -> Result<Option<RawEvent>, StoreError> {
    c.query_row(
        &format!("SELECT {WHOLE} FROM events WHERE event_key = ?1"),
        [key],
        raw_event,
    )
    .optional()
    .map_err(unavailable)
}
