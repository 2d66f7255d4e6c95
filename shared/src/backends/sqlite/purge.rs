//! Expiry and erasure on the embedded store (ARCHITECTURE §5). The file runs with
//! `secure_delete`, so a deleted row's bytes are overwritten, not left in free space; after
//! an erasure the WAL is checkpointed and truncated, so its older page images go too.

use rusqlite::{params, Connection, OptionalExtension};

use super::error::unavailable;
use super::writer::exec;
use crate::error::StoreError;
use crate::model::KeptCopy;
use crate::store::{decompress, Needle, PurgeTarget, Purged, QueuedCopy};

/// What one expiry pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expired {
    pub events: usize,
    pub entities: usize,
    pub transitions: usize,
    /// Dead-lettered outbox rows whose transition expired.
    pub dead_letters: usize,
}

/// Deletes what expired by `now` (unix seconds): event records, entities and transitions
/// past their `expires_at`. A transition whose message still waits in the outbox (not dead)
/// is kept until it settles, so expiry never takes a notification away from the worker; a
/// dead letter goes with its transition. Rows without `expires_at` (written before entity
/// expiry) are kept until their next write.
pub(super) fn expire(c: &Connection, now: i64) -> Result<Expired, StoreError> {
    let run = |sql: &str| exec(c, sql, [now]).map_err(unavailable);
    let events = run("DELETE FROM events WHERE expires_at < ?1")?;
    let entities = run("DELETE FROM entities WHERE expires_at < ?1")?;
    let transitions = run(
        "DELETE FROM transitions WHERE expires_at < ?1 AND NOT EXISTS (
            SELECT 1 FROM outbox o WHERE o.group_id = transitions.pk
              AND o.dedup_id = transitions.transition_id AND o.dead = 0)",
    )?;
    let dead_letters = exec(
        c,
        "DELETE FROM outbox WHERE dead = 1 AND NOT EXISTS (
            SELECT 1 FROM transitions t WHERE t.pk = outbox.group_id AND t.transition_id = outbox.dedup_id)",
        [],
    )
    .map_err(unavailable)?;
    Ok(Expired {
        events,
        entities,
        transitions,
        dead_letters,
    })
}

/// Rows a purge selected, with the keys that delete them.
#[derive(Default)]
struct Selected {
    events: Vec<String>,
    /// (pk, sk).
    entities: Vec<(String, String)>,
    /// (pk, sk, transition id).
    transitions: Vec<(String, String, String)>,
    /// (seq, transition id, dead).
    outbox: Vec<(i64, String, bool)>,
}

/// Selects what `target` names and, unless `dry_run`, deletes it, in one transaction.
pub(super) fn purge(
    c: &Connection,
    target: &PurgeTarget,
    dry_run: bool,
) -> Result<Purged, StoreError> {
    let selected = select(c, target).map_err(unavailable)?;
    if !dry_run {
        delete(c, &selected).map_err(unavailable)?;
    }
    Ok(Purged {
        events: selected.events,
        entities: selected
            .entities
            .into_iter()
            .map(|(pk, sk)| format!("{pk}#{sk}"))
            .collect(),
        transitions: selected
            .transitions
            .into_iter()
            .map(|(pk, _, id)| (pk, id))
            .collect(),
        queued: selected
            .outbox
            .into_iter()
            .map(|(_, transition_id, dead)| QueuedCopy {
                transition_id,
                place: if dead { "outbox (dead)" } else { "outbox" }.to_string(),
            })
            .collect(),
        scanned: Vec::new(),
        kept: Vec::new(),
    })
}

