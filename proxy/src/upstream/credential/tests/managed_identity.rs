//! Managed identity against the App Service stand-in.
//!
//! azure_identity reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process
//! environment, and this crate forbids the `unsafe` that `std::env::set_var` needs. So
//! each test starts the stand-in here and re-runs this test binary for one ignored
//! `child_*` test, with both variables pointing at the stand-in in the child's
//! environment only. The child checks what callers see and prints a result line; the
//! parent checks what the stand-in saw.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::stand_in::{Behaviour, IDENTITY_HEADER_VALUE, StandIn};
use super::{CredentialOptions, Fixture, aad_header, metric, quick_refresh, sign, start};

const RESULT_PREFIX: &str = "credential-test-result ";

/// Runs the ignored test `child` in a new process whose environment points managed
/// identity at `stand_in`. Returns the child's result fields.
async fn run_child(child: &str, stand_in: &StandIn) -> HashMap<String, String> {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    let test_name = format!("{module}::{child}");
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test_name.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IDENTITY_ENDPOINT", stand_in.identity_endpoint())
        .env("IDENTITY_HEADER", IDENTITY_HEADER_VALUE)
        .env_remove("IDENTITY_SERVER_THUMBPRINT")
        .env_remove("MSI_ENDPOINT")
        .env_remove("IMDS_ENDPOINT")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child {child} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child {child} did not run:\n{stdout}"
    );
    let line = stdout
        .lines()
        .find_map(|line| line.split_once(RESULT_PREFIX).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("child {child} printed no result:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn number(fields: &HashMap<String, String>, name: &str) -> u64 {
    fields[name].parse().unwrap()
}

/// The credential a child builds: managed identity that refuses an IMDS fallback.
fn child_credential(fixture: &Fixture) -> (crate::upstream::Credential, prometheus::Registry) {
    let config = fixture.config("kind = \"managed_identity\"\nrequire_identity_endpoint = true");
    let options = CredentialOptions {
        refresh: quick_refresh(),
        ..CredentialOptions::default()
    };
    start(&config, options)
}

#[tokio::test]
async fn short_lived_tokens_refresh_ahead_under_concurrent_load() {
    let stand_in = StandIn::app_service(Behaviour::new(4)).await;
    let fields = run_child("child_short_lived_tokens_under_load", &stand_in).await;

    let refreshes = number(&fields, "refreshes");
    assert!(
        refreshes >= 3,
        "tokens of about 4 s were refreshed over 7 s: {fields:?}"
    );
    // NOTE: on a heavily loaded machine one run counted 5 successful refreshes for 4
    // requests at the stand-in; the cause is not known. The property under test is that
    // 50 concurrent callers never make more than one request per refresh.
    let requests = stand_in.request_count() as u64;
    assert!(
        requests <= refreshes,
        "at most one request per refresh: {requests} requests, {fields:?}"
    );
    assert!(
        requests >= 3,
        "tokens of about 4 s were fetched again over 7 s: {fields:?}"
    );
    // Callers sample the token in use, so one that was replaced soon after it arrived
    // may never be seen: at least three distinct tokens show the refreshes reached them.
    assert!(number(&fields, "distinct_tokens") >= 3, "{fields:?}");
    assert_eq!(number(&fields, "errors"), 0);

    let request = &stand_in.received()[0];
    assert_eq!(request.query["api-version"], "2019-08-01");
    assert_eq!(request.query["resource"], "https://cosmos.azure.com");
    assert!(
        !request.query.contains_key("client_id"),
        "system-assigned by default"
    );
}

#[tokio::test]
#[ignore = "run in a child process by short_lived_tokens_refresh_ahead_under_concurrent_load"]
async fn child_short_lived_tokens_under_load() {
    let fixture = Fixture::new();
    let (credential, registry) = child_credential(&fixture);
    let credential = Arc::new(credential);
    sign(&credential).await.unwrap();

    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tokens = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let stop = Instant::now() + Duration::from_secs(7);
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (credential, errors, tokens) = (
                Arc::clone(&credential),
                Arc::clone(&errors),
                Arc::clone(&tokens),
            );
            tokio::spawn(async move {
                while Instant::now() < stop {
                    match sign(&credential).await {
                        Ok(header) => {
                            tokens.lock().unwrap().insert(header);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    // Let a refresh that started in the last moment finish before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshes = metric(
        &registry,
        "cosmoguard_credential_refreshes_total{result=\"success\"}",
    )
    .unwrap();
    let distinct = tokens.lock().unwrap().len();
    println!(
        "{RESULT_PREFIX}refreshes={refreshes} distinct_tokens={distinct} errors={}",
        errors.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn slow_identity_endpoint_does_not_delay_callers() {
    let behaviour = Behaviour::new(10);
    behaviour.fast_requests.store(1, Ordering::SeqCst);
    behaviour.delay_ms.store(2000, Ordering::SeqCst);
    let stand_in = StandIn::app_service(behaviour).await;
    let fields = run_child("child_slow_identity_endpoint", &stand_in).await;

    assert_eq!(stand_in.request_count(), 2);
    assert!(number(&fields, "max_wait_ms") < 100, "{fields:?}");
    assert_eq!(number(&fields, "old_token_during_refresh"), 1);
}

#[tokio::test]
#[ignore = "run in a child process by slow_identity_endpoint_does_not_delay_callers"]
async fn child_slow_identity_endpoint() {
    let fixture = Fixture::new();
    let (credential, _registry) = child_credential(&fixture);
    let started = Instant::now();
    let first = sign(&credential).await.unwrap();
    assert_eq!(first, aad_header("stand-in-token-1"));

    // The refresh starts at half of the 9 to 10 s lifetime, so by 5.5 s at the latest,
    // and takes 2 s. Every call in between must get the first token at once.
    let mut max_wait = Duration::ZERO;
    let mut old_token_during_refresh = 0;
    loop {
        let call_started = Instant::now();
        let header = sign(&credential).await.unwrap();
        max_wait = max_wait.max(call_started.elapsed());
        if header == aad_header("stand-in-token-2") {
            break;
        }
        if header == first && started.elapsed() > Duration::from_millis(5500) {
            old_token_during_refresh = 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "no refreshed token within 9 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{RESULT_PREFIX}max_wait_ms={} old_token_during_refresh={old_token_during_refresh}",
        max_wait.as_millis()
    );
}

#[tokio::test]
async fn failing_identity_endpoint_errors_after_last_token_expires() {
    let behaviour = Behaviour::new(3);
    behaviour.fail_after.store(1, Ordering::SeqCst);
    let stand_in = StandIn::app_service(behaviour).await;
    let fields = run_child("child_failing_identity_endpoint", &stand_in).await;

    assert!(stand_in.request_count() >= 3, "the refresh was retried");
    let valid_ms = number(&fields, "valid_ms");
    assert!(
        (1500..=3500).contains(&valid_ms),
        "errors began at the token's expiry: {fields:?}"
    );
    assert_eq!(number(&fields, "errors_before_expiry"), 0);
}

#[tokio::test]
#[ignore = "run in a child process by failing_identity_endpoint_errors_after_last_token_expires"]
async fn child_failing_identity_endpoint() {
    let fixture = Fixture::new();
    let (credential, registry) = child_credential(&fixture);
    let started = Instant::now();
    let first = sign(&credential).await.unwrap();

    let error = loop {
        match sign(&credential).await {
            Ok(header) => assert_eq!(header, first, "only the first token exists"),
            Err(error) => break error,
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "the token never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let valid_ms = started.elapsed().as_millis();
    let message = error.to_string();
    assert!(message.contains("managed identity"), "{message}");
    assert!(message.contains("stand-in failure"), "{message}");
    let failures = metric(
        &registry,
        "cosmoguard_credential_refreshes_total{result=\"failure\"}",
    )
    .unwrap();
    assert!(failures >= 2.0, "{failures}");
    println!("{RESULT_PREFIX}valid_ms={valid_ms} errors_before_expiry=0");
}

#[tokio::test]
async fn user_assigned_client_id_reaches_the_endpoint() {
    let stand_in = StandIn::app_service(Behaviour::new(3600)).await;
    run_child("child_user_assigned_client_id", &stand_in).await;

    let request = &stand_in.received()[0];
    assert_eq!(
        request.query["client_id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(request.query["resource"], "https://cosmos.azure.us");
    assert_eq!(request.headers["x-identity-header"], IDENTITY_HEADER_VALUE);
}

#[tokio::test]
#[ignore = "run in a child process by user_assigned_client_id_reaches_the_endpoint"]
async fn child_user_assigned_client_id() {
    let fixture = Fixture::new();
    let config = fixture.config(
        "kind = \"managed_identity\"\nrequire_identity_endpoint = true\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n\
         scope = \"https://cosmos.azure.us/.default\"",
    );
    let (credential, _registry) = start(&config, CredentialOptions::default());
    assert_eq!(
        sign(&credential).await.unwrap(),
        aad_header("stand-in-token-1")
    );
    println!("{RESULT_PREFIX}ok=1");
}

#[tokio::test]
async fn credential_is_ready_once_a_token_arrives() {
    let stand_in = StandIn::app_service(Behaviour::new(3600)).await;
    let fields = run_child("child_readiness", &stand_in).await;
    assert_eq!(number(&fields, "ready"), 1);
}

#[tokio::test]
#[ignore = "run in a child process by credential_is_ready_once_a_token_arrives"]
async fn child_readiness() {
    let fixture = Fixture::new();
    let (credential, _registry) = child_credential(&fixture);
    let readiness = credential.readiness();
    let ready = readiness.wait_ready(Duration::from_secs(5)).await;
    assert!(readiness.is_ready());
    println!("{RESULT_PREFIX}ready={}", u8::from(ready));
}
