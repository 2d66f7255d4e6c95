//! Wiring shared by the binaries: builds a source's handler over the configured backends,
//! so each `functions/<name>/src/main.rs` stays a few lines.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::secrets::{Build, Live, References};
use crate::config::vars::{self, Binary};
use crate::config::{ConfigError, Env, Mode, PipelineSettings};
use crate::credentials::CredentialLookup;
use crate::http::lambda::{event_response, request_from_event};
use crate::metrics::MetricsSink;
use crate::model::Source;
use crate::pipeline::{Admitter, Handler, Pipeline};
use crate::queue::TransitionQueue;
use crate::refusals::RefusalSink;
use crate::sources::provider_from_env;
use crate::store::Store;

/// A store, the queue that goes with it, and the credential table beside them. The store is
/// whole (every port) because `webhooks-local` serves every client of it; [`pipeline`]
/// hands the ingest port alone to the pipeline, which is all an ingest Lambda keeps.
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn TransitionQueue>,
    pub credentials: Arc<dyn CredentialLookup>,
}

/// The embedded backends over the SQLite file at `path`: the store, which queues transitions
/// in its own transaction (so the pipeline's queue is the null [`crate::queue::AlreadyQueued`]),
/// and the concrete store for what only the embedded one needs (its outbox worker, TTL purge).
#[cfg(feature = "sqlite")]
pub fn sqlite_backends(
    path: &std::path::Path,
    env: &Env,
) -> Result<(Backends, crate::backends::sqlite::SqliteStore), crate::error::StoreError> {
    let full_sync = env
        .get(&crate::config::vars::SQLITE_SYNC)
        .is_some_and(|v| v.eq_ignore_ascii_case("full"));
    let store = crate::backends::sqlite::SqliteStore::open(path, full_sync)?;
    Ok((sqlite_backends_over(&store), store))
}

/// The embedded backends over an open store (a file, or an in-memory one in tests).
#[cfg(feature = "sqlite")]
pub fn sqlite_backends_over(store: &crate::backends::sqlite::SqliteStore) -> Backends {
    Backends {
        store: Arc::new(store.clone()),
        queue: Arc::new(crate::queue::AlreadyQueued),
        credentials: Arc::new(store.credentials()),
    }
}

/// The backends of the ingest Lambdas: the DynamoDB store and the null queue
/// [`crate::queue::AlreadyQueued`], as over the embedded store. The store records each
/// transition in its own write, and the transitions table's stream is the outbox: the relay
/// Lambda ([`serve_relay_lambda`]) sends what the stream carries to the FIFO queue, so ingest
/// answers after its durable write and nothing else (ARCHITECTURE §6, decision 60). Reads
/// `EVENTS_TABLE`, `ENTITIES_TABLE`, `TRANSITIONS_TABLE` (a missing one is named in the
/// error and the Lambda refuses to start), `DYNAMODB_TRANSACTION_LIMIT` (items per
/// transaction, default 100; moto_server needs 25), `CREDENTIALS_TABLE`, and the SDK's own
/// settings (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials: see
/// [`crate::backends::aws::sdk`]).
#[cfg(feature = "aws")]
pub async fn lambda_backends(env: &Env) -> Result<Backends, ConfigError> {
    let store = dynamodb_backend(env).await?;
    Ok(dynamodb_backends(
        env,
        store,
        Arc::new(crate::queue::AlreadyQueued),
    ))
}

/// The backends of `webhooks-local --store dynamodb`, which runs no relay: the DynamoDB
/// store and the SQS FIFO queue of `TRANSITIONS_QUEUE_URL`, published to by the pipeline
/// after each write (a transition whose send failed is sent again by the provider's retry,
/// or by `webhooks replay --undelivered`).
#[cfg(feature = "aws")]
pub async fn publishing_backends(env: &Env) -> Result<Backends, ConfigError> {
    let (store, queue) = aws_store_and_queue(env).await?;
    Ok(dynamodb_backends(env, store, Arc::new(queue)))
}

