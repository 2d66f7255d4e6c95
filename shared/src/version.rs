//! Entity versions: the ordering key of an entity's events, normalised to microseconds
//! since the Unix epoch so that every provider's timestamps compare the same way.
//!
//! Accepted forms: RFC 3339 (`2025-09-05T10:45:00.000Z`), ISO without a zone
//! (`2024-05-01T10:00:00`, Pancake POS) and `2022-06-10 10:53:56` (Abaha) read as UTC,
//! and unix time as a number or numeric string in seconds, milliseconds or microseconds.
//! A time before the Unix epoch is not a version (as a negative unix number is not): a
//! version is never negative, so its zero-padded sort key orders as it does and it renders
//! as RFC 3339.
//!
//! A provider's own ordering counter (Pancake's `data.conversation.version`: 305, 306, ...) is
//! no time: read as unix seconds it would be 1970 and lose to every timestamp, and read by
//! magnitude a counter crossing 10^11 would jump from seconds to milliseconds. Counters take
//! their own path, [`Version::from_counter`]: `COUNTER_BASE + n`, above every time a version
//! can hold, so counters keep their order among themselves and an entity that has one is
//! never overwritten by an update versioned only by a time (ARCHITECTURE §4, decision 45).

use serde::{Deserialize, Serialize};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// How far ahead of its receipt a provider's timestamp may lie and still order the entity:
/// one day, far beyond any clock skew or time-zone slip (a zone-less time read as UTC is
/// at most 14 hours off). Further ahead, the update is flagged, not applied (§11).
pub(crate) const FUTURE_TOLERANCE_MICROS: i64 = 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(i64);

/// Where counter versions start: 10^18 µs is the year 33658, later than any time a provider
/// sends (times parse up to the year 9999; a unix number at or past it is no time).
pub(crate) const COUNTER_BASE: i64 = 1_000_000_000_000_000_000;

impl Version {
    /// A provider's monotonic counter (not a time): `None` when negative or too large to
    /// offset. Any counter version is newer than any time version; counters order as numbers.
    pub(crate) fn from_counter(n: i64) -> Option<Self> {
        if n < 0 {
            return None;
        }
        n.checked_add(COUNTER_BASE).map(Version)
    }

