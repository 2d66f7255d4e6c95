//! A structured fuzzer for every provider's verify + parse + normalise entry point, on
//! stable (proptest), sized for CI. Inputs: arbitrary JSON values (a recursive strategy,
//! depth ≤ 4 with the top-level object, ~24 nodes per value, keys biased towards the providers' field names), arbitrary byte
//! strings, and mutations of every fixture in shared/fixtures/<source>/ (field deletions,
//! type swaps, byte flips, truncations). Each body is properly credentialed, so `normalise`
//! is reached; the result must be `Ok` or an `IngestError` answering 400 or 401, never 5xx,
//! never a panic. A separate run feeds arbitrary credential headers to `verify` (401 only).
//!
//! Executions per provider: JSON_CASES + BYTE_CASES + MUTATION_CASES + VERIFY_CASES
//! (2,000 + 1,000 + 2,000 + 500 = 5,500), six provider configurations (the invoice
//! provider twice: replay window off, as in local mode, and 300 s as in Lambda):
//! 33,000 executions per run, printed by each test. Seeds are random per run (proptest's
//! default); a failure prints the minimal input, which then becomes a named regression
//! test at the bottom of this file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Number, Value};
use time::OffsetDateTime;

use webhook_core::config::{Env, Mode};
use webhook_core::http::{route_for, RawRequest};
use webhook_core::model::Source;
use webhook_core::sources::{invoice, provider_from_env, Provider};
use webhook_tests::events::{credential_header, dev_credentialed, json_files, repo_root};

const JSON_CASES: u32 = 2_000;
const BYTE_CASES: u32 = 1_000;
const MUTATION_CASES: u32 = 2_000;
const VERIFY_CASES: u32 = 500;
/// The samples' own time (2025-09-05T10:45:00Z): fixtures fall inside a 300 s window.
const NOW: i64 = 1_757_069_100;

/// A provider under test: how it is built, where its fixtures are, how a body is signed.
struct Target {
    label: &'static str,
    source: Source,
    fixture_dir: &'static str,
    provider: Arc<dyn Provider>,
}

