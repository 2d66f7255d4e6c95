//! The load: `--concurrency` connections, each with one request in flight, paced together to
//! `--rate` requests per second (a shared schedule; a connection waits for its slot). Every
//! slot draws: ~10 % an exact resend of a request this connection already had acknowledged
//! (a provider retrying a delivery it saw time out), ~5 % a bad variant of the next request
//! (wrong or missing credential, malformed JSON, oversized), otherwise the next step of the
//! connection's current flow ([`crate::flows`]). A good request answered 5xx or not at all
//! is sent again as a provider would (up to 5 times); the ledger records what was finally
//! acknowledged, and the transitions each acknowledged event must have caused.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::flows::{self, reports_duplicates, Fixtures, Source, SplitMix, Step};
use crate::http::{Answer, Conn};
use crate::Args;

const DUPLICATE_SHARE: f64 = 0.10;
const BAD_SHARE: f64 = 0.05;
/// The gateway's MAX_BODY_BYTES default: the oversized variant goes 1 KiB past it.
const MAX_BODY: usize = 262_144;
/// Acknowledged requests a connection remembers for resending.
const RECENT: usize = 256;
const MAX_ATTEMPTS: u32 = 5;

/// Counters shared with the sampler and the report.
#[derive(Default)]
pub struct Stats {
    pub sent: AtomicU64,
    /// 200 answers, new events and resends.
    pub accepted: AtomicU64,
    pub new_events: AtomicU64,
    pub duplicates_sent: AtomicU64,
    /// A resend answered 200 whose answer does not say `"duplicate": true`.
    pub duplicate_unflagged: AtomicU64,
    /// A first send answered `"duplicate": true` (the generator repeated itself).
    pub new_flagged_duplicate: AtomicU64,
    pub bad_sent: AtomicU64,
    /// A bad request answered otherwise than expected (never 200 or 5xx: those count below).
    pub bad_unexpected: AtomicU64,
    /// A bad request answered 200.
    pub bad_accepted: AtomicU64,
    pub status_5xx: AtomicU64,
    /// A good request answered 4xx.
    pub good_rejected: AtomicU64,
    pub conn_errors: AtomicU64,
    /// Good requests given up after MAX_ATTEMPTS.
    pub abandoned: AtomicU64,
    /// Latencies (µs) of this interval's 200 answers; the sampler takes them.
    pub latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the load did, for the end checks.
#[derive(Default)]
pub struct Ledger {
    /// Event key of every acknowledged new event → transitions it must have caused.
    pub acked: HashMap<String, u32>,
    /// Event keys of bad requests: never to be stored.
    pub forbidden: Vec<String>,
    /// Acknowledged new events per provider.
    pub per_provider: HashMap<Source, u64>,
    /// Bad requests per kind: (sent, answered as expected).
    pub bad_kinds: HashMap<&'static str, (u64, u64)>,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.acked.extend(other.acked);
        self.forbidden.extend(other.forbidden);
        for (p, n) in other.per_provider {
            *self.per_provider.entry(p).or_default() += n;
        }
        for (k, (s, e)) in other.bad_kinds {
            let slot = self.bad_kinds.entry(k).or_default();
            slot.0 += s;
            slot.1 += e;
        }
    }
}

/// The shared schedule: one slot every 1/rate s; a connection that falls more than a second
/// behind does not get a burst to catch up.
struct Pacer {
    period: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().expect("pacer lock");
            let now = Instant::now();
            if *next + Duration::from_secs(1) < now {
                *next = now;
            }
            let slot = *next;
            *next += self.period;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Starts the load; the handle yields the merged ledger when `args.seconds` have passed.
pub fn spawn(args: &Args, stats: Arc<Stats>) -> anyhow::Result<JoinHandle<anyhow::Result<Ledger>>> {
    let fixtures = Arc::new(Fixtures::load(&args.fixtures)?);
    let pacer = Arc::new(Pacer {
        period: Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1))),
        next: Mutex::new(Instant::now()),
    });
    let shared = Arc::new(Shared {
        fixtures,
        pacer,
        stats,
        next_flow: AtomicU64::new(1),
        run: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
        port: args.port,
        deadline: Instant::now() + Duration::from_secs(args.seconds),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            tokio::spawn(Worker::new(shared.clone(), seed).run())
        })
        .collect();
    Ok(tokio::spawn(async move {
        let mut ledger = Ledger::default();
        for w in workers {
            ledger.merge(w.await?);
        }
        Ok(ledger)
    }))
}

struct Shared {
    fixtures: Arc<Fixtures>,
    pacer: Arc<Pacer>,
    stats: Arc<Stats>,
    next_flow: AtomicU64,
    run: u64,
    port: u16,
    deadline: Instant,
}

struct Worker {
    shared: Arc<Shared>,
    conn: Conn,
    rng: SplitMix,
    /// The rest of the current flow; the head is the next good request.
    pending: VecDeque<Step>,
    /// Attempts of the head so far (a retry may find it already stored).
    attempts: u32,
    recent: VecDeque<(Source, Arc<Vec<u8>>)>,
    ledger: Ledger,
}

