//! template.yaml against the code: what `cfn-lint` and `sam validate --lint` cannot know
//! (issue 6, ARCHITECTURE §2, §5, §6, §8).
//!
//! - every route of `webhook_core::http::ROUTES` is a POST `HttpApi` event of exactly one
//!   function, and that function's binary serves the route's source;
//! - every Lambda binary under `functions/` (all but `webhooks-local`) is exactly one
//!   function built by `rust-cargolambda` from that binary, logging (JSON) to a log group
//!   with a retention;
//! - every environment variable a function sets is one of the registry
//!   (`webhook_core::config::vars`) that its binary reads, and every variable its binary
//!   reads is set unless the registry says it may be omitted; `ALLOW_UNVERIFIED` is never
//!   set, and a secret only comes from a `NoEcho` parameter with no default;
//! - every table and queue a function's environment names is in its policies, every
//!   DynamoDB/SQS operation its backends call (`webhook_core::runtime::*_AWS_ACTIONS`) is
//!   allowed and nothing more, those lists cover the SDK calls of the AWS adapters, and
//!   nothing uses `*`;
//! - the transitions queue is FIFO, redrives to a FIFO dead-letter queue, and is consumed by
//!   the notifier with `ReportBatchItemFailures` under a long enough visibility timeout;
//! - every metric the alarms watch in the `WebhookIngest` namespace is a name the code
//!   emits, for a `Service` the code emits it for, and the alarms of ARCHITECTURE §8 exist;
//! - per source an `Unrecognised` alarm and a suspension-risk alarm (the rule of
//!   `metrics::suspension_risk`), and a saved Logs Insights query listing the refusals of
//!   every ingest function, shown on the dashboard (`template/refusals.rs`);
//! - every `_ARN` credential reference a function sets is a secret it may read, and the only
//!   secrets it may read (`template/secrets.rs`).
//!
//! Every check returns its problems as text. The unit tests at the end break a copy of the
//! real template (or of what the code declares) and assert each check notices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use webhook_core::config::vars::{self, Binary, InTemplate};
use webhook_core::http::ROUTES;
use webhook_core::metrics::NAMESPACE;
use webhook_core::{runtime, Source};

mod refusals;
mod secrets;