fn targets() -> Vec<Target> {
    let local = Env::default();
    let mut out: Vec<Target> = [
        (Source::Pancake, "pancake"),
        (Source::PancakePos, "pancake_pos"),
        (Source::Abaha, "abaha"),
        (Source::Fulfilment, "fulfilment"),
        (Source::Invoice, "invoice"),
    ]
    .into_iter()
    .map(|(source, dir)| Target {
        label: source.as_str(),
        source,
        fixture_dir: dir,
        provider: provider_from_env(source, &local, Mode::Local).unwrap(),
    })
    .collect();
    let windowed = Env::from_pairs([
        ("INVOICE_SECRETS", invoice::DEV_SECRET),
        ("INVOICE_TOLERANCE_SECS", "300"),
    ]);
    out.push(Target {
        label: "invoice (300 s window)",
        source: Source::Invoice,
        fixture_dir: "invoice",
        provider: provider_from_env(Source::Invoice, &windowed, Mode::Lambda).unwrap(),
    });
    out
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

/// Executions that normalised to an event (the rest were 400/401): shows the fuzzer gets
/// past the envelope checks.
static NORMALISED: AtomicUsize = AtomicUsize::new(0);

/// The property: a credentialed request verifies, and normalises to an event or to a
/// 400/401 error. A panic inside is caught by proptest and reported as a failure.
fn check(target: &Target, req: &RawRequest) -> Result<(), TestCaseError> {
    let p = target.provider.as_ref();
    if let Err(e) = p.verify(req) {
        return Err(TestCaseError::fail(format!(
            "{}: a properly signed request failed verification: {e}",
            target.label
        )));
    }
    match p.normalise(req, now()) {
        Ok(event) => {
            NORMALISED.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(event.source, target.source);
            prop_assert!(!event.event_id.is_empty(), "empty event id");
            prop_assert!(!event.event_type.is_empty(), "empty event type");
            for e in &event.entities {
                prop_assert!(!e.key.id.is_empty(), "empty entity id: {:?}", e.key);
            }
            Ok(())
        }
        Err(e) => {
            prop_assert!(
                e.status() == 400 || e.status() == 401,
                "{}: normalise answered {} ({e})",
                target.label,
                e.status()
            );
            Ok(())
        }
    }
}

// ---- strategies ----------------------------------------------------------------------

/// Object keys: mostly the providers' own field names, so the fuzzer gets past the
/// envelope checks; sometimes anything.
fn key() -> impl Strategy<Value = String> {
    const KEYS: &[&str] = &[
        "event",
        "payload",
        "eventType",
        "pageId",
        "shopId",
        "data",
        "timestamp",
        "signature",
        "invoiceId",
        "state",
        "previousState",
        "event_type",
        "page_id",
        "type",
        "id",
        "shop_id",
        "status",
        "status_name",
        "updated_at",
        "order",
        "merchant_code",
        "from_status",
        "to_status",
        "stocks",
        "stock",
        "warehouse_code",
        "product_code",
        "cart_code",
        "user_id",
        "tel",
        "store_id",
        "modified",
        "conversation",
        "message",
        "record",
        "items",
        "status_history",
        "customer",
        "variation",
        "inserted_at",
        "created_at",
        "quantity",
        "from",
        "sender_id",
    ];
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => text(8),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        // Event names, states, ids, times and junk.
        proptest::sample::select(vec![
            "invoice.updated",
            "ORDER.CHANGE_STATUS",
            "SKU.CHANGE_STOCK",
            "order_created",
            "order_status_changed",
            "messaging",
            "orders",
            "products",
            "customers",
            "variations_warehouses",
            "create",
            "update",
            "Ready",
            "Pending",
            "Complete",
            "Wait",
            "Cancel",
            "Fail",
            "Reject",
            "2025-09-05T10:44:52.516Z",
            "2025-09-05T10:44:52",
            "1757069100",
            "208610",
            "",
            " ",
            "#",
            "😀",
            "\u{0}",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        text(16).prop_map(Value::String),
        any::<i64>().prop_map(|n| Value::String(n.to_string())),
    ]
}

/// Any characters (cheaper to generate than a regex strategy in a debug build).
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Arbitrary JSON: depth ≤ 3 below the top-level object, about 24 nodes, ≤ 5 items per
/// collection (small and cheap to generate: the providers read a few levels at most).
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body: mostly an object (what normalise works on), sometimes any value; serialised
/// compactly or pretty.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        4 => proptest::collection::vec((key(), json()), 0..6)
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        1 => json(),
    ];
    (value, any::<bool>()).prop_map(|(v, pretty)| {
        if pretty {
            serde_json::to_vec_pretty(&v).unwrap()
        } else {
            serde_json::to_vec(&v).unwrap()
        }
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index),
    Replace(Index, Value),
    /// Applied to the serialised bytes.
    Flip(Index, u8),
    Truncate(Index),
    Duplicate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::Delete),
        4 => (any::<Index>(), json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => any::<Index>().prop_map(Mutation::Duplicate),
    ]
}

/// Every path in `v` (object keys and array indices), parents first.
fn paths(v: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(PathStep::Key(k.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(PathStep::At(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    At(usize),
}

fn at_mut<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        PathStep::Key(k) => v.get_mut(k.as_str()),
        PathStep::At(i) => v.get_mut(*i),
    })
}

/// Applies `mutations` to a fixture; structural ones first, byte-level ones last.
fn mutate(fixture: &Value, mutations: &[Mutation]) -> Vec<u8> {
    let mut v = fixture.clone();
    for m in mutations {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        if all.is_empty() {
            break;
        }
        match m {
            Mutation::Delete(i) => {
                let path = all[i.index(all.len())].clone();
                let (last, parent) = path.split_last().unwrap();
                match (at_mut(&mut v, parent), last) {
                    (Some(Value::Object(o)), PathStep::Key(k)) => {
                        o.remove(k);
                    }
                    (Some(Value::Array(a)), PathStep::At(j)) => {
                        a.remove(*j);
                    }
                    _ => {}
                }
            }
            Mutation::Replace(i, value) => {
                if let Some(slot) = at_mut(&mut v, &all[i.index(all.len())]) {
                    *slot = value.clone();
                }
            }
            _ => {}
        }
    }
    let mut bytes = serde_json::to_vec(&v).unwrap();
    for m in mutations {
        match m {
            Mutation::Flip(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] ^= b.max(&1);
            }
            Mutation::Truncate(i) if !bytes.is_empty() => bytes.truncate(i.index(bytes.len())),
            Mutation::Duplicate(i) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                let chunk = bytes[at..].to_vec();
                bytes.extend(chunk);
            }
            _ => {}
        }
    }
    bytes
}

