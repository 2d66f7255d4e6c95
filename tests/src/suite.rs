//! One provider's test rig, given only its `Source` and the suite's clock: what every handler
//! suite (`it/<source>.rs`) had written out for itself before (issue 23): the handler as its
//! binary builds it from an environment, over a fresh in-memory store; the source's route,
//! `events/` samples and `shared/fixtures/`; its entity keys; and the queue read back.

use serde_json::Value;
use webhook_core::config::vars::Binary;
use webhook_core::config::{Env, Mode};
use webhook_core::http::{route_for, RawRequest};
use webhook_core::store::{OperatorStore, StoredEntity};
use webhook_core::{EntityKey, EntityKind, Source, Tenant};

use crate::events::{self, repo_root, SourceHarness};
use crate::inspect;

/// A provider suite's constants: `const SUITE: Suite = Suite::new(Source::X, <unix time>);`.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    pub source: Source,
    /// The fixed clock's time for handlers built by [`Suite::harness`].
    pub now_unix: i64,
}

impl Suite {
    pub const fn new(source: Source, now_unix: i64) -> Suite {
        Suite { source, now_unix }
    }

    /// The source's handler as its binary builds it from `pairs` in `mode`, over a fresh
    /// in-memory store, at the suite's time.
    pub fn harness<K: Into<String>, V: Into<String>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
        mode: Mode,
    ) -> SourceHarness {
        self.harness_at(&Env::from_pairs(pairs), mode, self.now_unix)
    }

    /// As [`Suite::harness`], from a whole `Env` and at another time.
    pub fn harness_at(&self, env: &Env, mode: Mode, now_unix: i64) -> SourceHarness {
        SourceHarness::new(self.source, env, mode, now_unix)
    }

    pub fn route(&self) -> &'static str {
        route_for(self.source)
    }

    /// The `events/` folder: the binary's name (`pancake-pos`).
    pub fn events_folder(&self) -> &'static str {
        Binary::of_source(self.source).name()
    }

    /// Every `events/` sample of the source, (file stem, request) by name; at least
    /// `at_least` of them, so a suite never passes over a folder `generate.py` left empty.
    pub fn samples(&self, at_least: usize) -> Vec<(String, RawRequest)> {
        let files = events::samples(self.events_folder());
        assert!(
            files.len() >= at_least,
            "expected the generated samples, got {:?}",
            files.iter().map(|(name, _)| name).collect::<Vec<_>>()
        );
        files
    }

    /// One `events/` sample by file stem.
    pub fn sample(&self, name: &str) -> RawRequest {
        events::sample(self.events_folder(), name)
    }

    /// A `shared/fixtures/<source>/` payload's exact text (`name` with its `.json`): what a
    /// signature or a body hash is computed over.
    pub fn fixture_text(&self, name: &str) -> String {
        let path = repo_root()
            .join("shared/fixtures")
            .join(self.source.as_str())
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A `shared/fixtures/<source>/` payload, parsed.
    pub fn fixture(&self, name: &str) -> Value {
        serde_json::from_str(&self.fixture_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn key(&self, tenant: &str, kind: EntityKind, id: &str) -> EntityKey {
        EntityKey::new(self.source, Tenant::new(tenant), kind, id)
    }
}

impl SourceHarness {
    /// The stored entity under `key`, if any.
    pub async fn entity(&self, key: &EntityKey) -> Option<StoredEntity> {
        self.store.entity(key).await.expect("entity lookup")
    }

    /// Every queued message's body in queue order, after checking nothing was dead-lettered.
    /// Drains the queue: read it last.
    pub async fn queued(&self) -> Vec<Value> {
        assert_eq!(self.outbox.dead_letters().await.expect("dead letters"), 0);
        inspect::drain_bodies(&self.outbox).await
    }
}
