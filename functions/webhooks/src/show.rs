//! What each command prints: aligned tables for people (colour only on a terminal, never
//! with `NO_COLOR`), or one JSON object per line with `--json`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use webhook_core::config::Env;
use webhook_core::model::EntityKey;
use webhook_core::ops::{self, Operator, ReplayOutcome, ReprocessSummary};
use webhook_core::store::{EventStatus, Order, StoredTransition};

use crate::args::{DlqCommand, EventsArgs, ReplayArgs, ReprocessArgs, StatsArgs};
use crate::Failure;

pub struct Output {
    pub json: bool,
    colour: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        crate::terminal::set_colour(colour);
        Output { json, colour }
    }

    pub fn line(&self, value: Value) {
        say!("{value}");
    }

    fn status(&self, status: EventStatus) -> String {
        let code = match status {
            EventStatus::Applied => "32",
            EventStatus::Stale => "33",
            EventStatus::Flagged => "31",
            EventStatus::Ignored => "90",
            EventStatus::Unrecognised => "35",
        };
        if self.colour {
            format!("\x1b[{code}m{:<8}\x1b[0m", status.as_str())
        } else {
            format!("{:<8}", status.as_str())
        }
    }
}

pub fn time_of(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Columns padded to their widest cell.
pub fn table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| visible_len(&r[c])).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - visible_len(cell))))
            .collect();
        say!("{}", cells.join("  ").trim_end());
    }
}

fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in s.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

pub async fn events(op: &Operator, out: &Output, a: &EventsArgs) -> Result<(), Failure> {
    let page = op
        .list_events(
            &a.filter.filter(),
            Order::NewestFirst,
            a.limit as usize,
            a.cursor.as_deref(),
        )
        .await?;
    if out.json {
        for e in &page.events {
            out.line(json!({"eventKey": e.event_key, "source": e.source, "tenant": e.tenant,
                "type": e.event_type, "status": e.status.as_str(), "receivedAt": time_of(e.received_at),
                "entities": e.entities}));
        }
        if let Some(next) = &page.next {
            out.line(json!({"next": next}));
        }
        return Ok(());
    }
    let mut rows = vec![[
        "RECEIVED", "SOURCE", "TENANT", "TYPE", "STATUS", "ENTITIES", "KEY",
    ]
    .map(String::from)
    .to_vec()];
    for e in &page.events {
        rows.push(vec![
            time_of(e.received_at),
            e.source.to_string(),
            e.tenant.to_string(),
            e.event_type.clone(),
            out.status(e.status),
            e.entities.to_string(),
            e.event_key.to_string(),
        ]);
    }
    table(&rows);
    match &page.next {
        Some(next) => say!("more: --cursor {next}"),
        None if page.events.is_empty() => say!("no events"),
        None => {}
    }
    Ok(())
}

fn transition_json(stream: &EntityKey, t: &StoredTransition) -> Value {
    json!({"entity": stream, "transitionId": t.transition_id, "from": t.from, "to": t.to,
        "sort": t.sort, "eventKey": t.event_key, "flag": t.flag, "queued": t.queued,
        "published": t.published, "notification": t.notification.as_ref().map(|n| json!({
            "outcome": n.outcome, "status": n.status, "attempt": n.attempt, "at": n.at}))})
}

fn notification_text(t: &StoredTransition) -> String {
    match &t.notification {
        Some(n) => format!(
            "{} (status {}, attempt {}, {})",
            n.outcome,
            n.status.map_or("-".into(), |s| s.to_string()),
            n.attempt,
            n.at
        ),
        None if !t.queued => "not queued".into(),
        None => "pending".into(),
    }
}

