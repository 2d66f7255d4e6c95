//! The command line: the same store flags and variables as `webhooks-local`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use webhook_core::config::vars::{self, Binary};
use webhook_core::config::Var;
use webhook_core::model::{EntityKey, EntityKind, Source, Tenant};
use webhook_core::ops::filter::{parse_source, parse_status, parse_time};
use webhook_core::store::{EventFilter, EventStatus, TransitionSelector};

use crate::Failure;

/// The variables behind the options, shown with them rather than in the environment list.
const OPTION_VARS: [&Var; 2] = [&vars::SQLITE_PATH, &vars::STORE];

static HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "Examples:\n  webhooks events --source pancake-pos --status ignored --since 24h\n  \
         webhooks --store dynamodb event 'invoice#in_123'\n\n{}",
        vars::environment_help(Binary::Cli, &OPTION_VARS)
    )
});

#[derive(Parser)]
#[command(
    name = "webhooks",
    about = "Find, explain, replay, redrive, reprocess and purge stored webhook events",
    after_help = HELP.as_str()
)]
pub struct Cli {
    /// Which backend: the embedded SQLite file or the Lambdas' DynamoDB tables and SQS queues.
    #[arg(
        long,
        env = "STORE",
        value_enum,
        default_value = "sqlite",
        global = true
    )]
    pub store: StoreKind,
    /// The SQLite file (`--store sqlite`).
    #[arg(
        long,
        env = "SQLITE_PATH",
        default_value = ".data/webhooks.db",
        global = true
    )]
    pub db: PathBuf,
    /// One JSON object per line instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

impl Cli {
    pub fn backend_name(&self) -> String {
        match self.store {
            StoreKind::Sqlite => format!("sqlite {}", self.db.display()),
            StoreKind::Dynamodb => format!(
                "dynamodb ({})",
                std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into())
            ),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// List stored events, newest first.
    #[command(
        after_help = "Example:\n  webhooks events --source pancake-pos --status ignored --since 2h --limit 20"
    )]
    Events(EventsArgs),
    /// One event: raw body, kept headers, status, entities and transitions.
    #[command(after_help = "Example:\n  webhooks event 'fulfilment#9001'")]
    Event { key: String },
    /// An entity's state, data and whole history.
    #[command(after_help = "Example:\n  webhooks entity invoice merchant-1 invoice in_123")]
    Entity(EntityArgs),
    /// Queue transitions for notification again.
    #[command(
        after_help = "Examples:\n  webhooks replay --id tr_0123abcd\n  webhooks replay --entity invoice merchant-1 invoice in_123 --force\n  webhooks replay --undelivered --since 24h"
    )]
    Replay(ReplayArgs),
    /// Dead-lettered notifications: list them, or move them back.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Re-run stored raw bodies through today's provider code.
    #[command(
        after_help = "Example (after an upgrade that projects more event types):\n  webhooks reprocess --status ignored --source pancake-pos --dry-run\n  webhooks reprocess --status ignored --source pancake-pos"
    )]
    Reprocess(ReprocessArgs),
    /// Events per source and status over a window, and transitions not yet on the queue.
    #[command(after_help = "Example:\n  webhooks stats --since 24h --waiting-minutes 10")]
    Stats(StatsArgs),
    /// Erase personal data: an entity, a tenant, or every record holding a value.
    #[command(after_help = PURGE_HELP)]
    Purge(PurgeArgs),
    /// Tenant-bound credentials in the credential table: add, list, rotate, revoke.
    #[command(subcommand)]
    Credentials(crate::credentials::CredentialsCommand),
    /// Serve the web console over this store (events, entities, replay, redrive, overview).
    #[command(
        after_help = "Examples:\n  webhooks console                      # http://127.0.0.1:3001/console\n  webhooks --store dynamodb console\n  CONSOLE_TOKEN=... webhooks console --listen 0.0.0.0:3001"
    )]
    Console(ConsoleArgs),
}

const PURGE_HELP: &str =
    "Examples:\n  webhooks purge --entity pancake-pos 987654321 customer 42 --dry-run\n  \
webhooks purge --tenant abaha 552\n  \
printf %s 0912345678 | webhooks purge --match - --dry-run\n\n\
Deletes events, entities, transitions and the queued copies the store holds (the SQLite \
outbox), then names what still holds copies and for how long (backups, queues, logs, the \
receiver). On DynamoDB --match and the events of an entity or tenant are found by a Scan \
(no index: ARCHITECTURE decision 18). The purge is logged on stderr without the value.";

