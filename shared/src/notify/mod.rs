//! Notifier core (ARCHITECTURE §6), transport-agnostic: turns one queued transition into one
//! delivery attempt and classifies the result. Used by the `notifier` Lambda through
//! [`batch`] (an SQS batch in, `batchItemFailures` out) and by the local [`worker`] over the
//! embedded outbox.
//!
//! - `NOTIFY_URL` unset: each transition is written to the log as a notification and counts
//!   as delivered ([`Target::Log`]): its ids, entity key, from/to and times, never its `data`
//!   (customers' personal data); whole only with `NOTIFY_LOG_BODIES=true`, a development
//!   switch the template never sets ([`Target::LogWhole`]).
//! - `NOTIFY_URL` set: the transition JSON (the queued body, byte for byte) is POSTed there,
//!   signed per Standard Webhooks ([`signing`]) with `NOTIFY_SECRET`, within
//!   `NOTIFY_TIMEOUT_MS` (default 5000) ([`Target::Http`]).
//!
//! Outcomes ([`classify`]): 2xx is delivered; a timeout, a connection error, 408, 429 and
//! 5xx are retried (the queue redelivers, backing off); any other status (4xx, and 3xx since
//! redirects are not followed) is permanent: recorded on the transition as
//! `failed_permanently`, logged as an error, counted, and handed back as a failure so the
//! queue dead-letters it after its bounded receives. A body that is not a transition
//! (poison message) takes the permanent path too. A permanent failure is still attempted
//! on each receive: a receiver fixing its side in between (or an operator redriving the
//! DLQ) then gets the message.
//!
//! Idempotency: before sending, the transition's recorded outcome is read; one already
//! `delivered` is acknowledged without a second request (`webhook-id` is the transition
//! id, so a receiver can also deduplicate on it). The outcome is recorded after a 2xx; if
//! that write fails the message is still acknowledged (sending it again would notify
//! twice), and a warning is logged.

pub mod batch;
pub mod signing;
mod target;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::metrics::{names, MetricLine, MetricsSink};
use crate::model::TransitionMessage;
use crate::store::{DeliveryOutcome, DeliveryRecord, DeliveryStore};

pub use signing::{SecretFormatError, SigningKey, SigningKeys};
pub use target::{Target, DEFAULT_TIMEOUT_MS, SECRET_VAR, TIMEOUT_VAR, URL_VAR};

/// The `Service` dimension of the notifier's metrics.
pub const METRICS_SERVICE: &str = "notifier";
/// Longest transition id accepted as a `webhook-id` header.
const MAX_ID_LEN: usize = 256;

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (2xx), or written to the log when no endpoint is configured.
    Delivered { status: Option<u16> },
    /// Already delivered earlier (queue redelivery): not sent again.
    AlreadyDelivered,
    /// Worth retrying: timeout, connection error, 5xx, 408, 429, store hiccup.
    Retry { reason: String },
    /// Will never succeed as is (other 4xx, 3xx, unparseable message): dead-letter it.
    Permanent { reason: String, status: Option<u16> },
}

impl Outcome {
    /// Done with the message: the queue may delete it.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Delivered { .. } | Outcome::AlreadyDelivered)
    }

    /// Short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::AlreadyDelivered => "already_delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Permanent { .. } => "failed_permanently",
        }
    }
}

/// What an HTTP status means for a notification.
pub(crate) fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered {
            status: Some(status),
        },
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("receiver answered {status}"),
        },
        300..=399 => Outcome::Permanent {
            reason: format!(
                "receiver answered {status}: redirects are not followed, configure the final URL"
            ),
            status: Some(status),
        },
        400..=499 => Outcome::Permanent {
            reason: format!("receiver answered {status}"),
            status: Some(status),
        },
        // 1xx as a final answer or a non-standard code: nothing says it is permanent.
        _ => Outcome::Retry {
            reason: format!("receiver answered an unexpected status {status}"),
        },
    }
}

/// Why a queued body is not a transition to notify (a poison message).
#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    #[error("not a transition message: {0}")]
    NotATransition(#[from] serde_json::Error),
    #[error("transitionId must be 1-{max} visible ASCII characters", max = MAX_ID_LEN)]
    BadId,
}

