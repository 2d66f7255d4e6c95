//! The dashboard: every widget's series is a metric the code emits, and the required series
//! are shown.

use super::*;

/// One plotted series of a dashboard widget: (namespace, metric, dimensions, stat).
pub(super) type Series = (String, String, BTreeMap<String, String>, String);

/// A dashboard's body: the JSON text of its `Fn::Sub`, with `${...}` left in place (every
/// placeholder sits inside a JSON string).
pub(super) fn dashboard_body(dashboard: &Value) -> Result<Value, String> {
    let body = &dashboard["Properties"]["DashboardBody"];
    let text = body["Fn::Sub"]
        .as_str()
        .or_else(|| body["Fn::Sub"][0].as_str())
        .ok_or("DashboardBody is not an Fn::Sub of a JSON text")?;
    serde_json::from_str(text).map_err(|e| format!("DashboardBody is not JSON: {e}"))
}

/// Every series of the metric widgets (full arrays only: `"."` shorthands are refused by
/// the check, since they hide which metric is meant) and every log widget's query.
pub(super) fn dashboard_series(body: &Value) -> (Vec<Series>, Vec<String>) {
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
pub(super) fn placeholders(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(str::to_string)
        .collect()
}

/// The series one dashboard widget needs to plot, as (namespace, metric, dimension, value, stat).
pub(super) fn required_series(
    t: &Template,
    code: &Code,
) -> Vec<(String, String, String, String, String)> {
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
pub(super) fn check_dashboard(t: &Template, code: &Code) -> Vec<String> {
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

pub(super) fn literal_or_sub(v: &Value) -> String {
    v["Fn::Sub"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| literal_text(v))
}

/// What is wrong with one plotted series.
pub(super) fn series_problems(
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
