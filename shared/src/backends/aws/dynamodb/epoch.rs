//! The store's identity epoch (ARCHITECTURE §4, "Upgrade"): one marker item in the entities
//! table, written once by the first ingest process of today's release. The entities table,
//! because the only Scan over it (purge by matched value) skips the marker by its key, while
//! the events table's Scans decode every item as an event.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::items::ItemKey;
use super::{unavailable, DynamoDbStore, Item};
use crate::error::StoreError;
use crate::store::IdentityEpoch;

/// The marker's partition key: no entity key starts with it (they start with a source).
pub(super) const MARKER_PK: &str = "meta#identity_epoch";
const MARKER_SK: &str = "meta";
/// `fresh`, or the unix time the marker was written over a store holding events.
const SINCE: &str = "since";
const FRESH: &str = "fresh";

impl DynamoDbStore {
    /// Reads the marker (consistently; 1 RCU, once per process), writing it when absent:
    /// one `Scan` of a single events-table item says whether the store held any event.
    /// Two first processes racing both find the same answer or lose the conditional put
    /// and read the winner's.
    pub(super) async fn read_identity_epoch(
        &self,
        now: OffsetDateTime,
    ) -> Result<IdentityEpoch, StoreError> {
        if let Some(item) = self.get(&self.tables.entities, &marker()).await? {
            return Ok(epoch_of(&item));
        }
        let held = self
            .client
            .scan()
            .table_name(&self.tables.events)
            .limit(1)
            .projection_expression("event_key")
            .send()
            .await
            .map_err(|e| unavailable("Scan", e))?
            .count
            > 0;
        let since = if held {
            AttributeValue::N(now.unix_timestamp().to_string())
        } else {
            AttributeValue::S(FRESH.to_string())
        };
        let mut item = marker().to_item()?;
        item.insert(SINCE.to_string(), since);
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.entities)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(epoch_of(&item)),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                let item = self.get(&self.tables.entities, &marker()).await?;
                Ok(item.as_ref().map_or(IdentityEpoch::Unknown, epoch_of))
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }
}

fn marker() -> ItemKey {
    ItemKey {
        pk: MARKER_PK.to_string(),
        sk: MARKER_SK.to_string(),
    }
}

/// Whether an entities-table item is the marker, not an entity.
pub(super) fn is_marker(item: &Item) -> bool {
    matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk == MARKER_PK)
}

fn epoch_of(item: &Item) -> IdentityEpoch {
    match item.get(SINCE) {
        Some(AttributeValue::S(s)) if s == FRESH => IdentityEpoch::Fresh,
        Some(AttributeValue::N(n)) => n
            .parse()
            .ok()
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
            .map_or(IdentityEpoch::Unknown, IdentityEpoch::UpgradedAt),
        _ => IdentityEpoch::Unknown,
    }
}
