//! `fulfilment`: POST /api/v1/fulfilment/webhook (ARCHITECTURE §2). Everything but the source is shared by the
//! ingest Lambdas: see `runtime::serve_ingest_lambda`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhook_core::runtime::serve_ingest_lambda(webhook_core::Source::Fulfilment)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
