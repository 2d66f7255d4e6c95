//! The registry of environment variables (`webhook_core::config::vars`) against what reads
//! and documents them: each binary's start-up reads exactly the variables the registry says
//! it reads, the README's Configuration table lists exactly the registry (with the same
//! binaries), and `webhooks-local --help` names every variable webhooks-local reads.
//! (template.yaml is held against the registry in template/.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use webhook_core::config::secrets::References;
use webhook_core::config::vars::{self, Binaries, Binary};
use webhook_core::config::{Env, Mode, PipelineSettings, Var};
use webhook_core::notify::Target;
use webhook_core::refusals::NoRecord;
use webhook_core::runtime;
use webhook_tests::lambda::build_function;
use webhook_tests::moto::workspace_root;

/// Variables read from the process environment by a dependency, not through `Env`.
const NOT_THROUGH_ENV: [(&Var, &str); 4] = [
    (
        &vars::RUST_LOG,
        "tracing-subscriber, in telemetry::init_json_logs",
    ),
    (&vars::LISTEN_ADDR, "clap, as --listen (the --help test)"),
    (&vars::SQLITE_PATH, "clap, as --db (the --help test)"),
    (&vars::STORE, "clap, as --store (the --help test)"),
];

/// A value each variable accepts, so that start-up goes as far as it can.
fn valid_value(var: &Var) -> &'static str {
    match var.name {
        "NOTIFY_SECRET" => "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=",
        "NOTIFY_URL" => "http://127.0.0.1:9/hooks",
        "TRANSITIONS_QUEUE_URL" => "http://127.0.0.1:9/000000000000/transitions.fifo",
        "TRANSITIONS_DLQ_URL" => "http://127.0.0.1:9/000000000000/transitions-dlq.fifo",
        "AWS_ENDPOINT_URL" => "http://127.0.0.1:9",
        "AWS_REGION" | "AWS_DEFAULT_REGION" => "eu-west-1",
        "INVOICE_TOLERANCE_SECS" => "60",
        "SQLITE_SYNC" => "full",
        "ALLOW_UNVERIFIED" => "true",
        name if name.ends_with("_HEADER") => "X-Shop-Key",
        name if name.ends_with("_BY_TENANT") => r#"{"shop-1":["configured"]}"#,
        _ => var.default.unwrap_or("configured"),
    }
}

/// What the binary's main reads at start-up (functions/*/src/main.rs, both `--store`s for
/// webhooks-local), from `env`. A failure stops there, as it would the binary.
async fn start_up(binary: Binary, env: &Env, dir: &Path) {
    if let Some(source) = binary.source() {
        // `runtime::ingest_handlers`: its Secrets Manager references first
        let _ = References::from_env(env, binary);
        if let Ok(backends) = runtime::lambda_backends(env).await {
            let _ = runtime::handler(source, env, Mode::Lambda, &backends, Arc::new(NoRecord));
        }
        return;
    }
    if binary == Binary::Cli {
        // `--store dynamodb`'s ports, the providers `reprocess` runs, and `console`'s token.
        let _ = runtime::aws_operator(env).await;
        let _ = webhook_core::ops::providers(env);
        // The entity expiry reprocess writes.
        let _ = webhook_core::config::PipelineSettings::entity_retention_days(env);
        let _ = webhook_console::ConsoleSettings::from_env(env);
        return;
    }
    if binary == Binary::Notifier {
        let _ = References::from_env(env, binary);
        if runtime::dynamodb_store(env).await.is_ok() {
            let _ = Target::from_env(env);
        }
        return;
    }
    if binary == Binary::Relay {
        let _ = runtime::relay_queue(env).await;
        return;
    }
    if PipelineSettings::from_env(env).is_err() {
        return;
    }
    let sqlite = runtime::sqlite_backends(&dir.join("webhooks.db"), env).map(|(b, _)| b);
    let dynamodb = runtime::publishing_backends(env).await;
    for backends in [sqlite.ok(), dynamodb.ok()].into_iter().flatten() {
        if webhooks_local::handlers(env, &backends, Arc::new(NoRecord)).is_ok() {
            let _ = Target::from_env(env);
        }
    }
    // The console: its token, and on `--store dynamodb` the operator's ports (with the DLQ).
    let _ = webhook_console::ConsoleSettings::from_env(env);
    let _ = runtime::aws_operator(env).await;
}

/// Every variable `binary` looks up: with all of them set, and with each one left out in
/// turn (some are read only when another is absent, like `AWS_DEFAULT_REGION`).
async fn names_read(binary: Binary) -> BTreeSet<&'static str> {
    let dir = tempfile::tempdir().unwrap();
    let full: Vec<(&str, &str)> = vars::ALL.iter().map(|v| (v.name, valid_value(v))).collect();
    let mut read = BTreeSet::new();
    for left_out in std::iter::once(None).chain(vars::ALL.iter().map(|v| Some(v.name))) {
        let env = Env::from_pairs(full.iter().copied().filter(|(n, _)| Some(*n) != left_out));
        start_up(binary, &env, dir.path()).await;
        read.extend(env.names_read());
    }
    read
}

