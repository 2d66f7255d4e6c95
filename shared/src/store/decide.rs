//! The store rules of ARCHITECTURE §5/§6 as one pure function, shared by every backend: given what
//! an event says about an entity and what is stored, decide whether the entity is written and
//! which transition is recorded (and whether it is queued).

use crate::lifecycle::Lifecycle;
use crate::model::{
    transition_id, EntityRef, EntityUpdate, EventKey, TransitionMessage, TransitionRule,
};
use crate::version::Version;

/// What the store holds for an entity (the part the rules need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: Version,
    pub state: Option<String>,
}

/// Why a transition was recorded but not applied or queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The lifecycle does not allow `from → to` (e.g. an invoice Complete → Pending).
    NotAllowed,
    /// The entity is in a terminal state and a newer event tried to leave it.
    Terminal,
    /// The event's version lies more than a day after its receipt
    /// ([`Version::is_far_ahead_of`]): applying it would freeze the entity.
    Future,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::NotAllowed => "not_allowed",
            Flag::Terminal => "terminal",
            Flag::Future => "future",
        }
    }
}

/// A transition to record in the transitions table.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRecord {
    /// `{source}#{tenant}#{kind}#{id}`
    pub stream: String,
    /// `{version}#{event_id}`
    pub sort: String,
    pub flag: Option<Flag>,
    /// Allowed transitions are queued (including late ones: each is a fact of the history,
    /// notified once; `late` tells the receiver it arrived after a newer state).
    pub queued: bool,
    pub message: TransitionMessage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub write_entity: bool,
    /// The stored entity is newer than this event.
    pub stale: bool,
    /// The event's version is far ahead of its receipt: flagged, never applied.
    pub future: bool,
    pub transition: Option<TransitionRecord>,
}

/// Applies the rules to one entity update. `current` is `None` when nothing is stored;
/// `received` is when the event arrived (a version more than a day after it is flagged
/// [`Flag::Future`] and never applied, so a later, current update still applies).
pub fn decide(
    event: &EventKey,
    event_id: &str,
    update: &EntityUpdate,
    current: Option<&Snapshot>,
    received: Version,
) -> Decision {
    let future = update.version.is_far_ahead_of(received);
    let stale = !future && current.is_some_and(|c| c.version > update.version);
    let stored_state = current.and_then(|c| c.state.as_deref());
    let leaves_terminal = !stale
        && stored_state
            .is_some_and(|s| update.lifecycle.is_terminal(s) && update.state.as_deref() != Some(s));
    let change = match &update.transition {
        TransitionRule::None => None,
        TransitionRule::Declared { from, to } if from != to => {
            Some((Some(from.clone()), to.clone()))
        }
        TransitionRule::Declared { .. } => None,
        TransitionRule::FromStored => match (stale, stored_state, update.state.as_deref()) {
            (false, Some(old), Some(new)) if old != new => {
                Some((Some(old.to_string()), new.to_string()))
            }
            _ => None,
        },
    };
    let not_allowed = change.as_ref().is_some_and(|(from, to)| match from {
        Some(f) => !update.lifecycle.allows(f, to),
        None => update.lifecycle != Lifecycle::Free,
    });
    // A transition the lifecycle forbids is recorded and flagged, never applied.
    let write_entity = !future && !stale && !leaves_terminal && !not_allowed;
    let transition = change.map(|(from, to)| {
        let flag = if future {
            Some(Flag::Future)
        } else if not_allowed {
            Some(Flag::NotAllowed)
        } else if leaves_terminal {
            Some(Flag::Terminal)
        } else {
            None
        };
        record(event, event_id, update, from, to, flag, stale)
    });
    Decision {
        write_entity,
        stale,
        future,
        transition,
    }
}

