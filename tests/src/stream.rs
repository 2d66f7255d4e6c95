//! The transitions table's DynamoDB stream, read from moto_server the way the Lambda
//! service's event source mapping reads it for the relay, and the relay's real binary fed
//! with it on the test Runtime API ([`crate::lambda`]).
//!
//! What the poller does, as the Lambda service does for a stream trigger with
//! `StartingPosition: TRIM_HORIZON`, `ReportBatchItemFailures` and `ParallelizationFactor`
//! 1: reads the shard in order (`GetShardIterator` + `GetRecords`, up to `batch_size`
//! records), invokes the function with `{"Records": [...]}` (each record as the stream gives
//! it, plus `eventSourceARN`), and then
//! - on a response naming no failure, checkpoints after the batch's last record;
//! - on a response naming failures, checkpoints just before the lowest failed sequence
//!   number, so the next batch starts at it;
//! - on a function error or a crash (the process exits mid-batch), retries the whole batch
//!   (a crashed process is started again, as Lambda starts a new execution environment).
//!
//! moto_server serves one shard per stream, so shard splits are not emulated (ARCHITECTURE
//! §6 says why they keep the order).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::aws::AwsFixture;
use crate::lambda::{build_function, Function, Outcome, RuntimeApi};

/// Where the next read starts.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    TrimHorizon,
    After(String),
    At(String),
}

/// A reader of one table's stream on moto (DynamoDB Streams' JSON API over plain HTTP).
pub struct StreamPoller {
    http: reqwest::Client,
    endpoint: String,
    stream_arn: String,
    shard_id: String,
    position: Position,
    batch_size: usize,
}

impl StreamPoller {
    /// The stream of `fixture`'s transitions table, from its oldest record.
    pub async fn transitions(fixture: &AwsFixture, batch_size: usize) -> Self {
        let table = fixture
            .dynamodb
            .describe_table()
            .table_name(&fixture.tables.transitions)
            .send()
            .await
            .expect("DescribeTable");
        let stream_arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the transitions table has a stream")
            .to_string();
        let mut poller = StreamPoller {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
            endpoint: fixture.endpoint.clone(),
            stream_arn,
            shard_id: String::new(),
            position: Position::TrimHorizon,
            batch_size,
        };
        let described = poller
            .call("DescribeStream", json!({"StreamArn": poller.stream_arn}))
            .await;
        let shards = described["StreamDescription"]["Shards"]
            .as_array()
            .expect("shards");
        assert_eq!(shards.len(), 1, "moto serves one shard: {described}");
        poller.shard_id = shards[0]["ShardId"].as_str().expect("shard id").to_string();
        poller
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    async fn call(&self, operation: &str, body: Value) -> Value {
        let response = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "x-amz-target",
                format!("DynamoDBStreams_20120810.{operation}"),
            )
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("stream response body");
        assert!(status.is_success(), "{operation}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{operation}: {e}: {text}"))
    }

    /// The next batch from the current position (the position does not move: see
    /// [`StreamPoller::settle`]), each record as the Lambda service hands it over.
    pub async fn batch(&self) -> Vec<Value> {
        let mut request = json!({"StreamArn": self.stream_arn, "ShardId": self.shard_id});
        match &self.position {
            Position::TrimHorizon => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
            Position::After(seq) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["SequenceNumber"] = json!(seq);
            }
            Position::At(seq) => {
                request["ShardIteratorType"] = json!("AT_SEQUENCE_NUMBER");
                request["SequenceNumber"] = json!(seq);
            }
        }
        let iterator = self.call("GetShardIterator", request).await["ShardIterator"].clone();
        let records = self
            .call(
                "GetRecords",
                json!({"ShardIterator": iterator, "Limit": self.batch_size}),
            )
            .await["Records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        records
            .into_iter()
            .map(|mut r| {
                r["eventSourceARN"] = json!(self.stream_arn);
                r
            })
            .collect()
    }

    /// Moves the position after `batch` given the function's partial batch response.
    pub fn settle(&mut self, batch: &[Value], response: &Value) {
        let failed: Vec<u128> = response["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        match failed.iter().min() {
            Some(first) => self.position = Position::At(first.to_string()),
            None => {
                if let Some(last) = batch.last() {
                    let seq = last["dynamodb"]["SequenceNumber"].as_str().expect("seq");
                    self.position = Position::After(seq.to_string());
                }
            }
        }
    }
}

