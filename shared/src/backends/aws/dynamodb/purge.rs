//! Erasure on request (`webhooks purge`, ARCHITECTURE §5) over the three tables. There is
//! no index (decision 18), so what no key names is found by a Scan: the events naming an
//! entity or a tenant, a tenant's transitions, and everything a `--match` looks into. Items
//! are deleted one `DeleteItem` each (a purge is rare; a batch would only add the handling of
//! unprocessed items). What the tables cannot erase is named: their point-in-time recovery
//! window, and the CloudWatch log groups of the deployment.

use aws_sdk_dynamodb::types::{AttributeValue, PointInTimeRecoveryStatus};

use super::items::{from_item, EntityItem, EventItem, ItemKey, TransitionItem};
use super::{scan_items, unavailable, DynamoDbStore, Item};
use crate::error::StoreError;
use crate::model::{EntityKey, KeptCopy, Source, Tenant};
use crate::store::{Needle, PurgeTarget, Purged};

/// Keys a purge selected, per table.
#[derive(Default)]
struct Selected {
    events: Vec<String>,
    entities: Vec<ItemKey>,
    /// Key and transition id.
    transitions: Vec<(ItemKey, String)>,
    scanned: Vec<String>,
}

impl DynamoDbStore {
    pub(super) async fn purge_items(
        &self,
        target: &PurgeTarget,
        dry_run: bool,
    ) -> Result<Purged, StoreError> {
        let selected = match target {
            PurgeTarget::Entity(key) => self.select_entity(key).await?,
            PurgeTarget::Tenant { source, tenant } => self.select_tenant(*source, tenant).await?,
            PurgeTarget::Match(needle) => self.select_matching(needle).await?,
        };
        if !dry_run {
            self.delete_selected(&selected).await?;
        }
        Ok(Purged {
            events: selected.events,
            entities: selected
                .entities
                .into_iter()
                .map(|k| format!("{}#{}", k.pk, k.sk))
                .collect(),
            transitions: selected
                .transitions
                .into_iter()
                .map(|(k, id)| (k.pk, id))
                .collect(),
            queued: Vec::new(),
            scanned: selected.scanned,
            kept: self.kept_copies().await,
        })
    }

    /// The entity's item (one read), its transitions (one Query) and the events naming it
    /// (a Scan of the events table: nothing indexes an event by entity).
    async fn select_entity(&self, key: &EntityKey) -> Result<Selected, StoreError> {
        let item_key = ItemKey::of_entity(key);
        let stream = key.stream();
        let mut s = Selected::default();
        if self.get(&self.tables.entities, &item_key).await?.is_some() {
            s.entities.push(item_key);
        }
        s.transitions = self
            .query_transitions(&stream)
            .await?
            .into_iter()
            .map(|t| (ItemKey { pk: t.pk, sk: t.sk }, t.transition_id))
            .collect();
        s.events = self
            .scan_keys(
                &self.tables.events,
                "contains(#e, :stream)",
                &[("#e", "entity_keys")],
                vec![(":stream", AttributeValue::S(stream))],
            )
            .await?
            .into_iter()
            .filter_map(|item| text(&item, "event_key"))
            .collect();
        s.scanned.push(self.tables.events.clone());
        Ok(s)
    }

