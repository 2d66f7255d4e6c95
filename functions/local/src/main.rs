//! `webhooks-local`: serves every route of DESIGN §2 on 127.0.0.1:3000 over an embedded
//! SQLite store, with the notifier worker draining the embedded queue.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use tracing::info;

use webhook_core::clock::SystemClock;
use webhook_core::config::{Env, PipelineSettings};
use webhook_core::notify::{worker, Notifier, Target};
use webhook_core::{runtime, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "webhooks-local",
    about = "All webhook endpoints and the notifier in one process"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    listen: String,
    /// SQLite database file.
    #[arg(long, env = "SQLITE_PATH", default_value = ".data/webhooks.db")]
    db: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_json_logs();
    let args = Args::parse();
    let env = Env::from_process();
    let settings = PipelineSettings::from_env(&env)?;
    let (backends, outbox) = runtime::sqlite_backends(&args.db, &env)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let handlers = webhooks_local::handlers(&env, &backends)?;
    let routes: Vec<_> = handlers.keys().copied().collect();
    let app = webhooks_local::app(handlers, settings.max_body_bytes);

    let (stop_tx, stop_rx) = watch::channel(false);
    let notifier = Arc::new(Notifier::new(
        Target::Log,
        backends.store.clone(),
        Arc::new(SystemClock),
    ));
    let worker = tokio::spawn(worker::run(
        outbox,
        notifier,
        worker::WorkerSettings::default(),
        stop_rx,
    ));

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    info!(listen = %args.listen, db = %args.db.display(), ?routes, "webhooks-local serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = stop_tx.send(true);
    let _ = worker.await;
    info!("webhooks-local stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
