//! Tables, the transitions queue and the relay: TTL on the payload tables, the FIFO queue
//! and its dead-letter queue, the stream trigger's guarantees (ARCHITECTURE §5, §6).

use super::*;

/// The transitions queue: FIFO, redriven to a FIFO DLQ after a bounded number of receives,
/// consumed by the notifier with ReportBatchItemFailures, visibility >= 6x its timeout.
pub(super) fn check_queue(t: &Template, code: &Code) -> Vec<String> {
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

/// Every table holding payloads (the tables of `EVENTS_TABLE`, `ENTITIES_TABLE` and
/// `TRANSITIONS_TABLE`) expires items by TTL on `expires_at`, the attribute the store writes
/// (ARCHITECTURE §5, decision 43).
pub(super) fn check_expiry(t: &Template, _: &Code) -> Vec<String> {
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
pub(super) fn check_relay(t: &Template, _: &Code) -> Vec<String> {
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
pub(super) fn is_failure_destination(t: &Template, queue: &str) -> bool {
    t.of_type("AWS::Lambda::EventSourceMapping").any(|(_, m)| {
        getatt_of(&m["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]).map(|x| x.0)
            == Some(queue)
    })
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
