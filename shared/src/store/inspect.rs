//! The types of the operator's port ([`super::OperatorStore`]): finding events, re-applying
//! stored ones with today's provider code, and selecting transitions to notify again. Every
//! backend answers these with the same meaning (the CLI and console are written once against
//! them).

use crate::model::{EntityKey, EventKey, EventStatus, Source, Tenant, TransitionMessage};

use super::{StoredEvent, StoredTransition, TransitionRecord};
use crate::error::StoreError;

/// Which events to list; every field narrows (all `None`: every event).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub source: Option<Source>,
    pub tenant: Option<String>,
    /// The canonical type (`order.status_changed`) as stored.
    pub event_type: Option<String>,
    pub status: Option<EventStatus>,
    /// Received at or after (unix seconds).
    pub since: Option<i64>,
    /// Received before (unix seconds).
    pub until: Option<i64>,
}

impl EventFilter {
    pub fn matches(&self, event: &EventSummary) -> bool {
        self.source.is_none_or(|s| s == event.source)
            && self.tenant.as_ref().is_none_or(|t| *t == event.tenant)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| *t == event.event_type)
            && self.status.is_none_or(|s| s == event.status)
            && self.since.is_none_or(|s| event.received_at >= s)
            && self.until.is_none_or(|u| event.received_at < u)
    }
}

/// One line of an event list.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub event_key: EventKey,
    pub source: Source,
    pub tenant: Tenant,
    pub event_type: String,
    pub status: EventStatus,
    /// Unix seconds.
    pub received_at: i64,
    pub entities: usize,
}

/// A page of events and the cursor of the next one (`None`: this was the last page). The
/// cursor is opaque: only the backend that issued it reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage<E = EventSummary> {
    pub events: Vec<E>,
    pub next: Option<String>,
}

impl<E> Default for EventPage<E> {
    fn default() -> Self {
        EventPage {
            events: Vec::new(),
            next: None,
        }
    }
}

/// A page as the [`super::Detail`] asked: summaries, or each event whole.
#[derive(Debug, Clone, PartialEq)]
pub enum Listed {
    Summaries(EventPage),
    Whole(EventPage<StoredEvent>),
}

impl Listed {
    /// The page's summaries (a whole event says all a summary does).
    pub fn into_summaries(self) -> EventPage {
        match self {
            Listed::Summaries(page) => page,
            Listed::Whole(page) => EventPage {
                events: page.events.iter().map(StoredEvent::summary).collect(),
                next: page.next,
            },
        }
    }

    /// The page's events whole; a backend that answered summaries to [`super::Detail::Whole`]
    /// broke the port's contract.
    pub(crate) fn into_whole(self) -> Result<EventPage<StoredEvent>, StoreError> {
        match self {
            Listed::Whole(page) => Ok(page),
            Listed::Summaries(_) => Err(StoreError::Corrupt(
                "summaries where whole events were asked".into(),
            )),
        }
    }
}

/// Which order a scan of every stored event runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    /// Arrival order (reprocess: an entity's events re-applied as they came).
    OldestFirst,
}

/// What re-applying a stored event did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reapplied {
    /// The status before and after.
    pub was: EventStatus,
    pub status: EventStatus,
    /// The entities before and after.
    pub entities_were: Vec<EntityKey>,
    pub entities: Vec<EntityKey>,
    /// Transitions this run recorded for the first time; the queued ones go to the queue
    /// as a new event's do.
    pub new_transitions: Vec<TransitionRecord>,
}

/// The status a reprocessed event keeps: the one recorded at arrival, unless the event is
/// projected differently now (it was ignored, or names other entities). Re-applying an old
/// event after newer ones would otherwise turn every `applied` into `stale`, erasing what
/// became of it when it came.
pub fn reapplied_status<K: PartialEq>(
    was: EventStatus,
    now: EventStatus,
    entities_were: &[K],
    entities: &[K],
) -> EventStatus {
    if was.is_unprojected() || entities_were != entities {
        now
    } else {
        was
    }
}

/// Which transitions to notify again.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionSelector {
    /// One transition, by its id (the `webhook-id` receivers saw).
    Id(String),
    /// Every queued transition of one entity.
    Entity(EntityKey),
    /// Every queued transition not delivered (pending, failed, dead-lettered) whose change
    /// happened in the window (unix seconds of the entity version; `None`: open).
    Undelivered {
        since: Option<i64>,
        until: Option<i64>,
    },
}

/// A transition with the message it was (or is to be) sent as.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayable {
    pub stream: EntityKey,
    pub transition: StoredTransition,
    /// `None` when the transition was never queued (flagged): nothing to send.
    pub message: Option<TransitionMessage>,
}

impl Replayable {
    pub fn delivered(&self) -> bool {
        self.transition
            .notification
            .as_ref()
            .is_some_and(|r| r.is_delivered())
    }
}
