//! Adapters of the store and queue ports, grouped by technology. Only `runtime` and the
//! binaries name one; everything else sees the store port its client uses (`store::ports`)
//! and `Arc<dyn TransitionQueue>`.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "sqlite")]
pub mod sqlite;