/// SDK fluent calls (`client.get_item()`) and transaction parts (`Put::builder()`), by IAM
/// action.
const DYNAMODB_OPS: [(&str, &str); 14] = [
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
const DYNAMODB_TRANSACT_PARTS: [(&str, &str); 4] = [
    ("Put", "dynamodb:PutItem"),
    ("Update", "dynamodb:UpdateItem"),
    ("Delete", "dynamodb:DeleteItem"),
    ("ConditionCheck", "dynamodb:ConditionCheckItem"),
];
const SQS_OPS: [(&str, &str); 11] = [
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

/// SDK calls of the AWS adapters that no Lambda makes, each with why.
const NOT_CALLED_BY_LAMBDAS: [(&str, &str); 10] = [
    ("dynamodb:DeleteItem", "the operator CLI's purge"),
    (
        "dynamodb:DescribeContinuousBackups",
        "the operator CLI's purge says how long point-in-time recovery keeps what it deleted",
    ),
    (
        "sqs:GetQueueAttributes",
        "the operator CLI's purge says how long the queue and its DLQ keep their messages",
    ),
    (
        "dynamodb:Scan",
        "the operator CLI's listing and replay (webhooks), with the operator's own credentials",
    ),
    (
        "sqs:ReceiveMessage",
        "the operator CLI's DLQ list and redrive (the notifier's messages come from the event source mapping)",
    ),
    (
        "sqs:DeleteMessage",
        "the operator CLI's DLQ redrive",
    ),
    (
        "sqs:ChangeMessageVisibility",
        "the operator CLI's DLQ listing releases what it looked at",
    ),
    (
        "dynamodb:Query",
        "Store::transitions, an entity's history: read by the tests; no binary calls it",
    ),
    (
        "dynamodb:CreateTable",
        "DynamoDbStore::create_tables: test and emulator set-up; the template creates the tables",
    ),
    (
        "dynamodb:UpdateTimeToLive",
        "DynamoDbStore::create_tables: test and emulator set-up; the template sets the TTL",
    ),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

// =========================================================================================
// The workspace: binaries and what their code declares.
// =========================================================================================

#[derive(Debug, Clone)]
struct Lambda {
    binary: Binary,
    /// Workspace-relative directory of its package.
    package: String,
    /// The `Source` variant it serves, by the registry (`None`: the notifier, which serves
    /// them all).
    source: Option<String>,
    /// The `Source` variants its main names.
    main_sources: BTreeSet<String>,
    /// IAM actions of the backends its main builds (`runtime::*_AWS_ACTIONS`).
    aws_actions: BTreeSet<String>,
}

impl Lambda {
    fn name(&self) -> &'static str {
        self.binary.name()
    }
}

#[derive(Clone)]
struct Code {
    binaries: BTreeMap<String, Lambda>,
    /// `metrics::names`: constant -> metric name.
    metric_names: BTreeMap<String, String>,
    /// Metric names (values) the code emits outside metrics.rs.
    emitted_metrics: BTreeSet<String>,
    /// `Service` dimension values the code emits.
    services: BTreeSet<String>,
    /// IAM actions of the SDK calls in the AWS adapters.
    adapter_actions: BTreeSet<String>,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
fn code_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `[[bin]]` names of a package manifest (or the package name when it declares none).
fn bin_names(manifest: &str) -> Vec<String> {
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
fn function_packages(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    manifest
        .split('"')
        .filter(|s| s.starts_with("functions/"))
        .map(str::to_string)
        .collect()
}

/// The `Source::X` variants a text names.
fn sources_named(text: &str) -> BTreeSet<String> {
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
fn lambda(root: &Path, package: &str, name: &str) -> Option<Lambda> {
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

/// `pub const NAME: &str = "Value";` lines of metrics.rs's `names` module.
fn metric_names(root: &Path) -> BTreeMap<String, String> {
    let text = code_text(&root.join("shared/src/metrics.rs"));
    let block = text
        .split("pub mod names {")
        .nth(1)
        .and_then(|b| b.split('}').next())
        .expect("metrics::names");
    block
        .lines()
        .filter_map(|l| {
            let (name, value) = l
                .trim()
                .strip_prefix("pub const ")?
                .split_once(": &str = ")?;
            let value = value.strip_suffix(';')?.trim_matches('"');
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// IAM actions of the SDK calls in the AWS adapters (shared/src/backends/aws).
fn adapter_actions(root: &Path) -> BTreeSet<String> {
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

fn scan_code(root: &Path) -> Code {
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

// =========================================================================================
// The template.
// =========================================================================================

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) => return Err("YAML aliases are not supported in template.yaml".into()),
        Yaml::BadValue => return Err("unreadable YAML value".into()),
    })
}

/// Parses template.yaml; short-form tags (`!Ref`) are refused: a plain YAML parser would
/// read them as strings and every check below would be wrong.
fn parse_template(text: &str) -> Result<Value, String> {
    for (n, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or_default();
        if code.trim_start().starts_with('#') {
            continue;
        }
        let chars: Vec<char> = code.chars().collect();
        for (k, c) in chars.iter().enumerate() {
            let prev_ok = k == 0 || matches!(chars[k - 1], ' ' | '[' | ',' | '{' | '-');
            if *c == '!' && prev_ok && chars.get(k + 1).is_some_and(char::is_ascii_uppercase) {
                return Err(format!(
                    "template.yaml:{}: short-form intrinsic tag; write the long form (Ref, Fn::Sub, Fn::GetAtt)",
                    n + 1
                ));
            }
        }
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let doc = docs.first().ok_or("template.yaml is empty")?;
    yaml_to_json(doc)
}

struct Template {
    doc: Value,
}

/// One Allow statement of a function's policies.
struct Grant {
    actions: Vec<String>,
    resources: Vec<Value>,
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn ref_of(v: &Value) -> Option<&str> {
    v.get("Ref")?.as_str()
}

fn getatt_of(v: &Value) -> Option<(&str, &str)> {
    match v.get("Fn::GetAtt")? {
        Value::Array(a) if a.len() == 2 => Some((a[0].as_str()?, a[1].as_str()?)),
        Value::String(s) => s.split_once('.'),
        _ => None,
    }
}

/// Logical ids a value refers to (Ref, Fn::GetAtt, `${X}` / `${X.Attr}` in Fn::Sub).
fn referenced(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = ref_of(v) {
                out.insert(r.to_string());
            }
            if let Some((r, _)) = getatt_of(v) {
                out.insert(r.to_string());
            }
            if let Some(sub) = m.get("Fn::Sub") {
                let text = match sub {
                    Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default(),
                    other => other.as_str().unwrap_or_default(),
                };
                for part in text.split("${").skip(1) {
                    let name = part.split('}').next().unwrap_or_default();
                    let name = name.split('.').next().unwrap_or_default();
                    if !name.starts_with("AWS::") && !name.starts_with('!') {
                        out.insert(name.to_string());
                    }
                }
            }
            for value in m.values() {
                referenced(value, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| referenced(x, out)),
        _ => {}
    }
}

/// The literal text of a value (strings, and Fn::Sub templates), to look for wildcards.
fn literal_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(literal_text).collect::<Vec<_>>().join(" "),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| *k != "Ref" && *k != "Fn::GetAtt")
            .map(|(_, x)| literal_text(x))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Replaces every `Fn::If [condition, on, AWS::NoValue]` by its `on` branch, so the checks
/// see the template with every optional part switched on: the superset of what any stack
/// gets (its variables, grants and resources together; the off form only drops them, and
/// cfn-lint checks that nothing unconditional refers to a conditional resource). Any other
/// shape of `Fn::If`, or one naming an undeclared condition, is refused: it could hide a
/// variable or a grant from the checks.
fn switch_on(v: &mut Value, conditions: &BTreeSet<String>) -> Result<(), String> {
    if let Some(args) = v.get("Fn::If").and_then(Value::as_array) {
        let no_value = serde_json::json!({"Ref": "AWS::NoValue"});
        let condition = args.first().and_then(Value::as_str).unwrap_or_default();
        if args.len() != 3 || args[2] != no_value || !conditions.contains(condition) {
            return Err(format!(
                "Fn::If must be [a declared condition, the value, {{Ref: AWS::NoValue}}]: {v}"
            ));
        }
        *v = args[1].clone();
    }
    match v {
        Value::Array(items) => items.iter_mut().try_for_each(|x| switch_on(x, conditions)),
        Value::Object(map) => map.values_mut().try_for_each(|x| switch_on(x, conditions)),
        _ => Ok(()),
    }
}

impl Template {
    fn load() -> (String, Template) {
        let text = std::fs::read_to_string(workspace_root().join("template.yaml"))
            .expect("template.yaml at the workspace root");
        let mut doc = parse_template(&text).unwrap_or_else(|e| panic!("{e}"));
        let conditions: BTreeSet<String> = doc["Conditions"]
            .as_object()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        switch_on(&mut doc, &conditions).unwrap_or_else(|e| panic!("template.yaml: {e}"));
        (text, Template { doc })
    }

    fn resources(&self) -> &Map<String, Value> {
        self.doc["Resources"].as_object().expect("Resources")
    }

    fn type_of(&self, logical: &str) -> Option<&str> {
        self.resources().get(logical)?.get("Type")?.as_str()
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(ty))
    }

    fn functions(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.of_type("AWS::Serverless::Function")
    }

    /// A function property, falling back to Globals.Function.
    fn prop<'a>(&'a self, f: &'a Value, key: &str) -> Option<&'a Value> {
        f["Properties"]
            .get(key)
            .or_else(|| self.doc["Globals"]["Function"].get(key))
    }

    fn binary_of<'a>(&self, f: &'a Value) -> Option<&'a str> {
        f["Metadata"]["BuildProperties"]["Binary"].as_str()
    }

    fn function_of_binary(&self, binary: &str) -> Vec<&String> {
        self.functions()
            .filter(|(_, f)| self.binary_of(f) == Some(binary))
            .map(|(n, _)| n)
            .collect()
    }

    /// The function's environment (Globals merged under its own).
    fn env(&self, f: &Value) -> BTreeMap<String, Value> {
        let mut env = BTreeMap::new();
        for src in [&self.doc["Globals"]["Function"], &f["Properties"]] {
            if let Some(vars) = src["Environment"]["Variables"].as_object() {
                env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        env
    }

    /// The Allow statements of a function's inline policies; other entries are problems.
    fn grants(&self, name: &str, f: &Value, problems: &mut Vec<String>) -> Vec<Grant> {
        let mut grants = Vec::new();
        if f["Properties"].get("Role").is_some() {
            problems.push(format!(
                "{name}: an explicit Role cannot be checked; use Policies with inline statements"
            ));
        }
        for entry in as_list(&f["Properties"]["Policies"]) {
            let Some(statements) = entry.get("Statement") else {
                problems.push(format!(
                    "{name}: policy entry {entry} is not an inline statement list (managed policies and SAM policy templates grant more than the code uses)"
                ));
                continue;
            };
            for st in as_list(statements) {
                if st["Effect"].as_str() != Some("Allow") {
                    continue;
                }
                grants.push(Grant {
                    actions: as_list(&st["Action"])
                        .into_iter()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect(),
                    resources: as_list(&st["Resource"]).into_iter().cloned().collect(),
                });
            }
        }
        grants
    }

    /// Functions' timeouts (seconds).
    fn timeout(&self, f: &Value) -> Option<i64> {
        self.prop(f, "Timeout")?.as_i64()
    }

    fn alarms(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.of_type("AWS::CloudWatch::Alarm")
    }

    /// (namespace, metric, dimensions) of an alarm, metric-math alarms included.
    fn alarm_metrics(alarm: &Value) -> Vec<(String, String, BTreeMap<String, Value>)> {
        let p = &alarm["Properties"];
        let mut out = Vec::new();
        let dims = |d: &Value| -> BTreeMap<String, Value> {
            as_list(d)
                .into_iter()
                .filter_map(|x| Some((x["Name"].as_str()?.to_string(), x["Value"].clone())))
                .collect()
        };
        if let Some(metric) = p["MetricName"].as_str() {
            out.push((
                p["Namespace"].as_str().unwrap_or_default().to_string(),
                metric.to_string(),
                dims(&p["Dimensions"]),
            ));
        }
        for m in as_list(&p["Metrics"]) {
            let metric = &m["MetricStat"]["Metric"];
            if let Some(name) = metric["MetricName"].as_str() {
                out.push((
                    metric["Namespace"].as_str().unwrap_or_default().to_string(),
                    name.to_string(),
                    dims(&metric["Dimensions"]),
                ));
            }
        }
        out
    }
}

fn refers_to(v: &Value, logical: &str) -> bool {
    let mut set = BTreeSet::new();
    referenced(v, &mut set);
    set.contains(logical)
}

// =========================================================================================
// The checks.
// =========================================================================================

/// Every route of ARCHITECTURE §2 is a POST HttpApi event of one function, whose binary serves it.
fn check_routes(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let mut declared = BTreeMap::new();
    for (name, f) in t.functions() {
        let Some(events) = f["Properties"]["Events"].as_object() else {
            continue;
        };
        for (ev_name, ev) in events {
            if ev["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &ev["Properties"];
            let path = p["Path"].as_str().unwrap_or_default().to_string();
            let method = p["Method"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if method != "POST" {
                problems.push(format!(
                    "{name}.{ev_name}: {path} is {method}, the providers POST"
                ));
            }
            match ref_of(&p["ApiId"]) {
                Some(api) if t.type_of(api) == Some("AWS::Serverless::HttpApi") => {}
                _ => problems.push(format!(
                    "{name}.{ev_name}: ApiId must Ref the template's AWS::Serverless::HttpApi"
                )),
            }
            declared
                .entry(path)
                .or_insert_with(Vec::new)
                .push(name.clone());
        }
    }
    for (path, source) in ROUTES {
        let Some(fns) = declared.remove(path) else {
            problems.push(format!(
                "route POST {path} ({source}) has no function with that HttpApi event"
            ));
            continue;
        };
        if fns.len() != 1 {
            problems.push(format!(
                "route {path} is served by several functions: {fns:?}"
            ));
        }
        let want = format!("{source:?}");
        for f in fns {
            let binary = t.binary_of(&t.resources()[&f]).unwrap_or_default();
            match code.binaries.get(binary) {
                Some(b) if b.source.as_deref() == Some(want.as_str()) => {}
                Some(b) => problems.push(format!(
                    "route {path} goes to {f} (binary {binary}), which serves {:?}, not {want}",
                    b.source
                )),
                None => problems.push(format!(
                    "route {path} goes to {f}, whose binary {binary:?} does not exist"
                )),
            }
        }
    }
    for (path, fns) in declared {
        problems.push(format!(
            "HttpApi route {path} on {fns:?} is not a route of http::ROUTES"
        ));
    }
    // Each route's full URL is an output, to paste into the provider's dashboard.
    let outputs: Vec<String> = t.doc["Outputs"]
        .as_object()
        .map(|o| o.values().map(|v| literal_text(&v["Value"])).collect())
        .unwrap_or_default();
    for (path, source) in ROUTES {
        let url = outputs
            .iter()
            .any(|o| o.starts_with("https://${") && o.ends_with(path));
        if !url {
            problems.push(format!(
                "no output gives the https URL of {path} ({source})"
            ));
        }
    }
    problems
}

/// Every Lambda binary is one function built from it by cargo-lambda, on the Lambda
/// runtime for Rust, logging JSON to a log group with a retention.
fn check_binaries(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for name in code.binaries.keys() {
        match t.function_of_binary(name).len() {
            1 => {}
            0 => problems.push(format!(
                "binary {name} has no function (Metadata.BuildProperties.Binary: {name})"
            )),
            n => problems.push(format!("binary {name} is built by {n} functions")),
        }
    }
    for (name, f) in t.functions() {
        match t.binary_of(f) {
            Some(b) if code.binaries.contains_key(b) => {}
            Some(b) => problems.push(format!(
                "{name} builds binary {b:?}, which is not a Lambda binary under functions/"
            )),
            None => problems.push(format!("{name}: no Metadata.BuildProperties.Binary")),
        }
        if f["Metadata"]["BuildMethod"].as_str() != Some("rust-cargolambda") {
            problems.push(format!(
                "{name}: Metadata.BuildMethod must be rust-cargolambda"
            ));
        }
        let expect = [
            ("Runtime", Value::from("provided.al2023")),
            ("Handler", Value::from("bootstrap")),
            ("Architectures", serde_json::json!(["arm64"])),
        ];
        for (key, want) in expect {
            if t.prop(f, key) != Some(&want) {
                problems.push(format!("{name}: {key} must be {want}"));
            }
        }
        // CodeUri: the workspace root, where `cargo lambda build --bin <binary>` runs and
        // target/lambda/<binary>/bootstrap appears.
        if t.prop(f, "CodeUri")
            .and_then(Value::as_str)
            .map(|s| s.trim_end_matches('/'))
            != Some(".")
        {
            problems.push(format!("{name}: CodeUri must be the workspace root (.)"));
        }
        let logging = t.prop(f, "LoggingConfig");
        let format = f["Properties"]["LoggingConfig"]["LogFormat"]
            .as_str()
            .or_else(|| t.doc["Globals"]["Function"]["LoggingConfig"]["LogFormat"].as_str());
        if format != Some("JSON") {
            problems.push(format!("{name}: LoggingConfig.LogFormat must be JSON"));
        }
        let group = logging.and_then(|l| ref_of(&l["LogGroup"]));
        match group {
            Some(g) if t.type_of(g) == Some("AWS::Logs::LogGroup") => {
                if t.resources()[g]["Properties"]
                    .get("RetentionInDays")
                    .is_none()
                {
                    problems.push(format!("{name}: log group {g} has no RetentionInDays"));
                }
            }
            _ => problems.push(format!(
                "{name}: LoggingConfig.LogGroup must Ref an AWS::Logs::LogGroup"
            )),
        }
    }
    problems
}

/// Each Lambda's main serves the source the registry says (`Binary::source`), which the
/// routes and the environment checks rely on.
fn check_mains(_: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, b) in &code.binaries {
        let declared: BTreeSet<String> = b.source.iter().cloned().collect();
        if b.main_sources != declared {
            problems.push(format!(
                "binary {name}: its main names {:?}, the registry (Binary::source) says {declared:?}",
                b.main_sources
            ));
        }
    }
    problems
}

/// What each function's binary reads is set (unless the registry excuses it); nothing else
/// is; ALLOW_UNVERIFIED never; secrets only from NoEcho parameters without a default.
fn check_env(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in t.functions() {
        let env = t.env(f);
        for var in vars::ALL {
            if let InTemplate::Never(why) = var.template {
                if env.contains_key(var.name) {
                    problems.push(format!("{name} sets {}: {why}", var.name));
                }
            }
        }
        for (key, value) in &env {
            if let Some(problem) = plaintext_secret(t, key, value) {
                problems.push(format!("{name}: {problem}"));
            }
        }
        let Some(binary) = t.binary_of(f).and_then(|b| code.binaries.get(b)) else {
            continue;
        };
        let reads = vars::ALL
            .iter()
            .filter(|v| v.binaries.contains(binary.binary));
        for var in reads {
            if var.template == InTemplate::Set && !env.contains_key(var.name) {
                problems.push(format!(
                    "{name} (binary {}) reads {}, which the template does not set",
                    binary.name(),
                    var.name
                ));
            }
        }
        for key in env.keys() {
            let registered = vars::by_name(key);
            if !registered.is_some_and(|v| v.binaries.contains(binary.binary)) {
                problems.push(format!(
                    "{name} sets {key}, which the code of binary {} ({}) never reads{}",
                    binary.name(),
                    binary.package,
                    if registered.is_none() {
                        " (not a variable of webhook_core::config::vars)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    problems
}

/// A secret variable's value must be a `NoEcho` parameter whose default (if any) is empty:
/// anything else puts the credential in the template, the console or describe-stacks.
fn plaintext_secret(t: &Template, key: &str, value: &Value) -> Option<String> {
    if !vars::by_name(key)?.secret {
        return None;
    }
    let Some(param) = ref_of(value).and_then(|p| t.doc["Parameters"].get(p)) else {
        return Some(format!("{key} is a secret: it must Ref a NoEcho parameter"));
    };
    if param["NoEcho"] != Value::Bool(true) {
        return Some(format!("{key} is a secret: its parameter must be NoEcho"));
    }
    match param.get("Default") {
        None => None,
        Some(Value::String(d)) if d.is_empty() => None,
        Some(_) => Some(format!(
            "{key} is a secret: its parameter's Default must be empty"
        )),
    }
}

/// Tables and queues named in a function's environment are in its policies; every AWS
/// operation its code can call is allowed; no wildcard; event sources are consumable.
fn check_policies(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in t.functions() {
        let grants = t.grants(name, f, &mut problems);
        for g in &grants {
            for a in g.actions.iter().filter(|a| a.contains('*')) {
                problems.push(format!("{name}: wildcard action {a}"));
            }
            for r in &g.resources {
                if literal_text(r).contains('*') {
                    problems.push(format!("{name}: wildcard resource {r}"));
                }
            }
        }
        let allowed = |logical: &str, action: &dyn Fn(&str) -> bool| {
            grants.iter().any(|g| {
                g.actions.iter().any(|a| action(a))
                    && g.resources.iter().any(|r| refers_to(r, logical))
            })
        };
        let mut tables = BTreeSet::new();
        let mut queues = BTreeSet::new();
        for (var, value) in t.env(f) {
            let target = ref_of(&value).map(str::to_string);
            let ty = target.as_deref().and_then(|x| t.type_of(x));
            if var.ends_with("_TABLE") && ty != Some("AWS::DynamoDB::Table") {
                problems.push(format!("{name}: {var} must Ref an AWS::DynamoDB::Table"));
            }
            if var.ends_with("_QUEUE_URL") && ty != Some("AWS::SQS::Queue") {
                problems.push(format!(
                    "{name}: {var} must Ref an AWS::SQS::Queue (its URL)"
                ));
            }
            let Some(target) = target else { continue };
            match ty {
                Some("AWS::DynamoDB::Table") => {
                    if !allowed(&target, &|a| a.starts_with("dynamodb:")) {
                        problems.push(format!(
                            "{name}: {var} names table {target}, which its policies do not grant"
                        ));
                    }
                    tables.insert(target);
                }
                Some("AWS::SQS::Queue") => {
                    if !allowed(&target, &|a| a.starts_with("sqs:")) {
                        problems.push(format!(
                            "{name}: {var} names queue {target}, which its policies do not grant"
                        ));
                    }
                    queues.insert(target);
                }
                _ => {}
            }
        }
        // SQS event sources of this function.
        for (esm, m) in t.of_type("AWS::Lambda::EventSourceMapping") {
            let p = &m["Properties"];
            if !refers_to(&p["FunctionName"], name) {
                continue;
            }
            let Some((queue, attribute)) = getatt_of(&p["EventSourceArn"]) else {
                problems.push(format!(
                    "{esm}: EventSourceArn must be Fn::GetAtt of a queue's Arn or a table's StreamArn"
                ));
                continue;
            };
            if attribute == "StreamArn" {
                for action in STREAM_CONSUMER_ACTIONS {
                    if !allowed(queue, &|a| a == action) {
                        problems.push(format!(
                            "{name} consumes {queue}'s stream ({esm}) without {action} on it"
                        ));
                    }
                }
                continue;
            }
            for action in SQS_CONSUMER_ACTIONS {
                if !allowed(queue, &|a| a == action) {
                    problems.push(format!(
                        "{name} consumes {queue} ({esm}) without {action} on it"
                    ));
                }
            }
            queues.insert(queue.to_string());
        }
        if let Some(events) = f["Properties"]["Events"].as_object() {
            for (ev, e) in events {
                if e["Type"].as_str() == Some("SQS") {
                    problems.push(format!(
                        "{name}.{ev}: SAM's SQS event attaches AWSLambdaSQSQueueExecutionRole (every queue); use an AWS::Lambda::EventSourceMapping and scoped statements"
                    ));
                }
            }
        }
        // The AWS operations the binary's code can call, and nothing more.
        let Some(binary) = t.binary_of(f).and_then(|b| code.binaries.get(b)) else {
            continue;
        };
        let consumes = t
            .of_type("AWS::Lambda::EventSourceMapping")
            .any(|(_, m)| refers_to(&m["Properties"]["FunctionName"], name));
        for g in &grants {
            for a in &g.actions {
                let aws = a.starts_with("dynamodb:") || a.starts_with("sqs:");
                let polled = consumes
                    && (SQS_CONSUMER_ACTIONS.contains(&a.as_str())
                        || STREAM_CONSUMER_ACTIONS.contains(&a.as_str()));
                if aws && !polled && !binary.aws_actions.contains(a) {
                    problems.push(format!(
                        "{name} is granted {a}, which the code of binary {} never calls",
                        binary.name()
                    ));
                }
            }
        }
        for action in &binary.aws_actions {
            let targets = if action.starts_with("dynamodb:") {
                &tables
            } else {
                &queues
            };
            if !targets.iter().any(|r| allowed(r, &|a| a == action)) {
                problems.push(format!(
                    "{name}: the code of binary {} calls {action}, which no statement allows on its {}",
                    binary.name(),
                    if action.starts_with("dynamodb:") { "tables" } else { "queues" }
                ));
            }
        }
    }
    problems
}

/// The IAM actions the wiring declares (`runtime::*_AWS_ACTIONS`) are the SDK calls of the
/// AWS adapters, less those no Lambda makes: a new call cannot be left ungranted.
fn check_sdk_calls(_: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let declared: BTreeSet<&String> = code
        .binaries
        .values()
        .flat_map(|b| &b.aws_actions)
        .collect();
    for action in &code.adapter_actions {
        let excused = NOT_CALLED_BY_LAMBDAS.iter().any(|(a, _)| a == action);
        if !excused && !declared.contains(action) {
            problems.push(format!(
                "the AWS adapters call {action}, which no runtime::*_AWS_ACTIONS declares"
            ));
        }
    }
    for action in declared {
        if !code.adapter_actions.contains(action) {
            problems.push(format!(
                "{action} is declared in runtime::*_AWS_ACTIONS, but the AWS adapters never call it"
            ));
        }
    }
    for (action, why) in NOT_CALLED_BY_LAMBDAS {
        if !code.adapter_actions.contains(action) {
            problems.push(format!(
                "{action} ({why}) is excused, but the AWS adapters no longer call it"
            ));
        }
    }
    problems
}

/// The transitions queue: FIFO, redriven to a FIFO DLQ after a bounded number of receives,
/// consumed by the notifier with ReportBatchItemFailures, visibility >= 6x its timeout.
fn check_queue(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let mut published = BTreeSet::new();
    for (_, f) in t.functions() {
        if let Some(q) = t.env(f).get("TRANSITIONS_QUEUE_URL").and_then(ref_of) {
            published.insert(q.to_string());
        }
    }
    if published.len() != 1 {
        problems.push(format!(
            "one queue must be sent to (the relay's TRANSITIONS_QUEUE_URL), found {published:?}"
        ));
    }
    for queue in &published {
        let Some(q) = t.resources().get(queue) else {
            continue;
        };
        let p = &q["Properties"];
        if p["FifoQueue"] != Value::Bool(true) {
            problems.push(format!("{queue} must be a FIFO queue"));
        }
        if p["ContentBasedDeduplication"] != Value::Bool(false) {
            problems.push(format!("{queue}: ContentBasedDeduplication must be false (MessageDeduplicationId = transition id)"));
        }
        let redrive = &p["RedrivePolicy"];
        match getatt_of(&redrive["deadLetterTargetArn"]) {
            Some((dlq, _))
                if t.resources()[dlq]["Properties"]["FifoQueue"] == Value::Bool(true) => {}
            _ => problems.push(format!(
                "{queue}: RedrivePolicy must target a FIFO dead-letter queue"
            )),
        }
        match redrive["maxReceiveCount"].as_i64() {
            Some(1..=10) => {}
            other => problems.push(format!(
                "{queue}: maxReceiveCount {other:?} must be 1 to 10"
            )),
        }
        let consumers: Vec<_> = t
            .of_type("AWS::Lambda::EventSourceMapping")
            .filter(|(_, m)| {
                getatt_of(&m["Properties"]["EventSourceArn"]).map(|x| x.0) == Some(queue.as_str())
            })
            .collect();
        if consumers.len() != 1 {
            problems.push(format!(
                "{queue} must have exactly one event source mapping, found {}",
                consumers.len()
            ));
        }
        for (esm, m) in consumers {
            let p = &m["Properties"];
            let types: Vec<_> = as_list(&p["FunctionResponseTypes"])
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            if !types.contains(&"ReportBatchItemFailures") {
                problems.push(format!(
                    "{esm}: FunctionResponseTypes must include ReportBatchItemFailures"
                ));
            }
            match p["BatchSize"].as_i64() {
                Some(1..=10) => {}
                other => {
                    problems.push(format!("{esm}: BatchSize {other:?} must be 1 to 10 (FIFO)"))
                }
            }
            let Some((fname, f)) = t
                .functions()
                .find(|(n, _)| refers_to(&p["FunctionName"], n))
            else {
                problems.push(format!(
                    "{esm}: FunctionName must Ref a function of the template"
                ));
                continue;
            };
            let serves_all = t
                .binary_of(f)
                .and_then(|b| code.binaries.get(b))
                .is_some_and(|b| b.source.is_none());
            if !serves_all {
                problems.push(format!(
                    "{esm}: {fname} is not the notifier (its binary serves one source)"
                ));
            }
            let visibility = q["Properties"]["VisibilityTimeout"].as_i64().unwrap_or(30);
            let timeout = t.timeout(f).unwrap_or(3);
            if visibility < 6 * timeout {
                problems.push(format!("{queue}: VisibilityTimeout {visibility} s is under 6x {fname}'s {timeout} s timeout"));
            }
        }
    }
    problems
}

/// Alarms on WebhookIngest metrics watch names and services the code emits.
fn check_metrics(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, alarm) in t.alarms() {
        for (namespace, metric, dims) in Template::alarm_metrics(alarm) {
            if namespace != NAMESPACE {
                continue;
            }
            if !code.metric_names.values().any(|v| *v == metric) {
                problems.push(format!(
                    "{name} watches {NAMESPACE}/{metric}, not a name in metrics::names"
                ));
            } else if !code.emitted_metrics.contains(&metric) {
                problems.push(format!(
                    "{name} watches {NAMESPACE}/{metric}, which no code emits"
                ));
            }
            match dims.get("Service").and_then(Value::as_str) {
                Some(s) if code.services.contains(s) => {}
                Some(s) => problems.push(format!(
                    "{name}: Service {s:?} is not a service the code emits metrics for ({:?})",
                    code.services
                )),
                None => problems.push(format!(
                    "{name}: EMF metrics are published per Service; the alarm needs that dimension"
                )),
            }
            if dims.keys().any(|k| k != "Service") {
                problems.push(format!(
                    "{name}: EMF lines carry only the Service dimension, not {:?}",
                    dims.keys()
                ));
            }
        }
    }
    problems
}

/// The alarms of ARCHITECTURE §8 exist and notify an SNS topic with an e-mail subscription.
fn check_alerting(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let topics: BTreeSet<&String> = t
        .of_type("AWS::SNS::Subscription")
        .filter(|(_, s)| {
            let p = &s["Properties"];
            p["Protocol"].as_str() == Some("email")
                && ref_of(&p["Endpoint"]).is_some_and(|e| t.doc["Parameters"].get(e).is_some())
        })
        .filter_map(|(_, s)| ref_of(&s["Properties"]["TopicArn"]))
        .filter_map(|topic| t.resources().keys().find(|k| *k == topic))
        .collect();
    if topics.is_empty() {
        problems
            .push("no SNS topic with an e-mail subscription whose address is a parameter".into());
    }
    let metrics: Vec<(String, String, String, BTreeMap<String, Value>)> = t
        .alarms()
        .flat_map(|(n, a)| {
            Template::alarm_metrics(a)
                .into_iter()
                .map(move |(ns, m, d)| (n.clone(), ns, m, d))
        })
        .collect();
    for (name, alarm) in t.alarms() {
        let actions = as_list(&alarm["Properties"]["AlarmActions"]);
        if actions.is_empty()
            || !actions
                .iter()
                .all(|a| ref_of(a).is_some_and(|r| topics.iter().any(|t| *t == r)))
        {
            problems.push(format!("{name}: AlarmActions must notify the alarm topic"));
        }
    }
    let has = |ns: &str, metric: &str, dim: &str, pred: &dyn Fn(&Value) -> bool| {
        metrics
            .iter()
            .any(|(_, n, m, d)| n == ns && m == metric && d.get(dim).is_some_and(pred))
    };
    for (fname, _) in t.functions() {
        for metric in ["Errors", "Throttles"] {
            if !has("AWS/Lambda", metric, "FunctionName", &|v| {
                ref_of(v) == Some(fname.as_str())
            }) {
                problems.push(format!("no AWS/Lambda {metric} alarm for {fname}"));
            }
        }
    }
    for (qname, _) in t.of_type("AWS::SQS::Queue") {
        let is_dlq = is_failure_destination(t, qname)
            || t.of_type("AWS::SQS::Queue").any(|(_, other)| {
                getatt_of(&other["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]).map(|x| x.0)
                    == Some(qname.as_str())
            });
        let (metric, what) = if is_dlq {
            ("ApproximateNumberOfMessagesVisible", "depth")
        } else {
            ("ApproximateAgeOfOldestMessage", "age of the oldest message")
        };
        if !has("AWS/SQS", metric, "QueueName", &|v| {
            getatt_of(v) == Some((qname.as_str(), "QueueName"))
        }) {
            problems.push(format!("no {what} alarm ({metric}) on queue {qname}"));
        }
    }
    for (api, _) in t.of_type("AWS::Serverless::HttpApi") {
        if !has("AWS/ApiGateway", "5xx", "ApiId", &|v| {
            ref_of(v) == Some(api.as_str())
        }) {
            problems.push(format!(
                "no 5xx alarm on {api} (AWS/ApiGateway, dimension ApiId)"
            ));
        }
    }
    let verification = code
        .metric_names
        .get("VERIFICATION_FAILED")
        .cloned()
        .unwrap_or_default();
    for source in Source::ALL {
        if !has(NAMESPACE, &verification, "Service", &|v| {
            v.as_str() == Some(source.as_str())
        }) {
            problems.push(format!("no {verification} alarm for Service={source}"));
        }
    }
    let others: Vec<&String> = code
        .services
        .iter()
        .filter(|s| Source::parse(s).is_none())
        .collect();
    for key in ["NOTIFICATIONS_FAILED", "NOTIFICATIONS_PERMANENT_FAILURES"] {
        let metric = code.metric_names.get(key).cloned().unwrap_or_default();
        if !has(NAMESPACE, &metric, "Service", &|v| {
            others.iter().any(|s| v.as_str() == Some(s.as_str()))
        }) {
            problems.push(format!(
                "no {metric} alarm for the notifier's Service ({others:?})"
            ));
        }
    }
    problems
}

/// One plotted series of a dashboard widget: (namespace, metric, dimensions, stat).
type Series = (String, String, BTreeMap<String, String>, String);

/// A dashboard's body: the JSON text of its `Fn::Sub`, with `${...}` left in place (every
/// placeholder sits inside a JSON string).
fn dashboard_body(dashboard: &Value) -> Result<Value, String> {
    let body = &dashboard["Properties"]["DashboardBody"];
    let text = body["Fn::Sub"]
        .as_str()
        .or_else(|| body["Fn::Sub"][0].as_str())
        .ok_or("DashboardBody is not an Fn::Sub of a JSON text")?;
    serde_json::from_str(text).map_err(|e| format!("DashboardBody is not JSON: {e}"))
}

/// Every series of the metric widgets (full arrays only: `"."` shorthands are refused by
/// the check, since they hide which metric is meant) and every log widget's query.
fn dashboard_series(body: &Value) -> (Vec<Series>, Vec<String>) {
    let (mut series, mut queries) = (Vec::new(), Vec::new());
    for w in as_list(&body["widgets"]) {
        let p = &w["properties"];
        if let Some(q) = p["query"].as_str() {
            queries.push(q.to_string());
        }
        let default_stat = p["stat"].as_str().unwrap_or("Average");
        for m in as_list(&p["metrics"]) {
            let parts = as_list(m);
            if parts.iter().any(|x| x.get("expression").is_some()) {
                continue; // metric math over the series around it, which are checked
            }
            let text: Vec<String> = parts
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            let stat = parts
                .iter()
                .find_map(|x| x["stat"].as_str())
                .unwrap_or(default_stat);
            let dims = text
                .get(2..)
                .unwrap_or_default()
                .chunks(2)
                .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                .collect();
            series.push((
                text.first().cloned().unwrap_or_default(),
                text.get(1).cloned().unwrap_or_default(),
                dims,
                stat.to_string(),
            ));
        }
    }
    (series, queries)
}

/// `${Name}` or `${Name.Attribute}` placeholders of a text.
fn placeholders(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(str::to_string)
        .collect()
}

/// The series one dashboard widget needs to plot, as (namespace, metric, dimension, value, stat).
fn required_series(t: &Template, code: &Code) -> Vec<(String, String, String, String, String)> {
    let name = |k: &str| {
        code.metric_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| k.to_string())
    };
    let mut want = Vec::new();
    let mut push = |ns: &str, metric: String, dim: &str, value: String, stat: &str| {
        want.push((
            ns.to_string(),
            metric,
            dim.to_string(),
            value,
            stat.to_string(),
        ))
    };
    for source in Source::ALL {
        for k in [
            "RECEIVED",
            "ACCEPTED",
            "REJECTED",
            "DUPLICATES",
            "STALE",
            "FLAGGED",
            "TRANSITIONS_PUBLISHED",
            "UNRECOGNISED",
        ] {
            push(NAMESPACE, name(k), "Service", source.as_str().into(), "Sum");
        }
        for stat in ["p50", "p99"] {
            push(
                NAMESPACE,
                name("LATENCY"),
                "Service",
                source.as_str().into(),
                stat,
            );
        }
    }
    let notifier = webhook_core::notify::METRICS_SERVICE;
    for k in ["NOTIFICATIONS_FAILED", "NOTIFICATIONS_PERMANENT_FAILURES"] {
        push(NAMESPACE, name(k), "Service", notifier.into(), "Sum");
    }
    for (f, _) in t.functions() {
        for (metric, stat) in [("Errors", "Sum"), ("Throttles", "Sum"), ("Duration", "p99")] {
            push(
                "AWS/Lambda",
                metric.into(),
                "FunctionName",
                f.to_string(),
                stat,
            );
        }
    }
    for (q, _) in t.of_type("AWS::SQS::Queue") {
        let is_dlq = is_failure_destination(t, q)
            || t.of_type("AWS::SQS::Queue").any(|(_, other)| {
                getatt_of(&other["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]).map(|x| x.0)
                    == Some(q.as_str())
            });
        let value = format!("{q}.QueueName");
        push(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible".into(),
            "QueueName",
            value.clone(),
            "Maximum",
        );
        if !is_dlq {
            push(
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage".into(),
                "QueueName",
                value,
                "Maximum",
            );
        }
    }
    want
}

/// The CloudWatch dashboard plots what the issue asks for, and only metrics the code emits
/// (name, namespace and dimensions as the EMF lines carry them), of resources the template
/// declares; its URL is a stack output.
fn check_dashboard(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let dashboards: Vec<_> = t.of_type("AWS::CloudWatch::Dashboard").collect();
    if dashboards.is_empty() {
        return vec!["no AWS::CloudWatch::Dashboard".into()];
    }
    let mut all = Vec::new();
    for (name, d) in &dashboards {
        let body = match dashboard_body(d) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let (series, queries) = dashboard_series(&body);
        for (ns, metric, dims, _) in &series {
            problems.extend(series_problems(t, code, name, ns, metric, dims));
        }
        for q in &queries {
            for p in placeholders(q) {
                if t.type_of(&p) != Some("AWS::Logs::LogGroup") {
                    problems.push(format!(
                        "{name}: a log query reads ${{{p}}}, not a log group of the template"
                    ));
                }
            }
        }
        if !queries
            .iter()
            .any(|q| q.contains("outcome = 'rejected'") && q.contains("by source, reason"))
        {
            problems.push(format!(
                "{name}: no log widget counting rejections by source and reason"
            ));
        }
        all.extend(series);
    }
    for (ns, metric, dim, value, stat) in required_series(t, code) {
        let plotted = all.iter().any(|(n, m, d, s)| {
            *n == ns
                && *m == metric
                && *s == stat
                && d.get(&dim)
                    .is_some_and(|v| *v == format!("${{{value}}}") || *v == value)
        });
        if !plotted {
            problems.push(format!(
                "the dashboard does not plot {ns}/{metric} {stat} for {dim}={value}"
            ));
        }
    }
    let output = t.doc["Outputs"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(_, o)| {
            dashboards
                .iter()
                .any(|(n, _)| placeholders(&literal_or_sub(&o["Value"])).contains(n))
        });
    if !output {
        problems.push("no stack output gives the dashboard's URL".into());
    }
    problems
}

fn literal_or_sub(v: &Value) -> String {
    v["Fn::Sub"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| literal_text(v))
}

/// What is wrong with one plotted series.
fn series_problems(
    t: &Template,
    code: &Code,
    name: &str,
    ns: &str,
    metric: &str,
    dims: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let resource = |v: &str, ty: &str, attr: Option<&str>| {
        let inner = v.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
        let (logical, at) = match inner.map(|i| i.split_once('.')) {
            Some(Some((l, a))) => (l, Some(a)),
            Some(None) => (inner.unwrap_or_default(), None),
            None => return false,
        };
        t.type_of(logical) == Some(ty) && at == attr
    };
    match ns {
        NAMESPACE => {
            if !code.metric_names.values().any(|v| v == metric) {
                problems.push(format!(
                    "{name} plots {NAMESPACE}/{metric}, not a name in metrics::names"
                ));
            } else if !code.emitted_metrics.contains(metric) {
                problems.push(format!(
                    "{name} plots {NAMESPACE}/{metric}, which no code emits"
                ));
            }
            match dims.get("Service") {
                Some(s) if code.services.contains(s) => {}
                other => problems.push(format!("{name}: {metric} with Service {other:?}, not a service the code emits metrics for")),
            }
            if dims.keys().any(|k| k != "Service") {
                problems.push(format!(
                    "{name}: {metric}: EMF lines carry only the Service dimension, not {:?}",
                    dims.keys()
                ));
            }
        }
        "AWS/Lambda" => {
            if !dims
                .get("FunctionName")
                .is_some_and(|v| resource(v, "AWS::Serverless::Function", None))
            {
                problems.push(format!(
                    "{name}: {ns}/{metric} of {dims:?}, not a function of the template"
                ));
            }
        }
        "AWS/SQS" => {
            if !dims
                .get("QueueName")
                .is_some_and(|v| resource(v, "AWS::SQS::Queue", Some("QueueName")))
            {
                problems.push(format!(
                    "{name}: {ns}/{metric} of {dims:?}, not a queue of the template"
                ));
            }
        }
        other => problems.push(format!(
            "{name}: a series in namespace {other:?}, which nothing here checks"
        )),
    }
    problems
}

/// A silence alarm per source: no accepted webhook for `<Source>SilenceHours` hours, missing
/// data counting as silence, off (its condition false) when the parameter is 0.
fn check_silence(t: &Template, _: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for source in Source::ALL {
        let found = t.alarms().find(|(_, a)| {
            Template::alarm_metrics(a).iter().any(|(ns, m, d)| {
                ns == NAMESPACE
                    && m == "Accepted"
                    && d.get("Service").and_then(Value::as_str) == Some(source.as_str())
            })
        });
        let Some((name, alarm)) = found else {
            problems.push(format!("no silence alarm (Accepted, Service={source})"));
            continue;
        };
        let p = &alarm["Properties"];
        let hours = ref_of(&p["EvaluationPeriods"])
            .unwrap_or_default()
            .to_string();
        if !hours.ends_with("SilenceHours") || t.doc["Parameters"].get(&hours).is_none() {
            problems.push(format!(
                "{name}: EvaluationPeriods must be a <Source>SilenceHours parameter"
            ));
        }
        if p["TreatMissingData"].as_str() != Some("breaching") {
            problems.push(format!(
                "{name}: a silent source sends no data; TreatMissingData must be breaching"
            ));
        }
        if p["ComparisonOperator"].as_str() != Some("LessThanThreshold")
            || p["Period"].as_i64() != Some(3600)
        {
            problems.push(format!(
                "{name}: must alarm on fewer than Threshold accepted per hour"
            ));
        }
        let condition = alarm["Condition"].as_str().unwrap_or_default();
        if !refers_to(&t.doc["Conditions"][condition], &hours) {
            problems.push(format!(
                "{name}: its Condition must turn it off when {hours} is 0"
            ));
        }
    }
    problems
}

/// What the Lambda service calls with a function's role to poll its SQS event source.
/// What the Lambda service calls, under a function's role, to read a DynamoDB stream for it.
const STREAM_CONSUMER_ACTIONS: [&str; 4] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

const SQS_CONSUMER_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

type Check = fn(&Template, &Code) -> Vec<String>;

const CHECKS: [(&str, Check); 17] = [
    ("expiry", check_expiry),
    ("routes", check_routes),
    ("binaries", check_binaries),
    ("mains", check_mains),
    ("environment", check_env),
    ("policies", check_policies),
    ("sdk calls", check_sdk_calls),
    ("queue", check_queue),
    ("relay", check_relay),
    ("metrics", check_metrics),
    ("alerting", check_alerting),
    ("dashboard", check_dashboard),
    ("silence", check_silence),
    ("unrecognised", refusals::check_unrecognised),
    ("suspension risk", refusals::check_suspension_risk),
    ("refusals query", refusals::check_refusals_query),
    ("secret references", secrets::check_secret_references),
];

/// Every table holding payloads (the tables of `EVENTS_TABLE`, `ENTITIES_TABLE` and
/// `TRANSITIONS_TABLE`) expires items by TTL on `expires_at`, the attribute the store writes
/// (ARCHITECTURE §5, decision 43).
fn check_expiry(t: &Template, _: &Code) -> Vec<String> {
    let mut tables = BTreeSet::new();
    for (_, f) in t.functions() {
        let env = t.env(f);
        for var in ["EVENTS_TABLE", "ENTITIES_TABLE", "TRANSITIONS_TABLE"] {
            if let Some(table) = env.get(var).and_then(ref_of) {
                tables.insert(table.to_string());
            }
        }
    }
    if tables.len() != 3 {
        return vec![format!(
            "expected the three payload tables, found {tables:?}"
        )];
    }
    let mut problems = Vec::new();
    for table in tables {
        let ttl = &t.resources()[&table]["Properties"]["TimeToLiveSpecification"];
        if ttl["AttributeName"] != "expires_at" || ttl["Enabled"] != Value::Bool(true) {
            problems.push(format!(
                "{table} holds payloads but does not expire them (TimeToLiveSpecification on expires_at)"
            ));
        }
    }
    problems
}

/// The relay (ARCHITECTURE §6): the transitions table streams `NEW_IMAGE` to exactly one
/// function, the relay's binary, from the oldest record, one batch per shard at a time, with
/// partial batch responses, bisection, bounded retries and an on-failure destination (a
/// standard queue, as Lambda requires); only inserts of queued transitions invoke it; its
/// lag and failures are alarmed.
fn check_relay(t: &Template, _: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_string());
        }
    };
    let Some((table, _)) = t
        .of_type("AWS::DynamoDB::Table")
        .find(|(_, r)| r["Properties"]["StreamSpecification"].is_object())
    else {
        return vec!["no table has a StreamSpecification (the relay's outbox)".into()];
    };
    let transitions = t.functions().any(|(_, f)| {
        t.env(f)
            .get("TRANSITIONS_TABLE")
            .and_then(ref_of)
            .is_some_and(|r| r == table)
    });
    check(
        transitions,
        "the streamed table must be the transitions table",
    );
    let spec = &t.resources()[table]["Properties"]["StreamSpecification"];
    check(
        spec["StreamViewType"].as_str() == Some("NEW_IMAGE"),
        "the transitions stream must carry NEW_IMAGE (the relay reads the queued message)",
    );
    let mappings: Vec<&Value> = t
        .of_type("AWS::Lambda::EventSourceMapping")
        .filter(|(_, m)| {
            getatt_of(&m["Properties"]["EventSourceArn"]) == Some((table, "StreamArn"))
        })
        .map(|(_, m)| &m["Properties"])
        .collect();
    let [p] = mappings.as_slice() else {
        problems.push(format!(
            "{table}'s stream must have one event source mapping"
        ));
        return problems;
    };
    let relay = t
        .functions()
        .find(|(n, _)| refers_to(&p["FunctionName"], n))
        .and_then(|(_, f)| t.binary_of(f));
    check(
        relay == Some("relay"),
        "the stream's function must build binary relay",
    );
    check(
        p["StartingPosition"] == "TRIM_HORIZON",
        "StartingPosition must be TRIM_HORIZON",
    );
    check(
        as_list(&p["FunctionResponseTypes"]).contains(&&Value::from("ReportBatchItemFailures")),
        "the relay's mapping needs ReportBatchItemFailures",
    );
    check(
        p["BisectBatchOnFunctionError"] == true,
        "BisectBatchOnFunctionError must be on",
    );
    check(
        matches!(p["MaximumRetryAttempts"].as_i64(), Some(0..=10000)),
        "MaximumRetryAttempts must be bounded (0 to 10000)",
    );
    check(
        p["ParallelizationFactor"].as_i64().unwrap_or(1) == 1,
        "ParallelizationFactor must be 1 (one batch per shard: order)",
    );
    let destination = getatt_of(&p["DestinationConfig"]["OnFailure"]["Destination"]);
    let standard = destination.is_some_and(|(q, _)| {
        t.type_of(q) == Some("AWS::SQS::Queue")
            && t.resources()[q]["Properties"]["FifoQueue"] != true
    });
    check(
        standard,
        "the relay's mapping needs an on-failure destination (a standard SQS queue)",
    );
    let filters = serde_json::to_string(&p["FilterCriteria"]).unwrap_or_default();
    check(
        filters.contains("INSERT") && filters.contains("queued"),
        "the relay's mapping must filter to inserts of queued transitions",
    );
    let alarmed: BTreeSet<String> = t
        .alarms()
        .flat_map(|(_, a)| Template::alarm_metrics(a))
        .map(|(_, metric, _)| metric)
        .collect();
    for metric in ["IteratorAge", "RelayFailures"] {
        check(
            alarmed.contains(metric),
            &format!("no alarm on the relay's {metric}"),
        );
    }
    problems
}

/// A queue that receives only what an event source mapping gave up on (its on-failure
/// destination): watched for depth, like a dead-letter queue, not for age.
fn is_failure_destination(t: &Template, queue: &str) -> bool {
    t.of_type("AWS::Lambda::EventSourceMapping").any(|(_, m)| {
        getatt_of(&m["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]).map(|x| x.0)
            == Some(queue)
    })
}

fn all_problems(t: &Template, code: &Code) -> Vec<String> {
    CHECKS
        .iter()
        .flat_map(|(name, check)| {
            check(t, code)
                .into_iter()
                .map(move |p| format!("[{name}] {p}"))
        })
        .collect()
}

fn code() -> &'static Code {
    static CODE: std::sync::OnceLock<Code> = std::sync::OnceLock::new();
    CODE.get_or_init(|| scan_code(&workspace_root()))
}

#[test]
fn template_matches_the_code() {
    let (_, t) = Template::load();
    let code = code();
    let problems = all_problems(&t, code);
    assert!(
        problems.is_empty(),
        "template.yaml disagrees with the code:\n  {}\n\nwhat the code declares, per binary:\n{}",
        problems.join("\n  "),
        code.binaries
            .values()
            .map(|b| format!(
                "  {} ({:?}): env {:?}, aws {:?}",
                b.name(),
                b.source,
                vars::ALL
                    .iter()
                    .filter(|v| v.binaries.contains(b.binary))
                    .map(|v| v.name)
                    .collect::<Vec<_>>(),
                b.aws_actions
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_workspace_s_binaries_are_the_registry_s() {
    // What the checks compare must be there, or every other check is vacuous.
    let code = code();
    let lambda_bins: Vec<&str> = code.binaries.keys().map(String::as_str).collect();
    let registry: BTreeSet<&str> = Binary::ALL
        .iter()
        .filter(|b| b.is_lambda())
        .map(|b| b.name())
        .collect();
    assert_eq!(lambda_bins.into_iter().collect::<BTreeSet<_>>(), registry);
    let fulfilment = &code.binaries["fulfilment"];
    assert_eq!(fulfilment.source.as_deref(), Some("Fulfilment"));
    assert_eq!(
        fulfilment.aws_actions,
        runtime::INGEST_AWS_ACTIONS.map(String::from).into()
    );
    let notifier = &code.binaries["notifier"];
    assert_eq!(notifier.source, None);
    assert_eq!(
        notifier.aws_actions,
        runtime::NOTIFIER_AWS_ACTIONS.map(String::from).into()
    );
    for action in [
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:CreateTable",
        "sqs:SendMessage",
    ] {
        assert!(
            code.adapter_actions.contains(action),
            "{action}: {:?}",
            code.adapter_actions
        );
    }
    assert!(
        code.metric_names
            .get("VERIFICATION_FAILED")
            .map(String::as_str)
            == Some(webhook_core::metrics::names::VERIFICATION_FAILED),
        "{:?}",
        code.metric_names
    );
    for name in [
        "VerificationFailed",
        "NotificationsFailed",
        "NotificationsPermanentFailures",
    ] {
        assert!(
            code.emitted_metrics.contains(name),
            "{name} not emitted: {:?}",
            code.emitted_metrics
        );
    }
    assert!(code.services.contains("notifier"), "{:?}", code.services);
}

// =========================================================================================
// The checks notice breakage (each on a broken copy of the real template).
// =========================================================================================

fn broken(edit: impl FnOnce(&mut Value)) -> Template {
    let (_, t) = Template::load();
    let mut doc = t.doc;
    edit(&mut doc);
    Template { doc }
}

fn function_name_of(doc: &Value, binary: &str) -> String {
    doc["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| panic!("no function for {binary}"))
}

fn assert_notices(check: Check, t: &Template, needle: &str) {
    let problems = check(t, code());
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {problems:#?}"
    );
}

#[test]
fn a_missing_route_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "invoice");
        doc["Resources"][&f]["Properties"]["Events"]
            .as_object_mut()
            .unwrap()
            .clear();
    });
    assert_notices(check_routes, &t, "/callback/update-invoice");
}

#[test]
fn a_missing_webhook_url_output_is_noticed() {
    let t = broken(|doc| {
        doc["Outputs"]
            .as_object_mut()
            .unwrap()
            .retain(|_, o| !literal_text(&o["Value"]).ends_with("/api/v1/abaha/webhook"));
    });
    assert_notices(
        check_routes,
        &t,
        "no output gives the https URL of /api/v1/abaha/webhook",
    );
}

#[test]
fn a_route_on_the_wrong_function_or_method_is_noticed() {
    let t = broken(|doc| {
        let pancake = function_name_of(doc, "pancake");
        let abaha = function_name_of(doc, "abaha");
        let ev = doc["Resources"][&pancake]["Properties"]["Events"].clone();
        doc["Resources"][&abaha]["Properties"]["Events"] = ev;
    });
    assert_notices(check_routes, &t, "serves");
    let t = broken(|doc| {
        let f = function_name_of(doc, "fulfilment");
        for (_, ev) in doc["Resources"][&f]["Properties"]["Events"]
            .as_object_mut()
            .unwrap()
        {
            ev["Properties"]["Method"] = Value::from("GET");
        }
    });
    assert_notices(check_routes, &t, "the providers POST");
}

#[test]
fn a_missing_or_misnamed_binary_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake-pos");
        doc["Resources"][&f]["Metadata"]["BuildProperties"]["Binary"] = Value::from("pancake_pos");
    });
    assert_notices(check_binaries, &t, "binary pancake-pos has no function");
    assert_notices(check_binaries, &t, "\"pancake_pos\"");
}

#[test]
fn a_payload_table_without_ttl_is_noticed() {
    let t = broken(|doc| {
        doc["Resources"]["TransitionsTable"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("TimeToLiveSpecification");
    });
    assert_notices(check_expiry, &t, "TransitionsTable holds payloads");
}

#[test]
fn a_missing_log_retention_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "abaha");
        let group = doc["Resources"][&f]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap()
            .to_string();
        doc["Resources"][&group]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("RetentionInDays");
    });
    assert_notices(check_binaries, &t, "RetentionInDays");
}

#[test]
fn an_unset_variable_the_code_reads_is_noticed() {
    assert!(vars::FULFILMENT_SECRETS
        .binaries
        .contains(Binary::Fulfilment));
    let t = broken(|doc| {
        let f = function_name_of(doc, "fulfilment");
        doc["Resources"][&f]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove("FULFILMENT_SECRETS");
    });
    assert_notices(check_env, &t, "reads FULFILMENT_SECRETS");
}

#[test]
fn a_variable_nobody_reads_and_allow_unverified_are_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "notifier");
        let vars = doc["Resources"][&f]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap();
        vars.insert("FULFILMENT_SECRET".into(), Value::from("typo"));
        vars.insert("ALLOW_UNVERIFIED".into(), Value::from("true"));
        vars.insert("NOTIFY_LOG_BODIES".into(), Value::from("true"));
    });
    assert_notices(check_env, &t, "sets FULFILMENT_SECRET, which the code");
    assert_notices(check_env, &t, "sets ALLOW_UNVERIFIED");
    assert_notices(check_env, &t, "sets NOTIFY_LOG_BODIES");
    // a registry variable, but one the pancake binary does not read
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake");
        doc["Resources"][&f]["Properties"]["Environment"]["Variables"]["NOTIFY_URL"] =
            Value::from("https://hooks.example.com/in");
    });
    assert_notices(
        check_env,
        &t,
        "sets NOTIFY_URL, which the code of binary pancake (functions/pancake) never reads",
    );
}

#[test]
fn a_secret_in_plain_text_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "fulfilment");
        doc["Resources"][&f]["Properties"]["Environment"]["Variables"]["FULFILMENT_SECRETS"] =
            Value::from("s3cr3t");
    });
    assert_notices(
        check_env,
        &t,
        "FULFILMENT_SECRETS is a secret: it must Ref a NoEcho parameter",
    );
    let t = broken(|doc| {
        let p = doc["Parameters"]["NotifySecret"].as_object_mut().unwrap();
        p.remove("NoEcho");
        p.insert("Default".into(), Value::from("whsec_c2VjcmV0"));
    });
    assert_notices(
        check_env,
        &t,
        "NOTIFY_SECRET is a secret: its parameter must be NoEcho",
    );
    let t = broken(|doc| {
        doc["Parameters"]["AbahaTokens"]["Default"] = Value::from("t0ken");
    });
    assert_notices(
        check_env,
        &t,
        "ABAHA_TOKENS is a secret: its parameter's Default",
    );
}

