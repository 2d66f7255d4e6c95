//! Per-test AWS resources on moto_server: three uniquely named tables and a FIFO queue, the
//! SDK clients (built the way the Lambdas build them, through `webhook_core::backends::aws::sdk`, with
//! dummy credentials passed explicitly), and helpers to look at the queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use webhook_core::backends::aws::dynamodb::{DynamoDbStore, Tables};
use webhook_core::backends::aws::sdk::{sdk_config, AwsSettings};
use webhook_core::backends::aws::sqs::SqsQueue;
use webhook_core::clock::FixedClock;
use webhook_core::config::PipelineSettings;
use webhook_core::metrics::MetricsSink;
use webhook_core::model::TransitionMessage;
use webhook_core::pipeline::{Handler, Pipeline};
use webhook_core::sources::Provider;
use webhook_core::store::Store;

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

/// Counts the requests an SDK client sends (every attempt, retries included), by operation,
/// and the HTTP status of those that got an answer; keeps each request's JSON body (what
/// [`crate::capacity`] prices) and can make a chosen request fail before it is sent (the
/// fault tests' "this step fails").
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    sent: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<(String, u16)>>>,
    log: Arc<Mutex<Vec<SentRequest>>>,
    /// Requests still to pass before the armed one fails (`None`: nothing armed).
    fail_in: Arc<Mutex<Option<usize>>>,
}

/// One request as sent: its operation, its JSON body, and the HTTP status it got (`None`:
/// no answer, or it failed before being sent).
#[derive(Debug, Clone, PartialEq)]
pub struct SentRequest {
    pub operation: String,
    pub body: serde_json::Value,
    pub status: Option<u16>,
}

impl SentRequest {
    /// Whether this request was answered 2xx (for a write: committed).
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The tables this request names (a transaction's items, a batch's tables).
    pub fn tables(&self) -> Vec<String> {
        let body = &self.body;
        let mut tables: Vec<String> = body["TableName"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect();
        for entry in body["TransactItems"].as_array().into_iter().flatten() {
            if let Some((_, spec)) = entry.as_object().and_then(|o| o.iter().next()) {
                tables.extend(spec["TableName"].as_str().map(str::to_string));
            }
        }
        tables.extend(
            body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(t, _)| t.clone()),
        );
        tables.sort();
        tables.dedup();
        tables
    }

    /// A write operation (`PutItem`, `UpdateItem`, `DeleteItem`, `TransactWriteItems`, …).
    pub fn is_write(&self) -> bool {
        matches!(
            self.operation.as_str(),
            "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
        )
    }
}

/// A request's place in the counter's log, carried from "sent" to "answered".
#[derive(Debug, Clone, Copy)]
struct Sequence(usize);

impl aws_smithy_types::config_bag::Storable for Sequence {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

impl RequestCounter {
    /// The operations sent since the last `take`, in order.
    pub fn take(&self) -> Vec<String> {
        self.answered.lock().expect("counter lock").clear();
        self.log.lock().expect("counter lock").clear();
        std::mem::take(&mut *self.sent.lock().expect("counter lock"))
    }

    /// Every request since the last `take`/`take_requests`, with its body and answer.
    pub fn take_requests(&self) -> Vec<SentRequest> {
        self.answered.lock().expect("counter lock").clear();
        self.sent.lock().expect("counter lock").clear();
        std::mem::take(&mut *self.log.lock().expect("counter lock"))
    }

    /// The requests since the last `take`, without clearing them.
    pub fn requests(&self) -> Vec<SentRequest> {
        self.log.lock().expect("counter lock").clone()
    }

    /// Write requests answered 2xx that name `table` (for a transaction: any of its items).
    pub fn committed_writes_to(&self, table: &str) -> usize {
        self.log
            .lock()
            .expect("counter lock")
            .iter()
            .filter(|r| r.is_write() && r.succeeded() && r.tables().iter().any(|t| t == table))
            .count()
    }

    /// Makes the `n`-th request from now (1 = the next one) fail before it is sent, once:
    /// the SDK call returns an error, as when the endpoint is unreachable for that request.
    pub fn fail_request(&self, n: usize) {
        assert!(n >= 1, "requests are counted from 1");
        *self.fail_in.lock().expect("counter lock") = Some(n - 1);
    }

    pub fn count(&self) -> usize {
        self.sent.lock().expect("counter lock").len()
    }

    /// Requests of `operation` sent (answered or not).
    pub fn count_of(&self, operation: &str) -> usize {
        self.sent
            .lock()
            .expect("counter lock")
            .iter()
            .filter(|o| *o == operation)
            .count()
    }

    /// Requests of `operation` answered with a 2xx status (for a write: committed).
    pub fn succeeded(&self, operation: &str) -> usize {
        self.answered
            .lock()
            .expect("counter lock")
            .iter()
            .filter(|(o, status)| o == operation && (200..300).contains(status))
            .count()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation(cfg);
        self.sent
            .lock()
            .expect("counter lock")
            .push(operation.clone());
        let body = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut log = self.log.lock().expect("counter lock");
        cfg.interceptor_state().store_put(Sequence(log.len()));
        log.push(SentRequest {
            operation: operation.clone(),
            body,
            status: None,
        });
        drop(log);
        let mut fail_in = self.fail_in.lock().expect("counter lock");
        match *fail_in {
            Some(0) => {
                *fail_in = None;
                Err(format!("injected fault: {operation} not sent").into())
            }
            Some(n) => {
                *fail_in = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let status = context.response().status().as_u16();
        self.answered
            .lock()
            .expect("counter lock")
            .push((operation(cfg), status));
        if let Some(Sequence(i)) = cfg.load::<Sequence>().copied() {
            if let Some(entry) = self.log.lock().expect("counter lock").get_mut(i) {
                entry.status = Some(status);
            }
        }
        Ok(())
    }
}

/// The ingest pipeline over the store of one fixture and the queue of another (or of the
/// same one), on SDK clients that count their requests, with the clock fixed and the
/// default settings.
pub struct CountedPipeline {
    pub pipeline: Arc<Pipeline>,
    /// The pipeline's store (reads through it are counted too).
    pub store: Arc<dyn Store>,
    /// The store's DynamoDB requests.
    pub dynamodb: RequestCounter,
    /// The queue's SQS requests.
    pub sqs: RequestCounter,
}

impl CountedPipeline {
    /// The pipeline over `tables`' store and `queue`'s queue, its clock at `now_unix`.
    pub fn new(tables: &AwsFixture, queue: &AwsFixture, now_unix: i64) -> Self {
        let (dynamodb, sqs) = (RequestCounter::default(), RequestCounter::default());
        let store: Arc<dyn Store> = Arc::new(tables.counted_store(&dynamodb));
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            Arc::new(queue.counted_queue(&sqs)),
            Arc::new(FixedClock::at_unix(now_unix)),
            PipelineSettings::default(),
        ));
        CountedPipeline {
            pipeline,
            store,
            dynamodb,
            sqs,
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
