//! The end checks, once the gateway has stopped: the SQLite file (read-only) against the
//! load's ledger and the receiver's record, then the summary: each check with its counts,
//! the per-metric table (start, end, min, max) and the RSS and fd slopes after warm-up.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OpenFlags};

use crate::load::{Ledger, Stats};
use crate::receiver::{Delivered, Receiver};
use crate::sample::Sample;
use crate::Args;

pub struct Report<'a> {
    pub args: &'a Args,
    pub stats: &'a Stats,
    pub ledger: &'a Ledger,
    pub receiver: &'a Receiver,
    pub samples: &'a [Sample],
    /// Seconds from the end of the load to the sample that saw the outbox empty (or gave up).
    pub drained_after: f64,
    pub server_exit: String,
    pub db: &'a Path,
    pub server_log: &'a Path,
}

/// One transition row.
struct Transition {
    event_key: String,
    stream: String,
    queued: bool,
    delivered: bool,
}

/// What the file holds, read once.
struct Stored {
    events: HashSet<String>,
    transitions: HashMap<String, Transition>,
    outbox_live: u64,
    outbox_dead: u64,
    /// Transition ids of the live outbox rows.
    waiting: HashSet<String>,
}

fn read_store(db: &Path) -> rusqlite::Result<Stored> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut events = HashSet::new();
    let mut stmt = conn.prepare("SELECT event_key FROM events")?;
    for key in stmt.query_map([], |r| r.get::<_, String>(0))? {
        events.insert(key?);
    }
    let mut transitions = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT transition_id, event_key, pk, queued, published = 1 AND notification LIKE '%\"outcome\":\"delivered\"%' FROM transitions",
    )?;
    let rows = stmt.query_map([], |r| {
        let t = Transition {
            event_key: r.get(1)?,
            stream: r.get(2)?,
            queued: r.get::<_, i64>(3)? != 0,
            delivered: r.get::<_, Option<bool>>(4)?.unwrap_or(false),
        };
        Ok((r.get::<_, String>(0)?, t))
    })?;
    for row in rows {
        let (id, t) = row?;
        transitions.insert(id, t);
    }
    let (outbox_live, outbox_dead) = conn.query_row(
        "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM outbox",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?;
    let mut waiting = HashSet::new();
    let mut stmt = conn.prepare("SELECT dedup_id FROM outbox WHERE dead = 0")?;
    for id in stmt.query_map([], |r| r.get::<_, String>(0))? {
        waiting.insert(id?);
    }
    Ok(Stored {
        events,
        transitions,
        outbox_live,
        outbox_dead,
        waiting,
    })
}

/// The checks' lines, and whether all passed.
#[derive(Default)]
struct Checks {
    lines: Vec<String>,
    failed: usize,
}

