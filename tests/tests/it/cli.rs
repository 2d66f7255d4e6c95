//! The `webhooks` binary as an operator runs it: its output on a store written by the real
//! pipeline, and its exit codes and messages for an unknown key, a bad filter and an
//! unreachable backend (one line on stderr, never a panic or an SDK dump).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use webhook_core::config::Env;
use webhook_core::runtime::sqlite_backends;
use webhook_core::store::IncomingEvent;
use webhook_tests::lambda::build_function;
use webhook_tests::samples::{as_unrecognised, order_event};

fn webhooks(args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = build_function("webhooks");
    let mut command = Command::new(bin);
    command
        .args(args)
        .env_remove("STORE")
        .env_remove("SQLITE_PATH");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running webhooks")
}

/// The two events of [`store_with_events`].
const STORED: [(&str, &str); 2] = [("d1", "PACKED"), ("d2", "SHIPPED")];

fn stored_event(i: usize) -> IncomingEvent {
    let (d, to) = STORED[i];
    order_event(d, 7, Some("NEW"), to, "2025-09-05T10:00:00Z")
}

/// The key of [`store_with_events`]' event `i` (the tenant and its body's hash).
fn stored_key(i: usize) -> String {
    stored_event(i).key().to_string()
}

/// A store with two events, written through the store as the gateway writes them.
async fn store_with_events(dir: &Path) -> PathBuf {
    let db = dir.join("webhooks.db");
    let (backends, _) = sqlite_backends(&db, &Env::default()).expect("store");
    for i in 0..STORED.len() {
        let e = stored_event(i);
        backends.store.persist(&e).await.expect("persist");
    }
    db
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn lists_explains_and_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_with_events(dir.path()).await;
    let db = db.to_str().unwrap();
    let list = webhooks(&["--db", db, "events"], &[("NO_COLOR", "1")]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(text.starts_with("RECEIVED"), "{text}");
    assert!(
        text.contains(&stored_key(1)) && text.contains(&stored_key(0)),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour off a terminal");

    let json = webhooks(&["--db", db, "events", "--json", "--limit", "1"], &[]);
    let lines: Vec<serde_json::Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "one event and the next cursor");
    assert!(lines[1]["next"].is_string());

    let event = webhooks(&["--db", db, "event", &stored_key(0)], &[]);
    assert!(event.status.success(), "{}", stderr(&event));
    let text = stdout(&event);
    assert!(
        text.contains("ORDER.CHANGE_STATUS") && text.contains("NEW -> PACKED"),
        "{text}"
    );
    let entity = webhooks(
        &["--db", db, "entity", "fulfilment", "XYZ", "order", "7"],
        &[],
    );
    assert!(stdout(&entity).contains("SHIPPED"), "{}", stderr(&entity));
}

#[tokio::test]
async fn unrecognised_events_are_listed_explained_and_reprocessed() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_with_events(dir.path()).await;
    let kept = as_unrecognised(order_event(
        "u1",
        8,
        Some("NEW"),
        "PACKED",
        "2025-09-05T11:00:00Z",
    ));
    let key = kept.key().to_string();
    {
        let (backends, _) = sqlite_backends(&db, &Env::default()).expect("store");
        backends.store.persist(&kept).await.expect("persist");
    }
    let db = db.to_str().unwrap();
    let list = webhooks(&["--db", db, "events", "--status", "unrecognised"], &[]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].contains(&key) && rows[0].contains("unrecognised"),
        "{text}"
    );
    let event = webhooks(&["--db", db, "event", &key], &[]);
    assert!(
        stdout(&event).contains("kept, not understood"),
        "{}",
        stdout(&event)
    );

    let again = webhooks(&["--db", db, "reprocess", "--status", "unrecognised"], &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let summary = stdout(&again);
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("newly projected") && l.split_whitespace().nth(2) == Some("1")),
        "{summary}"
    );
    let entity = webhooks(
        &["--db", db, "entity", "fulfilment", "XYZ", "order", "8"],
        &[],
    );
    assert!(stdout(&entity).contains("PACKED"), "{}", stderr(&entity));
    let left = webhooks(&["--db", db, "events", "--status", "unrecognised"], &[]);
    assert!(stdout(&left).contains("no events"), "{}", stdout(&left));
}

