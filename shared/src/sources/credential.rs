//! What every provider does the same way with its credential (ARCHITECTURE §3): the one
//! reader of a configurable credential header name, and the one shape of `verify`. A
//! provider builds a [`Guard`] at start-up from its resolved credentials
//! (`config::resolve_credentials`) and the [`Credential`] it expects, and hands it out as
//! [`Provider::guard`](super::Provider::guard); [`Provider::verify`](super::Provider::verify)
//! is then the same for all: extract what the request presents, compare it in constant time
//! through [`crate::verify`]. A missing credential is `MissingCredential` naming where it was
//! expected, a wrong one `BadCredential`, for every provider.

use std::fmt;

use crate::config::{ConfigError, Credentials, Env, Var};
use crate::error::IngestError;
use crate::http::{RawRequest, KEPT_HEADERS};
use crate::verify::{check_hex_digest, check_static_key, BodyDigest, SecretSet};

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
    Signature { header: String, digest: BodyDigest },
}

impl Credential {
    pub fn static_key(places: Vec<Place>, mismatch: &'static str) -> Self {
        Credential::StaticKey {
            expected: describe(&places),
            places,
            mismatch,
        }
    }

    pub fn signature(header: impl Into<String>, digest: BodyDigest) -> Self {
        Credential::Signature {
            header: header.into(),
            digest,
        }
    }

    /// Extracts the presented credential from `req` and checks it against `secrets` in
    /// constant time, trying every secret.
    pub fn check(&self, req: &RawRequest, secrets: &SecretSet) -> Result<(), IngestError> {
        match self {
            Credential::StaticKey {
                places,
                expected,
                mismatch,
            } => {
                let presented = places.iter().filter_map(|place| place.read(req));
                check_static_key(presented, expected, secrets, mismatch)
            }
            Credential::Signature { header, digest } => {
                check_hex_digest(req.header(header), header, secrets, |secret| {
                    digest.of(secret.expose().as_bytes(), &req.body).to_vec()
                })
            }
        }
    }
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

/// A provider's whole credential check, fixed at start-up: each credential it requires with
/// the secrets it is checked against, in order (the first failure answers).
#[derive(Debug, Clone)]
pub struct Guard {
    checks: Vec<(SecretSet, Credential)>,
}

impl Guard {
    /// Requires `credential` under the resolved `credentials`; `Unverified`
    /// (`ALLOW_UNVERIFIED`, nothing configured) checks nothing.
    pub fn new(credentials: Credentials, credential: Credential) -> Self {
        let checks = match credentials {
            Credentials::Verified(secrets) => vec![(secrets, credential)],
            Credentials::Unverified => Vec::new(),
        };
        Guard { checks }
    }

    /// Also requires `credential` under `secrets` when any are configured: an optional check
    /// (Pancake's signature), enforced even when the first credential is waived.
    pub fn and_if_configured(mut self, secrets: SecretSet, credential: Credential) -> Self {
        if !secrets.is_empty() {
            self.checks.push((secrets, credential));
        }
        self
    }

    /// Every provider's `verify`.
    pub fn verify(&self, req: &RawRequest) -> Result<(), IngestError> {
        self.checks
            .iter()
            .try_for_each(|(secrets, credential)| credential.check(req, secrets))
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
        let verified = |list: &str| Credentials::Verified(SecretSet::parse(list));
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
