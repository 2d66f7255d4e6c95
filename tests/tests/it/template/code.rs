//! What the workspace declares, read from its files: the Lambda binaries (registry, main, the
//! AWS actions of the backends each main builds), metric names and the services that emit
//! them, and the IAM actions of the AWS adapters' SDK calls.

use super::*;

/// SDK fluent calls (`client.get_item()`) and transaction parts (`Put::builder()`), by IAM
/// action.
pub(super) const DYNAMODB_OPS: [(&str, &str); 14] = [
    ("get_item", "dynamodb:GetItem"),
    ("put_item", "dynamodb:PutItem"),
    ("update_item", "dynamodb:UpdateItem"),
    ("delete_item", "dynamodb:DeleteItem"),
    ("query", "dynamodb:Query"),
    ("scan", "dynamodb:Scan"),
    ("batch_get_item", "dynamodb:BatchGetItem"),
    ("batch_write_item", "dynamodb:BatchWriteItem"),
    ("transact_get_items", "dynamodb:GetItem"),
    ("create_table", "dynamodb:CreateTable"),
    ("describe_table", "dynamodb:DescribeTable"),
    ("update_time_to_live", "dynamodb:UpdateTimeToLive"),
    ("delete_table", "dynamodb:DeleteTable"),
    (
        "describe_continuous_backups",
        "dynamodb:DescribeContinuousBackups",
    ),
];
pub(super) const DYNAMODB_TRANSACT_PARTS: [(&str, &str); 4] = [
    ("Put", "dynamodb:PutItem"),
    ("Update", "dynamodb:UpdateItem"),
    ("Delete", "dynamodb:DeleteItem"),
    ("ConditionCheck", "dynamodb:ConditionCheckItem"),
];
pub(super) const SQS_OPS: [(&str, &str); 11] = [
    ("send_message", "sqs:SendMessage"),
    ("send_message_batch", "sqs:SendMessage"),
    ("receive_message", "sqs:ReceiveMessage"),
    ("delete_message", "sqs:DeleteMessage"),
    ("delete_message_batch", "sqs:DeleteMessage"),
    ("change_message_visibility", "sqs:ChangeMessageVisibility"),
    (
        "change_message_visibility_batch",
        "sqs:ChangeMessageVisibility",
    ),
    ("get_queue_attributes", "sqs:GetQueueAttributes"),
    ("get_queue_url", "sqs:GetQueueUrl"),
    ("create_queue", "sqs:CreateQueue"),
    ("purge_queue", "sqs:PurgeQueue"),
];

pub(super) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

#[derive(Debug, Clone)]
pub(super) struct Lambda {
    pub(super) binary: Binary,
    /// Workspace-relative directory of its package.
    pub(super) package: String,
    /// The `Source` variant it serves, by the registry (`None`: the notifier, which serves
    /// them all).
    pub(super) source: Option<String>,
    /// The `Source` variants its main names.
    pub(super) main_sources: BTreeSet<String>,
    /// IAM actions of the backends its main builds (`runtime::*_AWS_ACTIONS`).
    pub(super) aws_actions: BTreeSet<String>,
}

impl Lambda {
    pub(super) fn name(&self) -> &'static str {
        self.binary.name()
    }
}

#[derive(Clone)]
pub(super) struct Code {
    pub(super) binaries: BTreeMap<String, Lambda>,
    /// `metrics::names`: constant -> metric name.
    pub(super) metric_names: BTreeMap<String, String>,
    /// Metric names (values) the code emits outside metrics.rs.
    pub(super) emitted_metrics: BTreeSet<String>,
    /// `Service` dimension values the code emits.
    pub(super) services: BTreeSet<String>,
    /// IAM actions of the SDK calls in the AWS adapters.
    pub(super) adapter_actions: BTreeSet<String>,
}

pub(super) fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// A source file without its tests (everything from the first `#[cfg(test)]`, where this
/// workspace keeps its test modules) and without `//` comments, for plain text searches.
pub(super) fn code_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `[[bin]]` names of a package manifest (or the package name when it declares none).
pub(super) fn bin_names(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut package = None;
    let mut bins = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some(value) = line
            .strip_prefix("name")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
        else {
            continue;
        };
        match section.as_str() {
            "[[bin]]" => bins.push(value),
            "[package]" => package = Some(value),
            _ => {}
        }
    }
    if bins.is_empty() {
        bins.extend(package);
    }
    bins
}

/// The workspace members under functions/, from the root manifest.
pub(super) fn function_packages(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    manifest
        .split('"')
        .filter(|s| s.starts_with("functions/"))
        .map(str::to_string)
        .collect()
}

/// The `Source::X` variants a text names.
pub(super) fn sources_named(text: &str) -> BTreeSet<String> {
    text.split("Source::")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|v| Source::ALL.iter().any(|s| format!("{s:?}") == *v))
        .collect()
}