#[cfg(feature = "aws")]
fn dynamodb_backends(
    env: &Env,
    store: crate::backends::aws::DynamoDbStore,
    queue: Arc<dyn TransitionQueue>,
) -> Backends {
    let credentials: Arc<dyn CredentialLookup> = match aws_credentials(env, &store) {
        Some(table) => Arc::new(table),
        None => Arc::new(crate::credentials::NoCredentialTable),
    };
    Backends {
        store: Arc::new(store),
        queue,
        credentials,
    }
}

/// The credential table named by `CREDENTIALS_TABLE`, on the store's client; `None` when
/// unset (the environment's keys are then the only ones).
#[cfg(feature = "aws")]
fn aws_credentials(
    env: &Env,
    store: &crate::backends::aws::DynamoDbStore,
) -> Option<crate::backends::aws::DynamoDbCredentialTable> {
    let table = env.get(&vars::CREDENTIALS_TABLE)?;
    Some(crate::backends::aws::DynamoDbCredentialTable::new(
        store.client().clone(),
        table,
    ))
}

/// The concrete DynamoDB store and SQS queue over one SDK configuration (the operator needs
/// the queue's other ports too).
#[cfg(feature = "aws")]
async fn aws_store_and_queue(
    env: &Env,
) -> Result<
    (
        crate::backends::aws::DynamoDbStore,
        crate::backends::aws::SqsQueue,
    ),
    ConfigError,
> {
    let tables = crate::backends::aws::dynamodb::Tables::from_env(env)?;
    let queue_url = env.require(&crate::config::vars::TRANSITIONS_QUEUE_URL)?;
    let (store, config) = dynamodb_over(env, tables).await?;
    let queue =
        crate::backends::aws::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url);
    Ok((store, queue))
}

/// The IAM actions the backends of [`lambda_backends`] call, which template.yaml grants each
/// ingest function (TransactWriteItems is authorised per item, as PutItem, UpdateItem and
/// ConditionCheckItem; Query reads a tenant's signing secrets in the credential table, on
/// which the functions get GetItem and Query only). No SQS action: the relay sends.
/// Declared beside the wiring because what a binary calls follows from the backends it
/// builds; tests/tests/it/template/iam.rs holds the template's policies and the AWS adapters'
/// SDK calls to these lists.
pub const INGEST_AWS_ACTIONS: [&str; 6] = [
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
];

/// The IAM action the relay's code calls: `SendMessageBatch`, which IAM authorises as
/// `sqs:SendMessage`, on the transitions queue only. Reading the stream is the Lambda
/// service's work under the relay's role (`dynamodb:DescribeStream`, `GetShardIterator`,
/// `GetRecords`, `ListStreams` on the stream), and the failure destination's
/// `sqs:SendMessage` is the service's too; template.yaml grants those beside this.
pub const RELAY_AWS_ACTIONS: [&str; 1] = ["sqs:SendMessage"];

/// The IAM actions the notifier's [`dynamodb_store`] calls: it reads and writes delivery
/// records. Its queue is polled by the Lambda service, not by the code.
pub const NOTIFIER_AWS_ACTIONS: [&str; 2] = ["dynamodb:GetItem", "dynamodb:UpdateItem"];

/// The notifier's store: the DynamoDB tables of [`lambda_backends`] as the delivery port
/// alone (the notifier records delivery outcomes and sends nothing).
#[cfg(feature = "aws")]
pub async fn dynamodb_store(
    env: &Env,
) -> Result<Arc<dyn crate::store::DeliveryStore>, ConfigError> {
    Ok(Arc::new(dynamodb_backend(env).await?))
}

/// The whole DynamoDB store from the table variables of [`lambda_backends`].
#[cfg(feature = "aws")]
pub async fn dynamodb_backend(
    env: &Env,
) -> Result<crate::backends::aws::dynamodb::DynamoDbStore, ConfigError> {
    let tables = crate::backends::aws::dynamodb::Tables::from_env(env)?;
    Ok(dynamodb_over(env, tables).await?.0)
}

