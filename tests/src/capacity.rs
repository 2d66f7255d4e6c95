//! DynamoDB's capacity rules, applied to the requests an SDK client really sent (the
//! [`crate::aws::RequestCounter`]'s log) and the items really stored in moto (scanned back),
//! so a cost figure is a count, not an estimate.
//!
//! Rules (DynamoDB developer guide, "Item sizes" and "Capacity unit consumption"):
//! - an item's size is the sum over its attributes of the UTF-8 length of the name plus the
//!   size of the value: S = UTF-8 bytes; N ≈ 1 byte per two significant digits + 1; B = bytes;
//!   BOOL and NULL = 1; L and M = 3 + their elements, each element + 1 (a map element also
//!   counts its name); sets = the sum of their elements;
//! - a write costs 1 WRU per started KB (1,024 B) of the larger of the item before and after;
//!   an item in a `TransactWriteItems` costs twice that;
//! - a read costs 1 RRU per started 4 KB, consistent; half of that eventually consistent;
//!   a `Query` is one read of the sum of the items it reads (one partition's here), so even
//!   an empty one costs a read.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::aws::AwsFixture;
use crate::requests::SentRequest;

/// An item as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// Size of a number: leading and trailing zeros trimmed, 1 byte per two significant
/// digits, plus 1.
fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// Size of one attribute value.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// Size of an item: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units of one write of an item of `bytes` (the larger of before and after).
pub fn write_units(bytes: usize, transactional: bool) -> u64 {
    let units = (bytes.max(1) as u64).div_ceil(1024);
    if transactional {
        2 * units
    } else {
        units
    }
}

/// Read units, in halves (an eventually consistent read of ≤ 4 KB is 1 half-unit), of one
/// read of an item of `bytes`.
pub fn read_half_units(bytes: usize, consistent: bool) -> u64 {
    let units = (bytes.max(1) as u64).div_ceil(4096);
    if consistent {
        2 * units
    } else {
        units
    }
}

/// The key of an item (or a request's `Key`) in one table: its key attributes' values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemRef {
    pub table: String,
    pub key: Vec<(String, String)>,
}

/// Every item of the fixture's three tables and its credential table, by key.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub items: BTreeMap<ItemRef, Item>,
}

/// The key attributes of each of the fixture's tables.
fn key_names(fixture: &AwsFixture, table: &str) -> &'static [&'static str] {
    if table == fixture.tables.events {
        &["event_key"]
    } else {
        &["pk", "sk"]
    }
}

