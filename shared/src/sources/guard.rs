//! What every provider does the same way with its credential (ARCHITECTURE §3): the one
//! reader of a configurable credential header name, and the one shape of `verify`. A
//! provider builds a [`Guard`] at start-up from its resolved credentials
//! (`config::resolve_credentials`) and the [`Credential`] it expects, and hands it out as
//! [`Provider::guard`](super::Provider::guard); [`Provider::verify`](super::Provider::verify)
//! is then the same for all: extract what the request presents, compare it in constant time
//! through [`crate::verify`]. A missing credential is `MissingCredential` naming where it was
//! expected, a wrong one `BadCredential`, for every provider.

use std::collections::BTreeSet;
use std::fmt;

use crate::config::{ConfigError, Credentials, Env, Keys, Var};
use crate::credentials::{KeyHash, Material, StoredCredential};
use crate::error::IngestError;
use crate::http::{RawRequest, KEPT_HEADERS};
use crate::model::Tenant;
use crate::verify::{ct_eq, presented_digest, presented_keys, BodyDigest, Secret, SecretSet};

/// Reads the name of a configurable credential header: `var`, else `default`, trimmed and
/// kept as written (requests are matched case-insensitively; messages show it as
/// configured). Refused at start-up, naming `var`, when it is not an HTTP header name (it
/// could never match, so every delivery would be 401), or when it is one of the headers the
/// event log keeps ([`KEPT_HEADERS`], any case): the credential would be stored with every
/// event.
pub fn credential_header(
    env: &Env,
    var: &'static Var,
    default: &str,
) -> Result<String, ConfigError> {
    let name = env.get_or(var, default);
    let refuse = |reason| {
        Err(ConfigError::Invalid {
            var: var.name,
            reason,
        })
    };
    if !is_header_name(name) {
        return refuse(format!("{name:?} is not a valid HTTP header name"));
    }
    if KEPT_HEADERS
        .iter()
        .any(|kept| kept.eq_ignore_ascii_case(name))
    {
        return refuse(format!(
            "{name} is stored with every event; a credential must not be"
        ));
    }
    Ok(name.to_string())
}

/// An RFC 9110 token: the characters a header name may have.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Where a request may present a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A header, named as configured (matched case-insensitively).
    Header(String),
    /// A query parameter.
    Query(&'static str),
}

impl Place {
    fn read<'r>(&self, req: &'r RawRequest) -> Option<&'r str> {
        match self {
            Place::Header(name) => req.header(name),
            Place::Query(name) => req.query_param(name),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Header(name) => write!(f, "header {name}"),
            Place::Query(name) => write!(f, "query parameter {name}"),
        }
    }
}

/// What a request must present, and how it is compared with the configured secrets.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A static key or token in any of `places`: every presented value meets every secret.
    /// `expected` describes the places for the 401 message; `mismatch` is that message when a
    /// value is presented but matches no secret.
    StaticKey {
        places: Vec<Place>,
        expected: String,
        mismatch: &'static str,
    },
    /// A hex digest of the raw body in `header` (optional `sha256=` prefix, either case).
    /// `tenant_of` reads the tenant a body claims, so the credential table is asked for that
    /// tenant's secrets only (a signature cannot be looked up by itself).
    Signature {
        header: String,
        digest: BodyDigest,
        tenant_of: fn(&[u8]) -> Tenant,
    },
}

/// What a request presented, extracted once and compared with each secret in constant time.
enum Presented<'r> {
    Keys(Vec<&'r str>),
    Digest {
        digest: BodyDigest,
        body: &'r [u8],
        value: Vec<u8>,
    },
}

impl Presented<'_> {
    fn matches(&self, secret: &Secret) -> bool {
        match self {
            Presented::Keys(values) => values.iter().fold(false, |hit, value| {
                ct_eq(secret.expose().as_bytes(), value.as_bytes()) | hit
            }),
            Presented::Digest {
                digest,
                body,
                value,
            } => ct_eq(&digest.of(secret.expose().as_bytes(), body), value),
        }
    }
}

impl Credential {
    pub fn static_key(places: Vec<Place>, mismatch: &'static str) -> Self {
        Credential::StaticKey {
            expected: describe(&places),
            places,
            mismatch,
        }
    }