#[tokio::test]
async fn each_binary_reads_what_the_registry_says() {
    let elsewhere = |name: &str| {
        NOT_THROUGH_ENV
            .iter()
            .find(|(v, _)| v.name == name)
            .map(|(_, why)| *why)
    };
    let mut problems = Vec::new();
    for binary in Binary::ALL {
        let read = names_read(binary).await;
        let declared: BTreeSet<&str> = vars::ALL
            .iter()
            .filter(|v| v.binaries.contains(binary) && elsewhere(v.name).is_none())
            .map(|v| v.name)
            .collect();
        for name in read.difference(&declared) {
            problems.push(match elsewhere(name) {
                Some(why) => format!(
                    "{} reads {name} through Env, not only by {why}",
                    binary.name()
                ),
                None => format!(
                    "{} reads {name}, which the registry does not say",
                    binary.name()
                ),
            });
        }
        for name in declared.difference(&read) {
            problems.push(format!(
                "the registry says {} reads {name}; its start-up does not",
                binary.name()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The Configuration table of the README: (variables, "used by") per row.
fn readme_rows() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a Configuration section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let names = cells[1]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| {
                    n.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .map(str::to_string)
                .collect();
            (names, cells[2].to_string())
        })
        .collect()
}

/// The binaries a "used by" cell names: comma-separated terms, each a binary or a group,
/// with an optional `(remark)`.
fn used_by(cell: &str) -> Result<Binaries, String> {
    cell.split(',')
        .map(|term| term.split('(').next().unwrap_or_default().trim())
        .try_fold(Binaries::NONE, |set, term| {
            let group = match term {
                "all" => Binaries::ALL,
                "every Lambda" => Binaries::LAMBDAS,
                "ingest Lambdas" => Binaries::INGEST,
                name => {
                    Binaries::of(Binary::from_name(name).ok_or(format!("unknown term {term:?}"))?)
                }
            };
            Ok(set.union(group))
        })
}

#[test]
fn the_readme_documents_exactly_the_registry() {
    let mut problems = Vec::new();
    let mut listed = BTreeMap::new();
    for (names, cell) in readme_rows() {
        let binaries = used_by(&cell);
        for name in names {
            match (vars::by_name(&name), &binaries) {
                (None, _) => problems.push(format!("{name} is not a registry variable")),
                (Some(_), Err(e)) => problems.push(format!("{name}: used by {cell:?}: {e}")),
                (Some(var), Ok(b)) if var.binaries != *b => problems.push(format!(
                    "{name}: the README says used by {b:?}, the registry {:?}",
                    var.binaries
                )),
                _ => {}
            }
            *listed.entry(name).or_insert(0) += 1;
        }
    }
    for var in vars::ALL {
        match listed.get(var.name) {
            None => problems.push(format!("{} is missing from the README", var.name)),
            Some(1) => {}
            Some(n) => problems.push(format!("{} is listed {n} times", var.name)),
        }
    }
    assert!(
        problems.is_empty(),
        "README.md Configuration:\n{}",
        problems.join("\n")
    );
}

#[test]
fn used_by_cells_are_read_strictly() {
    assert_eq!(
        used_by("every Lambda, webhooks-local, webhooks (`--store dynamodb`)").unwrap(),
        Binaries::ALL
    );
    assert_eq!(
        used_by("pancake, webhooks-local, webhooks (reprocess)").unwrap(),
        Binaries::serving(webhook_core::Source::Pancake)
    );
    assert!(used_by("all sources").is_err());
}

#[test]
fn webhooks_local_help_names_what_it_reads() {
    let bin = build_function("webhooks-local");
    let out = std::process::Command::new(bin)
        .arg("--help")
        .env_clear()
        .output()
        .expect("running webhooks-local --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in vars::ALL
        .iter()
        .filter(|v| v.binaries.contains(Binary::Local))
    {
        assert!(
            help.contains(var.name),
            "{} is not in --help:\n{help}",
            var.name
        );
        if let Some(default) = var.default {
            let shown = format!("[default: {default}]");
            assert!(
                help.contains(&shown),
                "{}: no {shown} in --help:\n{help}",
                var.name
            );
        }
    }
    for var in [&vars::LISTEN_ADDR, &vars::SQLITE_PATH, &vars::STORE] {
        let env = format!("[env: {}=]", var.name);
        assert!(help.contains(&env), "{env} not in --help:\n{help}");
    }
}
