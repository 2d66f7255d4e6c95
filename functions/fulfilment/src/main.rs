//! `fulfilment`: POST /api/v1/fulfilment/webhook (DESIGN §2).

use webhook_core::config::{Env, Mode};
use webhook_core::{http::lambda, runtime, telemetry, Source};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_json_logs();
    let env = Env::from_process();
    let (backends, _outbox) = runtime::sqlite_backends(&runtime::lambda_sqlite_path(&env), &env)?;
    let handler =
        runtime::handler(Source::Fulfilment, &env, Mode::Lambda, &backends).inspect_err(|e| {
            tracing::error!(error = %e, "refusing to start: configuration error");
        })?;
    lambda::serve(handler).await.map_err(|e| anyhow::anyhow!(e))
}
