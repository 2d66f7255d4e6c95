//! Persisting one event: the writer-thread job that dedupes, applies the shared rules to each
//! entity, records transitions and queues them in the outbox, all in the event's transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::unavailable;
use super::writer::exec;
use crate::error::StoreError;
use crate::model::{EntityKey, EntityUpdate, EventKey, NormalisedEvent};
use crate::store::reapplied_status;
use crate::store::{
    compress, decide, Decision, DeliveryRecord, EventStatus, IncomingEvent, PendingPublish,
    PersistOutcome, Reapplied, Snapshot, TransitionRecord,
};
use crate::version::Version;

/// What can be computed before taking the writer: the writer thread is the local gateway's
/// bottleneck, so compression and serialisation happen on the request's own thread.
pub(super) struct Prepared {
    body: Vec<u8>,
    headers: String,
    entity_keys: String,
    data: Vec<String>,
    received_at: i64,
    expires_at: i64,
    conflict_with: Option<String>,
    entity_expires_at: i64,
}

impl Prepared {
    /// When the event arrived, as a version (the far-future rule, `decide`).
    fn received(&self) -> Version {
        Version::from_micros(self.received_at.saturating_mul(1_000_000))
    }

    pub(super) fn of(incoming: &IncomingEvent) -> Self {
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
            received_at: incoming.received_at.unix_timestamp(),
            expires_at: incoming.expires_at,
            conflict_with: incoming.conflict_with.as_ref().map(|k| k.to_string()),
            entity_expires_at: incoming.entity_expires_at,
        }
    }
}

