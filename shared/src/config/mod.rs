//! Configuration from the environment. Values are read through [`Env`] so tests pass a
//! map instead of mutating the process environment, and only by the variables of the
//! registry ([`vars`]), so every variable is declared, documented and cross-checked once.

pub mod vars;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;
use tracing::warn;

use crate::verify::SecretSet;
pub use vars::Var;

/// Where the code runs: a Lambda fails closed without credentials; the local gateway
/// falls back to the development credentials named in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Lambda,
    Local,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no credential configured for {source_name}: set {var} (or ALLOW_UNVERIFIED=true to accept unverified requests)")]
    NoCredential {
        source_name: &'static str,
        var: &'static str,
    },
    #[error("invalid value for {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("missing required setting {0}")]
    Missing(&'static str),
}

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// The names looked up so far (shared with clones), so a test can hold what a binary
    /// reads at start-up against the registry's `binaries`.
    read: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl Env {
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: Arc::default(),
        }
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    /// A non-blank value.
    pub fn get(&self, var: &Var) -> Option<&str> {
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(var.name);
        self.vars
            .get(var.name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    pub fn get_or<'a>(&'a self, var: &Var, default: &'a str) -> &'a str {
        self.get(var).unwrap_or(default)
    }

    pub fn require(&self, var: &Var) -> Result<String, ConfigError> {
        self.get(var)
            .map(str::to_string)
            .ok_or(ConfigError::Missing(var.name))
    }

    pub fn u64_or(&self, var: &Var, default: u64) -> Result<u64, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                var: var.name,
                reason: format!("expected a non-negative integer, got {v:?}"),
            }),
        }
    }

    pub fn flag(&self, var: &Var) -> bool {
        matches!(self.get(var), Some(v) if v.eq_ignore_ascii_case("true") || v == "1")
    }

    pub fn secrets(&self, var: &Var) -> SecretSet {
        self.get(var).map(SecretSet::parse).unwrap_or_default()
    }

    /// The names of the variables read so far, set or not.
    pub fn names_read(&self) -> BTreeSet<&'static str> {
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The credential a source checks requests against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Verified(SecretSet),
    /// `ALLOW_UNVERIFIED=true` and nothing configured: every request is accepted.
    Unverified,
}

/// Resolves a source's secrets: configured ones; else in local mode the development
/// secret (with a warning); else `ALLOW_UNVERIFIED=true`; else a fail-closed error.
pub fn resolve_credentials(
    env: &Env,
    mode: Mode,
    source_name: &'static str,
    credential: &Var,
    dev_default: &str,
) -> Result<Credentials, ConfigError> {
    let configured = env.secrets(credential);
    if !configured.is_empty() {
        return Ok(Credentials::Verified(configured));
    }
    let var = credential.name;
    if env.flag(&vars::ALLOW_UNVERIFIED) {
        warn!(
            source = source_name,
            var, "ALLOW_UNVERIFIED=true: accepting unverified requests"
        );
        return Ok(Credentials::Unverified);
    }
    match mode {
        Mode::Local => {
            warn!(
                source = source_name,
                var, "no credential configured: using the development credential (local mode only)"
            );
            Ok(Credentials::Verified(SecretSet::parse(dev_default)))
        }
        Mode::Lambda => Err(ConfigError::NoCredential { source_name, var }),
    }
}

/// Settings of the ingest pipeline shared by every source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineSettings {
    pub max_body_bytes: usize,
    pub retention_days: u64,
}

impl PipelineSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
    pub const DEFAULT_RETENTION_DAYS: u64 = 90;

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(PipelineSettings {
            max_body_bytes: env
                .u64_or(&vars::MAX_BODY_BYTES, Self::DEFAULT_MAX_BODY_BYTES as u64)?
                as usize,
            retention_days: env.u64_or(&vars::RETENTION_DAYS, Self::DEFAULT_RETENTION_DAYS)?,
        })
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            retention_days: Self::DEFAULT_RETENTION_DAYS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_fails_closed_without_credentials() {
        let env = Env::default();
        let err = resolve_credentials(
            &env,
            Mode::Lambda,
            "fulfilment",
            &vars::FULFILMENT_SECRETS,
            "dev",
        )
        .unwrap_err();
        assert!(err.to_string().contains("FULFILMENT_SECRETS"));
    }

    #[test]
    fn allow_unverified_must_be_explicit() {
        let x = &vars::ABAHA_TOKENS;
        let env = Env::from_pairs([("ALLOW_UNVERIFIED", "true")]);
        assert_eq!(
            resolve_credentials(&env, Mode::Lambda, "x", x, "dev").unwrap(),
            Credentials::Unverified
        );
        let env = Env::from_pairs([("ALLOW_UNVERIFIED", "yes please")]);
        assert!(resolve_credentials(&env, Mode::Lambda, "x", x, "dev").is_err());
    }

    #[test]
    fn configured_secrets_win_and_local_falls_back_to_dev() {
        let x = &vars::ABAHA_TOKENS;
        let env = Env::from_pairs([("ABAHA_TOKENS", "a,b")]);
        assert_eq!(
            resolve_credentials(&env, Mode::Lambda, "x", x, "dev").unwrap(),
            Credentials::Verified(SecretSet::parse("a,b"))
        );
        assert_eq!(
            resolve_credentials(&Env::default(), Mode::Local, "x", x, "dev").unwrap(),
            Credentials::Verified(SecretSet::parse("dev"))
        );
    }

    #[test]
    fn pipeline_settings_validate_numbers() {
        let env = Env::from_pairs([("MAX_BODY_BYTES", "ten")]);
        assert!(PipelineSettings::from_env(&env).is_err());
        assert_eq!(
            PipelineSettings::from_env(&Env::default()).unwrap(),
            PipelineSettings::default()
        );
    }

    #[test]
    fn reads_are_trimmed_named_in_errors_and_recorded() {
        let env = Env::from_pairs([
            ("RETENTION_DAYS", " 7 "),
            ("EVENTS_TABLE", "  "),
            ("AWS_MAX_ATTEMPTS", "-1"),
            ("ALLOW_UNVERIFIED", "1"),
        ]);
        assert_eq!(env.u64_or(&vars::RETENTION_DAYS, 90).unwrap(), 7);
        let err = env.require(&vars::EVENTS_TABLE).unwrap_err();
        assert_eq!(err.to_string(), "missing required setting EVENTS_TABLE");
        let err = env.u64_or(&vars::AWS_MAX_ATTEMPTS, 3).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid value for AWS_MAX_ATTEMPTS"),
            "{err}"
        );
        assert!(env.flag(&vars::ALLOW_UNVERIFIED));
        assert_eq!(
            env.get_or(&vars::ABAHA_TOKEN_HEADER, "X-Abaha-Token"),
            "X-Abaha-Token"
        );
        let clone = env.clone();
        assert!(clone.secrets(&vars::NOTIFY_SECRET).is_empty());
        assert_eq!(
            env.names_read().into_iter().collect::<Vec<_>>(),
            [
                "ABAHA_TOKEN_HEADER",
                "ALLOW_UNVERIFIED",
                "AWS_MAX_ATTEMPTS",
                "EVENTS_TABLE",
                "NOTIFY_SECRET",
                "RETENTION_DAYS"
            ]
        );
    }
}
