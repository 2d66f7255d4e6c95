//! One event: why it has its status, what it touched, and what became of its transitions,
//! with a replay button on each (the CLI's `replay --id`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;
use webhook_core::model::{EntityKey, EventKey};
use webhook_core::store::{EventStatus, StoredTransition};

use crate::actions::{notice, replay_form};
use crate::error::ConsoleError;
use crate::layout::{self, badge};
use crate::Console;

#[derive(Deserialize)]
pub struct EventQuery {
    key: Option<String>,
    replayed: Option<String>,
}

/// Why an event has its status (ARCHITECTURE §5).
pub fn reason(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Applied => "every entity it names was written",
        EventStatus::Stale => {
            "a newer version of an entity was stored already: the entity was not written, \
             a declared change was still recorded (late)"
        }
        EventStatus::Flagged => {
            "a change the lifecycle forbids, or one leaving a terminal state: recorded and \
             flagged, not applied, not notified"
        }
        EventStatus::Ignored => {
            "kept, not projected: an event type this provider's code does not project, an \
             object without a usable id, or data that is not an object"
        }
        EventStatus::Unrecognised => {
            "kept, not understood: a verified object of none of its provider's documented \
             forms; `webhooks reprocess --status unrecognised` projects it once a release \
             understands it"
        }
    }
}

/// The raw body, pretty-printed when it is JSON, else as text.
fn pretty(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

pub async fn page(
    State(c): State<Console>,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let Query(q) = query?;
    let key = q
        .key
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ConsoleError::BadInput("the event page needs ?key=source#id".into()))?;
    if EventKey::parse(key).is_none() {
        return Err(ConsoleError::BadInput(format!(
            "{:?} is not an event key (source#id, e.g. invoice#in_123)",
            key.chars().take(200).collect::<String>()
        )));
    }
    let report = c.op.event(key).await?;
    let e = &report.event;
    let back = layout::event_url(&e.event_key);
    Ok(layout::page(
        e.event_key.as_str(),
        html! {
            h1 { "Event " code { (e.event_key) } }
            (notice(q.replayed.as_deref()))
            dl.facts {
                dt { "Status" } dd { (badge(e.status.as_str())) " " span.reason { (reason(e.status)) } }
                dt { "Source" } dd { (e.source) }
                dt { "Tenant" } dd { (e.tenant) }
                dt { "Type" } dd { (e.event_type) }
                dt { "Received" } dd { (layout::time(e.received_at)) }
                dt { "Expires" } dd { (layout::time(e.expires_at)) }
                @if let Some(other) = &e.conflict_with {
                    dt { "Conflict" }
                    dd { "its delivery id is stored under " code { (other) } " with another body; both are kept (ARCHITECTURE §4)" }
                }
            }
            h2 { "Entities" }
            @if report.entities.is_empty() { p.muted { "None: the event was kept, not projected." } }
            @else {
                table.entities {
                    thead { tr { th { "Entity" } th { "State" } th { "Version" } } }
                    tbody {
                        @for (key, stored) in &report.entities {
                            tr {
                                td { a href=(layout::entity_url(key)) { code { (key.stream()) } } }
                                td { (stored.as_ref().and_then(|s| s.state.as_deref()).unwrap_or("—")) }
                                td { (stored.as_ref().map(|s| layout::version_time(s.version)).unwrap_or_else(|| "not stored".into())) }
                            }
                        }
                    }
                }
            }
            h2 { "Transitions" }
            @if report.transitions.is_empty() { p.muted { "None recorded by this event." } }
            @else { (transitions(&c, &report.transitions, &back)) }
            h2 { "Kept headers" }
            table.headers {
                tbody { @for (k, v) in &e.headers { tr { th { (k) } td { code { (v) } } } } }
            }
            h2 { "Raw body" }
            pre.body { (pretty(&e.raw_body)) }
        },
    ))
}

fn transitions(c: &Console, rows: &[(EntityKey, StoredTransition)], back: &str) -> Markup {
    html! {
        table.transitions {
            thead { tr { th { "Transition" } th { "Entity" } th { "Change" } th { "Delivery" } th { "" } } }
            tbody {
                @for (stream, t) in rows {
                    tr data-transition=(t.transition_id) {
                        td { code { (t.transition_id) } }
                        td {
                            a href=(layout::entity_url(stream)) { code { (stream) } }
                        }
                        td { (t.from.as_deref().unwrap_or("∅")) " → " (t.to)
                            @if let Some(flag) = &t.flag { " " (badge(flag)) } }
                        td.delivery { (delivery(t)) }
                        td { @if t.queued { (replay_form(&c.access, &t.transition_id, back)) } }
                    }
                }
            }
        }
    }
}

/// A transition's delivery outcome as recorded by the notifier.
pub fn delivery(t: &StoredTransition) -> Markup {
    html! {
        @match &t.notification {
            Some(r) => {
                (badge(r.outcome.as_str()))
                @if let Some(status) = r.status { " HTTP " (status) }
                " · attempt " (r.attempt) " · " (r.at)
            }
            None if t.queued => { (badge("pending")) }
            None => { (badge("not_queued")) }
        }
    }
}
