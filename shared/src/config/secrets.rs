//! Credentials given as Secrets Manager references (ARCHITECTURE §3, "Secrets Manager"): a
//! Lambda whose `FULFILMENT_SECRETS_ARN` is set reads `FULFILMENT_SECRETS` from that secret,
//! in the variable's own format, so the function configuration holds an ARN, never the
//! credential, and a rotation is a `put-secret-value`, not a deploy.
//!
//! The references are resolved into an [`Env`] that carries the values as if they had been
//! plain variables: everything built from the environment (a provider's `Guard`, the
//! notifier's `Target`) is built as before, from that `Env`. [`Live`] keeps what was built
//! and builds it again when a re-read after [`SECRETS_CACHE_SECS`](vars::SECRETS_CACHE_SECS)
//! finds another value, so the built thing stays an immutable value and only the handle to it
//! changes.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use thiserror::Error;
use tracing::{info, warn};

use super::vars::{self, Binary, Var};
use super::{ConfigError, Env};
use crate::clock::Clock;

/// A secret that could not be read; the message names the secret, never a value.
#[derive(Debug, Clone, Error)]
#[error("{0}")]
pub struct SecretError(pub String);

/// Where references are read: Secrets Manager on AWS (`backends::aws::secrets`), a map in
/// tests.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The current string value of the secret `id` (an ARN or a name).
    async fn read(&self, id: &str) -> Result<String, SecretError>;
}

/// One reference set in the environment: the `_ARN` variable, the credential variable it
/// stands for, and the secret's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub reference: &'static Var,
    pub holds: &'static Var,
    pub id: String,
}

/// The references a binary reads, and how long a value read through them is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct References {
    pub list: Vec<Reference>,
    pub ttl_secs: u64,
}

/// How long a value read through a reference is kept unless `SECRETS_CACHE_SECS` says
/// otherwise: the longest a rotation waits to take effect, at one `GetSecretValue` per
/// reference per warm function per period.
pub(crate) const DEFAULT_SECRETS_CACHE_SECS: u64 = 300;

impl References {
    /// The `_ARN` variables of `binary` that are set. Setting one beside the plain variable
    /// it stands for is refused, naming both: which one wins would be a guess.
    pub fn from_env(env: &Env, binary: Binary) -> Result<Self, ConfigError> {
        let mut list = Vec::new();
        let mut doubled = None;
        for reference in vars::ALL.iter().copied() {
            let Some(holds) = reference
                .holds
                .filter(|_| reference.binaries.contains(binary))
            else {
                continue;
            };
            let Some(id) = env.get(reference) else {
                continue;
            };
            if env.get(holds).is_some() {
                doubled.get_or_insert((reference.name, holds.name));
            }
            list.push(Reference {
                reference,
                holds,
                id: id.to_string(),
            });
        }
        let ttl_secs = match list.is_empty() {
            true => DEFAULT_SECRETS_CACHE_SECS,
            false => env.u64_or(&vars::SECRETS_CACHE_SECS, DEFAULT_SECRETS_CACHE_SECS)?,
        };
        if let Some((var, plain)) = doubled {
            return Err(ConfigError::Invalid {
                var,
                reason: format!("set it or {plain}, not both"),
            });
        }
        Ok(References { list, ttl_secs })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The secrets' values, in the order of `list`.
    async fn read(&self, store: &dyn SecretStore) -> Result<Vec<String>, ConfigError> {
        let mut values = Vec::with_capacity(self.list.len());
        for r in &self.list {
            let value = store
                .read(&r.id)
                .await
                .map_err(|e| ConfigError::Unreadable {
                    var: r.reference.name,
                    reason: e.to_string(),
                })?;
            values.push(value);
        }
        Ok(values)
    }

    /// `env` with each referenced variable set to its secret's value.
    fn resolved(&self, env: &Env, values: &[String]) -> Env {
        let mut env = env.clone();
        for (r, value) in self.list.iter().zip(values) {
            env.set(r.holds.name, value.as_str());
        }
        env
    }

    /// The names of the references, for log lines (never their values).
    fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|r| r.reference.name).collect()
    }
}

