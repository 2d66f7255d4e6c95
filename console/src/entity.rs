//! One entity: its current state and data, and its state history drawn as a timeline
//! (states left to right; flagged changes, which were not applied, and late ones, which
//! arrived after a newer state, are marked), then the history as a table with replays.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;
use webhook_core::model::{EntityKey, EntityKind, Tenant};
use webhook_core::ops::filter::parse_source;
use webhook_core::store::{StoredTransition, TransitionSelector};

use crate::actions::{notice, replay_form};
use crate::error::ConsoleError;
use crate::event::delivery;
use crate::layout::{self, badge};
use crate::Console;

#[derive(Deserialize)]
pub struct EntityQuery {
    source: Option<String>,
    tenant: Option<String>,
    kind: Option<String>,
    id: Option<String>,
    replayed: Option<String>,
}

impl EntityQuery {
    fn key(&self) -> Result<EntityKey, ConsoleError> {
        let need = |v: &Option<String>, name: &str| {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    ConsoleError::BadInput(format!(
                        "the entity page needs ?source=&tenant=&kind=&id= (missing {name})"
                    ))
                })
        };
        let source = parse_source(&need(&self.source, "source")?)
            .map_err(|e| ConsoleError::BadInput(e.to_string()))?;
        let kind = need(&self.kind, "kind")?;
        let kind = EntityKind::parse(&kind).ok_or_else(|| {
            ConsoleError::BadInput(format!(
                "{:?} is not an entity kind ({})",
                kind.chars().take(60).collect::<String>(),
                EntityKind::listed()
            ))
        })?;
        Ok(EntityKey::new(
            source,
            Tenant::new(need(&self.tenant, "tenant")?),
            kind,
            need(&self.id, "id")?,
        ))
    }
}

/// One step of the timeline as drawn.
struct Step<'a> {
    t: &'a StoredTransition,
    late: bool,
}

/// The version (µs) a transition's sort key starts with.
fn version_of(t: &StoredTransition) -> Option<i64> {
    t.sort.split('#').next()?.parse().ok()
}

pub async fn page(
    State(c): State<Console>,
    query: Result<Query<EntityQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let Query(q) = query?;
    let key = q.key()?;
    let (entity, history) = c.op.entity(&key).await?;
    // Lateness is a fact of the queued message, not of the history row.
    let late: HashMap<String, bool> =
        c.op.replayable(&TransitionSelector::Entity(key.clone()))
            .await?
            .into_iter()
            .filter_map(|r| Some((r.transition.transition_id, r.message?.late)))
            .collect();
    let steps: Vec<Step> = history
        .iter()
        .map(|t| Step {
            t,
            late: late.get(&t.transition_id).copied().unwrap_or(false),
        })
        .collect();
    let back = layout::entity_url(&key);
    Ok(layout::page(
        &key.stream(),
        html! {
            h1 { "Entity " code { (key.stream()) } }
            (notice(q.replayed.as_deref()))
            dl.facts {
                dt { "State" } dd { (entity.state.as_deref().unwrap_or("—")) }
                dt { "Version" } dd { (layout::version_time(entity.version)) }
                dt { "Last written by" } dd { a href=(layout::event_url(&entity.last_event_key)) { code { (entity.last_event_key) } } }
            }
            h2 { "State history" }
            @if steps.is_empty() { p.muted { "No state changes recorded." } }
            @else {
                div.timeline { (timeline(&steps)) }
                (history_table(&c, &steps, &back))
            }
            h2 { "Data" }
            pre.body { (serde_json::to_string_pretty(&entity.data).unwrap_or_default()) }
        },
    ))
}

const STEP: i64 = 190;
const NODE_W: i64 = 140;

fn timeline(steps: &[Step]) -> Markup {
    let width = STEP * (steps.len() as i64 + 1) + 20;
    let start = steps
        .first()
        .and_then(|s| s.t.from.as_deref())
        .unwrap_or("∅");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="state timeline"
            width=(width) height="150" viewBox={ "0 0 " (width) " 150" } {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto" {
                    path d="M0,0 L10,5 L0,10 z" fill="#5b6478" {}
                }
            }
            (node(20, start, "start"))
            @for (i, s) in steps.iter().enumerate() {
                @let x = 20 + STEP * (i as i64 + 1);
                @let kind = if s.t.flag.is_some() { "flagged" } else if s.late { "late" } else { "applied" };
                line class={ "edge " (kind) } x1=(x - STEP + NODE_W) y1="58" x2=(x - 4) y2="58"
                    stroke="#5b6478" stroke-width="1.5" stroke-dasharray=(if kind == "applied" { "" } else { "5,3" }) marker-end="url(#arrow)" {}
                text class="when" x=(x + NODE_W / 2) y="92" text-anchor="middle" font-size="10" fill="#5b6478" {
                    (version_of(s.t).map(layout::version_time).unwrap_or_default().chars().take(19).collect::<String>().replace('T', " "))
                }
                (node(x, &s.t.to, kind))
                @if let Some(flag) = &s.t.flag {
                    text class="mark" x=(x + NODE_W / 2) y="110" text-anchor="middle" font-size="11" fill="#991b1b" { "flagged: " (flag) ", not applied" }
                } @else if s.late {
                    text class="mark" x=(x + NODE_W / 2) y="110" text-anchor="middle" font-size="11" fill="#92400e" { "late: after a newer state" }
                }
            }
        }
    }
}

fn node(x: i64, label: &str, kind: &str) -> Markup {
    let (fill, stroke, dash) = match kind {
        "flagged" => ("#fbd9d9", "#b91c1c", "5,3"),
        "late" => ("#fdf0cf", "#b45309", "5,3"),
        "start" => ("#eef0f5", "#9aa3b5", ""),
        _ => ("#d6f2de", "#15803d", ""),
    };
    html! {
        g class={ "state " (kind) } {
            rect x=(x) y="40" width=(NODE_W) height="36" rx="8" fill=(fill) stroke=(stroke) stroke-dasharray=(dash) {}
            text x=(x + NODE_W / 2) y="63" text-anchor="middle" font-size="13" { (label) }
        }
    }
}

fn history_table(c: &Console, steps: &[Step], back: &str) -> Markup {
    html! {
        table.history {
            thead { tr { th { "When (version)" } th { "Change" } th { "Event" } th { "Delivery" } th { "" } } }
            tbody {
                @for s in steps {
                    tr data-transition=(s.t.transition_id) {
                        td { (version_of(s.t).map(layout::version_time).unwrap_or_default()) }
                        td { (s.t.from.as_deref().unwrap_or("∅")) " → " (s.t.to)
                            @if let Some(flag) = &s.t.flag { " " (badge(flag)) }
                            @if s.late { " " (badge("late")) } }
                        td { a href=(layout::event_url(&s.t.event_key)) { code { (s.t.event_key) } } }
                        td.delivery { (delivery(s.t)) }
                        td { @if s.t.queued { (replay_form(&c.access, &s.t.transition_id, back)) } }
                    }
                }
            }
        }
    }
}
