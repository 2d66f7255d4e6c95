//! `webhooks credentials`: onboard a tenant's key, list, rotate and revoke — never showing a
//! stored value. A generated key is printed once, alone on stdout (so
//! `KEY=$(webhooks credentials add …)` captures it), with the notice on stderr.

use std::io::Read;

use clap::{Args, Subcommand};
use serde_json::json;
use time::OffsetDateTime;
use webhook_core::credentials::{CredentialId, Material, StoredCredential};
use webhook_core::model::{Source, Tenant};
use webhook_core::ops::credentials::{Issued, NewValue};
use webhook_core::ops::filter::{parse_source, parse_span};
use webhook_core::ops::Operator;

use crate::output::{table, time_of, Output};
use crate::Failure;

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Add a credential for one tenant: a generated key printed once, or one from stdin.
    #[command(
        after_help = "Examples:\n  webhooks credentials add pancake-pos 987654321\n  printf %s \"$SECRET\" | webhooks credentials add fulfilment MERCHANT1 --stdin --expires 365d"
    )]
    Add(NewArgs),
    /// Every credential with its status (never its value).
    #[command(after_help = "Example:\n  webhooks credentials list --source pancake-pos")]
    List {
        #[arg(long, value_parser = parse_source)]
        source: Option<Source>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Issue a successor; the current credential keeps working for the grace period.
    #[command(after_help = "Example:\n  webhooks credentials rotate abaha 552 --grace 48h")]
    Rotate {
        #[command(flatten)]
        new: NewArgs,
        /// How long the current credential stays valid (duration: 30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = parse_span)]
        grace: i64,
    },
    /// Revoke one credential by id, or all of the tenant's active ones.
    #[command(
        after_help = "Examples:\n  webhooks credentials revoke pancake 123456789 cred_0123456789abcdef\n  webhooks credentials revoke pancake 123456789 --all"
    )]
    Revoke {
        #[arg(value_parser = parse_source)]
        source: Source,
        tenant: String,
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct NewArgs {
    /// pancake, pancake-pos, abaha, fulfilment or invoice.
    #[arg(value_parser = parse_source)]
    pub source: Source,
    /// pageId (pancake), shopId (pancake-pos), store_id (abaha), merchant_code (fulfilment);
    /// `default` for invoice.
    pub tenant: String,
    /// Read the value from stdin (one the provider issued) instead of generating one.
    #[arg(long)]
    pub stdin: bool,
    /// Expire after this long (duration: 90d); without it, until revoked.
    #[arg(long, value_parser = parse_span)]
    pub expires: Option<i64>,
}

impl NewArgs {
    fn value(&self) -> Result<NewValue, Failure> {
        if !self.stdin {
            return Ok(NewValue::Generate);
        }
        let mut value = String::new();
        std::io::stdin()
            .read_to_string(&mut value)
            .map_err(|e| Failure::Usage(format!("reading the credential from stdin: {e}")))?;
        Ok(NewValue::Given(value))
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn run(op: &Operator, out: &Output, command: &CredentialsCommand) -> Result<(), Failure> {
    let now = now();
    match command {
        CredentialsCommand::Add(a) => {
            let tenant = Tenant::new(&a.tenant);
            let expires = a.expires.map(|secs| now + secs);
            let issued = op
                .add_credential(a.source, &tenant, a.value()?, expires, now)
                .await?;
            issued_line(out, &issued, "added");
        }
        CredentialsCommand::List { source, tenant } => {
            let tenant = tenant.as_deref().map(Tenant::new);
            let found = op.list_credentials(*source, tenant.as_ref()).await?;
            list(out, &found, now);
        }
        CredentialsCommand::Rotate { new, grace } => {
            let tenant = Tenant::new(&new.tenant);
            let (issued, retiring) = op
                .rotate_credential(new.source, &tenant, new.value()?, *grace, now)
                .await?;
            for old in &retiring {
                let until = old.expires_at.map(time_of).unwrap_or_default();
                eprintln!("webhooks: {} stays valid until {until}", old.id);
            }
            issued_line(out, &issued, "rotated in");
        }
        CredentialsCommand::Revoke {
            source, tenant, id, ..
        } => {
            let id = match id {
                None => None,
                Some(raw) => Some(CredentialId::parse(raw).ok_or_else(|| {
                    Failure::Usage(format!(
                        "{raw:?} is not a credential id (cred_ and 16 hex digits)"
                    ))
                })?),
            };
            let revoked = op
                .revoke_credential(*source, &Tenant::new(tenant), id.as_ref(), now)
                .await?;
            for c in &revoked {
                if out.json {
                    out.line(
                        json!({"revoked": c.id.as_str(), "source": c.source, "tenant": c.tenant}),
                    );
                } else {
                    say!("revoked {} ({} tenant {})", c.id, c.source, c.tenant);
                }
            }
        }
    }
    Ok(())
}

/// The new credential: its id, and a generated value once.
fn issued_line(out: &Output, issued: &Issued, what: &str) {
    let c = &issued.credential;
    if out.json {
        out.line(
            json!({"id": c.id.as_str(), "source": c.source, "tenant": c.tenant,
            "expiresAt": c.expires_at.map(time_of), "value": issued.generated}),
        );
        return;
    }
    eprintln!(
        "webhooks: {what} {} for {} tenant {}",
        c.id, c.source, c.tenant
    );
    match &issued.generated {
        Some(value) => {
            eprintln!(
                "webhooks: the value below is shown once; paste it into the provider's dashboard"
            );
            say!("{value}");
        }
        None => say!("{}", c.id),
    }
}

fn list(out: &Output, found: &[StoredCredential], now: i64) {
    let kind = |c: &StoredCredential| match c.material {
        Material::KeyHash(_) => "key (hash)",
        Material::Secret(_) => "secret",
    };
    if out.json {
        for c in found {
            out.line(json!({"id": c.id.as_str(), "source": c.source, "tenant": c.tenant,
                "kind": kind(c), "status": c.status(now).as_str(), "createdAt": time_of(c.created_at),
                "expiresAt": c.expires_at.map(time_of), "revokedAt": c.revoked_at.map(time_of)}));
        }
        return;
    }
    let mut rows = vec![[
        "ID", "SOURCE", "TENANT", "KIND", "STATUS", "CREATED", "EXPIRES",
    ]
    .map(String::from)
    .to_vec()];
    for c in found {
        rows.push(vec![
            c.id.to_string(),
            c.source.to_string(),
            c.tenant.to_string(),
            kind(c).to_string(),
            c.status(now).as_str().to_string(),
            time_of(c.created_at),
            c.expires_at.map(time_of).unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&rows);
}
