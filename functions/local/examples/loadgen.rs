//! A bounded, loopback-only load generator for `webhooks-local`: posts unique, correctly
//! signed fulfilment ORDER.CHANGE_STATUS events (each a new delivery id, so every request
//! is a durable write, not a duplicate) and reports throughput and latency percentiles.
//!
//! usage: cargo run --release -p webhooks-local --example loadgen -- \
//!          [--url http://127.0.0.1:3000] [--requests 100000] [--seconds 30] [--concurrency 64]
//!          [--secret dev-fulfilment-secret]
//! Stops at whichever bound comes first. Refuses non-loopback targets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webhook_core::sources::fulfilment::Fulfilment;

struct Args {
    url: String,
    requests: u64,
    seconds: u64,
    concurrency: usize,
    secret: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: "http://127.0.0.1:3000".into(),
        requests: 100_000,
        seconds: 30,
        concurrency: 64,
        secret: "dev-fulfilment-secret".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value,
            "--requests" => args.requests = value.parse().expect("--requests: a number"),
            "--seconds" => args.seconds = value.parse().expect("--seconds: a number"),
            "--concurrency" => args.concurrency = value.parse().expect("--concurrency: a number"),
            "--secret" => args.secret = value,
            other => panic!("unknown flag {other}"),
        }
    }
    let host = args
        .url
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap_or("");
    assert!(
        host == "127.0.0.1" || host == "localhost" || host == "[::1]",
        "loadgen only targets loopback, got {host}"
    );
    args
}

fn body_for(n: u64) -> String {
    // ~1.2 KB, shaped like the seed's ORDER.CHANGE_STATUS.
    format!(
        concat!(
            r#"{{"event":"ORDER.CHANGE_STATUS","payload":{{"order":{{"id":{n},"tenant_id":1,"merchant_id":116,"#,
            r#""code":"dh{n:08}","status":"WAITING_CONFIRM","order_amount":198,"discount_amount":0,"total_amount":198,"#,
            r#""paid_amount":0,"debit_amount":198,"receiver_name":"sam","receiver_phone":"02939823882","#,
            r#""receiver_address":"so 1","payment_type":"COD","description":"load test order","#,
            r#""created_at":"2022-06-07T09:55:56.000000Z","updated_at":"2022-06-07T09:55:58.000000Z","#,
            r#""receiver_country_id":11935,"receiver_province_id":60,"receiver_district_id":718,"#,
            r#""receiver_ward_id":10112,"extra_services":[],"creator_id":17,"cancel_reason":"OTHER","#,
            r#""currency_id":4,"shipping_partner_id":5,"cod":198,"finance_status":"UNPAID","#,
            r#""amount_paid_to_seller":0,"finance_service_status":"UNPAID","#,
            r#""finance_service_import_return_goods_status":"UNPAID","dropship":0,"inspected":true,"priority":0}},"#,
            r#""merchant_code":"LOAD","from_status":"WAITING_INSPECTION","to_status":"WAITING_CONFIRM"}}}}"#
        ),
        n = n
    )
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let endpoint = format!("{}/api/v1/fulfilment/webhook", args.url);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("http client");
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, endpoint, next, secret) = (
            client.clone(),
            endpoint.clone(),
            next.clone(),
            args.secret.clone(),
        );
        let limit = args.requests;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit || Instant::now() >= deadline {
                    break;
                }
                let body = body_for(n);
                let sig = Fulfilment::sign(body.as_bytes(), &secret);
                let t = Instant::now();
                let resp = client
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .header("x-event-signature", sig)
                    .header("x-event-delivery", format!("{run_id}-{n}"))
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
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