    /// A counter from JSON: a non-negative integer, or a string of one (`306`, `"306"`).
    pub(crate) fn counter_from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::Number(n) => n.as_i64().and_then(Self::from_counter),
            serde_json::Value::String(s) => s.trim().parse().ok().and_then(Self::from_counter),
            _ => None,
        }
    }

    /// The counter this version holds, when it is one.
    pub fn counter(self) -> Option<i64> {
        (self.0 >= COUNTER_BASE).then(|| self.0 - COUNTER_BASE)
    }

    pub const fn from_micros(micros: i64) -> Self {
        Version(micros)
    }
    pub fn micros(self) -> i64 {
        self.0
    }
    pub(crate) fn from_datetime(t: OffsetDateTime) -> Self {
        Version((t.unix_timestamp_nanos() / 1_000) as i64)
    }

    /// Parses a provider timestamp (string or number); `None` when it is not one.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        match v {
            serde_json::Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .and_then(Self::from_unix_number),
            serde_json::Value::String(s) => Self::parse(s),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Ok(n) = s.parse::<i64>() {
            return Self::from_unix_number(n);
        }
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Self::from_provider_time(t);
        }
        let naive_t = format_description!(
            version = 2,
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        let naive_space = format_description!(
            version = 2,
            "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        PrimitiveDateTime::parse(s, &naive_t)
            .or_else(|_| PrimitiveDateTime::parse(s, &naive_space))
            .ok()
            .and_then(|p| Self::from_provider_time(p.assume_utc()))
    }

    /// A provider's date-time as a version; `None` before the Unix epoch. A negative
    /// version would break the sort key's promise (`-0…05` sorts before `-0…10`) and have no
    /// RFC 3339 rendering for years before 0, so such a time counts as no timestamp, like a
    /// negative unix number (the fuzzer found `-9999-12-31T23:59:59`).
    fn from_provider_time(t: OffsetDateTime) -> Option<Self> {
        let v = Self::from_datetime(t);
        (v.0 >= 0).then_some(v)
    }

    /// Unix time in seconds, milliseconds or microseconds, told apart by magnitude.
    fn from_unix_number(n: i64) -> Option<Self> {
        if n < 0 {
            return None;
        }
        let micros = if n < 100_000_000_000 {
            n.checked_mul(1_000_000)?
        } else if n < 100_000_000_000_000 {
            n.checked_mul(1_000)?
        } else {
            n
        };
        // A time never reaches the counters' range.
        (micros < COUNTER_BASE).then_some(Version(micros))
    }

    /// RFC 3339 rendering, for `occurredAt`; a counter renders as `counter:<n>`.
    pub fn to_rfc3339(self) -> String {
        if let Some(n) = self.counter() {
            return format!("counter:{n}");
        }
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Whether this version lies more than [`FUTURE_TOLERANCE_MICROS`] after `received`
    /// (the event's receipt): a clock set years ahead, or a unit misread, that would
    /// otherwise make every later, current update look stale for ever. A provider counter
    /// ([`Version::from_counter`]) is no time and is never ahead of one.
    pub(crate) fn is_far_ahead_of(self, received: Version) -> bool {
        self.counter().is_none() && self.0 > received.0.saturating_add(FUTURE_TOLERANCE_MICROS)
    }

    /// Zero-padded so that string order is version order (transitions sort key).
    pub fn sort_key(self) -> String {
        format!("{:020}", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_provider_forms_order_consistently() {
        let a = Version::parse("2022-06-07T09:55:58.000000Z").unwrap();
        let b = Version::parse("2022-06-07 09:55:59").unwrap();
        let c = Version::parse("2022-06-07T09:56:00").unwrap();
        let d = Version::from_json(&json!(1654595761)).unwrap();
        let e = Version::from_json(&json!("1654595762000")).unwrap();
        assert!(a < b && b < c && c < d && d < e, "{a} {b} {c} {d} {e}");
    }

    #[test]
    fn rejects_non_timestamps() {
        assert_eq!(Version::parse("yesterday"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(Version::from_json(&json!(true)), None);
        assert_eq!(Version::from_json(&json!(-5)), None);
    }

    /// Fuzz finding (version target): a negative year parsed to a negative version whose
    /// sort key ordered backwards and whose RFC 3339 rendering fell back to a number that
    /// did not parse back. Times before the epoch are no version, in every form.
    #[test]
    fn times_before_the_epoch_are_not_versions() {
        for s in [
            "-9999-12-31T23:59:59.99999",
            "-0001-01-01 00:00:00",
            "0000-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "1970-01-01T07:00:00+07:01",
        ] {
            assert_eq!(Version::parse(s), None, "{s}");
        }
        assert_eq!(
            Version::parse("1970-01-01T00:00:00Z"),
            Some(Version::from_micros(0))
        );
        let early = Version::parse("1970-01-01T00:00:00.000005Z").unwrap();
        let later = Version::parse("1970-01-01T00:00:00.000010Z").unwrap();
        assert!(early < later && early.sort_key() < later.sort_key());
        assert_eq!(Version::parse(&early.to_rfc3339()), Some(early));
    }

    #[test]
    fn counters_keep_their_order_and_outrank_every_time() {
        let small = Version::counter_from_json(&json!(5)).unwrap();
        let big = Version::counter_from_json(&json!("306")).unwrap();
        let huge = Version::from_counter(200_000_000_000_000).unwrap();
        assert!(
            small < big && big < huge,
            "a counter is never read by magnitude"
        );
        assert_eq!(big.counter(), Some(306));
        assert_eq!(big.to_rfc3339(), "counter:306");
        assert!(small.sort_key() < big.sort_key() && big.sort_key() < huge.sort_key());
        assert_eq!(big.sort_key().len(), 20);
        let latest_time = Version::parse("9999-12-31T23:59:59.999999Z").unwrap();
        assert!(latest_time < Version::from_counter(0).unwrap());
        assert_eq!(latest_time.counter(), None);
        // a unix number in the counters' range is no time
        assert_eq!(Version::from_json(&json!(COUNTER_BASE)), None);
        assert!(Version::from_json(&json!(COUNTER_BASE - 1)).is_some());
        for bad in [
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(null),
            json!(i64::MAX),
        ] {
            assert_eq!(Version::counter_from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_counter_is_never_judged_ahead_of_the_receipt() {
        let received = Version::parse("2026-12-07T00:00:00Z").unwrap();
        assert!(!Version::from_counter(306)
            .unwrap()
            .is_far_ahead_of(received));
        let next_year = Version::parse("2027-12-07T00:00:00Z").unwrap();
        assert!(next_year.is_far_ahead_of(received));
    }

    #[test]
    fn space_separated_time_with_microseconds() {
        // Pancake POS inventory rows: `inserted_at` with a space and microseconds
        let v = Version::parse("2023-05-26 04:02:00.324609").unwrap();
        assert_eq!(v, Version::parse("2023-05-26T04:02:00.324609Z").unwrap());
        assert_eq!(v.micros() % 1_000_000, 324_609);
    }

    #[test]
    fn rfc3339_round_trip_and_sort_key() {
        let v = Version::parse("2025-09-05T10:45:00Z").unwrap();
        assert_eq!(v.to_rfc3339(), "2025-09-05T10:45:00Z");
        assert_eq!(v.sort_key().len(), 20);
        assert!(Version::from_micros(9).sort_key() < Version::from_micros(10).sort_key());
    }
}