/// Parses a queued body into a transition whose id can be a `webhook-id` header.
pub fn parse_message(body: &str) -> Result<TransitionMessage, BadMessage> {
    let message: TransitionMessage = serde_json::from_str(body)?;
    let id = &message.transition_id;
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadMessage::BadId);
    }
    Ok(message)
}

pub struct Notifier {
    target: Target,
    store: Arc<dyn DeliveryStore>,
    clock: Arc<dyn Clock>,
    metrics: MetricsSink,
}

impl Notifier {
    pub fn new(target: Target, store: Arc<dyn DeliveryStore>, clock: Arc<dyn Clock>) -> Self {
        Notifier {
            target,
            store,
            clock,
            metrics: MetricsSink::Off,
        }
    }

    /// Where the batch and worker counters go (EMF in Lambda; off by default).
    pub(crate) fn with_metrics(mut self, sink: MetricsSink) -> Self {
        self.metrics = sink;
        self
    }

    pub fn metrics(&self) -> MetricsSink {
        self.metrics
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Delivers one queued message body (`attempt` is the receive count, 1 on the first).
    pub async fn deliver(&self, body: &str, attempt: u32) -> Outcome {
        self.deliver_batch(&[(body, attempt)], None)
            .await
            .pop()
            .expect("one outcome per message")
    }

    /// Delivers queued message bodies of distinct message groups (they are sent
    /// concurrently, so two of one group would race), with one store read of their recorded
    /// outcomes before. Outcomes come back in input order.
    ///
    /// Each outcome is recorded as soon as its own delivery ends, not when the batch's
    /// slowest one does, and `cap` (shared by the callers' batches) bounds how many
    /// deliveries are between their request and their recorded outcome. A crash repeats
    /// exactly those (they are sent again after the visibility timeout), so `cap` bounds the
    /// repeats of a crash; measured in BENCHMARKS.md.
    pub(crate) async fn deliver_batch(
        &self,
        items: &[(&str, u32)],
        cap: Option<&Semaphore>,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let parsed = parse_batch(items, &mut outcomes);
        let to_send = self.not_yet_delivered(items, parsed, &mut outcomes).await;
        let sent = futures::future::join_all(to_send.into_iter().map(|(i, message)| async move {
            let _permit = match cap {
                Some(cap) => Some(cap.acquire().await.expect("the cap is never closed")),
                None => None,
            };
            let outcome = self.send(&message, items[i].0, items[i].1).await;
            if let Some(record) = self.record_of(&outcome, items[i].1) {
                self.record(&[(message, record)]).await;
            }
            (i, outcome)
        }))
        .await;
        for (i, outcome) in sent {
            outcomes[i] = Some(outcome);
        }
        outcomes.into_iter().flatten().collect()
    }

    /// The parsed messages whose delivery is not recorded yet, with one store read for all;
    /// the others get their outcome here (already delivered, or a retry when the read failed).
    async fn not_yet_delivered(
        &self,
        items: &[(&str, u32)],
        parsed: Vec<(usize, TransitionMessage)>,
        outcomes: &mut [Option<Outcome>],
    ) -> Vec<(usize, TransitionMessage)> {
        if parsed.is_empty() {
            return parsed;
        }
        let messages: Vec<TransitionMessage> = parsed.iter().map(|(_, m)| m.clone()).collect();
        let recorded = match self.store.deliveries(&messages).await {
            Ok(recorded) => recorded,
            Err(e) => {
                for (i, message) in &parsed {
                    let outcome = Outcome::Retry {
                        reason: format!("could not read the delivery record: {e}"),
                    };
                    log_outcome(message, items[*i].1, &outcome, 0.0);
                    outcomes[*i] = Some(outcome);
                }
                return Vec::new();
            }
        };
        let mut to_send = Vec::with_capacity(parsed.len());
        for ((i, message), record) in parsed.into_iter().zip(recorded) {
            match record {
                Some(record) if record.is_delivered() => {
                    info!(
                        transition_id = %message.transition_id,
                        entity = %message.group_id(),
                        attempt = items[i].1,
                        delivered_at = %record.at,
                        outcome = "already_delivered",
                        "notification already delivered: not sent again"
                    );
                    outcomes[i] = Some(Outcome::AlreadyDelivered);
                }
                _ => to_send.push((i, message)),
            }
        }
        to_send
    }

    /// Writes the final outcomes in one store call; a failure is logged, never turned into a
    /// retry of what was sent (a redelivery is caught by the receiver's webhook-id dedupe).
    async fn record(&self, records: &[(TransitionMessage, DeliveryRecord)]) {
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_deliveries(records).await {
            for (message, record) in records {
                warn!(
                    transition_id = %message.transition_id,
                    outcome = %record.outcome,
                    error = %e,
                    "could not record the delivery outcome"
                );
            }
        }
    }

    /// One attempt at the target; no store access.
    async fn send(&self, message: &TransitionMessage, body: &str, attempt: u32) -> Outcome {
        match &self.target {
            Target::Log => {
                info!(
                    transition_id = %message.transition_id,
                    event_key = %message.event_key,
                    entity = %message.group_id(),
                    from = message.from.as_deref(),
                    to = %message.to,
                    occurred_at = %message.occurred_at,
                    late = message.late,
                    "notification (no NOTIFY_URL configured)"
                );
                Outcome::Delivered { status: None }
            }
            Target::LogWhole => {
                info!(
                    notification = %body,
                    transition_id = %message.transition_id,
                    entity = %message.group_id(),
                    "notification (no NOTIFY_URL configured; NOTIFY_LOG_BODIES)"
                );
                Outcome::Delivered { status: None }
            }
            Target::Http {
                url,
                secret,
                client,
                timeout,
            } => {
                let started = Instant::now();
                let outcome = self
                    .post(client, url, secret, *timeout, message, body)
                    .await;
                log_outcome(
                    message,
                    attempt,
                    &outcome,
                    started.elapsed().as_secs_f64() * 1_000.0,
                );
                outcome
            }
        }
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        url: &Url,
        secret: &SigningKeys,
        timeout: Duration,
        message: &TransitionMessage,
        body: &str,
    ) -> Outcome {
        let timestamp = self.clock.now().unix_timestamp();
        let id = message.transition_id.as_str();
        let signature = secret.signature_header(id, timestamp, body.as_bytes());
        let sent = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(signing::HEADER_ID, id)
            .header(signing::HEADER_TIMESTAMP, timestamp.to_string())
            .header(signing::HEADER_SIGNATURE, signature)
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(response) => classify(response.status().as_u16()),
            Err(e) if e.is_timeout() => Outcome::Retry {
                reason: format!("no answer within {} ms", timeout.as_millis()),
            },
            Err(e) if e.is_connect() => Outcome::Retry {
                reason: format!("could not connect: {}", e.without_url()),
            },
            Err(e) => Outcome::Retry {
                reason: format!("request failed: {}", e.without_url()),
            },
        }
    }

