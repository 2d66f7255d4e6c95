//! What a webhook costs in DynamoDB capacity (issue 12), counted, not estimated: the real
//! handler and notifier run on counted SDK clients against moto; every request they sent is
//! priced by DynamoDB's rules ([`webhook_tests::capacity`]) against the items scanned back
//! before and after. The reference webhook is the fulfilment provider's own
//! `ORDER.CHANGE_STATUS` sample (seed 003's full order): new, one entity, one transition,
//! notified once. Its budget is asserted, so a change that grows an item past 1 KB or adds
//! a write fails here.
//!
//! Run with `--nocapture` to see every item's size and units (the figures in BENCHMARKS.md).

use std::sync::Arc;

use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode};
use webhook_core::notify::{Notifier, Outcome, Target};
use webhook_core::sources::provider_from_env;
use webhook_core::Source;
use webhook_tests::aws::{AwsFixture, CountedPipeline, RequestCounter};
use webhook_tests::capacity::{Bill, Tables};
use webhook_tests::events::sample;

/// The sample's own receive time (its `requestContext.timeEpoch`).
const NOW: i64 = 1_757_069_100;

/// us-east-1 on-demand list prices, $ per million.
const WRU_PRICE: f64 = 0.625;
const RRU_PRICE: f64 = 0.125;
/// Per webhook, $ per million, besides DynamoDB: API Gateway HTTP API 1.00, ingest Lambda
/// requests 0.20 + duration 0.033 (20 ms billed: the ordered writes' two more round trips
/// counted generously), SQS FIFO send 0.50, notifier receive + delete 0.10, notifier Lambda
/// requests 0.02 + duration 0.01 (BENCHMARKS.md: cost per million).
const FIXED_WITH_TRANSITION: f64 = 1.863;

/// What one webhook cost: the ingest's requests and, per notified transition, the
/// notifier's.
struct Measured {
    ingest: Bill,
    notify: Vec<Bill>,
}

impl Measured {
    fn dynamodb_usd(&self) -> f64 {
        let bills = std::iter::once(&self.ingest).chain(&self.notify);
        bills
            .map(|b| b.wru as f64 * WRU_PRICE + b.rru() * RRU_PRICE)
            .sum()
    }

    fn print(&self, name: &str) {
        println!("== {name}");
        for (label, bill) in std::iter::once(("ingest", &self.ingest))
            .chain(self.notify.iter().map(|b| ("notifier", b)))
        {
            println!(
                "  {label}: {} WRU, {} RRU, {} requests",
                bill.wru,
                bill.rru(),
                bill.requests
            );
            for line in &bill.lines {
                let table = line.table.rsplit('-').next().unwrap_or_default();
                println!(
                    "    {:<18} {:<15} {:<11} {:>5} B  {} units",
                    line.operation, line.kind, table, line.bytes, line.units
                );
            }
        }
        println!("  DynamoDB: ${:.3} per million", self.dynamodb_usd());
    }
}

/// Posts one events/ sample through the real handler on counted clients, then delivers
/// every message it queued through the notifier (log target) on a counted store.
async fn measure(folder: &str, name: &str, source: Source) -> Measured {
    let fixture = AwsFixture::new(&format!("cost-{name}")).await;
    let rig = CountedPipeline::new(&fixture, &fixture, NOW);
    let provider = provider_from_env(source, &Env::default(), Mode::Local).expect("provider");
    let handler = rig.handler(provider);

    let before = Tables::scan(&fixture).await;
    let response = handler.handle(&sample(folder, name)).await;
    assert_eq!(response.status, 200, "{name}: {}", response.body);
    let after = Tables::scan(&fixture).await;
    let ingest = Bill::of(&fixture, &rig.dynamodb.take_requests(), &before, &after);

    let counter = RequestCounter::default();
    let notifier = Notifier::new(
        Target::Log,
        Arc::new(fixture.counted_store(&counter)),
        Arc::new(FixedClock::at_unix(NOW + 1)),
    );
    let mut notify = Vec::new();
    let mut tables = after;
    for message in fixture.drain_queue().await {
        let outcome = notifier.deliver(&message.body, 1).await;
        assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
        let now = Tables::scan(&fixture).await;
        notify.push(Bill::of(&fixture, &counter.take_requests(), &tables, &now));
        tables = now;
    }
    Measured { ingest, notify }
}

#[tokio::test]
async fn the_reference_webhook_costs_what_the_budget_allows() {
    let m = measure("fulfilment", "order_change_status", Source::Fulfilment).await;
    m.print("reference: fulfilment ORDER.CHANGE_STATUS (seed 003)");
    let total = FIXED_WITH_TRANSITION + m.dynamodb_usd();
    println!("  total: ${total:.3} per million webhooks");
    assert_eq!(m.notify.len(), 1, "one transition notified");

    // every item written, and the transition after the notifier's update, fits in 1 KB
    for line in m.ingest.lines.iter().chain(&m.notify[0].lines) {
        assert!(
            line.bytes <= 1024,
            "{} of {} is {} B: billed as {} KB",
            line.operation,
            line.table,
            line.bytes,
            line.bytes.div_ceil(1024)
        );
    }
    // ingest: entity, transition and event item, one single write each, nothing read
    assert_eq!(
        (m.ingest.wru, m.ingest.rru_halves, m.ingest.requests),
        (3, 0, 3),
        "ingest: 3 WRU, no read"
    );
    // notifier: one consistent read of the transition, one single write of its record
    assert_eq!(
        (
            m.notify[0].wru,
            m.notify[0].rru_halves,
            m.notify[0].requests
        ),
        (1, 2, 2),
        "notifier: 1 WRU + 1 RRU per transition"
    );
    assert!(
        total <= 5.00,
        "${total:.3} per million is over the $5.00 budget"
    );
}

/// The variants of BENCHMARKS.md, each pinned to its write units (WRU, RRU halves,
/// requests), none with a transition.
#[tokio::test]
async fn what_the_variants_cost() {
    for (folder, name, source, expected) in [
        // event + entity, two single writes
        (
            "pancake-pos",
            "customer_created",
            Source::PancakePos,
            (2, 0, 2),
        ),
        // status inferred from the stored state: a read, then a transaction of 2 items
        (
            "pancake-pos",
            "order_created",
            Source::PancakePos,
            (4, 2, 2),
        ),
        // two warehouses: a transaction of 3 items
        (
            "fulfilment",
            "sku_change_stock",
            Source::Fulfilment,
            (6, 0, 1),
        ),
    ] {
        let m = measure(folder, name, source).await;
        m.print(&format!("{folder} {name}"));
        assert!(m.notify.is_empty(), "{name}: no transition");
        assert!(
            m.ingest.lines.iter().all(|l| l.bytes <= 1024),
            "{name}: an item is over 1 KB"
        );
        let i = &m.ingest;
        assert_eq!((i.wru, i.rru_halves, i.requests), expected, "{name}");
    }
}
