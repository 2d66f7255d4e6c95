//! Latency of one ingest invocation against moto (issues 12 and 24): the fulfilment handler,
//! built two ways and measured interleaved (call by call, same tables, same moment):
//! **before** issue 24, publishing each transition to SQS after the write (the
//! `webhooks-local --store dynamodb` wiring, `runtime::publishing_backends`), and **after**,
//! as the ingest Lambdas build it now (`runtime::lambda_backends`: the null queue, the relay
//! sends from the table's stream). SDK clients on moto directly, no serialising proxy; fed the
//! reference `ORDER.CHANGE_STATUS` sample, each time as a new event (its own
//! `X-Event-Delivery`, so every call takes the happy path). Calls go in rounds of 10 per
//! wiring on fresh tables and a fresh queue, the first call of each round (new connections)
//! left out. Prints the requests of one call of each and both latency distributions.
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
/// Calls per wiring per set of fresh tables.
const ROUND: usize = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, millis: &mut [f64]) {
    millis.sort_by(f64::total_cmp);
    println!(
        "{name}: {} calls: median {:.2} ms, p10 {:.2}, p90 {:.2}, p99 {:.2}, min {:.2}, max {:.2}",
        millis.len(),
        percentile(millis, 0.5),
        percentile(millis, 0.1),
        percentile(millis, 0.9),
        percentile(millis, 0.99),
        millis[0],
        millis[millis.len() - 1],
    );
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

    let (mut before, mut after) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let mut round = 0;
    while after.len() < runs {
        let fixture = AwsFixture::on(&moto::endpoint(), &format!("ingest-latency-{round}")).await;
        let rigs = [
            CountedPipeline::new(&fixture, &fixture, NOW),
            CountedPipeline::as_lambda(&fixture, NOW),
        ];
        let handlers = rigs.each_ref().map(|r| r.handler(provider.clone()));
        for i in 0..ROUND {
            for (w, handler) in handlers.iter().enumerate() {
                let mut req = base.clone();
                for (name, value) in req.headers.iter_mut() {
                    if name.eq_ignore_ascii_case("x-event-delivery") {
                        *value = format!("latency-{round}-{i}-{w}");
                    }
                }
                let started = Instant::now();
                let response = handler.handle(&req).await;
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(response.status, 200, "{}", response.body);
                if round == 0 && i == 0 {
                    println!(
                        "one call ({}): DynamoDB {:?}, SQS {:?}",
                        ["before", "after"][w],
                        rigs[w].dynamodb.take(),
                        rigs[w].sqs.take()
                    );
                }
                let into = if w == 0 { &mut before } else { &mut after };
                if i > 0 && into.len() < runs {
                    into.push(elapsed);
                }
            }
        }
        round += 1;
    }
    report("before (write, then SQS publish)", &mut before);
    report("after (write only; the relay publishes)", &mut after);
}
