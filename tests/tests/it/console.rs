//! The web console (crate `webhook-console`) over HTTP: its pages and actions on both
//! backends, and on the SQLite site of webhooks-local its bad-input pages, `/healthz`,
//! and its access rules (loopback Host names, CONSOLE_TOKEN by bearer or login cookie,
//! CSRF on every form). The browser suite (tests/browser) drives the same pages in Chromium.

use std::sync::Arc;

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use webhook_console::{Access, ConsoleSettings, Served};
use webhook_core::config::{vars, Env};
use webhook_core::model::Source;
use webhook_core::ops::Operator;
use webhook_core::runtime;
use webhook_core::store::TransitionSelector;
use webhook_tests::events::{dev_credentialed, serve_in_background};
use webhook_tests::kit::Kit;
use webhook_tests::samples::{as_unrecognised, invoice_event, invoice_key, order_event};

webhook_tests::on_every_backend!(
    pages_explain_an_event_and_its_entity,
    replay_and_redrive_from_the_pages,
);

const LOOPBACK: &str = "127.0.0.1:0";
const TOKEN: &str = "console-test-token-0f3c-of-32-chars";

fn open_access() -> Access {
    ConsoleSettings::default()
        .access(LOOPBACK.parse().unwrap(), "or else")
        .expect("loopback needs no token")
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn console(op: Operator, access: Access) -> String {
    serve_in_background(webhook_console::router(op, access, None)).await
}

async fn get(base: &str, path: &str) -> (StatusCode, String) {
    let resp = client().get(format!("{base}{path}")).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The value of the first `name="csrf"` field of a page.
fn csrf(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF field")
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn pages_explain_an_event_and_its_entity(kit: &Kit) {
    let first = invoice_event("c-1", "in_console", "Ready", "Pending", 1_757_000_000);
    let second = invoice_event("c-2", "in_console", "Pending", "Complete", 1_757_000_060);
    let flagged = invoice_event("c-3", "in_console", "Complete", "Fail", 1_757_000_120);
    for e in [&first, &second, &flagged] {
        kit.store.persist(e).await.expect("persist");
    }
    let base = console(kit.operator().await, open_access()).await;

    let (status, list) = get(&base, "/console/events?source=invoice").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    for id in ["c-1", "c-2", "c-3"] {
        assert!(
            list.contains(&format!(r#"data-key="invoice#{id}""#)),
            "{list}"
        );
    }
    let (status, rows) = get(&base, "/console/events/rows?status=flagged").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        rows.contains("invoice#c-3") && !rows.contains("invoice#c-1"),
        "{rows}"
    );

    let (status, page) = get(&base, &format!("/console/event?key={}", enc("invoice#c-2"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("&quot;previousState&quot;: &quot;Pending&quot;"),
        "raw body pretty-printed: {page}"
    );
    assert!(page.contains("Pending → Complete"), "{page}");
    assert!(
        page.contains("every entity it names was written"),
        "the status' reason"
    );

    let key = invoice_key("in_console");
    let entity = format!(
        "/console/entity?source=invoice&tenant={}&kind=invoice&id=in_console",
        enc(key.tenant.as_str())
    );
    let (status, page) = get(&base, &entity).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let svg = &page[page.find("<svg").expect("a timeline")..page.find("</svg>").unwrap()];
    let states: Vec<&str> = svg
        .split(r#"text-anchor="middle" font-size="13">"#)
        .skip(1)
        .map(|s| s.split('<').next().unwrap())
        .collect();
    assert_eq!(states, ["Ready", "Pending", "Complete", "Fail"]);
    assert!(svg.contains("flagged: not_allowed, not applied"), "{svg}");

    // A declared change that arrives after a newer state is drawn late.
    let newer = invoice_event("l-2", "in_late", "Wait", "Pending", 1_757_000_200);
    let older = invoice_event("l-1", "in_late", "Ready", "Wait", 1_757_000_100);
    for e in [&newer, &older] {
        kit.store.persist(e).await.expect("persist");
    }
    let (status, page) = get(&base, &entity.replace("in_console", "in_late")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"<g class="state late">"#), "{page}");
    assert!(page.contains("late: after a newer state"), "{page}");

    // An event kept as not understood: the status filter and the overview's column.
    let kept = as_unrecognised(order_event(
        "u-1",
        7,
        Some("NEW"),
        "PACKED",
        "2025-09-05T10:00:00Z",
    ));
    kit.store.persist(&kept).await.expect("persist");
    let (status, rows) = get(&base, "/console/events/rows?status=unrecognised").await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert!(
        rows.contains(kept.key().as_str()) && !rows.contains("invoice#"),
        "{rows}"
    );
    let (_, list) = get(&base, "/console/events").await;
    assert!(
        list.contains(r#"<option value="unrecognised">"#),
        "the filter offers it: {list}"
    );

    let (status, overview) = get(&base, "/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        overview.contains(r#"href="/console/events?source=invoice&amp;status=flagged">1<"#),
        "{overview}"
    );
    assert!(
        overview.contains(r#"href="/console/events?source=fulfilment&amp;status=unrecognised">1<"#),
        "{overview}"
    );
    assert!(
        !overview.contains("Failed answers"),
        "a console that answers no webhooks has no answers to judge: {overview}"
    );
}

async fn replay_and_redrive_from_the_pages(kit: &Kit) {
    let e = invoice_event("r-1", "in_replay", "Ready", "Pending", 1_757_000_000);
    let outcome = kit.store.persist(&e).await.expect("persist");
    let message = outcome.to_publish[0].message.clone();
    let op = kit.operator().await;
    let base = console(op.clone(), open_access()).await;
    let back = format!("/console/event?key={}", enc("invoice#r-1"));
    let (_, page) = get(&base, &back).await;
    let token = csrf(&page);

    let replay = |csrf: String| {
        let transition = message.transition_id.clone();
        let back = back.clone();
        let base = base.clone();
        async move {
            client()
                .post(format!("{base}/console/replay"))
                .form(&[
                    ("id", transition.as_str()),
                    ("csrf", csrf.as_str()),
                    ("back", back.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let refused = replay("not-the-token".into()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let done = replay(token.clone()).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let to = done.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&back) && to.ends_with("replayed=requeued"),
        "{to}"
    );
    let (_, page) = get(&base, &to).await;
    assert!(page.contains("queued again"), "{page}");

    kit.dead_letter(&message).await;
    let (status, dlq) = get(&base, "/console/dlq").await;
    assert_eq!(status, StatusCode::OK);
    assert!(dlq.contains(&message.transition_id), "{dlq}");
    let redriven = client()
        .post(format!("{base}/console/redrive"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(redriven.status(), StatusCode::SEE_OTHER);
    assert_eq!(redriven.headers()["location"], "/console/dlq?redriven=1");
    assert!(op.dead_letters(10).await.unwrap().is_empty());
    let selected = op
        .replayable(&TransitionSelector::Id(message.transition_id.clone()))
        .await
        .unwrap();
    assert_eq!(selected.len(), 1, "the transition is still there to replay");
}

/// webhooks-local's whole site over a fresh SQLite file, with the console under `access`.
async fn local_site(access: Option<Access>) -> (String, tempfile::TempDir) {
    local_site_with(access, &Env::default()).await
}

async fn local_site_with(access: Option<Access>, env: &Env) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (backends, sqlite) = runtime::sqlite_backends(&dir.path().join("w.db"), env).unwrap();
    let served = Served::default();
    let handlers = webhooks_local::handlers(env, &backends, served.refusals.clone()).unwrap();
    let console = access.map(|access| webhooks_local::ConsoleParts {
        operator: runtime::sqlite_operator_over(&sqlite),
        access,
    });
    let app = webhooks_local::site(handlers, 262_144, backends.store.clone(), served, console);
    (serve_limited(app).await, dir)
}

/// `app` on the binaries' own server (limits, peer addresses), in the background.
async fn serve_limited(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind(LOOPBACK).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(webhook_console::server::serve(
        listener,
        app,
        webhook_console::server::Limits::default(),
        std::future::pending(),
    ));
    base
}

async fn post(base: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> StatusCode {
    let mut post = client().post(format!("{base}{path}")).body(body.to_vec());
    for (k, v) in headers {
        post = post.header(*k, *v);
    }
    post.send().await.unwrap().status()
}

/// The rows of the refusals page's table.
fn refusal_rows(page: &str) -> Vec<&str> {
    page.split("<tr data-source=").skip(1).collect()
}

#[tokio::test]
async fn recent_refusals_are_listed_without_credentials_or_bodies() {
    let env = Env::from_pairs([(
        vars::ABAHA_TOKENS_BY_TENANT.name,
        r#"{"s1":["tenant-s1-token-7731"]}"#,
    )]);
    let (base, _dir) = local_site_with(Some(open_access()), &env).await;
    let (_, empty) = get(&base, "/console/refusals").await;
    assert!(empty.contains("No request has been refused"), "{empty}");

    let abaha = "/api/v1/abaha/webhook";
    let wrong = [("X-Abaha-Token", "wrong-token-5512")];
    let secret_body = br#"{"store_id":"s1","tel":"0901234567","note":"body-marker-9f"}"#;
    assert_eq!(post(&base, abaha, &wrong, secret_body).await, 401);
    let bound = [("X-Abaha-Token", "tenant-s1-token-7731")];
    let other_shop = br#"{"store_id":"s2","cart_code":"C1","status":"NEW"}"#;
    assert_eq!(post(&base, abaha, &bound, other_shop).await, 403);
    assert_eq!(post(&base, abaha, &bound, b"[1, 2]").await, 400);
    assert_eq!(post(&base, abaha, &bound, &vec![b' '; 262_145]).await, 413);
    let ok = br#"{"store_id":"s1","cart_code":"C1","status":"NEW"}"#;
    assert_eq!(post(&base, abaha, &bound, ok).await, 200);

    let (status, page) = get(&base, "/console/refusals").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let rows = refusal_rows(&page);
    assert_eq!(rows.len(), 4, "the accepted one is no refusal: {page}");
    let expect = [
        ("413", "too_large", "VAL_004", "262145", "-"),
        ("400", "malformed_json", "VAL_002", "6", "-"),
        (
            "403",
            "tenant_not_bound",
            "AUTH_004",
            &other_shop.len().to_string(),
            "s2",
        ),
        (
            "401",
            "bad_credential",
            "AUTH_002",
            &secret_body.len().to_string(),
            "-",
        ),
    ];
    for (row, (status, reason, code, size, tenant)) in rows.iter().zip(expect) {
        for want in [status, reason, code, size] {
            assert!(row.contains(&format!(">{want}<")), "{want} in {row}");
        }
        assert!(
            row.contains(&format!("<td>{tenant}</td>")),
            "tenant {tenant} in {row}"
        );
        assert!(row.starts_with(r#""abaha""#), "{row}");
    }
    for never in [
        "wrong-token-5512",
        "tenant-s1-token-7731",
        "body-marker-9f",
        "0901234567",
    ] {
        assert!(!page.contains(never), "{never} must not be shown: {page}");
    }
    assert!(
        page.contains("4 refused since this process started"),
        "{page}"
    );
}

#[tokio::test]
async fn the_overview_shows_each_source_s_share_of_failed_answers() {
    let (base, _dir) = local_site(Some(open_access())).await;
    let pancake = "/api/v1/pancake/webhook";
    for _ in 0..100 {
        assert_eq!(post(&base, pancake, &[], b"{}").await, 401);
    }
    post_abaha(
        &base,
        br#"{"store_id":"s1","cart_code":"C1","status":"NEW"}"#,
    )
    .await;
    assert_eq!(post(&base, "/api/v1/abaha/webhook", &[], b"{}").await, 401);
    let (_, overview) = get(&base, "/console").await;
    let table = &overview[overview
        .find("Failed answers, last 30 minutes")
        .expect("the table")..];
    let row = |source: &str| {
        let at = table
            .find(&format!(r#"<tr data-source="{source}""#))
            .unwrap();
        table[at..at + table[at..].find("</tr>").unwrap()].to_string()
    };
    let pancake = row("pancake");
    assert!(
        pancake.contains(r#"class="at-risk""#) && pancake.contains(">100 %<"),
        "100 failures of 100: {pancake}"
    );
    assert!(pancake.contains("suspension risk"), "{pancake}");
    let abaha = row("abaha");
    assert!(
        abaha.contains(">2<") && abaha.contains(">50 %<") && !abaha.contains("at-risk"),
        "half of 2 is under the 100 failures: {abaha}"
    );
}

/// Posts `body` to the Abaha route with the development token; it must be accepted.
async fn post_abaha(base: &str, body: &[u8]) {
    let req = dev_credentialed(Source::Abaha, body, None);
    let mut post = client()
        .post(format!("{base}/api/v1/abaha/webhook"))
        .body(req.body.clone());
    for (k, v) in &req.headers {
        post = post.header(k, v);
    }
    assert_eq!(post.send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_input_on_console_routes_is_a_clear_4xx_page() {
    let (base, _dir) = local_site(Some(open_access())).await;
    let cases: [(&str, u16, &str); 14] = [
        (
            "/console/events?limit=99999999999999999999999",
            400,
            "is not a page size from 1 to 1000",
        ),
        ("/console/events?limit=0", 400, "is not a page size"),
        (
            "/console/events?cursor=bm90LWEtY3Vyc29y",
            400,
            "not a cursor this store issued",
        ),
        ("/console/events?source=stripe", 400, "is not a source"),
        ("/console/events?status=done", 400, "is not a status"),
        ("/console/events?since=yesterday", 400, "neither a duration"),
        (
            "/console/events?since=99999999999999999d",
            400,
            "too far back",
        ),
        ("/console/event", 400, "needs ?key="),
        ("/console/event?key=nope", 400, "is not an event key"),
        (
            "/console/event?key=invoice%23missing",
            404,
            "no event invoice#missing",
        ),
        (
            "/console/entity?source=invoice&tenant=default&kind=invoice",
            400,
            "missing id",
        ),
        (
            "/console/entity?source=invoice&tenant=default&kind=planet&id=1",
            400,
            "is not an entity kind",
        ),
        (
            "/console/entity?source=invoice&tenant=default&kind=invoice&id=none",
            404,
            "no entity",
        ),
        ("/console/no/such/page", 404, "the console has no page"),
    ];
    for (path, status, says) in cases {
        let (got, page) = get(&base, path).await;
        assert_eq!(got.as_u16(), status, "{path}: {page}");
        assert!(page.contains(says), "{path} should say {says:?}: {page}");
        assert!(
            page.starts_with("<!DOCTYPE html>"),
            "{path}: a page, not a bare message"
        );
    }
    let form = client()
        .post(format!("{base}/console/replay"))
        .form(&[("nothing", "here")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn healthz_names_the_store_when_it_does_not_answer() {
    let (base, _dir) = local_site(None).await;
    let (status, body) = get(&base, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"ok","store":"ok"}"#)
    );
    let (status, _) = get(&base, "/console").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "--no-console serves no console"
    );

    // A DynamoDB store nobody answers for.
    let env = Env::from_pairs([
        (vars::EVENTS_TABLE.name, "events"),
        (vars::ENTITIES_TABLE.name, "entities"),
        (vars::TRANSITIONS_TABLE.name, "transitions"),
        (vars::AWS_ENDPOINT_URL.name, "http://127.0.0.1:9"),
        (vars::AWS_REGION.name, "eu-west-1"),
        (vars::AWS_ACCESS_KEY_ID.name, "test"),
        (vars::AWS_SECRET_ACCESS_KEY.name, "test"),
        (vars::AWS_MAX_ATTEMPTS.name, "1"),
    ]);
    let store = runtime::dynamodb_backend(&env)
        .await
        .expect("store settings");
    let app = webhooks_local::site(
        Default::default(),
        1024,
        Arc::new(store),
        Served::default(),
        None,
    );
    let base = serve_in_background(app).await;
    let (status, body) = get(&base, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"status":"unavailable","store":"unavailable"}"#);
}

#[tokio::test]
async fn the_root_redirects_and_rejections_are_counted_for_the_chart() {
    let (base, _dir) = local_site(Some(open_access())).await;
    let (status, _) = get(&base, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let unsigned = client()
        .post(format!("{base}/callback/update-invoice"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    post_abaha(
        &base,
        br#"{"store_id":"s1","cart_code":"C1","status":"NEW"}"#,
    )
    .await;
    let (_, overview) = get(&base, "/console").await;
    assert!(overview.contains(": 1 rejected</title>"), "{overview}");
    assert!(overview.contains(": 1 accepted</title>"), "{overview}");
    assert!(
        overview.contains(r#"href="/console/events?source=abaha&amp;status=ignored">1<"#),
        "{overview}"
    );
}

#[tokio::test]
async fn a_loopback_console_without_a_token_answers_only_loopback_host_names() {
    let (base, _dir) = local_site(Some(open_access())).await;
    for host in ["localhost:3000", "127.0.0.1", "[::1]:3000"] {
        let resp = client()
            .get(format!("{base}/console"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{host}");
    }
    let rebound = client()
        .get(format!("{base}/console/events"))
        .header("host", "attacker.example:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    assert!(rebound.text().await.unwrap().contains("loopback host name"));
}

#[tokio::test]
async fn beyond_loopback_the_console_needs_a_token() {
    let err = ConsoleSettings::default()
        .access(
            "0.0.0.0:3000".parse().unwrap(),
            "or pass --no-console to serve only the webhook routes",
        )
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("0.0.0.0:3000") && message.contains("set CONSOLE_TOKEN"),
        "{message}"
    );
    assert!(message.contains("--no-console"), "{message}");
    let env = Env::from_pairs([(vars::CONSOLE_TOKEN.name, TOKEN)]);
    assert!(ConsoleSettings::from_env(&env)
        .access("0.0.0.0:3000".parse().unwrap(), "")
        .is_ok());
    let blank = Env::from_pairs([(vars::CONSOLE_TOKEN.name, "  ")]);
    assert!(
        ConsoleSettings::from_env(&blank)
            .access("0.0.0.0:3000".parse().unwrap(), "")
            .is_err(),
        "a blank token is none"
    );
}

#[tokio::test]
async fn a_token_console_takes_a_bearer_or_the_login_cookie_and_never_shows_the_token() {
    let access = ConsoleSettings::with_token(TOKEN)
        .access(LOOPBACK.parse().unwrap(), "")
        .unwrap();
    let (base, _dir) = local_site(Some(access)).await;
    let c = client();
    let mut seen = Vec::new();

    let bare = c
        .get(format!("{base}/console/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        bare.headers()["location"],
        "/console/login?next=%2Fconsole%2Fevents"
    );
    let post = c
        .post(format!("{base}/console/replay"))
        .form(&[("id", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
    let wrong = c
        .get(format!("{base}/console"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    seen.push(wrong.text().await.unwrap());
    let right = c
        .get(format!("{base}/console"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    seen.push(right.text().await.unwrap());

    let login = |token: &'static str, next: &'static str| {
        let c = c.clone();
        let url = format!("{base}/console/login");
        async move {
            c.post(url)
                .form(&[("token", token), ("next", next)])
                .send()
                .await
                .unwrap()
        }
    };
    let failed = login("guess", "/console").await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    assert!(failed.headers().get("set-cookie").is_none());
    seen.push(failed.text().await.unwrap());
    let ok = login(TOKEN, "//attacker.example/").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        ok.headers()["location"],
        "/console",
        "never a redirect off the console"
    );
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/console"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie holds a session id: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = c
        .get(format!("{base}/console/events"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    seen.push(page.text().await.unwrap());
    let forged = c
        .get(format!("{base}/console/events"))
        .header("cookie", "webhooks_console=00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
    for body in seen {
        assert!(!body.contains(TOKEN), "a page showed the token: {body}");
    }
}

#[tokio::test]
async fn a_raw_body_is_shown_escaped_and_pages_are_not_cached_or_framed() {
    let (base, _dir) = local_site(Some(open_access())).await;
    let body = br#"{"store_id":"s1","user_id":"u1","tel":"0900","name":"</pre><script>alert(1)</script>"}"#;
    post_abaha(&base, body).await;
    let key = format!("abaha#{}", webhook_core::model::body_event_id(body));
    let resp = client()
        .get(format!("{base}/console/event?key={}", enc(&key)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
}

/// Posts the login form; returns the answer.
async fn log_in(base: &str, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut post = client()
        .post(format!("{base}/console/login"))
        .form(&[("token", token), ("next", "/console")]);
    for (k, v) in headers {
        post = post.header(*k, *v);
    }
    post.send().await.unwrap()
}

#[tokio::test]
async fn a_login_is_a_server_side_session_that_expires_and_ends_at_logout() {
    let access = ConsoleSettings::with_token(TOKEN)
        .access(LOOPBACK.parse().unwrap(), "")
        .unwrap();
    let (base, _dir) = local_site(Some(access)).await;
    let first = log_in(&base, TOKEN, &[]).await;
    let second = log_in(&base, TOKEN, &[]).await;
    let cookie_of = |r: &reqwest::Response| r.headers()["set-cookie"].to_str().unwrap().to_string();
    let (a, b) = (cookie_of(&first), cookie_of(&second));
    assert!(a.contains("Max-Age=43200") && !a.contains("Secure"), "{a}");
    let (a, b) = (a.split(';').next().unwrap(), b.split(';').next().unwrap());
    assert_ne!(
        a, b,
        "each login is its own random session, not a digest of the token"
    );
    let events = |cookie: String| {
        let url = format!("{base}/console");
        async move {
            client()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let page = events(a.to_string()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let form = csrf(&page.text().await.unwrap());
    let out = client()
        .post(format!("{base}/console/logout"))
        .header("cookie", a)
        .form(&[("csrf", form.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(cookie_of(&out).contains("Max-Age=0"));
    let replayed = events(a.to_string()).await;
    assert_eq!(
        replayed.status(),
        StatusCode::SEE_OTHER,
        "a logged-out cookie no longer opens the console"
    );
    assert_eq!(
        events(b.to_string()).await.status(),
        StatusCode::OK,
        "other sessions live on"
    );
    let behind_tls = log_in(&base, TOKEN, &[("x-forwarded-proto", "https")]).await;
    assert!(
        cookie_of(&behind_tls).contains("; Secure"),
        "Secure behind TLS"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_with_429_and_retry_after() {
    let access = ConsoleSettings::with_token(TOKEN)
        .access(LOOPBACK.parse().unwrap(), "")
        .unwrap();
    let (base, _dir) = local_site(Some(access)).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..50 {
        let r = log_in(&base, "a-wrong-guess", &[]).await;
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(&statuses[..5], &[401; 5], "a few mistakes are free");
    assert!(
        statuses[5..].iter().all(|s| *s == 429),
        "then every attempt is refused: {statuses:?}"
    );
    let wait: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    let right = log_in(&base, TOKEN, &[]).await;
    assert_eq!(
        right.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the lock-out holds for the right token too"
    );
    let bearer = client()
        .get(format!("{base}/console"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(bearer.headers().contains_key("retry-after"));
}
