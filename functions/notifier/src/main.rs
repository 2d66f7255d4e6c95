//! `notifier`: the SQS FIFO trigger (ARCHITECTURE §6). Each batch goes through the shared
//! notifier core; the raw `batchItemFailures` object is returned (`ReportBatchItemFailures`).
//! No `NOTIFY_URL`: transitions are written to the log as notifications.

//! `NOTIFY_SECRET_ARN`: the signing keys are read from Secrets Manager, and again after a
//! rotation (`runtime::notifier_lambda`).

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use webhook_core::config::Env;
use webhook_core::notify::batch;
use webhook_core::{runtime, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_json_logs();
    let env = Env::from_process();
    let notifiers = Arc::new(
        runtime::notifier_lambda(&env)
            .await
            .map_err(runtime::refuse_to_start)?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let notifiers = notifiers.clone();
        async move {
            let notifier = notifiers.current().await;
            batch::handle(&notifier, &event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
