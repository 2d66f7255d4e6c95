//! Every environment variable the binaries read, declared once. The code reads through these
//! constants (`env.get(&vars::MAX_BODY_BYTES)`), and template.yaml, the README's
//! Configuration table and `webhooks-local --help` are tested against [`ALL`]: a variable
//! cannot be added, renamed or dropped in one of those places only.

use std::fmt;

use crate::model::Source;

/// A workspace binary that reads the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Binary {
    Pancake,
    PancakePos,
    Abaha,
    Fulfilment,
    Invoice,
    Notifier,
    /// The stream relay: transitions table stream → SQS FIFO queue.
    Relay,
    Local,
    /// `webhooks`, the operator CLI.
    Cli,
}

impl Binary {
    pub const ALL: [Binary; 9] = [
        Binary::Pancake,
        Binary::PancakePos,
        Binary::Abaha,
        Binary::Fulfilment,
        Binary::Invoice,
        Binary::Notifier,
        Binary::Relay,
        Binary::Local,
        Binary::Cli,
    ];

    /// As in the package's `[[bin]]` and template.yaml's `BuildProperties.Binary`.
    pub const fn name(self) -> &'static str {
        match self {
            Binary::Pancake => "pancake",
            Binary::PancakePos => "pancake-pos",
            Binary::Abaha => "abaha",
            Binary::Fulfilment => "fulfilment",
            Binary::Invoice => "invoice",
            Binary::Notifier => "notifier",
            Binary::Relay => "relay",
            Binary::Local => "webhooks-local",
            Binary::Cli => "webhooks",
        }
    }

    pub fn from_name(name: &str) -> Option<Binary> {
        Binary::ALL.into_iter().find(|b| b.name() == name)
    }

    /// One Lambda per source (ARCHITECTURE §2).
    pub const fn of_source(source: Source) -> Binary {
        match source {
            Source::Pancake => Binary::Pancake,
            Source::PancakePos => Binary::PancakePos,
            Source::Abaha => Binary::Abaha,
            Source::Fulfilment => Binary::Fulfilment,
            Source::Invoice => Binary::Invoice,
        }
    }

    /// The source an ingest Lambda serves; `None` for the notifier and for webhooks-local,
    /// which serves them all.
    pub const fn source(self) -> Option<Source> {
        match self {
            Binary::Pancake => Some(Source::Pancake),
            Binary::PancakePos => Some(Source::PancakePos),
            Binary::Abaha => Some(Source::Abaha),
            Binary::Fulfilment => Some(Source::Fulfilment),
            Binary::Invoice => Some(Source::Invoice),
            Binary::Notifier | Binary::Relay | Binary::Local | Binary::Cli => None,
        }
    }

    /// Deployed by template.yaml (webhooks-local and the CLI run on a workstation).
    pub const fn is_lambda(self) -> bool {
        !matches!(self, Binary::Local | Binary::Cli)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of binaries: a bitset, so a `const` declaration can say "every ingest Lambda and
/// webhooks-local" in one word.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Binaries(u16);

impl Binaries {
    pub const NONE: Binaries = Binaries(0);
    /// The five ingest Lambdas.
    pub const INGEST: Binaries = Binaries::of(Binary::Pancake)
        .with(Binary::PancakePos)
        .with(Binary::Abaha)
        .with(Binary::Fulfilment)
        .with(Binary::Invoice);
    /// Everything that serves the webhook routes: the ingest Lambdas and webhooks-local.
    pub const SOURCES: Binaries = Binaries::INGEST.with(Binary::Local);
    pub const LAMBDAS: Binaries = Binaries::INGEST.with(Binary::Notifier).with(Binary::Relay);
    /// Everything that delivers notifications: the notifier Lambda and webhooks-local's worker.
    pub(crate) const NOTIFIERS: Binaries = Binaries::of(Binary::Notifier).with(Binary::Local);
    /// Everything, the operator CLI included.
    pub const ALL: Binaries = Binaries::LAMBDAS.with(Binary::Local).with(Binary::Cli);
    /// Everything that opens the store: all but the relay, which only sends what the
    /// transitions table's stream carries.
    pub(crate) const STORES: Binaries = Binaries::INGEST
        .with(Binary::Notifier)
        .with(Binary::Local)
        .with(Binary::Cli);
    /// What opens a store by the `--store`/`--db` flags: webhooks-local and the CLI.
    pub(crate) const WORKSTATION: Binaries = Binaries::of(Binary::Local).with(Binary::Cli);

    pub const fn of(binary: Binary) -> Binaries {
        Binaries(binary.bit())
    }

    pub const fn with(self, binary: Binary) -> Binaries {
        Binaries(self.0 | binary.bit())
    }

    pub const fn union(self, other: Binaries) -> Binaries {
        Binaries(self.0 | other.0)
    }

    /// A source's own Lambda and webhooks-local, which serves every source, and the CLI,
    /// whose `reprocess` runs every provider's code.
    pub const fn serving(source: Source) -> Binaries {
        Binaries::of(Binary::of_source(source))
            .with(Binary::Local)
            .with(Binary::Cli)
    }

    pub const fn contains(self, binary: Binary) -> bool {
        self.0 & binary.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Binary> {
        Binary::ALL.into_iter().filter(move |b| self.contains(*b))
    }
}

impl fmt::Debug for Binaries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Binary::name))
            .finish()
    }
}

