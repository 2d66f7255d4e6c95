//! Credential checks shared by every provider. All comparisons are constant-time
//! (`subtle`), and every configured secret is tried so rotation can run two at once.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

use crate::error::IngestError;

/// A configured secret. `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The secrets a source accepts (one or more, for rotation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretSet(Vec<Secret>);

impl SecretSet {
    /// Parses a comma-separated list; blanks are dropped.
    pub fn parse(list: &str) -> Self {
        SecretSet(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect(),
        )
    }
    pub fn from_secrets(secrets: Vec<Secret>) -> Self {
        SecretSet(secrets)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }
    pub fn exposed(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| s.expose())
    }

    /// True when `presented` equals one of the secrets (constant-time per comparison;
    /// every secret is compared, so timing does not reveal which one matched).
    pub fn contains(&self, presented: &[u8]) -> bool {
        self.any(|secret| ct_eq(secret.expose().as_bytes(), presented))
    }

    /// True when `check` accepts one of the secrets, trying all of them.
    pub fn any(&self, mut check: impl FnMut(&Secret) -> bool) -> bool {
        self.0
            .iter()
            .fold(false, |matched, secret| check(secret) | matched)
    }
}

/// Constant-time equality (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// sha256 of `body` followed by `secret` (the fulfilment scheme).
pub fn sha256_body_then_secret(body: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(body);
    h.update(secret);
    h.finalize().into()
}

/// Lowercase hex sha256 of `body` followed by `secret` (the fulfilment scheme).
pub fn sha256_body_then_secret_hex(body: &[u8], secret: &[u8]) -> String {
    hex::encode(sha256_body_then_secret(body, secret))
}

/// HMAC-SHA256 of `body` keyed with `secret`.
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// How a provider signs the raw body with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDigest {
    /// HMAC-SHA256(secret, body) (Pancake, invoice).
    HmacSha256,
    /// sha256(body ++ secret), a plain hash (fulfilment).
    Sha256BodyThenSecret,
}

impl BodyDigest {
    /// The digest `secret` yields over `body`.
    pub fn of(self, secret: &[u8], body: &[u8]) -> [u8; 32] {
        match self {
            BodyDigest::HmacSha256 => hmac_sha256(secret, body),
            BodyDigest::Sha256BodyThenSecret => sha256_body_then_secret(body, secret),
        }
    }

    /// The lowercase hex signature of `body` under `secret` (tests and samples).
    pub fn sign_hex(self, body: &[u8], secret: &str) -> String {
        hex::encode(self.of(secret.as_bytes(), body))
    }
}

/// Checks a presented hex digest (case-insensitive, optional `sha256=` prefix) against
/// the digest each secret yields; `MissingCredential` / `BadCredential` otherwise.
pub fn check_hex_digest(
    presented: Option<&str>,
    header: &str,
    secrets: &SecretSet,
    digest: impl Fn(&Secret) -> Vec<u8>,
) -> Result<(), IngestError> {
    let presented = presented
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| IngestError::MissingCredential(format!("header {header}")))?;
    let presented = presented.strip_prefix("sha256=").unwrap_or(presented);
    let Ok(presented) = hex::decode(presented.to_ascii_lowercase()) else {
        return Err(IngestError::BadCredential("signature is not hex"));
    };
    if secrets.any(|s| ct_eq(&digest(s), &presented)) {
        Ok(())
    } else {
        Err(IngestError::BadCredential("signature does not match"))
    }
}

/// Checks a static credential (API key, token) presented in one or more places: every
/// presented value is compared with every key in constant time. `expected` names where it
/// was looked for, for the 401 message (never the value).
pub fn check_static_key<'a>(
    presented: impl IntoIterator<Item = &'a str>,
    expected: &str,
    keys: &SecretSet,
    mismatch: &'static str,
) -> Result<(), IngestError> {
    let mut any = false;
    let mut matched = false;
    for value in presented
        .into_iter()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        any = true;
        matched |= keys.contains(value.as_bytes());
    }
    match (any, matched) {
        (false, _) => Err(IngestError::MissingCredential(expected.to_string())),
        (true, true) => Ok(()),
        (true, false) => Err(IngestError::BadCredential(mismatch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = SecretSet::parse("topsecret, other ,,");
        assert_eq!(s.iter().count(), 2);
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn contains_checks_every_secret() {
        let s = SecretSet::parse("old,new");
        assert!(s.contains(b"old"));
        assert!(s.contains(b"new"));
        assert!(!s.contains(b"ne"));
        assert!(!s.contains(b""));
        assert!(!SecretSet::default().contains(b""));
    }

    #[test]
    fn static_key_checks_every_presented_value() {
        let keys = SecretSet::parse("k1,k2");
        assert!(check_static_key(["", "k2"], "header X", &keys, "no").is_ok());
        assert!(check_static_key(["bad", "k1"], "header X", &keys, "no").is_ok());
        assert!(matches!(
            check_static_key([" "], "header X", &keys, "no"),
            Err(IngestError::MissingCredential(m)) if m == "header X"
        ));
        assert!(matches!(
            check_static_key(["k3"], "header X", &keys, "no"),
            Err(IngestError::BadCredential("no"))
        ));
    }

    #[test]
    fn hmac_known_vector() {
        // RFC 4231 test case 2
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_digest_check() {
        let secrets = SecretSet::parse("k1,k2");
        let body = b"{}";
        let sig = sha256_body_then_secret_hex(body, b"k2");
        let digest = |s: &Secret| {
            hex::decode(sha256_body_then_secret_hex(body, s.expose().as_bytes())).unwrap()
        };
        assert!(check_hex_digest(Some(&sig), "X", &secrets, digest).is_ok());
        assert!(check_hex_digest(Some(&sig.to_uppercase()), "X", &secrets, digest).is_ok());
        assert!(matches!(
            check_hex_digest(None, "X", &secrets, digest),
            Err(IngestError::MissingCredential(_))
        ));
        assert!(matches!(
            check_hex_digest(Some("zz"), "X", &secrets, digest),
            Err(IngestError::BadCredential(_))
        ));
        let other = sha256_body_then_secret_hex(b"{ }", b"k2");
        assert!(matches!(
            check_hex_digest(Some(&other), "X", &secrets, digest),
            Err(IngestError::BadCredential(_))
        ));
    }
}
