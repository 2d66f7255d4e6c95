//! Managing the credential table: `webhooks credentials add | list | rotate | revoke`. A
//! tenant has at most two active credentials, so a rotation overlaps the old and the new
//! one for a grace period and no more. A generated value is 32 random bytes in hex, shown
//! once by the caller and never again: the table keeps keys only as their hash, and nothing
//! here returns a stored secret.

use super::{Operator, OpsError};
use crate::credentials::{
    random_hex, CredentialAdmin, CredentialId, CredentialStatus, Material, StoredCredential,
};
use crate::model::{Source, Tenant};

/// Most credentials active at once per tenant: the one in use and its successor.
pub(crate) const MAX_ACTIVE: usize = 2;

/// Where a new credential's value comes from.
#[derive(Debug, Clone)]
pub enum NewValue {
    /// 32 random bytes, hex-encoded (what the provider's dashboard is given).
    Generate,
    /// One the provider issued (fulfilment and invoice platforms often do), or the operator
    /// chose.
    Given(String),
}

/// A credential just added, with its value when it was generated (to print once).
#[derive(Debug, Clone)]
pub struct Issued {
    pub credential: StoredCredential,
    pub generated: Option<String>,
}

/// Shortest value accepted from the operator: a guessable key defeats hashing.
pub(crate) const MIN_GIVEN_LEN: usize = 16;

fn refused(message: String) -> OpsError {
    OpsError::Refused(message)
}

impl Operator {
    /// Adds a credential for `tenant` of `source`, refused when the tenant already has
    /// [`MAX_ACTIVE`] active ones or the key is in the table already (for any tenant).
    pub async fn add_credential(
        &self,
        source: Source,
        tenant: &Tenant,
        value: NewValue,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Issued, OpsError> {
        self.room_for_one(source, tenant, now).await?;
        self.issue(source, tenant, value, expires_at, now).await
    }

    async fn issue(
        &self,
        source: Source,
        tenant: &Tenant,
        value: NewValue,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Issued, OpsError> {
        let (value, generated) = match value {
            NewValue::Generate => {
                let value = random_hex(32)?;
                (value.clone(), Some(value))
            }
            NewValue::Given(value) => (value.trim().to_string(), None),
        };
        if value.len() < MIN_GIVEN_LEN || value.contains(',') || value.chars().any(char::is_control)
        {
            return Err(refused(format!(
                "a credential must be at least {MIN_GIVEN_LEN} characters, without commas or control characters"
            )));
        }
        let credential = StoredCredential {
            source,
            tenant: tenant.clone(),
            id: CredentialId::generate()?,
            material: Material::for_source(source, &value),
            created_at: now,
            expires_at: expires_at.filter(|at| *at > now),
            revoked_at: None,
        };
        if !self.credentials.insert(&credential).await? {
            return Err(refused(format!(
                "that {source} credential is already in the table"
            )));
        }
        Ok(Issued {
            credential,
            generated,
        })
    }

    /// Every credential, filtered, in (source, tenant, created) order; values never leave
    /// the table through this (keys are hashes, and callers print ids and dates only).
    pub async fn list_credentials(
        &self,
        source: Option<Source>,
        tenant: Option<&Tenant>,
    ) -> Result<Vec<StoredCredential>, OpsError> {
        let mut all = self.credentials.all().await?;
        all.retain(|c| {
            source.is_none_or(|s| c.source == s) && tenant.is_none_or(|t| &c.tenant == t)
        });
        Ok(all)
    }

    /// The active credentials of one tenant, refused when there are [`MAX_ACTIVE`] already
    /// (during a rotation's grace period, the old and the new one).
    async fn room_for_one(
        &self,
        source: Source,
        tenant: &Tenant,
        now: i64,
    ) -> Result<Vec<StoredCredential>, OpsError> {
        let mut active = self.list_credentials(Some(source), Some(tenant)).await?;
        active.retain(|c| c.is_active(now));
        if active.len() >= MAX_ACTIVE {
            return Err(refused(format!(
                "{source} tenant {tenant} already has {MAX_ACTIVE} active credentials; revoke one first"
            )));
        }
        Ok(active)
    }

    /// Issues a successor and lets the tenant's current credential expire after `grace_secs`
    /// (so the provider's dashboard can be updated meanwhile); refused while an earlier
    /// rotation's grace period still runs (two are active).
    pub async fn rotate_credential(
        &self,
        source: Source,
        tenant: &Tenant,
        value: NewValue,
        grace_secs: i64,
        now: i64,
    ) -> Result<(Issued, Vec<StoredCredential>), OpsError> {
        let active = self.room_for_one(source, tenant, now).await?;
        let issued = self.issue(source, tenant, value, None, now).await?;
        let ends = now + grace_secs.max(0);
        let mut retiring = Vec::new();
        for mut old in active {
            old.expires_at = Some(old.expires_at.map_or(ends, |at| at.min(ends)));
            self.credentials.update(&old).await?;
            retiring.push(old);
        }
        Ok((issued, retiring))
    }

    /// Revokes `id`, or every active credential of the tenant when `id` is `None`. Ingest
    /// refuses a revoked key once its cached lookup ages out (`CREDENTIALS_CACHE_SECS`).
    pub async fn revoke_credential(
        &self,
        source: Source,
        tenant: &Tenant,
        id: Option<&CredentialId>,
        now: i64,
    ) -> Result<Vec<StoredCredential>, OpsError> {
        let mut targets = self.list_credentials(Some(source), Some(tenant)).await?;
        targets.retain(|c| match id {
            Some(id) => &c.id == id,
            None => c.is_active(now),
        });
        if targets.is_empty() {
            return Err(OpsError::NotFound(match id {
                Some(id) => format!("no credential {id} for {source} tenant {tenant}"),
                None => format!("no active credential for {source} tenant {tenant}"),
            }));
        }
        for c in &mut targets {
            if c.status(now) != CredentialStatus::Revoked {
                c.revoked_at = Some(now);
                self.credentials.update(c).await?;
            }
        }
        Ok(targets)
    }
}

/// The null admin port: no credential table configured (`CREDENTIALS_TABLE` unset with
/// `--store dynamodb`). Every call says so.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UnconfiguredCredentialTable;

fn no_table() -> crate::error::StoreError {
    crate::error::StoreError::Unavailable(
        "no credential table: set CREDENTIALS_TABLE to the stack's credential table".into(),
    )
}

#[async_trait::async_trait]
impl crate::credentials::CredentialLookup for UnconfiguredCredentialTable {
    async fn by_key(
        &self,
        _: Source,
        _: &crate::credentials::KeyHash,
    ) -> Result<Option<StoredCredential>, crate::error::StoreError> {
        Err(no_table())
    }

    async fn secrets_of(
        &self,
        _: Source,
        _: &Tenant,
    ) -> Result<Vec<StoredCredential>, crate::error::StoreError> {
        Err(no_table())
    }
}

#[async_trait::async_trait]
impl CredentialAdmin for UnconfiguredCredentialTable {
    async fn insert(&self, _: &StoredCredential) -> Result<bool, crate::error::StoreError> {
        Err(no_table())
    }

    async fn update(&self, _: &StoredCredential) -> Result<(), crate::error::StoreError> {
        Err(no_table())
    }

    async fn all(&self) -> Result<Vec<StoredCredential>, crate::error::StoreError> {
        Err(no_table())
    }
}
