//! Upgrading a DynamoDB deployment (issue 12): items as the release before the compact
//! form wrote them — the request as `body_gz` + a `headers` list, the entity's `data` and
//! the transition's `message` as JSON text, `from`/`to`/`event_key` as attributes of their
//! own — read exactly as the compact ones through the store and the operator code; a
//! redelivery and the notifier work on them; the next write of the entity makes it compact.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use webhook_core::model::TransitionMessage;
use webhook_core::store::{
    compress, decompress, DeliveryOutcome, DeliveryRecord, IncomingEvent, TransitionSelector,
};
use webhook_tests::aws::AwsFixture;
use webhook_tests::capacity::{Item, Tables};
use webhook_tests::kit::Kit;
use webhook_tests::samples::{order_event, order_key};

fn text(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn inflate(item: &mut Item, name: &str) -> String {
    let Some(AttributeValue::B(bytes)) = item.remove(name) else {
        panic!("{name} is not a compact attribute: {item:?}");
    };
    String::from_utf8(decompress(bytes.as_ref()).expect("deflated")).expect("UTF-8")
}

/// Rewrites every item of `fixture` in the earlier form; `event` is the one stored event.
async fn to_earlier_form(fixture: &AwsFixture, event: &IncomingEvent) {
    let t = &fixture.tables;
    for (at, mut item) in Tables::scan(fixture).await.items {
        if at.table == t.events {
            item.remove("request_z").expect("compact request");
            item.insert(
                "body_gz".into(),
                AttributeValue::B(compress(&event.raw_body).into()),
            );
            let headers = event
                .headers
                .iter()
                .map(|(n, v)| {
                    AttributeValue::M(HashMap::from([
                        ("name".to_string(), text(n)),
                        ("value".to_string(), text(v)),
                    ]))
                })
                .collect();
            item.insert("headers".into(), AttributeValue::L(headers));
        } else if at.table == t.entities {
            let data = inflate(&mut item, "data_z");
            item.insert("data".into(), text(&data));
        } else {
            let json = inflate(&mut item, "message_z");
            let message: TransitionMessage = serde_json::from_str(&json).expect("message");
            item.insert("message".into(), text(&json));
            item.insert("event_key".into(), text(message.event_key.as_str()));
            item.insert("to".into(), text(&message.to));
            if let Some(from) = &message.from {
                item.insert("from".into(), text(from));
            }
        }
        fixture
            .dynamodb
            .put_item()
            .table_name(&at.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("writing the earlier form");
    }
}

#[tokio::test]
async fn items_of_the_earlier_form_read_the_same_and_are_rewritten_compact() {
    let kit = Kit::dynamodb("upgrade-earlier-form").await;
    let fixture = kit.aws().expect("the DynamoDB kit");
    let op = kit.operator().await;
    let order = order_key(9100);
    let first = order_event("old-1", 9100, Some("NEW"), "PACKED", "2025-09-05T10:00:00Z");
    kit.store.persist(&first).await.expect("persist");

    // what today's items read as, through the store and the operator code
    let selector = TransitionSelector::Entity(order.clone());
    let report = op.event(first.key().as_str()).await.expect("event report");
    let entity = op.entity(&order).await.expect("entity report");
    let replayable = kit.store.replayable(&selector).await.expect("replayable");
    let stored = kit.store.event(&first.event.key()).await.unwrap();

    to_earlier_form(fixture, &first).await;
    let items = Tables::scan(fixture).await.items;
    assert!(items.values().any(|i| i.contains_key("body_gz")));
    assert!(items.values().all(|i| !i.keys().any(|k| k.ends_with("_z"))));

    // the earlier form reads exactly the same
    assert_eq!(op.event(first.key().as_str()).await.unwrap(), report);
    assert_eq!(op.entity(&order).await.unwrap(), entity);
    assert_eq!(kit.store.replayable(&selector).await.unwrap(), replayable);
    assert_eq!(kit.store.event(&first.event.key()).await.unwrap(), stored);
    assert_eq!(stored.unwrap().raw_body, first.raw_body);

    // a redelivery is a duplicate and hands back the stored message to send again
    let dup = kit.store.persist(&first).await.expect("duplicate");
    assert!(dup.duplicate);
    let message = replayable[0].message.clone().expect("queued");
    assert_eq!(
        dup.to_publish
            .iter()
            .map(|p| &p.message)
            .collect::<Vec<_>>(),
        vec![&message]
    );
    // the notifier reads and records the delivery on an earlier-form transition
    assert_eq!(kit.store.delivery(&message).await.unwrap(), None);
    let record = DeliveryRecord {
        outcome: DeliveryOutcome::Delivered,
        status: Some(200),
        attempt: 1,
        at: "2025-09-05T10:00:01Z".into(),
    };
    kit.store.record_delivery(&message, &record).await.unwrap();
    assert_eq!(kit.store.delivery(&message).await.unwrap(), Some(record));

    // the next event writes the entity compact, its text data removed
    let next = order_event(
        "new-2",
        9100,
        Some("PACKED"),
        "SHIPPED",
        "2025-09-05T11:00:00Z",
    );
    kit.store.persist(&next).await.expect("persist");
    let entity_item = Tables::scan(fixture)
        .await
        .items
        .into_iter()
        .find(|(at, _)| at.table == fixture.tables.entities)
        .map(|(_, item)| item)
        .expect("entity item");
    assert!(entity_item.contains_key("data_z") && !entity_item.contains_key("data"));
    let (now, history) = op.entity(&order).await.unwrap();
    assert_eq!(now.state.as_deref(), Some("SHIPPED"));
    assert_eq!(now.data["order"]["status"], "SHIPPED");
    let steps: Vec<(Option<&str>, &str)> = history
        .iter()
        .map(|t| (t.from.as_deref(), t.to.as_str()))
        .collect();
    assert_eq!(
        steps,
        vec![(Some("NEW"), "PACKED"), (Some("PACKED"), "SHIPPED")]
    );
}
