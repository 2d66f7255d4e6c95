//! Tenant-bound credentials (ARCHITECTURE §3), through the real pipeline: a key bound to one
//! tenant never stores an event as another's (403, nothing stored), on the environment's
//! `_BY_TENANT` bindings and on the credential table of both backends (SQLite, and DynamoDB
//! on moto): rotation keeps two keys working, a revoked key is refused once its cached
//! lookup ages out (injected clock), and with 10,000 tenants in the table a verified request
//! costs one read cold and none cached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use webhook_core::clock::FixedClock;
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::credentials::{
    Admitter, CredentialId, CredentialLookup, KeyHash, Material, StoredCredential,
};
use webhook_core::error::{IngestError, StoreError};
use webhook_core::http::RawRequest;
use webhook_core::model::{Source, Tenant};
use webhook_core::ops::credentials::NewValue;
use webhook_core::pipeline::Pipeline;
use webhook_core::sources::fulfilment::Fulfilment;
use webhook_core::sources::{provider_from_env, Provider};
use webhook_core::store::EventFilter;
use webhook_tests::aws::RequestCounter;
use webhook_tests::kit::Kit;
use webhook_tests::samples::RECEIVED_AT;

const POS_ROUTE: &str = "/api/v1/pancake-pos/webhook";
const CACHE_SECS: u64 = 60;

/// Counts the lookups that reach the table (the cache sits in front of it).
struct Counted {
    inner: Arc<dyn CredentialLookup>,
    reads: AtomicUsize,
}

#[async_trait]
impl CredentialLookup for Counted {
    async fn by_key(
        &self,
        source: Source,
        hash: &KeyHash,
    ) -> Result<Option<StoredCredential>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.by_key(source, hash).await
    }

    async fn secrets_of(
        &self,
        source: Source,
        tenant: &Tenant,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.secrets_of(source, tenant).await
    }
}

/// The pipeline over a kit's backends and credential table, on an injected clock.
struct Rig {
    pipeline: Pipeline,
    clock: Arc<FixedClock>,
    table: Arc<Counted>,
}

impl Rig {
    fn over(kit: &Kit, table: Arc<dyn CredentialLookup>) -> Rig {
        let clock = Arc::new(FixedClock::at_unix(RECEIVED_AT));
        let table = Arc::new(Counted {
            inner: table,
            reads: AtomicUsize::new(0),
        });
        let admitter = Admitter::cached(table.clone(), CACHE_SECS, clock.clone());
        let pipeline = Pipeline::new(
            kit.store.clone(),
            kit.queue.clone(),
            clock.clone(),
            PipelineSettings::default(),
        )
        .with_credentials(admitter);
        Rig {
            pipeline,
            clock,
            table,
        }
    }

    fn new(kit: &Kit) -> Rig {
        Self::over(kit, kit.credentials.clone())
    }

    fn now(&self) -> i64 {
        use webhook_core::clock::Clock;
        self.clock.now().unix_timestamp()
    }

    fn advance(&self, secs: i64) {
        self.clock.set_unix(self.now() + secs);
    }

    async fn post(
        &self,
        provider: &dyn Provider,
        req: RawRequest,
    ) -> Result<webhook_core::model::Accepted, IngestError> {
        self.pipeline.ingest(provider, &req).await
    }

    fn reads(&self) -> usize {
        self.table.reads.load(Ordering::SeqCst)
    }
}

/// A source whose credentials are all in the table (a Lambda with `CREDENTIALS_TABLE` only).
fn table_only(source: Source) -> Arc<dyn Provider> {
    let env = Env::from_pairs([("CREDENTIALS_TABLE", "credentials")]);
    provider_from_env(source, &env, Mode::Lambda).expect("the table alone configures a source")
}

fn pos_order(shop: &str, order: u64) -> String {
    json!({"payload": {"eventType": "order_created", "shopId": shop,
        "data": {"id": order, "status": 0, "updated_at": "2025-09-05T10:00:00"}}})
    .to_string()
}

fn pos_keyed(body: &str, key: &str) -> RawRequest {
    RawRequest::post(POS_ROUTE, body).with_header("X-Webhook-Secret", key)
}