impl Worker {
    fn new(shared: Arc<Shared>, seed: u64) -> Worker {
        let conn = Conn::new(shared.port);
        Worker {
            shared,
            conn,
            rng: SplitMix::new(seed),
            pending: VecDeque::new(),
            attempts: 0,
            recent: VecDeque::with_capacity(RECENT),
            ledger: Ledger::default(),
        }
    }

    async fn run(mut self) -> Ledger {
        while Instant::now() < self.shared.deadline {
            self.shared.pacer.wait().await;
            if self.pending.is_empty() {
                let n = self.shared.next_flow.fetch_add(1, Ordering::Relaxed);
                let kind = flows::KINDS[self.rng.below(flows::KINDS.len() as u64) as usize];
                self.pending = flows::flow(&self.shared.fixtures, kind, n, self.shared.run).into();
                self.attempts = 0;
            }
            let draw = self.rng.fraction();
            if draw < DUPLICATE_SHARE && !self.recent.is_empty() {
                self.resend().await;
            } else if draw < DUPLICATE_SHARE + BAD_SHARE {
                self.send_bad().await;
            } else {
                self.send_next().await;
            }
        }
        self.ledger
    }

    /// Sends `bytes`, counting it; the latency of a 200 goes to the interval's list.
    async fn send(&mut self, bytes: &[u8], close: bool) -> Option<Answer> {
        let stats = &self.shared.stats;
        Stats::bump(&stats.sent);
        let started = Instant::now();
        match self.conn.send(bytes, close).await {
            Ok(answer) => {
                if answer.status == 200 {
                    Stats::bump(&stats.accepted);
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    stats.latencies_us.lock().expect("latency lock").push(us);
                } else if answer.status >= 500 {
                    Stats::bump(&stats.status_5xx);
                }
                Some(answer)
            }
            Err(_) => {
                Stats::bump(&stats.conn_errors);
                None
            }
        }
    }

    /// An exact resend of an acknowledged request: 200, flagged a duplicate.
    async fn resend(&mut self) {
        let i = self.rng.below(self.recent.len() as u64) as usize;
        let (provider, bytes) = self.recent[i].clone();
        Stats::bump(&self.shared.stats.duplicates_sent);
        if let Some(answer) = self.send(&bytes, false).await {
            if answer.status == 200
                && reports_duplicates(provider)
                && !says_duplicate(&answer, true)
            {
                Stats::bump(&self.shared.stats.duplicate_unflagged);
            }
        }
    }

    /// A bad variant of the next request; the request itself stays next.
    async fn send_bad(&mut self) {
        let which = self.rng.below(4);
        let bad = flows::bad(&self.pending[0].request, which, MAX_BODY);
        let close = bad.expected == 413;
        let bytes = bad.request.frame(self.shared.port, close);
        Stats::bump(&self.shared.stats.bad_sent);
        self.ledger.forbidden.extend(bad.forbidden);
        let answer = self.send(&bytes, close).await;
        let as_expected = answer.as_ref().is_some_and(|a| a.status == bad.expected);
        let slot = self.ledger.bad_kinds.entry(bad.label).or_default();
        slot.0 += 1;
        slot.1 += u64::from(as_expected);
        match answer {
            Some(a) if a.status == 200 => Stats::bump(&self.shared.stats.bad_accepted),
            Some(a) if a.status < 500 && !as_expected => {
                Stats::bump(&self.shared.stats.bad_unexpected)
            }
            _ => {}
        }
    }

    /// The next step of the flow; on 200 it is recorded and the flow moves on.
    async fn send_next(&mut self) {
        let step = &self.pending[0];
        let (provider, key, transitions) = (
            step.request.provider,
            step.request.event_key(),
            step.transitions,
        );
        let bytes = Arc::new(step.request.frame(self.shared.port, false));
        self.attempts += 1;
        let answer = self.send(&bytes, false).await;
        let stats = &self.shared.stats;
        match answer {
            Some(a) if a.status == 200 => {
                if self.attempts == 1 && reports_duplicates(provider) && says_duplicate(&a, true) {
                    Stats::bump(&stats.new_flagged_duplicate);
                }
                Stats::bump(&stats.new_events);
                self.ledger.acked.insert(key, transitions);
                *self.ledger.per_provider.entry(provider).or_default() += 1;
                if self.recent.len() == RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back((provider, bytes));
                self.pending.pop_front();
                self.attempts = 0;
            }
            Some(a) if a.status < 500 => {
                // A good request refused: the rest of its flow would not mean what it says.
                Stats::bump(&stats.good_rejected);
                self.pending.clear();
            }
            _ if self.attempts >= MAX_ATTEMPTS => {
                Stats::bump(&stats.abandoned);
                self.pending.clear();
            }
            _ => {}
        }
    }
}

/// The answer's `duplicate` flag is `flag` (Plain: top level; Pancake: in `data`).
fn says_duplicate(answer: &Answer, flag: bool) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        return false;
    };
    let found = v.get("duplicate").or_else(|| v.pointer("/data/duplicate"));
    found.and_then(serde_json::Value::as_bool) == Some(flag)
}
