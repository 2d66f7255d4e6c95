//! Reprocess: stored raw bodies through today's provider code. Verification is skipped (each
//! was verified on arrival); the result is applied by the store's usual rules, so a run is
//! idempotent and safe to interrupt and repeat. Events are taken in arrival order, a page at
//! a time, and applied concurrently but submitted in order (the embedded writer runs them in
//! that order, so an entity's inferred transitions follow its history).

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use time::OffsetDateTime;

use super::{Operator, OpsError};
use crate::config::{Env, Mode, PipelineSettings};
use crate::http::{route_for, RawRequest};
use crate::model::{EntityKey, EventStatus, Source, Tenant};
use crate::sources::{provider_from_env, Provider};
use crate::store::{
    decide, reapplied_status, Detail, EventFilter, IncomingEvent, Listed, Order, Snapshot,
    StoredEvent,
};
use crate::version::Version;

/// Events per page read; applied `IN_FLIGHT` at a time.
const PAGE: usize = 500;
/// As many as the SQLite writer takes into one transaction (`writer::MAX_BATCH`): a fuller
/// batch shares its pages and its commit among more events (64 in flight was 15 % slower
/// for the upgrade case, BENCHMARKS.md). Memory stays bounded by a page plus this many.
const IN_FLIGHT: usize = 256;

/// Counts after a run (or so far, for progress).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReprocessSummary {
    pub scanned: u64,
    /// Stored as ignored, now projected onto entities.
    pub newly_projected: u64,
    /// Another status, other entities, or new transitions.
    pub changed: u64,
    pub unchanged: u64,
    /// Each failure by event key and reason; one never stops the run.
    pub failed: Vec<(String, String)>,
    /// New transitions queued.
    pub queued: u64,
}

/// Progress: the summary so far.
pub type Progress<'a> = &'a mut (dyn FnMut(&ReprocessSummary) + Send);

/// One event's verdict and how many transitions it queued, or why it failed.
type Outcome = Result<(Verdict, u64), String>;

enum Verdict {
    NewlyProjected,
    Changed,
    Unchanged,
}

/// Re-runs the events `filter` selects; `dry_run` reports what would change and writes
/// nothing. `env` configures the providers (credentials are not needed: nothing is verified).
///
/// Pages are read ahead: the next page's read is queued while the last `IN_FLIGHT` events
/// of the current one are still being applied, so the store never idles at a page boundary
/// (draining the pipeline per page cost a fifth of the run on SQLite).
pub async fn reprocess(
    op: &Operator,
    env: &Env,
    filter: &EventFilter,
    dry_run: bool,
    progress: Progress<'_>,
) -> Result<ReprocessSummary, OpsError> {
    let providers = providers(env);
    // The entity expiry a re-applied event writes, as ingest would have on its arrival.
    let entity_days = PipelineSettings::entity_retention_days(env)
        .map_err(|e| OpsError::Refused(e.to_string()))?;
    let mut summary = ReprocessSummary::default();
    let mut outcomes = std::pin::pin!(events(op, filter)
        .map(|page| {
            let providers = &providers;
            async move {
                let stored = page?;
                let outcome = one(op, providers, entity_days, &stored, dry_run).await;
                Ok::<_, OpsError>((stored.event_key.to_string(), outcome))
            }
        })
        .buffered(IN_FLIGHT));
    while let Some(next) = outcomes.next().await {
        let (key, result) = next?;
        tally(&mut summary, key, result);
        if summary.scanned % PAGE as u64 == 0 {
            progress(&summary);
        }
    }
    progress(&summary);
    Ok(summary)
}

/// The selected events in arrival order, one at a time, read a page per store round trip;
/// a failed read ends the stream with its error.
fn events<'a>(
    op: &'a Operator,
    filter: &'a EventFilter,
) -> impl futures::Stream<Item = Result<StoredEvent, OpsError>> + 'a {
    // `None` once the last page has been read.
    let start: Option<Option<String>> = Some(None);
    stream::unfold(start, move |cursor| async move {
        let cursor = cursor?;
        let page = op
            .store
            .list_events(
                filter,
                Order::OldestFirst,
                PAGE,
                cursor.as_deref(),
                Detail::Whole,
            )
            .await
            .and_then(Listed::into_whole);
        Some(match page {
            Ok(page) => {
                let items: Vec<_> = page.events.into_iter().map(Ok).collect();
                (stream::iter(items), page.next.map(Some))
            }
            Err(e) => (stream::iter(vec![Err(e.into())]), None),
        })
    })
    .flatten()
}

fn tally(summary: &mut ReprocessSummary, key: String, result: Outcome) {
    summary.scanned += 1;
    match result {
        Ok((verdict, queued)) => {
            summary.queued += queued;
            *match verdict {
                Verdict::NewlyProjected => &mut summary.newly_projected,
                Verdict::Changed => &mut summary.changed,
                Verdict::Unchanged => &mut summary.unchanged,
            } += 1;
        }
        Err(reason) => summary.failed.push((key, reason)),
    }
}

