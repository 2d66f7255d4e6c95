//! `kill -9` of the real `webhooks-local` binary under concurrent load (issue 25): every
//! event it answered 200 is in the SQLite file afterwards. The writer releases a request
//! only after its batch committed, checkpoints included: nothing may let an acknowledged event
//! be lost with the process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use webhook_core::backends::sqlite::SqliteStore;
use webhook_core::model::{EntityKey, EntityKind, Source, Tenant};
use webhook_core::store::OperatorStore;
use webhook_tests::events::dev_credentialed;
use webhook_tests::lambda::spawn_local;

/// Concurrent senders, as a provider's retries and a busy gateway's clients would be.
const SENDERS: usize = 16;
/// Acknowledged events before the kill: enough for many group commits and checkpoints.
const BEFORE_KILL: usize = 3_000;
const TENANT: &str = "CRASH";

/// A new ORDER.CHANGE_STATUS for order `n` of the test's tenant.
fn order_event(n: u64) -> Vec<u8> {
    format!(
        r#"{{"event":"ORDER.CHANGE_STATUS","payload":{{"order":{{"id":{n},"code":"c{n}","status":"WAITING_CONFIRM","updated_at":"2022-06-07T09:55:58.000000Z"}},"merchant_code":"{TENANT}","from_status":"WAITING_INSPECTION","to_status":"WAITING_CONFIRM"}}}}"#
    )
    .into_bytes()
}

/// Sends new events until a request fails (the server is gone); returns the orders it
/// acknowledged with 200.
async fn sender(base: String, next: Arc<AtomicU64>, acked: Arc<Mutex<Vec<u64>>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let req = dev_credentialed(Source::Fulfilment, &order_event(n), Some(&format!("d{n}")));
        let mut post = client
            .post(format!("{base}/api/v1/fulfilment/webhook"))
            .body(req.body.clone());
        for (k, v) in &req.headers {
            post = post.header(k, v);
        }
        match post.send().await {
            Ok(answer) if answer.status().as_u16() == 200 => acked.lock().unwrap().push(n),
            Ok(answer) => panic!("order {n} was answered {}", answer.status()),
            Err(_) => return,
        }
    }
}

#[tokio::test]
async fn a_kill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let (mut child, listen) = spawn_local(&["--no-console"], &db).await;
    let base = format!("http://{listen}");

    let (next, acked) = (
        Arc::new(AtomicU64::new(1)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(sender(base.clone(), next.clone(), acked.clone())))
        .collect();
    while acked.lock().unwrap().len() < BEFORE_KILL {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let store = SqliteStore::open(&db, false).expect("the file opens after the crash");
    let mut lost = Vec::new();
    for n in &acked {
        let key = EntityKey::new(
            Source::Fulfilment,
            Tenant::new(TENANT),
            EntityKind::Order,
            n.to_string(),
        );
        if store.entity(&key).await.unwrap().is_none() {
            lost.push(*n);
        }
    }
    assert!(acked.len() >= BEFORE_KILL, "{} acknowledged", acked.len());
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
}
