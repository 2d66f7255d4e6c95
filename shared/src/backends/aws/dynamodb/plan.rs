//! Planning an event's writes (pure): the shared rules applied to what is known of the
//! stored entities, and the condition each entity write is sent with.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{EntityItem, ItemKey};
use crate::model::{EntityKey, EntityUpdate, EventKey, NormalisedEvent, TransitionRule};
use crate::store::{
    decide, EventStatus, PendingPublish, PersistOutcome, Snapshot, TransitionRecord,
};

// ---- planning (pure) ---------------------------------------------------------------------

/// What the store holds for an entity, as read with a consistent read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Current {
    pub(super) snapshot: Snapshot,
    pub(super) last_event_key: String,
}

/// The condition an entity write is sent with.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Guard {
    /// Not read: holds when nothing is stored, or the stored version is not newer and its
    /// state is not one this update may not leave — exactly the stored items for which
    /// `decide(.., None)` (the decision taken) equals `decide(.., Some(stored))`.
    Optimistic {
        version: i64,
        terminal: &'static [&'static str],
        state: Option<String>,
    },
    /// Read, and nothing was stored.
    Absent,
    /// Read: the item is still the one read (the write that produced it is named by
    /// `last_event_key`, since every event writes an entity at most once).
    Unchanged {
        version: i64,
        last_event_key: String,
    },
}

/// A DynamoDB condition with its placeholders.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Condition {
    pub(super) expression: String,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl Condition {
    pub(super) fn not_exists(attribute: &str) -> Self {
        Condition {
            expression: "attribute_not_exists(#k)".to_string(),
            names: HashMap::from([("#k".to_string(), attribute.to_string())]),
            values: HashMap::new(),
        }
    }

    pub(super) fn exists(attribute: &str) -> Self {
        Condition {
            expression: "attribute_exists(#k)".to_string(),
            names: HashMap::from([("#k".to_string(), attribute.to_string())]),
            values: HashMap::new(),
        }
    }

    pub(super) fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_string(), attribute.to_string());
        self
    }

    pub(super) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_string(), value);
        self
    }
}

impl Guard {
    pub(super) fn condition(&self) -> Condition {
        match self {
            Guard::Absent => Condition::not_exists("pk"),
            Guard::Unchanged {
                version,
                last_event_key,
            } => Condition {
                expression: "#v = :v AND #le = :le".to_string(),
                ..Default::default()
            }
            .name("#v", "version")
            .name("#le", "last_event_key")
            .value(":v", AttributeValue::N(version.to_string()))
            .value(":le", AttributeValue::S(last_event_key.clone())),
            Guard::Optimistic {
                version,
                terminal,
                state,
            } => {
                let mut cond = Condition::default()
                    .name("#pk", "pk")
                    .name("#v", "version")
                    .value(":v", AttributeValue::N(version.to_string()));
                let mut expression = "attribute_not_exists(#pk) OR (#v <= :v".to_string();
                if !terminal.is_empty() {
                    let placeholders: Vec<String> =
                        (0..terminal.len()).map(|i| format!(":t{i}")).collect();
                    for (p, s) in placeholders.iter().zip(terminal.iter()) {
                        cond = cond.value(p, AttributeValue::S(s.to_string()));
                    }
                    cond = cond.name("#st", "state");
                    let not_terminal = format!("NOT (#st IN ({}))", placeholders.join(", "));
                    match state {
                        Some(s) => {
                            cond = cond.value(":st", AttributeValue::S(s.clone()));
                            expression.push_str(&format!(" AND ({not_terminal} OR #st = :st)"));
                        }
                        None => expression.push_str(&format!(" AND {not_terminal}")),
                    }
                }
                expression.push(')');
                cond.expression = expression;
                cond
            }
        }
    }
}

/// One entity's item in the transaction.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EntityWrite {
    pub(super) key: ItemKey,
    /// The upsert; `None` for an entity decided optimistically but not written (a transition
    /// the lifecycle forbids): a `ConditionCheck` of its guard then keeps the decision exact.
    pub(super) item: Option<EntityItem>,
    pub(super) guard: Guard,
}

/// Everything one attempt writes, decided from what is known of the stored entities.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    pub(super) status: EventStatus,
    /// At most one per distinct entity, in the order the event names them.
    pub(super) entities: Vec<EntityWrite>,
    /// One per distinct transition id, in decision order.
    pub(super) transitions: Vec<TransitionRecord>,
    /// The TTL its entity and transition items carry ([`Plan::expiring`]).
    pub(super) expires_at: Option<i64>,
}