#[test]
fn a_main_serving_another_source_is_noticed() {
    let (_, t) = Template::load();
    let mut code = code().clone();
    let pancake = code.binaries.get_mut("pancake").unwrap();
    pancake.main_sources = BTreeSet::from(["Abaha".to_string()]);
    let problems = check_mains(&t, &code);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("binary pancake: its main names")),
        "{problems:#?}"
    );
}

#[test]
fn a_table_missing_from_the_policies_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "abaha");
        let table = doc["Resources"][&f]["Properties"]["Environment"]["Variables"]
            ["ENTITIES_TABLE"]["Ref"]
            .as_str()
            .unwrap()
            .to_string();
        for policy in doc["Resources"][&f]["Properties"]["Policies"]
            .as_array_mut()
            .unwrap()
        {
            for st in policy["Statement"].as_array_mut().unwrap() {
                if let Some(r) = st["Resource"].as_array_mut() {
                    r.retain(|x| !refers_to(x, &table));
                }
            }
        }
    });
    assert_notices(check_policies, &t, "ENTITIES_TABLE names table");
}

#[test]
fn a_wildcard_or_a_managed_policy_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake");
        let policies = doc["Resources"][&f]["Properties"]["Policies"]
            .as_array_mut()
            .unwrap();
        policies[0]["Statement"][0]["Resource"] = Value::from("*");
        policies.push(Value::from("AmazonDynamoDBFullAccess"));
    });
    assert_notices(check_policies, &t, "wildcard resource");
    assert_notices(check_policies, &t, "AmazonDynamoDBFullAccess");
}

