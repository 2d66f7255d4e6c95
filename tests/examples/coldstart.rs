//! Cold-start harness (issue 7): acts as the Lambda Runtime API on loopback and measures,
//! for each release function binary, the time from exec to its first
//! `GET /2018-06-01/runtime/invocation/next` poll (init), the first invocation's latency (one
//! sample from `events/`, served against DynamoDB + SQS on moto_server), the following warm
//! invocations, and the peak RSS (`VmHWM` from `/proc/<pid>/status`, read just before the
//! process is killed).
//!
//! ```sh
//! cargo build --release -p pancake -p pancake-pos -p abaha -p fulfilment -p invoice -p notifier
//! cargo run --release -p webhook-tests --example coldstart -- [--runs N] [binary paths...]
//! ```
//!
//! Without paths it measures `target/release/{pancake,pancake-pos,abaha,fulfilment,invoice,
//! notifier}`. The source of a binary is its file name. moto_server comes from
//! `MOTO_ENDPOINT`, else one is started from `.venv/bin/moto_server` (see `webhook_tests::moto`).
//! Every run of every binary gets fresh tables and a fresh queue, so each sample is a new
//! event (no duplicate path). Runs are interleaved across binaries to spread machine noise.
//! The function's stdout/stderr go to a file per binary under the system temp directory.
//!
//! This emulator implements `invocation/next`, `invocation/{id}/response`,
//! `invocation/{id}/error` and `init/error`; `webhook_tests::lambda::RuntimeApi` has no hook
//! for the arrival time of the first poll, hence this small copy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use tokio::sync::mpsc;

use webhook_tests::aws::AwsFixture;
use webhook_tests::lambda::{RuntimeApi, Seen};
use webhook_tests::moto;

/// How long a function may take to poll, or to answer one invocation.
const LIMIT: Duration = Duration::from_secs(20);

/// What the emulator saw, in arrival order.
/// The next thing the Runtime API saw, or `None` after `LIMIT` without any.
async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(LIMIT, seen.recv())
        .await
        .ok()
        .flatten()
}

// ---- what each binary needs -----------------------------------------------------------------

/// The samples a binary is fed, in order (the first is the cold invocation), and its
/// credential variables (the development values of README "Development credentials").
fn profile(source: &str) -> (Vec<&'static str>, Vec<(&'static str, &'static str)>) {
    match source {
        "pancake" => (
            vec![
                "pancake/order_created.json",
                "pancake/order_updated.json",
                "pancake/customer_updated.json",
                "pancake/conversation_updated.json",
            ],
            vec![("PANCAKE_API_KEYS", "dev-pancake-key")],
        ),
        "pancake-pos" => (
            vec![
                "pancake-pos/order_created.json",
                "pancake-pos/order_status_changed.json",
                "pancake-pos/customer_created.json",
                "pancake-pos/product_created.json",
            ],
            vec![("PANCAKE_POS_API_KEYS", "dev-pancake-pos-key")],
        ),
        "abaha" => (
            vec![
                "abaha/order.json",
                "abaha/customer.json",
                "abaha/product.json",
            ],
            vec![("ABAHA_TOKENS", "dev-abaha-token")],
        ),
        "fulfilment" => (
            vec![
                "fulfilment/order_change_status.json",
                "fulfilment/sku_change_stock.json",
            ],
            vec![("FULFILMENT_SECRETS", "dev-fulfilment-secret")],
        ),
        // the cost sample (ORDER.CHANGE_STATUS) as a warm invocation, after another event
        "fulfilment-warm" => (
            vec![
                "fulfilment/sku_change_stock.json",
                "fulfilment/order_change_status.json",
            ],
            vec![("FULFILMENT_SECRETS", "dev-fulfilment-secret")],
        ),
        "invoice" => (
            vec![
                "invoice/ready_pending.json",
                "invoice/pending_complete.json",
                "invoice/ready_wait.json",
            ],
            // the samples carry 2025 timestamps: the replay window must be off to accept them
            vec![
                ("INVOICE_SECRETS", "dev-invoice-secret"),
                ("INVOICE_TOLERANCE_SECS", "0"),
            ],
        ),
        // no NOTIFY_URL: each transition is written to the log as a notification
        "notifier" => (
            vec![
                "notifier/single_message.json",
                "notifier/batch_two_groups.json",
            ],
            vec![],
        ),
        other => panic!("no samples for a binary named {other:?}"),
    }
}