/// The fixtures of `dir`, with the providers' documented deliveries (`documented/`) where
/// there are any.
fn fixtures(dir: &str) -> Vec<Value> {
    let root = repo_root().join("shared/fixtures").join(dir);
    let documented = root.join("documented");
    let mut paths = json_files(&root);
    if documented.is_dir() {
        paths.extend(json_files(&documented));
    }
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

// ---- the runs ------------------------------------------------------------------------

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

type Property = fn(&Target, &RawRequest) -> Result<(), TestCaseError>;

/// Runs `cases` generated requests per target through `property`; returns the executions
/// (shrinking steps included). A failure panics with the minimal input.
fn fuzz(
    name: &str,
    cases: u32,
    requests: impl Fn(&Target) -> BoxedStrategy<RawRequest>,
    property: Property,
) -> usize {
    let started = std::time::Instant::now();
    let mut total = 0;
    for target in targets() {
        let executions = AtomicUsize::new(0);
        let normalised_before = NORMALISED.load(Ordering::Relaxed);
        let result = runner(cases).run(&requests(&target), |req| {
            executions.fetch_add(1, Ordering::Relaxed);
            property(&target, &req)
        });
        let n = executions.load(Ordering::Relaxed);
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, req)) => panic!(
                "{name} / {}: {reason}\nminimal input: body = {:?}\nheaders = {:?}",
                target.label,
                String::from_utf8_lossy(&req.body),
                req.headers
            ),
            Err(e) => panic!("{name} / {}: {e}", target.label),
        }
        println!(
            "{name} / {}: {n} executions, 0 failures (about {} normalised to an event; \
             counts are approximate while tests run in parallel)",
            target.label,
            NORMALISED.load(Ordering::Relaxed) - normalised_before
        );
        total += n;
    }
    println!(
        "{name}: {total} executions over {} targets in {:.1} s",
        targets().len(),
        started.elapsed().as_secs_f64()
    );
    total
}

fn delivery() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => "[0-9]{1,12}".prop_map(Some),
        1 => "\\PC{0,40}".prop_map(Some),
        1 => "[0-9]{300}".prop_map(Some),
    ]
}

fn signed(
    source: Source,
    bodies: impl Strategy<Value = Vec<u8>> + 'static,
) -> BoxedStrategy<RawRequest> {
    (bodies, delivery())
        .prop_map(move |(body, d)| dev_credentialed(source, &body, d.as_deref()))
        .boxed()
}

#[test]
fn arbitrary_json_bodies_normalise_or_answer_400_401() {
    let n = fuzz("json", JSON_CASES, |t| signed(t.source, json_body()), check);
    assert!(n >= JSON_CASES as usize * 6);
}

#[test]
fn arbitrary_byte_bodies_normalise_or_answer_400_401() {
    let bytes = || {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            // JSON-looking bytes: a valid prefix then noise.
            (
                json_body(),
                proptest::collection::vec(any::<u8>(), 0..16),
                any::<Index>()
            )
                .prop_map(|(mut body, noise, at)| {
                    let at = at.index(body.len() + 1);
                    body.splice(at..at, noise);
                    body
                }),
        ]
    };
    let n = fuzz("bytes", BYTE_CASES, |t| signed(t.source, bytes()), check);
    assert!(n >= BYTE_CASES as usize * 6);
}

#[test]
fn mutated_fixtures_normalise_or_answer_400_401() {
    let n = fuzz(
        "fixture mutations",
        MUTATION_CASES,
        |t| {
            let fixtures = fixtures(t.fixture_dir);
            assert!(!fixtures.is_empty(), "{}", t.fixture_dir);
            let bodies = (
                proptest::sample::select(fixtures),
                proptest::collection::vec(mutation(), 1..5),
            )
                .prop_map(|(f, m)| mutate(&f, &m));
            signed(t.source, bodies)
        },
        check,
    );
    assert!(n >= MUTATION_CASES as usize * 6);
}

