//! `webhooks`: the operator CLI over a deployment's store, on SQLite (`webhooks-local`'s
//! file) or on DynamoDB + SQS (the Lambdas' tables and queues, with the operator's AWS
//! credentials). Exit codes: 0 done, 2 a usage error or an unknown key, 1 the backend could
//! not be reached (one line naming it).

#[macro_use]
mod say {
    /// `println!` that ends the process quietly when stdout is closed (`webhooks events | head`)
    /// instead of panicking, and escapes control characters ([`crate::terminal`]).
    macro_rules! say {
        ($($arg:tt)*) => {{
            use std::io::Write;
            let line = format!($($arg)*);
            let line = $crate::terminal::for_terminal(&line);
            if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    std::process::exit(0);
                }
            }
        }};
    }
}

mod args;
mod console;
mod credentials;
mod inspect;
mod output;
mod purge;
mod repair;
mod terminal;

use std::process::ExitCode;

use clap::Parser;
use webhook_core::config::Env;
use webhook_core::ops::{Operator, OpsError};

use args::{Cli, Command, StoreKind};

/// mimalloc, as in `webhooks-local`: reprocess hands every event's rows from the runtime's
/// threads to the SQLite writer thread, and glibc's malloc was a fifth of that thread's time
/// (perf, BENCHMARKS.md "Operator CLI").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Errors only (the output is the answer, not the log), and the audit line of a purge.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(format!("{filter},{}=info", webhook_core::ops::AUDIT_TARGET))
        .init();
    let env = Env::from_process();
    let result = match connect(&cli, &env).await {
        Ok(op) => run(&cli, &op, &env).await,
        Err(failure) => Err(failure),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("webhooks: {}", terminal::for_terminal(&message));
            ExitCode::from(2)
        }
        Err(Failure::Backend(message)) => {
            let message = terminal::for_terminal(&message);
            eprintln!("webhooks: {} unreachable: {message}", cli.backend_name());
            ExitCode::from(1)
        }
    }
}

/// The backend's ports: a missing file is unreachable (1), a missing or malformed setting
/// a usage error (2).
async fn connect(cli: &Cli, env: &Env) -> Result<Operator, Failure> {
    match cli.store {
        StoreKind::Sqlite => webhook_core::runtime::sqlite_operator(&cli.db)
            .map_err(|e| Failure::Backend(one_line(&e.to_string()))),
        StoreKind::Dynamodb => webhook_core::runtime::aws_operator(env)
            .await
            .map_err(|e| Failure::Usage(e.to_string())),
    }
}

pub enum Failure {
    Usage(String),
    Backend(String),
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(m) | OpsError::Refused(m) => Failure::Usage(m),
            // A cursor the store did not issue is the operator's input, not the system.
            e @ OpsError::Store(webhook_core::StoreError::BadCursor(_)) => {
                Failure::Usage(e.to_string())
            }
            other => Failure::Backend(one_line(&other.to_string())),
        }
    }
}

/// The first line of an SDK error, bounded: no debug dump on the operator's terminal.
fn one_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("");
    line.chars().take(300).collect()
}

async fn run(cli: &Cli, op: &Operator, env: &Env) -> Result<(), Failure> {
    let out = output::Output::new(cli.json);
    match &cli.command {
        Command::Events(a) => inspect::events(op, &out, a).await,
        Command::Event { key } => inspect::event(op, &out, key).await,
        Command::Entity(a) => inspect::entity(op, &out, &a.key()?).await,
        Command::Stats(a) => inspect::stats(op, &out, a).await,
        Command::Replay(a) => repair::replay(op, &out, a).await,
        Command::Dlq(a) => repair::dlq(op, &out, a).await,
        Command::Reprocess(a) => repair::reprocess(op, &out, env, a).await,
        Command::Purge(a) => purge::purge(op, &out, a).await,
        Command::Credentials(c) => credentials::run(op, &out, c).await,
        Command::Console(a) => console::serve(op, env, a).await,
    }
}
