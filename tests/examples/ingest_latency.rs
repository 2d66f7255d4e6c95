//! Latency of one ingest invocation against moto (issue 12): the fulfilment handler, built as
//! the Lambda builds it (DynamoDB store + SQS queue, SDK clients on moto directly, no
//! serialising proxy), fed the reference `ORDER.CHANGE_STATUS` sample N times, each time as a
//! new event (its own `X-Event-Delivery`, so every call takes the happy path). Calls go in
//! rounds of 10 on fresh tables and a fresh queue (moto's `TransactWriteItems` copies the
//! whole table for its rollback, so its latency grows with the table; DynamoDB's does not),
//! the first call of each round (new connections) left out. Prints the DynamoDB and SQS
//! requests of one call and the latency distribution.
//!
//! ```sh
//! MOTO_ENDPOINT=http://127.0.0.1:5000 cargo run -p webhook-tests --example ingest_latency -- [N]
//! ```
//!
//! A measurement tool for BENCHMARKS.md, not a test: nothing here asserts a time.

use std::time::Instant;

use webhook_core::config::{Env, Mode};
use webhook_core::sources::provider_from_env;
use webhook_core::Source;
use webhook_tests::aws::{AwsFixture, CountedPipeline};
use webhook_tests::events::sample;
use webhook_tests::moto;

const NOW: i64 = 1_757_069_100;
/// Calls per set of fresh tables.
const ROUND: usize = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of calls"))
        .unwrap_or(300);
    let provider = provider_from_env(Source::Fulfilment, &Env::default(), Mode::Local)
        .expect("fulfilment provider");
    let base = sample("fulfilment", "order_change_status");

    let mut millis = Vec::with_capacity(runs);
    let mut round = 0;
    while millis.len() < runs {
        let fixture = AwsFixture::on(&moto::endpoint(), &format!("ingest-latency-{round}")).await;
        let rig = CountedPipeline::new(&fixture, &fixture, NOW);
        let handler = rig.handler(provider.clone());
        for i in 0..ROUND {
            let mut req = base.clone();
            for (name, value) in req.headers.iter_mut() {
                if name.eq_ignore_ascii_case("x-event-delivery") {
                    *value = format!("latency-{round}-{i}");
                }
            }
            let started = Instant::now();
            let response = handler.handle(&req).await;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(response.status, 200, "{}", response.body);
            if round == 0 && i == 0 {
                println!(
                    "one call: DynamoDB {:?}, SQS {:?}",
                    rig.dynamodb.take(),
                    rig.sqs.take()
                );
            }
            if i > 0 && millis.len() < runs {
                millis.push(elapsed);
            }
        }
        round += 1;
    }
    millis.sort_by(f64::total_cmp);
    println!(
        "{runs} calls: median {:.2} ms, p10 {:.2}, p90 {:.2}, p99 {:.2}, min {:.2}, max {:.2}",
        percentile(&millis, 0.5),
        percentile(&millis, 0.1),
        percentile(&millis, 0.9),
        percentile(&millis, 0.99),
        millis[0],
        millis[millis.len() - 1],
    );
}
