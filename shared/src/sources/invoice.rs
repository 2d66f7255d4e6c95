//! Crypto payment gateway (seed 004): `invoice.updated` on every invoice state change,
//! `{"event","timestamp","data":{"invoiceId","state","previousState",..}}`.
//!
//! Verification: the header named by `INVOICE_SIGNATURE_HEADER` (default `X-Signature`) is
//! hex HMAC-SHA256(secret, raw body) under any of `INVOICE_SECRETS`. Because a signed body
//! stays valid forever, the body `timestamp` must lie within `INVOICE_TOLERANCE_SECS`
//! (default 300) of the injected clock, in either direction, or the request is a replay (401).
//! `INVOICE_TOLERANCE_SECS=0` turns the window off; that is the local gateway's default only
//! (the samples in events/ carry 2025 timestamps), never a Lambda's.
//!
//! Normalisation: one invoice entity, tenant `default` (the gateway's payload names no
//! merchant or store: a gateway account, i.e. a secret, belongs to one deployment), version =
//! body `timestamp`, state = `data.state`, transition `previousState → state` checked by the
//! invoice state machine ([`Lifecycle::Invoice`]) in the store rules. Unlike the other
//! providers, another `event` is 400 (the gateway's own examples answer it so, ARCHITECTURE §7).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::warn;

use super::guard::{credential_header, Credential, Guard};
use super::{id_of, opt_string, parse_object, required_str, take_object, Normalised, Provider};
use crate::config::{resolve_credentials, ConfigError, Credentials, Env, Mode};
use crate::error::IngestError;
use crate::http::{RawRequest, ResponseStyle};
use crate::lifecycle::Lifecycle;
use crate::model::{
    body_event_id, EntityKey, EntityKind, EntityUpdate, NormalisedEvent, Recognition, SameState,
    Source, Tenant, TransitionRule,
};
use crate::verify::BodyDigest;
use crate::version::Version;

pub const SECRETS_VAR: &str = crate::config::vars::INVOICE_SECRETS.name;
pub const HEADER_VAR: &str = crate::config::vars::INVOICE_SIGNATURE_HEADER.name;
#[cfg(test)]
pub(crate) const TOLERANCE_VAR: &str = crate::config::vars::INVOICE_TOLERANCE_SECS.name;
pub(crate) const DEFAULT_HEADER: &str = "X-Signature";
/// Replay window of a Lambda when `INVOICE_TOLERANCE_SECS` is not set.
pub(crate) const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Local-mode secret the events/ samples are signed with (README).
pub const DEV_SECRET: &str = "dev-invoice-secret";
/// The only event the gateway sends to this endpoint.
pub(crate) const EVENT: &str = "invoice.updated";
/// How much of an unexpected event name is echoed in the error (it is caller-controlled).
const MAX_ECHO: usize = 64;

#[derive(Debug, Clone)]
pub struct Invoice {
    guard: Guard,
    tolerance_secs: u64,
}

impl Invoice {
    /// `header`: the signature header's name (case-insensitive); `tolerance_secs`: the
    /// replay window, 0 = off.
    pub fn new(credentials: Credentials, header: impl Into<String>, tolerance_secs: u64) -> Self {
        Invoice {
            guard: Guard::new(
                credentials,
                Credential::signature(header, BodyDigest::HmacSha256),
            ),
            tolerance_secs,
        }
    }

    /// The secrets fail closed like every source's credential; the header name is refused at
    /// start-up when it could never match or would be stored ([`credential_header`]).
    pub fn from_env(env: &Env, mode: Mode) -> Result<Self, ConfigError> {
        let header = credential_header(
            env,
            &crate::config::vars::INVOICE_SIGNATURE_HEADER,
            DEFAULT_HEADER,
        )?;
        let default_tolerance = match mode {
            Mode::Lambda => DEFAULT_TOLERANCE_SECS,
            Mode::Local => 0,
        };
        let tolerance_secs = env.u64_or(
            &crate::config::vars::INVOICE_TOLERANCE_SECS,
            default_tolerance,
        )?;
        if tolerance_secs == 0 && mode == Mode::Lambda {
            warn!(
                source = "invoice",
                var = crate::config::vars::INVOICE_TOLERANCE_SECS.name,
                "replay window disabled: a captured signed request can be replayed at any time"
            );
        }
        let credentials = resolve_credentials(env, mode, Source::Invoice, DEV_SECRET)?;
        Ok(Self::new(credentials, header, tolerance_secs))
    }

