//! The embedded queue: an `outbox` table in the SQLite file with SQS FIFO semantics —
//! deduplication by transition id, strict order within a message group (only a group's
//! oldest live message is ever handed out), visibility timeout on failure, and a dead-letter
//! state after `max_receives` or a permanent failure.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::writer::{exec, GroupCommit};
use crate::error::QueueError;
use crate::model::TransitionMessage;
use crate::queue::{
    DeadLetter, DeadLetters, OutboxMessage, PullQueue, Requeue, Settlement, TransitionQueue,
};

#[derive(Clone)]
pub struct Outbox {
    writer: GroupCommit,
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("outbox: {e}"))
}

impl Outbox {
    /// The queue over the store's file, on the store's writer (`SqliteStore::outbox`): store
    /// and queue writes are group-committed together instead of contending for the file.
    pub(crate) fn new(writer: GroupCommit) -> Self {
        Outbox { writer }
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        self.writer
            .run(move |c| f(c).map_err(|e| e.to_string()))
            .await
            .map_err(|e| QueueError::Unavailable(format!("outbox: {e}")))
    }

    /// Done: removes the message.
    pub async fn ack(&self, seq: i64) -> Result<(), QueueError> {
        PullQueue::settle(self, vec![Settlement::Ack { seq }]).await
    }

    /// Live (not dead-lettered) messages.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        self.count("SELECT COUNT(*) FROM outbox WHERE dead = 0")
            .await
    }

    /// Dead-lettered messages (the local DLQ).
    pub async fn dead_letters(&self) -> Result<u64, QueueError> {
        self.count("SELECT COUNT(*) FROM outbox WHERE dead = 1")
            .await
    }

    async fn count(&self, sql: &'static str) -> Result<u64, QueueError> {
        self.with_conn(move |c| {
            c.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(unavailable)
        })
        .await
    }
}

/// Removes a settled message, first handing its body to its transition row: the body a
/// replay sends once the outbox has let go of it.
fn settle_ack(c: &Connection, seq: i64) -> rusqlite::Result<usize> {
    exec(
        c,
        "UPDATE transitions SET sent_body = o.body FROM (SELECT group_id, dedup_id, body FROM outbox WHERE seq = ?1) o
         WHERE transitions.pk = o.group_id AND transitions.transition_id = o.dedup_id",
        [seq],
    )?;
    exec(c, "DELETE FROM outbox WHERE seq = ?1", [seq])
}

/// Appends a message to its group unless `dedup_id` is already queued (SQS FIFO dedup).
/// Runs inside the caller's transaction: the store calls it in the event's own job.
pub(crate) fn enqueue(
    c: &Connection,
    group_id: &str,
    dedup_id: &str,
    body: &str,
) -> rusqlite::Result<()> {
    // Checked within the group (its index) rather than by a unique index on `dedup_id`: a
    // random-keyed index costs a page write per insert, and a group holds few messages.
    exec(
        c,
        "INSERT INTO outbox (group_id, dedup_id, body) SELECT ?1, ?2, ?3
         WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE group_id = ?1 AND dedup_id = ?2)",
        params![group_id, dedup_id, body],
    )
    .map(|_| ())
}

#[async_trait]
impl TransitionQueue for Outbox {
    async fn publish(&self, message: &TransitionMessage) -> Result<(), QueueError> {
        let group = message.group_id();
        let id = message.transition_id.clone();
        let body = serde_json::to_string(message).map_err(unavailable)?;
        self.with_conn(move |c| enqueue(c, &group, &id, &body).map_err(unavailable))
            .await
    }
}

#[async_trait]
impl PullQueue for Outbox {
    /// Hands out up to `max` messages whose group head is visible at `now_ms`, oldest first,
    /// at most one per group (the next one of a group follows once this one is acked),
    /// and makes them invisible for `visibility_ms`.
    async fn receive(
        &self,
        now_ms: i64,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<OutboxMessage>, QueueError> {
        self.with_conn(move |c| {
            let msgs = {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT o.seq, o.group_id, o.body, o.receive_count FROM outbox o
                         WHERE o.dead = 0 AND o.visible_at <= ?1
                           AND o.seq = (SELECT MIN(seq) FROM outbox h WHERE h.group_id = o.group_id AND h.dead = 0)
                         ORDER BY o.seq LIMIT ?2",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![now_ms, max as i64], |r| {
                        Ok(OutboxMessage {
                            seq: r.get(0)?,
                            group_id: r.get(1)?,
                            body: r.get(2)?,
                            receive_count: r.get::<_, u32>(3)? + 1,
                        })
                    })
                    .map_err(unavailable)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?
            };
            for m in &msgs {
                exec(c,
                    "UPDATE outbox SET receive_count = receive_count + 1, visible_at = ?1 WHERE seq = ?2",
                    params![now_ms + visibility_ms, m.seq],
                )
                .map_err(unavailable)?;
            }
            Ok(msgs)
        })
        .await
    }

    /// Acks and nacks of a whole batch in one transaction.
    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), QueueError> {
        self.with_conn(move |c| {
            for settlement in &settlements {
                match settlement {
                    Settlement::Ack { seq } => settle_ack(c, *seq),
                    Settlement::Nack {
                        seq,
                        retry_at_ms,
                        dead,
                        error,
                    } => exec(
                        c,
                        "UPDATE outbox SET visible_at = ?1, dead = ?2, last_error = ?3 WHERE seq = ?4",
                        params![retry_at_ms, dead, error, seq],
                    ),
                }
                .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Requeue for Outbox {
    async fn requeue(
        &self,
        message: &TransitionMessage,
        _replay_id: &str,
    ) -> Result<(), QueueError> {
        let group = message.group_id();
        let id = message.transition_id.clone();
        let body = serde_json::to_string(message).map_err(unavailable)?;
        self.with_conn(move |c| {
            // A dead copy is revived rather than doubled; a live one stays as it is.
            let revived = exec(
                c,
                "UPDATE outbox SET dead = 0, receive_count = 0, visible_at = 0, last_error = NULL
                 WHERE group_id = ?1 AND dedup_id = ?2 AND dead = 1",
                params![group, id],
            )
            .map_err(unavailable)?;
            if revived == 0 {
                enqueue(c, &group, &id, &body).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl DeadLetters for Outbox {
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, group_id, body, receive_count, last_error FROM outbox
                     WHERE dead = 1 ORDER BY seq LIMIT ?1",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([max as i64], |r| {
                    Ok(DeadLetter {
                        id: r.get::<_, i64>(0)?.to_string(),
                        group: r.get(1)?,
                        body: r.get(2)?,
                        receive_count: r.get(3)?,
                        last_error: r.get(4)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        // An id that is not an outbox sequence number names no dead letter (as an unknown
        // SQS message id does): it moves nothing.
        let seqs: Option<Vec<i64>> =
            ids.map(|ids| ids.iter().filter_map(|id| id.parse().ok()).collect());
        self.with_conn(move |c| {
            const REVIVE: &str =
                "UPDATE outbox SET dead = 0, receive_count = 0, visible_at = 0 WHERE dead = 1";
            match &seqs {
                None => exec(c, REVIVE, []).map_err(unavailable),
                Some(seqs) => seqs.iter().try_fold(0, |n, seq| {
                    exec(c, &format!("{REVIVE} AND seq = ?1"), [seq])
                        .map(|m| n + m)
                        .map_err(unavailable)
                }),
            }
        })
        .await
    }
}
