//! The commands that read what is stored: `events`, `event`, `entity`, `stats`.

use serde_json::{json, Value};
use webhook_core::model::EntityKey;
use webhook_core::ops::Operator;
use webhook_core::store::{EventStatus, Order, StoredTransition};

use crate::args::{EventsArgs, StatsArgs};
use crate::output::{table, time_of, Output};
use crate::Failure;

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