/// How template.yaml treats a variable on the functions whose binary reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InTemplate {
    /// Set on each of them (from a parameter or a resource): the deployment decides.
    Set,
    /// May be left unset, for the reason given.
    MayOmit(&'static str),
    /// Never set, for the reason given.
    Never(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    pub binaries: Binaries,
    /// What unset means, as documented. The code reading the variable keeps its own typed
    /// default (a test holds the two together); one that depends on the mode is `None` and
    /// told in the doc, so `webhooks-local --help` never shows the Lambda's.
    pub default: Option<&'static str>,
    /// Credential material: template.yaml passes it only through a `NoEcho` parameter.
    pub secret: bool,
    /// One line, for `--help` and the README.
    pub doc: &'static str,
    pub template: InTemplate,
    /// For a Secrets Manager reference (`FULFILMENT_SECRETS_ARN`): the credential variable
    /// whose value the secret holds, in the same format (ARCHITECTURE §3, "Secrets Manager").
    pub holds: Option<&'static Var>,
}

impl Var {
    const fn new(name: &'static str, binaries: Binaries, doc: &'static str) -> Var {
        Var {
            name,
            binaries,
            default: None,
            secret: false,
            doc,
            template: InTemplate::Set,
            holds: None,
        }
    }

    /// The Secrets Manager reference of `credential`, read by the Lambdas in `binaries`
    /// (webhooks-local and the CLI take the plain variable: there is no deployment to keep
    /// a secret out of).
    const fn reference(name: &'static str, binaries: Binaries, credential: &'static Var) -> Var {
        let mut var = Var::new(name, binaries, REFERENCE_DOC)
            .may_omit("a Secrets Manager reference; unset = the plain variable");
        var.holds = Some(credential);
        var
    }

    const fn defaults_to(mut self, value: &'static str) -> Var {
        self.default = Some(value);
        self
    }

    const fn secret(mut self) -> Var {
        self.secret = true;
        self
    }

    const fn may_omit(mut self, why: &'static str) -> Var {
        self.template = InTemplate::MayOmit(why);
        self
    }

    const fn never(mut self, why: &'static str) -> Var {
        self.template = InTemplate::Never(why);
        self
    }
}

/// The one doc of every `…_ARN` reference: the README's table says it once a row.
const REFERENCE_DOC: &str =
    "Secrets Manager secret (ARN or name) whose value is the variable named \
     without `_ARN`, in its format; read at start and re-read every SECRETS_CACHE_SECS";

// ---- every source ---------------------------------------------------------------------

pub const ALLOW_UNVERIFIED: Var = Var::new(
    "ALLOW_UNVERIFIED",
    Binaries::SOURCES.with(Binary::Cli),
    "`true` accepts unsigned requests when no credential is set",
)
.never(
    "accepts unsigned requests when no credential is configured: never in AWS (ARCHITECTURE §3)",
);
pub const MAX_BODY_BYTES: Var = Var::new(
    "MAX_BODY_BYTES",
    Binaries::SOURCES,
    "larger bodies get 413 and are not stored",
)
.defaults_to("262144");
pub const RETENTION_DAYS: Var = Var::new(
    "RETENTION_DAYS",
    Binaries::SOURCES,
    "event records (raw bodies) expire after this many days",
)
.defaults_to("90");
pub const ENTITY_RETENTION_DAYS: Var = Var::new(
    "ENTITY_RETENTION_DAYS",
    Binaries::SOURCES.with(Binary::Cli),
    "entities and transitions expire this many days after the last event that wrote them (30 to 3650, at least RETENTION_DAYS)",
)
.defaults_to("180");

// ---- webhooks-local ---------------------------------------------------------------------

pub const LISTEN_ADDR: Var = Var::new(
    "LISTEN_ADDR",
    Binaries::of(Binary::Local),
    "Address to listen on",
)
.defaults_to("127.0.0.1:3000");
pub const STORE: Var = Var::new(
    "STORE",
    Binaries::WORKSTATION,
    "Store backend: `sqlite` (embedded file + local notifier worker) or `dynamodb` \
     (DynamoDB + SQS, configured like the Lambdas)",
)
.defaults_to("sqlite");
pub const SQLITE_PATH: Var = Var::new("SQLITE_PATH", Binaries::WORKSTATION, "SQLite database file")
    .defaults_to(".data/webhooks.db");
pub const SQLITE_SYNC: Var = Var::new(
    "SQLITE_SYNC",
    Binaries::of(Binary::Local),
    "full fsyncs each commit; normal survives a process crash, an OS crash may lose the last commits",
)
.defaults_to("normal");

// ---- the web console (webhooks-local under /console, webhooks console) ----------------

pub const CONSOLE_TOKEN: Var = Var::new(
    "CONSOLE_TOKEN",
    Binaries::WORKSTATION,
    "the web console's token, at least 32 characters: required to listen beyond loopback with \
     the console on; when set, the console asks for it (login form or Authorization: Bearer)",
)
.secret();

// ---- the DynamoDB store and the SQS queue ------------------------------------------------

pub const EVENTS_TABLE: Var = Var::new(
    "EVENTS_TABLE",
    Binaries::STORES,
    "the DynamoDB events table (ARCHITECTURE §5)",
);
pub const ENTITIES_TABLE: Var = Var::new(
    "ENTITIES_TABLE",
    Binaries::STORES,
    "the DynamoDB entities table (ARCHITECTURE §5)",
);
pub const TRANSITIONS_TABLE: Var = Var::new(
    "TRANSITIONS_TABLE",
    Binaries::STORES,
    "the DynamoDB transitions table (ARCHITECTURE §5)",
);
pub const TRANSITIONS_QUEUE_URL: Var = Var::new(
    "TRANSITIONS_QUEUE_URL",
    Binaries::WORKSTATION.with(Binary::Relay),
    "the SQS FIFO transitions queue (the relay sends to it; webhooks-local --store dynamodb publishes to it directly)",
);
pub const TRANSITIONS_DLQ_URL: Var = Var::new(
    "TRANSITIONS_DLQ_URL",
    Binaries::WORKSTATION,
    "the transitions queue's SQS dead-letter queue (webhooks dlq and the console's dead letters, --store dynamodb)",
);
pub const DYNAMODB_TRANSACTION_LIMIT: Var = Var::new(
    "DYNAMODB_TRANSACTION_LIMIT",
    Binaries::STORES,
    "items per TransactWriteItems, 2 to 100 (moto_server needs 25)",
)
.defaults_to("100")
.may_omit("defaults to DynamoDB's own limit (100), lowered only for moto");

// ---- the AWS SDK's standard settings, read explicitly ------------------------------------

pub const AWS_ENDPOINT_URL: Var = Var::new(
    "AWS_ENDPOINT_URL",
    Binaries::ALL,
    "one endpoint for every AWS service (moto_server, DynamoDB Local)",
)
.may_omit("emulator override (moto_server); unset = the real AWS endpoints");
pub const AWS_REGION: Var = Var::new("AWS_REGION", Binaries::ALL, "the AWS region")
    .may_omit("reserved: set by the Lambda runtime");
pub const AWS_DEFAULT_REGION: Var = Var::new(
    "AWS_DEFAULT_REGION",
    Binaries::ALL,
    "the AWS region when AWS_REGION is unset",
)
.may_omit("reserved: set by the Lambda runtime");
pub const AWS_MAX_ATTEMPTS: Var = Var::new(
    "AWS_MAX_ATTEMPTS",
    Binaries::ALL,
    "attempts per SDK call, the first included (1 to 10)",
)
.defaults_to("3")
.may_omit("SDK attempts per call; the default (3) fits API Gateway's 30 s");
pub const AWS_ACCESS_KEY_ID: Var = Var::new(
    "AWS_ACCESS_KEY_ID",
    Binaries::ALL,
    "static credentials, with AWS_SECRET_ACCESS_KEY; unset: the SDK's default chain",
)
.secret()
.may_omit("reserved: the role's credentials, set by the Lambda runtime");
pub const AWS_SECRET_ACCESS_KEY: Var = Var::new(
    "AWS_SECRET_ACCESS_KEY",
    Binaries::ALL,
    "static credentials, with AWS_ACCESS_KEY_ID",
)
.secret()
.may_omit("reserved: the role's credentials, set by the Lambda runtime");
pub(crate) const AWS_SESSION_TOKEN: Var = Var::new(
    "AWS_SESSION_TOKEN",
    Binaries::ALL,
    "session token of temporary static credentials",
)
.secret()
.may_omit("reserved: the role's credentials, set by the Lambda runtime");

// ---- notifications ----------------------------------------------------------------------

pub const NOTIFY_URL: Var = Var::new(
    "NOTIFY_URL",
    Binaries::NOTIFIERS,
    "where transitions are POSTed (https; plain http only to a loopback host); unset: each \
     transition is written to the log",
);
pub const NOTIFY_SECRET: Var = Var::new(
    "NOTIFY_SECRET",
    Binaries::NOTIFIERS,
    "whsec_<base64> Standard Webhooks secret, a key of 24 to 64 bytes (two comma-separated while \
     rotating)",
)
.secret();
pub const NOTIFY_LOG_BODIES: Var = Var::new(
    "NOTIFY_LOG_BODIES",
    Binaries::NOTIFIERS,
    "development only: `true` writes each transition whole (its `data`: customers' names, phones, addresses) to the log when NOTIFY_URL is unset; default: ids, entity, from/to and times only",
)
.never("writes customers' personal data to CloudWatch: development only (ARCHITECTURE §8)");
pub const NOTIFY_TIMEOUT_MS: Var = Var::new(
    "NOTIFY_TIMEOUT_MS",
    Binaries::NOTIFIERS,
    "per-delivery timeout in milliseconds",
)
.defaults_to("5000");

pub const NOTIFY_SECRET_ARN: Var = Var::reference(
    "NOTIFY_SECRET_ARN",
    Binaries::of(Binary::Notifier),
    &NOTIFY_SECRET,
);

// ---- Secrets Manager references ---------------------------------------------------------

pub const SECRETS_CACHE_SECS: Var = Var::new(
    "SECRETS_CACHE_SECS",
    Binaries::INGEST.with(Binary::Notifier),
    "seconds a value read through an `_ARN` reference is kept before it is read again: a rotation takes effect within it",
)
.defaults_to("300")
.may_omit("the reference cache's lifetime; the default (300 s) bounds how late a rotation acts");

// ---- logs -------------------------------------------------------------------------------

pub const RUST_LOG: Var = Var::new("RUST_LOG", Binaries::ALL, "log filter")
    .defaults_to("info")
    .may_omit("log filter; defaults to info");

/// The registry, in the README's order.
pub const ALL: &[&Var] = &[
    &PANCAKE_API_KEYS,
    &PANCAKE_API_KEYS_BY_TENANT,
    &PANCAKE_SIGNING_SECRETS,
    &PANCAKE_POS_API_KEYS,
    &PANCAKE_POS_API_KEYS_BY_TENANT,
    &PANCAKE_POS_KEY_HEADER,
    &ABAHA_TOKENS,
    &ABAHA_TOKENS_BY_TENANT,
    &ABAHA_TOKEN_HEADER,
    &FULFILMENT_SECRETS,
    &FULFILMENT_SECRETS_BY_TENANT,
    &INVOICE_SECRETS,
    &INVOICE_SECRETS_BY_TENANT,
    &PANCAKE_API_KEYS_ARN,
    &PANCAKE_API_KEYS_BY_TENANT_ARN,
    &PANCAKE_SIGNING_SECRETS_ARN,
    &PANCAKE_POS_API_KEYS_ARN,
    &PANCAKE_POS_API_KEYS_BY_TENANT_ARN,
    &ABAHA_TOKENS_ARN,
    &ABAHA_TOKENS_BY_TENANT_ARN,
    &FULFILMENT_SECRETS_ARN,
    &FULFILMENT_SECRETS_BY_TENANT_ARN,
    &INVOICE_SECRETS_ARN,
    &INVOICE_SECRETS_BY_TENANT_ARN,
    &INVOICE_SIGNATURE_HEADER,
    &INVOICE_TOLERANCE_SECS,
    &ALLOW_UNVERIFIED,
    &MAX_BODY_BYTES,
    &RETENTION_DAYS,
    &ENTITY_RETENTION_DAYS,
    &CREDENTIALS_TABLE,
    &CREDENTIALS_CACHE_SECS,
    &LISTEN_ADDR,
    &STORE,
    &SQLITE_PATH,
    &SQLITE_SYNC,
    &CONSOLE_TOKEN,
    &EVENTS_TABLE,
    &ENTITIES_TABLE,
    &TRANSITIONS_TABLE,
    &TRANSITIONS_QUEUE_URL,
    &TRANSITIONS_DLQ_URL,
    &DYNAMODB_TRANSACTION_LIMIT,
    &AWS_ENDPOINT_URL,
    &AWS_REGION,
    &AWS_DEFAULT_REGION,
    &AWS_MAX_ATTEMPTS,
    &AWS_ACCESS_KEY_ID,
    &AWS_SECRET_ACCESS_KEY,
    &AWS_SESSION_TOKEN,
    &NOTIFY_URL,
    &NOTIFY_SECRET,
    &NOTIFY_SECRET_ARN,
    &SECRETS_CACHE_SECS,
    &NOTIFY_LOG_BODIES,
    &NOTIFY_TIMEOUT_MS,
    &RUST_LOG,
];

pub fn by_name(name: &str) -> Option<&'static Var> {
    ALL.iter().copied().find(|v| v.name == name)
}

/// What `binary` reads, one variable a line with its doc, default and secrecy, for a
/// `--help` text; `except` are shown elsewhere (as the options they back).
pub fn environment_help(binary: Binary, except: &[&Var]) -> String {
    let shown: Vec<&Var> = ALL
        .iter()
        .copied()
        .filter(|v| v.binaries.contains(binary) && !except.iter().any(|e| e.name == v.name))
        .collect();
    let width = shown.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Environment:");
    for v in shown {
        out.push_str(&format!("\n  {:width$}  {}", v.name, v.doc));
        if let Some(default) = v.default {
            out.push_str(&format!(" [default: {default}]"));
        }
        if v.secret {
            out.push_str(" [secret]");
        }
    }
    out
}

mod providers;
pub use providers::*;

#[cfg(test)]
mod tests;
