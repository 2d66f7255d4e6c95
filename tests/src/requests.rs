//! Counting what an SDK client sends: every request's operation, JSON body and answer, kept
//! by an interceptor; the fault tests make a chosen request fail through the same hook,
//! before it is sent or after DynamoDB has applied it (its answer lost).

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeDeserializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Counts the requests an SDK client sends (every attempt, retries included), by operation,
/// and the HTTP status of those that got an answer; keeps each request's JSON body (what
/// [`crate::capacity`] prices) and can make a chosen request fail, before it is sent (the
/// fault tests' "this step fails") or after it was applied ("this step's answer is lost").
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    sent: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<(String, u16)>>>,
    log: Arc<Mutex<Vec<SentRequest>>>,
    /// Requests still to pass before the armed one fails (`None`: nothing armed).
    fail_in: Arc<Mutex<Option<usize>>>,
    /// Requests still to pass before the armed one's answer is lost (`None`: nothing armed).
    lose_in: Arc<Mutex<Option<usize>>>,
    /// How many attempts of that request lose their answer.
    lose_attempts: Arc<Mutex<u32>>,
}

/// One request as sent: its operation, its JSON body, and the HTTP status DynamoDB answered
/// (`None`: no answer, or it failed before being sent). A lost answer keeps the status
/// DynamoDB gave it: the log says what was applied, whatever the client was told.
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

impl Storable for Sequence {
    type Storer = StoreReplace<Self>;
}

/// Kept on an operation whose answers are lost (its attempts share the operation's bag):
/// how many more of its attempts lose theirs.
#[derive(Debug, Clone, Copy)]
struct Losing(u32);

impl Storable for Losing {
    type Storer = StoreReplace<Self>;
}

/// Counts one request down on an armed `slot`: whether this one is the armed request.
fn arrived(slot: &Mutex<Option<usize>>) -> bool {
    let mut slot = slot.lock().expect("counter lock");
    match *slot {
        Some(0) => {
            *slot = None;
            true
        }
        Some(n) => {
            *slot = Some(n - 1);
            false
        }
        None => false,
    }
}

/// What the client is handed instead of a lost answer: DynamoDB's own "may or may not have
/// been applied" error, a 500 `InternalServerError`, which the SDK's standard retry mode
/// retries like a timed-out attempt.
fn lost_answer() -> HttpResponse {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault: the answer was lost"}"#;
    let status = StatusCode::try_from(500).expect("500 is a status");
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
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

    /// Lets the `n`-th request from now (1 = the next one) reach DynamoDB and be applied, but
    /// hands the client a 500 instead of the answer, for its first `attempts` attempts (the
    /// SDK's own retries of it are the same request): a response lost on its way back. With
    /// `attempts` at least the client's maximum, the SDK call fails after its retries.
    pub fn lose_answer(&self, n: usize, attempts: u32) {
        assert!(n >= 1, "requests are counted from 1");
        *self.lose_attempts.lock().expect("counter lock") = attempts;
        *self.lose_in.lock().expect("counter lock") = Some(n - 1);
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
        // a retry of a request whose answers are lost is that same request, not the next
        if cfg.load::<Losing>().is_none() && arrived(&self.lose_in) {
            let attempts = *self.lose_attempts.lock().expect("counter lock");
            cfg.interceptor_state().store_put(Losing(attempts));
        }
        if arrived(&self.fail_in) {
            return Err(format!("injected fault: {operation} not sent").into());
        }
        Ok(())
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

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<Losing>().copied() {
            Some(Losing(left)) if left > 0 => {
                cfg.interceptor_state().store_put(Losing(left - 1));
                *context.response_mut() = lost_answer();
            }
            _ => {}
        }
        Ok(())
    }
}