/// The DynamoDB store over `tables`, and the SDK configuration its client was made from
/// (for the other clients of the same process).
#[cfg(feature = "aws")]
async fn dynamodb_over(
    env: &Env,
    tables: crate::backends::aws::dynamodb::Tables,
) -> Result<(crate::backends::aws::DynamoDbStore, aws_config::SdkConfig), ConfigError> {
    let limit = transaction_limit(env)?;
    let settings = crate::backends::aws::sdk::AwsSettings::from_env(env)?;
    let config = crate::backends::aws::sdk::sdk_config(&settings).await;
    let store = crate::backends::aws::dynamodb::DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        tables,
    )
    .with_transaction_limit(limit);
    Ok((store, config))
}

/// `DYNAMODB_TRANSACTION_LIMIT`: 2 to 100 (DynamoDB's limit, the default).
#[cfg(feature = "aws")]
fn transaction_limit(env: &Env) -> Result<usize, ConfigError> {
    let var = &crate::config::vars::DYNAMODB_TRANSACTION_LIMIT;
    let max = crate::backends::aws::dynamodb::MAX_TRANSACTION_ITEMS;
    let limit = env.u64_or(var, max as u64)?;
    if !(2..=max as u64).contains(&limit) {
        return Err(ConfigError::Invalid {
            var: var.name,
            reason: format!("expected 2 to {max}, got {limit}"),
        });
    }
    Ok(limit as usize)
}

/// The operator's ports over the SQLite file at `path` (which must exist: an operator tool
/// never creates an empty store by mistake).
#[cfg(feature = "sqlite")]
pub fn sqlite_operator(
    path: &std::path::Path,
) -> Result<crate::ops::Operator, crate::error::StoreError> {
    if !path.is_file() {
        return Err(crate::error::StoreError::Unavailable(format!(
            "no database at {}",
            path.display()
        )));
    }
    let store = crate::backends::sqlite::SqliteStore::open(path, false)?;
    Ok(sqlite_operator_over(&store))
}

/// The operator's ports over an open SQLite store: `webhooks-local`'s console shares the
/// serving store (and its one writer thread) rather than opening the file again.
#[cfg(feature = "sqlite")]
pub fn sqlite_operator_over(store: &crate::backends::sqlite::SqliteStore) -> crate::ops::Operator {
    let outbox = Arc::new(store.outbox());
    crate::ops::Operator::new(crate::ops::OperatorPorts {
        credentials: Arc::new(store.credentials()),
        store: Arc::new(store.clone()),
        deliveries: Arc::new(store.clone()),
        queue: Arc::new(crate::queue::AlreadyQueued),
        requeue: outbox.clone(),
        dead_letters: outbox,
    })
}

/// The operator's ports on AWS: the Lambdas' tables and queue variables, plus
/// `TRANSITIONS_DLQ_URL` for the dead-letter queue.
#[cfg(feature = "aws")]
pub async fn aws_operator(env: &Env) -> Result<crate::ops::Operator, ConfigError> {
    use crate::backends::aws::SqsDeadLetters;
    let (store, queue) = aws_store_and_queue(env).await?;
    let dlq = SqsDeadLetters::new(env.require(&vars::TRANSITIONS_DLQ_URL)?, queue.clone());
    let credentials: Arc<dyn crate::credentials::CredentialAdmin> =
        match aws_credentials(env, &store) {
            Some(table) => Arc::new(table),
            None => Arc::new(crate::ops::credentials::UnconfiguredCredentialTable),
        };
    Ok(crate::ops::Operator::new(crate::ops::OperatorPorts {
        credentials,
        store: Arc::new(store.clone()),
        deliveries: Arc::new(store),
        queue: Arc::new(queue.clone()),
        requeue: Arc::new(queue),
        dead_letters: Arc::new(dlq),
    }))
}

/// Logs a start-up failure as one clear line, then hands it back for the binary to exit on.
pub fn refuse_to_start<E: std::fmt::Display>(err: E) -> E {
    tracing::error!(error = %err, "refusing to start: configuration error");
    err
}

/// How long a credential lookup is cached unless `CREDENTIALS_CACHE_SECS` says otherwise:
/// the longest a revocation waits to take effect.
pub(crate) const DEFAULT_CREDENTIALS_CACHE_SECS: u64 = 60;

