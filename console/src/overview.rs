//! The overview: events per source and status (the CLI's `stats`), accepted/rejected
//! requests per minute over the last hour as a server-drawn SVG chart, and in
//! `webhooks-local` each source's share of failed answers over the last 30 minutes, judged
//! as the template's suspension-risk alarms judge it (`metrics::suspension_risk`).

use axum::extract::State;
use maud::{html, Markup};
use time::OffsetDateTime;
use webhook_core::metrics::suspension_risk;
use webhook_core::store::{EventFilter, EventStatus, Order};
use webhook_core::Source;

use crate::error::ConsoleError;
use crate::layout;
use crate::throughput::{Answers, MINUTES};
use crate::{Console, Served};

/// Events read at most to draw the chart from the store (`webhooks console`): ten pages.
const CHART_EVENTS_MAX: usize = 10_000;
const CHART_PAGE: usize = 1_000;

/// Per minute of the hour: (minute start, accepted, rejected if known).
struct Series {
    minutes: Vec<(i64, u64, Option<u64>)>,
    /// What the numbers are, for the caption.
    caption: &'static str,
}

/// The overview's "not yet on the queue" age, as `webhooks stats`' default.
const WAITING_MINUTES: u64 = 5;

pub async fn page(State(c): State<Console>) -> Result<Markup, ConsoleError> {
    let counts = c.op.stats(&EventFilter::default()).await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let waiting = c.op.waiting_transitions(now, WAITING_MINUTES).await?;
    let series = series(&c, now).await?;
    Ok(layout::page(
        "Overview",
        html! {
            h1 { "Overview" }
            (counts_table(&counts))
            p.waiting {
                "Transitions older than " (WAITING_MINUTES) " minutes not yet on the queue: "
                strong { (waiting.count()) }
                " (" (waiting.meaning()) ")"
            }
            h2 { "Requests per minute, last hour" }
            div.chart { (chart(&series)) }
            p.muted { (series.caption) }
            @if let Some(served) = &c.served {
                (risk_table(&served.throughput.per_source(now, suspension_risk::WINDOW_MINUTES as usize)))
            }
            @if c.access.asks_token() {
                form.inline method="post" action={ (crate::PREFIX) "/logout" } {
                    (crate::access::csrf_field(&c.access))
                    button type="submit" { "Log out" }
                }
            }
        },
    ))
}

async fn series(c: &Console, now: i64) -> Result<Series, ConsoleError> {
    if let Some(Served { throughput, .. }) = &c.served {
        return Ok(Series {
            minutes: throughput
                .last_hour(now)
                .into_iter()
                .map(|(m, a, r)| (m, a, Some(r)))
                .collect(),
            caption: "Answers this process gave: accepted (2xx, duplicates included) and \
                      rejected (any other status), since it started.",
        });
    }
    let first = (now.div_euclid(60) - MINUTES as i64 + 1) * 60;
    let filter = EventFilter {
        since: Some(first),
        ..EventFilter::default()
    };
    let mut per_minute = vec![0u64; MINUTES];
    let (mut cursor, mut read) = (None::<String>, 0usize);
    loop {
        let page =
            c.op.list_events(&filter, Order::NewestFirst, CHART_PAGE, cursor.as_deref())
                .await?;
        for e in &page.events {
            if let Some(slot) = usize::try_from((e.received_at - first) / 60)
                .ok()
                .filter(|i| *i < MINUTES)
            {
                per_minute[slot] += 1;
            }
        }
        read += page.events.len();
        match page.next {
            Some(next) if read < CHART_EVENTS_MAX => cursor = Some(next),
            _ => break,
        }
    }
    Ok(Series {
        minutes: per_minute
            .into_iter()
            .enumerate()
            .map(|(i, n)| (first + 60 * i as i64, n, None))
            .collect(),
        caption: "New events stored per minute (duplicates are not stored). Rejected requests \
                  store nothing, so only the process that answered them counts them: see the \
                  Rejected widgets of the CloudWatch dashboard.",
    })
}

