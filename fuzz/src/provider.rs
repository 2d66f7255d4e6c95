//! One provider's `verify` + `normalise`, as a request from the internet reaches them.
//!
//! Input layout (see [`crate::input`]):
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | configuration, mod 3: local development credentials; a Lambda with rotated keys, a tenant-bound key, custom header names and (Pancake) a signing secret; a Lambda with `ALLOW_UNVERIFIED` |
//! | 1 | credential, mod 8: 0–4 correct (5/8 of inputs, so `normalise` is mostly reached with a verified request), 5 correct in its other spelling (query parameter, `sha256=` + uppercase hex, another header case), 6 wrong, 7 missing; `/ 8` picks which configured secret (modulo how many there are) |
//! | 2 | clock skew, as `i8` × 10 s around the fixtures' time (the invoice replay window is 300 s) |
//! | 3 | number of extra headers / query parameters, mod 4; each is a kind byte then a length-prefixed value |
//! | rest | the body, exactly as signed |
//!
//! Oracle: nothing panics; `verify` answers `Ok` for a correctly credentialed request and
//! otherwise 401 (unless some header or query value happens to carry a valid credential);
//! `normalise` answers an event or 400/401; the tenant binding answers 403; the response
//! built for any error carries its status. A 5xx is never acceptable: it would make the
//! provider retry a request that can never succeed.

use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use time::OffsetDateTime;
use webhook_core::config::{Env, Mode};
use webhook_core::http::{respond, route_for, RawRequest};
use webhook_core::model::{transition_id, Accepted, EventStatus, NormalisedEvent, Source};
use webhook_core::sources::{
    abaha, fulfilment, invoice, pancake, pancake_pos, provider_from_env, Provider, MAX_ID_LEN,
};
use webhook_core::verify::BodyDigest;
use webhook_core::IngestError;

use crate::input::{byte, item, text};

/// The fixtures' time (2025-09-05T10:45:00Z): inside the invoice samples' 300 s window.
const NOW: i64 = 1_757_069_100;
/// The rotated pair and the tenant-bound value of the Lambda configuration.
const ROTATED: [&str; 2] = ["k-old", "k-new"];
const BOUND: &str = "k-bound";
/// Pancake's optional body signature secret (Lambda configuration).
const PANCAKE_SIGNING: &str = "sign-secret";
/// The configurable credential header of the Lambda configuration.
const CUSTOM_HEADER: &str = "X-Custom-Key";
/// A credential no configuration accepts.
const WRONG: &str = "wrong-credential";

/// Header names an extra item may use: every credential header of every provider, the
/// kept ones, the fulfilment delivery id.
const HEADER_NAMES: [&str; 10] = [
    "x-api-key",
    "x-webhook-secret",
    "x-abaha-token",
    "x-event-signature",
    "x-signature",
    "x-pancake-signature",
    "x-custom-key",
    "x-event-delivery",
    "content-type",
    "user-agent",
];
const QUERY_NAMES: [&str; 3] = ["api_key", "token", "signature"];