fn key_of(names: &[&str], table: &str, item: &Item) -> ItemRef {
    ItemRef {
        table: table.to_string(),
        key: names
            .iter()
            .map(|n| {
                let value = match item.get(*n) {
                    Some(AttributeValue::S(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (n.to_string(), value)
            })
            .collect(),
    }
}

/// A key in the DynamoDB JSON of a request (`{"pk": {"S": "…"}, …}`).
fn key_of_json(names: &[&str], table: &str, json: &Value) -> ItemRef {
    ItemRef {
        table: table.to_string(),
        key: names
            .iter()
            .map(|n| {
                let value = json[*n]["S"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| json[*n].to_string());
                (n.to_string(), value)
            })
            .collect(),
    }
}

impl Tables {
    /// Scans the fixture's four tables (consistently), directly on moto.
    pub async fn scan(fixture: &AwsFixture) -> Self {
        let mut items = BTreeMap::new();
        let t = &fixture.tables;
        for table in [
            &t.events,
            &t.entities,
            &t.transitions,
            &fixture.credentials_table,
        ] {
            let mut pages = fixture
                .dynamodb
                .scan()
                .table_name(table)
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.expect("Scan");
                items.insert(key_of(key_names(fixture, table), table, &item), item);
            }
        }
        Tables { items }
    }

    pub fn size(&self, item: &ItemRef) -> Option<usize> {
        self.items.get(item).map(item_size)
    }

    /// The summed size of the items of one partition (`partition` names the table and the
    /// partition key alone); `None` when it holds none.
    pub fn partition_size(&self, partition: &ItemRef) -> Option<usize> {
        let sizes: Vec<usize> = self
            .items
            .iter()
            .filter(|(at, _)| {
                at.table == partition.table && at.key.first() == partition.key.first()
            })
            .map(|(_, item)| item_size(item))
            .collect();
        (!sizes.is_empty()).then(|| sizes.iter().sum())
    }
}

/// What a sequence of DynamoDB requests cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bill {
    /// Write request units.
    pub wru: u64,
    /// Read request units, in halves (2 = one consistent read of ≤ 4 KB).
    pub rru_halves: u64,
    /// DynamoDB requests sent.
    pub requests: usize,
    /// Every item written or read: operation, table, size in bytes, units.
    pub lines: Vec<BillLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BillLine {
    pub operation: String,
    /// `write`, `txn write`, `consistent read`, `read`, `consistent query` or `query`.
    pub kind: &'static str,
    pub table: String,
    pub bytes: usize,
    /// WRU for a write, RRU halves for a read.
    pub units: u64,
}

impl Bill {
    pub fn rru(&self) -> f64 {
        self.rru_halves as f64 / 2.0
    }

    /// Prices the requests `sent`, given the tables before and after them: each write at
    /// the larger of the item before and after, each read at the item read.
    pub fn of(fixture: &AwsFixture, sent: &[SentRequest], before: &Tables, after: &Tables) -> Self {
        let mut bill = Bill {
            requests: sent.len(),
            ..Bill::default()
        };
        for request in sent {
            for access in accesses(fixture, request) {
                // a write is billed on the larger of the item before and after it; a read
                // on the item as it was (a missing item still costs one read)
                let bytes = match access.kind {
                    Kind::Write { .. } => [before.size(&access.item), after.size(&access.item)]
                        .into_iter()
                        .flatten()
                        .max(),
                    Kind::Read { .. } => before.size(&access.item),
                    Kind::Query { .. } => before.partition_size(&access.item),
                }
                .unwrap_or(1);
                let units = match access.kind {
                    Kind::Write { transactional } => write_units(bytes, transactional),
                    Kind::Read { consistent } | Kind::Query { consistent } => {
                        read_half_units(bytes, consistent)
                    }
                };
                match access.kind {
                    Kind::Write { .. } => bill.wru += units,
                    Kind::Read { .. } | Kind::Query { .. } => bill.rru_halves += units,
                }
                bill.lines.push(BillLine {
                    operation: request.operation.clone(),
                    kind: access.kind.label(),
                    table: access.item.table.clone(),
                    bytes,
                    units,
                });
            }
        }
        bill
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Write {
        transactional: bool,
    },
    Read {
        consistent: bool,
    },
    /// A `Query`: one read of every item of the partition it names.
    Query {
        consistent: bool,
    },
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Write {
                transactional: true,
            } => "txn write",
            Kind::Write { .. } => "write",
            Kind::Read { consistent: true } => "consistent read",
            Kind::Read { .. } => "read",
            Kind::Query { consistent: true } => "consistent query",
            Kind::Query { .. } => "query",
        }
    }
}

struct Access {
    item: ItemRef,
    kind: Kind,
}

/// The items one request writes or reads, from its body.
fn accesses(fixture: &AwsFixture, request: &SentRequest) -> Vec<Access> {
    let body = &request.body;
    let table = body["TableName"].as_str().unwrap_or_default();
    let names = |t: &str| key_names(fixture, t);
    let consistent = body["ConsistentRead"].as_bool().unwrap_or(false);
    match request.operation.as_str() {
        "PutItem" => vec![Access {
            item: key_of_json(names(table), table, &body["Item"]),
            kind: Kind::Write {
                transactional: false,
            },
        }],
        "UpdateItem" | "DeleteItem" => vec![Access {
            item: key_of_json(names(table), table, &body["Key"]),
            kind: Kind::Write {
                transactional: false,
            },
        }],
        "GetItem" => vec![Access {
            item: key_of_json(names(table), table, &body["Key"]),
            kind: Kind::Read { consistent },
        }],
        "Query" => vec![Access {
            item: queried_partition(table, body),
            kind: Kind::Query { consistent },
        }],
        "BatchGetItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, spec)| {
                let consistent = spec["ConsistentRead"].as_bool().unwrap_or(false);
                spec["Keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |key| Access {
                        item: key_of_json(names(table), table, key),
                        kind: Kind::Read { consistent },
                    })
            })
            .collect(),
        "TransactWriteItems" => transaction_accesses(fixture, body),
        _ => Vec::new(),
    }
}