    /// The tenant's entities (one Query: they share the partition key), and its
    /// transitions and events (a Scan of each table).
    async fn select_tenant(&self, source: Source, tenant: &Tenant) -> Result<Selected, StoreError> {
        let partition = format!("{source}#{tenant}");
        let mut s = Selected::default();
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.entities)
            .key_condition_expression("#pk = :pk")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", AttributeValue::S(partition.clone()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            s.entities
                .push(from_item(item.map_err(|e| unavailable("Query", e))?)?);
        }
        s.transitions = self
            .scan_keys(
                &self.tables.transitions,
                "begins_with(#pk, :prefix)",
                &[("#pk", "pk")],
                vec![(":prefix", AttributeValue::S(format!("{partition}#")))],
            )
            .await?
            .into_iter()
            .filter_map(transition_key)
            .collect();
        s.events = self
            .scan_keys(
                &self.tables.events,
                "#s = :s AND #t = :t",
                &[("#s", "source"), ("#t", "tenant")],
                vec![
                    (":s", AttributeValue::S(source.as_str().to_string())),
                    (":t", AttributeValue::S(tenant.to_string())),
                ],
            )
            .await?
            .into_iter()
            .filter_map(|item| text(&item, "event_key"))
            .collect();
        s.scanned = vec![self.tables.transitions.clone(), self.tables.events.clone()];
        Ok(s)
    }

    /// Every item holding the value: one Scan of each table, each item's deflated request,
    /// data or message inflated and searched here (DynamoDB cannot search inside them).
    /// Items are searched as their page arrives and only the keys of matches are kept, so a
    /// purge holds one page (at most 1 MB) of a table at a time, whatever its size.
    async fn select_matching(&self, needle: &Needle) -> Result<Selected, StoreError> {
        let mut s = Selected::default();
        self.scan_each(&self.tables.events, |item| {
            let event: EventItem = from_item(item)?;
            let request = event.request()?;
            let headers = request
                .headers
                .iter()
                .any(|(n, v)| needle.found_in(n.as_bytes()) || needle.found_in(v.as_bytes()));
            if headers || needle.found_in(&request.body) {
                s.events.push(event.event_key);
            }
            Ok(())
        })
        .await?;
        self.scan_each(&self.tables.entities, |item| {
            if super::epoch::is_marker(&item) {
                return Ok(());
            }
            let entity: EntityItem = from_item(item)?;
            if needle.found_in(entity.data()?.to_string().as_bytes()) {
                s.entities.push(ItemKey {
                    pk: entity.pk,
                    sk: entity.sk,
                });
            }
            Ok(())
        })
        .await?;
        self.scan_each(&self.tables.transitions, |item| {
            let t: TransitionItem = from_item(item)?;
            let message = serde_json::to_vec(&t.message()?).unwrap_or_default();
            if needle.found_in(&message) {
                s.transitions
                    .push((ItemKey { pk: t.pk, sk: t.sk }, t.transition_id));
            }
            Ok(())
        })
        .await?;
        s.scanned = vec![
            self.tables.events.clone(),
            self.tables.entities.clone(),
            self.tables.transitions.clone(),
        ];
        Ok(s)
    }

    /// Hands `each` every item of `table` (consistent, all pages) as its page arrives.
    async fn scan_each(
        &self,
        table: &str,
        each: impl FnMut(Item) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let scan = self.client.scan().table_name(table).consistent_read(true);
        scan_items(scan, each).await
    }

    /// A filtered Scan returning the key attributes (and a transition's id).
    async fn scan_keys(
        &self,
        table: &str,
        filter: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Vec<Item>, StoreError> {
        let projection = if table == self.tables.events {
            "event_key"
        } else {
            "pk, sk, transition_id"
        };
        self.filtered_scan(table, filter, Some(projection), names, values)
            .await
    }

    /// Every item of `table` passing `filter` (consistent, all pages), with only the
    /// `projection` attributes when one is given (purge, and `inspect`'s transitions of a
    /// tenant).
    pub(super) async fn filtered_scan(
        &self,
        table: &str,
        filter: &str,
        projection: Option<&str>,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut request = self
            .client
            .scan()
            .table_name(table)
            .filter_expression(filter)
            .set_projection_expression(projection.map(str::to_string))
            .consistent_read(true);
        for (placeholder, name) in names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        let mut out = Vec::new();
        scan_items(request, |item| {
            out.push(item);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Deletes the event items first: until the last is gone, `webhooks event` still
    /// explains what remains, and a purge interrupted half way is simply run again.
    async fn delete_selected(&self, s: &Selected) -> Result<(), StoreError> {
        for key in &s.events {
            let item = Item::from([("event_key".to_string(), AttributeValue::S(key.clone()))]);
            self.delete(&self.tables.events, item).await?;
        }
        for key in &s.entities {
            self.delete(&self.tables.entities, key.to_item()?).await?;
        }
        for (key, _) in &s.transitions {
            self.delete(&self.tables.transitions, key.to_item()?)
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, table: &str, key: Item) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| unavailable("DeleteItem", e))?;
        Ok(())
    }

    /// What still holds copies once the items are deleted: each table's point-in-time
    /// recovery window when it is on (asked of DynamoDB), and the deployment's log groups.
    async fn kept_copies(&self) -> Vec<KeptCopy> {
        let mut kept = Vec::new();
        for table in [
            &self.tables.events,
            &self.tables.entities,
            &self.tables.transitions,
        ] {
            let answer = self
                .client
                .describe_continuous_backups()
                .table_name(table)
                .send()
                .await;
            let pitr = answer.as_ref().ok().and_then(|a| {
                a.continuous_backups_description()?
                    .point_in_time_recovery_description()
                    .cloned()
            });
            let place = format!("DynamoDB point-in-time recovery of {table}");
            match (answer, pitr) {
                (Ok(_), Some(p))
                    if p.point_in_time_recovery_status()
                        == Some(&PointInTimeRecoveryStatus::Enabled) =>
                {
                    let days = p.recovery_period_in_days().unwrap_or(35);
                    kept.push(KeptCopy {
                        place,
                        kept: format!("a restore to any second of the last {days} days brings the deleted items back; they age out of it {days} days from now"),
                    });
                }
                (Ok(_), _) => {}
                (Err(e), _) => kept.push(KeptCopy {
                    place,
                    kept: format!(
                        "unknown: DescribeContinuousBackups failed ({}); template.yaml turns it on (35 days)",
                        unavailable("DescribeContinuousBackups", e)
                    ),
                }),
            }
        }
        kept.push(KeptCopy {
            place: "CloudWatch Logs: /aws/lambda/<stack>-* and /aws/apigateway/<stack>-http-api".to_string(),
            kept: "log lines of the requests and notifications (keys and ids), kept for the stack's LogRetentionDays (template default 30 days)".to_string(),
        });
        kept
    }
}

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn transition_key(item: Item) -> Option<(ItemKey, String)> {
    Some((
        ItemKey {
            pk: text(&item, "pk")?,
            sk: text(&item, "sk")?,
        },
        text(&item, "transition_id")?,
    ))
}
