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
use serde_json::{json, Map};
use webhook_core::clock::FixedClock;
use webhook_core::config::vars::credentials_of;
use webhook_core::config::{Env, Mode, PipelineSettings};
use webhook_core::credentials::{
    CredentialId, CredentialLookup, KeyHash, Material, StoredCredential,
};
use webhook_core::error::{IngestError, StoreError};
use webhook_core::http::RawRequest;
use webhook_core::model::{Source, Tenant};
use webhook_core::ops::credentials::NewValue;
use webhook_core::pipeline::Admitter;
use webhook_core::pipeline::Pipeline;
use webhook_core::sources::{provider_from_env, Provider};
use webhook_core::store::{Detail, EventFilter, Order};
use webhook_tests::aws::RequestCounter;
use webhook_tests::events::credentialed;
use webhook_tests::kit::Kit;
use webhook_tests::samples::RECEIVED_AT;

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
    credentialed(Source::PancakePos, body.as_bytes(), key)
}

fn fulfilment_signed(merchant: &str, order: u64, secret: &str) -> RawRequest {
    let body = json!({"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": merchant,
        "from_status": "NEW", "to_status": "PACKED",
        "order": {"id": order, "updated_at": "2025-09-05T10:00:00Z"}}})
    .to_string();
    credentialed(Source::Fulfilment, body.as_bytes(), secret)
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
    tenant_fields_cannot_smuggle_past_an_environment_binding,
    tenant_fields_cannot_smuggle_past_a_stored_binding,
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

// ---- the adversarial suite: tenant fields that try to speak for another tenant ----------

/// The tenant the credential under test is bound to, and another tenant with a credential of
/// its own: every body below tries to get the first's credential an event stored as the
/// second's. Numeric, as Pancake's page and shop ids are, so a number and a string can name
/// the same tenant.
const BOUND: &str = "1001";
const OTHER: &str = "1002";
const BOUND_CREDENTIAL: &str = "credential-bound-to-1001";
const OTHER_CREDENTIAL: &str = "credential-bound-to-1002";

/// The tenant field as a body may give it (`{f}` is its name; each ends in a comma so it can
/// open an object): missing, null, blank, an object, an array, a boolean, the bound tenant
/// as a number, padded or as a float, the other tenant as a number, given twice (serde_json
/// keeps the last one), carrying the key separator `#`, or naming the other tenant outright.
const TENANT_FIELDS: [&str; 15] = [
    "",
    r#""{f}": null,"#,
    r#""{f}": "","#,
    r#""{f}": {"id": "1001"},"#,
    r#""{f}": ["1001"],"#,
    r#""{f}": true,"#,
    r#""{f}": 1001,"#,
    r#""{f}": " 1001 ","#,
    r#""{f}": 1001.0,"#,
    r#""{f}": 1002,"#,
    r#""{f}": "1001", "{f}": "1002","#,
    r#""{f}": "1002", "{f}": "1001","#,
    r#""{f}": "1001", "{f}": null,"#,
    r#""{f}": "1001#1002","#,
    r#""{f}": "1002","#,
];

/// The well-formed field naming the bound tenant: the control every provider must admit.
const OWN_FIELD: &str = r#""{f}": "1001","#;

/// One provider whose tenant the body names (ARCHITECTURE §3, §4), and how to tempt it.
struct Claims {
    source: Source,
    /// The tenant a credential must be bound to for its events to be admitted at all:
    /// [`BOUND`], or invoice's fixed `default` (its payload names no tenant).
    bound: &'static str,
    /// Bodies with a `{tenant}` slot, each with the name of the field that fills it; the
    /// first, with [`OWN_FIELD`], is the control.
    templates: &'static [(&'static str, &'static str)],
    /// Bodies in which two places name tenants that disagree: the envelope and `data`, the
    /// top level and the record, two payloads.
    disagreeing: &'static [&'static str],
}

impl Claims {
    /// Every body to try: each template with each form of its field, then the disagreeing.
    fn bodies(&self) -> Vec<String> {
        let filled = self.templates.iter().flat_map(|(template, field)| {
            TENANT_FIELDS
                .iter()
                .map(move |form| template.replace("{tenant}", &form.replace("{f}", field)))
        });
        filled
            .chain(self.disagreeing.iter().map(|b| b.to_string()))
            .collect()
    }

