//! Per-provider cost of the pure part of ingest — verify + parse + normalise — for a ~2 KB
//! and a ~256 KB body (targets: ≤ 30 µs and ≤ 2 ms per event on the 2-core dev machine).
//! Run: cargo bench -p webhook-core --bench providers

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use time::OffsetDateTime;
use webhook_core::config::{Env, Mode};
use webhook_core::http::RawRequest;
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::sources::{provider_from_env, Provider};
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

fn fulfilment_cases() -> Vec<Case> {
    let seed: Value = serde_json::from_str(include_str!(
        "../fixtures/fulfilment/order_change_status.json"
    ))
    .unwrap();
    [("2KB", 2 * 1024), ("256KB", 250 * 1024)]
        .into_iter()
        .map(|(name, size)| {
            let body = padded(seed.clone(), &["payload", "order"], size);
            let sig = Fulfilment::sign(body.as_bytes(), "dev-fulfilment-secret");
            Case {
                source: Source::Fulfilment,
                name,
                request: RawRequest::post("/api/v1/fulfilment/webhook", body)
                    .with_header("x-event-signature", &sig)
                    .with_header("x-event-delivery", "42"),
            }
        })
        .collect()
}

fn bench_providers(c: &mut Criterion) {
    let env = Env::default();
    let now = OffsetDateTime::from_unix_timestamp(1_757_069_100).unwrap();
    let mut group = c.benchmark_group("verify_parse_normalise");
    for case in fulfilment_cases() {
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
