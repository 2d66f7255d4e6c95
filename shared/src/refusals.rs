//! Refused requests, as the operator needs to see them (ARCHITECTURE §8): when, which
//! source, the status and reason code, the body's size, and the tenant when one was read
//! from a verified body. A refusal stores nothing (unauthenticated traffic must not cost
//! writes), so the handler reports each one to a [`RefusalSink`]: the null [`NoRecord`] in a
//! Lambda, whose structured log line is the record (a saved Logs Insights query lists them),
//! and the bounded in-memory [`RecentRefusals`] in `webhooks-local`, which its console shows.
//!
//! A refusal never holds a credential, a header or any part of the body: only the fields
//! below, whose tenant is set only after the credential was verified.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::model::{Source, Tenant};

/// One refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// When it was answered, unix seconds.
    pub at: i64,
    pub source: Source,
    /// The HTTP status answered (4xx or 5xx).
    pub status: u16,
    /// `IngestError::reason` (`bad_credential`, `invalid_field`, ...).
    pub reason: &'static str,
    /// `IngestError::code` (`AUTH_002`, ...), as the provider was told.
    pub code: &'static str,
    /// Body bytes received (for an oversize body: at least this many).
    pub size: usize,
    /// The tenant of the verified, normalised event; `None` when the refusal came before
    /// (a failed verification never reveals what its body claims).
    pub tenant: Option<Tenant>,
    /// The request id of the log line, to find it there.
    pub request_id: String,
}

/// The fields of a refusal's log line (`outcome` = `rejected`) that the template's saved
/// Logs Insights query lists; `tenant` only when one was read. The pipeline logs them.
pub const LOG_FIELDS: [&str; 7] = [
    "source",
    "status",
    "reason",
    "code",
    "size",
    "tenant",
    "request_id",
];

/// Where the handler reports a refusal.
pub trait RefusalSink: Send + Sync {
    fn refused(&self, refusal: Refusal);
}

/// Keeps nothing: a Lambda's record is its log line (and it has no console to show it).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRecord;

impl RefusalSink for NoRecord {
    fn refused(&self, _: Refusal) {}
}

/// How many refusals `webhooks-local` keeps.
pub const RECENT_CAPACITY: usize = 200;

/// The most recent refusals in memory, at most `capacity` of them (the oldest are dropped),
/// with a count of every refusal since start.
#[derive(Debug)]
pub struct RecentRefusals {
    capacity: usize,
    inner: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    ring: VecDeque<Refusal>,
    total: u64,
}

impl Default for RecentRefusals {
    fn default() -> Self {
        Self::new(RECENT_CAPACITY)
    }
}

impl RecentRefusals {
    pub fn new(capacity: usize) -> Self {
        RecentRefusals {
            capacity: capacity.max(1),
            inner: Mutex::new(Recent::default()),
        }
    }

    /// The kept refusals, newest first, and how many there were since start.
    pub fn newest_first(&self) -> (Vec<Refusal>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.ring.iter().rev().cloned().collect(), inner.total)
    }
}

impl RefusalSink for RecentRefusals {
    fn refused(&self, refusal: Refusal) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.ring.len() == self.capacity {
            inner.ring.pop_front();
        }
        inner.ring.push_back(refusal);
        inner.total += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(at: i64) -> Refusal {
        Refusal {
            at,
            source: Source::Abaha,
            status: 401,
            reason: "bad_credential",
            code: "AUTH_002",
            size: 12,
            tenant: None,
            request_id: format!("r{at}"),
        }
    }

    #[test]
    fn keeps_the_newest_up_to_its_capacity_and_counts_all() {
        let recent = RecentRefusals::new(3);
        for at in 1..=5 {
            recent.refused(refusal(at));
        }
        let (kept, total) = recent.newest_first();
        assert_eq!(kept.iter().map(|r| r.at).collect::<Vec<_>>(), [5, 4, 3]);
        assert_eq!(total, 5);
    }
}