    /// The record of a final outcome (delivered or permanently failed), written on the
    /// transition, which marks it published. A failure to record is logged by the caller;
    /// it does not turn a sent notification into a retry.
    fn record_of(&self, outcome: &Outcome, attempt: u32) -> Option<DeliveryRecord> {
        let (recorded, status) = match outcome {
            Outcome::Delivered { status } => (DeliveryOutcome::Delivered, *status),
            Outcome::Permanent { status, .. } => (DeliveryOutcome::FailedPermanently, *status),
            Outcome::AlreadyDelivered | Outcome::Retry { .. } => return None,
        };
        Some(DeliveryRecord {
            outcome: recorded,
            status,
            attempt,
            at: self.clock.now().format(&Rfc3339).unwrap_or_default(),
        })
    }
}

/// The batch's bodies that parse as transitions, by index; a poison body's outcome is set
/// here (permanent: it can never succeed, so it is dead-lettered).
fn parse_batch(
    items: &[(&str, u32)],
    outcomes: &mut [Option<Outcome>],
) -> Vec<(usize, TransitionMessage)> {
    let mut parsed = Vec::with_capacity(items.len());
    for (i, (body, attempt)) in items.iter().enumerate() {
        match parse_message(body) {
            Ok(message) => parsed.push((i, message)),
            Err(reason) => {
                error!(
                    attempt,
                    body_bytes = body.len(),
                    reason = %reason,
                    outcome = "failed_permanently",
                    "poison message: the queued body is not a transition; it will be dead-lettered"
                );
                outcomes[i] = Some(Outcome::Permanent {
                    reason: format!("poison message: {reason}"),
                    status: None,
                });
            }
        }
    }
    parsed
}

