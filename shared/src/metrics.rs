//! CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per request, which
//! CloudWatch Logs turns into metrics without any API call. The metric names here are the
//! ones template.yaml's alarms watch.

use serde_json::{json, Map, Value};
use std::io::Write;

pub const NAMESPACE: &str = "WebhookIngest";

/// Metric names (the alarms in template.yaml refer to these).
pub mod names {
    pub const RECEIVED: &str = "Received";
    pub const ACCEPTED: &str = "Accepted";
    pub const REJECTED: &str = "Rejected";
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
    pub const DUPLICATES: &str = "Duplicates";
    pub const STALE: &str = "Stale";
    pub const FLAGGED: &str = "FlaggedTransitions";
    /// Accepted and kept as `unrecognised`: a verified object of no documented form of its
    /// provider (counted once, not on its duplicates).
    pub const UNRECOGNISED: &str = "Unrecognised";
    pub const TRANSITIONS_PUBLISHED: &str = "TransitionsPublished";
    pub(crate) const TRANSIENT_FAILURES: &str = "TransientFailures";
    pub(crate) const NOTIFICATIONS_DELIVERED: &str = "NotificationsDelivered";
    pub const NOTIFICATIONS_FAILED: &str = "NotificationsFailed";
    pub const NOTIFICATIONS_PERMANENT_FAILURES: &str = "NotificationsPermanentFailures";
    /// Not attempted in an SQS batch because an earlier message of its FIFO group failed.
    pub(crate) const NOTIFICATIONS_DEFERRED: &str = "NotificationsDeferred";
    pub const LATENCY: &str = "Latency";
    /// The relay (transitions table stream → FIFO queue): transitions sent.
    pub(crate) const TRANSITIONS_RELAYED: &str = "TransitionsRelayed";
    /// Batches in which the relay stopped at a record it could not send (the stream retries).
    pub(crate) const RELAY_FAILURES: &str = "RelayFailures";
    /// Records held back for a retry after such a stop.
    pub(crate) const RELAY_HELD: &str = "RelayHeld";
}

/// When a source's failed answers put its feed at risk (ARCHITECTURE §8): Pancake suspends
/// a webhook when, within 30 minutes, more than 80 % of its requests fail and at least 300
/// do. The template's suspension-risk alarms (parameters `SuspensionRiskPercent` and
/// `SuspensionRiskMinFailures`, period 30 minutes) and the local console's overview use
/// these figures, well before Pancake's; tests hold the template to them.
pub mod suspension_risk {
    /// The window the share is taken over, in minutes.
    pub const WINDOW_MINUTES: u32 = 30;
    /// Share of non-2xx answers (percent) from which a source is at risk...
    pub const SHARE_PERCENT: u64 = 50;
    /// ...once at least this many answers of the window failed.
    pub const MIN_FAILURES: u64 = 100;

    /// Whether `failed` of `answered` answers in one window put the feed at risk.
    pub fn at_risk(answered: u64, failed: u64) -> bool {
        failed >= MIN_FAILURES && failed * 100 >= SHARE_PERCENT * answered
    }
}

/// Where metric lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSink {
    /// EMF lines on stdout (Lambda).
    Emf,
    /// Nothing (local mode and tests: the request log line carries the same facts).
    Off,
}

/// One batch of counters for one source, written as a single EMF line.
#[derive(Debug)]
pub(crate) struct MetricLine {
    service: &'static str,
    values: Vec<(&'static str, f64, &'static str)>,
    reason: Option<&'static str>,
}

impl MetricLine {
    pub fn new(service: &'static str) -> Self {
        MetricLine {
            service,
            values: Vec::new(),
            reason: None,
        }
    }

    pub fn count(mut self, name: &'static str, n: u64) -> Self {
        if n > 0 {
            self.values.push((name, n as f64, "Count"));
        }
        self
    }

    pub fn millis(mut self, name: &'static str, ms: f64) -> Self {
        self.values.push((name, ms, "Milliseconds"));
        self
    }

    /// A rejection reason, kept as a property (queryable in Logs Insights) not a dimension,
    /// so alarms on `Rejected` see one series per service.
    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub(crate) fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Service"]],
                    "Metrics": self.values.iter().map(|(n, _, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
                }]
            }),
        );
        root.insert("Service".into(), json!(self.service));
        if let Some(r) = self.reason {
            root.insert("Reason".into(), json!(r));
        }
        for (name, value, _) in &self.values {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root)
    }

    pub fn emit(self, sink: MetricsSink) {
        if sink == MetricsSink::Off || self.values.is_empty() {
            return;
        }
        let ts = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let line = self.to_json(ts).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_value() {
        let v = MetricLine::new("fulfilment")
            .count(names::RECEIVED, 1)
            .count(names::DUPLICATES, 0)
            .millis(names::LATENCY, 2.5)
            .reason("bad_credential")
            .to_json(1);
        let metrics = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(metrics.len(), 2, "zero counters are omitted");
        assert_eq!(v["Received"], 1.0);
        assert_eq!(v["Latency"], 2.5);
        assert_eq!(v["Service"], "fulfilment");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
    }

    #[test]
    fn suspension_risk_needs_both_the_share_and_the_count() {
        use suspension_risk::at_risk;
        assert!(at_risk(200, 100), "50 % of 200, 100 failures");
        assert!(!at_risk(201, 100), "just under half");
        assert!(!at_risk(150, 99), "two thirds, but 99 failures");
        assert!(at_risk(120, 120));
        assert!(!at_risk(0, 0));
    }
}
