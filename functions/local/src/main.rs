//! `webhooks-local`: serves every route of ARCHITECTURE §2 on 127.0.0.1:3000 over an embedded
//! SQLite store, with the notifier worker draining the embedded queue. With
//! `--store dynamodb` (`STORE=dynamodb`) it runs on the Lambdas' backends instead: the
//! DynamoDB tables and the SQS FIFO queue of `EVENTS_TABLE`, `ENTITIES_TABLE`,
//! `TRANSITIONS_TABLE` and `TRANSITIONS_QUEUE_URL` (`AWS_ENDPOINT_URL` points them at
//! moto_server); transitions then wait on the queue for the notifier Lambda, and no local
//! worker runs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use tracing::info;

use webhook_core::backends::sqlite::SqliteStore;
use webhook_core::clock::SystemClock;
use webhook_core::config::vars::{self, Binary};
use webhook_core::config::{Env, PipelineSettings, Var};
use webhook_core::credentials::CredentialAdmin;
use webhook_core::notify::{worker, Notifier, Target};
use webhook_core::{runtime, telemetry};

/// mimalloc instead of glibc's malloc: the SQLite writer thread frees what the request
/// threads allocated, and under load glibc's per-arena locks made those frees the writer's
/// most common reason to sleep (perf sched, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The variables behind the options, shown with them rather than in the environment list.
const OPTION_VARS: [&Var; 3] = [&vars::LISTEN_ADDR, &vars::SQLITE_PATH, &vars::STORE];

#[derive(Parser, Debug)]
#[command(
    name = "webhooks-local",
    about = "All webhook endpoints and the notifier in one process",
    after_help = vars::environment_help(Binary::Local, &OPTION_VARS)
)]
struct Args {
    #[arg(long, env = vars::LISTEN_ADDR.name, help = vars::LISTEN_ADDR.doc, default_value = vars::LISTEN_ADDR.default)]
    listen: String,
    #[arg(long, env = vars::SQLITE_PATH.name, help = vars::SQLITE_PATH.doc, default_value = vars::SQLITE_PATH.default)]
    db: PathBuf,
    #[arg(long, env = vars::STORE.name, help = vars::STORE.doc, value_enum, default_value = vars::STORE.default)]
    store: StoreKind,
    /// Serve only the webhook routes and /healthz: no web console under /console.
    #[arg(long)]
    no_console: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    Sqlite,
    Dynamodb,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_json_logs();
    let args = Args::parse();
    let env = Env::from_process();
    let settings = PipelineSettings::from_env(&env)?;
    let (backends, sqlite) = open_backends(&args, &env).await?;
    let served = webhook_console::Served::default();
    let handlers = webhooks_local::handlers(&env, &backends, served.refusals.clone())?;
    let routes: Vec<_> = handlers.keys().copied().collect();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let console = match args.no_console {
        true => None,
        false => Some(console_parts(&env, sqlite.as_ref(), listener.local_addr()?).await?),
    };
    let table_holds_credentials = match &sqlite {
        Some(store) => !store.credentials().all().await?.is_empty(),
        None => false,
    };
    webhooks_local::dev_credentials::check(&env, listener.local_addr()?, table_holds_credentials)
        .map_err(runtime::refuse_to_start)?;
    let app = webhooks_local::site(
        handlers,
        settings.max_body_bytes,
        backends.store.clone(),
        served,
        console,
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    // Same NOTIFY_URL / NOTIFY_SECRET / NOTIFY_TIMEOUT_MS as the notifier Lambda.
    let notify_target = Target::from_env(&env)?;
    let notifier = Arc::new(Notifier::new(
        notify_target,
        backends.store.clone(),
        Arc::new(SystemClock),
    ));
    // The embedded queue's worker and the TTL purge DynamoDB does by itself; on DynamoDB the
    // transitions wait on SQS for the notifier.
    let worker = sqlite.map(|store| {
        tokio::spawn(purge_expired(store.clone(), stop_rx.clone()));
        tokio::spawn(worker::run(
            Arc::new(store.outbox()),
            notifier,
            worker::WorkerSettings::default(),
            stop_rx,
        ))
    });

    info!(listen = %args.listen, store = ?args.store, db = %args.db.display(), ?routes, console = !args.no_console, "webhooks-local serving");
    // Timeouts, a connection cap and a bounded stop (ARCHITECTURE §9).
    webhook_console::server::serve(
        listener,
        app,
        webhook_console::server::Limits::default(),
        webhook_console::server::stop_signal(),
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    info!("webhooks-local stopped");
    Ok(())
}

/// The chosen store and queue, and the SQLite store itself when it is the embedded one.
async fn open_backends(
    args: &Args,
    env: &Env,
) -> anyhow::Result<(runtime::Backends, Option<SqliteStore>)> {
    Ok(match args.store {
        StoreKind::Sqlite => {
            let (backends, sqlite) = runtime::sqlite_backends(&args.db, env)
                .with_context(|| format!("opening {}", args.db.display()))?;
            (backends, Some(sqlite))
        }
        StoreKind::Dynamodb => (
            runtime::publishing_backends(env)
                .await
                .context("--store dynamodb")?,
            None,
        ),
    })
}

/// The console's ports (the serving SQLite store itself, or the Lambdas' AWS backends with
/// the DLQ) and its access rule for `addr`: beyond loopback without CONSOLE_TOKEN it
/// refuses to start, naming both ways out.
async fn console_parts(
    env: &Env,
    sqlite: Option<&SqliteStore>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<webhooks_local::ConsoleParts> {
    let access = webhook_console::ConsoleSettings::from_env(env)
        .access(
            addr,
            "or pass --no-console to serve only the webhook routes",
        )
        .map_err(runtime::refuse_to_start)?;
    let operator = match sqlite {
        Some(store) => runtime::sqlite_operator_over(store),
        None => runtime::aws_operator(env)
            .await
            .map_err(runtime::refuse_to_start)
            .context("the console on --store dynamodb (or pass --no-console)")?,
    };
    Ok(webhooks_local::ConsoleParts { operator, access })
}

/// Deletes event records past their `expires_at` (RETENTION_DAYS), and entities and
/// transitions past theirs (ENTITY_RETENTION_DAYS), at start and hourly.
async fn purge_expired(store: SqliteStore, mut stop: watch::Receiver<bool>) {
    loop {
        match store.purge_expired(time::OffsetDateTime::now_utc()).await {
            Ok(n) if n == Default::default() => {}
            Ok(n) => info!(
                events = n.events,
                entities = n.entities,
                transitions = n.transitions,
                dead_letters = n.dead_letters,
                "expired records purged"
            ),
            Err(e) => tracing::warn!(error = %e, "TTL purge failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