fn pretty_body(raw: &[u8]) -> String {
    serde_json::from_slice::<Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

pub async fn event(op: &Operator, out: &Output, key: &str) -> Result<(), Failure> {
    let report = op.event(key).await?;
    let e = &report.event;
    if out.json {
        let body: Value = serde_json::from_slice(&e.raw_body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.raw_body).into_owned()));
        out.line(json!({"eventKey": e.event_key, "source": e.source, "tenant": e.tenant,
            "type": e.event_type, "status": e.status.as_str(), "why": why(e.status),
            "receivedAt": time_of(e.received_at), "conflictWith": e.conflict_with,
            "headers": e.headers, "body": body,
            "entities": report.entities.iter().map(|(k, s)| json!({"key": k.stream(),
                "state": s.as_ref().and_then(|s| s.state.clone()), "version": s.as_ref().map(|s| s.version)})).collect::<Vec<_>>(),
            "transitions": report.transitions.iter().map(|(s, t)| transition_json(s, t)).collect::<Vec<_>>()}));
        return Ok(());
    }
    say!("event     {}", e.event_key);
    say!(
        "type      {} ({} / tenant {})",
        e.event_type,
        e.source,
        e.tenant
    );
    say!("received  {}", time_of(e.received_at));
    say!(
        "status    {} {}",
        out.status(e.status).trim_end(),
        why(e.status)
    );
    if let Some(other) = &e.conflict_with {
        say!("conflict  with {other}: its delivery id is stored there with another body; both kept (ARCHITECTURE §4)");
    }
    say!("headers");
    for (name, value) in &e.headers {
        say!("  {name}: {value}");
    }
    say!("entities");
    for (key, stored) in &report.entities {
        let state = stored
            .as_ref()
            .and_then(|s| s.state.clone())
            .unwrap_or_else(|| "-".into());
        say!("  {}  state {state}", key.stream());
    }
    say!("transitions");
    for (stream, t) in &report.transitions {
        say!(
            "  {}  {} -> {}{}  {}  [{}]",
            t.transition_id,
            t.from.as_deref().unwrap_or("(none)"),
            t.to,
            t.flag
                .as_deref()
                .map(|f| format!(" flagged {f}"))
                .unwrap_or_default(),
            stream,
            notification_text(t)
        );
    }
    say!("body\n{}", pretty_body(&e.raw_body));
    Ok(())
}

fn why(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Applied => "(every entity it names was written)",
        EventStatus::Stale => "(an entity was already newer: recorded, not applied)",
        EventStatus::Flagged => {
            "(a transition the lifecycle forbids: recorded, not applied or queued)"
        }
        EventStatus::Ignored => "(kept, not projected: unknown type or no entity id)",
        EventStatus::Unrecognised => {
            "(kept, not understood: no documented form of its provider; reprocess after an upgrade)"
        }
    }
}

pub async fn entity(op: &Operator, out: &Output, key: &EntityKey) -> Result<(), Failure> {
    let (entity, history) = op.entity(key).await?;
    if out.json {
        out.line(
            json!({"entity": key.stream(), "state": entity.state, "version": entity.version,
            "lastEventKey": entity.last_event_key, "data": entity.data,
            "history": history.iter().map(|t| transition_json(key, t)).collect::<Vec<_>>()}),
        );
        return Ok(());
    }
    say!("entity   {}", key.stream());
    say!("state    {}", entity.state.as_deref().unwrap_or("-"));
    say!(
        "version  {} (last event {})",
        entity.version,
        entity.last_event_key
    );
    say!("history");
    let mut rows = vec![[
        "TRANSITION",
        "FROM",
        "TO",
        "FLAG",
        "PUBLISHED",
        "NOTIFICATION",
    ]
    .map(String::from)
    .to_vec()];
    for t in &history {
        rows.push(vec![
            t.transition_id.clone(),
            t.from.clone().unwrap_or_else(|| "-".into()),
            t.to.clone(),
            t.flag.clone().unwrap_or_else(|| "-".into()),
            t.published.to_string(),
            notification_text(t),
        ]);
    }
    table(&rows);
    say!(
        "data\n{}",
        serde_json::to_string_pretty(&entity.data).unwrap_or_default()
    );
    Ok(())
}

pub async fn replay(op: &Operator, out: &Output, a: &ReplayArgs) -> Result<(), Failure> {
    let replay_id = OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
    let done = op.replay(&a.selector()?, a.force, &replay_id).await?;
    let label = |o: ReplayOutcome| match o {
        ReplayOutcome::Requeued => "requeued",
        ReplayOutcome::AlreadyDelivered => "already delivered (use --force)",
        ReplayOutcome::NotQueued => "never queued (flagged): nothing to send",
    };
    for (r, outcome) in &done {
        if out.json {
            out.line(
                json!({"transitionId": r.transition.transition_id, "entity": r.stream,
                "outcome": outcome.as_str()}),
            );
        } else {
            say!(
                "{}  {}  {}",
                r.transition.transition_id,
                r.stream,
                label(*outcome)
            );
        }
    }
    let requeued = done
        .iter()
        .filter(|(_, o)| *o == ReplayOutcome::Requeued)
        .count();
    if !out.json {
        say!("{requeued} of {} requeued", done.len());
    }
    Ok(())
}

