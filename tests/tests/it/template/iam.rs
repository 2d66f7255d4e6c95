//! IAM: each function's grants are exactly the AWS actions its backends call, on the tables
//! and queues it names, with no wildcard.

use super::*;

/// SDK calls of the AWS adapters that no Lambda makes, each with why.
pub(super) const NOT_CALLED_BY_LAMBDAS: [(&str, &str); 10] = [
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

/// Tables and queues named in a function's environment are in its policies; every AWS
/// operation its code can call is allowed; no wildcard; event sources are consumable.
pub(super) fn check_policies(t: &Template, code: &Code) -> Vec<String> {
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
pub(super) fn check_sdk_calls(_: &Template, code: &Code) -> Vec<String> {
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

/// What the Lambda service calls with a function's role to poll its SQS event source.
/// What the Lambda service calls, under a function's role, to read a DynamoDB stream for it.
pub(super) const STREAM_CONSUMER_ACTIONS: [&str; 4] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

pub(super) const SQS_CONSUMER_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

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
