//! Where notifications go, from `NOTIFY_URL`, `NOTIFY_SECRET` and `NOTIFY_TIMEOUT_MS`: the
//! log, or a signed POST. The URL is shown without credentials or query in logs.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use tracing::{info, warn};

use super::SigningKeys;
use crate::config::{vars, ConfigError, Env};

pub const URL_VAR: &str = vars::NOTIFY_URL.name;
pub const SECRET_VAR: &str = vars::NOTIFY_SECRET.name;
pub const TIMEOUT_VAR: &str = vars::NOTIFY_TIMEOUT_MS.name;
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// Where notifications go.
pub enum Target {
    /// No `NOTIFY_URL`: log each transition by its ids, entity key, from/to and times, never
    /// its `data` (customers' names, phones and addresses would reach CloudWatch).
    Log,
    /// No `NOTIFY_URL` and `NOTIFY_LOG_BODIES=true` (development only, never in the
    /// template): log each transition whole.
    LogWhole,
    /// POST each transition to `url`, signed with `secret`.
    Http {
        url: Url,
        secret: SigningKeys,
        /// rustls, no redirects, `timeout` for the whole request.
        client: reqwest::Client,
        timeout: Duration,
    },
}

impl Target {
    /// An HTTP target (`url` must be absolute http or https).
    pub fn http(url: &str, secret: SigningKeys, timeout: Duration) -> Result<Target, ConfigError> {
        let url = parse_url(url)?;
        if timeout.is_zero() {
            return Err(ConfigError::Invalid {
                var: TIMEOUT_VAR,
                reason: "must be at least 1 ms".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("webhook-notifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Invalid {
                var: URL_VAR,
                reason: format!("could not build the HTTP client: {}", e.without_url()),
            })?;
        Ok(Target::Http {
            url,
            secret,
            client,
            timeout,
        })
    }

    /// `NOTIFY_URL` unset: [`Target::Log`]. Set: [`Target::Http`], which requires
    /// `NOTIFY_SECRET` in `whsec_<base64>` form (comma-separated for rotation) and takes
    /// `NOTIFY_TIMEOUT_MS` (default 5000). Errors name the variable, never its value.
    pub fn from_env(env: &Env) -> Result<Target, ConfigError> {
        let whole = env.flag(&vars::NOTIFY_LOG_BODIES);
        let Some(url) = env.get(&vars::NOTIFY_URL) else {
            if whole {
                warn!("NOTIFY_LOG_BODIES=true: notifications are written to the log whole, personal data included (development only)");
                return Ok(Target::LogWhole);
            }
            info!("NOTIFY_URL is not set: notifications are written to the log (ids, entity, from/to and times; no data)");
            return Ok(Target::Log);
        };
        if whole {
            warn!("NOTIFY_LOG_BODIES is ignored: NOTIFY_URL is set");
        }
        let raw_secret = env
            .get(&vars::NOTIFY_SECRET)
            .ok_or(ConfigError::Missing(SECRET_VAR))?;
        let secret = SigningKeys::parse(raw_secret).map_err(|e| ConfigError::Invalid {
            var: SECRET_VAR,
            reason: e.to_string(),
        })?;
        let timeout =
            Duration::from_millis(env.u64_or(&vars::NOTIFY_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)?);
        let target = Target::http(url, secret, timeout)?;
        info!(notify_target = ?target, "notifications are POSTed to NOTIFY_URL, signed (Standard Webhooks)");
        Ok(target)
    }

    /// The request timeout, for an HTTP target.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Target::Log | Target::LogWhole => None,
            Target::Http { timeout, .. } => Some(*timeout),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Log => f.write_str("Log"),
            Target::LogWhole => f.write_str("LogWhole"),
            Target::Http {
                url,
                secret,
                timeout,
                ..
            } => f
                .debug_struct("Http")
                .field("url", &display_url(url))
                .field("secret", secret)
                .field("timeout_ms", &timeout.as_millis())
                .finish_non_exhaustive(),
        }
    }
}

fn parse_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        var: URL_VAR,
        reason: reason.to_string(),
    };
    let url = Url::parse(raw).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    Ok(url)
}

/// The URL without credentials or query (either may carry a token), for logs.
fn display_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}