    fn own(&self) -> String {
        let (template, field) = self.templates[0];
        template.replace("{tenant}", &OWN_FIELD.replace("{f}", field))
    }
}

/// Pancake: `payload.pageId` in the seed envelope, else the chat delivery's `page_id` (top
/// level, then `data`, the conversation, the message, the conversation id's prefix).
const PANCAKE_CLAIMS: Claims = Claims {
    source: Source::Pancake,
    bound: BOUND,
    templates: &[
        (
            r#"{"payload": {"eventType": "order_created", {tenant} "data": {"id": 1, "page_id": "1002", "status": 0, "updated_at": "2025-09-05T10:00:00"}}}"#,
            "pageId",
        ),
        (
            r#"{"event_type": "messaging", {tenant} "data": {"page_id": "1002", "conversation": {"id": "1002_7", "page_id": "1002"}, "message": {"id": "m1", "inserted_at": "2025-09-05T10:00:00"}}}"#,
            "page_id",
        ),
    ],
    disagreeing: &[
        r#"{"payload": {"eventType": "order_created", "pageId": "1002", "data": {"id": 2, "page_id": "1001", "status": 0}}}"#,
        r#"{"page_id": "1001", "payload": {"eventType": "order_created", "pageId": "1002", "data": {}}}"#,
        r#"{"page_id": "1002", "payload": {"eventType": "order_created", "pageId": "1001", "data": {}}}"#,
        r#"{"event_type": "messaging", "data": {"page_id": "1001", "conversation": {"id": "1002_7", "page_id": "1002"}}}"#,
        r#"{"event_type": "messaging", "page_id": {"id": "1001"}, "data": {"conversation": {"id": "1002_7"}}}"#,
        r#"{"event_type": "messaging", "data": {"conversation": {"id": "1001_7", "page_id": "1002"}}}"#,
        r#"{"event_type": "messaging", "data": {"message": {"page_id": "1002"}, "conversation": {"id": "1001_7"}}}"#,
        r#"{"event_type": "messaging", "data": {"conversation": {"id": "1001_1002_7"}}}"#,
    ],
};

/// Pancake POS: `payload.shopId` in the seed envelope, else the flat delivery's `shop_id`
/// (top level, then the record's).
const POS_CLAIMS: Claims = Claims {
    source: Source::PancakePos,
    bound: BOUND,
    templates: &[
        (
            r#"{"payload": {"eventType": "order_created", {tenant} "data": {"id": 9, "shop_id": 1002, "status": 0, "updated_at": "2025-09-05T10:00:00"}}}"#,
            "shopId",
        ),
        (
            r#"{"type": "orders", "event_type": "update", {tenant} "data": {"record": {"id": 9, "shop_id": 1002, "status": 1}}}"#,
            "shop_id",
        ),
    ],
    disagreeing: &[
        r#"{"payload": {"eventType": "order_created", "shopId": 1002, "data": {"id": 10, "shop_id": 1001, "status": 0}}}"#,
        r#"{"shop_id": 1001, "payload": {"eventType": "order_created", "shopId": 1002, "data": {}}}"#,
        r#"{"type": "orders", "event_type": "update", "shop_id": 1002, "data": {"record": {"id": 11, "shop_id": 1001}}}"#,
        r#"{"type": "orders", "event_type": "update", "shop_id": {"id": 1002}, "data": {"record": {"id": 12, "shop_id": 1001}}}"#,
        r#"{"type": "orders", "event_type": "update", "data": {"record": {"id": 13, "shop_id": 1002}}, "shop_id": 1001}"#,
    ],
};

/// Abaha: the bare object's `store_id` (`default` without one).
const ABAHA_CLAIMS: Claims = Claims {
    source: Source::Abaha,
    bound: BOUND,
    templates: &[(
        r#"{ {tenant} "id": "208610", "cart_code": "C1", "status": "1", "modified": "2025-09-05 10:00:00", "data": {"store_id": "1002"}, "store": {"id": "1002"}}"#,
        "store_id",
    )],
    disagreeing: &[
        r#"{"id": "5", "product_code": "P5", "store_id": "1002", "payload": {"store_id": "1001"}}"#,
        r#"{"id": "6", "product_code": "P6", "store_id": [1001, 1002]}"#,
    ],
};

