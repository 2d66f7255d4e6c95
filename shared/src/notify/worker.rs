//! The local notifier worker: drains the embedded outbox through the [`Notifier`] with the
//! same outcomes as the Lambda (retry with backoff, dead-letter permanent failures and
//! messages received `max_receives` times). Order per entity holds because the outbox only
//! hands out a group's oldest message, and a failed head stays the head until it is
//! delivered or dead-lettered: a receiver outage delays a group, it never reorders or
//! drops it.
//!
//! Batches run concurrently (`WorkerSettings::batches_in_flight`): a batch settles only when
//! its slowest delivery ends, so with one batch at a time a receiver that holds 1 % of
//! requests until the timeout held back every other entity behind it, and the outbox grew
//! without bound under a busy gateway (the soak, BENCHMARKS.md). Concurrent batches never
//! share a group: a handed-out head stays invisible until it is settled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tracing::{error, warn};

use super::{Notifier, Outcome, Tally};
use crate::queue::{OutboxMessage, PullQueue, Settlement};

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub poll_interval: Duration,
    /// Messages per receive, at most one per entity, all delivered concurrently. Each batch
    /// costs three store round trips (receive, delivery lookup, settle) whatever its size,
    /// so a larger batch is what lets the worker keep up with a busy gateway; the outcomes
    /// are written one per delivery, as each ends (group commit joins them).
    pub batch: usize,
    /// Batches handed out and not yet settled, at most: the worker's throughput is about
    /// `batch * batches_in_flight` divided by the slowest delivery of a batch.
    pub batches_in_flight: usize,
    /// Deliveries sent and not yet recorded, at most, across the batches: what a crash
    /// sends again (see [`Notifier::deliver_batch`]).
    pub deliveries_in_flight: usize,
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
            batches_in_flight: 32,
            deliveries_in_flight: 128,
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
    let batch = receive(outbox, settings).await;
    let handled = batch.len();
    let cap = Semaphore::new(settings.deliveries_in_flight.max(1));
    deliver_and_settle(outbox, notifier, settings, &cap, batch).await;
    handled
}

/// The next batch of group heads (empty when none is visible or the outbox failed).
async fn receive(outbox: &dyn PullQueue, settings: &WorkerSettings) -> Vec<OutboxMessage> {
    match outbox
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
            Vec::new()
        }
    }
}

/// Delivers one received batch and settles it: acks, retries with backoff, dead letters.
async fn deliver_and_settle(
    outbox: &dyn PullQueue,
    notifier: &Notifier,
    settings: &WorkerSettings,
    cap: &Semaphore,
    batch: Vec<OutboxMessage>,
) {
    if batch.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    // One message per group per batch, so the groups can be delivered concurrently.
    let items: Vec<(&str, u32)> = batch
        .iter()
        .map(|m| (m.body.as_str(), m.receive_count))
        .collect();
    let outcomes = notifier.deliver_batch(&items, Some(cap)).await;
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

/// Runs until `shutdown` turns true, then lets the batches in flight settle. The visibility
/// timeout is raised to cover the notifier's request timeout, so a slow attempt is never
/// handed out twice. A new batch is taken whenever fewer than `batches_in_flight` are out;
/// an empty receive waits for the poll interval or for a batch to settle.
pub async fn run(
    outbox: Arc<dyn PullQueue>,
    notifier: Arc<Notifier>,
    mut settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some(timeout) = notifier.target().timeout() {
        settings.visibility = settings.visibility.max(timeout * 2);
    }
    let settings = Arc::new(settings);
    let cap = Arc::new(Semaphore::new(settings.deliveries_in_flight.max(1)));
    let mut in_flight = tokio::task::JoinSet::new();
    while !*shutdown.borrow() {
        // A settled batch leaves the set here, so `len` counts only batches still out.
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() < settings.batches_in_flight.max(1) {
            let batch = receive(outbox.as_ref(), &settings).await;
            if !batch.is_empty() {
                let (outbox, notifier, settings, cap) = (
                    outbox.clone(),
                    notifier.clone(),
                    settings.clone(),
                    cap.clone(),
                );
                in_flight.spawn(async move {
                    deliver_and_settle(outbox.as_ref(), &notifier, &settings, &cap, batch).await
                });
                continue;
            }
        }
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}