/// How a configuration expects the credential.
#[derive(Clone, Copy)]
enum Scheme {
    /// `ALLOW_UNVERIFIED`: nothing is checked.
    Unverified,
    /// A static key or token in `header` (or `?api_key=` when `query`).
    Static { header: &'static str, query: bool },
    /// A hex digest of the body in `header`.
    Signature {
        header: &'static str,
        digest: BodyDigest,
    },
}

/// One provider configuration, built once per process.
struct Config {
    provider: Arc<dyn Provider>,
    scheme: Scheme,
    /// Every value the credential check accepts (the first ones rotated, the last bound).
    secrets: Vec<&'static str>,
    /// Pancake's signing secret, when the configuration sets one.
    signing: Option<&'static str>,
}

/// What an input asks for.
#[derive(Clone, Copy, PartialEq)]
enum Presented {
    Correct { variant: bool, which: usize },
    Wrong,
    Missing,
}

/// Runs one input against `source`'s provider; panics when the oracle is violated.
pub fn fuzz(source: Source, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = &configs(source)[usize::from(byte(&mut u)) % 3];
    let presented = presented(byte(&mut u));
    let now = OffsetDateTime::from_unix_timestamp(NOW + i64::from(byte(&mut u) as i8) * 10)
        .expect("a time near the fixtures'");
    let extras: Vec<(u8, &[u8])> = (0..byte(&mut u) % 4)
        .map(|_| (byte(&mut u), item(&mut u)))
        .collect();
    let body = u.take_rest();
    let req = request(source, config, presented, &extras, body);
    check(source, config, presented, &req, now);
}

/// The credential byte: mod 8 the kind (5 in 8 correct), `/ 8` which secret.
fn presented(c: u8) -> Presented {
    let which = usize::from(c / 8);
    match c % 8 {
        0..=4 => Presented::Correct {
            variant: false,
            which,
        },
        5 => Presented::Correct {
            variant: true,
            which,
        },
        6 => Presented::Wrong,
        _ => Presented::Missing,
    }
}

/// The three configurations of `source`, built on first use.
fn configs(source: Source) -> &'static [Config; 3] {
    static CONFIGS: [OnceLock<[Config; 3]>; 5] = [const { OnceLock::new() }; 5];
    let slot = Source::ALL
        .iter()
        .position(|s| *s == source)
        .expect("a source");
    CONFIGS[slot].get_or_init(|| [local(source), lambda(source), unverified(source)])
}

fn build(source: Source, env: &Env, mode: Mode) -> Arc<dyn Provider> {
    provider_from_env(source, env, mode).expect("a valid fuzz configuration")
}

/// Local mode with no variables: the development credential.
fn local(source: Source) -> Config {
    let (dev, scheme) = match source {
        Source::Pancake => (pancake::DEV_API_KEY, static_key("X-API-Key", true)),
        Source::PancakePos => (
            pancake_pos::DEV_API_KEY,
            static_key("X-Webhook-Secret", true),
        ),
        Source::Abaha => (abaha::DEV_TOKEN, static_key("X-Abaha-Token", false)),
        Source::Fulfilment => (fulfilment::DEV_SECRET, fulfilment_scheme()),
        Source::Invoice => (
            invoice::DEV_SECRET,
            signature("X-Signature", BodyDigest::HmacSha256),
        ),
    };
    Config {
        provider: build(source, &Env::default(), Mode::Local),
        scheme,
        secrets: vec![dev],
        signing: None,
    }
}

/// A Lambda with two rotated values, one bound to the fixtures' tenant, custom header
/// names where configurable, Pancake's signing secret, the invoice window at 300 s.
fn lambda(source: Source) -> Config {
    let (list, scheme) = match source {
        Source::Pancake => (pancake::API_KEYS_VAR, static_key("X-API-Key", true)),
        Source::PancakePos => (pancake_pos::API_KEYS_VAR, static_key(CUSTOM_HEADER, true)),
        Source::Abaha => (abaha::TOKENS_VAR, static_key(CUSTOM_HEADER, false)),
        Source::Fulfilment => (fulfilment::SECRETS_VAR, fulfilment_scheme()),
        Source::Invoice => (
            invoice::SECRETS_VAR,
            signature(CUSTOM_HEADER, BodyDigest::HmacSha256),
        ),
    };
    let by_tenant = format!("{list}_BY_TENANT");
    let bound = format!(r#"{{"{}":["{BOUND}"]}}"#, fixture_tenant(source));
    let mut pairs = vec![(list.to_string(), ROTATED.join(",")), (by_tenant, bound)];
    pairs.extend(header_var(source).map(|var| (var.to_string(), CUSTOM_HEADER.to_string())));
    let signing = (source == Source::Pancake).then_some(PANCAKE_SIGNING);
    if let Some(secret) = signing {
        pairs.push((pancake::SIGNING_SECRETS_VAR.to_string(), secret.to_string()));
    }
    Config {
        provider: build(source, &Env::from_pairs(pairs), Mode::Lambda),
        scheme,
        secrets: vec![ROTATED[0], ROTATED[1], BOUND],
        signing,
    }
}

/// A Lambda with `ALLOW_UNVERIFIED=true` and nothing configured.
fn unverified(source: Source) -> Config {
    let env = Env::from_pairs([("ALLOW_UNVERIFIED", "true")]);
    Config {
        provider: build(source, &env, Mode::Lambda),
        scheme: Scheme::Unverified,
        secrets: Vec::new(),
        signing: None,
    }
}

fn static_key(header: &'static str, query: bool) -> Scheme {
    Scheme::Static { header, query }
}

fn signature(header: &'static str, digest: BodyDigest) -> Scheme {
    Scheme::Signature { header, digest }
}

fn fulfilment_scheme() -> Scheme {
    signature(
        fulfilment::SIGNATURE_HEADER,
        BodyDigest::Sha256BodyThenSecret,
    )
}

/// The variable naming a configurable credential header, for the sources that have one.
fn header_var(source: Source) -> Option<&'static str> {
    match source {
        Source::PancakePos => Some(pancake_pos::KEY_HEADER_VAR),
        Source::Abaha => Some(abaha::HEADER_VAR),
        Source::Invoice => Some(invoice::HEADER_VAR),
        Source::Pancake | Source::Fulfilment => None,
    }
}

