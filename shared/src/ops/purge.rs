//! Erasure on request: the store's purge, then what still holds copies, logged without the
//! value a `--match` looked for.

use super::{Operator, OpsError};
use crate::model::KeptCopy;
use crate::store::{PurgeTarget, Purged};

/// The tracing target of the purge's log line, which the CLI shows whatever `RUST_LOG`.
pub const AUDIT_TARGET: &str = "audit";

impl Operator {
    /// Erases what `target` selects from the store and the queued copies it holds
    /// ([`crate::store::OperatorStore::purge`]); with `dry_run` only reports. [`Purged::kept`] then
    /// lists what still holds copies: the store's backups, the queue's waiting and dead
    /// messages, logs, and the receiver of the notifications, which no purge here reaches.
    pub async fn purge(&self, target: &PurgeTarget, dry_run: bool) -> Result<Purged, OpsError> {
        let mut purged = self.store.purge(target, dry_run).await?;
        purged.kept.extend(self.dead_letters.kept_copies().await);
        purged.kept.push(KeptCopy {
            place: "the receiver at NOTIFY_URL".to_string(),
            kept: "every notification it was sent (a transition with the entity's data): erase there as well".to_string(),
        });
        tracing::info!(
            target: AUDIT_TARGET,
            purge = %target.describe(),
            dry_run,
            events = purged.events.len(),
            entities = purged.entities.len(),
            transitions = purged.transitions.len(),
            queued = purged.queued.len(),
            "purge"
        );
        Ok(purged)
    }
}