impl Plan {
    /// Stamps the entities and transitions it writes with their TTL (`expires_at`).
    pub(super) fn expiring(mut self, at: i64) -> Self {
        for write in &mut self.entities {
            if let Some(item) = &mut write.item {
                item.expires_at = Some(at);
            }
        }
        self.expires_at = Some(at);
        self
    }

    pub(super) fn outcome(&self) -> PersistOutcome {
        PersistOutcome {
            duplicate: false,
            status: self.status,
            to_publish: self
                .transitions
                .iter()
                .filter(|t| t.queued)
                .map(|t| PendingPublish {
                    stream: t.stream.clone(),
                    sort: t.sort.clone(),
                    message: t.message.clone(),
                })
                .collect(),
        }
    }
}

/// The entities that need their stored state to be decided: those with an update whose
/// transition is inferred from it (`FromStored`).
pub(super) fn needs_read(event: &NormalisedEvent) -> Vec<EntityKey> {
    let inferred: HashSet<String> = event
        .entities
        .iter()
        .filter(|u| u.transition == TransitionRule::FromStored)
        .map(|u| u.key.stream())
        .collect();
    distinct_keys(event)
        .into_iter()
        .filter(|k| inferred.contains(&k.stream()))
        .collect()
}

/// Distinct entity keys in the order the event names them.
pub(super) fn distinct_keys(event: &NormalisedEvent) -> Vec<EntityKey> {
    let mut seen = HashSet::new();
    event
        .entities
        .iter()
        .filter(|u| seen.insert(u.key.stream()))
        .map(|u| u.key.clone())
        .collect()
}

/// Applies the rules to the event's updates in order (`received`: its arrival, for the
/// far-future rule), as the SQLite backend does in its transaction: `known` holds the entities read (by stream; `None` = not stored); any other
/// entity is decided optimistically (as if nothing were stored) under a
/// [`Guard::Optimistic`] condition. An entity the event names twice is decided the second
/// time against the first update's result, and written once (its last written state). An
/// update without a state keeps the stored one (as the SQLite upsert's `COALESCE`).
pub(super) fn plan(
    event: &NormalisedEvent,
    received: crate::version::Version,
    known: &HashMap<String, Option<Current>>,
) -> Plan {
    let event_key = event.key();
    let mut slots: Vec<Slot> = Vec::new();
    let mut transitions: Vec<TransitionRecord> = Vec::new();
    let mut transition_ids = HashSet::new();
    let mut decisions = Vec::with_capacity(event.entities.len());

    for update in &event.entities {
        let key = ItemKey::of_entity(&update.key);
        let index = match slots.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                slots.push(Slot::first(event, update, key, known));
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        let decision = decide(
            &event_key,
            &event.event_id,
            update,
            slot.now.as_ref(),
            received,
        );
        if decision.write_entity {
            slot.apply(update, &event_key);
        }
        if let Some(t) = &decision.transition {
            if transition_ids.insert(t.message.transition_id.clone()) {
                transitions.push(t.clone());
            }
        }
        decisions.push(decision);
    }

    let entities = slots
        .into_iter()
        .filter(|s| s.write.is_some() || matches!(s.guard, Guard::Optimistic { .. }))
        .map(|s| EntityWrite {
            key: s.key,
            item: s.write,
            guard: s.guard,
        })
        .collect();
    Plan {
        status: EventStatus::summarise(event.recognition, &decisions),
        entities,
        transitions,
        expires_at: None,
    }
}

/// One distinct entity of the event while it is planned.
struct Slot {
    key: ItemKey,
    guard: Guard,
    /// What the entity holds at this point of the event.
    now: Option<Snapshot>,
    write: Option<EntityItem>,
}

impl Slot {
    /// The entity as first named by the event: decided on what was read, or optimistically.
    fn first(
        event: &NormalisedEvent,
        update: &EntityUpdate,
        key: ItemKey,
        known: &HashMap<String, Option<Current>>,
    ) -> Slot {
        let (guard, now) = match known.get(&update.key.stream()) {
            Some(Some(current)) => (
                Guard::Unchanged {
                    version: current.snapshot.version.micros(),
                    last_event_key: current.last_event_key.clone(),
                },
                Some(current.snapshot.clone()),
            ),
            Some(None) => (Guard::Absent, None),
            None => {
                debug_assert!(
                    event
                        .entities
                        .iter()
                        .all(|u| u.key != update.key || u.transition != TransitionRule::FromStored),
                    "an entity with a FromStored update is decided on a read"
                );
                let guard = Guard::Optimistic {
                    version: update.version.micros(),
                    terminal: update.lifecycle.terminal_states(),
                    state: update.state.clone(),
                };
                (guard, None)
            }
        };
        Slot {
            key,
            guard,
            now,
            write: None,
        }
    }

