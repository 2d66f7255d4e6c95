//! The samples: every `--sample-secs`, the gateway's RSS, threads and open fds (from /proc),
//! its CPU share, the WAL and database file sizes, the outbox depth (a read-only SQLite
//! connection of its own, one short query, so it never holds the WAL back), and over the
//! interval: requests sent and accepted per second, the accepted requests' p50/p99/max
//! latency, notifications delivered per second; each a CSV line as it is taken.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::load::Stats;
use crate::receiver::Receiver;
use crate::server::Gateway;
use crate::Args;

pub const CSV_HEADER: &str = "t_s,phase,rss_kib,fds,threads,wal_bytes,db_bytes,outbox_live,outbox_dead,sent_per_s,accepted_per_s,p50_ms,p99_ms,max_ms,ingest_5xx,conn_errors,notified_per_s,server_cpu_pct,loadavg1";

/// One sample. Counts are per second over the interval before it; `ingest_5xx` and
/// `conn_errors` are running totals.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub t_s: f64,
    pub phase: &'static str,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub wal_bytes: u64,
    pub db_bytes: u64,
    pub outbox_live: Option<u64>,
    pub outbox_dead: Option<u64>,
    pub sent_per_s: f64,
    pub accepted_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub ingest_5xx: u64,
    pub conn_errors: u64,
    pub notified_per_s: f64,
    pub server_cpu_pct: f64,
    pub loadavg1: f64,
}

impl Sample {
    fn csv(&self) -> String {
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        let ms = |v: f64| {
            if v.is_nan() {
                String::new()
            } else {
                format!("{v:.3}")
            }
        };
        format!(
            "{:.1},{},{},{},{},{},{},{},{},{:.1},{:.1},{},{},{},{},{},{:.1},{:.1},{:.2}",
            self.t_s,
            self.phase,
            self.rss_kib,
            self.fds,
            self.threads,
            self.wal_bytes,
            self.db_bytes,
            opt(self.outbox_live),
            opt(self.outbox_dead),
            self.sent_per_s,
            self.accepted_per_s,
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms),
            self.ingest_5xx,
            self.conn_errors,
            self.notified_per_s,
            self.server_cpu_pct,
            self.loadavg1
        )
    }
}

/// Running totals at the previous sample, to turn counters into rates.
#[derive(Default)]
struct Last {
    at: Option<Instant>,
    sent: u64,
    accepted: u64,
    notified: u64,
    cpu_ticks: u64,
}

pub struct Sampler {
    pid: u32,
    db: PathBuf,
    every: Duration,
    load_secs: f64,
    stats: Arc<Stats>,
    receiver: Arc<Receiver>,
    csv: File,
    last: Last,
    samples: Vec<Sample>,
}

impl Sampler {
    pub fn new(
        args: &Args,
        gateway: &Gateway,
        stats: Arc<Stats>,
        receiver: Arc<Receiver>,
    ) -> anyhow::Result<Sampler> {
        let mut csv = File::create(args.out.join("soak.csv"))?;
        writeln!(csv, "{CSV_HEADER}")?;
        Ok(Sampler {
            pid: gateway.pid(),
            db: gateway.db_path().to_path_buf(),
            every: Duration::from_secs(args.sample_secs.max(1)),
            load_secs: args.seconds as f64,
            stats,
            receiver,
            csv,
            last: Last::default(),
            samples: Vec::new(),
        })
    }

    /// Samples on the `every` grid from `started` until `done` says so (checked after each).
    pub async fn run_until(
        &mut self,
        started: Instant,
        done: impl Fn(&Sample) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            let ticks = started.elapsed().as_secs_f64() / self.every.as_secs_f64();
            let next = started + self.every.mul_f64(ticks.floor() + 1.0);
            tokio::time::sleep_until(next.into()).await;
            let sample = self.take(started.elapsed().as_secs_f64());
            writeln!(self.csv, "{}", sample.csv())?;
            self.csv.flush()?;
            let stop = done(&sample);
            self.samples.push(sample);
            if stop {
                return Ok(());
            }
        }
    }

    pub fn finish(self) -> anyhow::Result<Vec<Sample>> {
        Ok(self.samples)
    }

    fn take(&mut self, t_s: f64) -> Sample {
        let now = Instant::now();
        let secs = self
            .last
            .at
            .map_or(self.every.as_secs_f64(), |t| (now - t).as_secs_f64());
        let (rss_kib, threads) = proc_status(self.pid);
        let cpu_ticks = proc_cpu_ticks(self.pid);
        let (outbox_live, outbox_dead) = outbox_depth(&self.db);
        let latencies = std::mem::take(&mut *self.stats.latencies_us.lock().expect("latency lock"));
        let (p50_ms, p99_ms, max_ms) = percentiles(latencies);
        let sent = self.stats.sent.load(Ordering::Relaxed);
        let accepted = self.stats.accepted.load(Ordering::Relaxed);
        let notified = self.receiver.counters.delivered.load(Ordering::Relaxed);
        let rate = |now: u64, before: u64| (now - before) as f64 / secs;
        let sample = Sample {
            t_s,
            phase: if t_s <= self.load_secs + 0.5 {
                "load"
            } else {
                "drain"
            },
            rss_kib,
            fds: count_fds(self.pid),
            threads,
            wal_bytes: file_len(&format!("{}-wal", self.db.display())),
            db_bytes: file_len(&self.db.display().to_string()),
            outbox_live,
            outbox_dead,
            sent_per_s: rate(sent, self.last.sent),
            accepted_per_s: rate(accepted, self.last.accepted),
            p50_ms,
            p99_ms,
            max_ms,
            ingest_5xx: self.stats.status_5xx.load(Ordering::Relaxed),
            conn_errors: self.stats.conn_errors.load(Ordering::Relaxed),
            notified_per_s: rate(notified, self.last.notified),
            server_cpu_pct: rate(cpu_ticks, self.last.cpu_ticks), // 100 ticks/s: ticks/s = %
            loadavg1: loadavg1(),
        };
        self.last = Last {
            at: Some(now),
            sent,
            accepted,
            notified,
            cpu_ticks,
        };
        sample
    }
}

/// p50, p99 and max in ms of a list of µs latencies (NaN when empty: no request, no latency).
fn percentiles(mut us: Vec<u32>) -> (f64, f64, f64) {
    if us.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    us.sort_unstable();
    let at = |p: f64| {
        let i = ((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1;
        f64::from(us[i]) / 1_000.0
    };
    (at(0.50), at(0.99), at(1.0))
}

/// VmRSS (KiB) and Threads of /proc/PID/status.
fn proc_status(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// utime + stime of /proc/PID/stat, in clock ticks (USER_HZ, 100 on Linux).
fn proc_cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after ")": state is field 3 of the man page, so utime (14) and stime (15) are 11 and 12.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

fn count_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn file_len(path: &str) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Live and dead outbox rows, read-only; `None` when the file could not be read just then.
pub fn outbox_depth(db: &std::path::Path) -> (Option<u64>, Option<u64>) {
    let read = || -> rusqlite::Result<(u64, u64)> {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(2))?;
        conn.query_row(
            "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM outbox",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
    };
    match read() {
        Ok((live, dead)) => (Some(live), Some(dead)),
        Err(_) => (None, None),
    }
}
