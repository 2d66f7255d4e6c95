//! Group commit for the embedded SQLite file: one writer thread runs every job that arrives
//! while the previous transaction is committing inside ONE transaction. A job that fails is
//! rolled back alone: the batch is first run optimistically without savepoints (a savepoint
//! copies every page a job touches into a sub-journal, a large share of the writer's time),
//! and only if a job fails is it rolled back and run again with a savepoint per job. Jobs
//! are therefore `FnMut` and must not act outside the connection. A commit that fails fails
//! every job of the batch (nothing of it was written). Results are released only after the
//! commit, so a caller never sees a write that is not durable.
//!
//! Why: in WAL mode every commit appends each page it touched to the log, and one webhook
//! touches about a dozen pages (tables and their indexes). Batching lets concurrent
//! requests share those pages and the commit, which is what makes the local gateway's
//! throughput independent of the number of concurrent providers.

use std::any::Any;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::WriterPause;

/// Runs one statement through the connection's statement cache: the writer runs the same
/// handful of statements for every event, and parsing them was a tenth of its CPU time.
pub fn exec<P: rusqlite::Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// Most jobs per transaction (bounds one batch's latency).
const MAX_BATCH: usize = 256;

type Output = Box<dyn Any + Send>;
type Run = Box<dyn FnMut(&Connection) -> Result<Output, String> + Send>;

struct Job {
    run: Run,
    reply: oneshot::Sender<Result<Output, String>>,
}

/// A handle to the writer thread of one connection. Cloning shares the thread; the thread
/// ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer thread; it waits at `pause` between batches while the checkpoint
    /// thread rewinds the WAL.
    pub fn start(conn: Arc<Mutex<Connection>>, pause: Arc<WriterPause>) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(conn, &pause, rx))
            .expect("spawning the SQLite writer thread");
        GroupCommit { jobs }
    }

    /// Runs `f` inside the next transaction; `Err` carries the SQLite error text. `f` may
    /// run twice (see the module doc); only the run that is committed counts.
    pub async fn run<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&Connection) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (reply, done) = oneshot::channel();
        let run: Run = Box::new(move |c| f(c).map(|v| Box::new(v) as Output));
        self.jobs
            .send(Job { run, reply })
            .map_err(|_| "SQLite writer thread has stopped".to_string())?;
        let out = done
            .await
            .map_err(|_| "SQLite writer thread has stopped".to_string())??;
        Ok(*out
            .downcast::<T>()
            .expect("a job's output has the job's type"))
    }
}

fn writer(conn: Arc<Mutex<Connection>>, pause: &WriterPause, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        pause.wait();
        let Ok(conn) = conn.lock() else {
            fail_all(batch, "connection lock poisoned");
            continue;
        };
        run_batch(&conn, batch);
    }
}

fn run_batch(conn: &Connection, mut batch: Vec<Job>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE", []) {
        fail_all(batch, &format!("begin: {e}"));
        return;
    }
    let mut outputs = Vec::with_capacity(batch.len());
    for job in &mut batch {
        match (job.run)(conn) {
            Ok(output) => outputs.push(Ok(output)),
            Err(_) => break,
        }
    }
    if outputs.len() < batch.len() {
        // A job failed: undo the whole batch and run it again, each job under a savepoint.
        // (Some errors, such as a full disk, have already rolled the transaction back.)
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                fail_all(batch, &format!("rollback: {e}"));
                return;
            }
        }
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE", []) {
            fail_all(batch, &format!("begin: {e}"));
            return;
        }
        outputs = batch
            .iter_mut()
            .map(|job| run_isolated(conn, job))
            .collect();
    }
    match exec(conn, "COMMIT", []) {
        Ok(_) => {
            for (job, output) in batch.into_iter().zip(outputs) {
                let _ = job.reply.send(output);
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(batch, &format!("commit: {e}"));
        }
    }
}

/// One job under its own savepoint: on failure only its writes are undone.
fn run_isolated(conn: &Connection, job: &mut Job) -> Result<Output, String> {
    exec(conn, "SAVEPOINT job", []).map_err(|e| format!("savepoint: {e}"))?;
    let result = (job.run)(conn);
    let end = if result.is_ok() {
        exec(conn, "RELEASE job", [])
    } else {
        exec(conn, "ROLLBACK TO job", []).and_then(|_| exec(conn, "RELEASE job", []))
    };
    end.map_err(|e| format!("savepoint end: {e}"))?;
    result
}

fn fail_all(batch: Vec<Job>, error: &str) {
    for job in batch {
        let _ = job.reply.send(Err(error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (GroupCommit, Arc<Mutex<Connection>>) {
        let conn = Arc::new(Mutex::new(Connection::open_in_memory().unwrap()));
        conn.lock()
            .unwrap()
            .execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        (GroupCommit::start(conn.clone(), Arc::default()), conn)
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_alone() {
        let (w, conn) = writer();
        let jobs = (0..50).map(|i| {
            let w = w.clone();
            async move {
                w.run(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i])
                        .map_err(|e| e.to_string())?;
                    if i % 10 == 3 {
                        // writes, then fails: its insert must not survive
                        return Err("refused".into());
                    }
                    Ok(i)
                })
                .await
            }
        });
        let results = futures::future::join_all(jobs).await;
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 5);
        let n: i64 = conn
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 45);
        assert_eq!(w.run(|_| Ok("typed")).await.unwrap(), "typed");
    }
}