fn record(
    event: &EventKey,
    event_id: &str,
    update: &EntityUpdate,
    from: Option<String>,
    to: String,
    flag: Option<Flag>,
    late: bool,
) -> TransitionRecord {
    TransitionRecord {
        stream: update.key.stream(),
        sort: format!("{}#{}", update.version.sort_key(), event_id),
        flag,
        queued: flag.is_none(),
        message: TransitionMessage {
            transition_id: transition_id(event, &update.key),
            source: update.key.source,
            tenant: update.key.tenant.clone(),
            entity: EntityRef {
                kind: update.key.kind,
                id: update.key.id.clone(),
            },
            from,
            to,
            occurred_at: update.version.to_rfc3339(),
            event_key: event.clone(),
            late,
            data: update.data.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules as received long after every version these tests use.
    fn decide(e: &EventKey, id: &str, u: &EntityUpdate, c: Option<&Snapshot>) -> Decision {
        super::decide(e, id, u, c, Version::from_micros(i64::MAX / 2))
    }
    use crate::model::{EntityKey, EntityKind, Source, Tenant};
    use serde_json::json;

    fn invoice(from: &str, to: &str, v: i64) -> EntityUpdate {
        EntityUpdate {
            key: EntityKey::new(
                Source::Invoice,
                Tenant::default_tenant(),
                EntityKind::Invoice,
                "inv-1",
            ),
            version: Version::from_micros(v),
            state: Some(to.into()),
            data: json!({}),
            transition: TransitionRule::Declared {
                from: from.into(),
                to: to.into(),
            },
            lifecycle: Lifecycle::Invoice,
        }
    }

    fn snap(v: i64, state: &str) -> Snapshot {
        Snapshot {
            version: Version::from_micros(v),
            state: Some(state.into()),
        }
    }

    fn key() -> EventKey {
        EventKey::new(Source::Invoice, "e1")
    }

    #[test]
    fn first_event_applies_and_queues() {
        let d = decide(&key(), "e1", &invoice("Ready", "Pending", 1), None);
        assert!(d.write_entity && !d.stale);
        let t = d.transition.unwrap();
        assert!(t.queued && t.flag.is_none());
        assert_eq!(t.message.from.as_deref(), Some("Ready"));
        assert_eq!(t.sort, format!("{}#e1", Version::from_micros(1).sort_key()));
    }

    #[test]
    fn older_event_is_stale_but_its_transition_is_recorded_and_queued_late() {
        let d = decide(
            &key(),
            "e1",
            &invoice("Ready", "Pending", 1),
            Some(&snap(2, "Complete")),
        );
        assert!(!d.write_entity && d.stale);
        let t = d.transition.unwrap();
        assert!(t.queued && t.message.late);
    }

    #[test]
    fn disallowed_transition_is_flagged_not_queued() {
        let d = decide(&key(), "e1", &invoice("Complete", "Pending", 3), None);
        let t = d.transition.unwrap();
        assert_eq!(t.flag, Some(Flag::NotAllowed));
        assert!(!t.queued);
    }

    #[test]
    fn disallowed_transition_from_a_live_state_is_not_applied() {
        let d = decide(
            &key(),
            "e1",
            &invoice("Pending", "Ready", 5),
            Some(&snap(4, "Pending")),
        );
        assert!(
            !d.write_entity,
            "Pending -> Ready must not move the invoice"
        );
        assert_eq!(d.transition.unwrap().flag, Some(Flag::NotAllowed));
    }

    #[test]
    fn newer_event_never_leaves_a_terminal_state() {
        let d = decide(
            &key(),
            "e1",
            &invoice("Pending", "Fail", 5),
            Some(&snap(4, "Complete")),
        );
        assert!(!d.write_entity && !d.stale);
        assert_eq!(d.transition.unwrap().flag, Some(Flag::Terminal));
        // the same terminal state again is not leaving it
        let d = decide(
            &key(),
            "e1",
            &invoice("Pending", "Complete", 5),
            Some(&snap(4, "Complete")),
        );
        assert!(d.write_entity);
    }

    #[test]
    fn from_stored_compares_with_the_stored_state() {
        let mut u = invoice("x", "PAID", 5);
        u.lifecycle = Lifecycle::Free;
        u.transition = TransitionRule::FromStored;
        assert!(decide(&key(), "e", &u, None).transition.is_none());
        assert!(decide(&key(), "e", &u, Some(&snap(4, "PAID")))
            .transition
            .is_none());
        let t = decide(&key(), "e", &u, Some(&snap(4, "NEW")))
            .transition
            .unwrap();
        assert_eq!(
            (t.message.from.as_deref(), t.message.to.as_str()),
            (Some("NEW"), "PAID")
        );
        // stale: the stored state is newer, so no change can be inferred
        assert!(decide(&key(), "e", &u, Some(&snap(6, "NEW")))
            .transition
            .is_none());
    }

    #[test]
    fn equal_version_is_not_older() {
        let d = decide(
            &key(),
            "e1",
            &invoice("Ready", "Pending", 2),
            Some(&snap(2, "Ready")),
        );
        assert!(d.write_entity && !d.stale);
    }

    #[test]
    fn a_version_far_ahead_of_its_receipt_is_flagged_and_never_freezes_the_entity() {
        let day = crate::version::FUTURE_TOLERANCE_MICROS;
        let received = Version::from_micros(1_000 * day);
        let far = invoice("Pending", "Complete", 1_000 * day + day + 1);
        let d = super::decide(&key(), "e1", &far, Some(&snap(5, "Pending")), received);
        assert!(d.future && !d.write_entity && !d.stale);
        let t = d.transition.unwrap();
        assert_eq!(t.flag, Some(Flag::Future));
        assert!(!t.queued);
        // Within a day ahead (clock skew) is applied as before.
        let skewed = invoice("Pending", "Complete", 1_000 * day + day);
        let d = super::decide(&key(), "e1", &skewed, Some(&snap(5, "Pending")), received);
        assert!(d.write_entity && !d.future && d.transition.unwrap().flag.is_none());
    }
}
