//! The local servers' limits (`webhook_console::server`, ARCHITECTURE §9): half-sent and
//! idle connections are closed, at most `max_connections` are served at once, a stop ends
//! open connections within the grace period; and on the real `webhooks-local` binary, 500
//! half-sent requests neither keep a webhook from being answered nor SIGTERM from stopping it.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webhook_console::server::{serve, Limits};
use webhook_core::model::Source;
use webhook_tests::events::dev_credentialed;
use webhook_tests::lambda::{build_function, spawn_local};

/// Short limits, so a test sees each one act.
fn short() -> Limits {
    Limits {
        header_read: Duration::from_millis(300),
        body_idle: Duration::from_millis(300),
        request: Duration::from_secs(2),
        max_connections: 3,
        grace: Duration::from_millis(500),
    }
}

/// Starts `app` within `limits`; returns its address and the sender that stops it.
async fn start(
    app: Router,
    limits: Limits,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// Everything the server sends until it closes the connection (bounded, so a server that
/// never closes fails the test instead of hanging it).
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

fn slow_app() -> Router {
    Router::new().route("/ok", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            "slow"
        }),
    )
}

#[tokio::test]
async fn half_sent_heads_trickled_bodies_and_idle_keep_alives_are_closed() {
    let (addr, _stop, _server) = start(
        slow_app().route("/body", axum::routing::post(|b: String| async move { b })),
        short(),
    )
    .await;
    let mut half_head = TcpStream::connect(&addr).await.unwrap();
    half_head
        .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow")
        .await
        .unwrap();
    until_closed(&mut half_head).await;

    let mut half_body = TcpStream::connect(&addr).await.unwrap();
    half_body
        .write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let answer = until_closed(&mut half_body).await;
    assert!(!answer.contains(" 200 "), "{answer}");

    let mut kept_alive = TcpStream::connect(&addr).await.unwrap();
    kept_alive
        .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut kept_alive).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "answered first: {answer}"
    );
}

#[tokio::test]
async fn at_most_max_connections_are_served_at_once_and_the_rest_wait_their_turn() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (i, m) = (in_flight.clone(), most.clone());
    let app = Router::new().route(
        "/count",
        get(move || {
            let (i, m) = (i.clone(), m.clone());
            async move {
                let now = i.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                i.fetch_sub(1, Ordering::SeqCst);
                "counted"
            }
        }),
    );
    let (addr, _stop, _server) = start(app, short()).await;
    let requests = (0..12).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            until_closed(&mut s).await
        })
    });
    for answer in futures::future::join_all(requests).await {
        assert!(answer.unwrap().ends_with("counted"));
    }
    assert_eq!(most.load(Ordering::SeqCst), 3, "the cap of 3, reached");
}

#[tokio::test]
async fn a_stop_lets_open_requests_finish_and_drops_what_clients_hold_open() {
    let limits = Limits {
        header_read: Duration::from_secs(60),
        ..short()
    };
    let (addr, stop, server) = start(slow_app(), limits).await;
    let mut hung = TcpStream::connect(&addr).await.unwrap();
    hung.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    let answer = until_closed(&mut slow).await;
    assert!(
        answer.ends_with("slow"),
        "the open request finished: {answer}"
    );
    until_closed(&mut hung).await;
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stopped")
        .unwrap();
}

#[tokio::test]
async fn five_hundred_half_sent_requests_neither_block_a_webhook_nor_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, listen) = spawn_local(&[], &dir.path().join("w.db")).await;
    let base = format!("http://{listen}");

    let mut slow = Vec::new();
    for i in 0..500 {
        let mut s = TcpStream::connect(&listen).await.unwrap();
        let half: &[u8] = if i % 2 == 0 {
            b"POST /api/v1/abaha/webhook HTTP/1.1\r\nHost: x\r\nContent-Ty"
        } else {
            b"POST /api/v1/abaha/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"store"
        };
        s.write_all(half).await.unwrap();
        slow.push(s);
    }

    let body = br#"{"store_id":"s1","user_id":"u1","name":"An"}"#;
    let req = dev_credentialed(Source::Abaha, body, None);
    let mut post = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(format!("{base}/api/v1/abaha/webhook"))
        .body(req.body.clone());
    for (k, v) in &req.headers {
        post = post.header(k, v);
    }
    let answer = post.send().await.expect("the webhook was answered");
    assert_eq!(answer.status().as_u16(), 200);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("webhooks-local was still running 10 s after SIGTERM");
    };
    assert!(status.success(), "{status:?}");
    drop(slow);
}

/// Runs webhooks-local until it exits (a refusal to start) or 10 s pass.
fn refusal(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(build_function("webhooks-local"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("webhooks-local");
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            return (out.status.code(), text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, "still running".into())
}

#[test]
fn development_credentials_only_on_loopback_and_only_when_nothing_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap();
    let (code, out) = refusal(&["--listen", "0.0.0.0:0", "--no-console", "--db", db], &[]);
    assert_ne!(code, Some(0), "{out}");
    assert!(code.is_some() && out.contains("beyond loopback"), "{out}");
    assert!(out.contains("development credentials"), "{out}");

    let bound = [(
        "ABAHA_TOKENS_BY_TENANT",
        r#"{"s1":["a-bound-abaha-token"]}"#,
    )];
    let (code, out) = refusal(&["--listen", "127.0.0.1:0", "--db", db], &bound);
    assert!(code.is_some() && code != Some(0), "{out}");
    assert!(out.contains("ABAHA_TOKENS_BY_TENANT"), "{out}");

    let add = Command::new(build_function("webhooks"))
        .args(["--db", db, "credentials", "add", "pancake-pos", "987654321"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let (code, out) = refusal(&["--listen", "127.0.0.1:0", "--db", db], &[]);
    assert!(code.is_some() && code != Some(0), "{out}");
    assert!(out.contains("credential table"), "{out}");
}
