//! The credential table in the SQLite file: the embedded twin of DynamoDB's
//! `CREDENTIALS_TABLE`, so `webhooks credentials` and tenant binding work the same locally.
//! Keys are kept as their hash; signing secrets as themselves, protected by the file's own
//! permissions (ARCHITECTURE, decisions). Reads and writes go through the store's writer
//! thread, like every other access to the file.

use async_trait::async_trait;
use rusqlite::{params, Connection, Row};

use super::error::unavailable;
use super::writer::{exec, GroupCommit};
use crate::credentials::{
    CredentialAdmin, CredentialId, CredentialLookup, KeyHash, Material, StoredCredential,
};
use crate::error::StoreError;
use crate::model::{Source, Tenant};
use crate::verify::Secret;

const COLUMNS: &str = "source, id, tenant, key_hash, secret, created_at, expires_at, revoked_at";

/// SQLite implementation of the credential ports.
#[derive(Clone)]
pub struct SqliteCredentialTable {
    writer: GroupCommit,
}

impl SqliteCredentialTable {
    pub(super) fn new(writer: GroupCommit) -> Self {
        SqliteCredentialTable { writer }
    }

    async fn select(
        &self,
        filter: &'static str,
        args: Vec<String>,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        self.writer
            .run(move |c| rows(c, filter, &args).map_err(|e| e.to_string()))
            .await
            .map_err(unavailable)
    }
}

fn rows(c: &Connection, filter: &str, args: &[String]) -> rusqlite::Result<Vec<StoredCredential>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM credentials {filter} ORDER BY source, tenant, created_at, id"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let found = stmt.query_map(rusqlite::params_from_iter(args), credential)?;
    found.filter_map(|row| row.transpose()).collect()
}

/// A row as a credential; `None` for one this version cannot read (an unknown source or a
/// malformed hash), which then admits nothing.
fn credential(r: &Row<'_>) -> rusqlite::Result<Option<StoredCredential>> {
    let source: String = r.get(0)?;
    let id: String = r.get(1)?;
    let hash: Option<String> = r.get(3)?;
    let secret: Option<String> = r.get(4)?;
    let material = match (hash, secret) {
        (Some(hash), _) => KeyHash::from_hex(&hash).map(Material::KeyHash),
        (None, Some(secret)) => Some(Material::Secret(Secret::new(secret))),
        (None, None) => None,
    };
    let (Some(source), Some(id), Some(material)) =
        (Source::parse(&source), CredentialId::parse(&id), material)
    else {
        return Ok(None);
    };
    Ok(Some(StoredCredential {
        source,
        tenant: Tenant::new(r.get::<_, String>(2)?),
        id,
        material,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    }))
}

#[async_trait]
impl CredentialLookup for SqliteCredentialTable {
    async fn by_key(
        &self,
        source: Source,
        hash: &KeyHash,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let args = vec![source.as_str().to_string(), hash.to_hex()];
        let found = self
            .select("WHERE source = ?1 AND key_hash = ?2", args)
            .await?;
        Ok(found.into_iter().next())
    }

    async fn secrets_of(
        &self,
        source: Source,
        tenant: &Tenant,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        let args = vec![source.as_str().to_string(), tenant.to_string()];
        self.select(
            "WHERE source = ?1 AND tenant = ?2 AND secret IS NOT NULL",
            args,
        )
        .await
    }
}

#[async_trait]
impl CredentialAdmin for SqliteCredentialTable {
    async fn insert(&self, credential: &StoredCredential) -> Result<bool, StoreError> {
        let c = credential.clone();
        let (hash, secret) = match &c.material {
            Material::KeyHash(hash) => (Some(hash.to_hex()), None),
            Material::Secret(secret) => (None, Some(secret.expose().to_string())),
        };
        self.writer
            .run(move |conn| {
                exec(
                    conn,
                    &format!("INSERT OR IGNORE INTO credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                    params![
                        c.source.as_str(),
                        c.id.as_str(),
                        c.tenant.as_str(),
                        hash,
                        secret,
                        c.created_at,
                        c.expires_at,
                        c.revoked_at
                    ],
                )
                .map(|written| written == 1)
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(unavailable)
    }

    async fn update(&self, credential: &StoredCredential) -> Result<(), StoreError> {
        let c = credential.clone();
        let written = self
            .writer
            .run(move |conn| {
                exec(
                    conn,
                    "UPDATE credentials SET expires_at = ?3, revoked_at = ?4 WHERE source = ?1 AND id = ?2",
                    params![c.source.as_str(), c.id.as_str(), c.expires_at, c.revoked_at],
                )
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(unavailable)?;
        if written == 1 {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "credential {} is not in the table",
                credential.id
            )))
        }
    }

    async fn all(&self) -> Result<Vec<StoredCredential>, StoreError> {
        self.select("", Vec::new()).await
    }
}
