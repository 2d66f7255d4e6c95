//! Credentials as Secrets Manager references (ARCHITECTURE §3, issue 21 item 4), through the
//! real bootstraps on the test Lambda Runtime API, against moto's Secrets Manager: the
//! fulfilment Lambda and the notifier read their secrets at init, and a rotation
//! (`put-secret-value` of "new,old", then "new") takes effect in the running process once the
//! cached value is due (`SECRETS_CACHE_SECS=1`), with no restart. A secret that cannot be
//! read at init stops the function, naming the reference.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use webhook_core::sources::fulfilment::Fulfilment;
use webhook_tests::aws::{unique_name, AwsFixture};
use webhook_tests::lambda::{build_function, Function, Outcome, RuntimeApi};
use webhook_tests::moto;
use webhook_tests::receiver::Receiver;

/// Longer than `SECRETS_CACHE_SECS=1` in whole seconds of the wall clock: the next request
/// reads the secret again. (A wait for the cache to age, not a timed assertion.)
const PAST_THE_CACHE: Duration = Duration::from_millis(2_100);

async fn binary(name: &'static str) -> PathBuf {
    tokio::task::spawn_blocking(move || build_function(name))
        .await
        .expect("build task")
}

fn secrets(fixture: &AwsFixture) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&fixture.config)
}

/// Creates a secret holding `value`; its ARN.
async fn create_secret(fixture: &AwsFixture, test: &str, value: &str) -> String {
    secrets(fixture)
        .create_secret()
        .name(unique_name(test))
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret on moto")
        .arn
        .expect("the secret's ARN")
}

/// `aws secretsmanager put-secret-value`: the rotation, with no deploy.
async fn put_secret(fixture: &AwsFixture, arn: &str, value: &str) {
    secrets(fixture)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .expect("PutSecretValue on moto");
}