/// The ingest pipeline over `backends` on `clock`: the settings of `env`, and the credential
/// table behind the lookup cache (`CREDENTIALS_CACHE_SECS`).
pub fn pipeline(
    env: &Env,
    backends: &Backends,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Pipeline>, ConfigError> {
    let ttl = env.u64_or(
        &vars::CREDENTIALS_CACHE_SECS,
        DEFAULT_CREDENTIALS_CACHE_SECS,
    )?;
    let admitter = Admitter::cached(backends.credentials.clone(), ttl, clock.clone());
    Ok(Arc::new(
        Pipeline::new(
            backends.store.clone(),
            backends.queue.clone(),
            clock,
            PipelineSettings::from_env(env)?,
        )
        .with_credentials(admitter)
        .asking_identity_epoch(),
    ))
}

/// The handler of one source over `backends`, reporting its refusals to `refusals` (the
/// null `refusals::NoRecord` in a Lambda, whose log line is the record; `webhooks-local`'s
/// `RecentRefusals`, which its console shows).
pub fn handler(
    source: Source,
    env: &Env,
    mode: Mode,
    backends: &Backends,
    refusals: Arc<dyn RefusalSink>,
) -> Result<Arc<Handler>, ConfigError> {
    let provider = provider_from_env(source, env, mode)?;
    let pipeline = pipeline(env, backends, Arc::new(SystemClock))?;
    let metrics = match mode {
        Mode::Lambda => MetricsSink::Emf,
        Mode::Local => MetricsSink::Off,
    };
    Ok(Arc::new(
        Handler::new(pipeline, provider, metrics).reporting_to(refusals),
    ))
}

/// The whole life of an ingest Lambda: JSON logs, configuration from the environment (a
/// missing or malformed setting, or a referenced secret that cannot be read, is one
/// `refusing to start` line naming the variable), the backends' SDK clients created once per
/// cold start, then `source`'s handler on the Lambda runtime until it stops.
#[cfg(feature = "aws")]
pub async fn serve_ingest_lambda(source: Source) -> Result<(), lambda_http::Error> {
    crate::telemetry::init_json_logs();
    let env = Env::from_process();
    let backends = lambda_backends(&env).await.map_err(refuse_to_start)?;
    let handlers = ingest_handlers(source, &env, &backends)
        .await
        .map_err(refuse_to_start)?;
    serve_lambda(Arc::new(handlers)).await
}

/// An ingest Lambda's handler, its provider built again (over the same pipeline, so the
/// credential table's cache survives) when a referenced secret changes: the provider's
/// `Guard` stays fixed at construction, and a rotation swaps the whole provider.
#[cfg(feature = "aws")]
pub async fn ingest_handlers(
    source: Source,
    env: &Env,
    backends: &Backends,
) -> Result<Live<Handler>, ConfigError> {
    let pipeline = pipeline(env, backends, Arc::new(SystemClock))?;
    let build: Build<Handler> = Box::new(move |env| {
        let provider = provider_from_env(source, env, Mode::Lambda)?;
        Ok(Handler::new(pipeline.clone(), provider, MetricsSink::Emf)
            .reporting_to(Arc::new(crate::refusals::NoRecord)))
    });
    live(env, Binary::of_source(source), build).await
}

/// The notifier Lambda's notifier, its target (and so its signing keys) built again when the
/// secret `NOTIFY_SECRET_ARN` names changes.
#[cfg(feature = "aws")]
pub async fn notifier_lambda(env: &Env) -> Result<Live<crate::notify::Notifier>, ConfigError> {
    let store = dynamodb_store(env).await?;
    let build: Build<crate::notify::Notifier> = Box::new(move |env| {
        let target = crate::notify::Target::from_env(env)?;
        Ok(
            crate::notify::Notifier::new(target, store.clone(), Arc::new(SystemClock))
                .with_metrics(MetricsSink::Emf),
        )
    });
    live(env, Binary::Notifier, build).await
}

/// `build` over `env` with `binary`'s Secrets Manager references read (at init: a secret that
/// cannot be read refuses the start) and read again every `SECRETS_CACHE_SECS`; without
/// references, built once and no Secrets Manager client is made.
#[cfg(feature = "aws")]
pub async fn live<T: Send + Sync>(
    env: &Env,
    binary: Binary,
    build: Build<T>,
) -> Result<Live<T>, ConfigError> {
    let references = References::from_env(env, binary)?;
    if references.is_empty() {
        return Live::fixed(env, build);
    }
    let settings = crate::backends::aws::sdk::AwsSettings::from_env(env)?;
    let config = crate::backends::aws::sdk::sdk_config(&settings).await;
    let store =
        crate::backends::aws::SecretsManager::new(aws_sdk_secretsmanager::Client::new(&config));
    Live::start(
        env,
        references,
        Arc::new(store),
        Arc::new(SystemClock),
        build,
    )
    .await
}

/// The whole life of the relay Lambda (ARCHITECTURE §6): JSON logs, the SQS FIFO queue of
/// `TRANSITIONS_QUEUE_URL` (a missing one refuses to start), then each batch of the
/// transitions table's stream through [`crate::relay`], answered with the partial batch
/// response (`ReportBatchItemFailures`: the sequence number the stream retries from).
#[cfg(feature = "aws")]
pub async fn serve_relay_lambda() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::dynamodb::Event;
    crate::telemetry::init_json_logs();
    let env = Env::from_process();
    let queue = relay_queue(&env).await.map_err(refuse_to_start)?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Event>| {
            let queue = queue.clone();
            async move {
                let records = relay_records(&event.payload);
                let report =
                    crate::relay::relay_and_report(queue.as_ref(), &records, MetricsSink::Emf)
                        .await;
                Ok::<_, lambda_runtime::Error>(relay_response(report))
            }
        },
    ))
    .await
}

