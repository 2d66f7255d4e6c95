//! `notifier`: the SQS FIFO trigger (ARCHITECTURE §6). Each batch goes through the shared
//! notifier core; the raw `batchItemFailures` object is returned (`ReportBatchItemFailures`).
//! No `NOTIFY_URL`: transitions are written to the log as notifications.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use webhook_core::clock::SystemClock;
use webhook_core::config::Env;
use webhook_core::metrics::MetricsSink;
use webhook_core::notify::{batch, Notifier, Target};
use webhook_core::{runtime, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_json_logs();
    let env = Env::from_process();
    let store = runtime::dynamodb_store(&env)
        .await
        .map_err(runtime::refuse_to_start)?;
    let target = Target::from_env(&env).map_err(runtime::refuse_to_start)?;
    let notifier = Arc::new(
        Notifier::new(target, store, Arc::new(SystemClock)).with_metrics(MetricsSink::Emf),
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let notifier = notifier.clone();
        async move {
            batch::handle(&notifier, &event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
