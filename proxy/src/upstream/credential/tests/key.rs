//! Account keys: signatures, rotation by rewriting the key file, and the secondary key.

use std::time::Duration;

use super::{CredentialOptions, Fixture, metric, sign, start};
use crate::upstream::signing::MasterKey;

// Microsoft's REST reference publishes this key; the second is another public example.
const KEY_A: &str =
    "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";
const KEY_B: &str =
    "8F8xXXOptJxkblM1DBXW7a6NMI5oE8NnwPGYBmwxLCKfejOK7B7yhcCHMGvN3PBrlMLIOeol1Hv9RCdzAZR5sg==";

fn expected(key: &str) -> String {
    MasterKey::from_base64(key).unwrap().authorization(
        "GET",
        "dbs",
        "dbs/db",
        "Thu, 27 Apr 2017 00:51:12 GMT",
    )
}

fn quick_reload() -> CredentialOptions {
    CredentialOptions {
        key_reload_interval: Duration::from_millis(50),
        ..CredentialOptions::default()
    }
}

/// Polls until the credential signs with `key`, or fails after two seconds.
async fn wait_for_key(credential: &crate::upstream::Credential, key: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while sign(credential).await.unwrap() != expected(key) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the credential never switched keys"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn key_file_signs_with_master_key() {
    let fixture = Fixture::new();
    fixture.write("account.key", &format!("{KEY_A}\n"));
    let config = fixture.config("kind = \"key\"\nkey_file = \"account.key\"");
    let (credential, _registry) = start(&config, quick_reload());
    assert_eq!(sign(&credential).await.unwrap(), expected(KEY_A));
}

#[tokio::test]
async fn rewritten_key_file_rotates_the_key() {
    let fixture = Fixture::new();
    fixture.write("account.key", KEY_A);
    let config = fixture.config("kind = \"key\"\nkey_file = \"account.key\"");
    let (credential, registry) = start(&config, quick_reload());

    fixture.write("account.key", KEY_B);
    wait_for_key(&credential, KEY_B).await;
    let reloads = metric(
        &registry,
        "cosmoguard_credential_key_reloads_total{result=\"success\"}",
    );
    assert_eq!(reloads, Some(1.0));
}

#[tokio::test]
async fn invalid_rotation_keeps_the_previous_key() {
    let fixture = Fixture::new();
    fixture.write("account.key", KEY_A);
    let config = fixture.config("kind = \"key\"\nkey_file = \"account.key\"");
    let (credential, registry) = start(&config, quick_reload());

    fixture.write("account.key", "not base64!");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sign(&credential).await.unwrap(), expected(KEY_A));
    let failures = metric(
        &registry,
        "cosmoguard_credential_key_reloads_total{result=\"failure\"}",
    );
    assert_eq!(failures, Some(1.0), "the invalid content is reported once");

    // A later valid key is still picked up.
    fixture.write("account.key", KEY_B);
    wait_for_key(&credential, KEY_B).await;
}

#[tokio::test]
async fn removed_key_file_keeps_the_previous_key() {
    let fixture = Fixture::new();
    let path = fixture.write("account.key", KEY_A);
    let config = fixture.config("kind = \"key\"\nkey_file = \"account.key\"");
    let (credential, _registry) = start(&config, quick_reload());

    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sign(&credential).await.unwrap(), expected(KEY_A));
}

#[tokio::test]
async fn rejected_primary_switches_to_secondary_once() {
    let fixture = Fixture::new();
    fixture.write("primary.key", KEY_A);
    fixture.write("secondary.key", KEY_B);
    let config = fixture.config(
        "kind = \"key\"\nkey_file = \"primary.key\"\nsecondary_key_file = \"secondary.key\"",
    );
    let (credential, registry) = start(&config, quick_reload());
    let signed = credential
        .authorization("GET", "dbs", "dbs/db", "date")
        .await
        .unwrap();

    for _ in 0..5 {
        credential.rejected(signed.generation);
    }
    assert_eq!(sign(&credential).await.unwrap(), expected(KEY_B));
    let rejections = metric(&registry, "cosmoguard_upstream_token_rejections_total");
    assert_eq!(rejections, Some(5.0));

    // A rotated primary file brings signing back to the primary.
    fixture.write("primary.key", KEY_B);
    tokio::time::sleep(Duration::from_millis(200)).await;
    fixture.write("primary.key", KEY_A);
    wait_for_key(&credential, KEY_A).await;
}

#[tokio::test]
async fn key_from_environment_variable_is_used() {
    // PATH is set in every test environment, but is no base64 key: start must fail and
    // name the variable, which proves the variable was read.
    let fixture = Fixture::new();
    let config = fixture.config("kind = \"key\"\nkey_env = \"PATH\"");
    let registry = prometheus::Registry::new();
    let error = crate::upstream::Credential::start(&config, &registry, quick_reload()).unwrap_err();
    assert!(error.to_string().contains("$PATH"), "{error}");
}