#[test]
fn an_operation_the_code_calls_but_no_statement_allows_is_noticed() {
    let (_, t) = Template::load();
    let mut code = code().clone();
    let notifier = code.binaries.get_mut("notifier").unwrap();
    notifier.aws_actions.insert("dynamodb:DeleteItem".into());
    notifier.aws_actions.insert("sqs:PurgeQueue".into());
    let problems = check_policies(&t, &code);
    for action in ["dynamodb:DeleteItem", "sqs:PurgeQueue"] {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("calls {action}"))),
            "{action} not noticed: {problems:#?}"
        );
    }
}

#[test]
fn an_operation_granted_but_never_called_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake");
        let st = &mut doc["Resources"][&f]["Properties"]["Policies"][0]["Statement"][0];
        st["Action"]
            .as_array_mut()
            .unwrap()
            .push(Value::from("dynamodb:Scan"));
    });
    assert_notices(check_policies, &t, "granted dynamodb:Scan");
}

#[test]
fn an_sdk_call_nothing_declares_is_noticed() {
    let (_, t) = Template::load();
    let mut code = code().clone();
    code.adapter_actions
        .insert("dynamodb:BatchWriteItem".into());
    code.adapter_actions.remove("dynamodb:BatchGetItem");
    code.adapter_actions.remove("dynamodb:CreateTable");
    let problems = check_sdk_calls(&t, &code);
    for needle in [
        "the AWS adapters call dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem is declared",
        "dynamodb:CreateTable (",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle} not noticed: {problems:#?}"
        );
    }
}