    /// A signature whose body names no tenant: every event is the `default` tenant's.
    pub fn signature(header: impl Into<String>, digest: BodyDigest) -> Self {
        Self::signature_of(header, digest, |_| Tenant::default_tenant())
    }

    pub(crate) fn signature_of(
        header: impl Into<String>,
        digest: BodyDigest,
        tenant_of: fn(&[u8]) -> Tenant,
    ) -> Self {
        Credential::Signature {
            header: header.into(),
            digest,
            tenant_of,
        }
    }

    /// What `req` presents: `MissingCredential` naming where it was expected, or
    /// `BadCredential` for a signature that is not hex.
    fn presented<'r>(&self, req: &'r RawRequest) -> Result<Presented<'r>, IngestError> {
        Ok(match self {
            Credential::StaticKey {
                places, expected, ..
            } => Presented::Keys(presented_keys(
                places.iter().filter_map(|place| place.read(req)),
                expected,
            )?),
            Credential::Signature { header, digest, .. } => Presented::Digest {
                digest: *digest,
                body: &req.body,
                value: presented_digest(req.header(header), header)?,
            },
        })
    }

    fn mismatch(&self) -> IngestError {
        IngestError::BadCredential(match self {
            Credential::StaticKey { mismatch, .. } => mismatch,
            Credential::Signature { .. } => "signature does not match",
        })
    }

    /// Checks `req` against `keys`, trying every secret: a plain one admits any tenant, a
    /// bound one the tenants it is bound to.
    pub fn check(&self, req: &RawRequest, keys: &Keys) -> Result<Admission, IngestError> {
        let presented = self.presented(req)?;
        if keys.any.any(|secret| presented.matches(secret)) {
            return Ok(Admission::AnyTenant);
        }
        let tenants = keys.bound.tenants_where(|secret| presented.matches(secret));
        if tenants.is_empty() {
            Err(self.mismatch())
        } else {
            Ok(Admission::Tenants(tenants))
        }
    }

    /// What to ask the credential table for, when the environment's keys refused `req`.
    fn probe(&self, req: &RawRequest) -> Option<Probe> {
        match (self, self.presented(req).ok()?) {
            (Credential::StaticKey { .. }, Presented::Keys(values)) => Some(Probe::Keys(
                values
                    .into_iter()
                    .map(|v| KeyHash::of(v.as_bytes()))
                    .collect(),
            )),
            (Credential::Signature { tenant_of, .. }, Presented::Digest { body, .. }) => {
                Some(Probe::Tenant(tenant_of(body)))
            }
            _ => None,
        }
    }
}

/// Which tenants a verified request may speak for: checked against the normalised event's
/// tenant, so a key bound to one shop never stores an event as another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A credential of the plain list (or none required): any tenant, as before binding.
    AnyTenant,
    /// A bound credential: these tenants only (never empty).
    Tenants(BTreeSet<Tenant>),
}

impl Admission {
    pub fn tenant(tenant: Tenant) -> Self {
        Admission::Tenants(BTreeSet::from([tenant]))
    }

    /// The tenant of a credential bound to exactly one: what a body naming no tenant
    /// belongs to (`sources::unnamed_tenant`).
    pub(crate) fn single_tenant(&self) -> Option<&Tenant> {
        match self {
            Admission::Tenants(tenants) if tenants.len() == 1 => tenants.first(),
            _ => None,
        }
    }

    pub fn admits(&self, tenant: &Tenant) -> bool {
        match self {
            Admission::AnyTenant => true,
            Admission::Tenants(tenants) => tenants.contains(tenant),
        }
    }

    /// `TenantNotBound` (403) when `tenant` is not one this admission covers.
    pub fn check(&self, tenant: &Tenant) -> Result<(), IngestError> {
        if self.admits(tenant) {
            Ok(())
        } else {
            Err(IngestError::TenantNotBound(tenant.to_string()))
        }
    }

    /// Both at once (a request passing two checks may speak only for what both admit).
    fn and(self, other: Admission) -> Admission {
        match (self, other) {
            (Admission::AnyTenant, other) | (other, Admission::AnyTenant) => other,
            (Admission::Tenants(a), Admission::Tenants(b)) => {
                Admission::Tenants(a.intersection(&b).cloned().collect())
            }
        }
    }
}

