//! No configured secret in any log line or response body: every source's credentials (old and
//! live, the `_BY_TENANT` bindings, stored credentials), the console token, the notifier's
//! secret and URL credentials, each presented rightly and wrongly, then every captured log
//! line and every answer searched for each of them.

use super::*;

/// Each source's credential variable: (name, the value being rotated out, the live one).
const SECRETS: [(&str, &str, &str); 6] = [
    ("PANCAKE_API_KEYS", "pk-old-Q7e1x9", "pk-live-Zx81m2"),
    (
        "PANCAKE_SIGNING_SECRETS",
        "psig-old-Kd02a",
        "psig-live-Kd02b",
    ),
    ("PANCAKE_POS_API_KEYS", "pos-old-Mn55c", "pos-live-Mn55d"),
    ("ABAHA_TOKENS", "abaha-old-Rt31e", "abaha-live-Rt31f"),
    ("FULFILMENT_SECRETS", "ful-old-Wq09g", "ful-live-Wq09h"),
    ("INVOICE_SECRETS", "inv-old-Lp77i", "inv-live-Lp77j"),
];

fn live(var: &str) -> &'static str {
    SECRETS.iter().find(|s| s.0 == var).unwrap().2
}

/// A wrong credential that is another source's secret: it must not be echoed either.
fn foreign() -> &'static str {
    live("INVOICE_SECRETS")
}

