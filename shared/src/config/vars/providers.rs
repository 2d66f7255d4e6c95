//! The providers' credential variables and settings, and the credential table's: part of the
//! registry ([`super`]), kept apart so the registry's module stays readable.

use super::{Binaries, Binary, Var};
use crate::model::Source;

// ---- the providers' credentials and settings ---------------------------------------------

pub const PANCAKE_API_KEYS: Var = Var::new(
    "PANCAKE_API_KEYS",
    Binaries::serving(Source::Pancake),
    "comma-separated API keys (two at once while rotating)",
)
.secret();
pub const PANCAKE_API_KEYS_BY_TENANT: Var = Var::new(
    "PANCAKE_API_KEYS_BY_TENANT",
    Binaries::serving(Source::Pancake),
    "JSON {tenant: [key…]}: each admits only its tenant's events (403 otherwise)",
)
.secret();
pub const PANCAKE_SIGNING_SECRETS: Var = Var::new(
    "PANCAKE_SIGNING_SECRETS",
    Binaries::serving(Source::Pancake),
    "if set, X-Pancake-Signature = hex HMAC-SHA256(secret, body) is required too",
)
.secret();
pub const PANCAKE_POS_API_KEYS: Var = Var::new(
    "PANCAKE_POS_API_KEYS",
    Binaries::serving(Source::PancakePos),
    "comma-separated keys",
)
.secret();
pub const PANCAKE_POS_API_KEYS_BY_TENANT: Var = Var::new(
    "PANCAKE_POS_API_KEYS_BY_TENANT",
    Binaries::serving(Source::PancakePos),
    "JSON {tenant: [key…]}: each admits only its tenant's events (403 otherwise)",
)
.secret();
pub const PANCAKE_POS_KEY_HEADER: Var = Var::new(
    "PANCAKE_POS_KEY_HEADER",
    Binaries::serving(Source::PancakePos),
    "the custom header carrying the key",
)
.defaults_to("X-Webhook-Secret");
pub const ABAHA_TOKENS: Var = Var::new(
    "ABAHA_TOKENS",
    Binaries::serving(Source::Abaha),
    "comma-separated tokens",
)
.secret();
pub const ABAHA_TOKENS_BY_TENANT: Var = Var::new(
    "ABAHA_TOKENS_BY_TENANT",
    Binaries::serving(Source::Abaha),
    "JSON {tenant: [token…]}: each admits only its tenant's events (403 otherwise)",
)
.secret();
pub const ABAHA_TOKEN_HEADER: Var = Var::new(
    "ABAHA_TOKEN_HEADER",
    Binaries::serving(Source::Abaha),
    "the header carrying the token",
)
.defaults_to("X-Abaha-Token");
pub const FULFILMENT_SECRETS: Var = Var::new(
    "FULFILMENT_SECRETS",
    Binaries::serving(Source::Fulfilment),
    "comma-separated secrets",
)
.secret();
pub const FULFILMENT_SECRETS_BY_TENANT: Var = Var::new(
    "FULFILMENT_SECRETS_BY_TENANT",
    Binaries::serving(Source::Fulfilment),
    "JSON {tenant: [secret…]}: each admits only its tenant's events (403 otherwise)",
)
.secret();
pub const INVOICE_SECRETS: Var = Var::new(
    "INVOICE_SECRETS",
    Binaries::serving(Source::Invoice),
    "comma-separated HMAC secrets",
)
.secret();
pub const INVOICE_SECRETS_BY_TENANT: Var = Var::new(
    "INVOICE_SECRETS_BY_TENANT",
    Binaries::serving(Source::Invoice),
    "JSON {\"default\": [secret…]}: every invoice event is tenant default (the gateway names none), so only default's secrets admit it (403 otherwise)",
)
.secret();
pub const INVOICE_SIGNATURE_HEADER: Var = Var::new(
    "INVOICE_SIGNATURE_HEADER",
    Binaries::serving(Source::Invoice),
    "the signature header",
)
.defaults_to("X-Signature");
pub const INVOICE_TOLERANCE_SECS: Var = Var::new(
    "INVOICE_TOLERANCE_SECS",
    Binaries::serving(Source::Invoice),
    "replay window on the body timestamp, in seconds: 300 unless set in a Lambda, 0 (off) in webhooks-local",
);

// ---- their Secrets Manager references (ARCHITECTURE §3), each read by its source's Lambda --

