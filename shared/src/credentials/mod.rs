//! Tenant-bound credentials kept in a table, for deployments with more tenants than a
//! Lambda's 4 KB environment holds (ARCHITECTURE §3): DynamoDB's `CREDENTIALS_TABLE` on AWS,
//! the `credentials` table of the SQLite file locally. API keys and tokens are kept only as
//! their SHA-256 ([`KeyHash`]), so a key is looked up by its hash and never compared with a
//! stored value; a signature source's secret must be kept itself (the signature is computed
//! from it), and is looked up by the tenant its body names.
//!
//! Ingest reads through [`CredentialLookup`] (read-only, so the Lambdas' role grants only
//! reads), cached for `CREDENTIALS_CACHE_SECS` ([`cache`]); the operator CLI writes through
//! [`CredentialAdmin`]. Without a table the lookup is [`NoCredentialTable`], and a request
//! the environment's keys refuse is refused exactly as before.

pub mod cache;

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::{Source, Tenant};
use crate::verify::Secret;

/// SHA-256 of an API key or token: all the table keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(key: &[u8]) -> Self {
        KeyHash(Sha256::digest(key).into())
    }

    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex::decode(hex).ok()?;
        Some(KeyHash(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

/// A credential's public name (`cred_` and 16 hex digits, random): what `list`, `revoke`
/// and the logs show instead of the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialId(String);

impl CredentialId {
    const PREFIX: &'static str = "cred_";

    /// A fresh id from the operating system's random source.
    pub fn generate() -> Result<Self, StoreError> {
        Ok(CredentialId(format!("{}{}", Self::PREFIX, random_hex(8)?)))
    }

    /// An id as typed or stored; `None` unless it has the generated form.
    pub fn parse(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix(Self::PREFIX)?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| CredentialId(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `bytes` random bytes from the operating system, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)
        .map_err(|e| StoreError::Unavailable(format!("no random source: {e}")))?;
    Ok(hex::encode(buf))
}

/// What a stored credential holds, by its source's kind of credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// An API key's or token's hash (Pancake, Pancake POS, Abaha).
    KeyHash(KeyHash),
    /// A signing secret (fulfilment, invoice); `Debug` never prints it.
    Secret(Secret),
}

impl Material {
    /// The material a `value` becomes for `source`.
    pub fn for_source(source: Source, value: &str) -> Self {
        match source {
            Source::Pancake | Source::PancakePos | Source::Abaha => {
                Material::KeyHash(KeyHash::of(value.as_bytes()))
            }
            Source::Fulfilment | Source::Invoice => Material::Secret(Secret::new(value)),
        }
    }
}

/// Where a credential is in its life, at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    Active,
    Expired,
    Revoked,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Active => "active",
            CredentialStatus::Expired => "expired",
            CredentialStatus::Revoked => "revoked",
        }
    }
}

/// One row of the credential table. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub source: Source,
    pub tenant: Tenant,
    pub id: CredentialId,
    pub material: Material,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl StoredCredential {
    pub fn status(&self, now: i64) -> CredentialStatus {
        if self.revoked_at.is_some_and(|at| at <= now) {
            CredentialStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            CredentialStatus::Expired
        } else {
            CredentialStatus::Active
        }
    }

    pub(crate) fn is_active(&self, now: i64) -> bool {
        self.status(now) == CredentialStatus::Active
    }
}

/// What ingest reads: one request per lookup (a `GetItem` or a one-partition `Query`).
#[async_trait]
pub trait CredentialLookup: Send + Sync {
    /// The key (of a key source) whose hash is `hash`, whatever its status.
    async fn by_key(
        &self,
        source: Source,
        hash: &KeyHash,
    ) -> Result<Option<StoredCredential>, StoreError>;

    /// The signing secrets of a signature source's `tenant`, whatever their status.
    async fn secrets_of(
        &self,
        source: Source,
        tenant: &Tenant,
    ) -> Result<Vec<StoredCredential>, StoreError>;
}

/// What the operator CLI writes. Managing credentials is rare, so listing reads the whole
/// table (a paged Scan on DynamoDB): no index costs anything per event.
#[async_trait]
pub trait CredentialAdmin: CredentialLookup {
    /// Adds `credential`; `false` (nothing written) when the same key, or the same id, is
    /// already in the table.
    async fn insert(&self, credential: &StoredCredential) -> Result<bool, StoreError>;

    /// Writes an existing credential's `expires_at` / `revoked_at`.
    async fn update(&self, credential: &StoredCredential) -> Result<(), StoreError>;

    /// Every credential in the table.
    async fn all(&self) -> Result<Vec<StoredCredential>, StoreError>;
}

/// The null adapter: no credential table, so the environment's keys are the only ones.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoCredentialTable;

#[async_trait]
impl CredentialLookup for NoCredentialTable {
    async fn by_key(&self, _: Source, _: &KeyHash) -> Result<Option<StoredCredential>, StoreError> {
        Ok(None)
    }

    async fn secrets_of(&self, _: Source, _: &Tenant) -> Result<Vec<StoredCredential>, StoreError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(expires_at: Option<i64>, revoked_at: Option<i64>) -> StoredCredential {
        StoredCredential {
            source: Source::Abaha,
            tenant: Tenant::new("552"),
            id: CredentialId::parse("cred_0123456789abcdef").unwrap(),
            material: Material::for_source(Source::Abaha, "token"),
            created_at: 100,
            expires_at,
            revoked_at,
        }
    }

    #[test]
    fn status_follows_expiry_and_revocation() {
        assert!(credential(None, None).is_active(1_000));
        assert_eq!(
            credential(Some(200), None).status(199),
            CredentialStatus::Active
        );
        assert_eq!(
            credential(Some(200), None).status(200),
            CredentialStatus::Expired
        );
        assert_eq!(
            credential(Some(900), Some(150)).status(150),
            CredentialStatus::Revoked
        );
    }

    #[test]
    fn keys_are_kept_as_hashes_and_secrets_as_themselves() {
        let Material::KeyHash(hash) = Material::for_source(Source::PancakePos, "k") else {
            panic!("a Pancake POS key is kept as its hash");
        };
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(hash, KeyHash::of(b"k"));
        let secret = Material::for_source(Source::Invoice, "s3cret");
        assert!(!format!("{secret:?}").contains("s3cret"));
    }

    #[test]
    fn ids_are_random_and_parse_only_their_own_form() {
        let a = CredentialId::generate().unwrap();
        assert_ne!(a, CredentialId::generate().unwrap());
        assert_eq!(CredentialId::parse(a.as_str()), Some(a));
        for bad in [
            "cred_",
            "cred_xyz",
            "key_0123456789abcdef",
            "cred_0123456789abcdef0",
        ] {
            assert_eq!(CredentialId::parse(bad), None, "{bad}");
        }
    }
}
