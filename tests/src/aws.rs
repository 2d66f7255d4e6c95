//! Per-test AWS resources on moto_server: three uniquely named tables and a FIFO queue, the
//! SDK clients (built the way the Lambdas build them, through `webhook_core::backends::aws::sdk`, with
//! dummy credentials passed explicitly), and helpers to look at the queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use webhook_core::backends::aws::dynamodb::{DynamoDbStore, Tables};
use webhook_core::backends::aws::sdk::{sdk_config, AwsSettings};
use webhook_core::backends::aws::sqs::SqsQueue;
use webhook_core::backends::aws::DynamoDbCredentialTable;
use webhook_core::clock::FixedClock;
use webhook_core::config::PipelineSettings;
use webhook_core::metrics::MetricsSink;
use webhook_core::model::TransitionMessage;
use webhook_core::pipeline::Admitter;
use webhook_core::pipeline::{Handler, Pipeline};
use webhook_core::sources::Provider;
use webhook_core::store::Store;

pub use crate::requests::{RequestCounter, SentRequest};

/// moto 5.2 still enforces the original limit of 25 items per `TransactWriteItems`
/// (DynamoDB's is 100), so stores used against moto are configured with it.
pub const MOTO_TRANSACTION_LIMIT: usize = 25;

/// A name unique across test processes sharing one moto_server: the test's name, the
/// process id, a counter and the clock.
pub fn unique_name(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let clean: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect();
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "{clean}-{}-{}-{millis}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A message read back from the FIFO queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
}

impl QueuedMessage {
    pub fn message(&self) -> TransitionMessage {
        serde_json::from_str(&self.body).expect("queued body is a TransitionMessage")
    }
}

/// The ingest pipeline over the store of one fixture and the queue of another (or of the
/// same one), on SDK clients that count their requests, with the clock fixed and the
/// default settings; optionally admitting the credential table's credentials too.
pub struct CountedPipeline {
    pub pipeline: Arc<Pipeline>,
    /// The pipeline's store (reads through it are counted too).
    pub store: Arc<dyn Store>,
    /// The store's DynamoDB requests.
    pub dynamodb: RequestCounter,
    /// The queue's SQS requests.
    pub sqs: RequestCounter,
    /// The credential table's DynamoDB requests (none without the table).
    pub credentials: RequestCounter,
}

impl CountedPipeline {
    /// The pipeline over `tables`' store and `queue`'s queue, its clock at `now_unix`; the
    /// environment's credentials only.
    pub fn new(tables: &AwsFixture, queue: &AwsFixture, now_unix: i64) -> Self {
        Self::admitting(tables, Some(queue), now_unix, None)
    }

    /// The pipeline as the ingest Lambdas build it (`runtime::lambda_backends`,
    /// `runtime::pipeline`): the store over `tables`, the null queue (the relay sends from
    /// the table's stream), so `sqs` counts nothing, asking the store's identity epoch.
    pub fn as_lambda(tables: &AwsFixture, now_unix: i64) -> Self {
        Self::admitting(tables, None, now_unix, None)
    }

    /// [`CountedPipeline::as_lambda`] admitting the credential table's credentials too.
    pub fn as_lambda_with_credential_table(
        tables: &AwsFixture,
        now_unix: i64,
        cache_secs: u64,
    ) -> Self {
        Self::admitting(tables, None, now_unix, Some(cache_secs))
    }

    /// The same, also admitting the credentials of `tables`' credential table as a Lambda
    /// with `CREDENTIALS_TABLE` does: read through a counted client, behind the Lambdas'
    /// cache of `cache_secs` (so what a cold and a cached lookup cost can be counted).
    pub fn with_credential_table(
        tables: &AwsFixture,
        queue: &AwsFixture,
        now_unix: i64,
        cache_secs: u64,
    ) -> Self {
        Self::admitting(tables, Some(queue), now_unix, Some(cache_secs))
    }

    fn admitting(
        tables: &AwsFixture,
        queue: Option<&AwsFixture>,
        now_unix: i64,
        cache_secs: Option<u64>,
    ) -> Self {
        let (dynamodb, sqs) = (RequestCounter::default(), RequestCounter::default());
        let credentials = RequestCounter::default();
        let store: Arc<dyn Store> = Arc::new(tables.counted_store(&dynamodb));
        let clock = Arc::new(FixedClock::at_unix(now_unix));
        // The ingest Lambdas' pipeline: the null queue, and asking the store's identity
        // epoch (`runtime::pipeline`).
        let as_lambda = queue.is_none();
        let queue: Arc<dyn webhook_core::queue::TransitionQueue> = match queue {
            Some(q) => Arc::new(q.counted_queue(&sqs)),
            None => Arc::new(webhook_core::queue::AlreadyQueued),
        };
        let mut pipeline = Pipeline::new(
            store.clone(),
            queue,
            clock.clone(),
            PipelineSettings::default(),
        );
        if let Some(ttl) = cache_secs {
            let table = Arc::new(tables.counted_credentials(&credentials));
            pipeline = pipeline.with_credentials(Admitter::cached(table, ttl, clock));
        }
        if as_lambda {
            pipeline = pipeline.asking_identity_epoch();
        }
        CountedPipeline {
            pipeline: Arc::new(pipeline),
            store,
            dynamodb,
            sqs,
            credentials,
        }
    }

    /// `provider`'s handler over the pipeline (metrics off).
    pub fn handler(&self, provider: Arc<dyn Provider>) -> Handler {
        Handler::new(self.pipeline.clone(), provider, MetricsSink::Off)
    }
}