    /// The update is written: the entity holds it from here on (its state, or the one it
    /// kept when the update carries none).
    fn apply(&mut self, update: &EntityUpdate, event_key: &EventKey) {
        let state = update
            .state
            .clone()
            .or_else(|| self.now.as_ref().and_then(|s| s.state.clone()));
        self.now = Some(Snapshot {
            version: update.version,
            state,
        });
        self.write = Some(EntityItem {
            pk: update.key.partition(),
            sk: update.key.sort(),
            version: update.version.micros(),
            state: update.state.clone(),
            data_z: EntityItem::compact_data(&update.data),
            data: None,
            last_event_key: event_key.to_string(),
            expires_at: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Received long after every version these tests use.
    const LATE: crate::version::Version = crate::version::Version::from_micros(i64::MAX / 2);

    fn plan_of(e: &NormalisedEvent, known: &HashMap<String, Option<Current>>) -> Plan {
        plan(e, LATE, known)
    }
    use crate::lifecycle::Lifecycle;
    use crate::model::{EntityUpdate, Source, Tenant};
    use crate::store::Flag;
    use crate::version::Version;
    use serde_json::json;

    fn update(id: &str, version: i64, state: &str, rule: TransitionRule) -> EntityUpdate {
        EntityUpdate {
            key: EntityKey::new(
                Source::Fulfilment,
                Tenant::new("XYZ"),
                crate::model::EntityKind::Order,
                id,
            ),
            version: Version::from_micros(version),
            state: Some(state.to_string()),
            data: json!({"id": id, "n": 1.50}),
            transition: rule,
            lifecycle: Lifecycle::Free,
        }
    }

    fn event(entities: Vec<EntityUpdate>) -> NormalisedEvent {
        NormalisedEvent {
            recognition: crate::model::Recognition::Known,
            source: Source::Fulfilment,
            event_id: "d1".into(),
            event_type: "order.status_changed".into(),
            provider_event: "ORDER.CHANGE_STATUS".into(),
            tenant: Tenant::new("XYZ"),
            entities,
        }
    }

    fn declared(from: &str, to: &str) -> TransitionRule {
        TransitionRule::Declared {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn happy_path_is_optimistic_and_reads_nothing() {
        let e = event(vec![update("1", 5, "B", declared("A", "B"))]);
        assert!(needs_read(&e).is_empty());
        let p = plan(&e, LATE, &HashMap::new());
        assert_eq!(p.status, EventStatus::Applied);
        assert_eq!(p.entities.len(), 1);
        assert_eq!(
            p.entities[0].guard,
            Guard::Optimistic {
                version: 5,
                terminal: &[],
                state: Some("B".into())
            }
        );
        assert_eq!(
            p.entities[0].item.as_ref().unwrap().last_event_key,
            "fulfilment#d1"
        );
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.outcome().to_publish.len(), 1);
        let c = p.entities[0].guard.condition();
        assert_eq!(c.expression, "attribute_not_exists(#pk) OR (#v <= :v)");
        assert_eq!(c.values[":v"], AttributeValue::N("5".into()));
    }

    #[test]
    fn invoice_guard_excludes_terminal_states_unless_unchanged() {
        let mut u = update("inv", 7, "Pending", declared("Ready", "Pending"));
        u.lifecycle = Lifecycle::Invoice;
        let p = plan_of(&event(vec![u.clone()]), &HashMap::new());
        let c = p.entities[0].guard.condition();
        assert_eq!(
            c.expression,
            "attribute_not_exists(#pk) OR (#v <= :v AND (NOT (#st IN (:t0, :t1, :t2, :t3)) OR #st = :st))"
        );
        assert_eq!(c.names["#st"], "state");
        assert_eq!(c.values[":st"], AttributeValue::S("Pending".into()));
        assert_eq!(c.values.len(), 6);
        u.state = None;
        let c = plan_of(&event(vec![u]), &HashMap::new()).entities[0]
            .guard
            .condition();
        assert!(c
            .expression
            .ends_with("AND NOT (#st IN (:t0, :t1, :t2, :t3)))"));
    }

    #[test]
    fn from_stored_needs_a_read_and_locks_on_what_was_read() {
        let e = event(vec![update("1", 9, "PAID", TransitionRule::FromStored)]);
        assert_eq!(needs_read(&e).len(), 1);
        let stream = e.entities[0].key.stream();
        let known = HashMap::from([(
            stream.clone(),
            Some(Current {
                snapshot: Snapshot {
                    version: Version::from_micros(3),
                    state: Some("NEW".into()),
                },
                last_event_key: "fulfilment#d0".into(),
            }),
        )]);
        let p = plan(&e, LATE, &known);
        assert_eq!(
            p.entities[0].guard,
            Guard::Unchanged {
                version: 3,
                last_event_key: "fulfilment#d0".into()
            }
        );
        assert_eq!(p.transitions[0].message.from.as_deref(), Some("NEW"));
        assert_eq!(
            p.entities[0].guard.condition().expression,
            "#v = :v AND #le = :le"
        );
        let absent = plan(&e, LATE, &HashMap::from([(stream, None)]));
        assert_eq!(absent.entities[0].guard, Guard::Absent);
        assert!(absent.transitions.is_empty());
    }

    #[test]
    fn stale_and_terminal_entities_are_not_written_but_transitions_are() {
        let mut u = update("inv", 5, "Fail", declared("Pending", "Fail"));
        u.lifecycle = Lifecycle::Invoice;
        let e = event(vec![u]);
        let stream = e.entities[0].key.stream();
        let current = |v: i64, s: &str| {
            HashMap::from([(
                stream.clone(),
                Some(Current {
                    snapshot: Snapshot {
                        version: Version::from_micros(v),
                        state: Some(s.into()),
                    },
                    last_event_key: "invoice#x".into(),
                }),
            )])
        };
        let terminal = plan(&e, LATE, &current(4, "Complete"));
        assert!(terminal.entities.is_empty());
        assert_eq!(terminal.status, EventStatus::Flagged);
        assert_eq!(terminal.transitions[0].flag, Some(Flag::Terminal));
        assert!(terminal.outcome().to_publish.is_empty());
        let stale = plan(&e, LATE, &current(6, "Pending"));
        assert!(stale.entities.is_empty());
        assert_eq!(stale.status, EventStatus::Stale);
        assert!(stale.transitions[0].message.late);
    }

    #[test]
    fn a_forbidden_transition_checks_its_guard_without_writing() {
        let mut u = update("inv", 5, "Pending", declared("Complete", "Pending"));
        u.lifecycle = Lifecycle::Invoice;
        let p = plan_of(&event(vec![u]), &HashMap::new());
        assert_eq!(p.status, EventStatus::Flagged);
        assert_eq!(p.entities.len(), 1);
        assert!(p.entities[0].item.is_none());
        assert!(matches!(
            p.entities[0].guard,
            Guard::Optimistic { version: 5, .. }
        ));
        assert_eq!(p.transitions[0].flag, Some(Flag::NotAllowed));
        assert!(p.outcome().to_publish.is_empty());
    }

    #[test]
    fn an_update_without_state_keeps_the_state_for_later_updates() {
        let mut first = update("1", 5, "B", TransitionRule::None);
        first.state = None;
        let second = update("1", 6, "C", TransitionRule::FromStored);
        let e = event(vec![first, second]);
        let stream = e.entities[0].key.stream();
        let known = HashMap::from([(
            stream,
            Some(Current {
                snapshot: Snapshot {
                    version: Version::from_micros(3),
                    state: Some("A".into()),
                },
                last_event_key: "fulfilment#d0".into(),
            }),
        )]);
        assert_eq!(needs_read(&e).len(), 1);
        let p = plan(&e, LATE, &known);
        // the second update sees A (kept by the first), so it records A -> C
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.transitions[0].message.from.as_deref(), Some("A"));
    }

    #[test]
    fn an_entity_named_twice_is_written_once_with_its_last_state() {
        let e = event(vec![
            update("1", 5, "B", declared("A", "B")),
            update("2", 5, "X", TransitionRule::None),
            update("1", 6, "C", declared("B", "C")),
        ]);
        let p = plan(&e, LATE, &HashMap::new());
        assert_eq!(p.entities.len(), 2);
        let written = p.entities[0].item.as_ref().unwrap();
        assert_eq!(written.version, 6);
        assert_eq!(written.state.as_deref(), Some("C"));
        // guarded by the first update (what the stored item must satisfy)
        assert!(matches!(
            p.entities[0].guard,
            Guard::Optimistic { version: 5, .. }
        ));
        // same event + entity = same transition id: recorded once
        assert_eq!(p.transitions.len(), 1);
        assert_eq!(p.transitions[0].message.to, "B");
    }
}