#[derive(Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct PurgeTarget {
    /// One entity, every event naming it, its transitions: SOURCE TENANT KIND ID.
    #[arg(long, num_args = 4, value_names = ["SOURCE", "TENANT", "KIND", "ID"], group = "target")]
    pub entity: Option<Vec<String>>,
    /// Everything of one tenant: SOURCE TENANT.
    #[arg(long, num_args = 2, value_names = ["SOURCE", "TENANT"], group = "target")]
    pub tenant: Option<Vec<String>>,
    /// Every record whose body, data or message holds TEXT (a phone, an e-mail); `-` reads
    /// it from stdin, keeping it out of the shell's history.
    #[arg(long = "match", value_name = "TEXT", group = "target")]
    pub needle: Option<String>,
}

#[derive(Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub target: PurgeTarget,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl PurgeArgs {
    pub fn target(&self) -> Result<webhook_core::store::PurgeTarget, Failure> {
        use webhook_core::store::{Needle, PurgeTarget as Target};
        let t = &self.target;
        if let Some(e) = &t.entity {
            let source = parse_source(&e[0]).map_err(|e| Failure::Usage(e.to_string()))?;
            return Ok(Target::Entity(entity_key(source, &e[1], &e[2], &e[3])?));
        }
        if let Some(e) = &t.tenant {
            let source = parse_source(&e[0]).map_err(|e| Failure::Usage(e.to_string()))?;
            return Ok(Target::Tenant {
                source,
                tenant: Tenant::new(&e[1]),
            });
        }
        let text = match t.needle.as_deref() {
            Some("-") => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| Failure::Usage(format!("--match -: reading stdin: {e}")))?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
            Some(text) => text.to_string(),
            None => return Err(Failure::Usage("name what to purge".into())),
        };
        Needle::new(&text)
            .map(Target::Match)
            .map_err(|e| Failure::Usage(e.to_string()))
    }
}

#[derive(Args)]
pub struct ConsoleArgs {
    /// Where to listen; beyond loopback the console requires CONSOLE_TOKEN.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub listen: String,
}

#[derive(Args)]
pub struct FilterArgs {
    /// pancake, pancake-pos, abaha, fulfilment or invoice.
    #[arg(long, value_parser = parse_source)]
    pub source: Option<Source>,
    #[arg(long)]
    pub tenant: Option<String>,
    /// The normalised type, e.g. order.status_changed.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// applied, stale, flagged or ignored.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<EventStatus>,
    /// Received at or after: a duration back from now (90s, 30m, 2h, 7d) or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Received before: like --since.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
}

impl FilterArgs {
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            source: self.source,
            tenant: self.tenant.clone(),
            event_type: self.event_type.clone(),
            status: self.status,
            since: self.since,
            until: self.until,
        }
    }
}

#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// The cursor printed under the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Args)]
pub struct EntityArgs {
    #[arg(value_parser = parse_source)]
    pub source: Source,
    pub tenant: String,
    pub kind: String,
    pub id: String,
}

impl EntityArgs {
    pub fn key(&self) -> Result<EntityKey, Failure> {
        entity_key(self.source, &self.tenant, &self.kind, &self.id)
    }
}

fn entity_key(source: Source, tenant: &str, kind: &str, id: &str) -> Result<EntityKey, Failure> {
    let kind = EntityKind::parse(kind)
        .ok_or_else(|| Failure::Usage(format!("{kind:?} is not an entity kind")))?;
    Ok(EntityKey::new(source, Tenant::new(tenant), kind, id))
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "which")]
pub struct Which {
    /// One transition, by id (the webhook-id receivers saw).
    #[arg(long, group = "which")]
    pub id: Option<String>,
    /// Every transition of an entity: SOURCE TENANT KIND ID.
    #[arg(long, num_args = 4, value_names = ["SOURCE", "TENANT", "KIND", "ID"], group = "which")]
    pub entity: Option<Vec<String>>,
    /// Every queued transition not delivered (pending, failed, dead) in the window.
    #[arg(long, group = "which")]
    pub undelivered: bool,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub which: Which,
    /// Also delivered ones, under the same webhook-id.
    #[arg(long)]
    pub force: bool,
    /// With --undelivered: changes at or after (duration or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
}

impl ReplayArgs {
    pub fn selector(&self) -> Result<TransitionSelector, Failure> {
        if let Some(id) = &self.which.id {
            return Ok(TransitionSelector::Id(id.clone()));
        }
        if let Some(e) = &self.which.entity {
            let source = parse_source(&e[0]).map_err(|e| Failure::Usage(e.to_string()))?;
            return Ok(TransitionSelector::Entity(entity_key(
                source, &e[1], &e[2], &e[3],
            )?));
        }
        Ok(TransitionSelector::Undelivered {
            since: self.since,
            until: self.until,
        })
    }
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// What is dead-lettered, with each one's last failure.
    List {
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Move dead letters back to the queue.
    #[command(
        after_help = "Examples:\n  webhooks dlq redrive --all\n  webhooks dlq redrive 17 18"
    )]
    Redrive {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct ReprocessArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Count transitions recorded more than this many minutes ago and not yet on the queue.
    #[arg(long, default_value_t = 5)]
    pub waiting_minutes: u64,
}
