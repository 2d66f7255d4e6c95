//! What can go wrong on a console page, each with one status and a page saying what.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use thiserror::Error;
use webhook_core::ops::OpsError;
use webhook_core::StoreError;

use crate::layout;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConsoleError {
    /// The request itself is wrong: a malformed filter, key or page size.
    #[error("{0}")]
    BadInput(String),
    /// No such event, entity, transition or page.
    #[error("{0}")]
    NotFound(String),
    /// No token (or a wrong one) where the console asks for one.
    #[error("this console asks for its token (CONSOLE_TOKEN)")]
    Unauthorized,
    /// Too many failed logins from this client: wait `retry_after` seconds.
    #[error("too many failed logins from this address: try again in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    /// A form without this console's CSRF token, or a Host the loopback console does not serve.
    #[error("{0}")]
    Forbidden(String),
    /// The store or queue did not answer; the page may be retried.
    #[error("{0}")]
    Unavailable(String),
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::BadInput(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Unauthorized => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<OpsError> for ConsoleError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(m) => ConsoleError::NotFound(m),
            OpsError::Store(StoreError::BadCursor(m)) => {
                ConsoleError::BadInput(format!("not a cursor this store issued: {m}"))
            }
            other => ConsoleError::Unavailable(first_line(&other.to_string())),
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        OpsError::Store(e).into()
    }
}

impl From<QueryRejection> for ConsoleError {
    fn from(e: QueryRejection) -> Self {
        ConsoleError::BadInput(e.body_text())
    }
}

impl From<FormRejection> for ConsoleError {
    fn from(e: FormRejection) -> Self {
        ConsoleError::BadInput(e.body_text())
    }
}

/// An SDK error's first line, bounded: no debug dump on a page.
fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = layout::page(
            title,
            html! {
                h1 { (status.as_u16()) " " (title) }
                // Bounded: a message may quote the request (a cursor, a key).
                p.error { (self.to_string().chars().take(500).collect::<String>()) }
                p { a href=(crate::PREFIX) { "Back to the overview" } }
            },
        );
        let mut response = (status, body).into_response();
        if let ConsoleError::TooManyAttempts { retry_after } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}

/// Any other path under the console.
pub async fn unknown_page(uri: axum::http::Uri) -> ConsoleError {
    let path: String = uri.path().chars().take(200).collect();
    ConsoleError::NotFound(format!("the console has no page {path}"))
}
