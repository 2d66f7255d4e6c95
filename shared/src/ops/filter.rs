//! How operators spell a filter, read the same way by the `webhooks` CLI's flags and the
//! console's query strings: one message per mistake, naming what is accepted.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::{EventStatus, Source};

/// An operator's filter word that says nothing this module reads; the message names what
/// is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The message lists `Source::ALL`, so a new source is named without an edit here.
    #[error("{0:?} is not a source ({known})", known = known_sources())]
    NotASource(String),
    #[error("{0:?} is not a status (applied, stale, flagged, ignored, unrecognised)")]
    NotAStatus(String),
    #[error("{0:?} is neither a duration (90s, 30m, 2h, 7d) nor an RFC 3339 time")]
    NotATime(String),
    #[error("{0:?} reaches too far back")]
    TooFarBack(String),
    #[error("{0:?} is too long a duration")]
    TooLong(String),
    #[error("{0:?} is not a duration (90s, 30m, 2h, 7d)")]
    NotADuration(String),
}

/// Every source as an operator may spell it (`pancake-pos`).
fn known_sources() -> String {
    let known: Vec<String> = Source::ALL
        .iter()
        .map(|source| source.as_str().replace('_', "-"))
        .collect();
    known.join(", ")
}

/// `pancake-pos` or `pancake_pos` (the stored spelling).
pub fn parse_source(s: &str) -> Result<Source, FilterError> {
    Source::parse(&s.replace('-', "_"))
        .or_else(|| Source::parse(s))
        .ok_or_else(|| FilterError::NotASource(s.to_string()))
}

pub fn parse_status(s: &str) -> Result<EventStatus, FilterError> {
    EventStatus::parse(s).ok_or_else(|| FilterError::NotAStatus(s.to_string()))
}

/// `2h` back from `now`, or an RFC 3339 time: unix seconds.
pub(crate) fn parse_time_at(s: &str, now: i64) -> Result<i64, FilterError> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let Some(secs) = span_of(s) else {
        return Err(FilterError::NotATime(s.to_string()));
    };
    secs.and_then(|secs| now.checked_sub(secs))
        .ok_or_else(|| FilterError::TooFarBack(s.to_string()))
}

/// A duration, `90s`, `30m`, `2h` or `7d`, in seconds.
pub fn parse_span(s: &str) -> Result<i64, FilterError> {
    match span_of(s) {
        Some(Some(secs)) => Ok(secs),
        Some(None) => Err(FilterError::TooLong(s.to_string())),
        None => Err(FilterError::NotADuration(s.to_string())),
    }
}

/// `None` when `s` is not a duration; `Some(None)` when it is one too long (or negative)
/// to count in seconds.
fn span_of(s: &str) -> Option<Option<i64>> {
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    Some(n.checked_mul(unit).filter(|secs| *secs >= 0))
}

/// [`parse_time_at`] from the system clock.
pub fn parse_time(s: &str) -> Result<i64, FilterError> {
    parse_time_at(s, OffsetDateTime::now_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_mistakes() {
        assert_eq!(parse_source("pancake-pos"), Ok(Source::PancakePos));
        assert_eq!(parse_source("pancake_pos"), Ok(Source::PancakePos));
        assert!(parse_source("stripe")
            .unwrap_err()
            .to_string()
            .contains("not a source"));
        assert_eq!(parse_status("ignored"), Ok(EventStatus::Ignored));
        assert!(parse_status("done")
            .unwrap_err()
            .to_string()
            .contains("not a status"));
        assert_eq!(parse_time_at("2h", 10_000), Ok(10_000 - 7_200));
        assert_eq!(parse_time_at("1970-01-01T00:01:00Z", 0), Ok(60));
        assert!(parse_time_at("yesterday", 0)
            .unwrap_err()
            .to_string()
            .contains("neither"));
        assert!(parse_time_at("", 0).is_err());
        assert!(parse_time_at("99999999999999999d", 0)
            .unwrap_err()
            .to_string()
            .contains("too far back"));
    }
}