fn select(c: &Connection, target: &PurgeTarget) -> rusqlite::Result<Selected> {
    let mut s = Selected::default();
    match target {
        PurgeTarget::Entity(key) => {
            let stream = key.stream();
            s.entities = rows(
                c,
                "SELECT pk, sk FROM entities WHERE pk = ?1 AND sk = ?2",
                params![key.partition(), key.sort()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            s.transitions = rows(
                c,
                "SELECT pk, sk, transition_id FROM transitions WHERE pk = ?1",
                [&stream],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let named: Vec<(String, String)> = rows(
                c,
                "SELECT event_key, entity_keys FROM events WHERE source = ?1 AND tenant = ?2",
                params![key.source.as_str(), key.tenant.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            s.events = named
                .into_iter()
                .filter(|(_, keys)| {
                    serde_json::from_str::<Vec<String>>(keys).is_ok_and(|k| k.contains(&stream))
                })
                .map(|(event_key, _)| event_key)
                .collect();
            s.outbox = rows(
                c,
                "SELECT seq, dedup_id, dead FROM outbox WHERE group_id = ?1",
                [&stream],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        }
        PurgeTarget::Tenant { source, tenant } => {
            let partition = format!("{source}#{tenant}");
            let prefix = format!("{partition}#");
            // Prefixes compared exactly: LIKE would read `_` in a tenant as a wildcard.
            s.entities = rows(
                c,
                "SELECT pk, sk FROM entities WHERE pk = ?1",
                [&partition],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            s.transitions = rows(
                c,
                "SELECT pk, sk, transition_id FROM transitions
                 WHERE substr(pk, 1, length(?1)) = ?1",
                [&prefix],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            s.events = rows(
                c,
                "SELECT event_key FROM events WHERE source = ?1 AND tenant = ?2",
                params![source.as_str(), tenant.as_str()],
                |r| r.get(0),
            )?;
            s.outbox = rows(
                c,
                "SELECT seq, dedup_id, dead FROM outbox WHERE substr(group_id, 1, length(?1)) = ?1",
                [&prefix],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        }
        PurgeTarget::Match(needle) => select_matching(c, needle, &mut s)?,
    }
    Ok(s)
}

/// Every row holding the value: event bodies and kept headers, entity data, the message
/// a transition was sent as, queued messages (and their transitions).
fn select_matching(c: &Connection, needle: &Needle, s: &mut Selected) -> rusqlite::Result<()> {
    let events: Vec<(String, Vec<u8>, String)> = rows(
        c,
        "SELECT event_key, body_gz, headers FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    s.events = events
        .into_iter()
        .filter(|(_, body, headers)| {
            // A body that no longer inflates is matched on its stored bytes.
            let body = decompress(body).unwrap_or_else(|_| body.clone());
            needle.found_in(&body) || needle.found_in(headers.as_bytes())
        })
        .map(|(key, _, _)| key)
        .collect();
    let entities: Vec<(String, String, String)> =
        rows(c, "SELECT pk, sk, data FROM entities", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    s.entities = entities
        .into_iter()
        .filter(|(_, _, data)| needle.found_in(data.as_bytes()))
        .map(|(pk, sk, _)| (pk, sk))
        .collect();
    let outbox: Vec<(i64, String, bool, String, String)> = rows(
        c,
        "SELECT seq, dedup_id, dead, group_id, body FROM outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let outbox: Vec<_> = outbox
        .into_iter()
        .filter(|row| needle.found_in(row.4.as_bytes()))
        .collect();
    let transitions: Vec<(String, String, String, Option<String>)> = rows(
        c,
        "SELECT pk, sk, transition_id, sent_body FROM transitions",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    s.transitions = transitions
        .into_iter()
        .filter(|(pk, _, id, sent)| {
            sent.as_ref().is_some_and(|b| needle.found_in(b.as_bytes()))
                || outbox.iter().any(|o| &o.3 == pk && &o.1 == id)
        })
        .map(|(pk, sk, id, _)| (pk, sk, id))
        .collect();
    s.outbox = outbox
        .into_iter()
        .map(|(seq, id, dead, _, _)| (seq, id, dead))
        .collect();
    Ok(())
}

fn rows<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map(params, map)?;
    rows.collect()
}

fn delete(c: &Connection, s: &Selected) -> rusqlite::Result<()> {
    for key in &s.events {
        exec(c, "DELETE FROM events WHERE event_key = ?1", [key])?;
    }
    for (pk, sk) in &s.entities {
        exec(
            c,
            "DELETE FROM entities WHERE pk = ?1 AND sk = ?2",
            [pk, sk],
        )?;
    }
    for (pk, sk, _) in &s.transitions {
        exec(
            c,
            "DELETE FROM transitions WHERE pk = ?1 AND sk = ?2",
            [pk, sk],
        )?;
    }
    for (seq, _, _) in &s.outbox {
        exec(c, "DELETE FROM outbox WHERE seq = ?1", [seq])?;
    }
    Ok(())
}

/// Copies the WAL into the file and truncates it, so the erased rows' older page images
/// leave the disk; says so when another connection (a running `webhooks-local`) holds it.
pub(super) fn truncate_wal(c: &Connection, path: Option<&str>) -> Vec<KeptCopy> {
    let checkpoint = || {
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
    };
    let mut busy = checkpoint();
    // The background checkpointer's own pass may hold the WAL for a moment: try again.
    for _ in 0..10 {
        if !matches!(busy, Ok(Some(b)) if b != 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        busy = checkpoint();
    }
    let file = path.unwrap_or("the database");
    match busy {
        Ok(Some(0)) | Ok(None) => Vec::new(),
        Ok(Some(_)) => vec![KeptCopy {
            place: format!("{file}-wal"),
            kept: "older page images, until the next checkpoint (webhooks-local checkpoints \
                   every 50 ms while it runs)"
                .to_string(),
        }],
        Err(e) => vec![KeptCopy {
            place: format!("{file}-wal"),
            kept: format!("older page images: the checkpoint failed ({e})"),
        }],
    }
}
