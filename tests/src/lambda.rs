//! A test-only Lambda Runtime API (the interface a custom runtime such as `lambda_runtime`
//! polls), and a way to run a real function binary against it.
//!
//! Implemented: `GET /2018-06-01/runtime/invocation/next` (long poll, one invocation at a
//! time with the `Lambda-Runtime-*` headers), `POST …/invocation/{id}/response`,
//! `POST …/invocation/{id}/error` and `POST …/runtime/init/error`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

struct Invocation {
    id: String,
    event: Value,
    reply: oneshot::Sender<Outcome>,
}

/// What happened at the API, with when (`RuntimeApi::start_observed`): the cold-start
/// harness times a binary from these.
#[derive(Debug)]
pub enum Seen {
    /// A `GET …/invocation/next` arrived.
    Poll(Instant),
    /// An invocation was handed out (the moment its `next` response was built).
    Handed(Instant),
    /// `…/response` (`Ok`) or `…/error` / `init/error` (`Err`).
    Answer(Instant, Result<Value, Value>),
}

struct ApiState {
    queue: AsyncMutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: Mutex<Vec<Value>>,
    observer: Option<mpsc::UnboundedSender<Seen>>,
}

impl ApiState {
    fn see(&self, seen: impl FnOnce(Instant) -> Seen) {
        if let Some(observer) = &self.observer {
            let _ = observer.send(seen(Instant::now()));
        }
    }
}

/// The Runtime API server, on a loopback port, until dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    sender: mpsc::UnboundedSender<Invocation>,
    state: Arc<ApiState>,
    next_id: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Also reports every poll, hand-out and answer, timestamped on arrival.
    pub async fn start_observed() -> (Self, mpsc::UnboundedReceiver<Seen>) {
        let (observer, seen) = mpsc::unbounded_channel();
        (Self::start_with(Some(observer)).await, seen)
    }

    async fn start_with(observer: Option<mpsc::UnboundedSender<Seen>>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            queue: AsyncMutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
            observer,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the runtime API");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi {
            addr,
            sender,
            state,
            next_id: AtomicU64::new(1),
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The variables the Lambda service sets for a function.
    pub fn lambda_env(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Queues one invocation and waits for the function's answer.
    pub async fn invoke(&self, event: Value) -> Outcome {
        self.enqueue(event)
            .await
            .expect("the invocation was answered")
    }

    /// Queues one invocation; the receiver gets the function's answer.
    pub fn enqueue(&self, event: Value) -> oneshot::Receiver<Outcome> {
        let (reply, answer) = oneshot::channel();
        let id = format!("req-{:08}", self.next_id.fetch_add(1, Ordering::Relaxed));
        self.sender
            .send(Invocation { id, event, reply })
            .expect("runtime API is running");
        answer
    }

    /// Errors reported to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<Value> {
        self.state.init_errors.lock().expect("lock").clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    state.see(Seen::Poll);
    let invocation = state.queue.lock().await.recv().await;
    let Some(Invocation { id, event, reply }) = invocation else {
        return StatusCode::GONE.into_response();
    };
    state
        .in_flight
        .lock()
        .expect("lock")
        .insert(id.clone(), reply);
    let response = invocation_response(&id, &event, "test");
    state.see(Seen::Handed);
    response
}

/// The `invocation/next` answer for one event: the headers lambda_runtime reads (request id,
/// deadline 30 s ahead, function ARN, trace id) and the event as the body.
pub fn invocation_response(id: &str, event: &Value, function: &str) -> Response {
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or(0);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    };
    set("lambda-runtime-aws-request-id", id.to_string());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{id};Sampled=0"),
    );
    set("content-type", "application/json".to_string());
    (headers, event.to_string()).into_response()
}

fn answer(state: &ApiState, id: &str, outcome: Outcome) -> StatusCode {
    match state.in_flight.lock().expect("lock").remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// A function's answer body: JSON when it parses, else the text.
pub fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let body = json_or_text(&body);
    state.see(|at| Seen::Answer(at, Ok(body.clone())));
    answer(&state, &id, Outcome::Response(body))
}

async fn error(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let body = json_or_text(&body);
    state.see(|at| Seen::Answer(at, Err(body.clone())));
    answer(&state, &id, Outcome::Error(body))
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    let body = json_or_text(&body);
    state.see(|at| Seen::Answer(at, Err(body.clone())));
    state.init_errors.lock().expect("lock").push(body);
    StatusCode::ACCEPTED
}

// ---- running a function binary ------------------------------------------------------------

/// The target profile folder this test executable was built into (`target/debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds the workspace binary `name` (a no-op when it is fresh, so a stale binary is never
/// run) into the target folder of this test run, and returns its path.
pub fn build_function(name: &str) -> PathBuf {
    let profile = profile_dir();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile.parent().expect("target dir").to_path_buf());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(crate::moto::workspace_root().join("Cargo.toml"))
        .args(["-p", name, "--bin", name])
        .arg("--target-dir")
        .arg(&target_dir);
    match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
    }
    let output = command.output().expect("running cargo build");
    assert!(
        output.status.success(),
        "cargo build -p {name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bin = profile.join(name);
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// A running function process, its output captured.
pub struct Function {
    child: tokio::process::Child,
    output: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Function {
    /// Starts `bin` with exactly `env` (nothing inherited from the test process).
    pub fn spawn(bin: &Path, env: &[(String, String)]) -> Self {
        let mut child = tokio::process::Command::new(bin)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut out = output.lock().expect("lock");
                    out.push_str(&line);
                    out.push('\n');
                }
            }));
        }
        Function {
            child,
            output,
            readers,
        }
    }

    /// Everything the process wrote so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().expect("lock").clone()
    }

    /// Invokes the function through `api`; panics with its output if it exits instead.
    pub async fn invoke(&mut self, api: &RuntimeApi, event: Value) -> Outcome {
        tokio::select! {
            outcome = api.invoke(event) => outcome,
            status = self.child.wait() => {
                self.drain_readers().await;
                panic!("the function exited ({status:?}) instead of answering:\n{}", self.output())
            }
        }
    }

    /// Waits for the process to exit on its own.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().await.expect("waiting for the function");
        self.drain_readers().await;
        status
    }

    /// After exit: lets the output readers reach the end of the pipes.
    async fn drain_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
    }

    /// Stops the process (it is also killed when dropped).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The real `webhooks-local` binary on a free loopback port over the SQLite file `db`, with
/// `args` before `--db` and no environment but `RUST_LOG=error` (its development
/// credentials), once `/healthz` answers; the child is the caller's to signal and reap.
pub async fn spawn_local(args: &[&str], db: &std::path::Path) -> (std::process::Child, String) {
    let listen = format!("127.0.0.1:{}", crate::moto::free_port());
    let mut child = std::process::Command::new(build_function("webhooks-local"))
        .args(["--listen", &listen])
        .args(args)
        .arg("--db")
        .arg(db)
        .env_clear()
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("webhooks-local");
    for _ in 0..400 {
        if reqwest::get(format!("http://{listen}/healthz"))
            .await
            .is_ok()
        {
            return (child, listen);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("webhooks-local never answered /healthz on {listen}");
}