fn fulfilment_signed(merchant: &str, order: u64, secret: &str) -> RawRequest {
    let body = json!({"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": merchant,
        "from_status": "NEW", "to_status": "PACKED",
        "order": {"id": order, "updated_at": "2025-09-05T10:00:00Z"}}})
    .to_string();
    RawRequest::post("/api/v1/fulfilment/webhook", body.as_str())
        .with_header(
            "X-Event-Signature",
            &Fulfilment::sign(body.as_bytes(), secret),
        )
        .with_header("X-Event-Delivery", &format!("delivery-{merchant}-{order}"))
}

async fn stored(kit: &Kit) -> u64 {
    let counts = kit
        .store
        .count_events(&EventFilter::default())
        .await
        .unwrap();
    counts.values().sum()
}

async fn add_key(kit: &Kit, rig: &Rig, source: Source, tenant: &str) -> String {
    let issued = kit
        .operator()
        .await
        .add_credential(
            source,
            &Tenant::new(tenant),
            NewValue::Generate,
            None,
            rig.now(),
        )
        .await
        .expect("added");
    issued.generated.expect("a generated value")
}

fn refused_status(outcome: Result<webhook_core::model::Accepted, IngestError>) -> u16 {
    match outcome {
        Ok(accepted) => panic!("admitted as {}", accepted.tenant),
        Err(err) => err.status(),
    }
}

async fn a_stored_key_admits_only_its_tenant(kit: &Kit) {
    let rig = Rig::new(kit);
    let pos = table_only(Source::PancakePos);
    let key_a = add_key(kit, &rig, Source::PancakePos, "shop-a").await;
    let ok = rig.post(pos.as_ref(), pos_keyed(&pos_order("shop-a", 1), &key_a));
    assert_eq!(ok.await.expect("its own tenant").tenant, "shop-a");
    let other = rig.post(pos.as_ref(), pos_keyed(&pos_order("shop-b", 2), &key_a));
    let err = other.await.unwrap_err();
    assert_eq!((err.status(), err.reason()), (403, "tenant_not_bound"));
    assert!(err.is_verification_failure());
    assert!(err.to_string().contains("shop-b"), "{err}");
    let unknown = rig.post(
        pos.as_ref(),
        pos_keyed(&pos_order("shop-a", 3), "not-a-key-at-all"),
    );
    assert_eq!(refused_status(unknown.await), 401);
    assert_eq!(stored(kit).await, 1, "only the admitted event is stored");
}

async fn a_signing_secret_is_found_by_the_tenant_its_body_claims(kit: &Kit) {
    let rig = Rig::new(kit);
    let fulfilment = table_only(Source::Fulfilment);
    let secret = "merchant-one-signing-secret";
    let op = kit.operator().await;
    let given = NewValue::Given(secret.to_string());
    let issued = op
        .add_credential(
            Source::Fulfilment,
            &Tenant::new("M1"),
            given,
            None,
            rig.now(),
        )
        .await
        .unwrap();
    assert_eq!(issued.generated, None, "a given secret is never echoed");
    let own = rig.post(fulfilment.as_ref(), fulfilment_signed("M1", 1, secret));
    assert_eq!(own.await.expect("M1's own event").tenant, "M1");
    // M1's secret signing M2's event: M2 has no secret that verifies it.
    let other = rig.post(fulfilment.as_ref(), fulfilment_signed("M2", 2, secret));
    assert_eq!(refused_status(other.await), 401);
    assert_eq!(stored(kit).await, 1);
}

async fn rotation_keeps_two_keys_for_the_grace_period(kit: &Kit) {
    let rig = Rig::new(kit);
    let pos = table_only(Source::PancakePos);
    let old = add_key(kit, &rig, Source::PancakePos, "shop-r").await;
    let op = kit.operator().await;
    let tenant = Tenant::new("shop-r");
    let (issued, retiring) = op
        .rotate_credential(
            Source::PancakePos,
            &tenant,
            NewValue::Generate,
            3_600,
            rig.now(),
        )
        .await
        .unwrap();
    assert_eq!(retiring.len(), 1);
    let new = issued.generated.unwrap();
    for (i, key) in [&old, &new].into_iter().enumerate() {
        let req = pos_keyed(&pos_order("shop-r", 10 + i as u64), key);
        rig.post(pos.as_ref(), req)
            .await
            .expect("both keys during the grace period");
    }
    let third = op.rotate_credential(
        Source::PancakePos,
        &tenant,
        NewValue::Generate,
        60,
        rig.now(),
    );
    assert!(matches!(
        third.await,
        Err(webhook_core::ops::OpsError::Refused(_))
    ));
    rig.advance(3_600 + 1);
    let late = rig.post(pos.as_ref(), pos_keyed(&pos_order("shop-r", 20), &old));
    assert_eq!(
        refused_status(late.await),
        401,
        "the old key expired with its grace"
    );
    let req = pos_keyed(&pos_order("shop-r", 21), &new);
    rig.post(pos.as_ref(), req).await.expect("the new key");
    let listed = op
        .list_credentials(Some(Source::PancakePos), Some(&tenant))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|c| matches!(c.material, Material::KeyHash(_))));
}

