//! The commands that send or apply again: `replay`, `dlq`, `reprocess`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use time::OffsetDateTime;
use webhook_core::config::Env;
use webhook_core::ops::{self, Operator, ReplayOutcome, ReprocessSummary};

use crate::args::{DlqCommand, ReplayArgs, ReprocessArgs};
use crate::output::Output;
use crate::Failure;

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
