//! What each command prints: aligned tables for people (colour only on a terminal, never
//! with `NO_COLOR`), or one JSON object per line with `--json`. The commands (`inspect`,
//! `repair`, `purge`, `credentials`) print through it and nothing here knows a command.

use std::io::IsTerminal;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use webhook_core::store::EventStatus;

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

    /// A status padded to a column, in its colour on a terminal.
    pub fn status(&self, status: EventStatus) -> String {
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
