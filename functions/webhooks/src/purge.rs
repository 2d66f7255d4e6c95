//! `webhooks purge`: what went (or would go), then what still holds copies.

use serde_json::json;
use webhook_core::ops::Operator;
use webhook_core::store::Purged;

use crate::args::PurgeArgs;
use crate::output::{table, Output};
use crate::Failure;

pub async fn purge(op: &Operator, out: &Output, a: &PurgeArgs) -> Result<(), Failure> {
    let target = a.target()?;
    let purged = op.purge(&target, a.dry_run).await?;
    if out.json {
        json_lines(out, &purged, a.dry_run);
    } else {
        text(&purged, a.dry_run);
    }
    Ok(())
}

/// One line per record, then the counts, then each place still holding copies.
fn json_lines(out: &Output, p: &Purged, dry_run: bool) {
    for key in &p.events {
        out.line(json!({"event": key}));
    }
    for stream in &p.entities {
        out.line(json!({"entity": stream}));
    }
    for (stream, id) in &p.transitions {
        out.line(json!({"transitionId": id, "entity": stream}));
    }
    for q in &p.queued {
        out.line(json!({"queued": q.transition_id, "place": q.place}));
    }
    out.line(json!({"dryRun": dry_run, "events": p.events.len(),
        "entities": p.entities.len(), "transitions": p.transitions.len(),
        "queued": p.queued.len(), "scanned": p.scanned}));
    for k in &p.kept {
        out.line(json!({"stillHeldBy": k.place, "kept": k.kept}));
    }
}

fn text(p: &Purged, dry_run: bool) {
    let mut rows = vec![vec!["WHAT".to_string(), "KEY".to_string()]];
    rows.extend(p.events.iter().map(|k| vec!["event".into(), k.clone()]));
    rows.extend(p.entities.iter().map(|s| vec!["entity".into(), s.clone()]));
    rows.extend(
        p.transitions
            .iter()
            .map(|(s, id)| vec!["transition".into(), format!("{id}  {s}")]),
    );
    rows.extend(
        p.queued
            .iter()
            .map(|q| vec![q.place.clone(), q.transition_id.clone()]),
    );
    if rows.len() > 1 {
        table(&rows);
    }
    say!(
        "{} events, {} entities, {} transitions, {} queued messages {}",
        p.events.len(),
        p.entities.len(),
        p.transitions.len(),
        p.queued.len(),
        if dry_run {
            "would be deleted (dry run)"
        } else {
            "deleted"
        }
    );
    if !p.scanned.is_empty() {
        say!(
            "read whole to find them (no index, ARCHITECTURE decision 18): {}",
            p.scanned.join(", ")
        );
    }
    if !p.kept.is_empty() {
        say!("still holding copies:");
        for k in &p.kept {
            say!("  {}: {}", k.place, k.kept);
        }
    }
}
