//! Per-provider cost of the pure part of ingest — verify + parse + normalise — for a ~2 KB
//! and a ~256 KB body (targets: ≤ 30 µs and ≤ 2 ms per event on the 2-core dev machine).
//! Run: cargo bench -p webhook-core --bench providers

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use time::OffsetDateTime;
use webhook_core::config::{Env, Mode};
use webhook_core::http::RawRequest;
use webhook_core::sources::fulfilment::{self, Fulfilment};
use webhook_core::sources::{abaha, invoice, pancake, pancake_pos, provider_from_env, Provider};
use webhook_core::verify::hmac_sha256;
use webhook_core::Source;

/// Adds an `items` array at `items_at` so the object's JSON is about `target` bytes.
fn padded(mut base: Value, items_at: &[&str], target: usize) -> String {
    let item = json!({"sku": "SKU-000123", "name": "Kẻ chân mày - Chanel", "quantity": 2, "price": "1500000", "note": "giao giờ hành chính"});
    let item_len = item.to_string().len() + 1;
    let count = target.saturating_sub(base.to_string().len()) / item_len;
    let mut slot = &mut base;
    for key in items_at {
        slot = slot.get_mut(*key).expect("path exists");
    }
    slot["items"] = Value::Array(vec![item; count]);
    base.to_string()
}

struct Case {
    source: Source,
    name: &'static str,
    request: RawRequest,
}

/// A fixture padded to ~2 KB and ~256 KB, with the local-mode credential each source expects.
fn cases() -> Vec<Case> {
    let fixtures: [(Source, &str, &[&str]); 5] = [
        (
            Source::Fulfilment,
            include_str!("../fixtures/fulfilment/order_change_status.json"),
            &["payload", "order"],
        ),
        (
            Source::Pancake,
            include_str!("../fixtures/pancake/order_updated.json"),
            &["payload", "data"],
        ),
        (
            Source::PancakePos,
            include_str!("../fixtures/pancake_pos/flat_order.json"),
            &[],
        ),
        (
            Source::Abaha,
            include_str!("../fixtures/abaha/order.json"),
            &[],
        ),
        (
            Source::Invoice,
            include_str!("../fixtures/invoice/pending_complete.json"),
            &["data"],
        ),
    ];
    let mut cases = Vec::new();
    for (source, fixture, items_at) in fixtures {
        let seed: Value = serde_json::from_str(fixture).unwrap();
        for (name, size) in [("2KB", 2 * 1024), ("256KB", 250 * 1024)] {
            let body = padded(seed.clone(), items_at, size);
            let route = webhook_core::http::route_for(source);
            let request = RawRequest::post(route, body.clone());
            let request = match source {
                Source::Fulfilment => request
                    .with_header(
                        "x-event-signature",
                        &Fulfilment::sign(body.as_bytes(), fulfilment::DEV_SECRET),
                    )
                    .with_header("x-event-delivery", "42"),
                Source::Pancake => request.with_header("x-api-key", pancake::DEV_API_KEY),
                Source::PancakePos => {
                    request.with_header("x-webhook-secret", pancake_pos::DEV_API_KEY)
                }
                Source::Abaha => request.with_header("x-abaha-token", abaha::DEV_TOKEN),
                Source::Invoice => request.with_header(
                    "x-signature",
                    &hex::encode(hmac_sha256(invoice::DEV_SECRET.as_bytes(), body.as_bytes())),
                ),
            };
            cases.push(Case {
                source,
                name,
                request,
            });
        }
    }
    cases
}

fn bench_providers(c: &mut Criterion) {
    let env = Env::default();
    let now = OffsetDateTime::from_unix_timestamp(1_757_069_100).unwrap();
    let mut group = c.benchmark_group("verify_parse_normalise");
    for case in cases() {
        let provider = provider_from_env(case.source, &env, Mode::Local).unwrap();
        provider.verify(&case.request).expect("sample verifies");
        provider
            .normalise(&case.request, now)
            .expect("sample normalises");
        group.throughput(Throughput::Bytes(case.request.body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(case.source.as_str(), case.name),
            &case.request,
            |b, req| {
                b.iter(|| {
                    let p: &dyn Provider = provider.as_ref();
                    p.verify(black_box(req)).unwrap();
                    black_box(p.normalise(black_box(req), now).unwrap())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_providers);
criterion_main!(benches);