async fn a_revoked_key_is_refused_once_its_lookup_ages_out(kit: &Kit) {
    let rig = Rig::new(kit);
    let pos = table_only(Source::PancakePos);
    let key = add_key(kit, &rig, Source::PancakePos, "shop-v").await;
    let post = |order| rig.post(pos.as_ref(), pos_keyed(&pos_order("shop-v", order), &key));
    post(1).await.expect("active");
    let revoked = kit
        .operator()
        .await
        .revoke_credential(Source::PancakePos, &Tenant::new("shop-v"), None, rig.now())
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    post(2)
        .await
        .expect("within the cache lifetime the cached row still admits");
    rig.advance(CACHE_SECS as i64);
    assert_eq!(refused_status(post(3).await), 401);
    assert_eq!(stored(kit).await, 2);
}

async fn ten_thousand_tenants_cost_one_read_cold_and_none_cached(kit: &Kit) {
    let counter = RequestCounter::default();
    let table: Arc<dyn CredentialLookup> = match kit.aws() {
        Some(aws) => Arc::new(aws.counted_credentials(&counter)),
        None => kit.credentials.clone(),
    };
    let rig = Rig::over(kit, table);
    let admin = kit.credential_admin.clone();
    let tenants = 10_000u64;
    let inserted = futures::stream::iter(0..tenants)
        .map(|i| {
            let admin = admin.clone();
            async move {
                let credential = StoredCredential {
                    source: Source::PancakePos,
                    tenant: Tenant::new(format!("shop-{i}")),
                    id: CredentialId::generate().unwrap(),
                    material: Material::for_source(Source::PancakePos, &format!("key-of-shop-{i}")),
                    created_at: RECEIVED_AT - 60,
                    expires_at: None,
                    revoked_at: None,
                };
                admin.insert(&credential).await.unwrap()
            }
        })
        .buffer_unordered(16)
        .filter(|written| std::future::ready(*written))
        .count()
        .await;
    assert_eq!(inserted as u64, tenants);
    let pos = table_only(Source::PancakePos);
    let post = |order| {
        let req = pos_keyed(&pos_order("shop-7777", order), "key-of-shop-7777");
        let (rig, pos) = (&rig, &pos);
        async move { rig.post(pos.as_ref(), req).await }
    };
    post(1).await.expect("cold");
    assert_eq!(rig.reads(), 1, "a cold lookup is one read");
    post(2).await.expect("cached");
    assert_eq!(rig.reads(), 1, "a cached lookup reads nothing");
    if kit.aws().is_some() {
        assert_eq!(counter.take(), ["GetItem"], "one DynamoDB request in all");
    }
}

webhook_tests::on_every_backend!(
    a_stored_key_admits_only_its_tenant,
    a_signing_secret_is_found_by_the_tenant_its_body_claims,
    rotation_keeps_two_keys_for_the_grace_period,
    a_revoked_key_is_refused_once_its_lookup_ages_out,
    ten_thousand_tenants_cost_one_read_cold_and_none_cached,
);

