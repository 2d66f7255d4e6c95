//! The event list: the CLI's `events` filters as a form, newest first, one page per cursor.
//! On the first page the rows refresh themselves (the script polls `/console/events/rows`
//! with the same filters), so new arrivals appear without a reload.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;
use webhook_core::ops::filter::{parse_source, parse_status, parse_time, FilterError};
use webhook_core::store::{EventFilter, EventStatus, EventSummary, Order};
use webhook_core::Source;

use crate::error::ConsoleError;
use crate::layout::{self, badge};
use crate::Console;

/// Rows per page unless `limit` says otherwise, and the most a page may ask for (the CLI's).
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1_000;

/// The query string as typed: every field is text, so a mistake gets this page's own message.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    source: Option<String>,
    tenant: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListQuery {
    pub fn filter(&self) -> Result<EventFilter, ConsoleError> {
        let bad = |e: FilterError| ConsoleError::BadInput(e.to_string());
        Ok(EventFilter {
            source: given(&self.source)
                .map(parse_source)
                .transpose()
                .map_err(bad)?,
            tenant: given(&self.tenant).map(str::to_string),
            event_type: given(&self.event_type).map(str::to_string),
            status: given(&self.status)
                .map(parse_status)
                .transpose()
                .map_err(bad)?,
            since: given(&self.since)
                .map(parse_time)
                .transpose()
                .map_err(bad)?,
            until: given(&self.until)
                .map(parse_time)
                .transpose()
                .map_err(bad)?,
        })
    }

    fn limit(&self) -> Result<usize, ConsoleError> {
        let Some(raw) = given(&self.limit) else {
            return Ok(DEFAULT_LIMIT);
        };
        raw.parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ConsoleError::BadInput(format!(
                    "limit {:?} is not a page size from 1 to {MAX_LIMIT}",
                    raw.chars().take(40).collect::<String>()
                ))
            })
    }

    /// The filters (not the cursor) as query pairs, for the live rows and the next page.
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("source", &self.source),
            ("tenant", &self.tenant),
            ("type", &self.event_type),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter_map(|(k, v)| given(v).map(|v| (k, v)))
        .collect()
    }
}

async fn fetch(
    c: &Console,
    q: &ListQuery,
) -> Result<(Vec<EventSummary>, Option<String>), ConsoleError> {
    let filter = q.filter()?;
    let limit = q.limit()?;
    let page =
        c.op.list_events(&filter, Order::NewestFirst, limit, given(&q.cursor))
            .await?;
    Ok((page.events, page.next))
}

pub async fn page(
    State(c): State<Console>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let Query(q) = query?;
    let (events, next) = fetch(&c, &q).await?;
    let pairs = q.pairs();
    let live = given(&q.cursor).is_none();
    Ok(layout::page(
        "Events",
        html! {
            h1 { "Events" }
            (filter_form(&q))
            @if live { p.muted #live-status { "live: new events appear as they arrive" } }
            table.events {
                thead { tr { th { "Received" } th { "Event" } th { "Source" } th { "Tenant" } th { "Type" } th { "Status" } th.num { "Entities" } } }
                tbody data-live=[live.then(|| layout::url("/events/rows", &pairs))] { (table_rows(&events)) }
            }
            @if let Some(next) = next.as_deref() {
                p { a.next href=(layout::url("/events", &[pairs.as_slice(), &[("cursor", next)]].concat())) { "Older events →" } }
            }
        },
    ))
}

/// Only the rows of the first page, for the live list.
pub async fn rows(
    State(c): State<Console>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Markup, ConsoleError> {
    let Query(q) = query?;
    let (events, _) = fetch(&c, &q).await?;
    Ok(table_rows(&events))
}

fn table_rows(events: &[EventSummary]) -> Markup {
    html! {
        @if events.is_empty() {
            tr { td colspan="7" .muted { "No events match." } }
        }
        @for e in events {
            tr data-key=(e.event_key) {
                td { (layout::time(e.received_at)) }
                td { a href=(layout::event_url(&e.event_key)) { code { (e.event_key) } } }
                td { (e.source) }
                td { (e.tenant) }
                td { (e.event_type) }
                td { (badge(e.status.as_str())) }
                td.num { (e.entities) }
            }
        }
    }
}

fn filter_form(q: &ListQuery) -> Markup {
    let value = |v: &Option<String>| given(v).unwrap_or("").to_string();
    html! {
        form.filters method="get" action={ (crate::PREFIX) "/events" } {
            label { "Source"
                select name="source" {
                    option value="" { "any" }
                    @for s in Source::ALL {
                        option value=(s.as_str()) selected[given(&q.source).and_then(|v| parse_source(v).ok()) == Some(s)] { (s.as_str()) }
                    }
                }
            }
            label { "Tenant" input name="tenant" value=(value(&q.tenant)); }
            label { "Type" input name="type" placeholder="order.status_changed" value=(value(&q.event_type)); }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in EventStatus::ALL.map(EventStatus::as_str) {
                        option value=(s) selected[given(&q.status) == Some(s)] { (s) }
                    }
                }
            }
            label { "Since" input name="since" placeholder="2h or RFC 3339" value=(value(&q.since)); }
            label { "Until" input name="until" placeholder="30m or RFC 3339" value=(value(&q.until)); }
            label { "Per page" input name="limit" size="5" value=(value(&q.limit)); }
            button type="submit" { "Filter" }
        }
    }
}