/// Arbitrary credential headers (and query keys) on arbitrary bodies: `verify` answers 401
/// and never panics.
fn rejects_unsigned(target: &Target, req: &RawRequest) -> Result<(), TestCaseError> {
    match target.provider.verify(req) {
        Ok(_) => Err(TestCaseError::fail("an unsigned request verified")),
        Err(e) => {
            prop_assert_eq!(e.status(), 401, "{}", e);
            Ok(())
        }
    }
}

#[test]
fn arbitrary_credentials_are_401() {
    let n = fuzz(
        "credentials",
        VERIFY_CASES,
        |t| {
            let header = credential_header(t.source);
            (
                proptest::collection::vec(any::<u8>(), 0..256),
                proptest::option::of("\\PC{0,80}"),
                proptest::option::of("[ -~]{0,80}"),
                proptest::option::of("[0-9a-f]{64}"),
            )
                .prop_map(move |(body, h, q, hex)| {
                    let mut req = RawRequest::post(route_for(Source::Pancake), body);
                    if let Some(h) = h {
                        req = req.with_header(header, &h);
                    }
                    if let Some(hex) = hex {
                        req = req.with_header(header, &hex);
                    }
                    if let Some(q) = q {
                        req = req.with_query("api_key", &q);
                    }
                    req
                })
                .boxed()
        },
        rejects_unsigned,
    );
    assert!(n >= VERIFY_CASES as usize * 6);
}

// ---- regression inputs (crashes found by the fuzzer stay here) -----------------------