#[test]
fn a_queue_without_batch_failures_or_dlq_is_noticed() {
    let t = broken(|doc| {
        let resources = doc["Resources"].as_object_mut().unwrap();
        for (_, r) in resources.iter_mut() {
            match r["Type"].as_str() {
                Some("AWS::Lambda::EventSourceMapping") => {
                    r["Properties"]["FunctionResponseTypes"] = Value::Array(Vec::new());
                }
                Some("AWS::SQS::Queue") => {
                    if let Some(p) = r["Properties"].as_object_mut() {
                        p.remove("RedrivePolicy");
                        if p.contains_key("VisibilityTimeout") {
                            p.insert("VisibilityTimeout".into(), Value::from(61));
                        }
                    }
                }
                _ => {}
            }
        }
    });
    assert_notices(check_queue, &t, "ReportBatchItemFailures");
    assert_notices(check_queue, &t, "dead-letter");
    assert_notices(check_queue, &t, "under 6x");
}

#[test]
fn a_relay_without_its_guarantees_is_noticed() {
    let t = broken(|doc| {
        for (_, r) in doc["Resources"].as_object_mut().unwrap().iter_mut() {
            let stream = r["Properties"]["EventSourceArn"]
                .to_string()
                .contains("StreamArn");
            if r["Type"] == "AWS::Lambda::EventSourceMapping" && stream {
                let p = r["Properties"].as_object_mut().unwrap();
                p.insert("StartingPosition".into(), Value::from("LATEST"));
                p.insert("MaximumRetryAttempts".into(), Value::from(-1));
                p.remove("DestinationConfig");
                p.remove("FilterCriteria");
                p.insert("ParallelizationFactor".into(), Value::from(4));
            }
            if r["Properties"]["StreamSpecification"].is_object() {
                r["Properties"]["StreamSpecification"]["StreamViewType"] = Value::from("KEYS_ONLY");
            }
        }
    });
    for needle in [
        "TRIM_HORIZON",
        "bounded",
        "on-failure destination",
        "filter to inserts",
        "ParallelizationFactor",
        "NEW_IMAGE",
    ] {
        assert_notices(check_relay, &t, needle);
    }
}

