//! `webhooks console`: the web console over the chosen store, until Ctrl-C or SIGTERM. It serves no
//! webhooks, so its chart shows stored events (rejections are counted where they were
//! answered: CloudWatch, or a running webhooks-local).

use webhook_console::server::{self, Limits};
use webhook_console::ConsoleSettings;
use webhook_core::config::Env;
use webhook_core::ops::Operator;

use crate::args::ConsoleArgs;
use crate::Failure;

pub async fn serve(op: &Operator, env: &Env, a: &ConsoleArgs) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", a.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", a.listen)))?;
    let access = ConsoleSettings::from_env(env)
        .access(
            addr,
            "or listen on a loopback address (--listen 127.0.0.1:3001)",
        )
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let app = webhook_console::router(op.clone(), access, None).route(
        "/",
        axum::routing::get(|| async { axum::response::Redirect::to(webhook_console::PREFIX) }),
    );
    eprintln!(
        "webhooks: console on http://{addr}{}",
        webhook_console::PREFIX
    );
    // The same limits as webhooks-local's server (ARCHITECTURE §9); Ctrl-C or SIGTERM stops it.
    webhook_console::server::serve(listener, app, Limits::default(), server::stop_signal()).await;
    Ok(())
}
