//! The soak driver (issue #16): `webhooks-local` under sustained mixed load for a given time,
//! with a notification receiver that fails and hangs, sampled every few seconds, then checked
//! for what was acknowledged, stored and notified.
//!
//! usage (bench/soak.sh builds both and runs this with its defaults):
//!   cargo run --release -p webhooks-local --example soak -- \
//!     --server target/release/webhooks-local --out target/soak [--seconds 1800] [--rate 500]
//!
//! What it does, in order:
//! 1. starts its receiver ([`receiver`]) on a loopback port: it answers 503 to ~10 % of the
//!    notifications, holds ~1 % past the notifier's timeout, checks every Standard Webhooks
//!    signature with its own HMAC code, and records each `webhook-id` it answered 200;
//! 2. starts the gateway on a loopback port over a fresh SQLite file, `NOTIFY_URL` pointing at
//!    the receiver, with the development credentials (no credential variable is passed on);
//! 3. runs the load ([`load`]): fixed concurrency, paced to a fixed request rate, five
//!    providers' fixture-shaped events, ~10 % exact resends, ~5 % bad input;
//! 4. samples RSS, fds, WAL, outbox depth, accepted/s and p99 every `--sample-secs` into
//!    `soak.csv` ([`sample`]);
//! 5. stops the load, waits (bounded) for the outbox to drain, stops the gateway with SIGTERM,
//!    and checks ([`check`]); prints the summary, writes `summary.txt`, and exits 1 when a
//!    check failed.
//!
//! Loopback only; bounded in time (`--seconds` + `--drain-secs`) and in rate.

mod check;
mod flows;
mod http;
#[path = "../common/http1.rs"]
mod http1;
mod load;
mod receiver;
mod sample;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

/// The receiver's Standard Webhooks secret (base64 of "soak-notify-secret-0123456789").
const NOTIFY_SECRET: &str = "whsec_c29hay1ub3RpZnktc2VjcmV0LTAxMjM0NTY3ODk=";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "soak",
    about = "Soak webhooks-local: mixed load, a flaky receiver, samples and end checks"
)]
pub struct Args {
    /// The webhooks-local binary to start (a release build).
    #[arg(long, default_value = "target/release/webhooks-local")]
    server: PathBuf,
    /// The provider payloads the events are made from.
    #[arg(long, default_value = "shared/fixtures")]
    fixtures: PathBuf,
    /// Where soak.csv, summary.txt, server.log and the SQLite file go.
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
    /// How long the load runs.
    #[arg(long, default_value_t = 1800)]
    seconds: u64,
    /// Requests per second, all kinds together (paced; the concurrency caps it too).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The gateway's port (loopback).
    #[arg(long, default_value_t = 3910)]
    port: u16,
    /// NOTIFY_TIMEOUT_MS given to the gateway; a hung notification is held 1 s longer.
    #[arg(long, default_value_t = 5000)]
    notify_timeout_ms: u64,
    /// Share of notifications answered 503, in percent.
    #[arg(long, default_value_t = 10.0)]
    fail_pct: f64,
    /// Share of notifications held past the notifier's timeout, in percent.
    #[arg(long, default_value_t = 1.0)]
    hang_pct: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Samples before this many seconds are left out of the RSS and fd slopes
    /// (default: 300, or a fifth of a run shorter than 25 minutes).
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// How long to wait for the outbox to drain after the load stops.
    #[arg(long, default_value_t = 300)]
    drain_secs: u64,
    /// Seed of the request mix and of the receiver's failures.
    #[arg(long, default_value_t = 16)]
    seed: u64,
}

impl Args {
    fn warmup(&self) -> u64 {
        self.warmup_secs.unwrap_or(if self.seconds >= 1500 {
            300
        } else {
            self.seconds / 5
        })
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let passed = runtime.block_on(run(args))?;
    std::process::exit(if passed { 0 } else { 1 });
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let hang = Duration::from_millis(args.notify_timeout_ms + 1_000);
    let receiver = receiver::start(receiver::Settings {
        secret: NOTIFY_SECRET,
        fail_pct: args.fail_pct,
        hang_pct: args.hang_pct,
        hang,
        seed: args.seed,
    })
    .await?;
    let mut gateway = server::Gateway::start(&args, &receiver.url(), NOTIFY_SECRET)?;
    gateway.wait_ready(Duration::from_secs(30)).await?;
    println!(
        "soak: gateway pid {} on 127.0.0.1:{}, receiver {}, {} s at {} req/s over {} connections",
        gateway.pid(),
        args.port,
        receiver.url(),
        args.seconds,
        args.rate,
        args.concurrency
    );
    let stats = Arc::new(load::Stats::default());
    let mut sampler = sample::Sampler::new(&args, &gateway, stats.clone(), receiver.clone())?;
    let started = Instant::now();
    let load = load::spawn(&args, stats.clone())?;
    sampler.run_until(started, |_| load.is_finished()).await?;
    let ledger = load.await??;
    println!(
        "soak: load stopped after {:.0} s; draining the outbox",
        started.elapsed().as_secs_f64()
    );
    let drain_deadline = Duration::from_secs(args.seconds + args.drain_secs);
    sampler
        .run_until(started, |s| {
            s.outbox_live == Some(0) || started.elapsed() > drain_deadline
        })
        .await?;
    let drained_after = started.elapsed().as_secs_f64() - args.seconds as f64;
    let exit = gateway.stop(Duration::from_secs(30)).await;
    let samples = sampler.finish()?;
    let report = check::Report {
        args: &args,
        stats: &stats,
        ledger: &ledger,
        receiver: &receiver,
        samples: &samples,
        drained_after,
        server_exit: exit,
        db: gateway.db_path(),
        server_log: gateway.log_path(),
    };
    report.evaluate()
}