/// Inputs the corpus above reaches only by chance, kept explicit: deep nesting beyond
/// serde_json's recursion limit, huge numbers where ids and versions are read, and ids
/// made of NUL, emoji or `#`.
#[test]
fn regression_inputs_normalise_or_answer_400_401() {
    let deep = format!("{{\"event\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<String> = vec![
        deep,
        "[".repeat(100_000),
        r##"{"event":"invoice.updated","timestamp":1e400,"data":{"invoiceId":"x","state":"Ready","previousState":"Wait"}}"##.into(),
        r##"{"event":"invoice.updated","timestamp":-9223372036854775808,"data":{"invoiceId":"x","state":"Pending","previousState":"Ready"}}"##.into(),
        r##"{"event":"invoice.updated","timestamp":"9999-12-31T23:59:59.999999999Z","data":{"invoiceId":"\u0000","state":"😀","previousState":"#"}}"##.into(),
        r##"{"event":"ORDER.CHANGE_STATUS","payload":{"merchant_code":"#","to_status":"😀","order":{"id":18446744073709551615,"updated_at":"+275760-09-13T00:00:00Z"}}}"##.into(),
        r##"{"event":"SKU.CHANGE_STOCK","payload":{"merchant_code":"\u0000","product_code":"p","stocks":[null,1,{"stock":{"id":{}}}]}}"##.into(),
        r##"{"payload":{"eventType":"order_updated","pageId":"#","data":{"id":-1e308,"updated_at":1e300},"timestamp":-1}}"##.into(),
        r##"{"payload":{"eventType":"order_status_changed","shopId":9e18,"data":{"id":"😀","status":1e300,"updated_at":"2025-02-30T25:61:61"}}}"##.into(),
        r##"{"type":"orders","event_type":"update","id":"\u0000","shop_id":"#","status":-1,"updated_at":"0000-00-00T00:00:00","status_history":[{},null,[]]}"##.into(),
        r##"{"cart_code":"\u0000","store_id":"#","modified":"-1","user_id":{},"tel":[]}"##.into(),
        r##"{"event_type":"messaging","page_id":"","data":{"conversation":{"id":"_"},"message":{"id":"😀","inserted_at":1e999}}}"##.replace("1e999", "1e300"),
    ];
    let mut runs = 0;
    for target in targets() {
        for body in &bodies {
            for delivery in [None, Some("1"), Some("\u{0}")] {
                let req = dev_credentialed(target.source, body.as_bytes(), delivery);
                check(&target, &req)
                    .unwrap_or_else(|e| panic!("{}: {body:.200}: {e}", target.label));
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 6 * bodies.len() * 3);
}

// ---- findings of the coverage-guided fuzzer (fuzz/, fuzz/RESULTS.md) -----------------

/// `version` target: `-9999-12-31T23:59:59.99999` (and any time before 1970) parsed to a
/// negative version, whose sort key `-0…` ordered backwards and whose `occurredAt` could
/// not be rendered as RFC 3339. Such a time is now no timestamp: an object carrying one is
/// versioned by the envelope's `timestamp` or the receipt time, like one without.
#[test]
fn regression_fuzz_times_before_1970_are_not_versions() {
    let times = [
        "-9999-12-31T23:59:59.99999",
        "1969-12-31T23:59:59.999999Z",
        "0000-01-01 00:00:00",
    ];
    for target in targets() {
        for time in times {
            let body = match target.source {
                Source::Pancake => format!(
                    r#"{{"payload":{{"eventType":"order_updated","pageId":"1","data":{{"id":"o1","updated_at":"{time}"}}}}}}"#
                ),
                Source::PancakePos => format!(
                    r#"{{"payload":{{"eventType":"order_updated","shopId":1,"data":{{"id":"o1","status":1,"updated_at":"{time}"}}}}}}"#
                ),
                Source::Abaha => format!(
                    r#"{{"cart_code":"c1","store_id":"552","status":"new","modified":"{time}"}}"#
                ),
                Source::Fulfilment => format!(
                    r#"{{"event":"ORDER.CHANGE_STATUS","payload":{{"merchant_code":"XYZ","to_status":"A","order":{{"id":1,"updated_at":"{time}"}}}}}}"#
                ),
                Source::Invoice => format!(
                    r#"{{"event":"invoice.updated","timestamp":"{time}","data":{{"invoiceId":"i1","state":"Ready"}}}}"#
                ),
            };
            let req = dev_credentialed(target.source, body.as_bytes(), Some("1"));
            check(&target, &req).unwrap_or_else(|e| panic!("{}: {body}: {e}", target.label));
            let Ok(event) = target.provider.normalise(&req, now()) else {
                continue; // the invoice window refuses a body without a readable timestamp
            };
            for entity in &event.entities {
                let v = entity.version;
                assert!(v.micros() >= 0, "{}: {time} versioned {v}", target.label);
                assert!(v.to_rfc3339().ends_with('Z'), "{}: {v}", target.label);
            }
        }
    }
}

/// `apigw_event` target: `lambda_http` panicked converting an API Gateway v2 event whose
/// `rawQueryString` held a character `http::Uri` refuses (`"`, `{`, `|`, a space), or
/// whose `isBase64Encoded` body was not base64; the Lambda runtime reported the panic as
/// an invocation error, which API Gateway answers 500. The ingest Lambdas now read the
/// event themselves: such a query decodes, such a body is a 400.
#[test]
fn regression_fuzz_lambda_events_lambda_http_could_not_convert() {
    use base64::Engine;
    use webhook_core::http::lambda::request_from_event;
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/fulfilment/order_change_status.json"))
            .unwrap(),
    )
    .unwrap();
    let provider = &targets()[3];
    assert_eq!(provider.source, Source::Fulfilment);
    for query in [r#"q={"a":1}"#, "q=a|b", "q=a b", "x=<>^`\\"] {
        let mut event = sample.clone();
        event["rawQueryString"] = query.into();
        let req = request_from_event(&serde_json::from_value(event).unwrap(), None).unwrap();
        assert_eq!(req.body, sample["body"].as_str().unwrap().as_bytes());
        provider
            .provider
            .verify(&req)
            .expect("the signed sample verifies");
        check(provider, &req).unwrap();
    }
    let mut event = sample.clone();
    event["isBase64Encoded"] = true.into();
    event["body"] = "{not base64}".into();
    let err = request_from_event(&serde_json::from_value(event).unwrap(), None).unwrap_err();
    assert_eq!(err.status(), 400);
    let mut event = sample.clone();
    let bytes = sample["body"].as_str().unwrap().as_bytes();
    event["isBase64Encoded"] = true.into();
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into();
    let req = request_from_event(&serde_json::from_value(event).unwrap(), None).unwrap();
    assert_eq!(req.body, bytes, "base64 bodies decode to the signed bytes");
}
