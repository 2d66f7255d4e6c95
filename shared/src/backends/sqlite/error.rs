//! How the embedded store's failures read as the store port's errors: its own module, so
//! the store, its persist and inspect jobs and the credential table each import it without
//! importing one another.

use crate::error::StoreError;

/// A SQLite failure (open, statement, the writer thread): transient for the caller, named
/// as the embedded store's.
pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}
