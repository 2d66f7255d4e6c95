//! The notification receiver the gateway's notifier posts to: a flaky downstream. Per request
//! it draws once: `hang_pct` are held past the notifier's timeout (then answered 503, which
//! nobody reads), `fail_pct` are answered 503, the rest are checked and answered 200. Only
//! those 200s count as deliveries. The signature check is the tests library's receiver's
//! ([`webhook_tests::receiver::verify`], written from the Standard Webhooks spec, not from the
//! product's signing code), so "verified" means the notifier signed as the spec says; a
//! request that fails it is answered 401 and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use webhook_tests::receiver::{signing_key, verify};

use crate::flows::SplitMix;

pub struct Settings {
    pub secret: &'static str,
    pub fail_pct: f64,
    pub hang_pct: f64,
    /// How long a hung request is held: past the notifier's timeout.
    pub hang: Duration,
    pub seed: u64,
}

/// What one delivered transition looked like, to check the ids against the store.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// 200s answered under this `webhook-id` (more than one is a repeat).
    pub count: u32,
    pub event_key: String,
    /// The transition's entity stream (`source#tenant#kind#id`).
    pub group: String,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub answered_503: AtomicU64,
    pub hung: AtomicU64,
    pub delivered: AtomicU64,
    pub bad_signature: AtomicU64,
    /// The body's `transitionId` is not the `webhook-id` header, or the body is not JSON.
    pub bad_body: AtomicU64,
    /// `webhook-timestamp` more than 5 minutes from the receiver's clock.
    pub stale_timestamp: AtomicU64,
}

pub struct Receiver {
    key: Vec<u8>,
    settings: Settings,
    url: String,
    pub counters: Counters,
    delivered: Mutex<HashMap<String, Delivered>>,
}

/// Serves the receiver on 127.0.0.1 (an ephemeral port) in the background.
pub async fn start(settings: Settings) -> anyhow::Result<Arc<Receiver>> {
    let key = signing_key(settings.secret)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/notify", listener.local_addr()?);
    let receiver = Arc::new(Receiver {
        key,
        settings,
        url,
        counters: Counters::default(),
        delivered: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/notify", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(receiver)
}

impl Receiver {
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every `webhook-id` answered 200 at least once.
    pub fn delivered(&self) -> HashMap<String, Delivered> {
        self.delivered.lock().expect("receiver lock").clone()
    }

    /// The draw of request `n`: hang, fail, or answer.
    fn draw(&self, n: u64) -> Reply {
        let x = SplitMix::new(self.settings.seed ^ 0x005e_ed0f_5eed ^ n).fraction() * 100.0;
        if x < self.settings.hang_pct {
            Reply::Hang
        } else if x < self.settings.hang_pct + self.settings.fail_pct {
            Reply::Fail
        } else {
            Reply::Answer
        }
    }

    /// Checks an answered request and records it; returns the status to answer.
    fn accept(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        if !verify(&self.key, id, timestamp, header("webhook-signature"), body) {
            self.counters.bad_signature.fetch_add(1, Ordering::Relaxed);
            return StatusCode::UNAUTHORIZED;
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if timestamp
            .parse::<i64>()
            .map_or(true, |ts| (now - ts).abs() > 300)
        {
            self.counters
                .stale_timestamp
                .fetch_add(1, Ordering::Relaxed);
        }
        let Some((event_key, group)) = transition_of(id, body) else {
            self.counters.bad_body.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_REQUEST;
        };
        let mut delivered = self.delivered.lock().expect("receiver lock");
        delivered
            .entry(id.to_string())
            .or_insert(Delivered {
                count: 0,
                event_key,
                group,
            })
            .count += 1;
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        StatusCode::OK
    }
}

enum Reply {
    Hang,
    Fail,
    Answer,
}

/// The event key and entity stream of a transition body whose `transitionId` is `id`.
fn transition_of(id: &str, body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v["transitionId"].as_str()? != id {
        return None;
    }
    let group = format!(
        "{}#{}#{}#{}",
        v["source"].as_str()?,
        v["tenant"].as_str()?,
        v["entity"]["kind"].as_str()?,
        v["entity"]["id"].as_str()?
    );
    Some((v["eventKey"].as_str()?.to_string(), group))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = receiver.counters.requests.fetch_add(1, Ordering::Relaxed);
    match receiver.draw(n) {
        Reply::Hang => {
            receiver.counters.hung.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(receiver.settings.hang).await;
            StatusCode::SERVICE_UNAVAILABLE
        }
        Reply::Fail => {
            receiver
                .counters
                .answered_503
                .fetch_add(1, Ordering::Relaxed);
            StatusCode::SERVICE_UNAVAILABLE
        }
        Reply::Answer => receiver.accept(&headers, &body),
    }
}
