//! The Lambdas' cache of credential lookups. A warm function answers a verified request
//! without reading the table; a revocation or an expiry set by the CLI takes effect when the
//! cached row ages out (`CREDENTIALS_CACHE_SECS`, default 60 s). Misses are cached too, so
//! a sender spraying wrong keys costs one read per distinct key per lifetime, not one per
//! request. Expiry itself is judged on every request from the cached row, so a key expires
//! on time whatever the cache holds.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{CredentialLookup, KeyHash, StoredCredential};
use crate::clock::Clock;
use crate::error::StoreError;
use crate::model::{Source, Tenant};

/// Rows kept per kind of lookup. Past it, aged rows are dropped, then (if still full) all:
/// memory stays bounded (~10 MB at worst) and the price is one read per lookup after.
pub(crate) const MAX_CACHED: usize = 20_000;

/// A time-bounded map of lookups, unix seconds of the injected clock.
struct Entries<K, V> {
    rows: HashMap<K, (i64, V)>,
}

impl<K: Hash + Eq, V: Clone> Entries<K, V> {
    fn get(&self, key: &K, now: i64, ttl: i64) -> Option<V> {
        let (at, value) = self.rows.get(key)?;
        (now - at < ttl).then(|| value.clone())
    }

    /// Aged rows are dropped whenever the map would otherwise grow, so it holds about one
    /// lifetime's lookups, not every key ever tried: a sender spraying wrong keys for hours
    /// leaves a minute of them (swept only when full, the soak's wrong keys piled up towards
    /// the 20,000 bound). Each sweep is followed by room for as many rows again, so sweeps
    /// stay amortised O(1) per lookup.
    fn put(&mut self, key: K, value: V, now: i64, ttl: i64) {
        if self.rows.len() >= self.rows.capacity().min(MAX_CACHED) {
            self.rows.retain(|_, (at, _)| now - *at < ttl);
            if self.rows.len() >= MAX_CACHED {
                self.rows.clear();
            }
            self.rows.reserve(self.rows.len().max(16));
        }
        self.rows.insert(key, (now, value));
    }
}

type KeyRows = Entries<(Source, KeyHash), Option<StoredCredential>>;
type SecretRows = Entries<(Source, Tenant), Vec<StoredCredential>>;

/// [`CredentialLookup`] in front of another, for `ttl_secs`.
pub(crate) struct CachedLookup {
    inner: Arc<dyn CredentialLookup>,
    clock: Arc<dyn Clock>,
    ttl_secs: i64,
    keys: Mutex<KeyRows>,
    secrets: Mutex<SecretRows>,
}

impl CachedLookup {
    pub fn new(inner: Arc<dyn CredentialLookup>, ttl_secs: u64, clock: Arc<dyn Clock>) -> Self {
        CachedLookup {
            inner,
            clock,
            ttl_secs: ttl_secs.min(i64::MAX as u64) as i64,
            keys: Mutex::new(Entries {
                rows: HashMap::new(),
            }),
            secrets: Mutex::new(Entries {
                rows: HashMap::new(),
            }),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }
}

#[async_trait]
impl CredentialLookup for CachedLookup {
    async fn by_key(
        &self,
        source: Source,
        hash: &KeyHash,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let key = (source, *hash);
        let (now, ttl) = (self.now(), self.ttl_secs);
        let cached = lock(&self.keys).get(&key, now, ttl);
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = self.inner.by_key(source, hash).await?;
        lock(&self.keys).put(key, found.clone(), now, ttl);
        Ok(found)
    }

    async fn secrets_of(
        &self,
        source: Source,
        tenant: &Tenant,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        let key = (source, tenant.clone());
        let (now, ttl) = (self.now(), self.ttl_secs);
        let cached = lock(&self.secrets).get(&key, now, ttl);
        if let Some(found) = cached {
            return Ok(found);
        }
        let found = self.inner.secrets_of(source, tenant).await?;
        lock(&self.secrets).put(key, found.clone(), now, ttl);
        Ok(found)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_age_out_and_the_map_stays_bounded() {
        let mut rows: Entries<u32, u32> = Entries {
            rows: HashMap::new(),
        };
        rows.put(1, 10, 100, 60);
        assert_eq!(rows.get(&1, 159, 60), Some(10));
        assert_eq!(rows.get(&1, 160, 60), None);
        for k in 0..(MAX_CACHED as u32 + 5) {
            rows.put(k, k, 200, 60);
        }
        assert!(rows.rows.len() <= MAX_CACHED);
        // a zero lifetime caches nothing usable
        rows.put(7, 7, 300, 0);
        assert_eq!(rows.get(&7, 300, 0), None);
    }

    #[test]
    fn a_stream_of_new_keys_keeps_about_one_lifetime_of_them() {
        let mut rows: Entries<u32, u32> = Entries {
            rows: HashMap::new(),
        };
        // An hour of 6 new (wrong) keys a second, with a 60 s lifetime: 360 are live at once,
        // 21,600 in all (a sweep of full maps only would have kept all of them).
        for k in 0..21_600_u32 {
            rows.put(k, k, i64::from(k / 6), 60);
            // (the map's own growth and tombstones leave up to ~5 lifetimes before a sweep)
            assert!(rows.rows.len() <= 6 * 360, "{} rows", rows.rows.len());
        }
        assert!(rows.rows.capacity() <= 8 * 360, "{}", rows.rows.capacity());
        assert_eq!(rows.get(&21_599, 3_599, 60), Some(21_599));
        assert_eq!(rows.get(&0, 3_599, 60), None);
    }
}
