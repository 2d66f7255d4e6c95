//! Alarms: every watched metric is one the code emits, for a service that emits it, and the
//! alarms of ARCHITECTURE §8 exist, silence included.

use super::*;

/// Alarms on WebhookIngest metrics watch names and services the code emits.
pub(super) fn check_metrics(t: &Template, code: &Code) -> Vec<String> {
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
pub(super) fn check_alerting(t: &Template, code: &Code) -> Vec<String> {
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

/// A silence alarm per source: no accepted webhook for `<Source>SilenceHours` hours, missing
/// data counting as silence, off (its condition false) when the parameter is 0.
pub(super) fn check_silence(t: &Template, _: &Code) -> Vec<String> {
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