/// Fulfilment: `payload.merchant_code` (`default` without one), which is also what the
/// credential table's secrets are looked up by.
const FULFILMENT_CLAIMS: Claims = Claims {
    source: Source::Fulfilment,
    bound: BOUND,
    templates: &[
        (
            r#"{"event": "ORDER.CHANGE_STATUS", "merchant_code": "1002", "payload": { {tenant} "from_status": "NEW", "to_status": "PACKED", "order": {"id": 5, "merchant_code": "1002", "updated_at": "2025-09-05T10:00:00Z"}}}"#,
            "merchant_code",
        ),
        (
            r#"{"event": "SKU.CHANGE_STOCK", "payload": { {tenant} "product_code": "P1", "stocks": []}}"#,
            "merchant_code",
        ),
        (
            r#"{"event": "ORDER.CREATED", "payload": { {tenant} "order": {"id": 6}}}"#,
            "merchant_code",
        ),
    ],
    disagreeing: &[
        r#"{"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": "1001", "to_status": "PACKED", "order": {"id": 7}}, "payload": {"merchant_code": "1002", "to_status": "PACKED", "order": {"id": 7}}}"#,
        r#"{"event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": "1002", "to_status": "PACKED", "order": {"id": 8}}, "payload": {"merchant_code": "1001", "to_status": "PACKED", "order": {"id": 8}}}"#,
        r#"{"event": "ORDER.CREATED", "merchant_code": "1002", "payload": "1002"}"#,
        r#"{"event": "ORDER.CREATED", "event": "ORDER.CHANGE_STATUS", "payload": {"merchant_code": "1001", "to_status": "PACKED", "order": {"id": 9}}}"#,
    ],
};

/// Invoice: always `default`, whatever the body says.
const INVOICE_CLAIMS: Claims = Claims {
    source: Source::Invoice,
    bound: Tenant::DEFAULT,
    templates: &[
        (
            r#"{"event": "invoice.updated", "timestamp": "2025-09-05T10:45:00Z", {tenant} "data": {"invoiceId": "inv-1", "state": "Pending", "previousState": "Ready"}}"#,
            "tenant",
        ),
        (
            r#"{"event": "invoice.updated", "timestamp": "2025-09-05T10:45:00Z", "data": { {tenant} "invoiceId": "inv-2", "state": "Pending", "previousState": "Ready"}}"#,
            "merchant_code",
        ),
    ],
    disagreeing: &[
        r#"{"event": "invoice.updated", "timestamp": "2025-09-05T10:45:00Z", "store_id": "1002", "shopId": 1002, "pageId": "1002", "data": {"invoiceId": "inv-3", "state": "Wait", "previousState": "Ready", "merchant_code": "1002"}}"#,
    ],
};

const EVERY_CLAIM: [&Claims; 5] = [
    &PANCAKE_CLAIMS,
    &POS_CLAIMS,
    &ABAHA_CLAIMS,
    &FULFILMENT_CLAIMS,
    &INVOICE_CLAIMS,
];

/// Where the bindings under test live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// The source's `_BY_TENANT` variable.
    Environment,
    /// Rows of the credential table, and a Lambda configured by `CREDENTIALS_TABLE` alone.
    Table,
}

/// `claims`' provider with [`BOUND_CREDENTIAL`] bound to its tenant and [`OTHER_CREDENTIAL`]
/// to [`OTHER`], where `binding` says.
async fn bound_provider(kit: &Kit, claims: &Claims, binding: Binding) -> Arc<dyn Provider> {
    let source = claims.source;
    let pairs = [(claims.bound, BOUND_CREDENTIAL), (OTHER, OTHER_CREDENTIAL)];
    if binding == Binding::Environment {
        let json = json!(Map::from_iter(
            pairs.map(|(tenant, value)| (tenant.to_string(), json!([value])))
        ));
        let env = Env::from_pairs([(credentials_of(source).1.name, json.to_string())]);
        return provider_from_env(source, &env, Mode::Lambda).expect("bound credentials");
    }
    let op = kit.operator().await;
    for (tenant, value) in pairs {
        let given = NewValue::Given(value.to_string());
        op.add_credential(source, &Tenant::new(tenant), given, None, RECEIVED_AT)
            .await
            .expect("stored");
    }
    table_only(source)
}

