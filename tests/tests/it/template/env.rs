//! Environment variables: each function sets what its binary reads by `config::vars`, nothing
//! more, and secrets only from `NoEcho` parameters.

use super::*;

/// What each function's binary reads is set (unless the registry excuses it); nothing else
/// is; ALLOW_UNVERIFIED never; secrets only from NoEcho parameters without a default.
pub(super) fn check_env(t: &Template, code: &Code) -> Vec<String> {
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
pub(super) fn plaintext_secret(t: &Template, key: &str, value: &Value) -> Option<String> {
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