pub async fn dlq(op: &Operator, out: &Output, c: &DlqCommand) -> Result<(), Failure> {
    match c {
        DlqCommand::List { max } => {
            let letters = op.dead_letters(*max).await?;
            for d in &letters {
                let failure = d
                    .letter
                    .last_error
                    .clone()
                    .or_else(|| {
                        d.record
                            .as_ref()
                            .map(|r| format!("{} status {:?}", r.outcome, r.status))
                    })
                    .unwrap_or_else(|| "-".into());
                if out.json {
                    out.line(json!({"id": d.letter.id, "group": d.letter.group,
                        "transitionId": d.transition_id, "receives": d.letter.receive_count,
                        "lastFailure": failure}));
                } else {
                    say!(
                        "{}  {}  {}  receives {}  {}",
                        d.letter.id,
                        d.transition_id.as_deref().unwrap_or("(not a transition)"),
                        d.letter.group,
                        d.letter.receive_count,
                        failure
                    );
                }
            }
            if !out.json {
                say!("{} dead-lettered", letters.len());
            }
        }
        DlqCommand::Redrive { ids, all } => {
            let moved = op.redrive((!*all).then_some(ids.as_slice())).await?;
            if out.json {
                out.line(json!({"redriven": moved}));
            } else {
                say!("{moved} moved back to the queue");
            }
        }
    }
    Ok(())
}

pub async fn reprocess(
    op: &Operator,
    out: &Output,
    env: &Env,
    a: &ReprocessArgs,
) -> Result<(), Failure> {
    let filter = a.filter.filter();
    // On a terminal: a bar with rate and ETA (one counting pass first); otherwise a plain
    // line per 10,000 events.
    let bar = if std::io::stderr().is_terminal() {
        let total: u64 = op.stats(&filter).await?.values().sum();
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} events  {per_sec}  elapsed {elapsed}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut reported = 0;
    let mut progress = |s: &ReprocessSummary| match &bar {
        Some(bar) => bar.set_position(s.scanned),
        None if s.scanned >= reported + 10_000 => {
            reported = s.scanned;
            eprintln!(
                "reprocess: {} scanned, {} failed",
                s.scanned,
                s.failed.len()
            );
        }
        None => {}
    };
    let summary = ops::reprocess(op, env, &filter, a.dry_run, &mut progress).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if out.json {
        out.line(json!({"dryRun": a.dry_run, "scanned": summary.scanned,
            "newlyProjected": summary.newly_projected, "changed": summary.changed,
            "unchanged": summary.unchanged, "queued": summary.queued,
            "failed": summary.failed.iter().map(|(k, r)| json!({"eventKey": k, "reason": r})).collect::<Vec<_>>()}));
        return Ok(());
    }
    let verb = if a.dry_run { "would be" } else { "were" };
    say!("scanned          {}", summary.scanned);
    say!("newly projected  {} ({verb})", summary.newly_projected);
    say!("changed          {}", summary.changed);
    say!("unchanged        {}", summary.unchanged);
    say!("transitions queued {}", summary.queued);
    say!("failed           {}", summary.failed.len());
    for (key, reason) in &summary.failed {
        say!("  {key}: {reason}");
    }
    Ok(())
}

pub async fn stats(op: &Operator, out: &Output, a: &StatsArgs) -> Result<(), Failure> {
    let counts = op.stats(&a.filter.filter()).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let waiting = op.waiting_transitions(now, a.waiting_minutes).await?;
    if out.json {
        for ((source, status), n) in &counts {
            out.line(json!({"source": source, "status": status.as_str(), "events": n}));
        }
        out.line(json!({
            "waiting_transitions": waiting.count(),
            "older_than_minutes": a.waiting_minutes,
            "counted": waiting.meaning(),
        }));
        return Ok(());
    }
    let mut rows = vec![["SOURCE", "STATUS", "EVENTS"].map(String::from).to_vec()];
    for ((source, status), n) in &counts {
        rows.push(vec![source.to_string(), out.status(*status), n.to_string()]);
    }
    table(&rows);
    say!(
        "transitions older than {} min not yet on the queue: {} ({})",
        a.waiting_minutes,
        waiting.count(),
        waiting.meaning()
    );
    Ok(())
}
