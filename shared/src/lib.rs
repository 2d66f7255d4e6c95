//! `webhook-core`: everything except the entry points.
//!
//! A request flows `http` → `sources::<provider>` (pure: verify, parse, normalise) →
//! `pipeline` (persist with dedupe, then publish) → `store` / `queue` traits → backends.
//! On AWS the `relay` sends recorded transitions from the table's stream to the queue; the
//! `notify` module delivers queued transitions downstream.
//!
//! # What is public
//!
//! The crate's users are the Lambda binaries and `webhooks-local` (through `runtime`), the
//! CLI and the console (through `ops::Operator` and the `store` port's read types), and the
//! tests and fuzz targets (the ports, the backends, the providers and their pure helpers).
//! An item is `pub` when one of them names it, or when it appears in the signature of one
//! that is (a port's argument or error type); everything else is `pub(crate)`, so a
//! maintainer can tell a seam from an internal detail. The domain types every user names are
//! re-exported here.

pub mod backends;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod ops;
pub mod pipeline;
pub mod queue;
pub mod refusals;
pub mod relay;
pub mod runtime;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod verify;
pub mod version;

pub use error::{IngestError, StoreError};
pub use model::{Accepted, EntityKey, EntityKind, EventKey, EventStatus, Source, Tenant};
