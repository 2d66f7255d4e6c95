//! No personal data in logs (issue 21, ARCHITECTURE §8): every provider fixture under
//! `shared/fixtures/` (every folder below it, `documented/` included) is posted to the local
//! server (`webhooks-local`'s app over HTTP, development credentials) and its transitions go
//! through the notifier as the template configures it (no `NOTIFY_URL`: the log target);
//! none of the fixtures' names, phones, e-mails or addresses may appear in any captured log
//! line. The values looked for are read from the fixtures themselves, by field name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use webhook_core::clock::FixedClock;
use webhook_core::config::Env;
use webhook_core::http::route_for;
use webhook_core::model::Source;
use webhook_core::notify::worker::{drain_once, WorkerSettings};
use webhook_core::notify::{Notifier, Target};
use webhook_core::runtime;
use webhook_tests::events::{dev_credentialed, repo_root, serve_in_background};
use webhook_tests::logs;

/// The samples' own time (2025-09-05T10:45:00Z).
const NOW: i64 = 1_757_069_100;
/// Shorter values (a one-letter name, "Hà") would match unrelated log text.
const SHORTEST: usize = 5;

/// Every fixture file below `dir`, recursively, with the source its top folder names.
fn fixtures(dir: &Path, source: Source, out: &mut Vec<(Source, PathBuf)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            fixtures(&path, source, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push((source, path));
        }
    }
}

fn every_fixture() -> Vec<(Source, PathBuf)> {
    let root = repo_root().join("shared/fixtures");
    let mut out = Vec::new();
    for source in Source::ALL {
        fixtures(&root.join(source.as_str()), source, &mut out);
    }
    out
}

/// Whether a field of this name holds personal data: a person's or place's name, a phone,
/// an e-mail, an address. A status's name (`status_name`: "canceled") is not: it is the
/// `to` state every transition line may log, and other tests log it in the same process.
fn is_personal(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    if f.starts_with("status") {
        return false;
    }
    [
        "name", "phone", "tel", "mobile", "email", "mail", "address", "addr", "street", "ward",
    ]
    .iter()
    .any(|p| f.contains(p))
}

/// An id (`user_id`, `district_id`) names a record, not a person: it is left out even inside
/// an address or a customer. A district's id under a shipping address ("22109") matched a
/// number in another test's log line (they share this process's capture) and failed CI.
fn is_id(field: &str) -> bool {
    field.to_ascii_lowercase().ends_with("id")
}

/// The personal values of a fixture: every string (or number, for phones) of at least
/// [`SHORTEST`] characters under a personal field, at any depth, ids excepted.
fn personal_values(v: &Value, under_personal: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let personal = !is_id(k) && (under_personal || is_personal(k));
                personal_values(child, personal, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| personal_values(i, under_personal, out)),
        Value::String(s) if under_personal && s.trim().chars().count() >= SHORTEST => {
            out.push(s.trim().to_string())
        }
        Value::Number(n) if under_personal && n.to_string().len() >= SHORTEST => {
            out.push(n.to_string())
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fixture_name_phone_email_or_address_reaches_the_logs() {
    let logs = logs::captured();
    let dir = tempfile::tempdir().expect("temp dir");
    // the template's configuration of the notifier: no NOTIFY_URL
    let env = Env::default();
    let (backends, sqlite) =
        runtime::sqlite_backends(&dir.path().join("webhooks.db"), &env).expect("sqlite");
    let handlers =
        webhooks_local::handlers(&env, &backends, Arc::new(webhook_core::refusals::NoRecord))
            .expect("handlers");
    let base = serve_in_background(webhooks_local::app(handlers, 262_144)).await;
    let http = reqwest::Client::new();

    let mut personal = Vec::new();
    let fixtures = every_fixture();
    assert!(fixtures.len() >= 30, "fixtures found: {}", fixtures.len());
    for (source, path) in &fixtures {
        let body = std::fs::read(path).expect("fixture");
        let json: Value = serde_json::from_slice(&body).expect("a JSON fixture");
        personal_values(&json, false, &mut personal);
        let req = dev_credentialed(*source, &body, Some("pii-delivery"));
        let mut post = http.post(format!("{base}{}", route_for(*source)));
        for (name, value) in &req.headers {
            post = post.header(name, value);
        }
        let resp = post.body(body).send().await.expect("posted");
        let status = resp.status().as_u16();
        assert!(status < 500, "{}: {status}", path.display());
    }
    personal.sort();
    personal.dedup();
    assert!(
        personal.len() >= 10,
        "the fixtures' personal values were found: {personal:?}"
    );

    let target = Target::from_env(&env).expect("the log target");
    assert!(matches!(target, Target::Log), "{target:?}");
    let notifier = Notifier::new(
        target,
        backends.store.clone(),
        Arc::new(FixedClock::at_unix(NOW)),
    );
    let settings = WorkerSettings {
        visibility: Duration::from_secs(60),
        ..WorkerSettings::default()
    };
    let mut notified = 0;
    while let n @ 1.. = drain_once(&sqlite.outbox(), &notifier, &settings).await {
        notified += n;
    }
    assert!(notified >= 5, "transitions notified: {notified}");

    let captured = logs.text();
    let logged = captured
        .lines()
        .filter(|l| l.contains("notification (no NOTIFY_URL configured)"))
        .count();
    assert!(
        logged >= notified,
        "{logged} notification lines for {notified}"
    );
    let leaked: Vec<&String> = personal
        .iter()
        .filter(|v| captured.contains(v.as_str()) || captured.contains(&escaped(v)))
        .collect();
    assert!(leaked.is_empty(), "personal data in the logs: {leaked:?}");
}

/// `value` as a JSON string escapes it (a logged JSON body would carry it so).
fn escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).expect("a string");
    quoted[1..quoted.len() - 1].to_string()
}

/// The development switch: with `NOTIFY_LOG_BODIES=true` (and no `NOTIFY_URL`) the
/// notifier logs transitions whole; without it, or with a URL, it does not.
#[test]
fn the_full_body_switch_is_explicit() {
    let whole = Env::from_pairs([("NOTIFY_LOG_BODIES", "true")]);
    assert!(matches!(
        Target::from_env(&whole).unwrap(),
        Target::LogWhole
    ));
    for off in ["false", "yes please", ""] {
        let env = Env::from_pairs([("NOTIFY_LOG_BODIES", off)]);
        assert!(
            matches!(Target::from_env(&env).unwrap(), Target::Log),
            "{off:?}"
        );
    }
    let with_url = Env::from_pairs([
        ("NOTIFY_LOG_BODIES", "true"),
        ("NOTIFY_URL", "http://127.0.0.1:9/hooks"),
        (
            "NOTIFY_SECRET",
            "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=",
        ),
    ]);
    assert!(matches!(
        Target::from_env(&with_url).unwrap(),
        Target::Http { .. }
    ));
}
