//! A backend under test: a store, the queue that goes with it, and a way to look at what
//! was queued. The conformance suite is written once against [`Kit`] and run on each.

use std::sync::Arc;

use webhook_core::backends::aws::SqsDeadLetters;
use webhook_core::backends::sqlite::Outbox;
use webhook_core::config::Env;
use webhook_core::credentials::{CredentialAdmin, CredentialLookup};
use webhook_core::model::TransitionMessage;
use webhook_core::ops::{Operator, OperatorPorts};
use webhook_core::queue::{PullQueue, Settlement, TransitionQueue};
use webhook_core::runtime::{sqlite_backends, Backends};
use webhook_core::store::Store;

use crate::aws::{AwsFixture, QueuedMessage};

enum Probe {
    Outbox(Outbox),
    Sqs(Box<AwsFixture>),
}

pub struct Kit {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    /// The credential table beside the store: what ingest reads and what the CLI writes.
    pub credentials: Arc<dyn CredentialLookup>,
    pub credential_admin: Arc<dyn CredentialAdmin>,
    pub queue: Arc<dyn TransitionQueue>,
    probe: Probe,
    /// Holds the SQLite file's folder for the kit's lifetime.
    _dir: Option<tempfile::TempDir>,
}

impl Kit {
    /// The embedded backends, over a fresh SQLite file (WAL, as in local mode).
    pub fn sqlite() -> Kit {
        let dir = tempfile::tempdir().expect("temp dir");
        let (Backends { store, queue, .. }, sqlite) =
            sqlite_backends(&dir.path().join("webhooks.db"), &Env::default())
                .expect("opening sqlite");
        Kit {
            name: "sqlite",
            store,
            credentials: Arc::new(sqlite.credentials()),
            credential_admin: Arc::new(sqlite.credentials()),
            queue,
            probe: Probe::Outbox(sqlite.outbox()),
            _dir: Some(dir),
        }
    }

    /// DynamoDB + SQS FIFO on moto_server, with fresh tables and queue for `test`.
    pub async fn dynamodb(test: &str) -> Kit {
        let fixture = AwsFixture::new(test).await;
        Kit {
            name: "dynamodb",
            store: Arc::new(fixture.store()),
            credentials: Arc::new(fixture.credentials()),
            credential_admin: Arc::new(fixture.credentials()),
            queue: Arc::new(fixture.queue()),
            probe: Probe::Sqs(Box::new(fixture)),
            _dir: None,
        }
    }

    /// The SQLite file, on the SQLite kit (its WAL is beside it, `-wal` appended).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("webhooks.db"))
    }

    /// The AWS resources, on the DynamoDB kit.
    pub fn aws(&self) -> Option<&AwsFixture> {
        match &self.probe {
            Probe::Sqs(f) => Some(f),
            Probe::Outbox(_) => None,
        }
    }

    /// Messages queued and not yet consumed (without consuming them).
    pub async fn queue_depth(&self) -> u64 {
        match &self.probe {
            Probe::Outbox(outbox) => outbox.depth().await.expect("outbox depth"),
            Probe::Sqs(f) => f.queue_depth().await,
        }
    }

    /// The operator's ports over this kit's backends (the DynamoDB kit gets a DLQ of its own).
    pub async fn operator(&self) -> Operator {
        match &self.probe {
            Probe::Outbox(outbox) => Operator::new(OperatorPorts {
                store: self.store.clone(),
                deliveries: self.store.clone(),
                queue: self.queue.clone(),
                requeue: Arc::new(outbox.clone()),
                dead_letters: Arc::new(outbox.clone()),
                credentials: self.credential_admin.clone(),
            }),
            Probe::Sqs(f) => {
                let dlq = f.create_dlq().await;
                Operator::new(OperatorPorts {
                    store: self.store.clone(),
                    deliveries: self.store.clone(),
                    queue: self.queue.clone(),
                    requeue: Arc::new(f.queue()),
                    dead_letters: Arc::new(SqsDeadLetters::new(dlq, f.queue())),
                    credentials: self.credential_admin.clone(),
                })
            }
        }
    }

    /// Dead-letters `message` as the backend would after its last failed receive.
    pub async fn dead_letter(&self, message: &TransitionMessage) {
        let body = serde_json::to_string(message).expect("message json");
        match &self.probe {
            Probe::Outbox(outbox) => {
                outbox.publish(message).await.expect("outbox publish");
                let got = outbox.receive(i64::MAX / 2, 100, 0).await.expect("receive");
                let m = got
                    .iter()
                    .find(|m| m.body == body)
                    .expect("the message is handed out");
                let nack = Settlement::nack(m, 0, 1, true, "receiver answered 410");
                outbox.settle(vec![nack]).await.expect("settle");
            }
            Probe::Sqs(f) => f.send_to_dlq(&body, &message.group_id()).await,
        }
    }

    /// Consumes every queued message, in order within each group.
    pub async fn drain_queue(&self) -> Vec<QueuedMessage> {
        match &self.probe {
            Probe::Outbox(outbox) => {
                let mut out = Vec::new();
                loop {
                    let batch = outbox
                        .receive(i64::MAX / 2, 100, 0)
                        .await
                        .expect("outbox receive");
                    if batch.is_empty() {
                        return out;
                    }
                    for m in batch {
                        let message: webhook_core::model::TransitionMessage =
                            serde_json::from_str(&m.body).expect("outbox body");
                        out.push(QueuedMessage {
                            group_id: m.group_id.clone(),
                            dedup_id: message.transition_id,
                            body: m.body.clone(),
                        });
                        outbox.ack(m.seq).await.expect("outbox ack");
                    }
                }
            }
            Probe::Sqs(f) => f.drain_queue().await,
        }
    }
}

/// Runs each listed `async fn case(kit: &Kit)` of the calling module on every backend: a
/// `sqlite` and a `dynamodb` test module, one test per case each (the conformance pattern:
/// backend differences are test parameters, the cases are written once).
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&$crate::kit::Kit::sqlite()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let kit = $crate::kit::Kit::dynamodb(stringify!($case)).await;
                    super::$case(&kit).await;
                }
            )*
        }
    };
}