pub(crate) const PANCAKE_API_KEYS_ARN: Var = Var::reference(
    "PANCAKE_API_KEYS_ARN",
    Binaries::of(Binary::Pancake),
    &PANCAKE_API_KEYS,
);
pub(crate) const PANCAKE_API_KEYS_BY_TENANT_ARN: Var = Var::reference(
    "PANCAKE_API_KEYS_BY_TENANT_ARN",
    Binaries::of(Binary::Pancake),
    &PANCAKE_API_KEYS_BY_TENANT,
);
pub(crate) const PANCAKE_SIGNING_SECRETS_ARN: Var = Var::reference(
    "PANCAKE_SIGNING_SECRETS_ARN",
    Binaries::of(Binary::Pancake),
    &PANCAKE_SIGNING_SECRETS,
);
pub(crate) const PANCAKE_POS_API_KEYS_ARN: Var = Var::reference(
    "PANCAKE_POS_API_KEYS_ARN",
    Binaries::of(Binary::PancakePos),
    &PANCAKE_POS_API_KEYS,
);
pub(crate) const PANCAKE_POS_API_KEYS_BY_TENANT_ARN: Var = Var::reference(
    "PANCAKE_POS_API_KEYS_BY_TENANT_ARN",
    Binaries::of(Binary::PancakePos),
    &PANCAKE_POS_API_KEYS_BY_TENANT,
);
pub(crate) const ABAHA_TOKENS_ARN: Var = Var::reference(
    "ABAHA_TOKENS_ARN",
    Binaries::of(Binary::Abaha),
    &ABAHA_TOKENS,
);
pub(crate) const ABAHA_TOKENS_BY_TENANT_ARN: Var = Var::reference(
    "ABAHA_TOKENS_BY_TENANT_ARN",
    Binaries::of(Binary::Abaha),
    &ABAHA_TOKENS_BY_TENANT,
);
pub const FULFILMENT_SECRETS_ARN: Var = Var::reference(
    "FULFILMENT_SECRETS_ARN",
    Binaries::of(Binary::Fulfilment),
    &FULFILMENT_SECRETS,
);
pub(crate) const FULFILMENT_SECRETS_BY_TENANT_ARN: Var = Var::reference(
    "FULFILMENT_SECRETS_BY_TENANT_ARN",
    Binaries::of(Binary::Fulfilment),
    &FULFILMENT_SECRETS_BY_TENANT,
);
pub(crate) const INVOICE_SECRETS_ARN: Var = Var::reference(
    "INVOICE_SECRETS_ARN",
    Binaries::of(Binary::Invoice),
    &INVOICE_SECRETS,
);
pub(crate) const INVOICE_SECRETS_BY_TENANT_ARN: Var = Var::reference(
    "INVOICE_SECRETS_BY_TENANT_ARN",
    Binaries::of(Binary::Invoice),
    &INVOICE_SECRETS_BY_TENANT,
);

// ---- the credential table ---------------------------------------------------------------

pub const CREDENTIALS_TABLE: Var = Var::new(
    "CREDENTIALS_TABLE",
    Binaries::SOURCES.with(Binary::Cli),
    "the DynamoDB credential table of tenant-bound keys (with the SQLite store: the file's own)",
)
.may_omit("the credential table; unset = credentials from the environment only");
pub const CREDENTIALS_CACHE_SECS: Var = Var::new(
    "CREDENTIALS_CACHE_SECS",
    Binaries::SOURCES,
    "seconds a credential lookup is cached: a revocation takes effect within it",
)
.defaults_to("60")
.may_omit("the credential cache's lifetime; the default (60 s) bounds how late a revocation acts");

/// A source's credential variable and its `_BY_TENANT` twin.
pub const fn credentials_of(source: Source) -> (&'static Var, &'static Var) {
    match source {
        Source::Pancake => (&PANCAKE_API_KEYS, &PANCAKE_API_KEYS_BY_TENANT),
        Source::PancakePos => (&PANCAKE_POS_API_KEYS, &PANCAKE_POS_API_KEYS_BY_TENANT),
        Source::Abaha => (&ABAHA_TOKENS, &ABAHA_TOKENS_BY_TENANT),
        Source::Fulfilment => (&FULFILMENT_SECRETS, &FULFILMENT_SECRETS_BY_TENANT),
        Source::Invoice => (&INVOICE_SECRETS, &INVOICE_SECRETS_BY_TENANT),
    }
}