/// Each source's failed answers over the window, marked when they put its feed at risk.
fn risk_table(per_source: &[(Source, Answers)]) -> Markup {
    html! {
        h2 { "Failed answers, last " (suspension_risk::WINDOW_MINUTES) " minutes" }
        table.risk {
            thead { tr { th { "Source" } th.num { "answered" } th.num { "failed" } th.num { "share" } th { "" } } }
            tbody {
                @for (source, a) in per_source {
                    @let risky = suspension_risk::at_risk(a.answered, a.failed);
                    tr data-source=(source.as_str()) class=[risky.then_some("at-risk")] {
                        td { (source.as_str()) }
                        td.num { (a.answered) }
                        td.num { (a.failed) }
                        td.num { (share(a)) }
                        td { @if risky { span.badge.failed_permanently { "suspension risk" } } }
                    }
                }
            }
        }
        p.muted {
            "Failed = any answer but 2xx. A source is at risk from "
            (suspension_risk::SHARE_PERCENT) " % failed and at least "
            (suspension_risk::MIN_FAILURES) " failures in the window, as the suspension-risk \
             alarm judges it on AWS: Pancake suspends a webhook past 80 % and 300 failures in 30 \
             minutes. README, Alarm runbook. "
            a href=(layout::url("/refusals", &[])) { "Recent refusals" }
        }
    }
}

fn share(a: &Answers) -> String {
    match a.answered {
        0 => "-".into(),
        n => format!("{} %", a.failed * 100 / n),
    }
}

fn counts_table(counts: &webhook_core::store::EventCounts) -> Markup {
    let statuses = EventStatus::ALL;
    let get = |s: Source, st: EventStatus| counts.get(&(s, st)).copied().unwrap_or(0);
    html! {
        table.counts {
            thead { tr { th { "Source" } @for st in statuses { th.num { (st.as_str()) } } th.num { "total" } } }
            tbody {
                @for s in Source::ALL {
                    @let name = s.as_str();
                    tr data-source=(name) {
                        td { a href=(layout::url("/events", &[("source", name)])) { (name) } }
                        @for st in statuses {
                            td.num { a href=(layout::url("/events", &[("source", name), ("status", st.as_str())])) { (get(s, st)) } }
                        }
                        td.num { (statuses.iter().map(|st| get(s, *st)).sum::<u64>()) }
                    }
                }
            }
        }
    }
}

const W: i64 = 760;
const H: i64 = 200;
const LEFT: i64 = 40;
const BOTTOM: i64 = 24;

fn chart(series: &Series) -> Markup {
    let max = series
        .minutes
        .iter()
        .map(|(_, a, r)| (*a).max(r.unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = H - BOTTOM - 10;
    let slot = (W - LEFT - 10) / MINUTES as i64;
    let bar = |n: u64| (n as i64 * plot_h) / max as i64;
    let right = LEFT + slot * MINUTES as i64;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="accepted and rejected per minute"
            width=(W) height=(H) viewBox={ "0 0 " (W) " " (H) } {
            line x1=(LEFT) y1=(H - BOTTOM) x2=(right) y2=(H - BOTTOM) stroke="#9aa3b5" {}
            text x=(LEFT - 6) y="16" text-anchor="end" font-size="11" { (max) }
            text x=(LEFT - 6) y=(H - BOTTOM) text-anchor="end" font-size="11" { "0" }
            text x=(LEFT) y=(H - 6) font-size="11" { "−60 min" }
            text x=(right) y=(H - 6) text-anchor="end" font-size="11" { "now" }
            @for (i, (minute, accepted, rejected)) in series.minutes.iter().enumerate() {
                @let x = LEFT + slot * i as i64 + 1;
                @let when = layout::time(*minute);
                rect class="accepted" x=(x) y=(H - BOTTOM - bar(*accepted)) width=(slot / 2) height=(bar(*accepted)) fill="#16a34a" {
                    title { (when) ": " (accepted) " accepted" }
                }
                @if let Some(r) = rejected {
                    rect class="rejected" x=(x + slot / 2) y=(H - BOTTOM - bar(*r)) width=(slot / 2 - 1) height=(bar(*r)) fill="#dc2626" {
                        title { (when) ": " (r) " rejected" }
                    }
                }
            }
            g font-size="11" {
                rect x=(LEFT + 250) y=(H - 15) width="10" height="10" fill="#16a34a" {}
                text x=(LEFT + 264) y=(H - 6) { "accepted" }
                @if series.minutes.iter().any(|m| m.2.is_some()) {
                    rect x=(LEFT + 340) y=(H - 15) width="10" height="10" fill="#dc2626" {}
                    text x=(LEFT + 354) y=(H - 6) { "rejected" }
                }
            }
        }
    }
}
