//! The embedded backend: one SQLite file holding the store's tables and the transition
//! queue (the `outbox` table), written by one group-committing writer thread.
//!
//! The store is its own queue (a transactional outbox): an event's transitions are queued in
//! the event's own transaction. The queue the pipeline publishes to is therefore the null
//! adapter [`crate::queue::AlreadyQueued`]; the worker drains [`Outbox`] through the
//! [`crate::queue::PullQueue`] port.

mod checkpoint;
pub mod credential_table;
mod error;
mod files;
mod inspect;
mod operator;
pub mod outbox;
mod persist;
mod purge;
mod schema;
pub mod store;
pub mod writer;

pub use credential_table::SqliteCredentialTable;
pub use outbox::Outbox;
pub use purge::Expired;
pub use store::SqliteStore;