/// Every source's provider as reprocess runs it; a source whose settings are malformed
/// fails its events (named), not the run.
pub fn providers(env: &Env) -> HashMap<Source, Result<Arc<dyn Provider>, String>> {
    // Local mode: a provider without configured credentials still builds (it is never
    // asked to verify here).
    Source::ALL
        .into_iter()
        .map(|s| {
            (
                s,
                provider_from_env(s, env, Mode::Local).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// One event: re-normalised, then re-applied (or, dry, decided against what is stored).
async fn one(
    op: &Operator,
    providers: &HashMap<Source, Result<Arc<dyn Provider>, String>>,
    entity_days: u64,
    stored: &StoredEvent,
    dry_run: bool,
) -> Outcome {
    let event_key = stored.event_key.clone();
    let source = event_key.source().ok_or("the key names no source")?;
    let provider = providers[&source].as_ref().map_err(Clone::clone)?;
    let received =
        OffsetDateTime::from_unix_timestamp(stored.received_at).map_err(|e| e.to_string())?;
    let request = request_of(stored, source);
    // The tenant it was stored under stands in for the credential's bound one, so a body
    // naming no tenant is re-projected where ingest put it.
    let tenant = Tenant::new(stored.tenant.as_str());
    let mut event = provider
        .normalise_for(&request, received, Some(&tenant))
        .map_err(|e| format!("today's {source} code refuses it: {e}"))?;
    // The stored key is what the event is, and its transition ids derive from it: one stored
    // under an earlier release's id (a fulfilment delivery id, a body hash before Pancake's
    // `request_id` was read) or as a conflict is re-applied under that key, never renamed
    // (ARCHITECTURE §4).
    event.event_id = event_key.event_id().to_string();
    // The tenant decides whose entities an event moves (and, with bound credentials, who
    // was allowed to send it): reprocess never moves an event to another tenant.
    if event.tenant.as_str() != stored.tenant {
        return Err(format!(
            "today's code derives tenant `{}` where `{}` is stored: refused, reprocess never \
             moves an event to another tenant",
            event.tenant.as_str(),
            stored.tenant
        ));
    }
    let incoming = IncomingEvent {
        event: Arc::new(event),
        raw_body: stored.raw_body.clone(),
        headers: stored.headers.clone(),
        received_at: received,
        expires_at: stored.expires_at,
        conflict_with: stored.conflict_with.clone(),
        entity_expires_at: crate::config::expiry(received, entity_days),
    };
    if dry_run {
        return dry(op, stored, &incoming).await.map(|v| (v, 0));
    }
    let applied = op
        .store
        .reapply(&incoming)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("expired meanwhile")?;
    let mut queued = 0;
    for t in applied.new_transitions.iter().filter(|t| t.queued) {
        op.queue
            .publish(&t.message)
            .await
            .map_err(|e| e.to_string())?;
        queued += 1;
    }
    let verdict = if applied.was.is_unprojected() && !applied.status.is_unprojected() {
        Verdict::NewlyProjected
    } else if applied.was != applied.status
        || applied.entities_were != applied.entities
        || !applied.new_transitions.is_empty()
    {
        Verdict::Changed
    } else {
        Verdict::Unchanged
    };
    Ok((verdict, queued))
}

/// The request as the provider's code sees it: the kept headers and the exact body.
fn request_of(stored: &StoredEvent, source: Source) -> RawRequest {
    RawRequest {
        method: "POST".into(),
        path: route_for(source).into(),
        query: Vec::new(),
        headers: stored.headers.clone(),
        body: stored.raw_body.clone(),
        request_id: None,
    }
}

/// What re-applying would do, decided against the stored entities without writing.
async fn dry(
    op: &Operator,
    stored: &StoredEvent,
    incoming: &IncomingEvent,
) -> Result<Verdict, String> {
    let event = &incoming.event;
    let mut decisions = Vec::new();
    for update in &event.entities {
        let current = op
            .store
            .entity(&update.key)
            .await
            .map_err(|e| e.to_string())?;
        let snapshot = current.map(|c| Snapshot {
            version: Version::from_micros(c.version),
            state: c.state,
        });
        decisions.push(decide(
            &event.key(),
            &event.event_id,
            update,
            snapshot.as_ref(),
            Version::from_datetime(incoming.received_at),
        ));
    }
    let entities: Vec<EntityKey> = event.entities.iter().map(|u| u.key.clone()).collect();
    let status = reapplied_status(
        stored.status,
        EventStatus::summarise(event.recognition, &decisions),
        &stored.entity_keys,
        &entities,
    );
    Ok(
        if stored.status.is_unprojected() && !status.is_unprojected() {
            Verdict::NewlyProjected
        } else if stored.status != status || stored.entity_keys != entities {
            Verdict::Changed
        } else {
            Verdict::Unchanged
        },
    )
}