/// The credential-table lookup a request needs when the environment's keys did not admit
/// it: the hashes of the presented keys (the table holds only hashes of keys), or the
/// tenant whose signature secrets to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Keys(Vec<KeyHash>),
    Tenant(Tenant),
}

/// "header X-API-Key, header X-Webhook-Secret or query parameter api_key"; a place named
/// twice (header names in another case) is described once.
fn describe(places: &[Place]) -> String {
    let mut described: Vec<String> = Vec::new();
    for place in places.iter().map(Place::to_string) {
        if !described.iter().any(|d| d.eq_ignore_ascii_case(&place)) {
            described.push(place);
        }
    }
    let last = described.pop().unwrap_or_default();
    if described.is_empty() {
        last
    } else {
        format!("{} or {last}", described.join(", "))
    }
}

/// A provider's whole credential check, fixed at start-up: its credential with the keys it
/// is checked against (and looked up in the credential table when they refuse it), then any
/// optional extra checks, in order (the first failure answers).
#[derive(Debug, Clone)]
pub struct Guard {
    /// `None`: `ALLOW_UNVERIFIED` with nothing configured.
    primary: Option<(Keys, Credential)>,
    extras: Vec<(SecretSet, Credential)>,
}

impl Guard {
    /// Requires `credential` under the resolved `credentials`; `Unverified`
    /// (`ALLOW_UNVERIFIED`, nothing configured) checks nothing.
    pub fn new(credentials: Credentials, credential: Credential) -> Self {
        let primary = match credentials {
            Credentials::Verified(keys) => Some((keys, credential)),
            Credentials::Unverified => None,
        };
        Guard {
            primary,
            extras: Vec::new(),
        }
    }

    /// Also requires `credential` under `secrets` when any are configured: an optional check
    /// (Pancake's signature), enforced even when the first credential is waived. It binds
    /// no tenant.
    pub(crate) fn and_if_configured(mut self, secrets: SecretSet, credential: Credential) -> Self {
        if !secrets.is_empty() {
            self.extras.push((secrets, credential));
        }
        self
    }

    /// Every provider's `verify`, on the environment's keys alone.
    pub fn verify(&self, req: &RawRequest) -> Result<Admission, IngestError> {
        self.verify_with(req, None)
    }

    /// As [`verify`](Self::verify), with what the credential table admitted for the
    /// request's [`probe`](Self::probe): it stands in for the primary credential when the
    /// environment's keys found it wrong (never when it is missing).
    pub(crate) fn verify_with(
        &self,
        req: &RawRequest,
        stored: Option<Admission>,
    ) -> Result<Admission, IngestError> {
        let mut admission = match &self.primary {
            None => Admission::AnyTenant,
            Some((keys, credential)) => match (credential.check(req, keys), stored) {
                (Err(IngestError::BadCredential(_)), Some(stored)) => stored,
                (checked, _) => checked?,
            },
        };
        for (secrets, credential) in &self.extras {
            admission = admission.and(credential.check(req, &Keys::any(secrets.clone()))?);
        }
        Ok(admission)
    }

    /// The credential-table lookup for a request the environment's keys refused as wrong;
    /// `None` when there is nothing to look up (no credential required, or none presented).
    pub fn probe(&self, req: &RawRequest) -> Option<Probe> {
        let (_, credential) = self.primary.as_ref()?;
        credential.probe(req)
    }

