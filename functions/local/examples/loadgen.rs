//! A bounded, loopback-only load generator for `webhooks-local`: posts unique, correctly
//! signed fulfilment ORDER.CHANGE_STATUS events (each body names its run and number, so every
//! request is a durable write, not a duplicate: the event id is the body's hash) and reports
//! throughput and latency percentiles.
//!
//! usage: cargo run --release -p webhooks-local --example loadgen -- \
//!          [--addr 127.0.0.1:3000] [--requests 100000] [--seconds 30] [--concurrency 64]
//!          [--threads 1] [--secret dev-fulfilment-secret]
//! Stops at whichever bound comes first. Refuses non-loopback targets.
//!
//! Like wrk, it speaks plain HTTP/1.1 over keep-alive connections (one request in flight per
//! connection) instead of going through an HTTP client stack: it shares the machine's cores
//! with the server it measures, so every microsecond it spends is one the server loses.
//! Responses are checked for status 200; anything else (or a broken connection) is counted
//! as an error and the connection is reopened.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use webhook_core::sources::fulfilment::Fulfilment;

#[path = "common/http1.rs"]
mod http1;
use http1::read_response;

const PATH: &str = "/api/v1/fulfilment/webhook";

struct Args {
    addr: SocketAddr,
    requests: u64,
    seconds: u64,
    concurrency: usize,
    threads: usize,
    secret: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:3000".parse().expect("default address"),
        requests: 100_000,
        seconds: 30,
        concurrency: 64,
        threads: 1,
        secret: "dev-fulfilment-secret".into(),
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

fn body_for(n: u64, run_id: u64) -> String {
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

/// One complete HTTP/1.1 request for event `n`.
fn request_for(n: u64, run_id: u64, addr: SocketAddr, secret: &str) -> Vec<u8> {
    let body = body_for(n, run_id);
    let signature = Fulfilment::sign(body.as_bytes(), secret);
    let mut request = format!(
        "POST {PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-event-signature: {signature}\r\nx-event-delivery: {run_id}-{n}\r\n\
         content-length: {}\r\n\r\n",
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
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (next, secret, addr, limit) =
            (next.clone(), args.secret.clone(), args.addr, args.requests);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut buf = Vec::with_capacity(4096);
            let mut connection: Option<TcpStream> = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit || Instant::now() >= deadline {
                    break;
                }
                let request = request_for(n, run_id, addr, &secret);
                let t = Instant::now();
                let stream = match connection.as_mut() {
                    Some(s) => s,
                    None => match TcpStream::connect(addr).await {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            connection.insert(s)
                        }
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let answered = match stream.write_all(&request).await {
                    Ok(()) => read_response(stream, &mut buf)
                        .await
                        .map(|(status, _)| status),
                    Err(e) => Err(e),
                };
                match answered {
                    Ok(200) => latencies.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        connection = None;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1_000.0
    };
    println!(
        "requests_ok={} errors={} seconds={:.2} rps={:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} concurrency={}",
        latencies.len(),
        errors,
        elapsed,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        args.concurrency
    );
}