#[test]
fn an_alarm_on_a_metric_the_code_does_not_emit_is_noticed() {
    let t = broken(|doc| {
        for (_, r) in doc["Resources"].as_object_mut().unwrap().iter_mut() {
            if r["Properties"]["MetricName"].as_str() == Some("VerificationFailed") {
                r["Properties"]["MetricName"] = Value::from("VerificationFailures");
            }
            if r["Properties"]["MetricName"].as_str() == Some("NotificationsFailed") {
                r["Properties"]["Dimensions"][0]["Value"] = Value::from("notify");
            }
        }
    });
    assert_notices(
        check_metrics,
        &t,
        "VerificationFailures, not a name in metrics::names",
    );
    assert_notices(check_metrics, &t, "Service \"notify\"");
    assert_notices(
        check_alerting,
        &t,
        "no VerificationFailed alarm for Service=pancake",
    );
}

#[test]
fn a_missing_lambda_alarm_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "notifier");
        doc["Resources"].as_object_mut().unwrap().retain(|_, r| {
            !(r["Properties"]["MetricName"].as_str() == Some("Throttles")
                && r["Properties"]["Dimensions"][0]["Value"]["Ref"].as_str() == Some(f.as_str()))
        });
    });
    assert_notices(check_alerting, &t, "no AWS/Lambda Throttles alarm");
}