    /// What stored `entries` (those of the probe, active at the time) admit for `req`: a
    /// key entry its tenant; a secret entry its tenant when the signature matches it.
    pub(crate) fn admit_stored(
        &self,
        req: &RawRequest,
        entries: &[StoredCredential],
    ) -> Option<Admission> {
        let (_, credential) = self.primary.as_ref()?;
        let presented = credential.presented(req).ok()?;
        let tenants: BTreeSet<Tenant> = entries
            .iter()
            .filter(|entry| match &entry.material {
                Material::KeyHash(hash) => match &presented {
                    Presented::Keys(values) => {
                        values.iter().any(|v| KeyHash::of(v.as_bytes()) == *hash)
                    }
                    Presented::Digest { .. } => false,
                },
                Material::Secret(secret) => {
                    matches!(presented, Presented::Digest { .. }) && presented.matches(secret)
                }
            })
            .map(|entry| entry.tenant.clone())
            .collect();
        (!tenants.is_empty()).then_some(Admission::Tenants(tenants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any configurable header variable: the reader is the same for all.
    const VAR: &Var = &crate::config::vars::ABAHA_TOKEN_HEADER;

    fn read(value: Option<&str>) -> Result<String, ConfigError> {
        let env = Env::from_pairs(value.map(|v| (VAR.name, v)));
        credential_header(&env, VAR, "X-Default-Secret")
    }

    fn token_in(header: &str) -> Credential {
        Credential::static_key(vec![Place::Header(header.into())], "no match")
    }

    #[test]
    fn a_guard_fails_closed_and_checks_in_order() {
        let req = RawRequest::post("/", "{}").with_header("x-token", "t1");
        let verified =
            |list: &str| Credentials::Verified(crate::config::Keys::any(SecretSet::parse(list)));
        assert!(Guard::new(verified("t1,t2"), token_in("X-Token"))
            .verify(&req)
            .is_ok());
        assert!(Guard::new(Credentials::Unverified, token_in("X-Other"))
            .verify(&req)
            .is_ok());
        // an empty set of secrets matches nothing: never an open door
        assert!(matches!(
            Guard::new(verified(""), token_in("X-Token")).verify(&req),
            Err(IngestError::BadCredential("no match"))
        ));
        // an optional check counts only when configured, and the first failure answers
        let signature = Credential::signature("X-Sig", BodyDigest::HmacSha256);
        let guard = Guard::new(verified("t1"), token_in("X-Token"));
        let optional = guard
            .clone()
            .and_if_configured(SecretSet::default(), signature.clone());
        assert!(optional.verify(&req).is_ok());
        let required = guard.and_if_configured(SecretSet::parse("s"), signature);
        let err = required.verify(&req).unwrap_err();
        assert_eq!(err.to_string(), "missing credential: header X-Sig");
        let signed = req.with_header("x-sig", &BodyDigest::HmacSha256.sign_hex(b"{}", "s"));
        assert!(required.verify(&signed).is_ok());
        let unkeyed = RawRequest::post("/", "{}").with_header("x-sig", "00");
        let err = required.verify(&unkeyed).unwrap_err();
        assert_eq!(err.to_string(), "missing credential: header X-Token");
    }

    #[test]
    fn places_are_described_once_each() {
        let places = vec![
            Place::Header("X-API-Key".into()),
            Place::Header("x-api-key".into()),
            Place::Header("X-Shop-Token".into()),
            Place::Query("api_key"),
        ];
        assert_eq!(
            describe(&places),
            "header X-API-Key, header X-Shop-Token or query parameter api_key"
        );
        assert_eq!(describe(&places[..1]), "header X-API-Key");
        assert_eq!(describe(&[]), "");
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("X-Webhook-Secret"));
        assert!(is_header_name("x_token.v2"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("a b"));
        assert!(!is_header_name("a\r\nb"));
    }

    #[test]
    fn the_configured_name_is_read_trimmed_else_the_default() {
        assert_eq!(read(None).unwrap(), "X-Default-Secret");
        assert_eq!(read(Some("  ")).unwrap(), "X-Default-Secret");
        assert_eq!(read(Some(" X-Shop-Token ")).unwrap(), "X-Shop-Token");
    }

    #[test]
    fn a_name_that_is_no_token_or_is_kept_is_refused_naming_the_variable() {
        for bad in ["X Shop", "X-Token:", "Tên", "a\tb"] {
            let err = read(Some(bad)).unwrap_err().to_string();
            assert!(
                err.contains(VAR.name) && err.contains("not a valid HTTP header name"),
                "{err}"
            );
        }
        for kept in KEPT_HEADERS {
            let err = read(Some(&kept.to_ascii_uppercase()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(VAR.name) && err.contains("stored with every event"),
                "{err}"
            );
        }
    }
}