/// The items of a `TransactWriteItems`, each a transactional write (a `ConditionCheck` is
/// billed as one too).
fn transaction_accesses(fixture: &AwsFixture, body: &Value) -> Vec<Access> {
    body["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let (action, spec) = entry.as_object()?.iter().next()?;
            let table = spec["TableName"].as_str()?;
            let key = if action == "Put" {
                &spec["Item"]
            } else {
                &spec["Key"]
            };
            Some(Access {
                item: key_of_json(key_names(fixture, table), table, key),
                kind: Kind::Write {
                    transactional: true,
                },
            })
        })
        .collect()
}

/// The partition a `Query` reads, from a key condition of the form `name = :value` (the
/// name possibly a `#placeholder`), the only form the adapters send; any other is priced
/// as an empty partition (a visible 1 B line).
fn queried_partition(table: &str, body: &Value) -> ItemRef {
    let condition = body["KeyConditionExpression"].as_str().unwrap_or_default();
    let (name, placeholder) = condition.split_once(" = ").unwrap_or_default();
    let name = match name.trim() {
        alias if alias.starts_with('#') => body["ExpressionAttributeNames"][alias]
            .as_str()
            .unwrap_or_default(),
        plain => plain,
    };
    let value = body["ExpressionAttributeValues"][placeholder.trim()]["S"]
        .as_str()
        .unwrap_or_default();
    ItemRef {
        table: table.to_string(),
        key: vec![(name.to_string(), value.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(number_size("5342"), 3);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("-0.0012"), 2);
        assert_eq!(number_size("1757069100000000"), 5);
        assert_eq!(number_size("1757069100000001"), 9);
        let item: Item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("ab".into())),
            ("ok".to_string(), AttributeValue::Bool(true)),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "x".to_string(),
                    AttributeValue::S("yz".into()),
                )])),
            ),
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::Null(true)]),
            ),
        ]);
        // pk: 2+2; ok: 2+1; m: 1 + 3 + (1 + 1 + 2); l: 1 + 3 + (1 + 1)
        assert_eq!(item_size(&item), 4 + 3 + 8 + 6);
        assert_eq!(write_units(1024, false), 1);
        assert_eq!(write_units(1025, false), 2);
        assert_eq!(write_units(1025, true), 4);
        assert_eq!(read_half_units(4096, true), 2);
        assert_eq!(read_half_units(4097, false), 2);
    }

    #[test]
    fn a_query_reads_its_whole_partition_once() {
        let item = |pk: &str, sk: &str| -> Item {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.into())),
                ("sk".to_string(), AttributeValue::S(sk.into())),
            ])
        };
        let mut tables = Tables::default();
        for (pk, sk) in [("a", "1"), ("a", "22"), ("b", "1")] {
            let at = key_of(&["pk", "sk"], "credentials", &item(pk, sk));
            tables.items.insert(at, item(pk, sk));
        }
        let body = serde_json::json!({
            "TableName": "credentials",
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "a"}},
        });
        let partition = queried_partition("credentials", &body);
        // (2 + 1) + (2 + 1) and (2 + 1) + (2 + 2): the two items of "a", not "b"'s
        assert_eq!(tables.partition_size(&partition), Some(13));
        let aliased = serde_json::json!({
            "KeyConditionExpression": "#pk = :p",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":p": {"S": "b"}},
        });
        let partition = queried_partition("credentials", &aliased);
        assert_eq!(tables.partition_size(&partition), Some(6));
        let empty = queried_partition("credentials", &serde_json::json!({}));
        assert_eq!(tables.partition_size(&empty), None);
    }
}
