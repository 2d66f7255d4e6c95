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
//!
//! Admission ([`admit`]) is the pipeline's first step: the provider's guard, then the
//! credential table for what the guard found wrong.

pub mod admit;

pub use admit::Admitter;

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::PipelineSettings;
use crate::error::IngestError;
use crate::http::{respond, RawRequest, RawResponse, KEPT_HEADERS};
use crate::metrics::{names, MetricLine, MetricsSink};
use crate::model::{Accepted, EventKey, EventStatus, Identity, Tenant};
use crate::queue::TransitionQueue;
use crate::refusals::{NoRecord, Refusal, RefusalSink};
use crate::sources::Provider;
use crate::store::{Consistency, IdentityEpoch, IncomingEvent, IngestStore, PersistOutcome};

/// The ingest pipeline over a store, a queue and the credential table.
pub struct Pipeline {
    store: Arc<dyn IngestStore>,
    queue: Arc<dyn TransitionQueue>,
    admitter: Admitter,
    clock: Arc<dyn Clock>,
    settings: PipelineSettings,
    /// The store's identity epoch, asked once before the first write; `None` when this
    /// pipeline does not ask, and earlier keys are always read (decision 63).
    epoch: Option<tokio::sync::OnceCell<IdentityEpoch>>,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn IngestStore>,
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
            epoch: None,
        }
    }

    /// Reads the key an earlier release gave a delivery only while the store may hold one
    /// ([`IngestStore::identity_epoch`], asked before this pipeline's first write): a store that
    /// was empty when today's identity first served it never pays for the read.
    pub fn asking_identity_epoch(mut self) -> Self {
        self.epoch = Some(tokio::sync::OnceCell::new());
        self
    }

    /// The store's identity epoch, asked now rather than at the first request (once per
    /// pipeline); `Unknown` when this pipeline does not ask.
    pub async fn identity_epoch(&self) -> Result<IdentityEpoch, IngestError> {
        self.epoch(self.clock.now()).await
    }

    async fn epoch(&self, now: time::OffsetDateTime) -> Result<IdentityEpoch, IngestError> {
        let Some(cell) = &self.epoch else {
            return Ok(IdentityEpoch::Unknown);
        };
        let ask = || async {
            let epoch = self.store.identity_epoch(now).await?;
            info!(?epoch, "identity epoch of the store");
            Ok::<_, IngestError>(epoch)
        };
        Ok(*cell.get_or_try_init(ask).await?)
    }

    /// Also admits credentials of a credential table (tenant-bound keys).
    pub fn with_credentials(mut self, admitter: Admitter) -> Self {
        self.admitter = admitter;
        self
    }

    pub fn store(&self) -> &Arc<dyn IngestStore> {
        &self.store
    }

    pub async fn ingest(
        &self,
        provider: &dyn Provider,
        req: &RawRequest,
    ) -> Result<Accepted, IngestError> {
        self.attempt(provider, req).await.map_err(|r| r.error)
    }

    /// [`Pipeline::ingest`], telling on a refusal which tenant the verified event named, if
    /// it got that far (for the refusal record, ARCHITECTURE §8).
    pub async fn attempt(
        &self,
        provider: &dyn Provider,
        req: &RawRequest,
    ) -> Result<Accepted, Refused> {
        if !req.method.eq_ignore_ascii_case("POST") {
            return Err(IngestError::MethodNotAllowed(req.method.clone()).into());
        }
        if req.body.len() > self.settings.max_body_bytes {
            return Err(IngestError::TooLarge {
                size: req.body.len(),
                limit: self.settings.max_body_bytes,
            }
            .into());
        }
        let admission = self.admitter.admit(provider, req).await?;
        let now = self.clock.now();
        let event = provider.normalise_for(req, now, admission.single_tenant())?;
        let read = |error: IngestError| Refused {
            error,
            tenant: Some(event.tenant.clone()),
        };
        admission.check(&event.tenant).map_err(read)?;
        let incoming = IncomingEvent {
            raw_body: req.body.clone(),
            headers: kept_headers(req),
            received_at: now,
            expires_at: self.settings.event_expiry(now),
            entity_expires_at: self.settings.entity_expiry(now),
            event: Arc::new(event),
            conflict_with: None,
        };
        let tenant = incoming.event.tenant.clone();
        let read = |error: IngestError| Refused {
            error,
            tenant: Some(tenant.clone()),
        };
        // Asked for every source, so the first write of any of them finds a fresh store.
        let epoch = self.epoch(now).await.map_err(read)?;
        let earlier = match epoch.may_hold_earlier_keys(now, self.settings.retention_days) {
            true => provider.earlier_event_id(req),
            false => None,
        };
        let (incoming, outcome) = self
            .persist_identified(incoming, earlier)
            .await
            .map_err(read)?;
        for pending in &outcome.to_publish {
            self.queue
                .publish(&pending.message)
                .await
                .map_err(|e| read(e.into()))?;
        }
        let published = outcome.to_publish.len();
        let event = &incoming.event;
        Ok(Accepted {
            event_key: event.key(),
            event_type: event.event_type.clone(),
            provider_event: event.provider_event.clone(),
            tenant: event.tenant.clone(),
            duplicate: outcome.duplicate,
            status: outcome.status,
            published,
            conflict_with: incoming.conflict_with.clone(),
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
            match self
                .store
                .stored_body(&earlier, Consistency::Eventual)
                .await?
            {
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
        let read = match consistent {
            true => Consistency::Strong,
            false => Consistency::Eventual,
        };
        let stored = self.store.stored_body(key, read).await?;
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

/// Why a request was refused, and the tenant its verified event named when the refusal
/// came after normalising (a tenant the credential does not admit, a store or queue
/// failure); `None` before, so an unverified body's claims are never reported.
#[derive(Debug)]
pub struct Refused {
    pub error: IngestError,
    pub tenant: Option<Tenant>,
}

impl From<IngestError> for Refused {
    fn from(error: IngestError) -> Self {
        Refused {
            error,
            tenant: None,
        }
    }
}

fn kept_headers(req: &RawRequest) -> Vec<(String, String)> {
    req.headers
        .iter()
        .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// One source's request handler: pipeline + provider + response shape + log line + metrics,
/// and each refusal reported to a [`RefusalSink`].
pub struct Handler {
    pipeline: Arc<Pipeline>,
    provider: Arc<dyn Provider>,
    metrics: MetricsSink,
    refusals: Arc<dyn RefusalSink>,
}

/// What the answer to one request needs to know of it besides the outcome.
struct Seen<'a> {
    request_id: Option<&'a str>,
    /// Body bytes received.
    size: usize,
    started: Instant,
}

impl Handler {
    /// A handler reporting refusals nowhere but its log line (see [`Handler::reporting_to`]).
    pub fn new(pipeline: Arc<Pipeline>, provider: Arc<dyn Provider>, metrics: MetricsSink) -> Self {
        Handler {
            pipeline,
            provider,
            metrics,
            refusals: Arc::new(NoRecord),
        }
    }

    /// Also reports every refusal to `refusals` (`webhooks-local`'s recent refusals).
    pub(crate) fn reporting_to(mut self, refusals: Arc<dyn RefusalSink>) -> Self {
        self.refusals = refusals;
        self
    }

    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    pub async fn handle(&self, req: &RawRequest) -> RawResponse {
        let seen = Seen {
            request_id: req.request_id.as_deref(),
            size: req.body.len(),
            started: Instant::now(),
        };
        let outcome = self.pipeline.attempt(self.provider.as_ref(), req).await;
        self.answer(outcome, seen)
    }

    /// Answers a request the transport refused before the pipeline saw it (a Lambda event
    /// whose body is flagged base64 but is not; a local body over the limit): logged,
    /// counted and reported like any other refusal. `size` is the bytes received.
    pub fn refuse(&self, err: IngestError, request_id: Option<&str>, size: usize) -> RawResponse {
        let seen = Seen {
            request_id,
            size,
            started: Instant::now(),
        };
        self.answer(Err(err.into()), seen)
    }

    /// The provider-shaped response for `outcome`, with its log line and metrics.
    fn answer(&self, outcome: Result<Accepted, Refused>, seen: Seen<'_>) -> RawResponse {
        let (result, tenant) = match outcome {
            Ok(accepted) => (Ok(accepted), None),
            Err(r) => (Err(r.error), r.tenant),
        };
        let response = respond(self.provider.response_style(), &result);
        let elapsed_ms = seen.started.elapsed().as_secs_f64() * 1_000.0;
        let source = self.provider.source();
        let line = MetricLine::new(source.as_str())
            .count(names::RECEIVED, 1)
            .millis(names::LATENCY, elapsed_ms);
        let log = LogContext {
            source: source.as_str(),
            request_id: seen.request_id.unwrap_or("-"),
            status: response.status,
            elapsed_ms,
        };
        let line = match &result {
            Ok(accepted) => log.accepted(accepted, line),
            Err(err) => {
                let line = log.rejected(err, seen.size, tenant.as_ref(), line);
                self.refusals.refused(Refusal {
                    at: self.pipeline.clock.now().unix_timestamp(),
                    source,
                    status: response.status,
                    reason: err.reason(),
                    code: err.code(),
                    size: seen.size,
                    tenant,
                    request_id: log.request_id.to_string(),
                });
                line
            }
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
            conflict_with = a.conflict_with.as_ref().map(EventKey::as_str),
            transitions_published = a.published,
            status = self.status,
            duration_ms = self.elapsed_ms,
            "webhook accepted"
        );
        if let (false, Some(other)) = (a.duplicate, &a.conflict_with) {
            warn!(
                source = self.source,
                request_id = self.request_id,
                event_key = %a.event_key,
                conflict_with = %other,
                "webhook kept as a conflict: its delivery id is stored with another body"
            );
        }
        accepted_counts(a, line)
    }

    /// The refusal's log line: the structured record a Logs Insights query lists on AWS
    /// (`source`, `status`, `reason`, `code`, `size`, `tenant` when read), never a header
    /// or a body.
    fn rejected(
        &self,
        err: &IngestError,
        size: usize,
        tenant: Option<&Tenant>,
        line: MetricLine,
    ) -> MetricLine {
        warn!(
            source = self.source,
            request_id = self.request_id,
            outcome = "rejected",
            reason = err.reason(),
            code = err.code(),
            error = %err,
            status = self.status,
            size,
            tenant = tenant.map(Tenant::as_str),
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

/// The counters of an accepted request; stale, flagged and unrecognised only for a new event
/// (a duplicate was counted when it first came).
fn accepted_counts(a: &Accepted, line: MetricLine) -> MetricLine {
    let new = |status: EventStatus| (!a.duplicate && a.status == status) as u64;
    line.count(names::ACCEPTED, 1)
        .count(names::DUPLICATES, a.duplicate as u64)
        .count(names::STALE, new(EventStatus::Stale))
        .count(names::FLAGGED, new(EventStatus::Flagged))
        .count(names::UNRECOGNISED, new(EventStatus::Unrecognised))
        .count(names::TRANSITIONS_PUBLISHED, a.published as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(status: EventStatus, duplicate: bool) -> Accepted {
        Accepted {
            event_key: "abaha#k".into(),
            event_type: "unknown".into(),
            provider_event: "unknown".into(),
            tenant: "s1".into(),
            duplicate,
            status,
            published: 0,
            conflict_with: None,
        }
    }

    #[test]
    fn an_unrecognised_event_is_counted_once_per_source() {
        let counted = |status, duplicate| {
            accepted_counts(&accepted(status, duplicate), MetricLine::new("abaha")).to_json(1)
                [names::UNRECOGNISED]
                .clone()
        };
        assert_eq!(counted(EventStatus::Unrecognised, false), 1.0);
        assert!(
            counted(EventStatus::Unrecognised, true).is_null(),
            "a duplicate"
        );
        assert!(
            counted(EventStatus::Ignored, false).is_null(),
            "ignored is known"
        );
    }
}
