//! `abaha`: POST /api/v1/abaha/webhook (DESIGN §2). Config from the environment, the backends'
//! clients created once per cold start, then the shared handler on the Lambda runtime.

use webhook_core::config::{Env, Mode};
use webhook_core::{runtime, telemetry, Source};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_json_logs();
    let env = Env::from_process();
    let backends = runtime::lambda_backends(&env)
        .await
        .map_err(runtime::refuse_to_start)?;
    let handler = runtime::handler(Source::Abaha, &env, Mode::Lambda, &backends)
        .map_err(runtime::refuse_to_start)?;
    runtime::serve_lambda(handler)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