    /// The replay window in seconds (0 = off).
    pub fn tolerance_secs(&self) -> u64 {
        self.tolerance_secs
    }

    /// The signature header value for `body` under `secret` (tests and samples).
    pub fn sign(body: &[u8], secret: &str) -> String {
        BodyDigest::HmacSha256.sign_hex(body, secret)
    }

    /// Parses the body and checks it against the replay window before anything else is read,
    /// so a replayed body is refused as such (401) whatever else is wrong with it. Returns
    /// the body and its `timestamp`.
    fn parse_in_window(
        &self,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(Map<String, Value>, Option<Version>), IngestError> {
        let body = parse_object(body)?;
        let sent_at = body.get("timestamp").and_then(Version::from_json);
        self.check_window(sent_at, now)?;
        Ok((body, sent_at))
    }

    /// Rejects a body whose `timestamp` is further than the tolerance from `now`, either
    /// way: a replayed capture is old, and a far-future one would stay replayable for long.
    /// With the window on, a body without a readable timestamp cannot be checked: 400.
    fn check_window(
        &self,
        sent_at: Option<Version>,
        now: OffsetDateTime,
    ) -> Result<(), IngestError> {
        if self.tolerance_secs == 0 {
            return Ok(());
        }
        let sent_at = sent_at.ok_or_else(|| IngestError::invalid_field("timestamp"))?;
        let skew =
            (i128::from(Version::from_datetime(now).micros()) - i128::from(sent_at.micros())).abs();
        if skew > i128::from(self.tolerance_secs) * 1_000_000 {
            Err(IngestError::Replay(self.tolerance_secs))
        } else {
            Ok(())
        }
    }
}

impl Provider for Invoice {
    fn source(&self) -> Source {
        Source::Invoice
    }

    fn response_style(&self) -> ResponseStyle {
        ResponseStyle::Plain
    }

    fn guard(&self) -> &Guard {
        &self.guard
    }