/// The Lambda binary of `name`, from its main and the registry.
pub(super) fn lambda(root: &Path, package: &str, name: &str) -> Option<Lambda> {
    let binary = Binary::from_name(name).unwrap_or_else(|| {
        panic!("binary {name} ({package}) is not a webhook_core::config::vars::Binary")
    });
    if !binary.is_lambda() {
        return None;
    }
    let main = code_text(&root.join(package).join("src/main.rs"));
    let mut aws_actions = BTreeSet::new();
    // `serve_ingest_lambda` is `lambda_backends` plus the source's handler.
    if main.contains("runtime::lambda_backends(") || main.contains("runtime::serve_ingest_lambda(")
    {
        aws_actions.extend(runtime::INGEST_AWS_ACTIONS.map(String::from));
    }
    // `notifier_lambda` is `dynamodb_store` plus the notifier over it.
    if main.contains("runtime::dynamodb_store(") || main.contains("runtime::notifier_lambda(") {
        aws_actions.extend(runtime::NOTIFIER_AWS_ACTIONS.map(String::from));
    }
    if main.contains("runtime::serve_relay_lambda(") {
        aws_actions.extend(runtime::RELAY_AWS_ACTIONS.map(String::from));
    }
    Some(Lambda {
        binary,
        package: package.to_string(),
        source: binary.source().map(|s| format!("{s:?}")),
        main_sources: sources_named(&main),
        aws_actions,
    })
}

/// `pub const NAME: &str = "Value";` lines (or `pub(crate) const`) of metrics.rs's `names`
/// module.
pub(super) fn metric_names(root: &Path) -> BTreeMap<String, String> {
    let text = code_text(&root.join("shared/src/metrics.rs"));
    let block = text
        .split("pub mod names {")
        .nth(1)
        .and_then(|b| b.split('}').next())
        .expect("metrics::names");
    block
        .lines()
        .filter_map(|l| {
            // `pub` or `pub(crate)`: the visibility says who names it, not whether it is
            // emitted.
            let line = l.trim();
            let (name, value) = line
                .strip_prefix("pub const ")
                .or_else(|| line.strip_prefix("pub(crate) const "))?
                .split_once(": &str = ")?;
            let value = value.strip_suffix(';')?.trim_matches('"');
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// IAM actions of the SDK calls in the AWS adapters (shared/src/backends/aws).
pub(super) fn adapter_actions(root: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rs_files(&root.join("shared/src/backends/aws"), &mut files);
    let mut actions = BTreeSet::new();
    for path in files {
        let text = code_text(&path);
        let mut calls: Vec<(String, &str)> = Vec::new();
        if text.contains("aws_sdk_dynamodb") {
            calls.extend(DYNAMODB_OPS.iter().map(|(op, a)| (format!(".{op}()"), *a)));
            calls.extend(
                DYNAMODB_TRANSACT_PARTS
                    .iter()
                    .map(|(part, a)| (format!("{part}::builder()"), *a)),
            );
        }
        if text.contains("aws_sdk_sqs") {
            calls.extend(SQS_OPS.iter().map(|(op, a)| (format!(".{op}()"), *a)));
        }
        for (call, action) in calls {
            // `Put::builder()` but not `AttributeValueUpdate::builder()`.
            let called = text.match_indices(&call).any(|(i, _)| {
                call.starts_with('.')
                    || !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if called {
                actions.insert(action.to_string());
            }
        }
    }
    actions
}

pub(super) fn scan_code(root: &Path) -> Code {
    let mut binaries = BTreeMap::new();
    for package in function_packages(root) {
        let manifest = std::fs::read_to_string(root.join(&package).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{package}/Cargo.toml: {e}"));
        for name in bin_names(&manifest) {
            if let Some(l) = lambda(root, &package, &name) {
                binaries.insert(name, l);
            }
        }
    }
    let metric_names = metric_names(root);
    let mut shared = Vec::new();
    rs_files(&root.join("shared/src"), &mut shared);
    let code: Vec<String> = shared
        .iter()
        .filter(|p| !p.ends_with("metrics.rs"))
        .map(|p| code_text(p))
        .collect();
    let emitted_metrics = metric_names
        .iter()
        .filter(|(k, _)| {
            let used = format!("names::{k}");
            code.iter().any(|text| {
                text.match_indices(&used).any(|(i, _)| {
                    !text[i + used.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .map(|(_, v)| v.clone())
        .collect();
    let mut services: BTreeSet<String> =
        Source::ALL.iter().map(|s| s.as_str().to_string()).collect();
    services.insert(webhook_core::notify::METRICS_SERVICE.to_string());
    services.insert(webhook_core::relay::METRICS_SERVICE.to_string());
    Code {
        binaries,
        metric_names,
        emitted_metrics,
        services,
        adapter_actions: adapter_actions(root),
    }
}
