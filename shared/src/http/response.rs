//! Provider-shaped responses (ARCHITECTURE §7). Every source picks one style; the status code
//! comes from the outcome, so the shapes cannot drift from the error enum.

use serde_json::{json, Value};

use super::RawResponse;
use crate::error::IngestError;
use crate::model::Accepted;

/// The response body shape a provider expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStyle {
    /// Pancake and Pancake POS: `{code, message, data{eventType, <tenant_field>}, status}`.
    PancakeEnvelope { tenant_field: &'static str },
    /// Abaha: `{status: 200, message: "OK"}`.
    Abaha,
    /// Fulfilment and invoice: `{status: "ok"}`.
    Plain,
}

pub fn respond(style: ResponseStyle, outcome: &Result<Accepted, IngestError>) -> RawResponse {
    match outcome {
        Ok(accepted) => success(style, accepted),
        Err(err) => failure(style, err),
    }
}

fn success(style: ResponseStyle, accepted: &Accepted) -> RawResponse {
    let message = if accepted.duplicate {
        "duplicate delivery: already processed"
    } else {
        "webhook received and processed"
    };
    let body = match style {
        ResponseStyle::PancakeEnvelope { tenant_field } => json!({
            "code": 200,
            "message": message,
            "data": {
                "eventType": accepted.provider_event,
                tenant_field: accepted.tenant,
                "eventKey": accepted.event_key,
                "duplicate": accepted.duplicate,
            },
            "status": "success",
        }),
        ResponseStyle::Abaha => json!({"status": 200, "message": "OK"}),
        ResponseStyle::Plain => json!({"status": "ok", "duplicate": accepted.duplicate}),
    };
    RawResponse { status: 200, body }
}

fn failure(style: ResponseStyle, err: &IngestError) -> RawResponse {
    let status = err.status();
    let message = err.to_string();
    let body: Value = match style {
        ResponseStyle::PancakeEnvelope { .. } => json!({
            "code": err.code(),
            "message": message,
            "status": "error",
        }),
        ResponseStyle::Abaha => json!({"status": status, "message": message, "code": err.code()}),
        ResponseStyle::Plain => json!({"status": "error", "error": err.code(), "message": message}),
    };
    RawResponse { status, body }
}
