//! Configuration from the environment. Values are read through [`Env`] so tests pass a
//! map instead of mutating the process environment, and only by the variables of the
//! registry ([`vars`]), so every variable is declared, documented and cross-checked once.

pub mod secrets;
pub mod vars;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;
use tracing::warn;

use crate::model::Source;
use crate::verify::{BoundSecrets, SecretSet};
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
    #[error("no credential configured for {source_name}: set {var} (or {var}_ARN, a Secrets Manager reference), its _BY_TENANT twin or CREDENTIALS_TABLE (or ALLOW_UNVERIFIED=true to accept unverified requests)")]
    NoCredential {
        source_name: &'static str,
        var: &'static str,
    },
    #[error("invalid value for {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("missing required setting {0}")]
    Missing(&'static str),
    /// A Secrets Manager reference whose secret could not be read (ARCHITECTURE §3).
    #[error("could not read the secret {var} names: {reason}")]
    Unreadable { var: &'static str, reason: String },
}

/// A snapshot of environment variables. Its `Debug` shows no credential (see the impl).
#[derive(Clone, Default)]
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

    pub(crate) fn get_or<'a>(&'a self, var: &Var, default: &'a str) -> &'a str {
        self.get(var).unwrap_or(default)
    }

    pub(crate) fn require(&self, var: &Var) -> Result<String, ConfigError> {
        self.get(var)
            .map(str::to_string)
            .ok_or(ConfigError::Missing(var.name))
    }

    pub(crate) fn u64_or(&self, var: &Var, default: u64) -> Result<u64, ConfigError> {
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

/// Names every variable but shows only the values that cannot hold a credential: those of
/// the registry's variables not marked secret. A secret variable's value, a `NOTIFY_URL`
/// (its user info or query may carry the receiver's token) and a variable the registry does
/// not know (the process environment holds anything) show as `***`, so an `Env` printed in
/// a panic message or a debug log leaks nothing.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |name: &str| {
            vars::by_name(name).is_some_and(|var| !var.secret && var.name != vars::NOTIFY_URL.name)
        };
        let values: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(name, value)| {
                let value = if shown(name) {
                    value.as_str()
                } else {
                    REDACTED
                };
                (name.as_str(), value)
            })
            .collect();
        f.debug_struct("Env")
            .field("vars", &values)
            .field("read", &self.names_read())
            .finish()
    }
}

/// What [`Env`]'s `Debug` shows for a value it must not.
const REDACTED: &str = "***";

/// The credential a source checks requests against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Verified(Keys),
    /// `ALLOW_UNVERIFIED=true` and nothing configured: every request is accepted.
    Unverified,
}

/// What a credential is checked against in the environment: secrets that admit any tenant
/// (the plain list, as before tenant binding) and secrets bound to one tenant each (the
/// list's `_BY_TENANT` twin). Both are empty for a Lambda whose credentials are all in the
/// credential table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub any: SecretSet,
    pub bound: BoundSecrets,
}

impl Keys {
    /// Secrets admitting any tenant, none bound.
    pub fn any(secrets: SecretSet) -> Self {
        Keys {
            any: secrets,
            bound: BoundSecrets::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.bound.is_empty()
    }
}

/// Resolves a source's credentials: the configured ones (its list and its `_BY_TENANT`
/// twin, a malformed twin refused naming it; for a Lambda, `CREDENTIALS_TABLE` counts as
/// configured, its keys being looked up per request); else in local mode the development
/// secret (with a warning); else `ALLOW_UNVERIFIED=true`; else a fail-closed error.
pub(crate) fn resolve_credentials(
    env: &Env,
    mode: Mode,
    source: Source,
    dev_default: &str,
) -> Result<Credentials, ConfigError> {
    let (list, by_tenant) = vars::credentials_of(source);
    let keys = Keys {
        any: env.secrets(list),
        bound: match env.get(by_tenant) {
            None => BoundSecrets::default(),
            Some(json) => {
                BoundSecrets::parse_json(json).map_err(|reason| ConfigError::Invalid {
                    var: by_tenant.name,
                    reason,
                })?
            }
        },
    };
    let stored = mode == Mode::Lambda && env.get(&vars::CREDENTIALS_TABLE).is_some();
    let allow_unverified = env.flag(&vars::ALLOW_UNVERIFIED);
    if !keys.is_empty() || stored {
        return Ok(Credentials::Verified(keys));
    }
    let (source_name, var) = (source.as_str(), list.name);
    if allow_unverified {
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
            Ok(Credentials::Verified(Keys::any(SecretSet::parse(
                dev_default,
            ))))
        }
        Mode::Lambda => Err(ConfigError::NoCredential { source_name, var }),
    }
}