/// The tenant most fixtures of `source` name, so the bound key both admits and refuses.
fn fixture_tenant(source: Source) -> &'static str {
    match source {
        Source::Pancake => "104582318532114",
        Source::PancakePos => "20462817",
        Source::Abaha => "552",
        Source::Fulfilment => "XYZ",
        Source::Invoice => "default",
    }
}

// ---- the request ------------------------------------------------------------------------

/// The request: the credential first (so it is the value every place reads first), then
/// the extra items.
fn request(
    source: Source,
    config: &Config,
    presented: Presented,
    extras: &[(u8, &[u8])],
    body: &[u8],
) -> RawRequest {
    let mut req = RawRequest::post(route_for(source), body.to_vec());
    req = credential(req, config, presented);
    if let (Some(secret), Presented::Correct { .. }) = (config.signing, presented) {
        req = req.with_header(
            pancake::SIGNATURE_HEADER,
            &pancake::Pancake::sign(body, secret),
        );
    }
    for (kind, value) in extras {
        req = extra(req, config, *kind, value);
    }
    req
}

/// Adds what `presented` asks for in the configuration's scheme.
fn credential(req: RawRequest, config: &Config, presented: Presented) -> RawRequest {
    let (variant, value) = match presented {
        Presented::Missing => return req,
        Presented::Wrong => (false, WRONG),
        Presented::Correct { variant, which } if !config.secrets.is_empty() => {
            (variant, config.secrets[which % config.secrets.len()])
        }
        Presented::Correct { variant, .. } => (variant, WRONG),
    };
    match config.scheme {
        Scheme::Unverified => req.with_header("x-api-key", value),
        Scheme::Static { header, query } => match (variant, query) {
            (false, _) => req.with_header(header, value),
            (true, true) => req.with_query("api_key", value),
            (true, false) => req.with_header(&header.to_ascii_uppercase(), &format!(" {value}\t")),
        },
        Scheme::Signature { header, digest } => {
            let hex = digest.sign_hex(&req.body, value);
            match variant {
                false => req.with_header(header, &hex),
                true => req.with_header(header, &format!("sha256={}", hex.to_ascii_uppercase())),
            }
        }
    }
}

/// One extra item: kind % 4 picks a known header, a known query parameter, a header named
/// by the value itself (`name:value`), or a second value of the credential header.
fn extra(req: RawRequest, config: &Config, kind: u8, value: &[u8]) -> RawRequest {
    let value = text(value);
    let pick = usize::from(kind / 4);
    match kind % 4 {
        0 => req.with_header(HEADER_NAMES[pick % HEADER_NAMES.len()], &value),
        1 => req.with_query(QUERY_NAMES[pick % QUERY_NAMES.len()], &value),
        2 => match value.split_once(':') {
            Some((name, v)) => req.with_header(name, v),
            None => req.with_header(&value, ""),
        },
        _ => req.with_header(credential_header(config), &value),
    }
}

fn credential_header(config: &Config) -> &'static str {
    match config.scheme {
        Scheme::Unverified => "x-api-key",
        Scheme::Static { header, .. } | Scheme::Signature { header, .. } => header,
    }
}

// ---- the oracle -------------------------------------------------------------------------

