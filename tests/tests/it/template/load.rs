//! template.yaml as JSON: long-form intrinsics only (short-form tags are refused), every
//! `Fn::If` switched on, and the accessors the checks share (functions, environment, grants,
//! alarms, references).

use super::*;

pub(crate) fn yaml_to_json(y: &yaml_rust2::Yaml) -> Result<Value, String> {
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
pub(crate) fn parse_template(text: &str) -> Result<Value, String> {
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

pub(crate) struct Template {
    pub(crate) doc: Value,
}

/// One Allow statement of a function's policies.
pub(crate) struct Grant {
    pub(crate) actions: Vec<String>,
    pub(crate) resources: Vec<Value>,
}

pub(crate) fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

pub(crate) fn ref_of(v: &Value) -> Option<&str> {
    v.get("Ref")?.as_str()
}

pub(crate) fn getatt_of(v: &Value) -> Option<(&str, &str)> {
    match v.get("Fn::GetAtt")? {
        Value::Array(a) if a.len() == 2 => Some((a[0].as_str()?, a[1].as_str()?)),
        Value::String(s) => s.split_once('.'),
        _ => None,
    }
}

/// Logical ids a value refers to (Ref, Fn::GetAtt, `${X}` / `${X.Attr}` in Fn::Sub).
pub(crate) fn referenced(v: &Value, out: &mut BTreeSet<String>) {
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
pub(crate) fn literal_text(v: &Value) -> String {
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
pub(crate) fn switch_on(v: &mut Value, conditions: &BTreeSet<String>) -> Result<(), String> {
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
    pub(crate) fn load() -> (String, Template) {
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

    pub(crate) fn resources(&self) -> &Map<String, Value> {
        self.doc["Resources"].as_object().expect("Resources")
    }

    pub(crate) fn type_of(&self, logical: &str) -> Option<&str> {
        self.resources().get(logical)?.get("Type")?.as_str()
    }

    pub(crate) fn of_type<'a>(
        &'a self,
        ty: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(ty))
    }

    pub(crate) fn functions(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.of_type("AWS::Serverless::Function")
    }

    /// A function property, falling back to Globals.Function.
    pub(crate) fn prop<'a>(&'a self, f: &'a Value, key: &str) -> Option<&'a Value> {
        f["Properties"]
            .get(key)
            .or_else(|| self.doc["Globals"]["Function"].get(key))
    }

    pub(crate) fn binary_of<'a>(&self, f: &'a Value) -> Option<&'a str> {
        f["Metadata"]["BuildProperties"]["Binary"].as_str()
    }

    pub(crate) fn function_of_binary(&self, binary: &str) -> Vec<&String> {
        self.functions()
            .filter(|(_, f)| self.binary_of(f) == Some(binary))
            .map(|(n, _)| n)
            .collect()
    }

    /// The function's environment (Globals merged under its own).
    pub(crate) fn env(&self, f: &Value) -> BTreeMap<String, Value> {
        let mut env = BTreeMap::new();
        for src in [&self.doc["Globals"]["Function"], &f["Properties"]] {
            if let Some(vars) = src["Environment"]["Variables"].as_object() {
                env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        env
    }

    /// The Allow statements of a function's inline policies; other entries are problems.
    pub(crate) fn grants(&self, name: &str, f: &Value, problems: &mut Vec<String>) -> Vec<Grant> {
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
    pub(crate) fn timeout(&self, f: &Value) -> Option<i64> {
        self.prop(f, "Timeout")?.as_i64()
    }

    pub(crate) fn alarms(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.of_type("AWS::CloudWatch::Alarm")
    }

    /// (namespace, metric, dimensions) of an alarm, metric-math alarms included.
    pub(crate) fn alarm_metrics(alarm: &Value) -> Vec<(String, String, BTreeMap<String, Value>)> {
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

pub(crate) fn refers_to(v: &Value, logical: &str) -> bool {
    let mut set = BTreeSet::new();
    referenced(v, &mut set);
    set.contains(logical)
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
