//! The AWS backend: the DynamoDB store and the SQS FIFO queue, and Secrets Manager for
//! credential references, over SDK clients configured once per cold start ([`sdk`]).

pub mod credential_table;
pub mod dlq;
pub mod dynamodb;
pub mod sdk;
pub mod secrets;
pub mod sqs;

pub use credential_table::DynamoDbCredentialTable;
pub use dlq::SqsDeadLetters;
pub use dynamodb::{DynamoDbStore, Tables};
pub use secrets::SecretsManager;
pub use sqs::SqsQueue;
