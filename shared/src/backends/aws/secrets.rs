//! Secrets Manager as the [`SecretStore`] of credential references (ARCHITECTURE §3): one
//! `GetSecretValue` per reference at init and once per cache lifetime after.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use crate::config::secrets::{SecretError, SecretStore};

/// Reads secrets' current (`AWSCURRENT`) string values.
#[derive(Clone, Debug)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManager { client }
    }
}

#[async_trait]
impl SecretStore for SecretsManager {
    async fn read(&self, id: &str) -> Result<String, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                SecretError(format!("GetSecretValue {id}: {}", DisplayErrorContext(&e)))
            })?;
        // A binary secret has no text form a credential variable could take.
        output
            .secret_string
            .ok_or_else(|| SecretError(format!("{id} holds no SecretString")))
    }
}
