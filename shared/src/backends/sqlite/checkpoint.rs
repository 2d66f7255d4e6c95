//! The WAL's upkeep, on its own thread and connection: copying the WAL into the database
//! (checkpoints) and starting it over (rewinds), so the writer thread never does either
//! (decision 77).
//!
//! Why a rewind needs the writer: SQLite starts the WAL over only when a write transaction
//! begins with every frame already copied and the database synced. Under steady writes the
//! writer commits again before any copy catches up, so the WAL would grow without bound; the
//! writer's own checkpoint (SQLite's default) does catch up, but inside a commit, behind two
//! flushes and the copy of everything the last pass left. Here the thread copies until what
//! is left is small, then holds the writer between two batches for one last copy, and the
//! writer's next transaction starts the WAL over.

use std::cell::Cell;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// WAL frames past which the thread rewinds under steady writes: 256 MiB of 4 KiB pages. Each
/// rewind pauses the writer for one short copy and its two flushes (2–4 ms under full load on
/// the bench machine, BENCHMARKS.md "Tail latency"); at ~45,000 frames/s this is one every
/// ~1.4 s, and the WAL file stays near 256 MiB. A writer with quiet moments rewinds far
/// earlier: a copy then catches up on its own and the next transaction starts the WAL over,
/// no hold needed.
pub(super) const REWIND_FRAMES: i64 = 64_000;
/// WAL pages past which the writer checkpoints on its own, as SQLite does by default: the
/// safety net for when this thread is not running or cannot keep up.
pub(super) const WRITER_CHECKPOINT_PAGES: i64 = 2 * REWIND_FRAMES;
/// How often the thread copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// Most copies before the held one; a copy quicker than `QUICK_COPY` left little behind, so
/// the next is the held one.
const CONVERGE_COPIES: u32 = 6;
const QUICK_COPY: Duration = Duration::from_millis(3);

