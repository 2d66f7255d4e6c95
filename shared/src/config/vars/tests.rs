use std::collections::BTreeSet;

use super::*;

#[test]
fn names_are_unique_upper_snake_and_found_by_name() {
    let mut seen = BTreeSet::new();
    for var in ALL {
        assert!(seen.insert(var.name), "{} declared twice", var.name);
        assert!(
            var.name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            var.name
        );
        assert_eq!(by_name(var.name), Some(*var));
        assert!(
            !var.doc.is_empty() && !var.doc.contains('\n'),
            "{}",
            var.name
        );
    }
    assert_eq!(by_name("FULFILMENT_SECRET"), None);
}

#[test]
fn every_variable_is_read_and_every_excuse_concerns_a_lambda() {
    for var in ALL {
        assert_ne!(
            var.binaries,
            Binaries::NONE,
            "{} is read by nothing",
            var.name
        );
        // An excuse no Lambda needs would silently excuse a future typo in template.yaml.
        if var.template != InTemplate::Set {
            assert!(
                var.binaries.iter().any(Binary::is_lambda),
                "{} is excused from the template but no Lambda reads it",
                var.name
            );
        }
    }
}

#[test]
fn secrets_have_no_default() {
    for var in ALL.iter().filter(|v| v.secret) {
        assert_eq!(
            var.default, None,
            "{}: a default secret is a known one",
            var.name
        );
    }
}

#[test]
fn defaults_agree_with_the_code() {
    use crate::config::PipelineSettings;
    use crate::sources::{abaha, invoice, pancake_pos};
    let pairs = [
        (
            &MAX_BODY_BYTES,
            PipelineSettings::DEFAULT_MAX_BODY_BYTES.to_string(),
        ),
        (
            &RETENTION_DAYS,
            PipelineSettings::DEFAULT_RETENTION_DAYS.to_string(),
        ),
        (
            &ENTITY_RETENTION_DAYS,
            PipelineSettings::DEFAULT_ENTITY_RETENTION_DAYS.to_string(),
        ),
        (
            &PANCAKE_POS_KEY_HEADER,
            pancake_pos::DEFAULT_KEY_HEADER.to_string(),
        ),
        (&ABAHA_TOKEN_HEADER, abaha::DEFAULT_HEADER.to_string()),
        (
            &INVOICE_SIGNATURE_HEADER,
            invoice::DEFAULT_HEADER.to_string(),
        ),
        (
            &NOTIFY_TIMEOUT_MS,
            crate::notify::DEFAULT_TIMEOUT_MS.to_string(),
        ),
        (
            &SECRETS_CACHE_SECS,
            crate::config::secrets::DEFAULT_SECRETS_CACHE_SECS.to_string(),
        ),
    ];
    for (var, code) in pairs {
        assert_eq!(var.default, Some(code.as_str()), "{}", var.name);
    }
    // Mode-dependent, so said in the doc rather than as the default.
    let lambda = format!("{} unless set in a Lambda", invoice::DEFAULT_TOLERANCE_SECS);
    assert!(INVOICE_TOLERANCE_SECS.doc.contains(&lambda));
    #[cfg(feature = "aws")]
    {
        use crate::backends::aws::{dynamodb, sdk};
        let max_attempts = sdk::AwsSettings::DEFAULT_MAX_ATTEMPTS.to_string();
        assert_eq!(AWS_MAX_ATTEMPTS.default, Some(max_attempts.as_str()));
        let limit = dynamodb::MAX_TRANSACTION_ITEMS.to_string();
        assert_eq!(DYNAMODB_TRANSACTION_LIMIT.default, Some(limit.as_str()));
    }
}

#[test]
fn binaries_name_their_sources() {
    for binary in Binary::ALL {
        assert_eq!(Binary::from_name(binary.name()), Some(binary));
        assert_eq!(
            binary.source().is_some(),
            Binaries::INGEST.contains(binary),
            "{binary:?}"
        );
    }
    for source in crate::model::Source::ALL {
        assert_eq!(Binary::of_source(source).source(), Some(source));
        let serving: Vec<Binary> = Binaries::serving(source).iter().collect();
        assert_eq!(
            serving,
            [Binary::of_source(source), Binary::Local, Binary::Cli]
        );
    }
    assert_eq!(Binary::from_name("webhooks_local"), None);
    assert_eq!(Binaries::INGEST.iter().count(), 5);
    assert_eq!(Binaries::ALL.iter().collect::<Vec<_>>(), Binary::ALL);
    assert!(!Binaries::LAMBDAS.contains(Binary::Local));
    assert!(!Binaries::LAMBDAS.contains(Binary::Cli));
    assert_eq!(
        Binaries::INGEST
            .union(Binaries::NOTIFIERS)
            .with(Binary::Cli),
        Binaries::STORES,
        "{:?}",
        Binaries::INGEST.union(Binaries::NOTIFIERS)
    );
    assert_eq!(Binaries::STORES.with(Binary::Relay), Binaries::ALL);
    assert!(Binaries::LAMBDAS.contains(Binary::Relay));
    assert_eq!(
        format!("{:?}", Binaries::NOTIFIERS),
        r#"{"notifier", "webhooks-local"}"#
    );
}

#[test]
fn the_help_lists_what_a_binary_reads() {
    let help = environment_help(Binary::Local, &[&LISTEN_ADDR]);
    let lines: Vec<&str> = help.lines().skip(1).collect();
    let listed: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let want: Vec<&str> = ALL
        .iter()
        .filter(|v| v.binaries.contains(Binary::Local) && v.name != "LISTEN_ADDR")
        .map(|v| v.name)
        .collect();
    assert_eq!(listed, want);
    assert!(help.contains("MAX_BODY_BYTES"), "{help}");
    let line = |name: &str| {
        *lines
            .iter()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap()
    };
    assert!(
        line("MAX_BODY_BYTES").ends_with("[default: 262144]"),
        "{help}"
    );
    assert!(line("NOTIFY_SECRET").ends_with("[secret]"), "{help}");
    assert!(!environment_help(Binary::Notifier, &[]).contains("PANCAKE_API_KEYS"));
}

#[test]
fn every_credential_a_lambda_reads_has_one_secrets_manager_reference() {
    let references: Vec<&Var> = ALL.iter().copied().filter(|v| v.holds.is_some()).collect();
    for reference in &references {
        let holds = reference.holds.unwrap();
        assert_eq!(reference.name, format!("{}_ARN", holds.name));
        assert!(holds.secret && !reference.secret, "{}", reference.name);
        assert!(
            reference
                .binaries
                .iter()
                .all(|b| b.is_lambda() && holds.binaries.contains(b)),
            "{}: read by the Lambdas that read {}",
            reference.name,
            holds.name
        );
        assert!(
            reference
                .binaries
                .iter()
                .all(|b| SECRETS_CACHE_SECS.binaries.contains(b)),
            "{}'s binaries read SECRETS_CACHE_SECS",
            reference.name
        );
    }
    // the AWS SDK's own credentials are the role's, not a reference's
    let lambda_credentials = ALL.iter().filter(|v| {
        v.secret
            && !v.name.starts_with("AWS_")
            && v.binaries
                .iter()
                .any(|b| b.is_lambda() && b != Binary::Relay)
    });
    for var in lambda_credentials {
        let count = references.iter().filter(|r| r.holds == Some(*var)).count();
        assert_eq!(count, 1, "{} has {count} references", var.name);
    }
}