fn load_event(relative: &str) -> Value {
    let path = moto::workspace_root().join("events").join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether an answer is the success the sample should get.
fn accepted(source: &str, answer: &Result<Value, Value>) -> Result<(), String> {
    let value = answer.as_ref().map_err(|e| format!("error: {e}"))?;
    if source == "notifier" {
        let failures = value["batchItemFailures"].as_array().map_or(0, Vec::len);
        return if failures == 0 {
            Ok(())
        } else {
            Err(format!("batch item failures: {value}"))
        };
    }
    match value["statusCode"].as_u64() {
        Some(200..=299) => Ok(()),
        _ => Err(format!("answer: {value}")),
    }
}

// ---- one run --------------------------------------------------------------------------------

struct Target {
    label: String,
    source: String,
    bin: PathBuf,
    events: Vec<(String, Value)>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

#[derive(Default)]
struct Samples {
    init_ms: Vec<f64>,
    first_ms: Vec<f64>,
    exec_to_first_answer_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    hwm_kb: Vec<f64>,
    rss_after_kb: Vec<f64>,
    failures: Vec<String>,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `VmHWM` and `VmRSS` of `pid`, in kB.
fn memory_kb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Prints every item of the fixture's three tables with its key and DynamoDB size.
async fn print_item_sizes(fixture: &AwsFixture) {
    let tables = [
        ("events", &fixture.tables.events),
        ("entities", &fixture.tables.entities),
        ("transitions", &fixture.tables.transitions),
    ];
    for (name, table) in tables {
        let items = fixture
            .dynamodb
            .scan()
            .table_name(table.as_str())
            .send()
            .await
            .map(|r| r.items.unwrap_or_default())
            .unwrap_or_default();
        for item in items {
            let size = webhook_tests::capacity::item_size(&item);
            let key: Vec<String> = ["event_key", "pk", "sk"]
                .iter()
                .filter_map(|k| match item.get(*k) {
                    Some(AttributeValue::S(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            let body = match item.get("request_z") {
                Some(AttributeValue::B(b)) => format!(", request_z {} B", b.as_ref().len()),
                _ => String::new(),
            };
            println!("item size: {name} {} = {size} B{body}", key.join(" / "));
        }
    }
}

async fn run_once(
    target: &Target,
    endpoint: &str,
    samples: &mut Samples,
    item_sizes: bool,
) -> Result<(), String> {
    let fixture = AwsFixture::on(endpoint, &format!("cs-{}", target.source)).await;
    let (api, mut seen) = RuntimeApi::start_observed().await;
    let mut env = api.lambda_env(&target.source);
    env.extend([
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".to_string(),
            "on-demand".into(),
        ),
        ("LAMBDA_TASK_ROOT".to_string(), "/var/task".into()),
        ("TZ".to_string(), ":UTC".into()),
        ("PATH".to_string(), "/usr/bin:/bin".into()),
    ]);
    env.extend(fixture.lambda_env());
    env.extend(target.env.iter().cloned());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&target.log)
        .map_err(|e| format!("log file {}: {e}", target.log.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;

    let started = Instant::now();
    let mut child = tokio::process::Command::new(&target.bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", target.bin.display()))?;
    let pid = child.id().ok_or("no pid")?;

    let result = async {
        // init: exec → first poll
        let first_poll = tokio::select! {
            seen = next_seen(&mut seen) => match seen {
                Some(Seen::Poll(at)) => at,
                Some(Seen::Answer(_, Err(e))) => return Err(format!("init error: {e}")),
                other => return Err(format!("before the first poll: {other:?}")),
            },
            status = child.wait() => return Err(format!("exited at init: {status:?}")),
        };
        let init = first_poll - started;
        let mut first = None;
        let mut warm = Vec::new();
        for (i, (name, event)) in target.events.iter().enumerate() {
            // The answer is taken from `seen`, with its arrival time.
            drop(api.enqueue(event.clone()));
            let mut handed = None;
            let (answered, answer) = loop {
                tokio::select! {
                    seen = next_seen(&mut seen) => match seen {
                        Some(Seen::Poll(_)) => {}
                        Some(Seen::Handed(at)) => handed = Some(at),
                        Some(Seen::Answer(at, answer)) => break (at, answer),
                        None => return Err(format!("{name}: no answer within {LIMIT:?}")),
                    },
                    status = child.wait() => return Err(format!("{name}: exited: {status:?}")),
                }
            };
            accepted(&target.source, &answer).map_err(|e| format!("{name}: {e}"))?;
            let latency = answered - handed.ok_or("answered before being handed")?;
            if i == 0 {
                first = Some((latency, answered - started));
            } else {
                warm.push(latency);
            }
        }
        // the runtime polls again after answering; wait for that poll so the process is idle
        let _ = tokio::time::timeout(Duration::from_millis(200), next_seen(&mut seen)).await;
        let memory = memory_kb(pid).ok_or("reading /proc/<pid>/status")?;
        Ok((init, first, warm, memory))
    }
    .await;
    let _ = child.kill().await;
    let (init, first, warm, (hwm, rss)) = result?;
    if item_sizes {
        print_item_sizes(&fixture).await;
    }
    samples.init_ms.push(millis(init));
    if let Some((latency, total)) = first {
        samples.first_ms.push(millis(latency));
        samples.exec_to_first_answer_ms.push(millis(total));
    }
    samples.warm_ms.extend(warm.into_iter().map(millis));
    samples.hwm_kb.push(hwm);
    samples.rss_after_kb.push(rss);
    Ok(())
}

// ---- statistics and report ------------------------------------------------------------------

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `median (p10–p90, min–max)`.
fn spread(values: &[f64], scale: f64, decimals: usize) -> String {
    let mut v: Vec<f64> = values.iter().map(|x| x / scale).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "n/a".into();
    }
    format!(
        "{:.d$} ({:.d$}–{:.d$}; {:.d$}–{:.d$})",
        median(&v),
        percentile(&v, 10.0),
        percentile(&v, 90.0),
        v[0],
        v[v.len() - 1],
        d = decimals
    )
}

fn parse_args() -> (usize, Vec<PathBuf>) {
    let mut runs = 20;
    let mut bins = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--runs takes a number");
        } else {
            bins.push(PathBuf::from(arg));
        }
    }
    if bins.is_empty() {
        let release = moto::workspace_root().join("target/release");
        bins = [
            "pancake",
            "pancake-pos",
            "abaha",
            "fulfilment",
            "invoice",
            "notifier",
        ]
        .iter()
        .map(|b| release.join(b))
        .collect();
    }
    (runs, bins)
}

fn targets(bins: &[PathBuf]) -> Vec<Target> {
    let mut out = Vec::new();
    for bin in bins {
        let source = bin
            .file_name()
            .and_then(|n| n.to_str())
            .expect("binary file name")
            .to_string();
        assert!(bin.is_file(), "{} is not a file", bin.display());
        let mut labels = vec![source.clone()];
        if source == "fulfilment" {
            labels.push("fulfilment-warm".into());
        }
        for label in labels {
            let (events, vars) = profile(&label);
            out.push(Target {
                log: std::env::temp_dir().join(format!("coldstart-{label}.log")),
                label,
                source: source.clone(),
                bin: bin.clone(),
                events: events
                    .into_iter()
                    .map(|e| (e.to_string(), load_event(e)))
                    .collect(),
                env: vars
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
    }
    out
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (runs, bins) = parse_args();
    let targets = targets(&bins);
    let endpoint = tokio::task::spawn_blocking(moto::endpoint)
        .await
        .expect("moto endpoint");
    for target in &targets {
        let _ = std::fs::remove_file(&target.log);
    }
    eprintln!(
        "moto at {endpoint}; {runs} runs × {} targets",
        targets.len()
    );
    // one unmeasured run each: page cache, moto's first-request costs
    let mut discard = Samples::default();
    for target in &targets {
        let sizes = target.label == "fulfilment";
        if let Err(e) = run_once(target, &endpoint, &mut discard, sizes).await {
            panic!(
                "{}: {e}\n(the function's output is in {})",
                target.label,
                target.log.display()
            );
        }
    }
    let mut results: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for run in 0..runs {
        for (target, samples) in targets.iter().zip(results.iter_mut()) {
            if let Err(e) = run_once(target, &endpoint, samples, false).await {
                eprintln!("run {run} {}: {e}", target.label);
                samples.failures.push(e);
            }
        }
        eprintln!("run {}/{runs} done", run + 1);
    }

    println!("runs per binary: {runs} (plus one discarded warm-up run)");
    println!("figures: median (p10–p90; min–max)\n");
    println!(
        "| binary | size (bytes) | init: exec → first `next` (ms) | first invocation (ms) | \
         exec → first answer (ms) | warm invocation (ms) | peak RSS VmHWM (MB) | failed runs |"
    );
    println!("| --- | ---: | --- | --- | --- | --- | --- | ---: |");
    for (target, s) in targets.iter().zip(&results) {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            target.label,
            file_size(&target.bin),
            spread(&s.init_ms, 1.0, 2),
            spread(&s.first_ms, 1.0, 2),
            spread(&s.exec_to_first_answer_ms, 1.0, 2),
            spread(&s.warm_ms, 1.0, 2),
            spread(&s.hwm_kb, 1024.0, 2),
            s.failures.len()
        );
    }
    println!();
    for (target, s) in targets.iter().zip(&results) {
        println!(
            "{}: samples {:?}; warm invocations per run {}; VmRSS after the last answer {} MB",
            target.label,
            target
                .events
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>(),
            target.events.len().saturating_sub(1),
            spread(&s.rss_after_kb, 1024.0, 2)
        );
        for failure in s.failures.iter().take(3) {
            println!("  failure: {failure}");
        }
    }
}
