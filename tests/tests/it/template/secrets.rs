//! Credentials as Secrets Manager references (ARCHITECTURE §3, issue 21): every `_ARN`
//! variable a function sets is a parameter (the secret's ARN) that the function may
//! `secretsmanager:GetSecretValue`, and it may read no other secret; the only KMS action any
//! function is granted is `kms:Decrypt` (the secrets' customer key, the credential table's).

use super::*;

/// The parameters a function's `_ARN` variables name, and the problems of those that name none.
fn referenced_secrets(t: &Template, name: &str, f: &Value) -> (BTreeSet<String>, Vec<String>) {
    let mut referenced = BTreeSet::new();
    let mut problems = Vec::new();
    for (key, value) in t.env(f) {
        if vars::by_name(&key).and_then(|v| v.holds).is_none() {
            continue;
        }
        match ref_of(&value).filter(|p| t.doc["Parameters"].get(*p).is_some()) {
            Some(p) => {
                referenced.insert(p.to_string());
            }
            None => problems.push(format!(
                "{name}: {key} must Ref a parameter (the secret's ARN)"
            )),
        }
    }
    (referenced, problems)
}

pub(super) fn check_secret_references(t: &Template, _: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in t.functions() {
        let (referenced, mut found) = referenced_secrets(t, name, f);
        problems.append(&mut found);
        let mut granted = BTreeSet::new();
        for g in t.grants(name, f, &mut Vec::new()) {
            for a in &g.actions {
                let secrets = a.starts_with("secretsmanager:");
                if (secrets && a != "secretsmanager:GetSecretValue")
                    || (a.starts_with("kms:") && a != "kms:Decrypt")
                {
                    problems.push(format!("{name} is granted {a}: no code calls it"));
                }
            }
            if !g.actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                continue;
            }
            for r in &g.resources {
                match ref_of(r) {
                    Some(p) if referenced.contains(p) => {
                        granted.insert(p.to_string());
                    }
                    _ => problems.push(format!(
                        "{name} may read the secret {r}, which its environment does not reference"
                    )),
                }
            }
        }
        for p in referenced.difference(&granted) {
            problems.push(format!(
                "{name} references the secret {p} without GetSecretValue on it"
            ));
        }
    }
    problems
}

#[test]
fn a_secret_reference_without_its_grant_or_a_grant_beyond_them_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "fulfilment");
        let statements = &mut doc["Resources"][&f]["Properties"]["Policies"][0]["Statement"];
        for st in statements.as_array_mut().unwrap() {
            if st["Action"] == "secretsmanager:GetSecretValue" {
                st["Resource"] = serde_json::json!({"Ref": "InvoiceSecretsArn"});
            }
        }
    });
    assert_notices(
        check_secret_references,
        &t,
        "references the secret FulfilmentSecretsArn without GetSecretValue",
    );
    assert_notices(
        check_secret_references,
        &t,
        "may read the secret {\"Ref\":\"InvoiceSecretsArn\"}",
    );
    let t = broken(|doc| {
        let f = function_name_of(doc, "notifier");
        doc["Resources"][&f]["Properties"]["Environment"]["Variables"]["NOTIFY_SECRET_ARN"] =
            Value::from("arn:aws:secretsmanager:eu-west-1:123456789012:secret:n-AbCdEf");
    });
    assert_notices(
        check_secret_references,
        &t,
        "NOTIFY_SECRET_ARN must Ref a parameter",
    );
}
