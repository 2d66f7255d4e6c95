//! Error enums. Each `IngestError` variant maps to exactly one HTTP status and one
//! provider-facing error code; messages name the problem and never contain a secret.

use thiserror::Error;

/// Why a webhook request was not accepted.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error("missing credential: {0}")]
    MissingCredential(String),
    #[error("invalid credential: {0}")]
    BadCredential(&'static str),
    #[error("the credential is not valid for tenant `{0}`")]
    TenantNotBound(String),
    #[error("request timestamp is outside the {0} s replay window")]
    Replay(u64),
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("missing or invalid field `{0}`")]
    InvalidField(String),
    #[error("unsupported event `{0}`")]
    UnsupportedEvent(String),
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("method {0} not allowed, use POST")]
    MethodNotAllowed(String),
    #[error("storage temporarily unavailable, retry later")]
    Store(#[from] StoreError),
    #[error("queue temporarily unavailable, retry later")]
    Queue(#[from] QueueError),
}

impl IngestError {
    pub fn status(&self) -> u16 {
        match self {
            IngestError::MissingCredential(_)
            | IngestError::BadCredential(_)
            | IngestError::Replay(_) => 401,
            IngestError::TenantNotBound(_) => 403,
            IngestError::MalformedJson(_)
            | IngestError::InvalidField(_)
            | IngestError::UnsupportedEvent(_) => 400,
            IngestError::TooLarge { .. } => 413,
            IngestError::MethodNotAllowed(_) => 405,
            IngestError::Store(_) | IngestError::Queue(_) => 503,
        }
    }

    /// Provider-facing error code (Pancake's `VAL_002` style), one per kind.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::MissingCredential(_) => "AUTH_001",
            IngestError::BadCredential(_) => "AUTH_002",
            IngestError::Replay(_) => "AUTH_003",
            IngestError::TenantNotBound(_) => "AUTH_004",
            IngestError::InvalidField(_) => "VAL_001",
            IngestError::MalformedJson(_) => "VAL_002",
            IngestError::UnsupportedEvent(_) => "VAL_003",
            IngestError::TooLarge { .. } => "VAL_004",
            IngestError::MethodNotAllowed(_) => "VAL_005",
            IngestError::Store(_) => "SYS_001",
            IngestError::Queue(_) => "SYS_002",
        }
    }

    /// Short label for logs and the `Rejected` metric's `Reason` dimension.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::MissingCredential(_) => "missing_credential",
            IngestError::BadCredential(_) => "bad_credential",
            IngestError::Replay(_) => "replay",
            IngestError::TenantNotBound(_) => "tenant_not_bound",
            IngestError::MalformedJson(_) => "malformed_json",
            IngestError::InvalidField(_) => "invalid_field",
            IngestError::UnsupportedEvent(_) => "unsupported_event",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::MethodNotAllowed(_) => "method_not_allowed",
            IngestError::Store(_) => "store_unavailable",
            IngestError::Queue(_) => "queue_unavailable",
        }
    }

    /// Counted by the verification-failure metric and alarm: a wrong, missing or replayed
    /// credential, or one used for a tenant it is not bound to.
    pub fn is_verification_failure(&self) -> bool {
        matches!(self.status(), 401 | 403)
    }

    pub(crate) fn invalid_field(field: impl Into<String>) -> Self {
        IngestError::InvalidField(field.into())
    }
}

/// A store backend failure. All are transient from the provider's point of view: the
/// request is answered 5xx and nothing is half written.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("concurrent writers kept conflicting on {0}")]
    Contention(String),
    #[error("stored item could not be read: {0}")]
    Corrupt(String),
    /// A page cursor this backend did not issue (an operator's typo, or another store's).
    #[error("not a page cursor of this store: {0:?}")]
    BadCursor(String),
}

/// A queue backend failure (transient).
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}
