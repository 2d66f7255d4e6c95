//! The local notifier worker: drains the embedded outbox through the [`Notifier`] with the
//! same outcomes as the Lambda (retry with backoff, dead-letter permanent failures and
//! messages received `max_receives` times). Order per entity holds because the outbox only
//! hands out a group's oldest message, and a failed head stays the head until it is
//! delivered or dead-lettered: a receiver outage delays a group, it never reorders or
//! drops it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, warn};

use super::{Notifier, Outcome, Tally};
use crate::queue::{OutboxMessage, PullQueue, Settlement};

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub poll_interval: Duration,
    /// Messages per receive, at most one per entity, all delivered concurrently. Each batch
    /// costs four store round trips (receive, delivery lookup, record, settle) whatever its
    /// size, so a larger batch is what lets the worker keep up with a busy gateway.
    pub batch: usize,
    /// How long a handed-out message stays invisible (covers the HTTP timeout).
    pub visibility: Duration,
    /// Delay before the first retry; doubles per receive, capped at `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Like the SQS redrive policy's maxReceiveCount.
    pub max_receives: u32,
}

/// Defaults ride out a receiver outage of about 50 minutes (0.5 s doubling to 5 min
/// between attempts, 20 attempts) before a transition is dead-lettered.
impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            poll_interval: Duration::from_millis(200),
            batch: 64,
            visibility: Duration::from_secs(30),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            max_receives: 20,
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Processes what is visible now; returns how many messages were handled.
pub async fn drain_once(
    outbox: &dyn PullQueue,
    notifier: &Notifier,
    settings: &WorkerSettings,
) -> usize {
    let started = std::time::Instant::now();
    let batch = match outbox
        .receive(
            now_ms(),
            settings.batch,
            settings.visibility.as_millis() as i64,
        )
        .await
    {
        Ok(b) => b,
        Err(e) => {
            error!(error = %e, "outbox receive failed");
            return 0;
        }
    };
    let handled = batch.len();
    if handled == 0 {
        return 0;
    }
    // One message per group per batch, so the groups can be delivered concurrently.
    let items: Vec<(&str, u32)> = batch
        .iter()
        .map(|m| (m.body.as_str(), m.receive_count))
        .collect();
    let outcomes = notifier.deliver_batch(&items).await;
    let mut tally = Tally::default();
    let settlements = batch
        .iter()
        .zip(outcomes)
        .map(|(message, outcome)| {
            tally.add(&outcome);
            settlement(message, outcome, settings)
        })
        .collect();
    if let Err(e) = outbox.settle(settlements).await {
        error!(error = %e, "outbox update failed; the batch will be handed out again");
    }
    tally
        .metric_line(started.elapsed().as_secs_f64() * 1_000.0)
        .emit(notifier.metrics());
    handled
}

fn settlement(message: &OutboxMessage, outcome: Outcome, settings: &WorkerSettings) -> Settlement {
    match outcome {
        Outcome::Delivered { .. } | Outcome::AlreadyDelivered => {
            Settlement::Ack { seq: message.seq }
        }
        Outcome::Retry { reason } => {
            let exp = settings.base_backoff.as_millis() as i64
                * (1_i64 << message.receive_count.min(16).saturating_sub(1));
            let delay = exp.min(settings.max_backoff.as_millis() as i64);
            warn!(group = %message.group_id, attempt = message.receive_count, reason = %reason, retry_in_ms = delay, "notification failed, will retry");
            let settlement = Settlement::nack(
                message,
                now_ms() + delay,
                settings.max_receives,
                false,
                &reason,
            );
            if matches!(settlement, Settlement::Nack { dead: true, .. }) {
                error!(group = %message.group_id, attempts = message.receive_count, "notification dead-lettered after max receives");
            }
            settlement
        }
        Outcome::Permanent { reason, .. } => {
            error!(group = %message.group_id, reason = %reason, "notification failed permanently: dead-lettered");
            Settlement::nack(message, now_ms(), settings.max_receives, true, &reason)
        }
    }
}

/// Runs until `shutdown` turns true. The visibility timeout is raised to cover the
/// notifier's request timeout, so a slow attempt is never handed out twice.
pub async fn run(
    outbox: Arc<dyn PullQueue>,
    notifier: Arc<Notifier>,
    mut settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some(timeout) = notifier.target().timeout() {
        settings.visibility = settings.visibility.max(timeout * 2);
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        let handled = drain_once(outbox.as_ref(), &notifier, &settings).await;
        if handled == 0 {
            tokio::select! {
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