/// Builds a value from an environment with the references resolved.
pub(crate) type Build<T> = Box<dyn Fn(&Env) -> Result<T, ConfigError> + Send + Sync>;

struct Current<T> {
    value: Arc<T>,
    /// The secrets' values it was built from, to build again only on a change.
    values: Vec<String>,
    /// When the secrets are read again (unix seconds of the clock).
    due: i64,
}

/// A value built from the environment whose references are read again once their values are
/// older than the cache lifetime. Without references it is built once and never changes.
/// A failed re-read, or a new value the build refuses (a malformed `_BY_TENANT` twin), keeps
/// the last good value and is logged naming the reference, never the value: deliveries go
/// on with the credential that worked, and the next period tries again.
pub struct Live<T> {
    env: Env,
    references: References,
    store: Option<Arc<dyn SecretStore>>,
    build: Build<T>,
    clock: Arc<dyn Clock>,
    current: Mutex<Current<T>>,
    /// One re-read at a time; a request arriving meanwhile uses the current value.
    reading: tokio::sync::Mutex<()>,
}

impl<T: Send + Sync> Live<T> {
    /// Built once from `env`, which has no references to read.
    pub fn fixed(env: &Env, build: Build<T>) -> Result<Self, ConfigError> {
        let value = Arc::new(build(env)?);
        Ok(Live {
            env: env.clone(),
            references: References {
                list: Vec::new(),
                ttl_secs: DEFAULT_SECRETS_CACHE_SECS,
            },
            store: None,
            build,
            clock: Arc::new(crate::clock::SystemClock),
            current: Mutex::new(Current {
                value,
                values: Vec::new(),
                due: i64::MAX,
            }),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads every reference from `store` and builds the value: at init, so a secret that
    /// cannot be read, or a value the build refuses, stops the function (fail closed).
    pub async fn start(
        env: &Env,
        references: References,
        store: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        build: Build<T>,
    ) -> Result<Self, ConfigError> {
        let values = references.read(store.as_ref()).await?;
        let value = Arc::new(build(&references.resolved(env, &values))?);
        if !references.is_empty() {
            info!(references = ?references.names(), ttl_secs = references.ttl_secs, "credentials read from Secrets Manager");
        }
        let due = match references.is_empty() {
            true => i64::MAX,
            false => clock.now().unix_timestamp() + references.ttl_secs as i64,
        };
        Ok(Live {
            env: env.clone(),
            store: (!references.is_empty()).then_some(store),
            references,
            build,
            clock,
            current: Mutex::new(Current { value, values, due }),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// The value to serve this request with: the current one, read again first when it is due.
    pub async fn current(&self) -> Arc<T> {
        let now = self.clock.now().unix_timestamp();
        let (value, due) = {
            let current = lock(&self.current);
            (current.value.clone(), current.due)
        };
        let Some(store) = self.store.as_ref().filter(|_| now >= due) else {
            return value;
        };
        let Ok(_reading) = self.reading.try_lock() else {
            return value;
        };
        self.refresh(store.as_ref(), now).await;
        lock(&self.current).value.clone()
    }

    /// Reads the references again; builds anew only when a value changed.
    async fn refresh(&self, store: &dyn SecretStore, now: i64) {
        let next = now + self.references.ttl_secs as i64;
        let names = self.references.names();
        let values = match self.references.read(store).await {
            Ok(values) => values,
            Err(e) => {
                warn!(references = ?names, error = %e, "secret re-read failed: keeping the last values read");
                lock(&self.current).due = next;
                return;
            }
        };
        if values == lock(&self.current).values {
            lock(&self.current).due = next;
            return;
        }
        match (self.build)(&self.references.resolved(&self.env, &values)) {
            Ok(value) => {
                info!(references = ?names, "a referenced secret changed: credentials rebuilt");
                *lock(&self.current) = Current {
                    value: Arc::new(value),
                    values,
                    due: next,
                };
            }
            Err(e) => {
                warn!(references = ?names, error = %e, "a referenced secret changed to a value that is refused: keeping the last good one");
                lock(&self.current).due = next;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