/// The relay's queue: the SQS FIFO queue of `TRANSITIONS_QUEUE_URL`.
#[cfg(feature = "aws")]
pub async fn relay_queue(env: &Env) -> Result<Arc<dyn TransitionQueue>, ConfigError> {
    let queue_url = env.require(&vars::TRANSITIONS_QUEUE_URL)?;
    let settings = crate::backends::aws::sdk::AwsSettings::from_env(env)?;
    let config = crate::backends::aws::sdk::sdk_config(&settings).await;
    Ok(Arc::new(crate::backends::aws::SqsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        queue_url,
    )))
}

/// A stream batch as the relay's records: the transitions-table decoding of each.
#[cfg(feature = "aws")]
pub fn relay_records(
    event: &aws_lambda_events::event::dynamodb::Event,
) -> Vec<crate::relay::Record> {
    use crate::backends::aws::dynamodb::stream;
    event
        .records
        .iter()
        .map(|r| crate::relay::Record {
            id: stream::sequence_number(r).unwrap_or_default().to_string(),
            message: stream::queued_message(r),
        })
        .collect()
}

/// The partial batch response: the first record not handled, from which the stream retries.
#[cfg(feature = "aws")]
pub(crate) fn relay_response(
    report: crate::relay::Report,
) -> aws_lambda_events::event::streams::DynamoDbEventResponse {
    let mut response = aws_lambda_events::event::streams::DynamoDbEventResponse::default();
    if let Some(id) = report.first_failed {
        let mut failure = aws_lambda_events::event::streams::DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(id);
        response.batch_item_failures.push(failure);
    }
    response
}

/// Serves one source's handler on the Lambda runtime until the runtime stops, each event on
/// the handler current at its arrival. The API Gateway v2 event is read by
/// [`request_from_event`], not converted by `lambda_http`, whose conversion panics on some
/// events (see `http::lambda`): every event gets an answer.
pub(crate) async fn serve_lambda(handlers: Arc<Live<Handler>>) -> Result<(), lambda_http::Error> {
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayV2httpRequest>| {
            let handlers = handlers.clone();
            async move {
                let handler = handlers.current().await;
                let request_id = event.context.request_id.clone();
                let response = match request_from_event(&event.payload, Some(request_id)) {
                    Ok(raw) => handler.handle(&raw).await,
                    Err(err) => {
                        let size = event.payload.body.as_deref().map_or(0, str::len);
                        handler.refuse(err, Some(&event.context.request_id), size)
                    }
                };
                Ok::<_, lambda_http::Error>(event_response(response))
            }
        },
    ))
    .await
}
