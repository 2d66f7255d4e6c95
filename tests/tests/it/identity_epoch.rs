//! The identity epoch (issue 24's bill, ARCHITECTURE §4 "Upgrade", decision 63), on both
//! backends through the real pipeline: a store that was empty when today's identity first
//! served it never pays for the earlier-key read; an upgraded store reads earlier keys,
//! keeps deduplicating what the earlier release stored, and stops reading once those
//! records have expired. The marker is written once and read the same by every process.

use std::sync::Arc;

use time::OffsetDateTime;
use webhook_core::clock::FixedClock;
use webhook_core::config::PipelineSettings;
use webhook_core::model::Accepted;
use webhook_core::pipeline::Pipeline;
use webhook_core::store::IdentityEpoch;
use webhook_tests::kit::Kit;
use webhook_tests::samples::{self, RECEIVED_AT};

webhook_tests::on_every_backend!(
    the_marker_is_written_once_and_read_alike_by_every_process,
    a_fresh_store_never_reads_earlier_keys,
    an_upgraded_store_reads_earlier_keys_until_their_records_expire,
);

/// A process of today's release: the pipeline as `runtime` wires it, on a clock at `at`.
fn process(kit: &Kit, at: i64) -> Pipeline {
    Pipeline::new(
        kit.store.clone(),
        kit.queue.clone(),
        Arc::new(FixedClock::at_unix(at)),
        PipelineSettings::default(),
    )
    .asking_identity_epoch()
}

async fn post(pipeline: &Pipeline, order: u64, delivery: &str) -> Accepted {
    let body = samples::order_status_body(order, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let provider = samples::provider();
    pipeline
        .ingest(&provider, &samples::signed(&body, delivery))
        .await
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

/// Stores what the earlier release stored for `order` under delivery id `delivery`.
async fn stored_by_the_earlier_release(kit: &Kit, order: u64, delivery: &str) {
    let body = samples::order_status_body(order, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let old = samples::as_previous_release(&samples::signed(&body, delivery));
    kit.store.persist(&old).await.expect("stored");
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("a time")
}

async fn the_marker_is_written_once_and_read_alike_by_every_process(kit: &Kit) {
    stored_by_the_earlier_release(kit, 4101, "7101").await;
    let first = kit.store.identity_epoch(at(RECEIVED_AT)).await.unwrap();
    assert_eq!(
        first,
        IdentityEpoch::UpgradedAt(at(RECEIVED_AT)),
        "[{}]",
        kit.name
    );
    // a later process, on a store that has changed since, reads the same marker
    post(&process(kit, RECEIVED_AT + 60), 4102, "7102").await;
    let later = kit.store.identity_epoch(at(RECEIVED_AT + 86_400)).await;
    assert_eq!(later.unwrap(), first, "[{}] written once", kit.name);
}

/// On a fresh store the earlier key is never read: an event stored under it (which only an
/// earlier release could have written, so never in a fresh store) is not found, and the
/// delivery is stored under today's key.
async fn a_fresh_store_never_reads_earlier_keys(kit: &Kit) {
    let pipeline = process(kit, RECEIVED_AT);
    let first = post(&pipeline, 4201, "7201").await;
    assert!(!first.duplicate, "[{}] {first:?}", kit.name);
    let epoch = kit.store.identity_epoch(at(RECEIVED_AT + 1)).await.unwrap();
    assert_eq!(epoch, IdentityEpoch::Fresh, "[{}]", kit.name);

    stored_by_the_earlier_release(kit, 4202, "7202").await;
    let again = post(&pipeline, 4202, "7202").await;
    assert_ne!(
        again.event_key, "fulfilment#7202",
        "[{}] not read",
        kit.name
    );
    assert!(!again.duplicate, "[{}] {again:?}", kit.name);
    assert_eq!(again.conflict_with, None, "[{}]", kit.name);
}

/// An upgraded store reads earlier keys for `RETENTION_DAYS` after the upgrade (the
/// earlier release's records expire by then), and not after.
async fn an_upgraded_store_reads_earlier_keys_until_their_records_expire(kit: &Kit) {
    stored_by_the_earlier_release(kit, 4301, "7301").await;
    stored_by_the_earlier_release(kit, 4302, "7302").await;
    let upgraded = process(kit, RECEIVED_AT);
    let again = post(&upgraded, 4301, "7301").await;
    assert!(again.duplicate, "[{}] {again:?}", kit.name);
    assert_eq!(again.event_key, "fulfilment#7301", "[{}]", kit.name);

    let retention = PipelineSettings::default().retention_days as i64 * 86_400;
    let last_day = process(kit, RECEIVED_AT + retention - 1);
    let still = post(&last_day, 4302, "7302").await;
    assert!(still.duplicate, "[{}] still read on the last day", kit.name);

    stored_by_the_earlier_release(kit, 4303, "7303").await;
    let after = process(kit, RECEIVED_AT + retention);
    let new = post(&after, 4303, "7303").await;
    assert_ne!(
        new.event_key, "fulfilment#7303",
        "[{}] no longer read",
        kit.name
    );
}
