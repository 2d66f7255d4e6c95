//! How operators spell a filter, read the same way by the `webhooks` CLI's flags and the
//! console's query strings: one message per mistake, naming what is accepted.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::{EventStatus, Source};

/// `pancake-pos` or `pancake_pos` (the stored spelling). The message lists `Source::ALL`, so
/// a new source is named without an edit here.
pub fn parse_source(s: &str) -> Result<Source, String> {
    Source::parse(&s.replace('-', "_"))
        .or_else(|| Source::parse(s))
        .ok_or_else(|| {
            let known: Vec<String> = Source::ALL
                .iter()
                .map(|source| source.as_str().replace('_', "-"))
                .collect();
            format!("{s:?} is not a source ({})", known.join(", "))
        })
}

pub fn parse_status(s: &str) -> Result<EventStatus, String> {
    EventStatus::parse(s).ok_or_else(|| {
        format!("{s:?} is not a status (applied, stale, flagged, ignored, unrecognised)")
    })
}

/// `2h` back from `now`, or an RFC 3339 time: unix seconds.
pub(crate) fn parse_time_at(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let Some(secs) = span_of(s) else {
        return Err(format!(
            "{s:?} is neither a duration (90s, 30m, 2h, 7d) nor an RFC 3339 time"
        ));
    };
    secs.and_then(|secs| now.checked_sub(secs))
        .ok_or_else(|| format!("{s:?} reaches too far back"))
}

/// A duration, `90s`, `30m`, `2h` or `7d`, in seconds.
pub fn parse_span(s: &str) -> Result<i64, String> {
    match span_of(s) {
        Some(Some(secs)) => Ok(secs),
        Some(None) => Err(format!("{s:?} is too long a duration")),
        None => Err(format!("{s:?} is not a duration (90s, 30m, 2h, 7d)")),
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
pub fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_at(s, OffsetDateTime::now_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_mistakes() {
        assert_eq!(parse_source("pancake-pos"), Ok(Source::PancakePos));
        assert_eq!(parse_source("pancake_pos"), Ok(Source::PancakePos));
        assert_eq!(
            parse_source("stripe").unwrap_err(),
            "\"stripe\" is not a source (pancake, pancake-pos, abaha, fulfilment, invoice)"
        );
        assert_eq!(parse_status("ignored"), Ok(EventStatus::Ignored));
        assert!(parse_status("done").unwrap_err().contains("not a status"));
        assert_eq!(parse_time_at("2h", 10_000), Ok(10_000 - 7_200));
        assert_eq!(parse_time_at("1970-01-01T00:01:00Z", 0), Ok(60));
        assert!(parse_time_at("yesterday", 0)
            .unwrap_err()
            .contains("neither"));
        assert!(parse_time_at("", 0).is_err());
        assert!(parse_time_at("99999999999999999d", 0)
            .unwrap_err()
            .contains("too far back"));
    }
}
