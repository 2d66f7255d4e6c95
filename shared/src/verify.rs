//! Credential checks shared by every provider. All comparisons are constant-time
//! (`subtle`), and every configured secret is tried so rotation can run two at once.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use subtle::ConstantTimeEq;

use crate::error::IngestError;
use crate::model::Tenant;

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
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
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

/// Secrets each bound to one tenant (a `*_BY_TENANT` variable): one that matches admits
/// its tenant's events only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundSecrets(Vec<(Tenant, SecretSet)>);

impl BoundSecrets {
    /// Parses `{"tenant": ["secret", …], …}`. The reason names what is wrong and never
    /// quotes a value: a tenant with no secret, a secret that is not a non-blank string,
    /// a secret containing a comma, anything that is not such an object. Only a tenant (an
    /// id, logged with every event anyway) is named.
    pub(crate) fn parse_json(value: &str) -> Result<Self, String> {
        let map = match serde_json::from_str(value).map_err(|e| not_json(&e))? {
            serde_json::Value::Object(map) => map,
            other => {
                return Err(format!(
                    "expected a JSON object of tenant to a list of secrets, got {}",
                    json_kind(&other)
                ))
            }
        };
        let mut bound = Vec::with_capacity(map.len());
        for (tenant, secrets) in map {
            let list = secrets
                .as_array()
                .filter(|list| !list.is_empty())
                .ok_or_else(|| {
                    format!("tenant {tenant:?}: expected a non-empty list of secrets")
                })?;
            let mut set = Vec::with_capacity(list.len());
            for secret in list {
                match secret.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() && !s.contains(',') => set.push(Secret::new(s)),
                    _ => {
                        return Err(format!(
                        "tenant {tenant:?}: every secret must be a non-blank string without commas"
                    ))
                    }
                }
            }
            bound.push((Tenant::new(tenant), SecretSet(set)));
        }
        Ok(BoundSecrets(bound))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tenants with a secret `check` accepts, trying every secret of every tenant.
    pub(crate) fn tenants_where(&self, mut check: impl FnMut(&Secret) -> bool) -> BTreeSet<Tenant> {
        self.0
            .iter()
            .filter(|(_, secrets)| secrets.any(&mut check))
            .map(|(tenant, _)| tenant.clone())
            .collect()
    }
}

/// Why a `_BY_TENANT` value is not JSON, by category and position only: serde's own message
/// can quote the input (`invalid type: string "key-a"`), and the input is secrets.
fn not_json(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "it ends early",
        Category::Syntax => "a syntax error",
        Category::Data | Category::Io => "an unreadable value",
    };
    format!(
        "expected a JSON object of tenant to a list of secrets: not valid JSON ({what} at line {}, column {})",
        e.line(),
        e.column()
    )
}

/// The kind of a JSON value, for messages that must not show the value itself.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Constant-time equality (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// sha256 of `body` followed by `secret` (the fulfilment scheme).
pub(crate) fn sha256_body_then_secret(body: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(body);
    h.update(secret);
    h.finalize().into()
}

/// Lowercase hex sha256 of `body` followed by `secret` (the fulfilment scheme).
#[cfg(test)]
pub(crate) fn sha256_body_then_secret_hex(body: &[u8], secret: &[u8]) -> String {
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

/// The digest a request presents in `header`, decoded (hex in either case, optional
/// `sha256=` prefix): `MissingCredential` naming the header when absent or blank,
/// `BadCredential` when it is not hex.
pub(crate) fn presented_digest(
    presented: Option<&str>,
    header: &str,
) -> Result<Vec<u8>, IngestError> {
    let presented = presented
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| IngestError::MissingCredential(format!("header {header}")))?;
    let presented = presented.strip_prefix("sha256=").unwrap_or(presented);
    hex::decode(presented.to_ascii_lowercase())
        .map_err(|_| IngestError::BadCredential("signature is not hex"))
}

/// The values a request presents for a static credential (API key, token), trimmed, blanks
/// dropped: `MissingCredential(expected)` when there are none. `expected` names where they
/// were looked for (never a value).
pub(crate) fn presented_keys<'a>(
    presented: impl IntoIterator<Item = &'a str>,
    expected: &str,
) -> Result<Vec<&'a str>, IngestError> {
    let values: Vec<&str> = presented
        .into_iter()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(IngestError::MissingCredential(expected.to_string()));
    }
    Ok(values)
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
    fn presented_keys_drop_blanks_and_name_the_places() {
        assert_eq!(presented_keys(["", " k2 "], "header X").unwrap(), ["k2"]);
        assert!(matches!(
            presented_keys([" "], "header X"),
            Err(IngestError::MissingCredential(m)) if m == "header X"
        ));
    }

    #[test]
    fn bound_secrets_parse_strictly_and_never_quote_a_value() {
        let bound = BoundSecrets::parse_json(r#"{"A":["k1"],"B#2":["k2","k3"]}"#).unwrap();
        let of = |key: &str| bound.tenants_where(|s| s.expose() == key);
        assert_eq!(
            of("k3").into_iter().collect::<Vec<_>>(),
            [Tenant::new("B_2")]
        );
        assert!(of("k4").is_empty());
        for bad in [
            r#"["k1"]"#,
            r#"{"A":"k1"}"#,
            r#"{"A":[]}"#,
            r#"{"A":["k1", 7]}"#,
            r#"{"A":["sec,ret"]}"#,
            r#"{"A":[" "]}"#,
            "{",
        ] {
            let reason = BoundSecrets::parse_json(bad).unwrap_err();
            assert!(
                !reason.contains("k1") && !reason.contains("sec,ret"),
                "{reason}"
            );
        }
    }

    /// The shapes serde would describe by quoting the input: a JSON string set as the whole
    /// variable, a bare word, an unterminated string, a list of strings.
    #[test]
    fn a_value_that_is_no_json_object_is_described_without_its_content() {
        let cases = [
            (r#""key-a-Hx73""#, "got a string"),
            (r#"  ["key-a-Hx73"]"#, "got an array"),
            ("key-a-Hx73", "a syntax error at line 1, column 1"),
            (r#"{"1001": ["key-a-Hx73"#, "it ends early at line 1"),
            (
                r#"{"1001": ["key-a-Hx73" "key-b"]}"#,
                "a syntax error at line 1",
            ),
            (
                "{\"1001\":\n [key-a-Hx73]}",
                "a syntax error at line 2, column 3",
            ),
            ("", "it ends early"),
        ];
        for (value, expected) in cases {
            let reason = BoundSecrets::parse_json(value).unwrap_err();
            assert!(!reason.contains("key-a-Hx73"), "{reason}");
            assert!(!reason.contains("Hx73"), "{reason}");
            assert!(reason.contains(expected), "{value}: {reason}");
            assert!(reason.starts_with("expected a JSON object"), "{reason}");
        }
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
    fn presented_digests_decode_either_case_and_prefix() {
        let sig = sha256_body_then_secret_hex(b"{}", b"k2");
        let digest = sha256_body_then_secret(b"{}", b"k2").to_vec();
        assert_eq!(presented_digest(Some(&sig), "X").unwrap(), digest);
        let upper = format!("sha256={}", sig.to_uppercase());
        assert_eq!(presented_digest(Some(&upper), "X").unwrap(), digest);
        assert!(matches!(
            presented_digest(None, "X"),
            Err(IngestError::MissingCredential(m)) if m == "header X"
        ));
        assert!(matches!(
            presented_digest(Some("zz"), "X"),
            Err(IngestError::BadCredential(_))
        ));
    }
}
