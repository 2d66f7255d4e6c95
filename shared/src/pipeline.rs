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
use crate::model::{Accepted, EventKey, EventStatus, Identity};
use crate::queue::TransitionQueue;
use crate::sources::Provider;
use crate::store::{IncomingEvent, PersistOutcome, Store};

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
        let event = provider.normalise(req, now)?;
        admission.check(&event.tenant)?;
        let incoming = IncomingEvent {
            raw_body: req.body.clone(),
            headers: kept_headers(req),
            received_at: now,
            expires_at: (now + Duration::days(self.settings.retention_days as i64))
                .unix_timestamp(),
            event: Arc::new(event),
            conflict_with: None,
        };
        let earlier = provider.earlier_event_id(req);
        let (incoming, outcome) = self.persist_identified(incoming, earlier).await?;
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
            conflict_with: incoming.conflict_with.as_ref().map(|k| k.to_string()),
        })
    }

    /// Persists `incoming` under the key its identity earns (ARCHITECTURE §4, "Event
    /// identity"). A key found stored is a duplicate only if it holds the same body: an
    /// earlier release's key for this delivery (`earlier`) with the same body is the event
    /// itself (persisted under it: a duplicate, its transitions and their ids unchanged);
    /// with another body, the delivery is a conflict, stored under today's key and flagged. A
    /// declared id (not made of the body) already holding another body stores the delivery
    /// under [`EventKey::conflicting`], flagged; checked before writing, and again after a
    /// duplicate outcome (a concurrent delivery of the other body).
    async fn persist_identified(
        &self,
        mut incoming: IncomingEvent,
        earlier: Option<String>,
    ) -> Result<(IncomingEvent, PersistOutcome), IngestError> {
        let source = incoming.event.source;
        let mut checked = false;
        let earlier = earlier
            .filter(|id| *id != incoming.event.event_id)
            .map(|id| EventKey::new(source, &id));
        if let Some(earlier) = earlier {
            match self.store.stored_body(&earlier).await? {
                Some(body) if body == incoming.raw_body => {
                    incoming = renamed(incoming, earlier.event_id());
                    checked = true;
                }
                Some(_) => incoming.conflict_with = Some(earlier),
                None => {}
            }
        }
        let declared = incoming.identity() == Identity::Declared;
        if declared && !checked {
            let key = incoming.key();
            if self.differs(&key, &incoming.raw_body, false).await? {
                incoming = conflicting(incoming, key);
            }
        }
        let outcome = self.store.persist(&incoming).await?;
        if outcome.duplicate && incoming.identity() == Identity::Declared {
            let key = incoming.key();
            if self.differs(&key, &incoming.raw_body, true).await? {
                incoming = conflicting(incoming, key);
                let outcome = self.store.persist(&incoming).await?;
                return Ok((incoming, outcome));
            }
        }
        Ok((incoming, outcome))
    }

    /// Whether `key` is stored with another body than `body` (read consistently when
    /// `consistent`: after the write's own dedupe said it is there).
    async fn differs(
        &self,
        key: &EventKey,
        body: &[u8],
        consistent: bool,
    ) -> Result<bool, IngestError> {
        let stored = if consistent {
            self.store.event(key).await?.map(|e| e.raw_body)
        } else {
            self.store.stored_body(key).await?
        };
        Ok(stored.is_some_and(|stored| stored != body))
    }
}

/// `incoming` under another event id (the rest of the event as normalised).
fn renamed(mut incoming: IncomingEvent, event_id: &str) -> IncomingEvent {
    let mut event = (*incoming.event).clone();
    event.event_id = event_id.to_string();
    incoming.event = Arc::new(event);
    incoming
}

/// `incoming` kept beside the event stored under its declared `key` with another body,
/// flagged with it.
fn conflicting(incoming: IncomingEvent, key: EventKey) -> IncomingEvent {
    let id = key.conflicting(&incoming.raw_body);
    let mut incoming = renamed(incoming, id.event_id());
    incoming.conflict_with = Some(key);
    incoming
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
            conflict_with = a.conflict_with.as_deref(),
            transitions_published = a.published,
            status = self.status,
            duration_ms = self.elapsed_ms,
            "webhook accepted"
        );
        let new = !a.duplicate;
        if let (true, Some(other)) = (new, &a.conflict_with) {
            warn!(
                source = self.source,
                request_id = self.request_id,
                event_key = %a.event_key,
                conflict_with = %other,
                "webhook kept as a conflict: its delivery id is stored with another body"
            );
        }
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
