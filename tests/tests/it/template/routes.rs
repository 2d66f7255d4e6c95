//! Routes, binaries and mains: every route of `http::ROUTES` is a POST `HttpApi` event of one
//! function built from the binary that serves its source (ARCHITECTURE §2).

use super::*;

/// Every route of ARCHITECTURE §2 is a POST HttpApi event of one function, whose binary serves it.
pub(super) fn check_routes(t: &Template, code: &Code) -> Vec<String> {
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
pub(super) fn check_binaries(t: &Template, code: &Code) -> Vec<String> {
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
pub(super) fn check_mains(_: &Template, code: &Code) -> Vec<String> {
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
