//! A bounded, loopback-only load generator for `webhooks-local`: posts unique, correctly
//! authenticated deliveries (each body names its run and number, so every request is a
//! durable write, not a duplicate) and reports throughput and latency percentiles.
//!
//! usage: cargo run --release -p webhooks-local --example loadgen -- \
//!          [--addr 127.0.0.1:3000] [--requests 100000] [--seconds 30] [--concurrency 64]
//!          [--threads 1] [--secret dev-fulfilment-secret] [--source fulfilment|pancake]
//!          [--rate N] [--series out.csv] [--watch path]
//! Stops at whichever bound comes first. Refuses non-loopback targets.
//!
//! `--source pancake` sends Pancake `messaging` deliveries (a new conversation and message
//! each, `X-API-Key: dev-pancake-key`); the default is fulfilment ORDER.CHANGE_STATUS.
//!
//! Closed loop by default: each connection sends its next request when the previous one is
//! answered, so a server stall also stalls the load and hides its own tail (coordinated
//! omission). `--rate N` paces the run instead: request `n` is due at `n / N` seconds, and a
//! request sent late because every connection was still waiting on the server is timed from
//! when it was due, as an open-loop client would see it. A request whose connection was
//! free early sleeps until it is due and is timed from when it is sent (the timer's own
//! lateness is the generator's, not the server's).
//!
//! `--series` writes one CSV line per 100 ms of the run (requests finished, p50, p99, max in
//! ms, and the size of the `--watch` file, e.g. the SQLite WAL): a latency-over-time record.
//!
//! Like wrk, it speaks plain HTTP/1.1 over keep-alive connections (one request in flight per
//! connection) instead of going through an HTTP client stack: it shares the machine's cores
//! with the server it measures, so every microsecond it spends is one the server loses.
//! Responses are checked for status 200; anything else (or a broken connection) is counted
//! as an error and the connection is reopened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use webhook_core::sources::fulfilment::Fulfilment;

#[path = "common/http1.rs"]
mod http1;
use http1::read_response;

#[path = "common/series.rs"]
mod series;
use series::{Sample, Summary};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Fulfilment,
    Pancake,
}

struct Args {
    addr: SocketAddr,
    requests: u64,
    seconds: u64,
    concurrency: usize,
    threads: usize,
    secret: String,
    source: Source,
    rate: Option<f64>,
    series: Option<PathBuf>,
    watch: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:3000".parse().expect("default address"),
        requests: 100_000,
        seconds: 30,
        concurrency: 64,
        threads: 1,
        secret: "dev-fulfilment-secret".into(),
        source: Source::Fulfilment,
        rate: None,
        series: None,
        watch: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value.parse().expect("--addr: host:port"),
            "--requests" => args.requests = value.parse().expect("--requests: a number"),
            "--seconds" => args.seconds = value.parse().expect("--seconds: a number"),
            "--concurrency" => args.concurrency = value.parse().expect("--concurrency: a number"),
            "--threads" => args.threads = value.parse().expect("--threads: a number"),
            "--secret" => args.secret = value,
            "--source" => {
                args.source = match value.as_str() {
                    "fulfilment" => Source::Fulfilment,
                    "pancake" => Source::Pancake,
                    other => panic!("--source: fulfilment or pancake, not {other}"),
                }
            }
            "--rate" => args.rate = Some(value.parse().expect("--rate: requests per second")),
            "--series" => args.series = Some(value.into()),
            "--watch" => args.watch = Some(value.into()),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        args.addr.ip().is_loopback(),
        "loadgen only targets loopback, got {}",
        args.addr
    );
    args
}

fn fulfilment_body(n: u64, run_id: u64) -> String {
    // ~1.2 KB, shaped like the seed's ORDER.CHANGE_STATUS; the run in `description` makes
    // every run's bodies new (the event id is the body's hash, ARCHITECTURE §4).
    format!(
        concat!(
            r#"{{"event":"ORDER.CHANGE_STATUS","payload":{{"order":{{"id":{n},"tenant_id":1,"merchant_id":116,"#,
            r#""code":"dh{n:08}","status":"WAITING_CONFIRM","order_amount":198,"discount_amount":0,"total_amount":198,"#,
            r#""paid_amount":0,"debit_amount":198,"receiver_name":"sam","receiver_phone":"02939823882","#,
            r#""receiver_address":"so 1","payment_type":"COD","description":"load test run {run_id}","#,
            r#""created_at":"2022-06-07T09:55:56.000000Z","updated_at":"2022-06-07T09:55:58.000000Z","#,
            r#""receiver_country_id":11935,"receiver_province_id":60,"receiver_district_id":718,"#,
            r#""receiver_ward_id":10112,"extra_services":[],"creator_id":17,"cancel_reason":"OTHER","#,
            r#""currency_id":4,"shipping_partner_id":5,"cod":198,"finance_status":"UNPAID","#,
            r#""amount_paid_to_seller":0,"finance_service_status":"UNPAID","#,
            r#""finance_service_import_return_goods_status":"UNPAID","dropship":0,"inspected":true,"priority":0}},"#,
            r#""merchant_code":"LOAD","from_status":"WAITING_INSPECTION","to_status":"WAITING_CONFIRM"}}}}"#
        ),
        n = n,
        run_id = run_id
    )
}