fn log_outcome(message: &TransitionMessage, attempt: u32, outcome: &Outcome, duration_ms: f64) {
    let id = message.transition_id.as_str();
    let entity = message.group_id();
    match outcome {
        Outcome::Delivered { status } => info!(
            transition_id = %id, entity = %entity, attempt, status = ?status, duration_ms,
            outcome = "delivered", "notification delivered"
        ),
        Outcome::AlreadyDelivered => {}
        Outcome::Retry { reason } => warn!(
            transition_id = %id, entity = %entity, attempt, reason = %reason, duration_ms,
            outcome = "retry", "notification not delivered: the queue will retry it"
        ),
        Outcome::Permanent { reason, status } => error!(
            transition_id = %id, entity = %entity, attempt, status = ?status, reason = %reason,
            duration_ms, outcome = "failed_permanently",
            "notification failed permanently: recorded, and dead-lettered after the queue's bounded receives"
        ),
    }
}

/// Counters of one batch (Lambda) or one drain (worker), written as one EMF line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub delivered: u64,
    pub already_delivered: u64,
    pub retried: u64,
    pub permanent: u64,
    /// Not attempted: an earlier message of the same FIFO group failed in this batch.
    pub deferred: u64,
}

impl Tally {
    pub fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered { .. } => self.delivered += 1,
            Outcome::AlreadyDelivered => self.already_delivered += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Permanent { .. } => self.permanent += 1,
        }
    }

    pub(crate) fn metric_line(&self, elapsed_ms: f64) -> MetricLine {
        MetricLine::new(METRICS_SERVICE)
            .count(names::NOTIFICATIONS_DELIVERED, self.delivered)
            .count(names::NOTIFICATIONS_FAILED, self.retried + self.permanent)
            .count(names::NOTIFICATIONS_PERMANENT_FAILURES, self.permanent)
            .count(names::NOTIFICATIONS_DEFERRED, self.deferred)
            .millis(names::LATENCY, elapsed_ms)
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::backends::sqlite::SqliteStore;
    use crate::clock::FixedClock;
    use crate::config::{ConfigError, Env};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn statuses_are_classified() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify(s), Outcome::Delivered { status: Some(s) });
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(matches!(classify(s), Outcome::Retry { .. }), "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 409, 410, 413, 422] {
            assert_eq!(
                match classify(s) {
                    Outcome::Permanent { status, .. } => status,
                    other => panic!("{s}: {other:?}"),
                },
                Some(s)
            );
        }
    }

    #[test]
    fn no_url_means_log() {
        assert!(matches!(
            Target::from_env(&Env::default()).unwrap(),
            Target::Log
        ));
        // A secret alone does not turn HTTP delivery on.
        let env = Env::from_pairs([(SECRET_VAR, SECRET)]);
        assert!(matches!(Target::from_env(&env).unwrap(), Target::Log));
    }

    #[test]
    fn url_requires_a_well_formed_secret_never_echoed() {
        let url = "https://hooks.example.com/in?token=abc";
        let err = Target::from_env(&Env::from_pairs([(URL_VAR, url)])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing(SECRET_VAR)), "{err}");
        assert!(err.to_string().contains(SECRET_VAR));

        for bad in ["s3cr3t-plain-value", "whsec_%%%not-base64%%%", "whsec_"] {
            let env = Env::from_pairs([(URL_VAR, url), (SECRET_VAR, bad)]);
            let err = Target::from_env(&env).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(SECRET_VAR), "{shown}");
            let key_part = bad.trim_start_matches("whsec_");
            if !key_part.is_empty() {
                assert!(!shown.contains(key_part), "the secret leaked: {shown}");
            }
        }
    }

    #[test]
    fn url_and_timeout_are_validated() {
        for bad in [
            "hooks.example.com/in",
            "ftp://hooks.example.com/",
            "not a url",
        ] {
            let env = Env::from_pairs([(URL_VAR, bad), (SECRET_VAR, SECRET)]);
            let err = Target::from_env(&env).unwrap_err();
            assert!(err.to_string().contains(URL_VAR), "{bad}: {err}");
        }
        for bad in ["0", "soon"] {
            let env = Env::from_pairs([
                (URL_VAR, "http://127.0.0.1:9/x"),
                (SECRET_VAR, SECRET),
                (TIMEOUT_VAR, bad),
            ]);
            let err = Target::from_env(&env).unwrap_err();
            assert!(err.to_string().contains(TIMEOUT_VAR), "{bad}: {err}");
        }
        let env = Env::from_pairs([
            (
                URL_VAR,
                "https://user:pw@hooks.example.com:8443/in?token=abc",
            ),
            (SECRET_VAR, SECRET),
            (TIMEOUT_VAR, "250"),
        ]);
        let target = Target::from_env(&env).unwrap();
        assert_eq!(target.timeout(), Some(Duration::from_millis(250)));
        let shown = format!("{target:?}");
        assert!(
            shown.contains("https://hooks.example.com:8443/in"),
            "{shown}"
        );
        for hidden in ["pw", "token", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(!shown.contains(hidden), "{hidden} shown in {shown}");
        }
        let default = Target::from_env(&Env::from_pairs([
            (URL_VAR, "http://127.0.0.1:9/x"),
            (SECRET_VAR, SECRET),
        ]))
        .unwrap();
        assert_eq!(
            default.timeout(),
            Some(Duration::from_millis(DEFAULT_TIMEOUT_MS))
        );
    }

    #[test]
    fn poison_bodies_are_rejected() {
        assert!(parse_message("not json").is_err());
        assert!(parse_message(r#"{"hello":"world"}"#).is_err());
        let valid = sample("tr_1");
        assert!(parse_message(&valid).is_ok());
        let bad_id = sample("tr 1\n");
        assert!(parse_message(&bad_id).is_err());
        assert!(parse_message(&sample("")).is_err());
    }

    fn sample(id: &str) -> String {
        serde_json::json!({
            "transitionId": id, "source": "invoice", "tenant": "default",
            "entity": {"kind": "invoice", "id": "inv_1"}, "from": "Ready", "to": "Pending",
            "occurredAt": "2025-09-05T10:45:00Z", "eventKey": "invoice#abc", "data": {}
        })
        .to_string()
    }

    #[tokio::test]
    async fn log_target_delivers_and_a_bad_body_is_permanent() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let notifier = Notifier::new(Target::Log, store, Arc::new(FixedClock::at_unix(1)));
        assert_eq!(
            notifier.deliver(&sample("tr_1"), 1).await,
            Outcome::Delivered { status: None }
        );
        assert!(matches!(
            notifier.deliver("{", 1).await,
            Outcome::Permanent { status: None, .. }
        ));
    }

    #[tokio::test]
    async fn unreachable_receiver_is_retried() {
        // Bind then drop a listener: the port is closed, so the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target::http(
            &format!("http://127.0.0.1:{port}/hook?token=t0ps3cret"),
            SigningKeys::parse(SECRET).unwrap(),
            Duration::from_secs(5),
        )
        .unwrap();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let notifier = Notifier::new(target, store, Arc::new(FixedClock::at_unix(1)));
        match notifier.deliver(&sample("tr_1"), 1).await {
            Outcome::Retry { reason } => assert!(!reason.contains("t0ps3cret"), "{reason}"),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn tally_counts_failures_and_deferrals() {
        let mut t = Tally::default();
        t.add(&Outcome::Delivered { status: Some(200) });
        t.add(&Outcome::AlreadyDelivered);
        t.add(&Outcome::Retry { reason: "x".into() });
        t.add(&Outcome::Permanent {
            reason: "y".into(),
            status: Some(410),
        });
        t.deferred += 2;
        let v = t.metric_line(1.0).to_json(0);
        assert_eq!(v[names::NOTIFICATIONS_DELIVERED], 1.0);
        assert_eq!(v[names::NOTIFICATIONS_FAILED], 2.0);
        assert_eq!(v[names::NOTIFICATIONS_PERMANENT_FAILURES], 1.0);
        assert_eq!(v[names::NOTIFICATIONS_DEFERRED], 2.0);
        assert_eq!(v["Service"], METRICS_SERVICE);
    }
}
