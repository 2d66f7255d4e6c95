//! The credential table on DynamoDB (`CREDENTIALS_TABLE`), keyed so that each ingest
//! lookup is one read request: a key (of a key source) is the item `pk = {source}#key#{sha256
//! hex}`, `sk = key`, read with an eventually consistent `GetItem`; a tenant's signing
//! secrets are the items `pk = {source}#tenant#{tenant}`, `sk = {id}`, read with a
//! one-partition `Query`. The ingest role may only read; the operator CLI writes. A key
//! added twice is refused by a conditional put, never by read-then-write.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use crate::credentials::{
    CredentialAdmin, CredentialId, CredentialLookup, KeyHash, Material, StoredCredential,
};
use crate::error::StoreError;
use crate::model::{Source, Tenant};
use crate::verify::Secret;

type Item = HashMap<String, AttributeValue>;

/// The sort key of a key item (one item per key hash, so a conditional put keeps it unique).
const KEY_SK: &str = "key";

/// DynamoDB implementation of the credential ports.
#[derive(Clone, Debug)]
pub struct DynamoDbCredentialTable {
    client: Client,
    table: String,
}

fn unavailable<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!(
        "dynamodb {op} (credentials): {}",
        DisplayErrorContext(&err)
    ))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_pk(source: Source, hash: &KeyHash) -> String {
    format!("{source}#key#{}", hash.to_hex())
}

fn tenant_pk(source: Source, tenant: &Tenant) -> String {
    format!("{source}#tenant#{tenant}")
}

/// The table key of `c`.
fn key_of(c: &StoredCredential) -> (String, String) {
    match &c.material {
        Material::KeyHash(hash) => (key_pk(c.source, hash), KEY_SK.to_string()),
        Material::Secret(_) => (tenant_pk(c.source, &c.tenant), c.id.to_string()),
    }
}

fn to_item(c: &StoredCredential) -> Item {
    let (pk, sk) = key_of(c);
    let mut item = Item::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s(sk)),
        ("source".to_string(), s(c.source.as_str())),
        ("tenant".to_string(), s(c.tenant.as_str())),
        ("id".to_string(), s(c.id.as_str())),
        ("created_at".to_string(), n(c.created_at)),
    ]);
    match &c.material {
        Material::KeyHash(hash) => item.insert("key_hash".into(), s(hash.to_hex())),
        Material::Secret(secret) => item.insert("secret".into(), s(secret.expose())),
    };
    for (name, at) in [("expires_at", c.expires_at), ("revoked_at", c.revoked_at)] {
        if let Some(at) = at {
            item.insert(name.into(), n(at));
        }
    }
    item
}

/// An item as a credential; `None` for one this version cannot read (it then admits nothing).
fn from_item(item: &Item) -> Option<StoredCredential> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()?.parse().ok());
    let material = match (text("key_hash"), text("secret")) {
        (Some(hash), _) => Material::KeyHash(KeyHash::from_hex(hash)?),
        (None, Some(secret)) => Material::Secret(Secret::new(secret.as_str())),
        (None, None) => return None,
    };
    Some(StoredCredential {
        source: Source::parse(text("source")?)?,
        tenant: Tenant::new(text("tenant")?.as_str()),
        id: CredentialId::parse(text("id")?)?,
        material,
        created_at: number("created_at")?,
        expires_at: number("expires_at"),
        revoked_at: number("revoked_at"),
    })
}

impl DynamoDbCredentialTable {
    /// Puts `credential` under `condition` (which may name `:id`, its id); `false` when the
    /// condition failed and nothing was written.
    async fn put(
        &self,
        credential: &StoredCredential,
        condition: &str,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(credential)))
            .condition_expression(condition);
        if condition.contains(":id") {
            request = request.expression_attribute_values(":id", s(credential.id.as_str()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbCredentialTable {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (on-demand) unless it exists: for emulators and local development;
    /// in AWS, template.yaml owns it.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
        };
        let built = |e: aws_sdk_dynamodb::error::BuildError| {
            StoreError::Unavailable(format!("dynamodb request: {e}"))
        };
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk").map_err(built)?)
            .attribute_definitions(attribute("sk").map_err(built)?)
            .key_schema(key("pk", KeyType::Hash).map_err(built)?)
            .key_schema(key("sk", KeyType::Range).map_err(built)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("CreateTable", e)),
        }
    }
}

#[async_trait]
impl CredentialLookup for DynamoDbCredentialTable {
    async fn by_key(
        &self,
        source: Source,
        hash: &KeyHash,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key_pk(source, hash)))
            .key("sk", s(KEY_SK))
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item().and_then(from_item))
    }

    async fn secrets_of(
        &self,
        source: Source,
        tenant: &Tenant,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(tenant_pk(source, tenant)))
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        Ok(out.items().iter().filter_map(from_item).collect())
    }
}

#[async_trait]
impl CredentialAdmin for DynamoDbCredentialTable {
    async fn insert(&self, credential: &StoredCredential) -> Result<bool, StoreError> {
        self.put(credential, "attribute_not_exists(pk)").await
    }

    async fn update(&self, credential: &StoredCredential) -> Result<(), StoreError> {
        if self
            .put(credential, "attribute_exists(pk) AND id = :id")
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "credential {} is not in the table",
                credential.id
            )))
        }
    }

    async fn all(&self) -> Result<Vec<StoredCredential>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Scan", e))?;
            found.extend(out.items().iter().filter_map(from_item));
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        found.sort_by(|a, b| {
            (a.source.as_str(), &a.tenant, a.created_at, &a.id).cmp(&(
                b.source.as_str(),
                &b.tenant,
                b.created_at,
                &b.id,
            ))
        });
        Ok(found)
    }
}
