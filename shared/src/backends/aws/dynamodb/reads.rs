//! Reads: consistent batch reads of entities and transitions, the stored event of a
//! duplicate, and table creation for emulators.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::items::{from_item, EntityHead, EventItem, ItemKey, TransitionItem};
use super::plan::Current;
use super::Item;
use super::{backoff, build_error, unavailable, DynamoDbStore, MAX_ATTEMPTS, MAX_BATCH_GET};
use crate::error::StoreError;
use crate::model::{EntityKey, EventKey};
use crate::store::{EventStatus, PendingPublish, PersistOutcome, Snapshot};
use crate::version::Version;

impl DynamoDbStore {
    /// Creates the three tables (on-demand capacity, TTL on `expires_at`, the transitions
    /// table's `NEW_IMAGE` stream) unless they exist.
    /// For emulators and local development: in AWS, template.yaml owns the tables. Tables
    /// are usable at once on moto and DynamoDB Local; on AWS they take a few seconds.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        self.create_table(&self.tables.events, "event_key", None)
            .await?;
        self.create_table(&self.tables.entities, "pk", Some("sk"))
            .await?;
        self.create_table(&self.tables.transitions, "pk", Some("sk"))
            .await?;
        for table in [
            &self.tables.events,
            &self.tables.entities,
            &self.tables.transitions,
        ] {
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name("expires_at")
                        .build()
                        .map_err(build_error)?,
                )
                .send()
                .await
                .map_err(|e| unavailable("UpdateTimeToLive", e))?;
        }
        Ok(())
    }

    pub(super) async fn create_table(
        &self,
        name: &str,
        hash: &str,
        range: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        if name == self.tables.transitions {
            // The stream the relay reads (ARCHITECTURE §6), as template.yaml declares it.
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(build_error)?,
            );
        }
        for (attribute, key_type) in [(Some(hash), KeyType::Hash), (range, KeyType::Range)] {
            let Some(attribute) = attribute else { continue };
            request = request
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attribute)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(build_error)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attribute)
                        .key_type(key_type)
                        .build()
                        .map_err(build_error)?,
                );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("CreateTable", e)),
        }
    }

    /// Consistent reads of the given entities: for each, what is stored (`None`: nothing).
    pub(super) async fn read_entities(
        &self,
        keys: &[EntityKey],
    ) -> Result<HashMap<String, Option<Current>>, StoreError> {
        let mut out: HashMap<String, Option<Current>> = HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut by_key = HashMap::new();
        let mut item_keys = Vec::with_capacity(keys.len());
        for key in keys {
            let item_key = ItemKey::of_entity(key);
            out.insert(key.stream(), None);
            by_key.insert(item_key.clone(), key.stream());
            item_keys.push(item_key);
        }
        let projection = (
            "#pk, #sk, #v, #st, #le",
            [
                ("#pk", "pk"),
                ("#sk", "sk"),
                ("#v", "version"),
                ("#st", "state"),
                ("#le", "last_event_key"),
            ],
        );
        for item in self
            .batch_get(&self.tables.entities, &item_keys, Some(projection))
            .await?
        {
            let (key, current) = current_of(item)?;
            if let Some(stream) = by_key.get(&key) {
                out.insert(stream.clone(), Some(current));
            }
        }
        Ok(out)
    }

    /// Consistent `BatchGetItem` of `keys` (any number), retrying unprocessed keys.
    pub(super) async fn batch_get(
        &self,
        table: &str,
        keys: &[ItemKey],
        projection: Option<(&str, [(&str, &str); 5])>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut request_keys = chunk
                .iter()
                .map(ItemKey::to_item)
                .collect::<Result<Vec<_>, _>>()?;
            let mut round = 0u32;
            while !request_keys.is_empty() {
                let mut spec = KeysAndAttributes::builder()
                    .set_keys(Some(request_keys))
                    .consistent_read(true);
                if let Some((expression, names)) = projection {
                    spec = spec.projection_expression(expression);
                    for (placeholder, name) in names {
                        spec = spec.expression_attribute_names(placeholder, name);
                    }
                }
                let response = self
                    .client
                    .batch_get_item()
                    .request_items(table, spec.build().map_err(build_error)?)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", e))?;
                if let Some(items) = response.responses().and_then(|r| r.get(table)) {
                    found.extend(items.iter().cloned());
                }
                request_keys = response
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !request_keys.is_empty() {
                    round += 1;
                    if round >= MAX_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "dynamodb BatchGetItem: {} keys of {table} left unprocessed",
                            request_keys.len()
                        )));
                    }
                    backoff(round).await;
                }
            }
        }
        Ok(found)
    }

    /// A duplicate: the stored event's status, and its transitions not yet published.
    pub(super) async fn duplicate(
        &self,
        key: &EventKey,
        stored: Option<Box<Item>>,
    ) -> Result<PersistOutcome, StoreError> {
        let item: EventItem = match stored {
            Some(item) => from_item(*item)?,
            None => match self.event_item(key, true).await? {
                Some(item) => item,
                // Deleted (TTL) between the failed condition and this read: try again.
                None => return Err(StoreError::Contention(key.to_string())),
            },
        };
        let mut transitions: Vec<TransitionItem> = self
            .batch_get(&self.tables.transitions, &item.transition_keys, None)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        transitions.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        let to_publish = transitions
            .into_iter()
            .filter(|t| t.queued && !t.published)
            .map(|t| {
                Ok(PendingPublish {
                    message: t.message()?,
                    stream: t.pk,
                    sort: t.sk,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(PersistOutcome {
            duplicate: true,
            status: EventStatus::parse(&item.status).unwrap_or(EventStatus::Applied),
            to_publish,
        })
    }

    pub(super) async fn event_item(
        &self,
        key: &EventKey,
        consistent: bool,
    ) -> Result<Option<EventItem>, StoreError> {
        let response = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .key("event_key", AttributeValue::S(key.to_string()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        response.item.map(from_item).transpose()
    }

    pub(super) async fn get(&self, table: &str, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.get_item(table, key, true).await
    }

    /// [`DynamoDbStore::get`] without the consistent read: half the read units.
    pub(super) async fn get_eventually(
        &self,
        table: &str,
        key: &ItemKey,
    ) -> Result<Option<Item>, StoreError> {
        self.get_item(table, key, false).await
    }

    async fn get_item(
        &self,
        table: &str,
        key: &ItemKey,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let response = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key.to_item()?))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(response.item)
    }
}

/// What a stored entity item says for the rules and the locking condition, and its key.
pub(super) fn current_of(item: Item) -> Result<(ItemKey, Current), StoreError> {
    let head: EntityHead = from_item(item)?;
    let key = ItemKey {
        pk: head.pk,
        sk: head.sk,
    };
    let current = Current {
        snapshot: Snapshot {
            version: Version::from_micros(head.version),
            state: head.state,
        },
        last_event_key: head.last_event_key,
    };
    Ok((key, current))
}
