//! What the operator is told about deliveries the product refuses or does not understand
//! (issue 20): per source an `Unrecognised` alarm and a suspension-risk alarm (the share of
//! failed answers over 30 minutes, by the rule of `metrics::suspension_risk`), and a saved
//! Logs Insights query listing the refusals of every ingest function, on the dashboard.

use super::*;
use webhook_core::metrics::suspension_risk;
use webhook_core::refusals::LOG_FIELDS;

/// The function serving `source`: its logical name and resource.
fn function_of<'a>(
    t: &'a Template,
    code: &Code,
    source: Source,
) -> Option<(&'a String, &'a Value)> {
    let variant = format!("{source:?}");
    t.functions().find(|(_, f)| {
        t.binary_of(f)
            .and_then(|b| code.binaries.get(b))
            .and_then(|l| l.source.as_deref())
            == Some(variant.as_str())
    })
}

fn has_metric(
    alarm: &Value,
    ns: &str,
    metric: &str,
    dim: &str,
    pred: &dyn Fn(&Value) -> bool,
) -> bool {
    Template::alarm_metrics(alarm)
        .iter()
        .any(|(n, m, d)| n == ns && m == metric && d.get(dim).is_some_and(pred))
}

/// An alarm per source on `Unrecognised`, at `UnrecognisedThreshold` or more.
pub(super) fn check_unrecognised(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let metric = code
        .metric_names
        .get("UNRECOGNISED")
        .cloned()
        .unwrap_or_default();
    for source in Source::ALL {
        let found = t.alarms().find(|(_, a)| {
            has_metric(a, NAMESPACE, &metric, "Service", &|v| {
                v.as_str() == Some(source.as_str())
            })
        });
        let Some((name, alarm)) = found else {
            problems.push(format!("no {metric} alarm for Service={source}"));
            continue;
        };
        let p = &alarm["Properties"];
        if ref_of(&p["Threshold"]) != Some("UnrecognisedThreshold")
            || p["ComparisonOperator"].as_str() != Some("GreaterThanOrEqualToThreshold")
            || p["Statistic"].as_str() != Some("Sum")
        {
            problems.push(format!(
                "{name}: must fire on a Sum of at least UnrecognisedThreshold"
            ));
        }
    }
    problems
}

/// The text of an alarm expression (plain, or an `Fn::Sub` of parameters).
fn expression(m: &Value) -> Option<String> {
    let e = &m["Expression"];
    e.as_str()
        .map(str::to_string)
        .or_else(|| e["Fn::Sub"].as_str().map(str::to_string))
}

/// A test on a dimension's value.
type Pred<'a> = dyn Fn(&Value) -> bool + 'a;

