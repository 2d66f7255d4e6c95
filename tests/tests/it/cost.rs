//! What a webhook costs in DynamoDB capacity (issue 12), counted, not estimated: the real
//! handler and notifier run on counted SDK clients against moto; every request they sent is
//! priced by DynamoDB's rules ([`webhook_tests::capacity`]) against the items scanned back
//! before and after. The reference webhook is the fulfilment provider's own
//! `ORDER.CHANGE_STATUS` sample (seed 003's full order): new, one entity, one transition,
//! notified once. Its budget is asserted, so a change that grows an item past 1 KB or adds
//! a write fails here.
//!
//! The credential table (tenant-bound credentials) is on the hot path of a Lambda that keeps
//! its secrets there: the reference webhook is measured with its signing secret in the table,
//! its cold lookup counted on every request (the worst case), and what a cold and a cached
//! lookup read is pinned for a signature source and a key source.
//!
//! Run with `--nocapture` to see every item's size and units (the figures in BENCHMARKS.md).

use std::sync::Arc;

use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode};
use webhook_core::credentials::{CredentialAdmin, CredentialId, Material, StoredCredential};
use webhook_core::model::Tenant;
use webhook_core::notify::{Notifier, Outcome, Target};
use webhook_core::pipeline::Handler;
use webhook_core::sources::{fulfilment, pancake_pos, provider_from_env, Provider};
use webhook_core::store::IdentityEpoch;
use webhook_core::Source;
use webhook_core::{relay, runtime};
use webhook_tests::aws::{AwsFixture, CountedPipeline, RequestCounter};
use webhook_tests::capacity::{Bill, Tables};
use webhook_tests::events::sample;
use webhook_tests::stream::StreamPoller;

/// The sample's own receive time (its `requestContext.timeEpoch`).
const NOW: i64 = 1_757_069_100;

/// us-east-1 on-demand list prices, $ per million.
const WRU_PRICE: f64 = 0.625;
const RRU_PRICE: f64 = 0.125;
/// Per webhook, $ per million, besides DynamoDB (BENCHMARKS.md: cost per million): API
/// Gateway HTTP API 1.00; ingest Lambda requests 0.20 + duration 0.025 (15 ms billed: the
/// three ordered writes, no SQS round trip any more); the relay's SQS FIFO `SendMessageBatch`
/// 0.50 per request of up to 10 = 0.05, its Lambda requests 0.20 per invocation of 10
/// records = 0.02 + duration 0.002 (stream reads by a Lambda trigger are free); notifier
/// receive + delete 0.10, notifier Lambda requests 0.02 + duration 0.01.
const FIXED_WITH_TRANSITION: f64 = 1.427;
/// What the asserted total may be (issue 24). During the first `RETENTION_DAYS` after an
/// upgrade from a release before issue 21, a fulfilment delivery also reads the key that
/// release stored it under (0.5 RRU, +$0.0625: ARCHITECTURE decision 37); a fresh store,
/// and an upgraded one after that window, never do (decision 63), and that steady state is
/// what is asserted.
const BUDGET: f64 = 4.00;

/// The Lambdas' default credential cache lifetime (`CREDENTIALS_CACHE_SECS`).
const CACHE_SECS: u64 = 60;

/// Where the handler finds the sample's credential.
#[derive(Debug, Clone, Copy)]
enum Admit {
    /// The environment (local mode's development secret or key): nothing is read.
    Environment,
    /// The credential table alone (a Lambda with `CREDENTIALS_TABLE` and no keys of its
    /// own), holding the sample's development secret or key for `tenant`.
    Table { tenant: &'static str },
}

fn usd(bill: &Bill) -> f64 {
    bill.wru as f64 * WRU_PRICE + bill.rru() * RRU_PRICE
}

/// What one webhook cost: the credential table's reads to admit it (cold: the first
/// request of the function), the ingest's requests, the relay's SQS requests and, per
/// notified transition, the notifier's.
struct Measured {
    /// Once per process: the store's identity epoch, asked before its first request.
    epoch: Bill,
    lookup: Bill,
    ingest: Bill,
    /// SQS requests of ingest (none: it only writes DynamoDB) and of the relay.
    ingest_sqs: Vec<String>,
    relay_sqs: Vec<String>,
    notify: Vec<Bill>,
}

impl Measured {
    fn dynamodb_usd(&self) -> f64 {
        let bills = [&self.lookup, &self.ingest].into_iter().chain(&self.notify);
        bills.map(usd).sum()
    }

