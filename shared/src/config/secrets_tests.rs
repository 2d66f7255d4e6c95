use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::clock::FixedClock;
use crate::config::{resolve_credentials, Credentials, Keys, Mode};
use crate::model::Source;
use crate::verify::SecretSet;

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:fulfilment-AbCdEf";

/// Secrets by id; a missing id is unreadable. Counts the reads.
#[derive(Default)]
struct MapStore {
    values: Mutex<HashMap<String, String>>,
    reads: AtomicUsize,
}

impl MapStore {
    fn put(&self, id: &str, value: &str) {
        lock(&self.values).insert(id.to_string(), value.to_string());
    }

    fn remove(&self, id: &str) {
        lock(&self.values).remove(id);
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretStore for MapStore {
    async fn read(&self, id: &str) -> Result<String, SecretError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        lock(&self.values)
            .get(id)
            .cloned()
            .ok_or_else(|| SecretError(format!("no secret {id}")))
    }
}

fn fulfilment_env(pairs: &[(&str, &str)]) -> Env {
    let mut env = Env::from_pairs([("FULFILMENT_SECRETS_ARN", ARN)]);
    for (k, v) in pairs {
        env.set(*k, *v);
    }
    env
}

/// The fulfilment Lambda's credentials, counting the builds.
fn build(builds: &Arc<AtomicUsize>) -> Build<Credentials> {
    let builds = builds.clone();
    Box::new(move |env| {
        builds.fetch_add(1, Ordering::SeqCst);
        resolve_credentials(env, Mode::Lambda, Source::Fulfilment, "dev")
    })
}

fn keys(list: &str) -> Credentials {
    Credentials::Verified(Keys::any(SecretSet::parse(list)))
}

struct Rig {
    store: Arc<MapStore>,
    clock: Arc<FixedClock>,
    builds: Arc<AtomicUsize>,
    live: Live<Credentials>,
}

/// A fulfilment Lambda started at t = 1000 on secret value `first`, re-reading every 300 s.
async fn rig(first: &str) -> Rig {
    let store = Arc::new(MapStore::default());
    store.put(ARN, first);
    let clock = Arc::new(FixedClock::at_unix(1_000));
    let builds = Arc::new(AtomicUsize::new(0));
    let env = fulfilment_env(&[("SECRETS_CACHE_SECS", "300")]);
    let references = References::from_env(&env, Binary::Fulfilment).unwrap();
    let live = Live::start(
        &env,
        references,
        store.clone(),
        clock.clone(),
        build(&builds),
    )
    .await
    .unwrap();
    Rig {
        store,
        clock,
        builds,
        live,
    }
}

#[test]
fn references_are_the_binary_s_own_and_never_beside_the_plain_variable() {
    let env = fulfilment_env(&[("NOTIFY_SECRET_ARN", "notify"), ("ABAHA_TOKENS", "t")]);
    let of = |binary| References::from_env(&env, binary).unwrap();
    let fulfilment = of(Binary::Fulfilment);
    assert_eq!(fulfilment.list.len(), 1);
    assert_eq!(fulfilment.list[0].holds.name, "FULFILMENT_SECRETS");
    assert_eq!(fulfilment.list[0].id, ARN);
    assert_eq!(fulfilment.ttl_secs, DEFAULT_SECRETS_CACHE_SECS);
    assert_eq!(of(Binary::Notifier).list[0].holds.name, "NOTIFY_SECRET");
    assert!(of(Binary::Abaha).is_empty());
    assert!(
        of(Binary::Local).is_empty(),
        "webhooks-local takes plain values"
    );

    let both = fulfilment_env(&[("FULFILMENT_SECRETS", "plain")]);
    let err = References::from_env(&both, Binary::Fulfilment)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("FULFILMENT_SECRETS_ARN") && err.contains("not both"),
        "{err}"
    );
    let ttl = fulfilment_env(&[("SECRETS_CACHE_SECS", "soon")]);
    assert!(References::from_env(&ttl, Binary::Fulfilment).is_err());
}