    fn normalise(&self, req: &RawRequest, now: OffsetDateTime) -> Normalised {
        let (mut body, sent_at) = self.parse_in_window(&req.body, now)?;
        let event = required_str(&body, "event", "event")?.trim().to_string();
        if event != EVENT {
            return Err(IngestError::UnsupportedEvent(
                event.chars().take(MAX_ECHO).collect(),
            ));
        }
        let data = take_object(&mut body, "data", "data")?;
        let update = invoice_update(data, sent_at.unwrap_or_else(|| Version::from_datetime(now)))?;
        Ok(NormalisedEvent {
            recognition: Recognition::Known,
            source: Source::Invoice,
            event_id: body_event_id(&req.body),
            event_type: EVENT.to_string(),
            provider_event: event,
            tenant: Tenant::default_tenant(),
            entities: vec![update],
        })
    }
}

/// The invoice of one event. `previousState` makes the event declare its transition (a
/// late one is still a fact of the history); without it a change can only be seen against
/// the stored state.
fn invoice_update(data: Map<String, Value>, version: Version) -> Result<EntityUpdate, IngestError> {
    let id =
        id_of(data.get("invoiceId")).ok_or_else(|| IngestError::invalid_field("data.invoiceId"))?;
    let state = required_str(&data, "state", "data.state")?
        .trim()
        .to_string();
    // An invoice declaring the state it is in is recorded as declared (the lifecycle
    // then judges the edge).
    let previous = opt_string(&data, "previousState");
    let transition = TransitionRule::from_previous(previous, Some(&state), SameState::Record);
    Ok(EntityUpdate {
        key: EntityKey::new(
            Source::Invoice,
            Tenant::default_tenant(),
            EntityKind::Invoice,
            id,
        ),
        version,
        state: Some(state),
        data: Value::Object(data),
        transition,
        lifecycle: Lifecycle::Invoice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::SecretSet;
    use serde_json::json;
    use time::macros::datetime;

    const PATH: &str = "/callback/update-invoice";
    /// Every fixture with the edge it is the sample of.
    const FIXTURES: [(&str, &str, &str, &str); 7] = [
        (
            include_str!("../../fixtures/invoice/ready_pending.json"),
            "Ready",
            "Pending",
            "2025-09-05T10:44:52.516Z",
        ),
        (
            include_str!("../../fixtures/invoice/pending_complete.json"),
            "Pending",
            "Complete",
            "2025-09-05T10:45:00.000Z",
        ),
        (
            include_str!("../../fixtures/invoice/pending_fail.json"),
            "Pending",
            "Fail",
            "2025-09-05T10:50:00.000Z",
        ),
        (
            include_str!("../../fixtures/invoice/ready_cancel.json"),
            "Ready",
            "Cancel",
            "2025-09-05T11:00:00.000Z",
        ),
        (
            include_str!("../../fixtures/invoice/ready_wait.json"),
            "Ready",
            "Wait",
            "2025-09-05T11:02:10.000Z",
        ),
        (
            include_str!("../../fixtures/invoice/wait_reject.json"),
            "Wait",
            "Reject",
            "2025-09-05T11:15:00.000Z",
        ),
        (
            include_str!("../../fixtures/invoice/wait_pending.json"),
            "Wait",
            "Pending",
            "2025-09-05T11:31:40.250Z",
        ),
    ];
    const COMPLETE: &str = FIXTURES[1].0;
    /// The timestamp of COMPLETE.
    const SENT: OffsetDateTime = datetime!(2025-09-05 10:45:00 UTC);

    fn provider(tolerance_secs: u64) -> Invoice {
        Invoice::new(
            Credentials::Verified(crate::config::Keys::any(SecretSet::parse(
                "old-secret,s3cret",
            ))),
            DEFAULT_HEADER,
            tolerance_secs,
        )
    }

    fn signed(body: &str, secret: &str) -> RawRequest {
        RawRequest::post(PATH, body)
            .with_header("X-Signature", &Invoice::sign(body.as_bytes(), secret))
    }

    fn normalise(
        p: &Invoice,
        body: &str,
        now: OffsetDateTime,
    ) -> Result<NormalisedEvent, IngestError> {
        p.normalise(&signed(body, "s3cret"), now)
    }

    fn invoice(patch: Value) -> String {
        let mut body: Value = serde_json::from_str(COMPLETE).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            let target = match k.strip_prefix("data.") {
                Some(field) => &mut body["data"][field],
                None => &mut body[k.as_str()],
            };
            *target = v.clone();
        }
        body.to_string()
    }

    fn remove(field: &str) -> String {
        let mut body: Value = serde_json::from_str(COMPLETE).unwrap();
        match field.strip_prefix("data.") {
            Some(f) => body["data"].as_object_mut().unwrap().remove(f),
            None => body.as_object_mut().unwrap().remove(field),
        };
        body.to_string()
    }

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // Independent vector: python3 hmac.new(b"dev-invoice-secret", b"{}", sha256).
        assert_eq!(
            Invoice::sign(b"{}", DEV_SECRET),
            "ea02e9082da4bb8ec6c20f4ea506e4a7be1b89b1ecd5f89205bb104732ce512f"
        );
    }

    #[test]
    fn every_fixture_normalises_to_its_edge() {
        let p = provider(DEFAULT_TOLERANCE_SECS);
        for (body, from, to, ts) in FIXTURES {
            let sent = Version::parse(ts).unwrap();
            let now = OffsetDateTime::from_unix_timestamp(sent.micros() / 1_000_000).unwrap();
            let e = normalise(&p, body, now).unwrap();
            assert_eq!(e.source, Source::Invoice);
            assert_eq!(e.event_type, "invoice.updated");
            assert_eq!(e.provider_event, "invoice.updated");
            assert_eq!(e.event_id, body_event_id(body.as_bytes()));
            assert_eq!(e.tenant.as_str(), "default");
            assert_eq!(e.entities.len(), 1);
            let u = &e.entities[0];
            let raw: Value = serde_json::from_str(body).unwrap();
            assert_eq!(u.key.kind, EntityKind::Invoice);
            assert_eq!(u.key.id, raw["data"]["invoiceId"].as_str().unwrap());
            assert_eq!(u.key.tenant.as_str(), "default");
            assert_eq!(u.version, sent, "{ts}");
            assert_eq!(u.state.as_deref(), Some(to));
            assert_eq!(
                u.transition,
                TransitionRule::Declared {
                    from: from.into(),
                    to: to.into()
                }
            );
            assert_eq!(u.lifecycle, Lifecycle::Invoice);
            assert!(Lifecycle::Invoice.allows(from, to), "{from} -> {to}");
            assert_eq!(u.data, raw["data"]);
        }
    }

    #[test]
    fn the_fixtures_cover_every_edge_of_the_machine() {
        let edges: Vec<(&str, &str)> = FIXTURES.iter().map(|(_, f, t, _)| (*f, *t)).collect();
        for from in crate::lifecycle::INVOICE_STATES {
            for to in crate::lifecycle::INVOICE_STATES {
                if Lifecycle::Invoice.allows(from, to) {
                    assert!(edges.contains(&(from, to)), "no sample for {from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn accepts_any_configured_secret_and_hex_form() {
        let p = provider(0);
        assert!(p.verify(&signed(COMPLETE, "s3cret")).is_ok());
        assert!(p.verify(&signed(COMPLETE, "old-secret")).is_ok());
        let sig = Invoice::sign(COMPLETE.as_bytes(), "s3cret");
        for presented in [sig.to_uppercase(), format!("sha256={sig}")] {
            let req = RawRequest::post(PATH, COMPLETE).with_header("x-signature", &presented);
            assert!(p.verify(&req).is_ok(), "{presented}");
        }
    }

    #[test]
    fn wrong_secret_tampered_body_or_missing_signature_is_401() {
        let p = provider(0);
        let err = p.verify(&signed(COMPLETE, "wrong")).unwrap_err();
        assert!(matches!(err, IngestError::BadCredential(_)));
        assert_eq!(err.status(), 401);

        let mut tampered = signed(COMPLETE, "s3cret");
        tampered.body = COMPLETE.replace("\"Complete\"", "\"Fail\"").into_bytes();
        assert_ne!(tampered.body, COMPLETE.as_bytes());
        assert!(matches!(
            p.verify(&tampered),
            Err(IngestError::BadCredential(_))
        ));
        // re-serialised JSON is not the signed bytes either
        let mut reformatted = signed(COMPLETE, "s3cret");
        reformatted.body = serde_json::from_str::<Value>(COMPLETE)
            .unwrap()
            .to_string()
            .into_bytes();
        assert!(matches!(
            p.verify(&reformatted),
            Err(IngestError::BadCredential(_))
        ));

        let bad_hex = RawRequest::post(PATH, COMPLETE).with_header("X-Signature", "not-hex");
        assert!(matches!(
            p.verify(&bad_hex),
            Err(IngestError::BadCredential(_))
        ));
        let err = p.verify(&RawRequest::post(PATH, COMPLETE)).unwrap_err();
        assert!(matches!(err, IngestError::MissingCredential(_)));
        assert!(err.to_string().contains("X-Signature"));
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn signature_header_name_is_configurable() {
        let env = Env::from_pairs([(SECRETS_VAR, "a,b"), (HEADER_VAR, "X-Gateway-Signature")]);
        let p = Invoice::from_env(&env, Mode::Lambda).unwrap();
        let sig = Invoice::sign(COMPLETE.as_bytes(), "b");
        let req = RawRequest::post(PATH, COMPLETE).with_header("x-gateway-signature", &sig);
        assert!(p.verify(&req).is_ok());
        let req = RawRequest::post(PATH, COMPLETE).with_header("X-Signature", &sig);
        assert!(matches!(
            p.verify(&req),
            Err(IngestError::MissingCredential(_))
        ));
        let env = Env::from_pairs([(SECRETS_VAR, "a"), (HEADER_VAR, "bad header")]);
        assert!(Invoice::from_env(&env, Mode::Lambda).is_err());
    }

    #[test]
    fn rotation_accepts_old_and_new_secret_until_the_old_is_removed() {
        let both =
            Invoice::from_env(&Env::from_pairs([(SECRETS_VAR, "old, new")]), Mode::Lambda).unwrap();
        let new_only =
            Invoice::from_env(&Env::from_pairs([(SECRETS_VAR, "new")]), Mode::Lambda).unwrap();
        assert!(both.verify(&signed(COMPLETE, "old")).is_ok());
        assert!(both.verify(&signed(COMPLETE, "new")).is_ok());
        assert!(new_only.verify(&signed(COMPLETE, "old")).is_err());
        assert!(new_only.verify(&signed(COMPLETE, "new")).is_ok());
    }

    #[test]
    fn replay_window_is_inclusive_both_ways() {
        let p = provider(300);
        let secs = time::Duration::seconds;
        for now in [SENT, SENT + secs(300), SENT - secs(300), SENT + secs(1)] {
            assert!(normalise(&p, COMPLETE, now).is_ok(), "{now}");
        }
        for now in [
            SENT + secs(301),
            SENT - secs(301),
            SENT + time::Duration::days(365),
        ] {
            let err = normalise(&p, COMPLETE, now).unwrap_err();
            assert!(matches!(err, IngestError::Replay(300)), "{now}: {err}");
            assert_eq!(err.status(), 401);
        }
        // sub-second precision counts: 300.001 s is outside
        let err = normalise(&p, COMPLETE, SENT + time::Duration::milliseconds(300_001));
        assert!(matches!(err, Err(IngestError::Replay(_))));
    }

    #[test]
    fn tolerance_zero_turns_the_window_off() {
        let p = provider(0);
        let years_later = SENT + time::Duration::days(3 * 365);
        let e = normalise(&p, COMPLETE, years_later).unwrap();
        assert_eq!(e.entities[0].version, Version::from_datetime(SENT));
        // without a timestamp the event is versioned at its receive time
        let e = normalise(&p, &remove("timestamp"), years_later).unwrap();
        assert_eq!(e.entities[0].version, Version::from_datetime(years_later));
    }

    #[test]
    fn with_the_window_on_a_missing_or_unreadable_timestamp_is_400() {
        let p = provider(300);
        for body in [
            remove("timestamp"),
            invoice(json!({"timestamp": "yesterday"})),
            invoice(json!({"timestamp": null})),
            invoice(json!({"timestamp": {"at": "2025-09-05T10:45:00Z"}})),
        ] {
            let err = normalise(&p, &body, SENT).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().contains("`timestamp`"), "{err}");
        }
        // a unix timestamp is a readable one
        let body = invoice(json!({"timestamp": SENT.unix_timestamp()}));
        assert!(normalise(&p, &body, SENT).is_ok());
    }

    #[test]
    fn mode_decides_the_default_window() {
        let secrets = [(SECRETS_VAR, "s")];
        assert_eq!(
            Invoice::from_env(&Env::from_pairs(secrets), Mode::Lambda)
                .unwrap()
                .tolerance_secs(),
            DEFAULT_TOLERANCE_SECS
        );
        assert_eq!(
            Invoice::from_env(&Env::default(), Mode::Local)
                .unwrap()
                .tolerance_secs(),
            0
        );
        let env = Env::from_pairs([(SECRETS_VAR, "s"), (TOLERANCE_VAR, "60")]);
        assert_eq!(
            Invoice::from_env(&env, Mode::Local)
                .unwrap()
                .tolerance_secs(),
            60
        );
        let env = Env::from_pairs([(SECRETS_VAR, "s"), (TOLERANCE_VAR, "-1")]);
        assert!(Invoice::from_env(&env, Mode::Lambda)
            .unwrap_err()
            .to_string()
            .contains(TOLERANCE_VAR));
    }

    #[test]
    fn config_fails_closed_and_local_mode_uses_the_dev_secret() {
        let err = Invoice::from_env(&Env::default(), Mode::Lambda).unwrap_err();
        assert!(err.to_string().contains(SECRETS_VAR));
        let local = Invoice::from_env(&Env::default(), Mode::Local).unwrap();
        assert!(local.verify(&signed(COMPLETE, DEV_SECRET)).is_ok());
        assert!(local.verify(&signed(COMPLETE, "s3cret")).is_err());
    }

    #[test]
    fn another_event_is_400() {
        let p = provider(0);
        for event in ["invoice.created", "INVOICE.UPDATED", "transaction.updated"] {
            let err = normalise(&p, &invoice(json!({ "event": event })), SENT).unwrap_err();
            assert!(matches!(err, IngestError::UnsupportedEvent(_)), "{event}");
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(event));
        }
        let long = "x".repeat(10_000);
        let err = normalise(&p, &invoice(json!({ "event": long })), SENT).unwrap_err();
        assert!(err.to_string().len() < 200);
    }

    #[test]
    fn missing_or_mistyped_fields_are_400_naming_the_field() {
        let p = provider(0);
        let cases = [
            ("{}".to_string(), "`event`"),
            (remove("event"), "`event`"),
            (invoice(json!({"event": 7})), "`event`"),
            (invoice(json!({"event": " "})), "`event`"),
            (remove("data"), "`data`"),
            (invoice(json!({"data": []})), "`data`"),
            (invoice(json!({"data": "{}"})), "`data`"),
            (invoice(json!({"data": {}})), "`data.invoiceId`"),
            (remove("data.invoiceId"), "`data.invoiceId`"),
            (
                invoice(json!({"data.invoiceId": {"id": 1}})),
                "`data.invoiceId`",
            ),
            (invoice(json!({"data.invoiceId": ""})), "`data.invoiceId`"),
            (
                invoice(json!({"data.invoiceId": "i".repeat(300)})),
                "`data.invoiceId`",
            ),
            (remove("data.state"), "`data.state`"),
            (invoice(json!({"data.state": 3})), "`data.state`"),
            (invoice(json!({"data.state": null})), "`data.state`"),
            ("[]".to_string(), "JSON object"),
            ("{\"event\":".to_string(), "JSON"),
            (
                format!(
                    "{{\"data\":{}{}}}",
                    "{\"a\":".repeat(5_000),
                    "}".repeat(5_000)
                ),
                "recursion",
            ),
        ];
        for (body, needle) in cases {
            let err = normalise(&p, &body, SENT).unwrap_err();
            assert_eq!(err.status(), 400, "{body:.80}");
            assert!(
                err.to_string().contains(needle),
                "{err} should name {needle}"
            );
        }
    }

    #[test]
    fn lenient_where_the_meaning_is_clear() {
        let p = provider(0);
        // a numeric invoice id is the same id as its string form
        let e = normalise(&p, &invoice(json!({"data.invoiceId": 42})), SENT).unwrap();
        assert_eq!(e.entities[0].key.id, "42");
        // no previousState: the change is judged against the stored state
        let e = normalise(&p, &remove("data.previousState"), SENT).unwrap();
        assert_eq!(e.entities[0].transition, TransitionRule::FromStored);
        // a state outside the machine is kept: the store flags it instead of losing it
        let e = normalise(&p, &invoice(json!({"data.state": "Refunded"})), SENT).unwrap();
        assert_eq!(e.entities[0].state.as_deref(), Some("Refunded"));
        // extra nesting in data is kept as sent
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        let e = normalise(&p, &invoice(json!({"data.extra": deep})), SENT).unwrap();
        assert!(e.entities[0].data["extra"][0][0].is_array());
    }

    #[test]
    fn a_previous_state_equal_to_the_state_is_declared() {
        let body = invoice(json!({"data.previousState": "Complete"}));
        let e = normalise(&provider(0), &body, SENT).unwrap();
        assert_eq!(
            e.entities[0].transition,
            TransitionRule::Declared {
                from: "Complete".into(),
                to: "Complete".into()
            }
        );
    }

    #[test]
    fn unverified_mode_accepts_unsigned() {
        let p = Invoice::new(Credentials::Unverified, DEFAULT_HEADER, 300);
        assert!(p.verify(&RawRequest::post(PATH, COMPLETE)).is_ok());
    }
}
