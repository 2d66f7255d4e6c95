//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), as any of its receiver
//! libraries verifies them:
//!
//! - `webhook-id`: the message id (here the transition id, stable across retries, so the
//!   receiver can deduplicate),
//! - `webhook-timestamp`: unix seconds of the attempt,
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one
//!   per key, space-separated,
//!
//! where the key is the base64-decoded part of a `whsec_<base64>` secret. `NOTIFY_SECRET`
//! may hold two secrets separated by a comma while rotating: every request then carries
//! both signatures and the receiver accepts whichever it knows.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use thiserror::Error;

use crate::verify::hmac_sha256;

pub(crate) const HEADER_ID: &str = "webhook-id";
pub(crate) const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub(crate) const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a Standard Webhooks secret.
pub(crate) const SECRET_PREFIX: &str = "whsec_";

/// Standard base64; secrets are accepted with or without padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret is not in `whsec_<base64>` form. The messages never contain the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SecretFormatError {
    #[error("no secret given")]
    Empty,
    #[error("expected `whsec_` followed by a base64 key")]
    MissingPrefix,
    #[error("the part after `whsec_` is not valid base64")]
    NotBase64,
    #[error(
        "the key after `whsec_` is {bytes} bytes; Standard Webhooks keys are {MIN_KEY_BYTES} \
         to {MAX_KEY_BYTES} bytes (base64 of e.g. `openssl rand 32`)"
    )]
    KeyLength { bytes: usize },
}

/// The key lengths the Standard Webhooks specification allows (192 to 512 bits).
pub(crate) const MIN_KEY_BYTES: usize = 24;
pub(crate) const MAX_KEY_BYTES: usize = 64;

/// One HMAC key. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// Parses `whsec_<base64>` with a key of 24 to 64 bytes.
    pub fn parse(secret: &str) -> Result<Self, SecretFormatError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretFormatError::MissingPrefix)?;
        let key = LENIENT_BASE64
            .decode(encoded)
            .map_err(|_| SecretFormatError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretFormatError::KeyLength { bytes: key.len() });
        }
        Ok(SigningKey(key))
    }

    #[cfg(test)]
    pub(crate) fn from_bytes(key: impl Into<Vec<u8>>) -> Self {
        SigningKey(key.into())
    }

    /// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut content = Vec::with_capacity(id.len() + body.len() + 24);
        content.extend_from_slice(id.as_bytes());
        content.push(b'.');
        content.extend_from_slice(timestamp.to_string().as_bytes());
        content.push(b'.');
        content.extend_from_slice(body);
        let mac = hmac_sha256(&self.0, &content);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        )
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The keys notifications are signed with: one, or two while rotating.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys(Vec<SigningKey>);

impl SigningKeys {
    /// Parses a comma-separated list of `whsec_` secrets (blanks ignored, at least one).
    pub fn parse(list: &str) -> Result<Self, SecretFormatError> {
        let keys = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(SigningKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        Ok(SigningKeys(keys))
    }

    pub fn single(key: SigningKey) -> Self {
        SigningKeys(vec![key])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `webhook-signature` header value: one `v1,` signature per key, space-separated.
    pub(crate) fn signature_header(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|k| k.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeys({} × ***)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_standard_webhooks_vector() {
        let key = SigningKey::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            key.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
        // Any change to id, timestamp or body changes the signature.
        assert_ne!(
            key.sign(SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
        assert_ne!(
            key.sign("msg_other", SPEC_TIMESTAMP, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn rotation_sends_one_signature_per_key() {
        let other = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";
        let keys = SigningKeys::parse(&format!("{SPEC_SECRET}, {other}")).unwrap();
        assert_eq!(keys.len(), 2);
        let header = keys.signature_header(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes());
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], SPEC_SIGNATURE);
        assert!(parts[1].starts_with("v1,") && parts[1] != SPEC_SIGNATURE);
    }

    #[test]
    fn padding_is_optional() {
        // A 25-byte key encodes with `==`; it is accepted with or without the padding.
        let padded = SigningKey::parse("whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNA==").unwrap();
        let unpadded = SigningKey::parse("whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNA").unwrap();
        assert_eq!(padded, unpadded);
        assert_eq!(
            padded,
            SigningKey::from_bytes(b"0123456789012345678901234".to_vec())
        );
    }

    #[test]
    fn malformed_secrets_are_rejected_without_echoing_them() {
        let cases = [
            ("", SecretFormatError::Empty),
            (" , ", SecretFormatError::Empty),
            ("hunter2-plain-secret", SecretFormatError::MissingPrefix),
            ("whsec_not base64!!", SecretFormatError::NotBase64),
            ("whsec_", SecretFormatError::KeyLength { bytes: 0 }),
            ("whsec_QQ==", SecretFormatError::KeyLength { bytes: 1 }),
        ];
        for (raw, expected) in cases {
            let err = SigningKeys::parse(raw).unwrap_err();
            assert_eq!(err, expected, "{raw:?}");
            let key_part = raw.trim().trim_start_matches(SECRET_PREFIX);
            if !key_part.is_empty() {
                assert!(!err.to_string().contains(key_part));
            }
        }
        // One bad secret in a rotation list fails the whole list.
        assert_eq!(
            SigningKeys::parse(&format!("{SPEC_SECRET},plain")).unwrap_err(),
            SecretFormatError::MissingPrefix
        );
    }

    #[test]
    fn keys_are_24_to_64_bytes() {
        use base64::engine::general_purpose::STANDARD;
        let of = |n: usize| format!("{SECRET_PREFIX}{}", STANDARD.encode(vec![7u8; n]));
        for n in [0, 1, 23, 65, 128] {
            assert_eq!(
                SigningKey::parse(&of(n)),
                Err(SecretFormatError::KeyLength { bytes: n }),
                "{n}"
            );
        }
        for n in [24, 32, 64] {
            assert!(SigningKey::parse(&of(n)).is_ok(), "{n}");
        }
        let err = SigningKeys::parse(&of(1)).unwrap_err().to_string();
        assert!(err.contains("24 to 64 bytes"), "{err}");
    }

    #[test]
    fn debug_never_prints_key_material() {
        let keys = SigningKeys::parse(SPEC_SECRET).unwrap();
        let shown = format!("{keys:?} {:?}", SigningKey::parse(SPEC_SECRET).unwrap());
        assert!(!shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(shown.contains("***"));
    }
}