/// What is wrong with one source's suspension-risk alarm.
fn risk_problems(name: &str, alarm: &Value, function: &str, source: Source) -> Vec<String> {
    let mut problems = Vec::new();
    let service = |v: &Value| v.as_str() == Some(source.as_str());
    let function = |v: &Value| ref_of(v) == Some(function);
    let wanted: [(&str, &str, &str, &Pred<'_>); 4] = [
        (NAMESPACE, "Rejected", "Service", &service),
        (NAMESPACE, "Received", "Service", &service),
        ("AWS/Lambda", "Errors", "FunctionName", &function),
        ("AWS/Lambda", "Throttles", "FunctionName", &function),
    ];
    for (ns, metric, dim, pred) in wanted {
        if !has_metric(alarm, ns, metric, dim, pred) {
            problems.push(format!("{name}: does not count {ns}/{metric} of {source}"));
        }
    }
    let metrics = as_list(&alarm["Properties"]["Metrics"]);
    let window = i64::from(suspension_risk::WINDOW_MINUTES) * 60;
    let exprs: Vec<String> = metrics.iter().filter_map(|m| expression(m)).collect();
    for m in metrics.iter().filter(|m| m.get("MetricStat").is_some()) {
        let stat = &m["MetricStat"];
        if stat["Period"].as_i64() != Some(window) || stat["Stat"].as_str() != Some("Sum") {
            problems.push(format!("{name}: every metric is a Sum over {window} s"));
        }
        let id = m["Id"].as_str().unwrap_or_default();
        if !exprs.iter().any(|e| e.contains(id)) {
            problems.push(format!("{name}: metric {id} is in no expression"));
        }
    }
    let returned: Vec<String> = metrics
        .iter()
        .filter(|m| m["ReturnData"].as_bool() == Some(true))
        .filter_map(|m| expression(m))
        .collect();
    let rule = returned.first().cloned().unwrap_or_default();
    if returned.len() != 1
        || !rule.contains(">= ${SuspensionRiskMinFailures}")
        || !rule.contains("* ${SuspensionRiskPercent}")
    {
        problems.push(format!(
            "{name}: the one returned expression must hold failures to SuspensionRiskMinFailures and their share to SuspensionRiskPercent, got {returned:?}"
        ));
    }
    problems
}

/// A suspension-risk alarm per source, whose parameters default to the rule the local
/// console applies, plotted on the dashboard.
pub(super) fn check_suspension_risk(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (param, value) in [
        ("SuspensionRiskPercent", suspension_risk::SHARE_PERCENT),
        ("SuspensionRiskMinFailures", suspension_risk::MIN_FAILURES),
    ] {
        if t.doc["Parameters"][param]["Default"].as_u64() != Some(value) {
            problems.push(format!(
                "parameter {param} must default to {value} (metrics::suspension_risk)"
            ));
        }
    }
    let body = t
        .of_type("AWS::CloudWatch::Dashboard")
        .find_map(|(_, d)| dashboard_body(d).ok())
        .unwrap_or_default();
    let window = i64::from(suspension_risk::WINDOW_MINUTES) * 60;
    for source in Source::ALL {
        let Some((function, _)) = function_of(t, code, source) else {
            problems.push(format!("no function serves {source}"));
            continue;
        };
        let found = t.alarms().find(|(_, a)| {
            has_metric(a, NAMESPACE, "Rejected", "Service", &|v| {
                v.as_str() == Some(source.as_str())
            }) && a["Properties"]["Metrics"].is_array()
        });
        match found {
            None => problems.push(format!("no suspension-risk alarm for Service={source}")),
            Some((name, alarm)) => problems.extend(risk_problems(name, alarm, function, source)),
        }
        let plotted = as_list(&body["widgets"]).iter().any(|w| {
            w["properties"]["period"].as_i64() == Some(window)
                && as_list(&w["properties"]["metrics"]).iter().any(|m| {
                    as_list(m).iter().any(|x| {
                        x["expression"].is_string() && x["label"].as_str() == Some(source.as_str())
                    })
                })
        });
        if !plotted {
            problems.push(format!(
                "the dashboard plots no failed-answer share over {window} s for {source}"
            ));
        }
    }
    problems
}

/// A saved Logs Insights query over every ingest function's log group listing refusals
/// with the fields their log line carries; the dashboard runs it and names it.
pub(super) fn check_refusals_query(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((name, q)) = t.of_type("AWS::Logs::QueryDefinition").next() else {
        return vec!["no AWS::Logs::QueryDefinition listing the refusals".into()];
    };
    let p = &q["Properties"];
    let groups: BTreeSet<&str> = as_list(&p["LogGroupNames"])
        .into_iter()
        .filter_map(ref_of)
        .collect();
    for source in Source::ALL {
        let group = function_of(t, code, source)
            .and_then(|(_, f)| ref_of(&f["Properties"]["LoggingConfig"]["LogGroup"]));
        match group {
            Some(g) if groups.contains(g) => {}
            other => problems.push(format!(
                "{name} does not read {source}'s log group ({other:?})"
            )),
        }
    }
    let query = p["QueryString"].as_str().unwrap_or_default();
    let fields = query.split('|').next().unwrap_or_default();
    if !query.contains("filter outcome = 'rejected'") {
        problems.push(format!("{name}: must filter outcome = 'rejected'"));
    }
    for field in LOG_FIELDS {
        if !fields.split([' ', ',']).any(|f| f == field) {
            problems.push(format!("{name}: its fields leave out {field}"));
        }
    }
    let board = t
        .of_type("AWS::CloudWatch::Dashboard")
        .next()
        .map(|(_, d)| d);
    let dashboard = board
        .map(|d| literal_or_sub(&d["Properties"]["DashboardBody"]))
        .unwrap_or_default();
    let queries = board
        .and_then(|d| dashboard_body(d).ok())
        .map(|b| dashboard_series(&b).1)
        .unwrap_or_default();
    if query.is_empty() || !queries.iter().any(|w| w.ends_with(query)) {
        problems.push(format!(
            "the dashboard has no widget running {name}'s query"
        ));
    }
    let title = literal_or_sub(&p["Name"]);
    if title.is_empty() || !dashboard.contains(&title) {
        problems.push(format!(
            "the dashboard does not name the saved query {title:?}"
        ));
    }
    problems
}

#[test]
fn a_missing_or_lenient_suspension_risk_alarm_is_noticed() {
    let t = broken(|doc| {
        let r = doc["Resources"].as_object_mut().unwrap();
        r.remove("InvoiceSuspensionRiskAlarm");
        let metrics = r["AbahaSuspensionRiskAlarm"]["Properties"]["Metrics"]
            .as_array_mut()
            .unwrap();
        metrics.retain(|m| m["Id"].as_str() != Some("errors"));
        metrics[0]["MetricStat"]["Period"] = Value::from(300);
        doc["Parameters"]["SuspensionRiskPercent"]["Default"] = Value::from(80);
    });
    assert_notices(
        check_suspension_risk,
        &t,
        "no suspension-risk alarm for Service=invoice",
    );
    assert_notices(
        check_suspension_risk,
        &t,
        "does not count AWS/Lambda/Errors of abaha",
    );
    assert_notices(
        check_suspension_risk,
        &t,
        "every metric is a Sum over 1800 s",
    );
    assert_notices(
        check_suspension_risk,
        &t,
        "SuspensionRiskPercent must default to 50",
    );
}

#[test]
fn a_missing_unrecognised_alarm_is_noticed() {
    let t = broken(|doc| {
        doc["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("PancakePosUnrecognisedAlarm");
    });
    assert_notices(
        check_unrecognised,
        &t,
        "no Unrecognised alarm for Service=pancake_pos",
    );
}

#[test]
fn a_refusals_query_missing_a_log_group_or_a_field_is_noticed() {
    let t = broken(|doc| {
        let p = &mut doc["Resources"]["RefusalsQuery"]["Properties"];
        p["LogGroupNames"].as_array_mut().unwrap().remove(0);
        let q = p["QueryString"].as_str().unwrap().replace(", tenant", "");
        p["QueryString"] = Value::from(q);
    });
    assert_notices(
        check_refusals_query,
        &t,
        "does not read pancake's log group",
    );
    assert_notices(check_refusals_query, &t, "its fields leave out tenant");
    assert_notices(check_refusals_query, &t, "no widget running");
}