/// What one round of [`RelayRig::round`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Round {
    /// The stream had nothing past the checkpoint.
    Idle,
    /// A batch went through; `failures` records named failed (0: checkpointed past it).
    Answered { records: usize, failures: usize },
    /// The function reported an error; the batch is retried.
    Errored,
    /// The process exited mid-batch; it was started again and the batch is retried.
    Crashed,
}

/// The relay binary on a test Runtime API, fed from the transitions stream.
pub struct RelayRig {
    pub api: RuntimeApi,
    pub poller: StreamPoller,
    bin: PathBuf,
    env: Vec<(String, String)>,
    pub function: Function,
    /// Invocations so far.
    pub invocations: usize,
}

/// The relay binary, built if stale.
pub async fn relay_binary() -> PathBuf {
    tokio::task::spawn_blocking(|| build_function("relay"))
        .await
        .expect("build task")
}

impl RelayRig {
    /// The relay of `fixture`'s queue, its SQS calls sent to `sqs_endpoint` (the fixture's
    /// endpoint, or a fault proxy in front of it), reading `batch_size` records per batch.
    pub async fn start(fixture: &AwsFixture, sqs_endpoint: &str, batch_size: usize) -> Self {
        let bin = relay_binary().await;
        let api = RuntimeApi::start().await;
        let mut env = api.lambda_env("relay");
        env.extend(
            [
                ("AWS_ENDPOINT_URL", sqs_endpoint),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                // one attempt per call: the stream's retry is what is under test
                ("AWS_MAX_ATTEMPTS", "1"),
                ("TRANSITIONS_QUEUE_URL", fixture.queue_url.as_str()),
                ("RUST_LOG", "info"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let function = Function::spawn(&bin, &env);
        RelayRig {
            api,
            poller: StreamPoller::transitions(fixture, batch_size).await,
            bin,
            env,
            function,
            invocations: 0,
        }
    }

    /// Starts a new process (after a crash), as Lambda starts a new environment.
    pub fn restart(&mut self) {
        self.function = Function::spawn(&self.bin, &self.env);
    }

    /// One batch: read, invoke, settle. `crash` is raced with the invocation: when it
    /// fires, the process is killed mid-batch.
    pub async fn round_or_crash(
        &mut self,
        crash: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Round {
        let batch = self.poller.batch().await;
        if batch.is_empty() {
            return Round::Idle;
        }
        self.invocations += 1;
        let answer = self.api.enqueue(json!({ "Records": batch }));
        let crash = async move {
            match crash {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = answer => outcome.ok(),
            _ = crash => None,
            _ = self.function.wait() => None,
        };
        match outcome {
            Some(Outcome::Response(response)) => {
                self.poller.settle(&batch, &response);
                let failures = response["batchItemFailures"].as_array().map_or(0, Vec::len);
                Round::Answered {
                    records: batch.len(),
                    failures,
                }
            }
            Some(Outcome::Error(_)) => Round::Errored,
            None => {
                self.function.kill().await;
                self.restart();
                Round::Crashed
            }
        }
    }

    pub async fn round(&mut self) -> Round {
        self.round_or_crash(None).await
    }

    /// Rounds until the stream is drained, at most `limit` of them (a relay that never
    /// catches up fails the test instead of hanging it); each round after a failure waits
    /// `backoff`, as the Lambda service does between retries.
    pub async fn drain(&mut self, limit: usize, backoff: Duration) -> Vec<Round> {
        let mut rounds = Vec::new();
        for _ in 0..limit {
            let round = self.round().await;
            let done = round == Round::Idle;
            let failed = !matches!(round, Round::Answered { failures: 0, .. } | Round::Idle);
            rounds.push(round);
            if done {
                return rounds;
            }
            if failed {
                tokio::time::sleep(backoff).await;
            }
        }
        panic!(
            "the relay did not drain the stream in {limit} rounds: {rounds:?}\n{}",
            self.function.output()
        );
    }
}