impl Checks {
    fn add(&mut self, ok: bool, name: &str, detail: String) {
        self.failed += usize::from(!ok);
        self.lines.push(format!(
            "  [{}] {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        ));
    }
}

fn n(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Report<'_> {
    /// Runs the checks, prints and writes the summary; `true` when every check passed.
    pub fn evaluate(&self) -> anyhow::Result<bool> {
        let stored = read_store(self.db)?;
        let delivered = self.receiver.delivered();
        let mut checks = Checks::default();
        self.check_ingest(&mut checks);
        self.check_events(&mut checks, &stored);
        self.check_transitions(&mut checks, &stored);
        check_notifications(&mut checks, &stored, &delivered, self.receiver);
        checks.add(
            stored.outbox_live == 0 && stored.outbox_dead == 0,
            "outbox drained",
            format!(
                "{} live, {} dead-lettered after the drain ({:.0} s after the load stopped)",
                stored.outbox_live, stored.outbox_dead, self.drained_after
            ),
        );
        checks.add(
            self.server_exit.starts_with("exited") && self.server_exit.contains("exit status: 0"),
            "gateway stopped cleanly",
            self.server_exit.clone(),
        );
        let summary = self.summary(&checks, &delivered);
        print!("{summary}");
        std::fs::write(self.args.out.join("summary.txt"), &summary)?;
        Ok(checks.failed == 0)
    }

    fn check_ingest(&self, checks: &mut Checks) {
        let s = self.stats;
        checks.add(
            n(&s.status_5xx) == 0 && n(&s.conn_errors) == 0,
            "no ingest 5xx, every request answered",
            format!(
                "{} answered 5xx, {} connection errors or timeouts",
                n(&s.status_5xx),
                n(&s.conn_errors)
            ),
        );
        checks.add(
            n(&s.good_rejected) == 0 && n(&s.abandoned) == 0 && n(&s.new_flagged_duplicate) == 0,
            "every good request acknowledged as new",
            format!(
                "{} new events acknowledged; {} refused (4xx), {} given up, {} first sends said duplicate",
                n(&s.new_events), n(&s.good_rejected), n(&s.abandoned), n(&s.new_flagged_duplicate)
            ),
        );
        checks.add(
            n(&s.duplicate_unflagged) == 0,
            "resends answered 200 as duplicates",
            format!(
                "{} resends, {} not flagged duplicate",
                n(&s.duplicates_sent),
                n(&s.duplicate_unflagged)
            ),
        );
        let mut kinds: Vec<_> = self.ledger.bad_kinds.iter().collect();
        kinds.sort();
        let per_kind: Vec<String> = kinds
            .iter()
            .map(|(k, (sent, ok))| format!("{k} {ok}/{sent}"))
            .collect();
        checks.add(
            n(&s.bad_accepted) == 0 && n(&s.bad_unexpected) == 0,
            "bad input refused with its status",
            format!(
                "{} sent, {} accepted, {} other status; as expected per kind: {}",
                n(&s.bad_sent),
                n(&s.bad_accepted),
                n(&s.bad_unexpected),
                per_kind.join(", ")
            ),
        );
    }

    fn check_events(&self, checks: &mut Checks, stored: &Stored) {
        let acked = &self.ledger.acked;
        let missing = acked.keys().filter(|k| !stored.events.contains(*k)).count();
        let extra = stored
            .events
            .iter()
            .filter(|k| !acked.contains_key(*k))
            .count();
        checks.add(
            missing == 0 && extra == 0,
            "every acknowledged event stored exactly once",
            format!(
                "{} acknowledged unique events, {} event rows (primary key: one row per key); {missing} missing, {extra} rows not acknowledged",
                acked.len(),
                stored.events.len()
            ),
        );
        let leaked = self
            .ledger
            .forbidden
            .iter()
            .filter(|k| stored.events.contains(*k))
            .count();
        checks.add(
            leaked == 0,
            "no bad request stored",
            format!(
                "{} bad requests' event keys looked up, {leaked} found",
                self.ledger.forbidden.len()
            ),
        );
    }

    fn check_transitions(&self, checks: &mut Checks, stored: &Stored) {
        let mut per_event: HashMap<&str, u32> = HashMap::new();
        for t in stored.transitions.values() {
            *per_event.entry(t.event_key.as_str()).or_default() += 1;
        }
        let expected: u64 = self.ledger.acked.values().map(|&n| u64::from(n)).sum();
        let wrong = self
            .ledger
            .acked
            .iter()
            .filter(|(k, &want)| per_event.get(k.as_str()).copied().unwrap_or(0) != want)
            .count();
        let queued = stored.transitions.values().filter(|t| t.queued).count();
        checks.add(
            wrong == 0 && stored.transitions.len() as u64 == expected && queued as u64 == expected,
            "transitions as the flows predict",
            format!(
                "{expected} predicted, {} stored, {queued} queued; {wrong} events with another count",
                stored.transitions.len()
            ),
        );
    }

    /// The summary text: load, checks, metric table, slopes, log lines.
    fn summary(&self, checks: &Checks, delivered: &HashMap<String, Delivered>) -> String {
        let mut out = String::new();
        let s = self.stats;
        let _ = writeln!(out, "soak summary");
        let _ = writeln!(
            out,
            "load: {} s at {} req/s target over {} connections; sent {} ({} new events, {} resends, {} bad), {} accepted",
            self.args.seconds, self.args.rate, self.args.concurrency, n(&s.sent), n(&s.new_events),
            n(&s.duplicates_sent), n(&s.bad_sent), n(&s.accepted)
        );
        let mut providers: Vec<_> = self
            .ledger
            .per_provider
            .iter()
            .map(|(p, c)| format!("{} {c}", p.as_str()))
            .collect();
        providers.sort();
        let _ = writeln!(out, "new events per provider: {}", providers.join(", "));
        let r = &self.receiver.counters;
        let repeats = delivered.values().filter(|d| d.count > 1).count();
        let _ = writeln!(
            out,
            "receiver: {} requests, {} answered 503, {} held past the timeout, {} delivered ({} ids, {} delivered more than once)",
            n(&r.requests), n(&r.answered_503), n(&r.hung), n(&r.delivered), delivered.len(), repeats
        );
        let _ = writeln!(out, "checks:");
        for line in &checks.lines {
            let _ = writeln!(out, "{line}");
        }
        out.push_str(&metric_table(self.samples));
        out.push_str(&slopes(self.samples, self.args.warmup() as f64));
        out.push_str(&log_lines(self.server_log));
        let verdict = if checks.failed == 0 {
            "PASS".to_string()
        } else {
            format!("FAIL ({} checks)", checks.failed)
        };
        let _ = writeln!(out, "result: {verdict}");
        out
    }
}

/// Every queued transition delivered (receiver and store agree), nothing else delivered,
/// repeats only under the same id, every signature verified.
fn check_notifications(
    checks: &mut Checks,
    stored: &Stored,
    delivered: &HashMap<String, Delivered>,
    receiver: &Receiver,
) {
    let queued: Vec<(&String, &Transition)> = stored
        .transitions
        .iter()
        .filter(|(_, t)| t.queued)
        .collect();
    let unseen = queued
        .iter()
        .filter(|(id, _)| !delivered.contains_key(*id))
        .count();
    // Safety apart from liveness: a transition not delivered yet must still be waiting in the
    // outbox, never dropped or dead-lettered.
    let lost = queued
        .iter()
        .filter(|(id, _)| !delivered.contains_key(*id) && !stored.waiting.contains(*id))
        .count();
    checks.add(
        lost == 0 && stored.outbox_dead == 0,
        "no transition lost",
        format!(
            "{} queued: {} delivered, {unseen} not yet, of which {lost} neither delivered nor waiting in the outbox; {} dead-lettered",
            queued.len(),
            queued.len() - unseen,
            stored.outbox_dead
        ),
    );
    let unrecorded = queued.iter().filter(|(_, t)| !t.delivered).count();
    checks.add(
        unseen == 0 && unrecorded == 0,
        "every transition notified at least once",
        format!(
            "{} queued transitions; {unseen} never answered 200 by the receiver, {unrecorded} not recorded delivered",
            queued.len()
        ),
    );
    check_ids(checks, stored, delivered);
    let c = &receiver.counters;
    checks.add(
        n(&c.bad_signature) == 0 && n(&c.bad_body) == 0,
        "every notification signed (Standard Webhooks) and well-formed",
        format!(
            "{} bad signatures, {} bodies not matching their webhook-id, {} timestamps off by > 5 min (informational)",
            n(&c.bad_signature), n(&c.bad_body), n(&c.stale_timestamp)
        ),
    );
}

/// Every delivered id is a stored transition of the same event and entity, and no (event,
/// entity) pair was delivered under two ids: a repeat is only ever the same `webhook-id`.
fn check_ids(checks: &mut Checks, stored: &Stored, delivered: &HashMap<String, Delivered>) {
    let mismatched = delivered
        .iter()
        .filter(|(id, d)| {
            stored
                .transitions
                .get(*id)
                .is_none_or(|t| t.event_key != d.event_key || t.stream != d.group)
        })
        .count();
    let pairs: HashSet<(&str, &str)> = delivered
        .values()
        .map(|d| (d.event_key.as_str(), d.group.as_str()))
        .collect();
    let repeats: u32 = delivered.values().map(|d| d.count.saturating_sub(1)).sum();
    checks.add(
        mismatched == 0 && pairs.len() == delivered.len(),
        "repeats only under the same webhook-id",
        format!(
            "{} ids delivered, {repeats} repeat deliveries; {mismatched} ids unknown to the store or naming another event/entity, {} (event, entity) pairs under two ids",
            delivered.len(),
            delivered.len() - pairs.len()
        ),
    );
}

/// Start, end, min and max of each sampled metric (load and drain samples together).
fn metric_table(samples: &[Sample]) -> String {
    type Get = fn(&Sample) -> f64;
    let metrics: [(&str, Get); 8] = [
        ("rss_mib", |s| s.rss_kib as f64 / 1024.0),
        ("fds", |s| s.fds as f64),
        ("threads", |s| s.threads as f64),
        ("wal_mib", |s| s.wal_bytes as f64 / 1_048_576.0),
        ("db_mib", |s| s.db_bytes as f64 / 1_048_576.0),
        ("outbox_live", |s| s.outbox_live.unwrap_or(0) as f64),
        ("accepted_per_s", |s| s.accepted_per_s),
        ("p99_ms", |s| s.p99_ms),
    ];
    let mut out = String::from("metric           start        end        min        max\n");
    let Some((first, last)) = samples.first().zip(samples.last()) else {
        return out;
    };
    for (name, get) in metrics {
        let values = samples.iter().map(get);
        let min = values.clone().fold(f64::INFINITY, f64::min);
        let max = values.fold(f64::NEG_INFINITY, f64::max);
        let _ = writeln!(
            out,
            "{name:<14} {:>9.2} {:>10.2} {min:>10.2} {max:>10.2}",
            get(first),
            get(last)
        );
    }
    out
}

/// Least-squares slope of y over x, and the number of points.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let len = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / len, b + y / len));
    let (num, den) = points.iter().fold((0.0, 0.0), |(n, d), (x, y)| {
        (n + (x - mx) * (y - my), d + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

/// RSS and fd slopes over the load samples after `warmup` seconds, per hour.
fn slopes(samples: &[Sample], warmup: f64) -> String {
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.phase == "load" && s.t_s >= warmup)
        .collect();
    let fit = |get: fn(&Sample) -> f64| {
        let points: Vec<(f64, f64)> = after.iter().map(|s| (s.t_s / 3600.0, get(s))).collect();
        slope(&points).map_or("n/a".to_string(), |v| format!("{v:+.2}"))
    };
    format!(
        "slopes after {warmup:.0} s of warm-up ({} samples): RSS {} MiB/hour, fds {} per hour, WAL {} MiB/hour, outbox {} rows/hour\n",
        after.len(),
        fit(|s| s.rss_kib as f64 / 1024.0),
        fit(|s| s.fds as f64),
        fit(|s| s.wal_bytes as f64 / 1_048_576.0),
        fit(|s| s.outbox_live.unwrap_or(0) as f64)
    )
}

/// The gateway's log lines counted by level and message (WARN and up were logged).
fn log_lines(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let level = v["level"].as_str().unwrap_or("?").to_string();
        let message = v["fields"]["message"]
            .as_str()
            .or(v["message"].as_str())
            .unwrap_or(line);
        *counts
            .entry((level, message.chars().take(90).collect()))
            .or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let mut out = String::from("gateway log (WARN and up), by message:\n");
    for ((level, message), count) in counts.iter().take(12) {
        let _ = writeln!(out, "  {count:>8}  {level:<5} {message}");
    }
    out
}