/// The sources that would run on their public development credential in local mode:
/// nothing configured for them (neither the list nor its `_BY_TENANT` twin) and
/// `ALLOW_UNVERIFIED` off. `webhooks-local` refuses to start with any of them when it listens
/// beyond loopback or when any credential is configured elsewhere (ARCHITECTURE §3).
pub fn sources_on_dev_credentials(env: &Env) -> Vec<Source> {
    if env.flag(&vars::ALLOW_UNVERIFIED) {
        return Vec::new();
    }
    Source::ALL
        .into_iter()
        .filter(|s| {
            let (list, by_tenant) = vars::credentials_of(*s);
            env.secrets(list).is_empty() && env.get(by_tenant).is_none()
        })
        .collect()
}

/// The first credential variable the environment sets, for any source (a list, its
/// `_BY_TENANT` twin, Pancake's signing secrets, or `CREDENTIALS_TABLE`).
pub fn first_credential_variable(env: &Env) -> Option<&'static str> {
    let lists = Source::ALL.into_iter().flat_map(|s| {
        let (list, by_tenant) = vars::credentials_of(s);
        [list, by_tenant]
    });
    lists
        .chain([&vars::PANCAKE_SIGNING_SECRETS, &vars::CREDENTIALS_TABLE])
        .find(|var| env.get(var).is_some())
        .map(|var| var.name)
}

/// Settings of the ingest pipeline shared by every source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineSettings {
    pub max_body_bytes: usize,
    /// Event records (raw bodies) expire this many days after receipt.
    pub retention_days: u64,
    /// Entities and transitions expire this many days after the last event that wrote them
    /// (ARCHITECTURE §5, decision 43).
    pub entity_retention_days: u64,
}

impl PipelineSettings {
    pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
    pub(crate) const DEFAULT_RETENTION_DAYS: u64 = 90;
    pub const DEFAULT_ENTITY_RETENTION_DAYS: u64 = 180;
    /// The shortest entity retention: longer than any copy of a transition's message can
    /// wait on the queues (SQS keeps it 4 days, the DLQ 14 more), so a transition never
    /// expires under a message still to be delivered or redriven.
    pub(crate) const MIN_ENTITY_RETENTION_DAYS: u64 = 30;
    /// Ten years: past it a unix-seconds expiry stops meaning "a retention period".
    pub(crate) const MAX_RETENTION_DAYS: u64 = 3650;

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let retention_days = env.u64_or(&vars::RETENTION_DAYS, Self::DEFAULT_RETENTION_DAYS)?;
        if !(1..=Self::MAX_RETENTION_DAYS).contains(&retention_days) {
            return Err(ConfigError::Invalid {
                var: vars::RETENTION_DAYS.name,
                reason: format!("expected 1 to {} days", Self::MAX_RETENTION_DAYS),
            });
        }
        let entity_retention_days = Self::entity_retention_days(env)?;
        // An entity that expired before the events that wrote it would come back on a
        // reprocess of them.
        if entity_retention_days < retention_days {
            return Err(ConfigError::Invalid {
                var: vars::ENTITY_RETENTION_DAYS.name,
                reason: format!(
                    "{entity_retention_days} days is shorter than RETENTION_DAYS ({retention_days}): an entity must outlive the events that wrote it"
                ),
            });
        }
        Ok(PipelineSettings {
            max_body_bytes: env
                .u64_or(&vars::MAX_BODY_BYTES, Self::DEFAULT_MAX_BODY_BYTES as u64)?
                as usize,
            retention_days,
            entity_retention_days,
        })
    }

    /// `ENTITY_RETENTION_DAYS` alone (reprocess writes entities, never event records): at
    /// least [`Self::MIN_ENTITY_RETENTION_DAYS`], so a transition outlives its queued message.
    pub fn entity_retention_days(env: &Env) -> Result<u64, ConfigError> {
        let days = env.u64_or(
            &vars::ENTITY_RETENTION_DAYS,
            Self::DEFAULT_ENTITY_RETENTION_DAYS,
        )?;
        if !(Self::MIN_ENTITY_RETENTION_DAYS..=Self::MAX_RETENTION_DAYS).contains(&days) {
            return Err(ConfigError::Invalid {
                var: vars::ENTITY_RETENTION_DAYS.name,
                reason: format!(
                    "expected {} to {} days (a transition outlives its queued message)",
                    Self::MIN_ENTITY_RETENTION_DAYS,
                    Self::MAX_RETENTION_DAYS
                ),
            });
        }
        Ok(days)
    }

    /// When the event record of an event received at `received` expires (unix seconds).
    pub(crate) fn event_expiry(&self, received: time::OffsetDateTime) -> i64 {
        expiry(received, self.retention_days)
    }

    /// When the entities and transitions an event received at `received` writes expire.
    pub fn entity_expiry(&self, received: time::OffsetDateTime) -> i64 {
        expiry(received, self.entity_retention_days)
    }
}