/// Checks verify, normalise, the tenant binding and the error responses.
fn check(
    source: Source,
    config: &Config,
    presented: Presented,
    req: &RawRequest,
    now: OffsetDateTime,
) {
    let provider = config.provider.as_ref();
    let correct = matches!(presented, Presented::Correct { .. });
    let admission = match provider.verify(req) {
        Ok(admission) => {
            let may = correct || matches!(config.scheme, Scheme::Unverified);
            assert!(
                may || carries_valid_credential(config, req),
                "{source}: a request without a valid credential verified"
            );
            Some(admission)
        }
        Err(e) => {
            assert!(
                !correct,
                "{source}: a correctly credentialed request failed verification: {e}"
            );
            assert_refused(provider, e, &[401]);
            None
        }
    };
    // Normalise every body, verified or not: it is pure, and must hold on any bytes.
    match provider.normalise(req, now) {
        Ok(event) => {
            check_event(source, &event);
            if let Some(Err(e)) = admission.map(|a| a.check(&event.tenant)) {
                assert_refused(provider, e, &[403]);
            }
            check_success_response(provider, &event);
        }
        Err(e) => assert_refused(provider, e, &[400, 401]),
    }
}

/// `e` answers one of `allowed` (all 4xx), and so does the response the provider's style
/// builds for it.
fn assert_refused(provider: &dyn Provider, e: IngestError, allowed: &[u16]) {
    let status = e.status();
    assert!(
        allowed.contains(&status),
        "{}: {e} answered {status}, expected one of {allowed:?}",
        provider.source()
    );
    let response = respond(provider.response_style(), &Err(e));
    assert_eq!(response.status, status);
    assert!(!response.body_bytes().is_empty());
}

/// What every normalised event must be: its source, non-empty ids, keyable entities of
/// its tenant; and every key, id and time it produces can be rendered.
fn check_event(source: Source, event: &NormalisedEvent) {
    assert_eq!(event.source, source);
    assert!(!event.event_id.is_empty(), "{source}: empty event id");
    assert!(!event.event_type.is_empty(), "{source}: empty event type");
    let tenant = event.tenant.as_str();
    assert!(
        !tenant.is_empty() && !tenant.contains('#'),
        "{source}: tenant {tenant:?}"
    );
    let key = event.key();
    for entity in &event.entities {
        let id = &entity.key.id;
        assert!(
            !id.is_empty() && id.len() <= MAX_ID_LEN,
            "{source}: entity id {id:?}"
        );
        assert_eq!(entity.key.source, source);
        assert_eq!(
            entity.key.tenant, event.tenant,
            "{source}: entity of another tenant"
        );
        std::hint::black_box((entity.key.stream(), transition_id(&key, &entity.key)));
        std::hint::black_box((entity.version.to_rfc3339(), entity.version.sort_key()));
    }
}

/// The 200 response for an accepted event renders.
fn check_success_response(provider: &dyn Provider, event: &NormalisedEvent) {
    let accepted = Accepted {
        event_key: event.key(),
        event_type: event.event_type.clone(),
        provider_event: event.provider_event.clone(),
        tenant: event.tenant.clone(),
        duplicate: false,
        status: EventStatus::Applied,
        published: event.entities.len(),
        conflict_with: None,
    };
    let response = respond(provider.response_style(), &Ok(accepted));
    assert_eq!(response.status, 200);
    assert!(!response.body_bytes().is_empty());
}

/// Whether any header or query value is itself a valid credential for `req`'s body (the
/// fuzzer may put one in an extra item): only then may a wrong or missing one verify.
fn carries_valid_credential(config: &Config, req: &RawRequest) -> bool {
    let values = req.headers.iter().chain(&req.query).map(|(_, v)| v.trim());
    let accepted: Vec<String> = config
        .secrets
        .iter()
        .flat_map(|s| match config.scheme {
            Scheme::Signature { digest, .. } => vec![digest.sign_hex(&req.body, s)],
            _ => vec![s.to_string()],
        })
        .collect();
    values
        .map(|v| v.strip_prefix("sha256=").unwrap_or(v).to_ascii_lowercase())
        .any(|v| accepted.iter().any(|a| a.eq_ignore_ascii_case(&v)))
}