/// Three tables and a FIFO queue of one test, on one moto endpoint.
pub struct AwsFixture {
    pub endpoint: String,
    pub config: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tables: Tables,
    /// The credential table (`CREDENTIALS_TABLE`).
    pub credentials_table: String,
    pub queue_name: String,
    pub queue_url: String,
}

impl AwsFixture {
    /// Creates the resources of `test` on the shared moto endpoint, reached through the
    /// serialising proxy (see [`crate::proxy`]: moto lacks DynamoDB's per-request isolation).
    pub async fn new(test: &str) -> Self {
        Self::on(&crate::proxy::serialised_moto(), test).await
    }

    /// Creates the resources of `test` on `endpoint`.
    pub async fn on(endpoint: &str, test: &str) -> Self {
        let config = sdk_config(&AwsSettings::emulator(endpoint)).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let prefix = unique_name(test);
        let fixture = AwsFixture {
            endpoint: endpoint.to_string(),
            tables: Tables::with_prefix(&prefix),
            credentials_table: format!("{prefix}-credentials"),
            queue_name: format!("{prefix}.fifo"),
            queue_url: String::new(),
            config,
            dynamodb,
            sqs,
        };
        fixture.create_tables().await;
        let queue_url = fixture.create_queue().await;
        AwsFixture {
            queue_url,
            ..fixture
        }
    }

    /// (Re)creates the tables (idempotent).
    pub async fn create_tables(&self) {
        self.store()
            .create_tables()
            .await
            .unwrap_or_else(|e| panic!("creating tables on {}: {e}", self.endpoint));
        self.credentials()
            .create_table()
            .await
            .unwrap_or_else(|e| panic!("creating the credential table on {}: {e}", self.endpoint));
    }

    /// The credential table's adapter.
    pub fn credentials(&self) -> DynamoDbCredentialTable {
        DynamoDbCredentialTable::new(self.dynamodb.clone(), &self.credentials_table)
    }

    /// The credential table over a client that counts its requests.
    pub fn counted_credentials(&self, counter: &RequestCounter) -> DynamoDbCredentialTable {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.config)
            .interceptor(counter.clone())
            .build();
        DynamoDbCredentialTable::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            &self.credentials_table,
        )
    }

    /// (Re)creates the FIFO queue (idempotent: same name, same URL) and returns its URL.
    pub async fn create_queue(&self) -> String {
        let response = self
            .sqs
            .create_queue()
            .queue_name(&self.queue_name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating queue on {}: {e:?}", self.endpoint));
        response.queue_url().expect("queue url").to_string()
    }

    /// A FIFO dead-letter queue beside the transitions queue (idempotent); its URL.
    pub async fn create_dlq(&self) -> String {
        let name = self.queue_name.replace(".fifo", "-dlq.fifo");
        self.sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating the DLQ on {}: {e:?}", self.endpoint))
            .queue_url()
            .expect("queue url")
            .to_string()
    }

    /// Puts `body` in the DLQ, as SQS's redrive policy would after the last receive.
    pub async fn send_to_dlq(&self, body: &str, group: &str) {
        let dlq = self.create_dlq().await;
        self.sqs
            .send_message()
            .queue_url(dlq)
            .message_group_id(group)
            .message_deduplication_id(format!("dead-{}", body.len()))
            .message_body(body)
            .send()
            .await
            .expect("SendMessage to the DLQ");
    }

    /// The store, as the Lambdas configure it (with moto's transaction limit).
    pub fn store(&self) -> DynamoDbStore {
        DynamoDbStore::new(self.dynamodb.clone(), self.tables.clone())
            .with_transaction_limit(MOTO_TRANSACTION_LIMIT)
    }

    /// The store over a client that counts its requests.
    pub fn counted_store(&self, counter: &RequestCounter) -> DynamoDbStore {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.config)
            .interceptor(counter.clone())
            .build();
        DynamoDbStore::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            self.tables.clone(),
        )
        .with_transaction_limit(MOTO_TRANSACTION_LIMIT)
    }

    pub fn queue(&self) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), &self.queue_url)
    }

    /// The queue over a client that counts its requests.
    pub fn counted_queue(&self, counter: &RequestCounter) -> SqsQueue {
        let config = aws_sdk_sqs::config::Builder::from(&self.config)
            .interceptor(counter.clone())
            .build();
        SqsQueue::new(aws_sdk_sqs::Client::from_conf(config), &self.queue_url)
    }

    /// The variables a Lambda binary needs to run on these resources.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("EVENTS_TABLE", self.tables.events.as_str()),
            ("ENTITIES_TABLE", self.tables.entities.as_str()),
            ("TRANSITIONS_TABLE", self.tables.transitions.as_str()),
            ("TRANSITIONS_QUEUE_URL", self.queue_url.as_str()),
            ("DYNAMODB_TRANSACTION_LIMIT", "25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Messages in the queue, visible or in flight, without receiving them (so SQS
    /// deduplication still sees them: moto forgets a deleted message's deduplication id).
    pub async fn queue_depth(&self) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| -> u64 {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    /// Receives and deletes every visible message, in queue order per group.
    pub async fn drain_queue(&self) -> Vec<QueuedMessage> {
        let mut out = Vec::new();
        loop {
            let response = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(30)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = response.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                let attributes: HashMap<_, _> = m.attributes.clone().unwrap_or_default();
                out.push(QueuedMessage {
                    group_id: attributes
                        .get(&MessageSystemAttributeName::MessageGroupId)
                        .cloned()
                        .unwrap_or_default(),
                    dedup_id: attributes
                        .get(&MessageSystemAttributeName::MessageDeduplicationId)
                        .cloned()
                        .unwrap_or_default(),
                    body: m.body.clone().unwrap_or_default(),
                });
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle.as_deref().expect("receipt handle"))
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }
}