#[tokio::test]
async fn unknown_keys_and_bad_filters_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_with_events(dir.path()).await;
    let db = db.to_str().unwrap();
    for (args, says) in [
        (vec!["event", "fulfilment#nope"], "no event fulfilment#nope"),
        (vec!["event", "nonsense"], "not an event key"),
        (
            vec!["entity", "fulfilment", "XYZ", "order", "404"],
            "no entity",
        ),
        (
            vec!["entity", "fulfilment", "XYZ", "planet", "1"],
            "not an entity kind",
        ),
        (vec!["events", "--status", "lost"], "not a status"),
        (vec!["events", "--since", "yesterday"], "neither a duration"),
        (vec!["events", "--source", "paypal"], "not a source"),
        (vec!["events", "--cursor", "zzz"], "not a page cursor"),
        (vec!["replay", "--id", "tr_missing"], "no transition"),
    ] {
        let mut full = vec!["--db", db];
        full.extend(args.iter().copied());
        let out = webhooks(&full, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

#[tokio::test]
async fn an_unreachable_backend_is_one_line_naming_it() {
    let missing = webhooks(&["--db", "/nonexistent/dir/webhooks.db", "events"], &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("/nonexistent/dir/webhooks.db"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(stderr(&missing).lines().count(), 1, "{}", stderr(&missing));

    let aws = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("EVENTS_TABLE", "e"),
        ("ENTITIES_TABLE", "n"),
        ("TRANSITIONS_TABLE", "t"),
        ("TRANSITIONS_QUEUE_URL", "http://127.0.0.1:9/q.fifo"),
        ("TRANSITIONS_DLQ_URL", "http://127.0.0.1:9/d.fifo"),
    ];
    let down = webhooks(&["--store", "dynamodb", "events"], &aws);
    assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
    let said = stderr(&down);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("http://127.0.0.1:9"), "{said}");
    assert!(!said.contains("panicked") && said.len() < 600, "{said}");

    let unset = webhooks(&["--store", "dynamodb", "events"], &aws[..4]);
    assert_eq!(unset.status.code(), Some(2), "{}", stderr(&unset));
    assert!(
        stderr(&unset).contains("EVENTS_TABLE"),
        "{}",
        stderr(&unset)
    );
}

/// `webhooks credentials`: a generated key is printed once, alone on stdout, and works at
/// ingest for its tenant only; nothing lists a value; the rules of the table are usage
/// errors (exit 2).
#[tokio::test]
async fn credentials_are_shown_once_and_bind_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_with_events(dir.path()).await;
    let db = db.to_str().unwrap();
    let add = webhooks(
        &["--db", db, "credentials", "add", "pancake-pos", "987654321"],
        &[],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let key = stdout(&add).trim().to_string();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key:?}"
    );
    assert!(stderr(&add).contains("shown once"), "{}", stderr(&add));
    let secret = "a-secret-the-platform-issued";
    a_given_secret_prints_only_its_id(db, secret);
    no_value_is_listed(db, &key, secret);
    the_key_admits_only_its_shop(db, &key).await;
    the_table_s_rules_are_usage_errors(db);
}