    fn print(&self, name: &str) {
        println!("== {name}");
        let lines = [
            ("identity epoch (once per process)", &self.epoch),
            ("credential lookup", &self.lookup),
            ("ingest", &self.ingest),
        ];
        let notifier = self.notify.iter().map(|b| ("notifier", b));
        // nothing read to admit it (the environment's credential): no line
        for (label, bill) in lines
            .into_iter()
            .chain(notifier)
            .filter(|(_, b)| b.requests > 0)
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

/// The handler of `source` on counted clients over `fixture`, admitting as `admit` says
/// (for [`Admit::Table`], the development credential is stored for its tenant first).
async fn admitting(
    fixture: &AwsFixture,
    source: Source,
    admit: Admit,
) -> (CountedPipeline, Handler) {
    let Admit::Table { tenant } = admit else {
        let rig = CountedPipeline::as_lambda(fixture, NOW);
        let provider = provider_from_env(source, &Env::default(), Mode::Local).expect("provider");
        let handler = rig.handler(provider);
        return (rig, handler);
    };
    let value = match source {
        Source::Fulfilment => fulfilment::DEV_SECRET,
        Source::PancakePos => pancake_pos::DEV_API_KEY,
        other => panic!("no development credential wired here for {other}"),
    };
    let credential = StoredCredential {
        source,
        tenant: Tenant::new(tenant),
        id: CredentialId::generate().expect("an id"),
        material: Material::for_source(source, value),
        created_at: NOW - 60,
        expires_at: None,
        revoked_at: None,
    };
    let inserted = fixture.credentials().insert(&credential).await;
    assert!(inserted.expect("stored"), "a fresh table");
    let env = Env::from_pairs([("CREDENTIALS_TABLE", fixture.credentials_table.as_str())]);
    let provider: Arc<dyn Provider> =
        provider_from_env(source, &env, Mode::Lambda).expect("the table alone configures it");
    let rig = CountedPipeline::as_lambda_with_credential_table(fixture, NOW, CACHE_SECS);
    let handler = rig.handler(provider);
    (rig, handler)
}

/// Posts one events/ sample through the real handler on counted clients (as the ingest
/// Lambdas build it: no queue), relays what the transitions stream carries to the queue
/// (the relay's code on a counted SQS client), then delivers every queued message through
/// the notifier (log target) on a counted store.
async fn measure(folder: &str, name: &str, source: Source, admit: Admit) -> Measured {
    let fixture = AwsFixture::new(&format!("cost-{name}")).await;
    let (rig, handler) = admitting(&fixture, source, admit).await;

    let empty = Tables::scan(&fixture).await;
    let epoch = rig.pipeline.identity_epoch().await.expect("the epoch");
    assert_eq!(epoch, IdentityEpoch::Fresh, "an empty store");
    let before = Tables::scan(&fixture).await;
    let epoch = Bill::of(&fixture, &rig.dynamodb.take_requests(), &empty, &before);
    let response = handler.handle(&sample(folder, name)).await;
    assert_eq!(response.status, 200, "{name}: {}", response.body);
    let after = Tables::scan(&fixture).await;
    let lookup = Bill::of(&fixture, &rig.credentials.take_requests(), &before, &after);
    let ingest = Bill::of(&fixture, &rig.dynamodb.take_requests(), &before, &after);
    let ingest_sqs = operations(&rig.sqs);
    let relay_sqs = relay_stream(&fixture).await;

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
    Measured {
        epoch,
        lookup,
        ingest,
        ingest_sqs,
        relay_sqs,
        notify,
    }
}

fn operations(counter: &RequestCounter) -> Vec<String> {
    counter
        .take_requests()
        .into_iter()
        .map(|r| r.operation)
        .collect()
}

/// The transitions stream, one batch as the Lambda service hands it to the relay, through
/// the relay's code on a counted SQS client: the SQS requests it sent.
async fn relay_stream(fixture: &AwsFixture) -> Vec<String> {
    let poller = StreamPoller::transitions(fixture, 100).await;
    let batch = poller.batch().await;
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(serde_json::json!({ "Records": batch })).expect("stream event");
    let counter = RequestCounter::default();
    let queue = fixture.counted_queue(&counter);
    let report = relay::relay(&queue, &runtime::relay_records(&event)).await;
    assert_eq!(report.first_failed, None, "{report:?}");
    operations(&counter)
}

/// The reference webhook with its signing secret in the credential table, its lookup cold
/// (so counted on every request: the worst case; a cached lookup reads nothing, pinned by
/// `a_stored_credential_is_one_read_cold_and_none_cached`).
#[tokio::test]
async fn the_reference_webhook_costs_what_the_budget_allows() {
    let merchant = Admit::Table { tenant: "XYZ" };
    let m = measure(
        "fulfilment",
        "order_change_status",
        Source::Fulfilment,
        merchant,
    )
    .await;
    m.print("reference: fulfilment ORDER.CHANGE_STATUS (seed 003)");
    let total = FIXED_WITH_TRANSITION + m.dynamodb_usd();
    let cached = total - usd(&m.lookup);
    println!("  total: ${cached:.3} per million webhooks (environment secret or cached lookup)");
    println!("  total: ${total:.3} per million webhooks (cold lookup on every request)");
    assert_eq!(m.notify.len(), 1, "one transition notified");
    assert!(
        m.ingest_sqs.is_empty(),
        "ingest sends nothing to SQS: {:?}",
        m.ingest_sqs
    );
    assert_eq!(
        m.relay_sqs,
        ["SendMessageBatch"],
        "the relay: one batched send"
    );
    // the signing secret: one eventually consistent Query of the merchant's partition
    let lookup = &m.lookup;
    assert_eq!(
        (lookup.wru, lookup.rru_halves, lookup.requests),
        (0, 1, 1),
        "credential lookup: 0.5 RRU"
    );
    assert_eq!(lookup.lines[0].operation, "Query");

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
    // ingest: entity, transition and event item, one single write each; nothing read (a
    // fresh store never holds an earlier release's key, ARCHITECTURE §4, upgrade)
    assert_eq!(
        (m.ingest.wru, m.ingest.rru_halves, m.ingest.requests),
        (3, 0, 3),
        "ingest: 3 WRU"
    );
    // once per process, before its first request: the identity epoch's marker is read,
    // and the first process of a store writes it after a one-item Scan says whether the
    // store held events (a Scan of an empty table is priced here as nothing)
    let epoch = &m.epoch;
    assert_eq!(
        (epoch.wru, epoch.rru_halves, epoch.requests),
        (1, 2, 3),
        "the epoch: a consistent GetItem, a Scan, a PutItem"
    );
    // notifier: one eventually consistent read of the transition, one single write of its
    // record
    assert_eq!(
        (
            m.notify[0].wru,
            m.notify[0].rru_halves,
            m.notify[0].requests
        ),
        (1, 1, 2),
        "notifier: 1 WRU + 0.5 RRU per transition"
    );
    assert!(
        cached <= BUDGET,
        "${cached:.3} per million is over the ${BUDGET:.2} budget"
    );
}

/// What admitting a request from the credential table reads, cold (a fresh function, or the
/// row aged out of the cache) and cached: a signature source's secrets are one `Query` of
/// the tenant's partition, a key source's key one `GetItem` by its hash, both eventually
/// consistent (0.5 RRU); a cached lookup reads nothing. The second request of each is the
/// same sample again (a duplicate: the lookup comes before the store).
#[tokio::test]
async fn a_stored_credential_is_one_read_cold_and_none_cached() {
    for (folder, name, source, tenant, operation) in [
        (
            "fulfilment",
            "order_change_status",
            Source::Fulfilment,
            "XYZ",
            "Query",
        ),
        (
            "pancake-pos",
            "customer_created",
            Source::PancakePos,
            "20462817",
            "GetItem",
        ),
    ] {
        let fixture = AwsFixture::new(&format!("cost-lookup-{name}")).await;
        let (rig, handler) = admitting(&fixture, source, Admit::Table { tenant }).await;
        let tables = Tables::scan(&fixture).await;
        let mut bills = Vec::new();
        for _ in 0..2 {
            let response = handler.handle(&sample(folder, name)).await;
            assert_eq!(response.status, 200, "{name}: {}", response.body);
            let sent = rig.credentials.take_requests();
            bills.push(Bill::of(&fixture, &sent, &tables, &tables));
        }
        let [cold, cached] = [&bills[0], &bills[1]];
        for line in &cold.lines {
            let (op, kind, bytes) = (&line.operation, line.kind, line.bytes);
            let rru = line.units as f64 / 2.0;
            println!("== {folder} {name}, cold lookup: {op} ({kind}) of {bytes} B: {rru} RRU");
        }
        println!(
            "== {folder} {name}, cached lookup: {} requests",
            cached.requests
        );
        assert_eq!(
            (cold.wru, cold.rru_halves, cold.requests),
            (0, 1, 1),
            "{name} cold"
        );
        assert_eq!(cold.lines[0].operation, operation, "{name}");
        assert!(
            !cold.lines[0].kind.starts_with("consistent"),
            "{name}: an eventually consistent read"
        );
        assert_eq!(
            cached,
            &Bill::default(),
            "{name}: a cached lookup reads nothing"
        );
    }
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
        // two warehouses: a transaction of 3 items (no earlier key read in a fresh store)
        (
            "fulfilment",
            "sku_change_stock",
            Source::Fulfilment,
            (6, 0, 1),
        ),
    ] {
        let m = measure(folder, name, source, Admit::Environment).await;
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
