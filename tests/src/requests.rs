//! Counting what an SDK client sends: every request's operation, JSON body and answer, kept
//! by an interceptor; the fault tests make a chosen request fail through the same hook.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

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