fn lambda_env(
    api: &RuntimeApi,
    fixture: &AwsFixture,
    function: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = api.lambda_env(function);
    env.extend(fixture.lambda_env());
    env.push(("RUST_LOG".into(), "info".into()));
    env.push(("SECRETS_CACHE_SECS".into(), "1".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// The sample fulfilment event, signed with `secret`.
fn signed_fulfilment(secret: &str) -> Value {
    let path = moto::workspace_root().join("events/fulfilment/order_change_status.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample event")).unwrap();
    let body = event["body"].as_str().expect("body").to_string();
    event["headers"]["x-event-signature"] = Value::from(Fulfilment::sign(body.as_bytes(), secret));
    event
}

/// The status the function answers the sample event signed with `secret`.
async fn status(function: &mut Function, api: &RuntimeApi, secret: &str) -> u16 {
    let outcome = function.invoke(api, signed_fulfilment(secret)).await;
    let Outcome::Response(response) = outcome else {
        panic!("the function reported an error: {outcome:?}")
    };
    response["statusCode"].as_u64().expect("statusCode") as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fulfilment_lambda_reads_its_secret_and_follows_a_rotation_without_a_restart() {
    let bin = binary("fulfilment").await;
    let fixture = AwsFixture::on(&moto::endpoint(), "secrets-fulfilment").await;
    let arn = create_secret(&fixture, "fulfilment-secrets", "old-secret-4e1f").await;
    let api = RuntimeApi::start().await;
    let env = lambda_env(
        &api,
        &fixture,
        "fulfilment",
        &[("FULFILMENT_SECRETS_ARN", &arn)],
    );
    assert!(
        !env.iter().any(|(_, v)| v.contains("secret-4e1f")),
        "the function's configuration holds the reference only"
    );
    let mut f = Function::spawn(&bin, &env);
    assert_eq!(status(&mut f, &api, "old-secret-4e1f").await, 200);
    assert_eq!(status(&mut f, &api, "new-secret-9c2a").await, 401);

    // the overlap: both accepted once the cached value is due
    put_secret(&fixture, &arn, "new-secret-9c2a,old-secret-4e1f").await;
    tokio::time::sleep(PAST_THE_CACHE).await;
    assert_eq!(status(&mut f, &api, "new-secret-9c2a").await, 200);
    assert_eq!(status(&mut f, &api, "old-secret-4e1f").await, 200);

    // the old one dropped
    put_secret(&fixture, &arn, "new-secret-9c2a").await;
    tokio::time::sleep(PAST_THE_CACHE).await;
    assert_eq!(status(&mut f, &api, "old-secret-4e1f").await, 401);
    assert_eq!(status(&mut f, &api, "new-secret-9c2a").await, 200);

    let logs = f.output();
    assert!(
        logs.contains("credentials read from Secrets Manager"),
        "{logs}"
    );
    assert_eq!(
        logs.matches("a referenced secret changed").count(),
        2,
        "{logs}"
    );
    assert!(!logs.contains("secret-4e1f") && !logs.contains("secret-9c2a"));
    assert!(api.init_errors().is_empty(), "one process throughout");
    f.kill().await;
}

/// `whsec_` keys of 32 bytes: the first, and the one rotated to.
const FIRST_KEY: &str = "whsec_e6LzkAkOPhxyM6SeRvqLbzWanlbSTQ4ewcbx3KSE484=";
const ROTATED_KEY: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// The sample notifier event, its transition given id `id`.
fn notification(id: &str) -> Value {
    let path = moto::workspace_root().join("events/notifier/single_message.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample event")).unwrap();
    let record = &mut event["Records"][0];
    let mut body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    body["transitionId"] = json!(id);
    record["body"] = json!(body.to_string());
    record["attributes"]["MessageDeduplicationId"] = json!(id);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_signs_with_the_secret_it_reads_and_follows_a_rotation() {
    let bin = binary("notifier").await;
    let fixture = AwsFixture::on(&moto::endpoint(), "secrets-notifier").await;
    let arn = create_secret(&fixture, "notify-secret", FIRST_KEY).await;
    // the receiver knows only the key rotated to
    let (receiver, url) = Receiver::start(ROTATED_KEY).await;
    let api = RuntimeApi::start().await;
    let env = lambda_env(
        &api,
        &fixture,
        "notifier",
        &[("NOTIFY_URL", &url), ("NOTIFY_SECRET_ARN", &arn)],
    );
    let mut function = Function::spawn(&bin, &env);
    let rotations = [
        None,
        Some(format!("{ROTATED_KEY},{FIRST_KEY}")),
        Some(ROTATED_KEY.to_string()),
    ];
    for (n, rotation) in rotations.into_iter().enumerate() {
        if let Some(value) = rotation {
            put_secret(&fixture, &arn, &value).await;
            tokio::time::sleep(PAST_THE_CACHE).await;
        }
        let id = format!("tr_secrets_{n:030}");
        let outcome = function.invoke(&api, notification(&id)).await;
        assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    }

    let received = receiver.received();
    let seen: Vec<(bool, usize)> = received
        .iter()
        .map(|r| (r.verified, r.signature.matches("v1,").count()))
        .collect();
    assert_eq!(
        seen,
        [(false, 1), (true, 2), (true, 1)],
        "signed with the first key, then both, then the rotated one"
    );
    let logs = function.output();
    assert!(!logs.contains(&FIRST_KEY[6..]) && !logs.contains(&ROTATED_KEY[6..]));
    function.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_whose_secret_cannot_be_read_refuses_to_start() {
    let bin = binary("fulfilment").await;
    let fixture = AwsFixture::on(&moto::endpoint(), "secrets-missing").await;
    let api = RuntimeApi::start().await;
    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf",
        unique_name("absent")
    );
    let env = lambda_env(
        &api,
        &fixture,
        "fulfilment",
        &[("FULFILMENT_SECRETS_ARN", &missing)],
    );
    let mut function = Function::spawn(&bin, &env);
    assert!(!function.wait().await.success());
    let output = function.output();
    assert!(output.contains("refusing to start"), "{output}");
    assert!(output.contains("FULFILMENT_SECRETS_ARN"), "{output}");
}