#[tokio::test]
async fn a_rotation_takes_effect_once_the_cached_value_is_due_without_a_restart() {
    let rig = rig("old").await;
    assert_eq!(*rig.live.current().await, keys("old"));
    assert_eq!(rig.store.reads(), 1, "read once at init");

    rig.store.put(ARN, "new,old");
    rig.clock.set_unix(1_299);
    assert_eq!(*rig.live.current().await, keys("old"), "still cached");
    assert_eq!(rig.store.reads(), 1);
    rig.clock.set_unix(1_300);
    assert_eq!(*rig.live.current().await, keys("new,old"), "the overlap");
    assert_eq!(rig.store.reads(), 2);

    rig.store.put(ARN, "new");
    rig.clock.set_unix(1_600);
    assert_eq!(*rig.live.current().await, keys("new"), "old dropped");
    assert_eq!(rig.builds.load(Ordering::SeqCst), 3);

    // an unchanged value is read again, not built again
    rig.clock.set_unix(1_900);
    assert_eq!(*rig.live.current().await, keys("new"));
    assert_eq!(
        (rig.store.reads(), rig.builds.load(Ordering::SeqCst)),
        (4, 3)
    );
}

#[tokio::test]
async fn a_failed_re_read_keeps_the_last_value_and_the_next_period_tries_again() {
    let rig = rig("old").await;
    rig.store.remove(ARN);
    rig.clock.set_unix(1_300);
    assert_eq!(*rig.live.current().await, keys("old"));
    assert_eq!(rig.store.reads(), 2);
    // not read again on every request meanwhile
    rig.store.put(ARN, "new");
    rig.clock.set_unix(1_599);
    assert_eq!(*rig.live.current().await, keys("old"));
    assert_eq!(rig.store.reads(), 2);
    rig.clock.set_unix(1_600);
    assert_eq!(*rig.live.current().await, keys("new"));
}

#[tokio::test]
async fn a_new_value_the_build_refuses_keeps_the_last_good_one() {
    let store = Arc::new(MapStore::default());
    store.put("bound", r#"{"XYZ":["s1"]}"#);
    let clock = Arc::new(FixedClock::at_unix(0));
    let env = Env::from_pairs([
        ("FULFILMENT_SECRETS_BY_TENANT_ARN", "bound"),
        ("SECRETS_CACHE_SECS", "0"),
    ]);
    let references = References::from_env(&env, Binary::Fulfilment).unwrap();
    let builds = Arc::new(AtomicUsize::new(0));
    let live = Live::start(&env, references, store.clone(), clock, build(&builds))
        .await
        .unwrap();
    let before = live.current().await;
    store.put("bound", r#"{"XYZ":"s2"}"#);
    assert_eq!(live.current().await, before, "a malformed twin is refused");
    store.put("bound", r#"{"XYZ":["s2"]}"#);
    assert_ne!(
        live.current().await,
        before,
        "a zero lifetime reads every time"
    );
}

#[tokio::test]
async fn a_lambda_whose_secret_cannot_be_read_at_init_fails_closed() {
    let env = fulfilment_env(&[]);
    let references = References::from_env(&env, Binary::Fulfilment).unwrap();
    let builds = Arc::new(AtomicUsize::new(0));
    let clock = Arc::new(FixedClock::at_unix(0));
    let empty = Arc::new(MapStore::default());
    let err = Live::start(
        &env,
        references.clone(),
        empty,
        clock.clone(),
        build(&builds),
    )
    .await
    .err()
    .expect("no secret, no start")
    .to_string();
    assert!(err.contains("FULFILMENT_SECRETS_ARN"), "{err}");

    // a value the build refuses stops it too, naming the variable and not the value
    let store = Arc::new(MapStore::default());
    store.put(ARN, "   ");
    let err = Live::start(&env, references, store, clock, build(&builds))
        .await
        .err()
        .expect("an empty secret configures nothing")
        .to_string();
    assert!(err.contains("FULFILMENT_SECRETS"), "{err}");
}

#[tokio::test]
async fn without_references_the_value_is_built_once() {
    let builds = Arc::new(AtomicUsize::new(0));
    let env = Env::from_pairs([("FULFILMENT_SECRETS", "plain")]);
    let live = Live::fixed(&env, build(&builds)).unwrap();
    assert_eq!(*live.current().await, keys("plain"));
    assert_eq!(*live.current().await, keys("plain"));
    assert_eq!(builds.load(Ordering::SeqCst), 1);
}