/// Posts every one of `claims`' bodies with the credential bound to its tenant: each is
/// admitted as that tenant, or refused 4xx with nothing stored; the other tenant gets
/// nothing. Returns how many were admitted.
async fn try_to_smuggle(kit: &Kit, rig: &Rig, claims: &Claims, binding: Binding) -> usize {
    let provider = bound_provider(kit, claims, binding).await;
    let source = claims.source;
    let own = credentialed(claims.source, claims.own().as_bytes(), BOUND_CREDENTIAL);
    let control = rig.post(provider.as_ref(), own).await;
    assert_eq!(
        control.expect("the control").tenant,
        claims.bound,
        "{source}"
    );
    let mut admitted = 1;
    for body in claims.bodies() {
        let before = stored(kit).await;
        let req = credentialed(claims.source, body.as_bytes(), BOUND_CREDENTIAL);
        match rig.post(provider.as_ref(), req).await {
            Ok(accepted) => {
                assert_eq!(accepted.tenant, claims.bound, "{source}: {body}");
                admitted += 1;
            }
            Err(err) => {
                assert!(
                    (400..500).contains(&err.status()),
                    "{source}: {body}: {err}"
                );
                // The environment knows the credential whatever the body claims, so only the
                // body or its tenant can be refused; the table finds a signing secret by the
                // claimed tenant, so a claim of another tenant is 401 there.
                if binding == Binding::Environment {
                    assert_ne!(err.status(), 401, "{source}: {body}: {err}");
                }
                assert_eq!(
                    stored(kit).await,
                    before,
                    "{source}: {body}: nothing stored"
                );
            }
        }
    }
    admitted
}

/// Every event of `source` the store holds is `bound`'s, through the read API, and there
/// are `admitted` of them; none is [`OTHER`]'s.
async fn only_the_bound_tenant_has_events(kit: &Kit, source: Source, bound: &str, admitted: usize) {
    let of = |tenant: Option<&str>| EventFilter {
        source: Some(source),
        tenant: tenant.map(str::to_string),
        ..EventFilter::default()
    };
    let other = kit.store.count_events(&of(Some(OTHER))).await.unwrap();
    assert_eq!(
        other.values().sum::<u64>(),
        0,
        "{source}: nothing is {OTHER}'s"
    );
    let page = kit
        .store
        .list_events(&of(None), Order::NewestFirst, 1_000, None, Detail::Summary)
        .await
        .unwrap()
        .into_summaries();
    assert_eq!(page.events.len(), admitted, "{source}");
    assert!(
        page.events.iter().all(|e| e.tenant == bound),
        "{source}: every stored event is {bound}'s"
    );
}

/// The adversarial suite (issue 15) for every provider whose tenant the body names, against
/// `binding`.
async fn tenant_fields_cannot_smuggle_another_tenant(kit: &Kit, binding: Binding) {
    let rig = Rig::new(kit);
    for claims in EVERY_CLAIM {
        let admitted = try_to_smuggle(kit, &rig, claims, binding).await;
        only_the_bound_tenant_has_events(kit, claims.source, claims.bound, admitted).await;
    }
}

/// Tenant fields missing, of the wrong type, given twice or different in the envelope and in
/// `data`, against the environment's `_BY_TENANT` bindings: a 4xx with nothing stored, or
/// the one tenant the key is bound to.
async fn tenant_fields_cannot_smuggle_past_an_environment_binding(kit: &Kit) {
    tenant_fields_cannot_smuggle_another_tenant(kit, Binding::Environment).await;
}

/// The same against credentials stored in the table: keys found by their hash, signing
/// secrets by the tenant the body claims.
async fn tenant_fields_cannot_smuggle_past_a_stored_binding(kit: &Kit) {
    tenant_fields_cannot_smuggle_another_tenant(kit, Binding::Table).await;
}
