//! Who may speak for which tenant: the provider's [`Guard`](crate::sources::guard::Guard)
//! on the environment's keys first (no I/O), then, only for a credential they found wrong,
//! the credential table. The pipeline holds the result against the normalised event's
//! tenant.

use std::sync::Arc;

use crate::clock::Clock;
use crate::credentials::cache::CachedLookup;
use crate::credentials::{CredentialLookup, NoCredentialTable, StoredCredential};
use crate::error::IngestError;
use crate::http::RawRequest;
use crate::sources::guard::{Admission, Probe};
use crate::sources::Provider;

/// The admission step of ingest, over a credential table (or none).
#[derive(Clone)]
pub struct Admitter {
    lookup: Arc<dyn CredentialLookup>,
    clock: Arc<dyn Clock>,
}

impl Admitter {
    /// No credential table: the environment's keys alone, as before tenant binding.
    pub(crate) fn environment_only(clock: Arc<dyn Clock>) -> Self {
        Admitter {
            lookup: Arc::new(NoCredentialTable),
            clock,
        }
    }

    /// `table` behind a cache of `ttl_secs`.
    pub fn cached(table: Arc<dyn CredentialLookup>, ttl_secs: u64, clock: Arc<dyn Clock>) -> Self {
        Admitter {
            lookup: Arc::new(CachedLookup::new(table, ttl_secs, clock.clone())),
            clock,
        }
    }

    /// Verifies `req` for `provider`. A table that cannot be read is 503 (the provider
    /// retries); a credential neither the environment nor the table admits keeps the
    /// environment's 401.
    pub async fn admit(
        &self,
        provider: &dyn Provider,
        req: &RawRequest,
    ) -> Result<Admission, IngestError> {
        let guard = provider.guard();
        let refused = match guard.verify(req) {
            Err(refused @ IngestError::BadCredential(_)) => refused,
            other => return other,
        };
        let Some(probe) = guard.probe(req) else {
            return Err(refused);
        };
        let entries = self.active(provider, probe).await?;
        match guard.admit_stored(req, &entries) {
            None => Err(refused),
            stored => guard.verify_with(req, stored),
        }
    }

    /// The table's rows for `probe` that are active now.
    async fn active(
        &self,
        provider: &dyn Provider,
        probe: Probe,
    ) -> Result<Vec<StoredCredential>, IngestError> {
        let source = provider.source();
        let mut rows = Vec::new();
        match probe {
            Probe::Keys(hashes) => {
                for hash in &hashes {
                    rows.extend(self.lookup.by_key(source, hash).await?);
                }
            }
            Probe::Tenant(tenant) => rows = self.lookup.secrets_of(source, &tenant).await?,
        }
        let now = self.clock.now().unix_timestamp();
        rows.retain(|row| row.source == source && row.is_active(now));
        Ok(rows)
    }
}