/// `days` after `received`, in unix seconds (a TTL attribute).
pub fn expiry(received: time::OffsetDateTime, days: u64) -> i64 {
    received.unix_timestamp() + days as i64 * 86_400
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            retention_days: Self::DEFAULT_RETENTION_DAYS,
            entity_retention_days: Self::DEFAULT_ENTITY_RETENTION_DAYS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_are_bounded_and_entities_outlive_their_events() {
        let settings = |pairs: &[(&str, &str)]| {
            PipelineSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
        };
        let defaults = settings(&[]).unwrap();
        assert_eq!(
            (defaults.retention_days, defaults.entity_retention_days),
            (90, 180)
        );
        let received = time::OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        assert_eq!(defaults.entity_expiry(received), 1_000 + 180 * 86_400);
        for (pairs, var) in [
            (
                &[("ENTITY_RETENTION_DAYS", "29")][..],
                "ENTITY_RETENTION_DAYS",
            ),
            (&[("RETENTION_DAYS", "200")], "ENTITY_RETENTION_DAYS"),
            (&[("RETENTION_DAYS", "0")], "RETENTION_DAYS"),
            (
                &[("ENTITY_RETENTION_DAYS", "3651")],
                "ENTITY_RETENTION_DAYS",
            ),
        ] {
            let err = settings(pairs).unwrap_err().to_string();
            assert!(err.contains(var), "{pairs:?}: {err}");
        }
        let long = settings(&[("RETENTION_DAYS", "200"), ("ENTITY_RETENTION_DAYS", "200")]);
        assert_eq!(long.unwrap().entity_retention_days, 200);
    }

    #[test]
    fn lambda_fails_closed_without_credentials() {
        let err = resolve_credentials(&Env::default(), Mode::Lambda, Source::Fulfilment, "dev")
            .unwrap_err()
            .to_string();
        assert!(err.contains("FULFILMENT_SECRETS"), "{err}");
        assert!(err.contains("CREDENTIALS_TABLE"), "{err}");
    }

    #[test]
    fn allow_unverified_must_be_explicit() {
        let x = Source::Abaha;
        let env = Env::from_pairs([("ALLOW_UNVERIFIED", "true")]);
        assert_eq!(
            resolve_credentials(&env, Mode::Lambda, x, "dev").unwrap(),
            Credentials::Unverified
        );
        let env = Env::from_pairs([("ALLOW_UNVERIFIED", "yes please")]);
        assert!(resolve_credentials(&env, Mode::Lambda, x, "dev").is_err());
    }

    #[test]
    fn configured_secrets_win_and_local_falls_back_to_dev() {
        let x = Source::Abaha;
        let env = Env::from_pairs([("ABAHA_TOKENS", "a,b")]);
        assert_eq!(
            resolve_credentials(&env, Mode::Lambda, x, "dev").unwrap(),
            Credentials::Verified(Keys::any(SecretSet::parse("a,b")))
        );
        assert_eq!(
            resolve_credentials(&Env::default(), Mode::Local, x, "dev").unwrap(),
            Credentials::Verified(Keys::any(SecretSet::parse("dev")))
        );
    }

    #[test]
    fn bound_keys_or_the_table_alone_configure_a_lambda() {
        let x = Source::PancakePos;
        let env = Env::from_pairs([("PANCAKE_POS_API_KEYS_BY_TENANT", r#"{"7":["k"]}"#)]);
        let Credentials::Verified(keys) = resolve_credentials(&env, Mode::Lambda, x, "d").unwrap()
        else {
            panic!("bound keys are credentials");
        };
        assert!(keys.any.is_empty() && !keys.bound.is_empty());
        let env = Env::from_pairs([("CREDENTIALS_TABLE", "creds")]);
        assert_eq!(
            resolve_credentials(&env, Mode::Lambda, x, "d").unwrap(),
            Credentials::Verified(Keys::default())
        );
        // locally the table is the SQLite file's own: no variable to count
        assert_eq!(
            resolve_credentials(&env, Mode::Local, x, "d").unwrap(),
            Credentials::Verified(Keys::any(SecretSet::parse("d")))
        );
    }

    #[test]
    fn a_malformed_binding_fails_start_up_naming_the_variable() {
        // A list where the object should be, a JSON string as the whole value (serde's own
        // message would quote it), and a bare word.
        let values = [
            r#"{"552":"secret-token"}"#,
            r#""secret-token""#,
            "secret-token",
        ];
        for (mode, value) in [Mode::Lambda, Mode::Local]
            .into_iter()
            .flat_map(|m| values.map(|v| (m, v)))
        {
            let env = Env::from_pairs([("ABAHA_TOKENS", "t"), ("ABAHA_TOKENS_BY_TENANT", value)]);
            let err = resolve_credentials(&env, mode, Source::Abaha, "d")
                .unwrap_err()
                .to_string();
            assert!(err.contains("ABAHA_TOKENS_BY_TENANT"), "{err}");
            assert!(!err.contains("secret-token"), "{err}");
        }
    }

    #[test]
    fn debug_shows_no_secret_value() {
        let secret_looking = "s3cr3t-Value-Zq81";
        let mut pairs: Vec<(String, String)> = vars::ALL
            .iter()
            .filter(|var| var.secret)
            .map(|var| {
                (
                    var.name.to_string(),
                    format!("{secret_looking}-{}", var.name),
                )
            })
            .collect();
        assert!(
            pairs.len() >= 10,
            "the registry marks the credentials secret"
        );
        pairs.extend([
            (
                "NOTIFY_URL".to_string(),
                format!("https://u:{secret_looking}@x.test/n?token={secret_looking}"),
            ),
            ("GITHUB_TOKEN".to_string(), secret_looking.to_string()),
            ("RETENTION_DAYS".to_string(), "7".to_string()),
        ]);
        let env = Env::from_pairs(pairs);
        assert_eq!(env.u64_or(&vars::RETENTION_DAYS, 90).unwrap(), 7);
        let shown = format!("{env:?}");
        assert!(!shown.contains(secret_looking), "{shown}");
        assert!(shown.contains("\"RETENTION_DAYS\": \"7\""), "{shown}");
        assert!(
            shown.contains("\"PANCAKE_API_KEYS_BY_TENANT\": \"***\""),
            "{shown}"
        );
        assert!(shown.contains("\"GITHUB_TOKEN\": \"***\""), "{shown}");
        assert!(shown.contains("read: {\"RETENTION_DAYS\"}"), "{shown}");
        assert!(!format!("{env:#?}").contains(secret_looking));
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