#[test]
fn short_form_tags_are_refused() {
    let err = parse_template("Resources:\n  A:\n    Value: !Ref B\n").unwrap_err();
    assert!(err.contains("short-form"), "{err}");
    assert!(
        parse_template("# a comment with !Ref in it\nA: {Ref: B}\nC: \"it's fine!\"\n").is_ok()
    );
}

#[test]
fn a_dashboard_widget_on_a_metric_the_code_does_not_emit_is_noticed() {
    let t = broken(|doc| {
        let body =
            &mut doc["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
        let text = body
            .as_str()
            .unwrap()
            .replace(
                r#"["WebhookIngest", "Rejected", "Service", "abaha""#,
                r#"["WebhookIngest", "Rejections", "Service", "abaha""#,
            )
            .replace(r#""Service", "notifier""#, r#""Service", "notify""#)
            .replace("${TransitionsDlq.QueueName}", "${TransitionsDlq.Arn}")
            .replace("${NotifierFunction}", "${Notifier}");
        *body = Value::from(text);
    });
    assert_notices(
        check_dashboard,
        &t,
        "Rejections, not a name in metrics::names",
    );
    assert_notices(
        check_dashboard,
        &t,
        "does not plot WebhookIngest/Rejected Sum for Service=abaha",
    );
    assert_notices(check_dashboard, &t, "Service Some(\"notify\")");
    assert_notices(check_dashboard, &t, "not a queue of the template");
    assert_notices(check_dashboard, &t, "not a function of the template");
}

#[test]
fn a_missing_or_lenient_silence_alarm_is_noticed() {
    let t = broken(|doc| {
        let r = doc["Resources"].as_object_mut().unwrap();
        r.remove("InvoiceSilenceAlarm");
        r["AbahaSilenceAlarm"]["Properties"]["TreatMissingData"] = Value::from("notBreaching");
    });
    assert_notices(
        check_silence,
        &t,
        "no silence alarm (Accepted, Service=invoice)",
    );
    assert_notices(check_silence, &t, "TreatMissingData must be breaching");
}

#[test]
fn a_conditional_that_could_hide_a_variable_or_a_grant_is_refused() {
    let conditions = BTreeSet::from(["On".to_string()]);
    let no_value = serde_json::json!({"Ref": "AWS::NoValue"});
    let mut optional = serde_json::json!({"A": [{"Fn::If": ["On", {"B": 1}, no_value]}]});
    switch_on(&mut optional, &conditions).unwrap();
    assert_eq!(optional, serde_json::json!({"A": [{"B": 1}]}));
    for hiding in [
        serde_json::json!({"Fn::If": ["On", 1, 2]}),
        serde_json::json!({"Fn::If": ["Undeclared", 1, no_value]}),
        serde_json::json!({"X": {"Fn::If": ["On", no_value, 1]}}),
    ] {
        let mut v = hiding.clone();
        assert!(switch_on(&mut v, &conditions).is_err(), "{hiding}");
    }
}
