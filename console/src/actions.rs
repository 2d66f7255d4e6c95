//! What the console changes: replay a transition and redrive dead letters, by the CLI's
//! code (`Operator::replay`, `Operator::redrive`). Each is a POST carrying the CSRF token,
//! confirmed in the browser first, and answered by a redirect back to the page it came from.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::Redirect;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;
use webhook_core::ops::ReplayOutcome;
use webhook_core::store::TransitionSelector;

use crate::access::{csrf_field, safe_next, Access};
use crate::error::ConsoleError;
use crate::layout::{self, badge};
use crate::{Console, PREFIX};

/// Dead letters listed at most (the CLI's default).
const MAX_DEAD_LETTERS: usize = 100;

#[derive(Deserialize)]
pub struct ReplayForm {
    id: String,
    csrf: String,
    force: Option<String>,
    back: Option<String>,
}

fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let pair: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish();
    format!("{url}{sep}{pair}")
}

pub async fn replay(
    State(c): State<Console>,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> Result<Redirect, ConsoleError> {
    let Form(f) = form?;
    c.access.check_csrf(&f.csrf)?;
    let id = f.id.trim();
    if id.is_empty() {
        return Err(ConsoleError::BadInput(
            "replay needs a transition id".into(),
        ));
    }
    let replay_id = OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
    let force = f.force.is_some();
    let done =
        c.op.replay(&TransitionSelector::Id(id.to_string()), force, &replay_id)
            .await?;
    let outcome = done
        .first()
        .map(|(_, o)| o.as_str())
        .unwrap_or(ReplayOutcome::NotQueued.as_str());
    tracing::info!(transition_id = id, force, outcome, "console replay");
    Ok(Redirect::to(&with_param(
        &safe_next(f.back.as_deref()),
        "replayed",
        outcome,
    )))
}

/// The confirmation line after a replay: only known outcomes, never text from the URL.
pub fn notice(replayed: Option<&str>) -> Markup {
    let message = match replayed {
        Some("requeued") => "Replay: the transition was queued again; its outcome below changes once the notifier has sent it.",
        Some("already_delivered") => "Replay: already delivered, nothing sent. Tick “also if delivered” to send it again under the same webhook-id.",
        Some("not_queued") => "Replay: never queued (flagged by the lifecycle), so there is nothing to send.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (message) } }
}

/// A replay button with its confirmation (and the force choice of `replay --force`).
pub fn replay_form(access: &Access, transition_id: &str, back: &str) -> Markup {
    html! {
        form.inline.replay method="post" action={ (PREFIX) "/replay" }
            data-confirm={ "Queue transition " (transition_id) " for notification again?" } {
            (csrf_field(access))
            input type="hidden" name="id" value=(transition_id);
            input type="hidden" name="back" value=(back);
            label.muted { input type="checkbox" name="force" value="1"; " also if delivered " }
            button type="submit" { "Replay" }
        }
    }
}

#[derive(Deserialize)]
pub struct RedriveForm {
    csrf: String,
    /// One dead letter's id; absent: all of them.
    id: Option<String>,
}

pub async fn redrive(
    State(c): State<Console>,
    form: Result<Form<RedriveForm>, FormRejection>,
) -> Result<Redirect, ConsoleError> {
    let Form(f) = form?;
    c.access.check_csrf(&f.csrf)?;
    let ids: Option<Vec<String>> =
        f.id.map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty())
            .map(|i| vec![i]);
    let moved = c.op.redrive(ids.as_deref()).await?;
    tracing::info!(moved, "console redrive");
    Ok(Redirect::to(&layout::url(
        "/dlq",
        &[("redriven", &moved.to_string())],
    )))
}

#[derive(Deserialize)]
pub struct DlqQuery {
    redriven: Option<String>,
}

pub async fn dead_letters(
    State(c): State<Console>,
    query: Result<Query<DlqQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let Query(q) = query?;
    let letters = c.op.dead_letters(MAX_DEAD_LETTERS).await?;
    let redriven = q.redriven.as_deref().and_then(|n| n.parse::<u64>().ok());
    Ok(layout::page(
        "Dead letters",
        html! {
            h1 { "Dead letters" }
            @if let Some(n) = redriven { p.notice role="status" { "Redrive: " (n) " moved back to the queue." } }
            @if letters.is_empty() { p.muted { "None: every notification was delivered or is still being retried." } }
            @else {
                form.inline method="post" action={ (PREFIX) "/redrive" }
                    data-confirm={ "Move all " (letters.len()) " dead letters back to the queue?" } {
                    (csrf_field(&c.access))
                    button type="submit" { "Redrive all" }
                }
                table.dead {
                    thead { tr { th { "Id" } th { "Transition" } th { "Entity" } th.num { "Receives" } th { "Last failure" } th { "" } } }
                    tbody {
                        @for d in &letters {
                            tr {
                                td { code { (d.letter.id) } }
                                td { code { (d.transition_id.as_deref().unwrap_or("(not a transition)")) } }
                                td { code { (d.letter.group) } }
                                td.num { (d.letter.receive_count) }
                                td {
                                    @if let Some(r) = &d.record { (badge(r.outcome.as_str())) @if let Some(s) = r.status { " HTTP " (s) } }
                                    @if let Some(e) = &d.letter.last_error { " " span.muted { (e) } }
                                }
                                td {
                                    form.inline method="post" action={ (PREFIX) "/redrive" }
                                        data-confirm={ "Move dead letter " (d.letter.id) " back to the queue?" } {
                                        (csrf_field(&c.access))
                                        input type="hidden" name="id" value=(d.letter.id);
                                        button type="submit" { "Redrive" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}