/// The environment's bindings: the plain list still admits any tenant; a bound key or secret
/// only its own (403 otherwise, nothing stored).
#[tokio::test]
async fn environment_bindings_admit_only_their_tenants() {
    let kit = Kit::sqlite();
    let rig = Rig::new(&kit);
    let env = Env::from_pairs([
        ("PANCAKE_POS_API_KEYS", "legacy-key"),
        (
            "PANCAKE_POS_API_KEYS_BY_TENANT",
            r#"{"shop-a":["key-a","key-a-next"],"shop-b":["key-b"]}"#,
        ),
        ("FULFILMENT_SECRETS_BY_TENANT", r#"{"M1":["secret-of-m1"]}"#),
    ]);
    let pos = provider_from_env(Source::PancakePos, &env, Mode::Lambda).unwrap();
    let ingest = |body: String, key: &str| {
        let req = pos_keyed(&body, key);
        let pos = pos.clone();
        let rig = &rig;
        async move { rig.post(pos.as_ref(), req).await }
    };
    ingest(pos_order("shop-z", 1), "legacy-key")
        .await
        .expect("the plain list: any tenant");
    ingest(pos_order("shop-a", 2), "key-a")
        .await
        .expect("bound, own tenant");
    ingest(pos_order("shop-a", 3), "key-a-next")
        .await
        .expect("the second key while rotating");
    assert_eq!(
        refused_status(ingest(pos_order("shop-b", 4), "key-a").await),
        403
    );
    assert_eq!(
        refused_status(ingest(pos_order("shop-a", 5), "key-b").await),
        403
    );
    let fulfilment = provider_from_env(Source::Fulfilment, &env, Mode::Lambda).unwrap();
    let own = fulfilment_signed("M1", 1, "secret-of-m1");
    rig.post(fulfilment.as_ref(), own)
        .await
        .expect("M1's secret, M1's event");
    let other = fulfilment_signed("M2", 2, "secret-of-m1");
    assert_eq!(
        refused_status(rig.post(fulfilment.as_ref(), other).await),
        403
    );
    assert_eq!(stored(&kit).await, 4);
    assert_eq!(
        rig.reads(),
        0,
        "nothing the environment decides reaches the table"
    );
}

/// Tenant fields missing, of the wrong type, given twice or different in the envelope and in
/// `data`: a 4xx with nothing stored, or one deterministic tenant — never one the key is
/// not bound to.
#[tokio::test]
async fn tenant_fields_cannot_smuggle_another_tenant() {
    let kit = Kit::sqlite();
    let rig = Rig::new(&kit);
    let env = Env::from_pairs([("PANCAKE_POS_API_KEYS_BY_TENANT", r#"{"A":["key-a"]}"#)]);
    let pos = provider_from_env(Source::PancakePos, &env, Mode::Lambda).unwrap();
    let data = r#"{"id": 9, "status": 0, "updated_at": "2025-09-05T10:00:00"}"#;
    let bodies = [
        format!(r#"{{"payload": {{"eventType": "order_created", "data": {data}}}}}"#),
        format!(
            r#"{{"payload": {{"eventType": "order_created", "shopId": {{"id": "A"}}, "data": {data}}}}}"#
        ),
        format!(
            r#"{{"payload": {{"eventType": "order_created", "shopId": ["A"], "data": {data}}}}}"#
        ),
        format!(
            r#"{{"payload": {{"eventType": "order_created", "shopId": null, "data": {data}}}}}"#
        ),
        format!(
            r#"{{"payload": {{"eventType": "order_created", "shopId": "A", "shopId": "B", "data": {data}}}}}"#
        ),
        format!(
            r#"{{"payload": {{"eventType": "order_created", "shopId": "B", "shopId": "A", "data": {data}}}}}"#
        ),
        r#"{"payload": {"eventType": "order_created", "shopId": "A", "data": {"shop_id": "B", "id": 10, "status": 0}}}"#
            .to_string(),
        r#"{"payload": {"eventType": "order_created", "shopId": "B", "data": {"shop_id": "A", "id": 11, "status": 0}}}"#
            .to_string(),
        r#"{"shop_id": "B", "id": 12, "status": 0}"#.to_string(),
        r#"{"shop_id": "A", "shopId": "B", "id": 13, "status": 0}"#.to_string(),
        r#"{"payload": {"eventType": "order_created", "shopId": "A#B", "data": {}}}"#.to_string(),
    ];
    for body in &bodies {
        let before = stored(&kit).await;
        match rig.post(pos.as_ref(), pos_keyed(body, "key-a")).await {
            Ok(accepted) => assert_eq!(accepted.tenant, "A", "{body}"),
            Err(err) => {
                assert!((400..500).contains(&err.status()), "{body}: {err}");
                assert_eq!(stored(&kit).await, before, "{body}: nothing stored");
            }
        }
    }
    let page = kit
        .store
        .list_events(
            &EventFilter::default(),
            webhook_core::store::Order::NewestFirst,
            100,
            None,
        )
        .await
        .unwrap();
    assert!(
        page.events.iter().all(|e| e.tenant == "A"),
        "every stored event is A's"
    );
}
