//! template.yaml against the code: what `cfn-lint` and `sam validate --lint` cannot know
//! (issue 6, ARCHITECTURE §2, §5, §6, §8).
//!
//! - every route of `webhook_core::http::ROUTES` is a POST `HttpApi` event of exactly one
//!   function, and that function's binary serves the route's source;
//! - every Lambda binary under `functions/` (all but `webhooks-local`) is exactly one
//!   function built by `rust-cargolambda` from that binary, logging (JSON) to a log group
//!   with a retention;
//! - every environment variable a function sets is one of the registry
//!   (`webhook_core::config::vars`) that its binary reads, and every variable its binary
//!   reads is set unless the registry says it may be omitted; `ALLOW_UNVERIFIED` is never
//!   set, and a secret only comes from a `NoEcho` parameter with no default;
//! - every table and queue a function's environment names is in its policies, every
//!   DynamoDB/SQS operation its backends call (`webhook_core::runtime::*_AWS_ACTIONS`) is
//!   allowed and nothing more, those lists cover the SDK calls of the AWS adapters, and
//!   nothing uses `*`;
//! - the transitions queue is FIFO, redrives to a FIFO dead-letter queue, and is consumed by
//!   the notifier with `ReportBatchItemFailures` under a long enough visibility timeout;
//! - every metric the alarms watch in the `WebhookIngest` namespace is a name the code
//!   emits, for a `Service` the code emits it for, and the alarms of ARCHITECTURE §8 exist;
//! - per source an `Unrecognised` alarm and a suspension-risk alarm (the rule of
//!   `metrics::suspension_risk`), and a saved Logs Insights query listing the refusals of
//!   every ingest function, shown on the dashboard (`template/refusals.rs`);
//! - every `_ARN` credential reference a function sets is a secret it may read, and the only
//!   secrets it may read (`template/secrets.rs`).
//!
//! Every check returns its problems as text. The files are by concern: `load` reads the
//! template (long-form intrinsics, conditions switched on), `code` scans what the workspace
//! declares; `routes`, `env`, `iam`, `storage` (tables, queue, relay), `alarms`, `dashboard`,
//! `refusals` and `secrets` hold the checks, each beside the tests that break a copy of the real
//! template (or of what the code declares) and assert the check notices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use webhook_core::config::vars::{self, Binary, InTemplate};
use webhook_core::http::ROUTES;
use webhook_core::metrics::NAMESPACE;
use webhook_core::{runtime, Source};

mod alarms;
mod code;
mod dashboard;
mod env;
mod iam;
pub(crate) mod load;
mod refusals;
mod routes;
mod secrets;
mod storage;

use alarms::*;
use code::*;
use dashboard::*;
use env::*;
use iam::*;
use load::*;
use routes::*;
use storage::*;

type Check = fn(&Template, &Code) -> Vec<String>;

const CHECKS: [(&str, Check); 17] = [
    ("expiry", check_expiry),
    ("routes", check_routes),
    ("binaries", check_binaries),
    ("mains", check_mains),
    ("environment", check_env),
    ("policies", check_policies),
    ("sdk calls", check_sdk_calls),
    ("queue", check_queue),
    ("relay", check_relay),
    ("metrics", check_metrics),
    ("alerting", check_alerting),
    ("dashboard", check_dashboard),
    ("silence", check_silence),
    ("unrecognised", refusals::check_unrecognised),
    ("suspension risk", refusals::check_suspension_risk),
    ("refusals query", refusals::check_refusals_query),
    ("secret references", secrets::check_secret_references),
];

fn all_problems(t: &Template, code: &Code) -> Vec<String> {
    CHECKS
        .iter()
        .flat_map(|(name, check)| {
            check(t, code)
                .into_iter()
                .map(move |p| format!("[{name}] {p}"))
        })
        .collect()
}

fn code() -> &'static Code {
    static CODE: std::sync::OnceLock<Code> = std::sync::OnceLock::new();
    CODE.get_or_init(|| scan_code(&workspace_root()))
}

#[test]
fn template_matches_the_code() {
    let (_, t) = Template::load();
    let code = code();
    let problems = all_problems(&t, code);
    assert!(
        problems.is_empty(),
        "template.yaml disagrees with the code:\n  {}\n\nwhat the code declares, per binary:\n{}",
        problems.join("\n  "),
        code.binaries
            .values()
            .map(|b| format!(
                "  {} ({:?}): env {:?}, aws {:?}",
                b.name(),
                b.source,
                vars::ALL
                    .iter()
                    .filter(|v| v.binaries.contains(b.binary))
                    .map(|v| v.name)
                    .collect::<Vec<_>>(),
                b.aws_actions
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_workspace_s_binaries_are_the_registry_s() {
    // What the checks compare must be there, or every other check is vacuous.
    let code = code();
    let lambda_bins: Vec<&str> = code.binaries.keys().map(String::as_str).collect();
    let registry: BTreeSet<&str> = Binary::ALL
        .iter()
        .filter(|b| b.is_lambda())
        .map(|b| b.name())
        .collect();
    assert_eq!(lambda_bins.into_iter().collect::<BTreeSet<_>>(), registry);
    let fulfilment = &code.binaries["fulfilment"];
    assert_eq!(fulfilment.source.as_deref(), Some("Fulfilment"));
    assert_eq!(
        fulfilment.aws_actions,
        runtime::INGEST_AWS_ACTIONS.map(String::from).into()
    );
    let notifier = &code.binaries["notifier"];
    assert_eq!(notifier.source, None);
    assert_eq!(
        notifier.aws_actions,
        runtime::NOTIFIER_AWS_ACTIONS.map(String::from).into()
    );
    for action in [
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:CreateTable",
        "sqs:SendMessage",
    ] {
        assert!(
            code.adapter_actions.contains(action),
            "{action}: {:?}",
            code.adapter_actions
        );
    }
    assert!(
        code.metric_names
            .get("VERIFICATION_FAILED")
            .map(String::as_str)
            == Some(webhook_core::metrics::names::VERIFICATION_FAILED),
        "{:?}",
        code.metric_names
    );
    for name in [
        "VerificationFailed",
        "NotificationsFailed",
        "NotificationsPermanentFailures",
    ] {
        assert!(
            code.emitted_metrics.contains(name),
            "{name} not emitted: {:?}",
            code.emitted_metrics
        );
    }
    assert!(code.services.contains("notifier"), "{:?}", code.services);
}

fn broken(edit: impl FnOnce(&mut Value)) -> Template {
    let (_, t) = Template::load();
    let mut doc = t.doc;
    edit(&mut doc);
    Template { doc }
}

fn function_name_of(doc: &Value, binary: &str) -> String {
    doc["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| panic!("no function for {binary}"))
}

fn assert_notices(check: Check, t: &Template, needle: &str) {
    let problems = check(t, code());
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {problems:#?}"
    );
}
