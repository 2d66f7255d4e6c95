//! AWS SDK configuration shared by the DynamoDB store and the SQS queue, built once per
//! cold start.
//!
//! The SDK crates are compiled lean (no default features), so the HTTP client is given
//! explicitly: hyper 1 + rustls with the `ring` crypto provider, through
//! `aws-smithy-http-client`. Everything else follows the SDK's standard sources:
//! `AWS_ENDPOINT_URL` (also `AWS_ENDPOINT_URL_DYNAMODB` / `_SQS`), `AWS_REGION`, and the
//! default credential chain (in Lambda: the role credentials in the environment), so the
//! same binary runs against AWS and against `moto_server`.
//!
//! Values can also be passed explicitly through [`AwsSettings`] (tests against moto pass an
//! endpoint, a region and dummy credentials without touching the process environment).

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::config::{vars, ConfigError, Env};

/// How the SDK clients reach AWS. Unset fields fall back to the SDK's standard sources
/// (process environment, profile, container/instance metadata).
#[derive(Clone, Default)]
pub struct AwsSettings {
    /// A custom endpoint for every service (moto, DynamoDB Local, a VPC endpoint).
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    /// Static credentials; `None` uses the default credential chain.
    pub credentials: Option<Credentials>,
    /// Attempts per SDK call, including the first (standard retry mode with backoff).
    pub max_attempts: u32,
}

impl fmt::Debug for AwsSettings {
    // Never prints credentials (not even the access key id).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("static_credentials", &self.credentials.is_some())
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl AwsSettings {
    /// Default attempts per call: the first plus two retries, all well inside API Gateway's
    /// 30 s integration timeout (see [`timeouts`]).
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    /// Reads `AWS_ENDPOINT_URL`, `AWS_REGION` (or `AWS_DEFAULT_REGION`), and
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) when both are set,
    /// and `AWS_MAX_ATTEMPTS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let credentials = match (
            env.get(&vars::AWS_ACCESS_KEY_ID),
            env.get(&vars::AWS_SECRET_ACCESS_KEY),
        ) {
            (Some(id), Some(secret)) => Some(Credentials::new(
                id,
                secret,
                env.get(&vars::AWS_SESSION_TOKEN).map(str::to_string),
                None,
                "environment",
            )),
            _ => None,
        };
        let max_attempts =
            env.u64_or(&vars::AWS_MAX_ATTEMPTS, Self::DEFAULT_MAX_ATTEMPTS as u64)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::Invalid {
                var: vars::AWS_MAX_ATTEMPTS.name,
                reason: format!("expected 1 to 10, got {max_attempts}"),
            });
        }
        Ok(AwsSettings {
            endpoint_url: env.get(&vars::AWS_ENDPOINT_URL).map(str::to_string),
            region: env
                .get(&vars::AWS_REGION)
                .or_else(|| env.get(&vars::AWS_DEFAULT_REGION))
                .map(str::to_string),
            credentials,
            max_attempts: max_attempts as u32,
        })
    }

    /// A local emulator (moto_server, DynamoDB Local): the endpoint, `us-east-1` and dummy
    /// credentials (the emulator does not check signatures).
    pub fn emulator(endpoint_url: impl Into<String>) -> Self {
        AwsSettings {
            endpoint_url: Some(endpoint_url.into()),
            region: Some("us-east-1".to_string()),
            credentials: Some(Credentials::new("test", "test", None, None, "emulator")),
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Connect, per-attempt and whole-call limits. A call that cannot finish in time fails
/// with a transient error, so the request answers 503 before API Gateway gives up (30 s)
/// and the provider retries.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(6))
        .operation_timeout(Duration::from_secs(20))
        .build()
}

/// Loads the shared SDK configuration with the rustls/ring HTTPS client.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)));
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(credentials) = &settings.credentials {
        loader = loader.credentials_provider(credentials.clone());
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_env_and_debug_hides_credentials() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
        ]);
        let s = AwsSettings::from_env(&env).unwrap();
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert!(s.credentials.is_some());
        assert_eq!(s.max_attempts, AwsSettings::DEFAULT_MAX_ATTEMPTS);
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret-value") && !shown.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn partial_credentials_fall_back_to_the_default_chain() {
        let env = Env::from_pairs([("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]);
        assert!(AwsSettings::from_env(&env).unwrap().credentials.is_none());
    }

    #[test]
    fn max_attempts_is_validated() {
        let env = Env::from_pairs([("AWS_MAX_ATTEMPTS", "0")]);
        let err = AwsSettings::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("AWS_MAX_ATTEMPTS"));
    }
}