/// The events/pancake/messaging.json delivery (~0.7 KB) with a new conversation and message.
fn pancake_body(n: u64, run_id: u64) -> String {
    format!(
        concat!(
            r#"{{"event_type":"messaging","page_id":"104582318532114","data":{{"conversation":{{"#,
            r#""id":"104582318532114_{run_id}{n:09}","page_id":"104582318532114","type":"INBOX","#,
            r#""from":{{"id":"{run_id}{n:09}","name":"Nguyễn Thị Lan"}},"snippet":"Mình lấy 2 cái size M nhé","#,
            r#""seen":false,"inserted_at":"2025-09-01T08:12:40.000000","updated_at":"2025-09-05T10:45:00.000000"}},"#,
            r#""message":{{"id":"m_{run_id}_{n}","conversation_id":"104582318532114_{run_id}{n:09}","#,
            r#""from":{{"id":"{run_id}{n:09}","name":"Nguyễn Thị Lan"}},"message":"Mình lấy 2 cái size M nhé","#,
            r#""original_message":"Mình lấy 2 cái size M nhé","type":"inbox","attachments":[],"#,
            r#""inserted_at":"2025-09-05T10:45:00.000000"}}}}}}"#
        ),
        n = n,
        run_id = run_id
    )
}

/// One complete HTTP/1.1 request for delivery `n`.
fn request_for(n: u64, run_id: u64, args: &Args) -> Vec<u8> {
    let (path, body, auth) = match args.source {
        Source::Fulfilment => {
            let body = fulfilment_body(n, run_id);
            let signature = Fulfilment::sign(body.as_bytes(), &args.secret);
            let auth =
                format!("x-event-signature: {signature}\r\nx-event-delivery: {run_id}-{n}\r\n");
            ("/api/v1/fulfilment/webhook", body, auth)
        }
        Source::Pancake => (
            "/api/v1/pancake/webhook",
            pancake_body(n, run_id),
            "x-api-key: dev-pancake-key\r\n".to_string(),
        ),
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n{auth}\
         content-length: {}\r\n\r\n",
        args.addr,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(Arc::new(args)));
}

/// What every connection shares.
struct Shared {
    args: Arc<Args>,
    run_id: u64,
    next: AtomicU64,
    started: Instant,
    deadline: Instant,
}

impl Shared {
    /// When request `n` is due (paced runs only).
    fn due(&self, n: u64) -> Option<Instant> {
        let rate = self.args.rate?;
        Some(self.started + Duration::from_secs_f64(n as f64 / rate))
    }
}

async fn run(args: Arc<Args>) {
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = Instant::now();
    let shared = Arc::new(Shared {
        deadline: started + Duration::from_secs(args.seconds),
        args: args.clone(),
        run_id,
        next: AtomicU64::new(0),
        started,
    });
    let watcher = args
        .watch
        .clone()
        .map(|path| tokio::spawn(series::watch(path, shared.deadline)));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (s, e) = w.await.expect("worker");
        samples.extend(s);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sizes = match watcher {
        Some(w) => w.await.expect("watcher"),
        None => Vec::new(),
    };
    if let Some(path) = &args.series {
        series::write(path, &samples, &sizes).expect("writing --series");
    }
    let summary = Summary::of(samples.iter().map(|s| s.latency).collect());
    let mode = match args.rate {
        Some(rate) => format!("paced rate={rate:.0}"),
        None => "closed".to_string(),
    };
    println!(
        "requests_ok={} errors={errors} seconds={elapsed:.2} rps={:.0} {} concurrency={} mode={mode}",
        summary.count,
        summary.count as f64 / elapsed,
        summary.line(),
        args.concurrency,
    );
}

/// One keep-alive connection: takes the next request number until a bound is reached.
async fn connection(shared: Arc<Shared>) -> (Vec<Sample>, u64) {
    let args = &shared.args;
    let mut samples = Vec::new();
    let mut errors = 0u64;
    let mut buf = Vec::with_capacity(4096);
    let mut stream: Option<TcpStream> = None;
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= args.requests || Instant::now() >= shared.deadline {
            break;
        }
        let request = request_for(n, shared.run_id, args);
        let due = shared.due(n);
        let from = match due {
            Some(due) if due > Instant::now() => {
                tokio::time::sleep_until(due.into()).await;
                Instant::now()
            }
            Some(due) => due,
            None => Instant::now(),
        };
        if stream.is_none() {
            match TcpStream::connect(args.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected above");
        let answered = match s.write_all(&request).await {
            Ok(()) => read_response(s, &mut buf).await.map(|(status, _)| status),
            Err(e) => Err(e),
        };
        match answered {
            Ok(200) => samples.push(Sample {
                at: from.duration_since(shared.started),
                latency: from.elapsed(),
            }),
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                stream = None;
            }
        }
    }
    (samples, errors)
}