/// The environment of the leak test, with the receiver at `url`, and every secret in it.
fn leak_env(url: &str) -> (Env, Vec<String>) {
    let mut env = Env::from_pairs(
        SECRETS
            .iter()
            .map(|(var, old, live)| (var.to_string(), format!("{old},{live}"))),
    );
    env.set("INVOICE_TOLERANCE_SECS", "300");
    for binding in &BINDINGS {
        env.set(binding.var, binding.json());
    }
    env.set("CONSOLE_TOKEN", CONSOLE_TOKEN);
    // The URL's own credentials are secrets too (a receiver may authenticate by them).
    let (scheme_host, path) = url.split_once("/notify").unwrap();
    let notify_url = format!(
        "{}://url-user:url-pass-Hh4k@{}/notify{path}?token=url-token-Jj6m",
        "http",
        scheme_host.trim_start_matches("http://")
    );
    env.set("NOTIFY_URL", notify_url.as_str());
    env.set("NOTIFY_SECRET", NOTIFY_SECRET);
    let mut forbidden: Vec<String> = SECRETS
        .iter()
        .flat_map(|(_, old, live)| [old.to_string(), live.to_string()])
        .collect();
    forbidden.extend(
        BINDINGS
            .iter()
            .flat_map(|b| [b.own_value, b.other_value].map(String::from)),
    );
    forbidden.extend([
        CONSOLE_TOKEN.to_string(),
        NOTIFY_SECRET.to_string(),
        NOTIFY_SECRET.trim_start_matches("whsec_").to_string(),
        "url-pass-Hh4k".to_string(),
        "url-token-Jj6m".to_string(),
    ]);
    (env, forbidden)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_logs_or_responses() {
    let logs = logs();
    let (receiver, url) = Receiver::start(NOTIFY_SECRET).await;
    let (env, mut forbidden) = leak_env(&url);
    let rig = Rig::new(&env, Mode::Lambda);
    let stored = store_credentials(&rig).await;
    forbidden.extend(stored.iter().map(|c| c.value.clone()));
    let mut seen = Seen::default();

    present_pancake_credentials(&rig, &mut seen).await;
    present_pancake_pos_credentials(&rig, &mut seen).await;
    present_abaha_credentials(&rig, &mut seen).await;
    present_fulfilment_credentials(&rig, &mut seen).await;
    present_invoice_credentials(&rig, &mut seen).await;
    bound_credentials_answer_only_their_tenants(&rig, &mut seen).await;
    stored_credentials_answer_only_their_tenants(&rig, &stored, &mut seen).await;
    console_pages_with_and_without_the_token(&rig, &env, &mut seen).await;

    // The notifier, configured from the environment (its construction logs the target).
    let notifier = notifier(&rig, &env);
    let queued = rig.transition_ids(true).await;
    assert!(queued.len() >= 2, "{queued:?}");
    assert_eq!(drain(&rig, &notifier).await, queued.len());
    assert_eq!(receiver.counts(), exactly_once(&queued));

    let captured = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert_nothing_leaked(&captured, &forbidden, &seen);
}

fn assert_nothing_leaked(captured: &str, forbidden: &[String], seen: &Seen) {
    assert!(captured.contains("webhook accepted") && captured.contains("webhook rejected"));
    assert!(captured.contains("Http"), "the notifier target was logged");
    for secret in forbidden {
        assert!(
            !captured.contains(secret.as_str()),
            "a log line contains {secret:?}"
        );
        for (label, body) in &seen.responses {
            assert!(
                !body.contains(secret.as_str()),
                "{label} response contains {secret:?}"
            );
        }
    }
    println!(
        "secrets: {} requests, {} bytes of logs, {} secrets checked",
        seen.responses.len(),
        captured.len(),
        forbidden.len()
    );
}

/// Pancake: API key (header or query) + signature.
async fn present_pancake_credentials(rig: &Rig, seen: &mut Seen) {
    let foreign = foreign();
    let body = fixture("pancake", "order_created.json");
    let signed = |b: &str, key: &str, sig_secret: &str| {
        RawRequest::post(route_for(Source::Pancake), b)
            .with_header("X-API-Key", key)
            .with_header(
                "X-Pancake-Signature",
                &Pancake::sign(b.as_bytes(), sig_secret),
            )
    };
    let k = live("PANCAKE_API_KEYS");
    let s = live("PANCAKE_SIGNING_SECRETS");
    seen.check(
        "pancake valid",
        rig.post(Source::Pancake, &signed(&body, k, s)).await,
        200,
    );
    seen.check(
        "pancake bad key",
        rig.post(Source::Pancake, &signed(&body, foreign, s)).await,
        401,
    );
    seen.check(
        "pancake bad sig",
        rig.post(Source::Pancake, &signed(&body, k, foreign)).await,
        401,
    );
    let query = RawRequest::post(route_for(Source::Pancake), "{\"payload\":")
        .with_query("api_key", k)
        .with_header("X-Pancake-Signature", &Pancake::sign(b"{\"payload\":", s));
    seen.check(
        "pancake malformed",
        rig.post(Source::Pancake, &query).await,
        400,
    );
}

/// Pancake POS: the configured key header, X-API-Key or ?api_key=.
async fn present_pancake_pos_credentials(rig: &Rig, seen: &mut Seen) {
    let body = fixture("pancake_pos", "order_created.json");
    let k = live("PANCAKE_POS_API_KEYS");
    let pos = |b: &str, h: &str, v: &str| {
        RawRequest::post(route_for(Source::PancakePos), b).with_header(h, v)
    };
    seen.check(
        "pos valid",
        rig.post(Source::PancakePos, &pos(&body, "X-Webhook-Secret", k))
            .await,
        200,
    );
    seen.check(
        "pos bad key",
        rig.post(Source::PancakePos, &pos(&body, "X-API-Key", foreign()))
            .await,
        401,
    );
    seen.check(
        "pos malformed",
        rig.post(Source::PancakePos, &pos("[1,", "X-Webhook-Secret", k))
            .await,
        400,
    );
    let q = RawRequest::post(route_for(Source::PancakePos), "null").with_query("api_key", k);
    seen.check("pos null body", rig.post(Source::PancakePos, &q).await, 400);
}

/// Abaha: a token header.
async fn present_abaha_credentials(rig: &Rig, seen: &mut Seen) {
    let body = fixture("abaha", "order.json");
    let k = live("ABAHA_TOKENS");
    let ab = |b: &str, v: &str| {
        RawRequest::post(route_for(Source::Abaha), b).with_header("X-Abaha-Token", v)
    };
    seen.check(
        "abaha valid",
        rig.post(Source::Abaha, &ab(&body, k)).await,
        200,
    );
    seen.check(
        "abaha bad token",
        rig.post(Source::Abaha, &ab(&body, foreign())).await,
        401,
    );
    seen.check(
        "abaha malformed",
        rig.post(Source::Abaha, &ab("{\"cart_code\":", k)).await,
        400,
    );
}

/// Fulfilment: sha256(body ++ secret).
async fn present_fulfilment_credentials(rig: &Rig, seen: &mut Seen) {
    let body = fixture("fulfilment", "order_change_status.json");
    let k = live("FULFILMENT_SECRETS");
    let ful = |b: &str, sig: &str| {
        RawRequest::post(route_for(Source::Fulfilment), b)
            .with_header("X-Event-Signature", sig)
            .with_header("X-Event-Delivery", "secret-test-1")
    };
    let good = Fulfilment::sign(body.as_bytes(), k);
    seen.check(
        "fulfilment valid",
        rig.post(Source::Fulfilment, &ful(&body, &good)).await,
        200,
    );
    seen.check(
        "fulfilment bad sig",
        rig.post(Source::Fulfilment, &ful(&body, foreign())).await,
        401,
    );
    let bad_body = "{\"event\":";
    let sig = Fulfilment::sign(bad_body.as_bytes(), k);
    seen.check(
        "fulfilment malformed",
        rig.post(Source::Fulfilment, &ful(bad_body, &sig)).await,
        400,
    );
}

/// Invoice: HMAC, inside the replay window, and a replay.
async fn present_invoice_credentials(rig: &Rig, seen: &mut Seen) {
    let k = live("INVOICE_SECRETS");
    let valid = invoice_req(
        "inv-secret-test",
        "Ready",
        "Pending",
        "2025-09-05T10:44:00.000Z",
        k,
    );
    seen.check(
        "invoice valid",
        rig.post(Source::Invoice, &valid).await,
        200,
    );
    let replay = invoice_req(
        "inv-secret-test",
        "Pending",
        "Complete",
        "2025-09-01T10:44:00.000Z",
        k,
    );
    seen.check(
        "invoice replay",
        rig.post(Source::Invoice, &replay).await,
        401,
    );
    let wrong = invoice_req(
        "inv-secret-test",
        "Ready",
        "Pending",
        "2025-09-05T10:44:00.000Z",
        live("FULFILMENT_SECRETS"),
    );
    seen.check(
        "invoice bad sig",
        rig.post(Source::Invoice, &wrong).await,
        401,
    );
    let mut presented = RawRequest::post(route_for(Source::Invoice), "{\"event\":");
    presented = presented.with_header("X-Signature", live("ABAHA_TOKENS"));
    seen.check(
        "invoice secret as signature",
        rig.post(Source::Invoice, &presented).await,
        401,
    );
}

/// What a leak test was answered, as text, by label: the webhook responses' bodies, and the
/// console's pages with their headers.
#[derive(Default)]
struct Seen {
    responses: Vec<(String, String)>,
}

impl Seen {
    /// Keeps `resp`, which must have answered `expected`.
    fn check(&mut self, label: &str, resp: RawResponse, expected: u16) {
        assert_eq!(resp.status, expected, "{label}: {:?}", resp.body);
        let body = String::from_utf8_lossy(&resp.body_bytes()).to_string();
        self.responses.push((label.to_string(), body));
    }

    /// Keeps a console page (its headers too: a cookie could carry the token).
    async fn page(&mut self, label: &str, resp: reqwest::Response, expected: u16) {
        assert_eq!(resp.status().as_u16(), expected, "{label}");
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap();
        self.responses
            .push((label.to_string(), format!("{headers}\n{body}")));
    }
}

const CONSOLE_TOKEN: &str = "console-token-Yc58n-4f1d0b2c9e7a6385d";

/// A `_BY_TENANT` variable of the leak test: a value bound to the tenant the test's events
/// name, and one bound to another tenant.
struct Binding {
    source: Source,
    var: &'static str,
    tenant: &'static str,
    own_value: &'static str,
    other_value: &'static str,
}

impl Binding {
    fn json(&self) -> String {
        json!({self.tenant: [self.own_value], "tenant-elsewhere": [self.other_value]}).to_string()
    }
}

/// The tenant the leak test's events name (invoice's are always `default`'s).
const TENANT: &str = "tenant-leak";

const BINDINGS: [Binding; 5] = [
    Binding {
        source: Source::Pancake,
        var: "PANCAKE_API_KEYS_BY_TENANT",
        tenant: TENANT,
        own_value: "pk-bound-Vb40a",
        other_value: "pk-elsewhere-Vb40b",
    },
    Binding {
        source: Source::PancakePos,
        var: "PANCAKE_POS_API_KEYS_BY_TENANT",
        tenant: TENANT,
        own_value: "pos-bound-Vb41a",
        other_value: "pos-elsewhere-Vb41b",
    },
    Binding {
        source: Source::Abaha,
        var: "ABAHA_TOKENS_BY_TENANT",
        tenant: TENANT,
        own_value: "abaha-bound-Vb42a",
        other_value: "abaha-elsewhere-Vb42b",
    },
    Binding {
        source: Source::Fulfilment,
        var: "FULFILMENT_SECRETS_BY_TENANT",
        tenant: TENANT,
        own_value: "ful-bound-Vb43a",
        other_value: "ful-elsewhere-Vb43b",
    },
    Binding {
        source: Source::Invoice,
        var: "INVOICE_SECRETS_BY_TENANT",
        tenant: Tenant::DEFAULT,
        own_value: "inv-bound-Vb44a",
        other_value: "inv-elsewhere-Vb44b",
    },
];

/// An event of `source` for `tenant` (ignored by invoice), distinct per `n`.
fn event_of(source: Source, tenant: &str, n: u64) -> String {
    match source {
        Source::Pancake => json!({"payload": {"eventType": "order_created", "pageId": tenant,
            "data": {"id": n, "status": 0}}}),
        Source::PancakePos => json!({"payload": {"eventType": "order_created", "shopId": tenant,
            "data": {"id": n, "status": 0}}}),
        Source::Abaha => {
            json!({"id": n, "cart_code": format!("C{n}"), "status": "1", "store_id": tenant})
        }
        Source::Fulfilment => json!({"event": "ORDER.CHANGE_STATUS", "payload": {
            "merchant_code": tenant, "to_status": "PACKED", "order": {"id": n}}}),
        Source::Invoice => json!({"event": "invoice.updated", "timestamp": "2025-09-05T10:44:00Z",
            "data": {"invoiceId": format!("inv-leak-{n}"), "state": "Pending",
                "previousState": "Ready"}}),
    }
    .to_string()
}

/// `body` presenting `value` as `source`'s credential (Pancake's requests also carry the
/// configured signing secret's signature, which is required whenever one is set).
fn presenting(source: Source, body: &str, value: &str) -> RawRequest {
    let req = events::credentialed(source, body.as_bytes(), value);
    match source {
        Source::Pancake => req.with_header(
            "X-Pancake-Signature",
            &Pancake::sign(body.as_bytes(), "psig-live-Kd02b"),
        ),
        _ => req,
    }
}

/// The environment's bindings: each value admits its own tenant's event and is refused
/// (403 `tenant_not_bound`) for another's.
async fn bound_credentials_answer_only_their_tenants(rig: &Rig, seen: &mut Seen) {
    for (n, b) in (100..).step_by(2).zip(&BINDINGS) {
        let own = presenting(b.source, &event_of(b.source, b.tenant, n), b.own_value);
        let label = format!("{} bound, own tenant", b.source);
        seen.check(&label, rig.post(b.source, &own).await, 200);
        let other = presenting(
            b.source,
            &event_of(b.source, b.tenant, n + 1),
            b.other_value,
        );
        let label = format!("{} bound, another tenant", b.source);
        seen.check(&label, rig.post(b.source, &other).await, 403);
    }
}

/// A credential stored in the SQLite file's table: its source, tenant and generated value.
struct Stored {
    source: Source,
    tenant: &'static str,
    value: String,
}

/// Generates a credential of every source in the table, as `webhooks credentials add` does
/// (the value is printed once, then only its hash or the encrypted secret is kept), before
/// any request: a lookup that misses is cached, as in a Lambda.
async fn store_credentials(rig: &Rig) -> Vec<Stored> {
    let op = webhook_core::runtime::sqlite_operator_over(&rig.store);
    let mut stored = Vec::new();
    for source in Source::ALL {
        let tenant = match source {
            Source::Invoice => Tenant::DEFAULT,
            _ => "tenant-stored",
        };
        let issued = op
            .add_credential(source, &Tenant::new(tenant), NewValue::Generate, None, NOW)
            .await
            .unwrap();
        let value = issued.generated.expect("a generated value");
        stored.push(Stored {
            source,
            tenant,
            value,
        });
    }
    stored
}

/// The stored credentials: each admits its tenant's event; used for another tenant's it is
/// refused (403 for a key, found by its hash; 401 for a signing secret, looked up by the
/// tenant the body claims). Invoice has the one tenant `default`.
async fn stored_credentials_answer_only_their_tenants(
    rig: &Rig,
    stored: &[Stored],
    seen: &mut Seen,
) {
    for (n, c) in (200..).step_by(2).zip(stored) {
        let own = presenting(c.source, &event_of(c.source, c.tenant, n), &c.value);
        let label = format!("{} stored, own tenant", c.source);
        seen.check(&label, rig.post(c.source, &own).await, 200);
        if c.source != Source::Invoice {
            let other = presenting(c.source, &event_of(c.source, TENANT, n + 1), &c.value);
            let refused = if c.source == Source::Fulfilment {
                401
            } else {
                403
            };
            let label = format!("{} stored, another tenant", c.source);
            seen.check(&label, rig.post(c.source, &other).await, refused);
        }
    }
}

/// The console, configured from the same environment (`CONSOLE_TOKEN`), over the store the
/// events went to: refused without the token or with a wrong one, then its pages by bearer
/// and by the login cookie.
async fn console_pages_with_and_without_the_token(rig: &Rig, env: &Env, seen: &mut Seen) {
    let access = ConsoleSettings::from_env(env)
        .access("127.0.0.1:0".parse().unwrap(), "")
        .expect("a token console");
    let op = webhook_core::runtime::sqlite_operator_over(&rig.store);
    let base = serve_in_background(webhook_console::router(op, access, None)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, bearer: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(bearer)
            .send()
    };
    let wrong = get("/console", "not-the-console-token").await.unwrap();
    seen.page("console wrong bearer", wrong, 401).await;
    let right = get("/console/events", CONSOLE_TOKEN).await.unwrap();
    seen.page("console events by bearer", right, 200).await;
    let login = |token: &'static str| {
        client
            .post(format!("{base}/console/login"))
            .form(&[("token", token), ("next", "/console/events")])
            .send()
    };
    seen.page("console failed login", login("guess").await.unwrap(), 401)
        .await;
    let ok = login(CONSOLE_TOKEN).await.unwrap();
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    seen.page("console login", ok, 303).await;
    let session = cookie.split(';').next().unwrap().to_string();
    let page = client
        .get(format!("{base}/console/events"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    seen.page("console events by cookie", page, 200).await;
}