/// Persists one event; runs inside the writer's transaction as one job.
pub(super) fn persist_tx(
    tx: &Connection,
    event: &NormalisedEvent,
    prepared: &Prepared,
) -> Result<PersistOutcome, StoreError> {
    let event_key = event.key();
    // One writer, one job at a time: looking first and inserting last cannot race.
    if let Some(outcome) = duplicate(tx, &event_key)? {
        return Ok(outcome);
    }
    let decisions = event
        .entities
        .iter()
        .zip(&prepared.data)
        .map(|(update, data)| {
            apply(
                tx,
                event,
                &event_key,
                update,
                data,
                prepared,
                Rewrite::Always,
            )
            .map(|(d, _)| d)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let status = EventStatus::summarise(event.recognition, &decisions);
    insert_event(tx, event, &event_key, prepared, status)?;
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

/// Re-applies a stored event (operator reprocess): the same per-entity rules as a new event,
/// then the event row's status and entities; `None` when no event has the key.
pub(super) fn reapply_tx(
    tx: &Connection,
    event: &NormalisedEvent,
    prepared: &Prepared,
) -> Result<Option<Reapplied>, StoreError> {
    let event_key = event.key();
    let stored = stored_status(tx, &event_key)?;
    let Some((was, entities_were)) = stored else {
        return Ok(None);
    };
    let mut decisions = Vec::with_capacity(event.entities.len());
    let mut new_transitions = Vec::new();
    for (update, data) in event.entities.iter().zip(&prepared.data) {
        let (decision, recorded) = apply(
            tx,
            event,
            &event_key,
            update,
            data,
            prepared,
            Rewrite::IfChanged,
        )?;
        if let (true, Some(t)) = (recorded, &decision.transition) {
            new_transitions.push(t.clone());
        }
        decisions.push(decision);
    }
    let was = EventStatus::parse(&was).unwrap_or(EventStatus::Applied);
    let entities_were: Vec<EntityKey> = serde_json::from_str(&entities_were)
        .map_err(|e| StoreError::Corrupt(format!("entity_keys: {e}")))?;
    let entities: Vec<EntityKey> = event.entities.iter().map(|u| u.key.clone()).collect();
    let status = reapplied_status(
        was,
        EventStatus::summarise(event.recognition, &decisions),
        &entities_were,
        &entities,
    );
    if status != was || entities != entities_were {
        exec(
            tx,
            "UPDATE events SET status = ?1, entity_keys = ?2 WHERE event_key = ?3",
            params![status.as_str(), prepared.entity_keys, event_key.as_str()],
        )
        .map_err(unavailable)?;
    }
    Ok(Some(Reapplied {
        was,
        status,
        entities_were,
        entities,
        new_transitions,
    }))
}

/// The stored event's status and entity keys (JSON), if the key is stored.
fn stored_status(
    tx: &Connection,
    event_key: &EventKey,
) -> Result<Option<(String, String)>, StoreError> {
    tx.prepare_cached("SELECT status, entity_keys FROM events WHERE event_key = ?1")
        .and_then(|mut st| {
            st.query_row([event_key.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(unavailable)
}

/// The outcome of an event key stored already: its status and what is still to send.
fn duplicate(tx: &Connection, event_key: &EventKey) -> Result<Option<PersistOutcome>, StoreError> {
    let stored = stored_status(tx, event_key)?;
    let Some((status, entity_keys)) = stored else {
        return Ok(None);
    };
    let streams: Vec<String> = serde_json::from_str(&entity_keys)
        .map_err(|e| StoreError::Corrupt(format!("entity_keys: {e}")))?;
    Ok(Some(PersistOutcome {
        duplicate: true,
        status: EventStatus::parse(&status).unwrap_or(EventStatus::Applied),
        to_publish: unpublished(tx, event_key.as_str(), streams)?,
    }))
}

/// Whether an entity write that would change nothing is still sent: ingest always writes
/// (its row is new or moves on); reprocess mostly meets rows that are already exactly what
/// today's code produces, and skipping those writes is most of its speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    Always,
    IfChanged,
}

/// Applies one entity update by the shared rules: the entity upsert (never to an older
/// version) and its transition, queued in the outbox in the same transaction, both expiring
/// at the event's `entity_expires_at`. `true` when the transition was recorded now (not stored
/// already).
fn apply(
    tx: &Connection,
    event: &NormalisedEvent,
    event_key: &EventKey,
    update: &EntityUpdate,
    data: &str,
    prepared: &Prepared,
    rewrite: Rewrite,
) -> Result<(Decision, bool), StoreError> {
    let (expires_at, received) = (prepared.entity_expires_at, prepared.received());
    let (pk, sk) = (update.key.partition(), update.key.sort());
    let (current, unchanged) = match rewrite {
        Rewrite::Always => (snapshot(tx, &pk, &sk)?, false),
        Rewrite::IfChanged => stored_as_written(tx, &pk, &sk, update, data, event_key)?,
    };
    let decision = decide(
        event_key,
        &event.event_id,
        update,
        current.as_ref(),
        received,
    );
    if decision.write_entity && !unchanged {
        exec(tx,
            "INSERT INTO entities (pk, sk, version, state, data, last_event_key, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(pk, sk) DO UPDATE SET version = excluded.version, state = COALESCE(excluded.state, entities.state),
               data = excluded.data, last_event_key = excluded.last_event_key, expires_at = excluded.expires_at",
            params![pk, sk, update.version.micros(), update.state, data, event_key.as_str(), expires_at],
        )
        .map_err(unavailable)?;
    }
    let recorded = match &decision.transition {
        Some(t) => record_transition(tx, event_key, t, expires_at)?,
        None => false,
    };
    Ok((decision, recorded))
}

fn snapshot(tx: &Connection, pk: &str, sk: &str) -> Result<Option<Snapshot>, StoreError> {
    tx.prepare_cached("SELECT version, state FROM entities WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut st| {
            st.query_row(params![pk, sk], |r| {
                Ok(Snapshot {
                    version: crate::version::Version::from_micros(r.get(0)?),
                    state: r.get(1)?,
                })
            })
            .optional()
        })
        .map_err(unavailable)
}

/// The stored entity, and whether the upsert of `update` would leave it exactly as it is
/// (same version, state, data and writing event).
fn stored_as_written(
    tx: &Connection,
    pk: &str,
    sk: &str,
    update: &EntityUpdate,
    data: &str,
    event_key: &EventKey,
) -> Result<(Option<Snapshot>, bool), StoreError> {
    let row: Option<(Snapshot, String, String)> = tx
        .prepare_cached(
            "SELECT version, state, data, last_event_key FROM entities WHERE pk = ?1 AND sk = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![pk, sk], |r| {
                let snapshot = Snapshot {
                    version: crate::version::Version::from_micros(r.get(0)?),
                    state: r.get(1)?,
                };
                Ok((snapshot, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(unavailable)?;
    let unchanged = row.as_ref().is_some_and(|(s, stored_data, last)| {
        s.version == update.version
            && update
                .state
                .as_ref()
                .is_none_or(|st| s.state.as_ref() == Some(st))
            && stored_data == data
            && last == event_key.as_str()
    });
    Ok((row.map(|(s, _, _)| s), unchanged))
}

/// Records a transition (once per key) and, when it is to be sent, its outbox message: the
/// transactional outbox, queued with the event or not at all. The message lives only there;
/// the transition row keeps the history and the delivery outcome.
fn record_transition(
    tx: &Connection,
    event_key: &EventKey,
    t: &TransitionRecord,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let recorded = exec(tx,
        "INSERT INTO transitions (pk, sk, transition_id, event_key, from_state, to_state, flag, queued, expires_at)
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
            expires_at,
        ],
    )
    .map_err(unavailable)?;
    if t.queued && recorded == 1 {
        let message = serde_json::to_string(&t.message).unwrap_or_default();
        super::outbox::enqueue(tx, &t.stream, &t.message.transition_id, &message)
            .map_err(unavailable)?;
    }
    Ok(recorded == 1)
}

fn insert_event(
    tx: &Connection,
    event: &NormalisedEvent,
    event_key: &EventKey,
    prepared: &Prepared,
    status: EventStatus,
) -> Result<(), StoreError> {
    exec(tx,
        "INSERT INTO events (event_key, source, tenant, event_type, status, body_gz, headers, entity_keys, received_at, expires_at, conflict_with)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            event_key.as_str(),
            event.source.as_str(),
            event.tenant.as_str(),
            event.event_type,
            status.as_str(),
            prepared.body,
            prepared.headers,
            prepared.entity_keys,
            prepared.received_at,
            prepared.expires_at,
            prepared.conflict_with,
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub(super) fn record_json(record: &DeliveryRecord) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

/// A duplicate's queued transitions the notifier has not marked published, with their
/// messages from the outbox, looked up per entity (the transitions key starts with the
/// entity's stream) rather than through an index on `event_key` that every insert would pay
/// for. A transition that is not published but no longer in the outbox was delivered and
/// only its record failed: it is not handed back.
fn unpublished(
    conn: &Connection,
    event_key: &str,
    mut streams: Vec<String>,
) -> Result<Vec<PendingPublish>, StoreError> {
    streams.sort();
    streams.dedup();
    let mut stmt = conn
        .prepare_cached(
            "SELECT t.sk, o.body FROM transitions t
             JOIN outbox o ON o.group_id = t.pk AND o.dedup_id = t.transition_id
             WHERE t.pk = ?1 AND t.event_key = ?2 AND t.queued = 1 AND t.published = 0
             ORDER BY t.sk",
        )
        .map_err(unavailable)?;
    let mut pending = Vec::new();
    for stream in streams {
        let rows = stmt
            .query_map(params![stream, event_key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(unavailable)?;
        for row in rows {
            let (sort, message) = row.map_err(unavailable)?;
            let message =
                serde_json::from_str(&message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            pending.push(PendingPublish {
                stream: stream.clone(),
                sort,
                message,
            });
        }
    }
    Ok(pending)
}
