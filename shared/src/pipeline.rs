//! Ingest: verify (the environment's keys, then the credential table) → normalise → hold
//! the event's tenant against the tenants the credential admits (403 otherwise, nothing
//! stored) → persist (atomic dedupe) → publish transitions. The same code serves every
//! source in Lambda and in the local gateway.
//!
//! Outbox semantics: transitions are recorded in the store (one atomic write) before they are
//! sent. If the send fails the request answers 5xx; the provider's retry is a duplicate, and
//! a duplicate republishes every queued transition the notifier has not yet marked
//! `published`, so nothing is lost. Nothing is doubled either: the queue deduplicates by
//! transition id, and the notifier skips a transition whose delivery is already recorded.
//! The ingest path itself never writes the `published` flag, so an accepted event costs
//! exactly one store write. The embedded store is its own queue (it writes the outbox rows in
//! the event's transaction), so its queue adapter is the null `AlreadyQueued`.

use std::sync::Arc;
use std::time::Instant;

use time::Duration;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::PipelineSettings;
use crate::credentials::Admitter;
use crate::error::IngestError;
use crate::http::{respond, RawRequest, RawResponse, KEPT_HEADERS};
use crate::metrics::{names, MetricLine, MetricsSink};
use crate::model::{Accepted, EventStatus};
use crate::queue::TransitionQueue;
use crate::sources::Provider;
use crate::store::{IncomingEvent, Store};

/// The ingest pipeline over a store, a queue and the credential table.
pub struct Pipeline {
    store: Arc<dyn Store>,
    queue: Arc<dyn TransitionQueue>,
    admitter: Admitter,
    clock: Arc<dyn Clock>,
    settings: PipelineSettings,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn TransitionQueue>,
        clock: Arc<dyn Clock>,
        settings: PipelineSettings,
    ) -> Self {
        Pipeline {
            store,
            queue,
            admitter: Admitter::environment_only(clock.clone()),
            clock,
            settings,
        }
    }

    /// Also admits credentials of a credential table (tenant-bound keys).
    pub fn with_credentials(mut self, admitter: Admitter) -> Self {
        self.admitter = admitter;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn ingest(
        &self,
        provider: &dyn Provider,
        req: &RawRequest,
    ) -> Result<Accepted, IngestError> {
        if !req.method.eq_ignore_ascii_case("POST") {
            return Err(IngestError::MethodNotAllowed(req.method.clone()));
        }
        if req.body.len() > self.settings.max_body_bytes {
            return Err(IngestError::TooLarge {
                size: req.body.len(),
                limit: self.settings.max_body_bytes,
            });
        }
        let admission = self.admitter.admit(provider, req).await?;
        let now = self.clock.now();
        let event = provider.normalise_for(req, now, admission.single_tenant())?;
        admission.check(&event.tenant)?;
        let incoming = IncomingEvent {
            raw_body: req.body.clone(),
            headers: kept_headers(req),
            received_at: now,
            expires_at: (now + Duration::days(self.settings.retention_days as i64))
                .unix_timestamp(),
            event: Arc::new(event),
        };
        let outcome = self.store.persist(&incoming).await?;
        for pending in &outcome.to_publish {
            self.queue.publish(&pending.message).await?;
        }
        let published = outcome.to_publish.len();
        let event = &incoming.event;
        Ok(Accepted {
            event_key: event.key().to_string(),
            event_type: event.event_type.clone(),
            provider_event: event.provider_event.clone(),
            tenant: event.tenant.to_string(),
            duplicate: outcome.duplicate,
            status: outcome.status,
            published,
        })
    }
}

fn kept_headers(req: &RawRequest) -> Vec<(String, String)> {
    req.headers
        .iter()
        .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// One source's request handler: pipeline + provider + response shape + log line + metrics.
pub struct Handler {
    pipeline: Arc<Pipeline>,
    provider: Arc<dyn Provider>,
    metrics: MetricsSink,
}

impl Handler {
    pub fn new(pipeline: Arc<Pipeline>, provider: Arc<dyn Provider>, metrics: MetricsSink) -> Self {
        Handler {
            pipeline,
            provider,
            metrics,
        }
    }

    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    pub async fn handle(&self, req: &RawRequest) -> RawResponse {
        let started = Instant::now();
        let outcome = self.pipeline.ingest(self.provider.as_ref(), req).await;
        self.answer(&outcome, req.request_id.as_deref(), started)
    }

    /// Answers a request the transport could not decode (a Lambda event whose body is
    /// flagged base64 but is not): logged and counted like any other refusal.
    pub fn refuse(&self, err: IngestError, request_id: Option<&str>) -> RawResponse {
        self.answer(&Err(err), request_id, Instant::now())
    }

    /// The provider-shaped response for `outcome`, with its log line and metrics.
    fn answer(
        &self,
        outcome: &Result<Accepted, IngestError>,
        request_id: Option<&str>,
        started: Instant,
    ) -> RawResponse {
        let response = respond(self.provider.response_style(), outcome);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
        let source = self.provider.source().as_str();
        let line = MetricLine::new(source)
            .count(names::RECEIVED, 1)
            .millis(names::LATENCY, elapsed_ms);
        let log = LogContext {
            source,
            request_id: request_id.unwrap_or("-"),
            status: response.status,
            elapsed_ms,
        };
        let line = match outcome {
            Ok(accepted) => log.accepted(accepted, line),
            Err(err) => log.rejected(err, line),
        };
        line.emit(self.metrics);
        response
    }
}

/// What every request's log line carries.
struct LogContext<'a> {
    source: &'a str,
    request_id: &'a str,
    status: u16,
    elapsed_ms: f64,
}

impl LogContext<'_> {
    fn accepted(&self, a: &Accepted, line: MetricLine) -> MetricLine {
        info!(
            source = self.source,
            request_id = self.request_id,
            event_type = %a.event_type,
            event_key = %a.event_key,
            tenant = %a.tenant,
            outcome = if a.duplicate { "duplicate" } else { a.status.as_str() },
            transitions_published = a.published,
            status = self.status,
            duration_ms = self.elapsed_ms,
            "webhook accepted"
        );
        let new = !a.duplicate;
        line.count(names::ACCEPTED, 1)
            .count(names::DUPLICATES, a.duplicate as u64)
            .count(names::STALE, (new && a.status == EventStatus::Stale) as u64)
            .count(
                names::FLAGGED,
                (new && a.status == EventStatus::Flagged) as u64,
            )
            .count(names::TRANSITIONS_PUBLISHED, a.published as u64)
    }

    fn rejected(&self, err: &IngestError, line: MetricLine) -> MetricLine {
        warn!(
            source = self.source,
            request_id = self.request_id,
            outcome = "rejected",
            reason = err.reason(),
            error = %err,
            status = self.status,
            duration_ms = self.elapsed_ms,
            "webhook rejected"
        );
        line.count(names::REJECTED, 1)
            .count(
                names::VERIFICATION_FAILED,
                err.is_verification_failure() as u64,
            )
            .count(names::TRANSIENT_FAILURES, (err.status() >= 500) as u64)
            .reason(err.reason())
    }
}
