//! `relay`: the trigger on the transitions table's DynamoDB stream (ARCHITECTURE §6). Each
//! batch's newly queued transitions go to the SQS FIFO queue in stream order
//! (`SendMessageBatch`, group = entity, deduplication id = transition id); the partial batch
//! response names the record the stream must retry from (`ReportBatchItemFailures`).

use webhook_core::runtime;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::serve_relay_lambda()
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