/// Starts the thread on its own connection `conn` to the file at `path`, until `writer` (the
/// writer thread's connection) is dropped; a final TRUNCATE checkpoint then empties the WAL.
/// `false` when it could not be started (the writer then checkpoints at SQLite's usual
/// threshold).
pub(super) fn spawn(
    conn: Connection,
    path: &Path,
    writer: Weak<Mutex<Connection>>,
    pause: Arc<WriterPause>,
) -> bool {
    let checkpointer = match Checkpointer::new(conn, path, writer, pause, REWIND_FRAMES) {
        Ok(checkpointer) => checkpointer,
        Err(e) => {
            tracing::error!(error = %e, "could not open the database file for the checkpoint thread");
            return false;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpointer.run());
    if let Err(e) = &spawned {
        tracing::error!(error = %e, "could not start the WAL checkpoint thread");
    }
    spawned.is_ok()
}

/// The writer thread's pause between batches. The writer's connection lock is not fair: a
/// writer under load takes it again the instant it lets go, and a thread waiting on it alone
/// measured waits of up to 50 ms. So the thread asks here first; the writer looks before
/// each batch and waits while asked, and the lock comes free within one batch.
#[derive(Default)]
pub(crate) struct WriterPause {
    asked: AtomicBool,
    /// Guards only the hand-over between `end` and a waiting writer (no lost wake-up).
    lock: Mutex<()>,
    resumed: Condvar,
}

impl WriterPause {
    /// Called by the writer before each batch: returns at once unless a pause is asked.
    pub(crate) fn wait(&self) {
        if !self.asked.load(Ordering::Acquire) {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.asked.load(Ordering::Acquire) {
            guard = self.resumed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A writer that looked just before this runs one more batch first, which is all the
    /// thread waits for.
    fn ask(&self) {
        self.asked.store(true, Ordering::Release);
    }

    fn end(&self) {
        {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.asked.store(false, Ordering::Release);
        }
        self.resumed.notify_all();
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum CheckpointError {
    #[error("checkpoint: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("syncing the database file: {0}")]
    Sync(#[from] std::io::Error),
    #[error("the writer's connection lock is poisoned")]
    Poisoned,
}

/// Frames in the WAL, and how many of them are copied into the database.
#[derive(Debug, Clone, Copy)]
pub(super) struct Copied {
    pub(super) log: i64,
    pub(super) done: i64,
}

pub(super) struct Checkpointer {
    conn: Connection,
    /// The thread's own descriptor of the database file, to flush copied pages early.
    db: File,
    /// Copied frames at the last flush of `db` (nothing new to flush when unchanged).
    synced: Cell<i64>,
    writer: Weak<Mutex<Connection>>,
    pause: Arc<WriterPause>,
    rewind_frames: i64,
}

impl Checkpointer {
    pub(super) fn new(
        conn: Connection,
        path: &Path,
        writer: Weak<Mutex<Connection>>,
        pause: Arc<WriterPause>,
        rewind_frames: i64,
    ) -> std::io::Result<Self> {
        let _ = conn.busy_timeout(Duration::from_secs(5));
        Ok(Checkpointer {
            conn,
            db: File::open(path)?,
            synced: Cell::new(0),
            writer,
            pause,
            rewind_frames,
        })
    }

    fn run(self) {
        while self.writer.strong_count() > 0 {
            if let Err(e) = self.tick() {
                tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
            }
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    /// One copy, and a rewind when the WAL is past its threshold.
    pub(super) fn tick(&self) -> Result<Copied, CheckpointError> {
        let copied = self.copy()?;
        if copied.log >= self.rewind_frames {
            return self.rewind();
        }
        Ok(copied)
    }

    /// A PASSIVE checkpoint (never waits for the writer), then a flush of what it copied.
    fn copy(&self) -> Result<Copied, CheckpointError> {
        let copied = self.checkpoint()?;
        self.flush(copied)?;
        Ok(copied)
    }

    fn checkpoint(&self) -> Result<Copied, CheckpointError> {
        let (log, done) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?;
        Ok(Copied { log, done })
    }

    /// Flushes the database after a copy that made progress. SQLite flushes it only when the
    /// copy ends at the WAL's *current* last frame; under load the writer has committed again
    /// by then, so even a copy that reports every frame of its snapshot copied (`done ==
    /// log`) usually left its pages unflushed. They piled up for the copy that holds the
    /// writer, whose flush then took 20-50 ms (measured in the hold: BENCHMARKS.md "Tail
    /// latency"). Flushed here, off the writer's path; when SQLite did flush, this one finds
    /// nothing to write.
    fn flush(&self, copied: Copied) -> Result<(), CheckpointError> {
        if copied.done != self.synced.replace(copied.done) {
            self.db.sync_data()?;
        }
        Ok(())
    }

    /// Copies until a copy is quick (what is left is small), then holds the writer between
    /// two batches for the last copy: it catches up, SQLite flushes the WAL and the
    /// database, and the writer's next transaction starts the WAL over. A reader holding an
    /// older snapshot (an operator command) can keep the copy from catching up; the rewind
    /// then waits for a later tick.
    fn rewind(&self) -> Result<Copied, CheckpointError> {
        let mut copies = 0;
        let copied = loop {
            let started = Instant::now();
            let copied = self.copy()?;
            copies += 1;
            if started.elapsed() < QUICK_COPY || copies == CONVERGE_COPIES {
                break copied;
            }
        };
        let Some(writer) = self.writer.upgrade() else {
            return Ok(copied);
        };
        let asked = Instant::now();
        self.pause.ask();
        let held = writer.lock().map(|_writer| {
            let started = Instant::now();
            (self.checkpoint(), started - asked, started.elapsed())
        });
        self.pause.end();
        let (copied, waited, held) = held.map_err(|_| CheckpointError::Poisoned)?;
        let copied = copied?;
        // A held copy that caught up was flushed by SQLite; one kept short by a reader is
        // flushed here, after the writer is released.
        self.flush(copied)?;
        tracing::debug!(
            waited_us = waited.as_micros() as u64,
            held_us = held.as_micros() as u64,
            caught_up = copied.done == copied.log,
            "WAL rewind"
        );
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that never checkpoints, committing batches of random-keyed rows back to back
    /// (as the group-commit thread does under load) until `stop`; returns rows committed.
    fn busy_writer(
        conn: Arc<Mutex<Connection>>,
        pause: Arc<WriterPause>,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<i64> {
        std::thread::spawn(move || {
            let mut rows = 0;
            while !stop.load(Ordering::Relaxed) {
                pause.wait();
                let c = conn.lock().unwrap();
                c.execute_batch(
                    "BEGIN IMMEDIATE;
                     INSERT INTO t (k, v) SELECT randomblob(16), randomblob(300)
                       FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4);
                     COMMIT;",
                )
                .unwrap();
                rows += 4;
                drop(c);
                std::thread::yield_now();
            }
            rows
        })
    }

    fn open(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "NORMAL").unwrap();
        c
    }

    /// Under back-to-back commits and with the writer's own checkpoints off, the thread keeps
    /// starting the WAL over, so the file holds a fraction of what the same writes grow it to
    /// without rewinds (the control), and every committed row is in the database afterwards.
    #[test]
    fn rewinds_bound_the_wal_under_steady_writes_and_lose_nothing() {
        const THRESHOLD: i64 = 300;
        let run = |rewind_frames: i64| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.db");
            let writer = open(&path);
            writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            writer
                .execute_batch("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
                .unwrap();
            let writer = Arc::new(Mutex::new(writer));
            let pause = Arc::new(WriterPause::default());
            let checkpointer = Checkpointer::new(
                open(&path),
                &path,
                Arc::downgrade(&writer),
                pause.clone(),
                rewind_frames,
            )
            .unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let busy = busy_writer(writer.clone(), pause, stop.clone());
            let (mut rewound, mut last_log) = (0, 0);
            let deadline = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < deadline {
                let copied = checkpointer.tick().unwrap();
                rewound += i32::from(copied.log < last_log);
                last_log = copied.log;
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
            let committed = busy.join().unwrap();
            let wal = std::fs::metadata(dir.path().join("w.db-wal"))
                .unwrap()
                .len();
            let stored: i64 = writer
                .lock()
                .unwrap()
                .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(stored, committed, "every committed row is stored");
            (wal, rewound, committed)
        };
        let (wal, rewound, committed) = run(THRESHOLD);
        let (unbounded, _, control_rows) = run(i64::MAX);
        assert!(rewound >= 3, "the WAL was started over ({rewound} times)");
        // How far past the threshold the WAL gets before a rewind is a matter of time, not of
        // frames: the copies before the hold take as long as the machine's flushes, and the
        // writer keeps writing meanwhile (CI on a loaded 2-core machine reached 44x the
        // threshold). So the bound is against the control, per committed row: what the same
        // writes would have grown the WAL to.
        let grown = unbounded as f64 * committed as f64 / control_rows as f64;
        assert!(
            (wal as f64) < grown / 3.0,
            "WAL file {wal} bytes after {committed} rows and {rewound} rewinds; without \
             rewinds the same rows grow it to {grown:.0} bytes"
        );
    }
}
