//! A loopback receiver of the notifier's Standard Webhooks notifications (axum on
//! 127.0.0.1:0, `POST /notify`), the one every notification test posts to.
//!
//! It answers per `webhook-id` from a script of replies (a status, or a hang past any
//! timeout), else with a fixed status set for that id, else 503 while it is down, else 200,
//! and records every request: its `webhook-id`, `webhook-timestamp`, `webhook-signature`,
//! content type and body, whether the signature verifies, when it arrived and what it was
//! answered. The signature check is the receiver's own, written from the Standard Webhooks
//! spec with the `hmac` crate (not the product's signing code), so a test that the receiver
//! verified a request says the notifier signed it as the spec requires. That check,
//! [`signing_key`] and [`verify`], is also the soak driver's (`functions/local/examples/soak`):
//! the workspace has one independent oracle of the notifier's signatures.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webhook_core::model::TransitionMessage;

use crate::events::serve_in_background;

/// The path the receiver answers on (its URL ends with it).
pub const PATH: &str = "/notify";

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Answers (200) only after two minutes, far past any notifier timeout in the tests.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id` (empty when missing).
    pub id: String,
    /// `webhook-timestamp`, as sent (empty when missing).
    pub timestamp: String,
    /// `webhook-signature`, as sent (empty when missing).
    pub signature: String,
    /// `content-type` (empty when missing).
    pub content_type: String,
    /// The body (lossily decoded as UTF-8).
    pub body: String,
    /// Some `v1,` signature in `webhook-signature` is base64(HMAC-SHA256(key,
    /// "{id}.{timestamp}.{body}")), the key being the secret's base64 after `whsec_`.
    pub verified: bool,
    /// When the request arrived (unix seconds, the system clock).
    pub received_at: i64,
    /// The status answered; `None` for a [`Reply::Hang`] (no answer in time).
    pub answered: Option<u16>,
}

impl Received {
    /// The body as the transition it carries (panics if it is not one).
    pub fn message(&self) -> TransitionMessage {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body of {} is not a transition: {e}", self.id))
    }

    /// Answered with a 2xx status.
    pub fn accepted(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }

    /// `webhook-timestamp` is unix seconds within `tolerance_secs` of the arrival (the
    /// spec's replay check; five minutes is the tolerance it suggests).
    pub fn timestamp_within(&self, tolerance_secs: i64) -> bool {
        self.timestamp
            .parse::<i64>()
            .is_ok_and(|ts| (self.received_at - ts).abs() <= tolerance_secs)
    }
}

pub struct Receiver {
    key: Vec<u8>,
    /// Replies per `webhook-id`, in order, each used once.
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// A status per `webhook-id`, every time (once its script, if any, has run out).
    statuses: Mutex<HashMap<String, u16>>,
    /// While true, requests with neither a script nor a fixed status are answered 503.
    down: AtomicBool,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    /// Serves a receiver verifying with `secret` (`whsec_` + base64); returns it and its URL
    /// (`http://127.0.0.1:<port>/notify`).
    pub async fn start(secret: &str) -> (Arc<Receiver>, String) {
        let receiver = Arc::new(Receiver {
            key: signing_key(secret).expect("the secret is base64"),
            script: Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            down: AtomicBool::new(false),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(PATH, post(receive))
            .with_state(receiver.clone());
        let url = format!("{}{PATH}", serve_in_background(app).await);
        (receiver, url)
    }

    /// The replies to the next requests with `webhook-id` `id`, in order.
    pub fn script(&self, id: &str, replies: &[Reply]) {
        self.script
            .lock()
            .expect("receiver lock")
            .insert(id.to_string(), replies.iter().copied().collect());
    }

    /// Answers every request with `webhook-id` `id` with `status` (even while down).
    pub fn answer(&self, id: &str, status: u16) {
        self.statuses
            .lock()
            .expect("receiver lock")
            .insert(id.to_string(), status);
    }

    /// Down (503 to every request without a script or a fixed status) or up again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }

    /// The `webhook-id` of every request so far, in arrival order.
    pub fn ids(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.id).collect()
    }

    /// The requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }

    /// How many requests came per `webhook-id`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.received.lock().expect("receiver lock").iter() {
            *counts.entry(r.id.clone()).or_default() += 1;
        }
        counts
    }

    fn reply(&self, id: &str) -> Reply {
        let scripted = self
            .script
            .lock()
            .expect("receiver lock")
            .get_mut(id)
            .and_then(VecDeque::pop_front);
        let fixed = || {
            let status = self
                .statuses
                .lock()
                .expect("receiver lock")
                .get(id)
                .copied();
            status.map(Reply::Status)
        };
        scripted.or_else(fixed).unwrap_or_else(|| {
            if self.down.load(Ordering::SeqCst) {
                Reply::Status(503)
            } else {
                Reply::Status(200)
            }
        })
    }
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_` (or the whole secret).
pub fn signing_key(secret: &str) -> Result<Vec<u8>, base64::DecodeError> {
    B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret))
}

/// Standard Webhooks verification, from the spec: any `v1,` entry of the space-separated
/// `signature` header must be base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn verify(key: &[u8], id: &str, timestamp: &str, signature: &str, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    signature.split(' ').any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|b64| B64.decode(b64).ok())
            .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    })
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let received_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = verify(&receiver.key, &id, &timestamp, &signature, &body);
    let reply = receiver.reply(&id);
    receiver
        .received
        .lock()
        .expect("receiver lock")
        .push(Received {
            id,
            timestamp,
            signature,
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
            verified,
            received_at,
            answered: match reply {
                Reply::Status(code) => Some(code),
                Reply::Hang => None,
            },
        });
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).expect("a valid status"),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::OK
        }
    }
}