/// `credentials add --stdin`: the secret the platform issued is read from stdin, and only
/// the new credential's id is printed.
fn a_given_secret_prints_only_its_id(db: &str, secret: &str) {
    use std::io::Write;
    let mut given = Command::new(build_function("webhooks"))
        .args([
            "--db",
            db,
            "credentials",
            "add",
            "fulfilment",
            "M1",
            "--stdin",
            "--expires",
            "30d",
        ])
        .env_remove("STORE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    given
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let given = given.wait_with_output().unwrap();
    assert!(given.status.success(), "{}", stderr(&given));
    assert!(
        stdout(&given).trim().starts_with("cred_"),
        "only the id: {}",
        stdout(&given)
    );
}

fn no_value_is_listed(db: &str, key: &str, secret: &str) {
    for args in [
        vec!["credentials", "list"],
        vec!["credentials", "list", "--json"],
    ] {
        let list = webhooks(&[&["--db", db][..], &args[..]].concat(), &[]);
        let text = stdout(&list);
        assert!(
            text.contains("987654321") && text.contains("active"),
            "{text}"
        );
        assert!(
            !text.contains(key) && !text.contains(secret),
            "no value is listed: {text}"
        );
    }
}

/// The key the CLI printed admits its shop's events at ingest, and no other shop's.
async fn the_key_admits_only_its_shop(db: &str, key: &str) {
    use webhook_core::config::Mode;
    let (backends, _) = sqlite_backends(Path::new(db), &Env::default()).unwrap();
    let clock = std::sync::Arc::new(webhook_core::clock::SystemClock);
    let pipeline = webhook_core::runtime::pipeline(&Env::default(), &backends, clock).unwrap();
    let env = Env::from_pairs([("CREDENTIALS_TABLE", "credentials")]);
    let pos = webhook_core::sources::provider_from_env(
        webhook_core::model::Source::PancakePos,
        &env,
        Mode::Lambda,
    )
    .unwrap();
    let order = |shop: &str| {
        let body = format!(
            r#"{{"payload":{{"eventType":"order_created","shopId":"{shop}","data":{{"id":1,"status":0}}}}}}"#
        );
        webhook_core::http::RawRequest::post("/api/v1/pancake-pos/webhook", body.as_str())
            .with_header("X-Webhook-Secret", key)
    };
    pipeline
        .ingest(pos.as_ref(), &order("987654321"))
        .await
        .expect("its own shop");
    let other = pipeline
        .ingest(pos.as_ref(), &order("123"))
        .await
        .unwrap_err();
    assert_eq!(other.status(), 403);
}

/// Two active credentials per tenant at most; a revoke names a credential id or `--all`.
fn the_table_s_rules_are_usage_errors(db: &str) {
    let second = webhooks(
        &["--db", db, "credentials", "add", "pancake-pos", "987654321"],
        &[],
    );
    assert!(second.status.success(), "two may be active");
    let third = webhooks(
        &["--db", db, "credentials", "add", "pancake-pos", "987654321"],
        &[],
    );
    assert_eq!(third.status.code(), Some(2));
    assert!(
        stderr(&third).contains("already has 2 active"),
        "{}",
        stderr(&third)
    );
    let bad_id = webhooks(
        &[
            "--db",
            db,
            "credentials",
            "revoke",
            "pancake-pos",
            "987654321",
            "key-1",
        ],
        &[],
    );
    assert_eq!(bad_id.status.code(), Some(2));
    assert!(
        stderr(&bad_id).contains("not a credential id"),
        "{}",
        stderr(&bad_id)
    );
    let revoke = webhooks(
        &[
            "--db",
            db,
            "credentials",
            "revoke",
            "pancake-pos",
            "987654321",
            "--all",
        ],
        &[],
    );
    assert!(revoke.status.success(), "{}", stderr(&revoke));
    assert_eq!(stdout(&revoke).lines().count(), 2, "{}", stdout(&revoke));
    let list = webhooks(
        &["--db", db, "credentials", "list", "--source", "pancake-pos"],
        &[],
    );
    assert_eq!(
        stdout(&list).matches("revoked").count(),
        2,
        "{}",
        stdout(&list)
    );
}

#[tokio::test]
async fn console_serves_the_store_on_loopback_and_refuses_beyond_it_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_with_events(dir.path()).await;
    let db = db.to_str().unwrap();
    let refused = webhooks(
        &["--db", db, "console", "--listen", "0.0.0.0:0"],
        &[("CONSOLE_TOKEN", "")],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("set CONSOLE_TOKEN"), "{message}");
    assert!(message.contains("--listen 127.0.0.1"), "{message}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(build_function("webhooks"))
        .args(["--db", db, "console", "--listen", &listen])
        .env_remove("CONSOLE_TOKEN")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("webhooks console");
    let url = format!("http://{listen}/console/events");
    let mut page = None;
    for _ in 0..200 {
        if let Ok(resp) = reqwest::get(&url).await {
            page = Some((resp.status().as_u16(), resp.text().await.unwrap()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (status, page) = page.expect("webhooks console answered");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&stored_key(0)) && page.contains(&stored_key(1)),
        "{page}"
    );
}

/// `webhooks purge` as an operator runs it: the value read from stdin, a dry run that keeps
/// everything, then the purge, logged on stderr without the value; afterwards `event` finds
/// nothing (exit 2) and a value too short to be safe is a usage error.
#[tokio::test]
async fn purge_reads_the_value_from_stdin_and_never_logs_it() {
    use std::io::Write;
    let phone = "0901234567";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("webhooks.db");
    {
        let (backends, _) = sqlite_backends(&db, &Env::default()).expect("store");
        let body = serde_json::json!({"event": "ORDER.CHANGE_STATUS", "payload": {
            "merchant_code": "XYZ", "from_status": "NEW", "to_status": "PACKED",
            "order": {"id": 9, "updated_at": "2025-09-05T10:00:00Z", "customer": {"phone": phone}}}});
        let e = webhook_tests::samples::under_delivery_id(webhook_tests::samples::incoming(
            &webhook_tests::samples::signed(&body.to_string(), "p1"),
        ));
        backends.store.persist(&e).await.expect("persist");
    }
    let db = db.to_str().unwrap();
    let purge = |extra: &[&str]| {
        let mut args = vec!["--db", db, "--json", "purge", "--match", "-"];
        args.extend_from_slice(extra);
        let mut child = Command::new(build_function("webhooks"))
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running webhooks");
        writeln!(child.stdin.take().unwrap(), "{phone}").unwrap();
        child.wait_with_output().unwrap()
    };
    let summary = |o: &Output| -> serde_json::Value {
        stdout(o)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
            .find(|v| v.get("dryRun").is_some())
            .expect("a summary line")
    };

    let dry = purge(&["--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(summary(&dry)["events"], 1, "{}", stdout(&dry));
    assert!(webhooks(&["--db", db, "event", "fulfilment#p1"], &[])
        .status
        .success());

    let done = purge(&[]);
    assert!(done.status.success(), "{}", stderr(&done));
    let s = summary(&done);
    assert_eq!(
        (s["events"].as_u64(), s["entities"].as_u64()),
        (Some(1), Some(1))
    );
    let log = stderr(&done);
    assert!(
        log.contains("purge") && log.contains("10 characters"),
        "{log}"
    );
    assert!(
        !log.contains(phone) && !stdout(&done).contains(phone),
        "{log}"
    );
    assert!(stdout(&done).contains("stillHeldBy"), "{}", stdout(&done));

    let gone = webhooks(&["--db", db, "event", "fulfilment#p1"], &[]);
    assert_eq!(gone.status.code(), Some(2), "{}", stdout(&gone));
    let short = webhooks(&["--db", db, "purge", "--match", "090"], &[]);
    assert_eq!(short.status.code(), Some(2));
    assert!(
        stderr(&short).contains("at least 4 characters"),
        "{}",
        stderr(&short)
    );
}

#[tokio::test]
async fn stored_control_characters_are_shown_escaped_never_sent_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("webhooks.db");
    let (backends, _) = sqlite_backends(&db, &Env::default()).expect("store");
    let mut e = order_event("d1", 7, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    let mut event = (*e.event).clone();
    // Clear the screen, retitle the window, write the clipboard (OSC 52), reorder text.
    let tenant = "shop\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;cGF5bG9hZA==\u{7}\u{9b}31m\u{202e}";
    event.tenant = webhook_core::model::Tenant::new(tenant);
    e.event = event.into();
    backends.store.persist(&e).await.expect("persist");
    let key = e.key().to_string();
    let db = db.to_str().unwrap();
    for args in [
        vec!["--db", db, "events"],
        vec!["--db", db, "event", &key],
        vec!["--db", db, "--json", "events"],
    ] {
        let out = webhooks(&args, &[]);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let shown = stdout(&out);
        for c in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
            assert!(!shown.contains(c), "{args:?} printed {c:?}: {shown:?}");
        }
        assert!(shown.contains("shop\\u001b[2J"), "{args:?}: {shown}");
    }
    let json = webhooks(&["--db", db, "--json", "events"], &[]);
    let line: serde_json::Value = serde_json::from_str(stdout(&json).lines().next().unwrap())
        .expect("--json lines stay JSON");
    assert_eq!(line["tenant"], tenant, "{line}");
}
