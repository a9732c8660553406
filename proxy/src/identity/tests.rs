//! Authenticator tests against an in-process issuer on 127.0.0.1.

// Panicking on a broken fixture is the clearest failure a test can give.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;

use self::support::{
    AUDIENCE, TestIssuer, TestKey, authorization, bearer, claims, closed_address, issuer_config,
    metric, options, ready_authenticator, testdata_path, unix_now,
};
use super::*;

mod support;

/// Starts an authenticator whose clock is fixed at `now`, and waits until it is ready.
async fn authenticator_at(
    configs: Vec<IssuerConfig>,
    registry: &prometheus::Registry,
    now: i64,
) -> Authenticator {
    let authenticator =
        Authenticator::start_with_clock(configs, options(), registry, Arc::new(move || now))
            .expect("authenticator starts");
    assert!(authenticator.wait_ready(Duration::from_secs(5)).await);
    authenticator
}

fn url(text: &str) -> url::Url {
    url::Url::parse(text).expect("test URL parses")
}

// Valid tokens and principal mapping.

#[tokio::test]
async fn accepts_rs256_token_and_maps_claims() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let registry = prometheus::Registry::new();
    let authenticator = ready_authenticator(vec![issuer_config(&idp.url())], &registry).await;

    let token = key.sign(&claims(&idp.url()));
    let principal = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect("valid token is accepted");

    assert_eq!(principal.issuer, idp.url());
    assert_eq!(principal.subject, "user-1");
    assert_eq!(principal.display_name.as_deref(), Some("Test User"));
    assert_eq!(principal.groups, ["readers", "writers"]);
    assert_eq!(principal.roles, ["Data.Read"]);
    assert_eq!(principal.scopes, ["items.read", "items.write"]);
    assert_eq!(principal.app_id.as_deref(), Some("client-app"));
    assert_eq!(principal.claims["aud"], json!(AUDIENCE));
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);
    let valid = metric(
        &registry,
        "cosmoguard_token_validations_total",
        &[("issuer", &idp.url()), ("result", "valid")],
    );
    assert_eq!(valid, 1.0);
}

#[tokio::test]
async fn accepts_es256_and_eddsa_tokens() {
    let ec = TestKey::ec_p256();
    let ed = TestKey::ed25519();
    let idp = TestIssuer::start(&[&ec, &ed]).await;
    let registry = prometheus::Registry::new();
    let authenticator = ready_authenticator(vec![issuer_config(&idp.url())], &registry).await;

    for key in [&ec, &ed] {
        let token = key.sign(&claims(&idp.url()));
        let result = authenticator.authenticate(&bearer(&token)).await;
        assert!(result.is_ok(), "{} token: {result:?}", key.kid);
    }
}

#[tokio::test]
async fn maps_claims_with_custom_mapping() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let mut config = issuer_config(&idp.url());
    config.claims = ClaimMapping {
        subject: "oid".to_owned(),
        display_name: vec!["upn".to_owned()],
        groups: "wids".to_owned(),
        roles: "role".to_owned(),
        scopes: vec!["scope".to_owned()],
        app_id: vec!["appid".to_owned()],
    };
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    let mut token_claims = claims(&idp.url());
    token_claims["oid"] = json!("object-1");
    token_claims["upn"] = json!("user@example.test");
    token_claims["wids"] = json!(["role-template"]);
    token_claims["role"] = json!("Admin");
    token_claims["scope"] = json!(["a", "b"]);
    token_claims["appid"] = json!("app-2");
    let token = key.sign(&token_claims);
    let principal = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect("accepted");

    assert_eq!(principal.subject, "object-1");
    assert_eq!(principal.display_name.as_deref(), Some("user@example.test"));
    assert_eq!(principal.groups, ["role-template"]);
    assert_eq!(principal.roles, ["Admin"]);
    assert_eq!(principal.scopes, ["a", "b"]);
    assert_eq!(principal.app_id.as_deref(), Some("app-2"));
}

#[tokio::test]
async fn rejects_token_without_subject() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let mut token_claims = claims(&idp.url());
    token_claims.as_object_mut().expect("object").remove("sub");
    let error = authenticator
        .authenticate(&bearer(&key.sign(&token_claims)))
        .await
        .expect_err("no subject");
    assert_eq!(error.reason(), "missing_claim");
}

// Time claims, with a fixed clock so second boundaries cannot make the tests flaky.

#[tokio::test]
async fn not_before_respects_leeway() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let now = unix_now();
    let registry = prometheus::Registry::new();
    let authenticator = authenticator_at(vec![issuer_config(&idp.url())], &registry, now).await;

    let mut early = claims(&idp.url());
    early["nbf"] = json!(now + 61);
    let error = authenticator
        .authenticate(&bearer(&key.sign(&early)))
        .await
        .expect_err("nbf 61 s ahead");
    assert_eq!(error.reason(), "not_yet_valid");

    let mut within = claims(&idp.url());
    within["nbf"] = json!(now + 59);
    let result = authenticator
        .authenticate(&bearer(&key.sign(&within)))
        .await;
    assert!(result.is_ok(), "nbf 59 s ahead: {result:?}");
}

#[tokio::test]
async fn issued_at_in_future_beyond_leeway_is_rejected() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let now = unix_now();
    let registry = prometheus::Registry::new();
    let authenticator = authenticator_at(vec![issuer_config(&idp.url())], &registry, now).await;

    let mut future = claims(&idp.url());
    future["iat"] = json!(now + 120);
    let error = authenticator
        .authenticate(&bearer(&key.sign(&future)))
        .await
        .expect_err("iat 120 s ahead");
    assert!(
        matches!(error, AuthError::NotYetValid { claim: "iat", .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn expiry_respects_leeway() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let now = unix_now();
    let registry = prometheus::Registry::new();
    let authenticator = authenticator_at(vec![issuer_config(&idp.url())], &registry, now).await;

    let mut just_expired = claims(&idp.url());
    just_expired["exp"] = json!(now - 1);
    let result = authenticator
        .authenticate(&bearer(&key.sign(&just_expired)))
        .await;
    assert!(result.is_ok(), "exp 1 s past: {result:?}");

    let mut expired = claims(&idp.url());
    expired["exp"] = json!(now - 61);
    let error = authenticator
        .authenticate(&bearer(&key.sign(&expired)))
        .await
        .expect_err("exp 61 s past");
    assert_eq!(error.reason(), "expired");
    assert!(!error.is_infrastructure());
}

#[tokio::test]
async fn rejects_token_without_exp() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let mut token_claims = claims(&idp.url());
    token_claims.as_object_mut().expect("object").remove("exp");
    let error = authenticator
        .authenticate(&bearer(&key.sign(&token_claims)))
        .await
        .expect_err("no exp");
    assert_eq!(
        error,
        AuthError::MissingClaim {
            claim: "exp".to_owned()
        }
    );
}

// Audience and issuer.

#[tokio::test]
async fn rejects_wrong_audience() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let mut token_claims = claims(&idp.url());
    token_claims["aud"] = json!("api://someone-else");
    let error = authenticator
        .authenticate(&bearer(&key.sign(&token_claims)))
        .await
        .expect_err("wrong audience");
    assert_eq!(error.reason(), "wrong_audience");
}

#[tokio::test]
async fn accepts_audience_array_containing_configured_audience() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let mut token_claims = claims(&idp.url());
    token_claims["aud"] = json!(["api://other", AUDIENCE]);
    let result = authenticator
        .authenticate(&bearer(&key.sign(&token_claims)))
        .await;
    assert!(result.is_ok(), "{result:?}");

    token_claims["aud"] = json!(["api://other", "api://third"]);
    let error = authenticator
        .authenticate(&bearer(&key.sign(&token_claims)))
        .await
        .expect_err("no configured audience in the array");
    assert_eq!(error.reason(), "wrong_audience");
}

#[tokio::test]
async fn accepts_each_of_two_audiences() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let mut config = issuer_config(&idp.url());
    config.audiences = vec!["https://127.0.0.2:8443".to_owned(), AUDIENCE.to_owned()];
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    for audience in ["https://127.0.0.2:8443", AUDIENCE] {
        let mut token_claims = claims(&idp.url());
        token_claims["aud"] = json!(audience);
        let result = authenticator
            .authenticate(&bearer(&key.sign(&token_claims)))
            .await;
        assert!(result.is_ok(), "audience {audience}: {result:?}");
    }
}

#[tokio::test]
async fn rejects_unknown_issuer() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let registry = prometheus::Registry::new();
    let authenticator = ready_authenticator(vec![issuer_config(&idp.url())], &registry).await;

    let token = key.sign(&claims("http://127.0.0.1:1/other"));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("unknown issuer");
    assert_eq!(error.reason(), "unknown_issuer");
    let counted = metric(
        &registry,
        "cosmoguard_token_validations_total",
        &[("issuer", "unknown"), ("result", "unknown_issuer")],
    );
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn unknown_issuer_hints_at_trailing_slash() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let token = key.sign(&claims(&format!("{}/", idp.url())));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("issuer with a trailing slash");
    let AuthError::UnknownIssuer { hint, .. } = &error else {
        panic!("expected unknown_issuer, got {error:?}");
    };
    assert!(
        hint.is_some_and(|hint| hint.contains("trailing")),
        "{error}"
    );
}

#[tokio::test]
async fn rejects_discovery_document_for_another_issuer() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    idp.set_discovery_issuer("http://127.0.0.1:1/impostor");
    let authenticator = Authenticator::start(
        vec![issuer_config(&idp.url())],
        options(),
        &prometheus::Registry::new(),
    )
    .expect("starts");

    assert!(!authenticator.wait_ready(Duration::from_millis(500)).await);
    let token = key.sign(&claims(&idp.url()));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("no keys");
    let AuthError::IssuerUnavailable { error: cause, .. } = &error else {
        panic!("expected issuer_unavailable, got {error:?}");
    };
    assert!(cause.contains("impostor"), "{cause}");
    assert_eq!(idp.jwks_hits(), 0);
}

// Signatures and algorithms.

#[tokio::test]
async fn rejects_bad_signature() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    // Signed by another key, but naming the published key's id.
    let forged = TestKey::rsa_b().sign_with_kid(&claims(&idp.url()), Some(&key.kid));
    let error = authenticator
        .authenticate(&bearer(&forged))
        .await
        .expect_err("forged signature");
    assert_eq!(error, AuthError::BadSignature);

    // A valid token whose payload was swapped after signing.
    let token = key.sign(&claims(&idp.url()));
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut altered = claims(&idp.url());
    altered["sub"] = json!("admin");
    let altered_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        altered.to_string(),
    );
    parts[1] = &altered_payload;
    let error = authenticator
        .authenticate(&bearer(&parts.join(".")))
        .await
        .expect_err("altered payload");
    assert_eq!(error, AuthError::BadSignature);
}

fn unsigned_token(
    header: serde_json::Value,
    payload: &serde_json::Value,
    signature: &str,
) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = base64::Engine::encode(&engine, header.to_string());
    let payload = base64::Engine::encode(&engine, payload.to_string());
    format!("{header}.{payload}.{signature}")
}

#[tokio::test]
async fn rejects_alg_none() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let token = unsigned_token(
        json!({"alg": "none", "typ": "JWT"}),
        &claims(&idp.url()),
        "",
    );
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("alg none");
    assert_eq!(error.reason(), "disallowed_algorithm");
}

#[tokio::test]
async fn rejects_hs256_signed_with_public_key() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let public_pem = include_bytes!("testdata/rsa-a.pub.pem");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let secret = jsonwebtoken::EncodingKey::from_secret(public_pem);
    let token = jsonwebtoken::encode(&header, &claims(&idp.url()), &secret).expect("signs");
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("HMAC with the public key");
    assert_eq!(
        error,
        AuthError::DisallowedAlgorithm {
            alg: "HS256".to_owned()
        }
    );
}

#[tokio::test]
async fn rejects_algorithm_outside_configured_set() {
    let rsa = TestKey::rsa_a();
    let ec = TestKey::ec_p256();
    let idp = TestIssuer::start(&[&rsa, &ec]).await;
    let mut config = issuer_config(&idp.url());
    config.algorithms = vec![SigningAlgorithm::RS256];
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    let error = authenticator
        .authenticate(&bearer(&ec.sign(&claims(&idp.url()))))
        .await
        .expect_err("ES256 not configured");
    assert_eq!(error.reason(), "disallowed_algorithm");
}

#[tokio::test]
async fn rejects_algorithm_that_does_not_fit_key() {
    let rsa = TestKey::rsa_a();
    let ec = TestKey::ec_p256();
    let idp = TestIssuer::start(&[&rsa]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    // An ES256 token naming the RSA key's id.
    let token = ec.sign_with_kid(&claims(&idp.url()), Some(&rsa.kid));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("ES256 with an RSA key");
    assert_eq!(error.reason(), "algorithm_key_mismatch");
}

#[tokio::test]
async fn ignores_embedded_jwk_header() {
    let key = TestKey::rsa_a();
    let attacker = TestKey::rsa_b();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    // The attacker signs with its own key and embeds that key in the header.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.jwk = serde_json::from_value(attacker.jwk.clone()).ok();
    header.jku = Some(format!("{}/jwks", idp.url()));
    let token =
        jsonwebtoken::encode(&header, &claims(&idp.url()), &attacker.encoding).expect("signs");
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("embedded key is not trusted");
    assert_eq!(error, AuthError::BadSignature);
}

#[tokio::test]
async fn accepts_token_without_kid_when_issuer_has_one_key() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let token = key.sign_with_kid(&claims(&idp.url()), None);
    let result = authenticator.authenticate(&bearer(&token)).await;
    assert!(result.is_ok(), "{result:?}");
}

// Key rotation, refetch and its rate limit.

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_that_finds_rotated_key() {
    let old = TestKey::rsa_a();
    let new = TestKey::rsa_b();
    let idp = TestIssuer::start(&[&old]).await;
    let mut config = issuer_config(&idp.url());
    config.jwks_min_refetch_interval = Duration::from_millis(300);
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;
    assert_eq!(idp.jwks_hits(), 1);

    // Wait for the rate-limit window of the first fetch to pass, then rotate.
    tokio::time::sleep(Duration::from_millis(400)).await;
    idp.set_keys(&[&old, &new]);
    let token = new.sign(&claims(&idp.url()));
    let result = authenticator.authenticate(&bearer(&token)).await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn bogus_kid_flood_fetches_at_most_once_per_window() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let mut config = issuer_config(&idp.url());
    config.jwks_min_refetch_interval = Duration::from_secs(2);
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(idp.jwks_hits(), 1);

    let mut requests = Vec::new();
    for index in 0..50 {
        let token = key.sign_with_kid(&claims(&idp.url()), Some(&format!("bogus-{index}")));
        let authenticator = authenticator.clone();
        requests.push(tokio::spawn(async move {
            authenticator.authenticate(&bearer(&token)).await
        }));
    }
    for request in requests {
        let error = request.await.expect("task runs").expect_err("bogus kid");
        assert_eq!(error.reason(), "unknown_key_id");
    }
    for index in 0..50 {
        let token = key.sign_with_kid(&claims(&idp.url()), Some(&format!("late-{index}")));
        let error = authenticator
            .authenticate(&bearer(&token))
            .await
            .expect_err("bogus kid");
        assert_eq!(error.reason(), "unknown_key_id");
    }
    assert_eq!(idp.jwks_hits(), 2, "one refetch inside the window");

    // The requests held back by the window cause at most one more fetch once it opens.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(idp.jwks_hits() <= 3, "hits: {}", idp.jwks_hits());
}

#[tokio::test]
async fn refreshes_keys_on_cache_control_max_age() {
    let old = TestKey::rsa_a();
    let new = TestKey::rsa_b();
    let idp = TestIssuer::start(&[&old]).await;
    idp.set_cache_control("public, max-age=1");
    let mut config = issuer_config(&idp.url());
    config.jwks_min_refetch_interval = Duration::from_millis(500);
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    idp.set_keys(&[&new]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(idp.jwks_hits() >= 2, "hits: {}", idp.jwks_hits());

    // The old key is gone without any request asking for a refetch.
    let error = authenticator
        .authenticate(&bearer(&old.sign(&claims(&idp.url()))))
        .await
        .expect_err("old key removed");
    assert_eq!(error.reason(), "unknown_key_id");
}

#[tokio::test]
async fn invalid_jwks_refresh_keeps_previous_keys() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    idp.set_cache_control("max-age=1");
    let mut config = issuer_config(&idp.url());
    config.jwks_min_refetch_interval = Duration::from_millis(500);
    let registry = prometheus::Registry::new();
    let authenticator = ready_authenticator(vec![config], &registry).await;

    idp.set_jwks(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let failures = metric(
        &registry,
        "cosmoguard_jwks_fetches_total",
        &[("issuer", &idp.url()), ("result", "failure")],
    );
    assert!(failures >= 1.0, "the refresh failed");
    assert!(authenticator.is_ready());
    let result = authenticator
        .authenticate(&bearer(&key.sign(&claims(&idp.url()))))
        .await;
    assert!(result.is_ok(), "{result:?}");
}

// The token cache.

#[tokio::test]
async fn cached_token_skips_verification() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let registry = prometheus::Registry::new();
    let authenticator = ready_authenticator(vec![issuer_config(&idp.url())], &registry).await;

    let headers = bearer(&key.sign(&claims(&idp.url())));
    let first = authenticator
        .authenticate_shared(&headers)
        .await
        .expect("first");
    let second = authenticator
        .authenticate_shared(&headers)
        .await
        .expect("second");
    let third = authenticator
        .authenticate_shared(&headers)
        .await
        .expect("third");

    assert!(
        Arc::ptr_eq(&first, &second),
        "the cached principal is shared"
    );
    assert!(Arc::ptr_eq(&first, &third));
    let hits = metric(
        &registry,
        "cosmoguard_token_cache_requests_total",
        &[("result", "hit")],
    );
    let misses = metric(
        &registry,
        "cosmoguard_token_cache_requests_total",
        &[("result", "miss")],
    );
    assert_eq!(hits, 2.0);
    assert_eq!(misses, 1.0);
}

#[tokio::test]
async fn cached_token_is_dropped_when_its_key_is_removed() {
    let old = TestKey::rsa_a();
    let new = TestKey::rsa_b();
    let idp = TestIssuer::start(&[&old]).await;
    let mut config = issuer_config(&idp.url());
    config.jwks_min_refetch_interval = Duration::from_millis(200);
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    let old_headers = bearer(&old.sign(&claims(&idp.url())));
    authenticator
        .authenticate(&old_headers)
        .await
        .expect("old key valid");

    tokio::time::sleep(Duration::from_millis(300)).await;
    idp.set_keys(&[&new]);
    authenticator
        .authenticate(&bearer(&new.sign(&claims(&idp.url()))))
        .await
        .expect("new key fetched");

    let error = authenticator
        .authenticate(&old_headers)
        .await
        .expect_err("cached token of a removed key");
    assert_eq!(error.reason(), "unknown_key_id");
}

#[tokio::test]
async fn cached_token_expires_at_its_exp() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let now = unix_now();
    let registry = prometheus::Registry::new();
    let mut config = issuer_config(&idp.url());
    config.leeway = Duration::ZERO;
    let current = Arc::new(std::sync::atomic::AtomicI64::new(now));
    let clock_time = Arc::clone(&current);
    let clock: Clock = Arc::new(move || clock_time.load(std::sync::atomic::Ordering::SeqCst));
    let authenticator =
        Authenticator::start_with_clock(vec![config], options(), &registry, clock).expect("starts");
    assert!(authenticator.wait_ready(Duration::from_secs(5)).await);

    let mut token_claims = claims(&idp.url());
    token_claims["exp"] = json!(now + 30);
    let headers = bearer(&key.sign(&token_claims));
    authenticator
        .authenticate(&headers)
        .await
        .expect("valid now");

    current.store(now + 31, std::sync::atomic::Ordering::SeqCst);
    let error = authenticator
        .authenticate(&headers)
        .await
        .expect_err("expired while cached");
    assert_eq!(error.reason(), "expired");
}

// Entra ID issuers.

const TENANT_A: &str = "11111111-2222-3333-4444-555555555555";
const TENANT_B: &str = "99999999-8888-7777-6666-555555555555";

/// Builds an Entra-shaped multi-tenant issuer on the test server, whose discovery
/// document names `{base}{path_prefix}{tenantid}{path_suffix}` as issuer.
fn tenant_template_config(idp: &TestIssuer, path_prefix: &str, path_suffix: &str) -> IssuerConfig {
    let template = format!("{}{path_prefix}{{tenantid}}{path_suffix}", idp.url());
    idp.set_discovery_issuer(&template);
    let mut config = issuer_config(&template);
    config.discovery_url = Some(url(&format!(
        "{}/common/v2.0/.well-known/openid-configuration",
        idp.url()
    )));
    config.allowed_tenants = vec![TENANT_A.to_uppercase()];
    config
}

fn tenant_claims(issuer: &str, tenant: &str) -> serde_json::Value {
    let mut token_claims = claims(issuer);
    token_claims["tid"] = json!(tenant);
    token_claims
}

#[tokio::test]
async fn tenant_template_accepts_only_allowed_tenants() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let config = tenant_template_config(&idp, "/", "/v2.0");
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    let allowed_iss = format!("{}/{TENANT_A}/v2.0", idp.url());
    let token = key.sign(&tenant_claims(&allowed_iss, TENANT_A));
    let principal = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect("allowed tenant");
    assert_eq!(principal.issuer, allowed_iss);

    let other_iss = format!("{}/{TENANT_B}/v2.0", idp.url());
    let token = key.sign(&tenant_claims(&other_iss, TENANT_B));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("tenant not allowed");
    assert_eq!(error.reason(), "tenant_not_allowed");

    // The tid must be the tenant named in iss.
    let token = key.sign(&tenant_claims(&allowed_iss, TENANT_B));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("tid differs from iss");
    let AuthError::UnknownIssuer { hint, .. } = &error else {
        panic!("expected unknown_issuer, got {error:?}");
    };
    assert!(hint.is_some_and(|hint| hint.contains("tid")), "{error}");
}

#[tokio::test]
async fn single_tenant_issuer_accepts_template_discovery_document() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let template_config = tenant_template_config(&idp, "/", "/v2.0");
    let issuer = format!("{}/{TENANT_A}/v2.0", idp.url());
    let mut config = issuer_config(&issuer);
    config.discovery_url = template_config.discovery_url;
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;

    let token = key.sign(&tenant_claims(&issuer, TENANT_A));
    let result = authenticator.authenticate(&bearer(&token)).await;
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn discovery_issuer_template_matches_one_tenant_segment() {
    let template = "http://127.0.0.1:1/{tenantid}/v2.0";
    let cases = [
        ("http://127.0.0.1:1/{tenantid}/v2.0", true),
        (
            "http://127.0.0.1:1/11111111-2222-3333-4444-555555555555/v2.0",
            true,
        ),
        ("http://127.0.0.1:1//v2.0", false),
        ("http://127.0.0.1:1/a/b/v2.0", false),
        ("http://127.0.0.1:2/tenant/v2.0", false),
    ];
    for (configured, expected) in cases {
        assert_eq!(
            issuer::discovery_issuer_matches(template, configured),
            expected,
            "{configured}"
        );
    }
    assert!(!issuer::discovery_issuer_matches(
        "http://127.0.0.1:1/a",
        "http://127.0.0.1:1/b"
    ));
}

#[tokio::test]
async fn accepts_v1_and_v2_issuers_when_both_configured() {
    let key = TestKey::rsa_a();
    let v2_idp = TestIssuer::start(&[&key]).await;
    let v1_idp = TestIssuer::start(&[&key]).await;
    let v2 = tenant_template_config(&v2_idp, "/", "/v2.0");
    let v1 = tenant_template_config(&v1_idp, "/sts/", "/");
    let authenticator =
        ready_authenticator(vec![v2, v1.clone()], &prometheus::Registry::new()).await;

    let v2_iss = format!("{}/{TENANT_A}/v2.0", v2_idp.url());
    let v1_iss = format!("{}/sts/{TENANT_A}/", v1_idp.url());
    for iss in [&v2_iss, &v1_iss] {
        let token = key.sign(&tenant_claims(iss, TENANT_A));
        let result = authenticator.authenticate(&bearer(&token)).await;
        assert!(result.is_ok(), "{iss}: {result:?}");
    }

    // With only the v2 entry, a v1 token names its issuer in the error.
    let v2_only = tenant_template_config(&v2_idp, "/", "/v2.0");
    let authenticator = ready_authenticator(vec![v2_only], &prometheus::Registry::new()).await;
    let token = key.sign(&tenant_claims(&v1_iss, TENANT_A));
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("v1 not configured");
    assert_eq!(error.reason(), "unknown_issuer");
    assert!(error.to_string().contains(&v1_iss), "{error}");
}

// Header forms and limits.

#[tokio::test]
async fn accepts_bearer_and_cosmos_aad_forms() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;
    let token = key.sign(&claims(&idp.url()));

    let forms = [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("type=aad&ver=1.0&sig={token}"),
        format!("type%3Daad%26ver%3D1.0%26sig%3D{token}"),
        format!("type%3daad%26ver%3d1.0%26sig%3d{token}"),
    ];
    for form in forms {
        let result = authenticator.authenticate(&authorization(&form)).await;
        let prefix: String = form.chars().take(30).collect();
        assert!(result.is_ok(), "{prefix}: {result:?}");
    }
}

#[tokio::test]
async fn rejects_master_key_and_resource_token_credentials() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let credentials = [
        "type=master&ver=1.0&sig=c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c=",
        "type%3dmaster%26ver%3d1.0%26sig%3dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2bc%2bc%3d",
        "type=resource&ver=1&sig=abc",
        "Basic dXNlcjpwYXNz",
    ];
    for credential in credentials {
        let error = authenticator
            .authenticate(&authorization(credential))
            .await
            .expect_err("not a token");
        assert_eq!(error.reason(), "unsupported_scheme", "{credential}");
    }
}

#[tokio::test]
async fn rejects_missing_duplicate_and_malformed_headers() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;
    let token = key.sign(&claims(&idp.url()));

    let missing = authenticator.authenticate(&http::HeaderMap::new()).await;
    assert_eq!(missing.expect_err("no header"), AuthError::Missing);

    let mut duplicate = bearer(&token);
    duplicate.append(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).expect("valid"),
    );
    let error = authenticator
        .authenticate(&duplicate)
        .await
        .expect_err("two headers");
    assert_eq!(error, AuthError::DuplicateHeader);

    for value in [
        "Bearer ",
        "Bearer a.b",
        "Bearer a.b.c.d.e",
        "type=aad&ver=1.0",
        token.as_str(),
    ] {
        let error = authenticator
            .authenticate(&authorization(value))
            .await
            .expect_err("malformed");
        assert_eq!(error.reason(), "malformed", "{value}");
    }
}

#[tokio::test]
async fn rejects_oversized_token_before_parsing() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let authenticator = ready_authenticator(
        vec![issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let mut token_claims = claims(&idp.url());
    token_claims["padding"] = json!("x".repeat(17 * 1024));
    let token = key.sign(&token_claims);
    let error = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect_err("too large");
    assert_eq!(error.reason(), "token_too_large");

    // Not even a JWT: the size is checked first.
    let error = authenticator
        .authenticate(&bearer(&"y".repeat(20 * 1024)))
        .await
        .expect_err("too large");
    assert_eq!(error.reason(), "token_too_large");
}

// Issuer outages.

#[tokio::test]
async fn issuer_down_at_start_is_infrastructure_error() {
    let key = TestKey::rsa_a();
    let address = closed_address().await;
    let issuer = format!("http://{address}");
    let mut config = issuer_config(&issuer);
    config.jwks_url = Some(url(&format!("{issuer}/jwks")));
    let registry = prometheus::Registry::new();
    let authenticator = Authenticator::start(vec![config], options(), &registry).expect("starts");

    assert!(!authenticator.wait_ready(Duration::from_millis(500)).await);
    assert!(!authenticator.is_ready());
    let error = authenticator
        .authenticate(&bearer(&key.sign(&claims(&issuer))))
        .await
        .expect_err("no keys");
    assert!(error.is_infrastructure(), "{error:?}");
    assert_eq!(error.reason(), "issuer_unavailable");
    let failures = metric(
        &registry,
        "cosmoguard_jwks_fetches_total",
        &[("issuer", &issuer), ("result", "failure")],
    );
    assert!(failures >= 1.0);
}

#[tokio::test]
async fn broken_issuer_does_not_block_others() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let address = closed_address().await;
    let mut broken = issuer_config(&format!("http://{address}"));
    broken.required = false;
    let authenticator = ready_authenticator(
        vec![broken, issuer_config(&idp.url())],
        &prometheus::Registry::new(),
    )
    .await;

    let result = authenticator
        .authenticate(&bearer(&key.sign(&claims(&idp.url()))))
        .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn last_known_good_keys_survive_outage_until_max_stale() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let mut config = issuer_config(&idp.url());
    config.jwks_refresh_interval = Duration::from_secs(60);
    config.jwks_max_stale = Duration::from_secs(24 * 3600);
    let registry = prometheus::Registry::new();
    let mut options = options();
    options.token_cache_max_bytes = 0;
    let authenticator = Authenticator::start(vec![config], options, &registry).expect("starts");
    assert!(authenticator.wait_ready(Duration::from_secs(5)).await);
    let headers = bearer(&key.sign(&claims(&idp.url())));

    idp.set_down(true);
    // Paused time runs the hours of failed refreshes without waiting for them.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(23 * 3600)).await;
    assert!(idp.jwks_hits() > 1, "refreshes were attempted");
    assert!(authenticator.is_ready());
    let result = authenticator.authenticate(&headers).await;
    assert!(result.is_ok(), "keys of 23 h ago: {result:?}");

    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert!(!authenticator.is_ready());
    let error = authenticator
        .authenticate(&headers)
        .await
        .expect_err("keys too old");
    assert!(error.is_infrastructure(), "{error:?}");
    assert_eq!(error.reason(), "issuer_unavailable");
}

#[tokio::test]
async fn issuer_down_at_start_recovers_with_retries() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    idp.set_down(true);
    let authenticator = Authenticator::start(
        vec![issuer_config(&idp.url())],
        options(),
        &prometheus::Registry::new(),
    )
    .expect("starts");
    assert!(!authenticator.wait_ready(Duration::from_millis(300)).await);

    idp.set_down(false);
    assert!(authenticator.wait_ready(Duration::from_secs(5)).await);
    let result = authenticator
        .authenticate(&bearer(&key.sign(&claims(&idp.url()))))
        .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn cancelled_request_does_not_stop_refetch() {
    let old = TestKey::rsa_a();
    let new = TestKey::rsa_b();
    let idp = TestIssuer::start(&[&old]).await;
    let mut config = issuer_config(&idp.url());
    config.jwks_min_refetch_interval = Duration::from_millis(200);
    let authenticator = ready_authenticator(vec![config], &prometheus::Registry::new()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    idp.set_keys(&[&old, &new]);

    // The request is polled once, which requests a refetch, and then dropped.
    let headers = bearer(&new.sign(&claims(&idp.url())));
    let cancelled = authenticator.authenticate(&headers).now_or_never();
    assert!(
        cancelled.is_none(),
        "the request was still waiting: {cancelled:?}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(idp.jwks_hits(), 2);
    let result = authenticator.authenticate(&headers).await;
    assert!(result.is_ok(), "{result:?}");
}

// HTTPS issuers.

fn https_options(extra_ca: bool) -> AuthenticatorOptions {
    AuthenticatorOptions {
        allow_plain_http: false,
        extra_ca_file: extra_ca.then(|| testdata_path("test-ca.pem")),
        ..options()
    }
}

#[tokio::test]
async fn https_issuer_trusted_through_extra_ca() {
    let key = TestKey::ec_p256();
    let idp = TestIssuer::start_tls(&[&key]).await;
    let authenticator = Authenticator::start(
        vec![issuer_config(&idp.url())],
        https_options(true),
        &prometheus::Registry::new(),
    )
    .expect("starts");

    assert!(authenticator.wait_ready(Duration::from_secs(5)).await);
    let result = authenticator
        .authenticate(&bearer(&key.sign(&claims(&idp.url()))))
        .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn https_issuer_with_untrusted_certificate_is_unavailable() {
    let key = TestKey::ec_p256();
    let idp = TestIssuer::start_tls(&[&key]).await;
    let authenticator = Authenticator::start(
        vec![issuer_config(&idp.url())],
        https_options(false),
        &prometheus::Registry::new(),
    )
    .expect("starts");

    assert!(!authenticator.wait_ready(Duration::from_millis(500)).await);
    let error = authenticator
        .authenticate(&bearer(&key.sign(&claims(&idp.url()))))
        .await
        .expect_err("certificate not trusted");
    assert!(error.is_infrastructure(), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

#[tokio::test]
async fn https_discovery_pointing_at_plain_http_jwks_is_rejected() {
    let key = TestKey::ec_p256();
    let idp = TestIssuer::start_tls(&[&key]).await;
    let plain = TestIssuer::start(&[&key]).await;
    idp.set_jwks_uri(&format!("{}/jwks", plain.url()));
    let authenticator = Authenticator::start(
        vec![issuer_config(&idp.url())],
        https_options(true),
        &prometheus::Registry::new(),
    )
    .expect("starts");

    assert!(!authenticator.wait_ready(Duration::from_millis(500)).await);
    let error = authenticator
        .authenticate(&bearer(&key.sign(&claims(&idp.url()))))
        .await
        .expect_err("plain http JWKS");
    assert!(error.to_string().contains("plain http"), "{error}");
    assert_eq!(plain.jwks_hits(), 0);
}

#[tokio::test]
async fn start_rejects_unreadable_or_empty_ca_file() {
    let registry = prometheus::Registry::new();
    let issuer = vec![issuer_config("https://127.0.0.1:1")];
    let mut missing = https_options(false);
    missing.extra_ca_file = Some(testdata_path("no-such-file.pem"));
    let result = Authenticator::start(issuer.clone(), missing, &registry);
    assert!(
        matches!(result, Err(ConfigError::CaFile { .. })),
        "{result:?}"
    );

    let mut not_a_certificate = https_options(false);
    not_a_certificate.extra_ca_file = Some(testdata_path("rsa-a.pub.pem"));
    let result = Authenticator::start(issuer, not_a_certificate, &registry);
    assert!(
        matches!(result, Err(ConfigError::EmptyCaFile { .. })),
        "{result:?}"
    );
}

// Configuration.

#[test]
fn parses_issuer_table_with_defaults() {
    let config: IssuerConfig = toml::from_str(
        r#"
        issuer = "https://127.0.0.1:8080"
        audiences = ["api://cosmoguard"]
        "#,
    )
    .expect("parses");

    assert_eq!(config.algorithms, SigningAlgorithm::ALL);
    assert_eq!(config.leeway, Duration::from_secs(60));
    assert_eq!(config.jwks_refresh_interval, Duration::from_secs(300));
    assert_eq!(config.jwks_max_stale, Duration::from_secs(86_400));
    assert_eq!(config.jwks_min_refetch_interval, Duration::from_secs(10));
    assert!(config.required);
    assert_eq!(config.claims, ClaimMapping::default());
    assert_eq!(
        config.discovery_document_url().expect("derives").as_str(),
        "https://127.0.0.1:8080/.well-known/openid-configuration"
    );
    assert!(config.validate(false).is_ok());
}

#[test]
fn parses_full_issuer_table() {
    let config: IssuerConfig = toml::from_str(
        r#"
        issuer = "https://127.0.0.1:8080/{tenantid}/v2.0"
        audiences = ["https://127.0.0.2:8443", "api://cosmoguard"]
        discovery_url = "https://127.0.0.1:8080/common/v2.0/.well-known/openid-configuration"
        algorithms = ["RS256", "ES256"]
        leeway = "30s"
        jwks_refresh_interval = "10m"
        jwks_max_stale = "12h"
        allowed_tenants = ["11111111-2222-3333-4444-555555555555"]
        [claims]
        subject = "oid"
        display_name = "upn"
        scopes = ["scp"]
        "#,
    )
    .expect("parses");

    assert_eq!(
        config.algorithms,
        [SigningAlgorithm::RS256, SigningAlgorithm::ES256]
    );
    assert_eq!(config.leeway, Duration::from_secs(30));
    assert_eq!(config.jwks_max_stale, Duration::from_secs(12 * 3600));
    assert_eq!(config.claims.subject, "oid");
    assert_eq!(config.claims.display_name, ["upn"]);
    assert_eq!(config.claims.groups, "groups");
    assert!(config.is_tenant_template());
    assert!(config.validate(false).is_ok());
}

#[test]
fn rejects_hmac_and_unknown_fields_in_config() {
    let hmac = toml::from_str::<IssuerConfig>(
        r#"
        issuer = "https://127.0.0.1:8080"
        audiences = ["a"]
        algorithms = ["HS256"]
        "#,
    );
    assert!(hmac.is_err());

    let unknown = toml::from_str::<IssuerConfig>(
        r#"
        issuer = "https://127.0.0.1:8080"
        audiences = ["a"]
        audience = "a"
        "#,
    );
    assert!(unknown.is_err());
}

#[test]
fn validation_rejects_unsafe_issuer_settings() {
    let plain = issuer_config("http://127.0.0.1:8080");
    assert!(matches!(
        plain.validate(false),
        Err(ConfigError::PlainHttp { .. })
    ));
    assert!(plain.validate(true).is_ok());

    let mut plain_jwks = issuer_config("https://127.0.0.1:8080");
    plain_jwks.jwks_url = Some(url("http://127.0.0.1:8080/jwks"));
    assert!(matches!(
        plain_jwks.validate(false),
        Err(ConfigError::PlainHttp { .. })
    ));

    let no_audience = IssuerConfig::new("https://127.0.0.1:8080", Vec::new());
    assert!(matches!(
        no_audience.validate(false),
        Err(ConfigError::NoAudiences { .. })
    ));

    let mut refresh_after_stale = issuer_config("https://127.0.0.1:8080");
    refresh_after_stale.jwks_max_stale = Duration::from_secs(60);
    assert!(matches!(
        refresh_after_stale.validate(false),
        Err(ConfigError::RefreshNotBeforeStale { .. })
    ));

    let mut template = issuer_config("https://127.0.0.1:8080/{tenantid}/v2.0");
    assert!(matches!(
        template.validate(false),
        Err(ConfigError::TemplateWithoutDiscoveryUrl { .. })
    ));
    template.discovery_url = Some(url(
        "https://127.0.0.1:8080/common/.well-known/openid-configuration",
    ));
    assert!(matches!(
        template.validate(false),
        Err(ConfigError::TemplateWithoutTenants { .. })
    ));
}

#[tokio::test]
async fn start_rejects_duplicate_and_missing_issuers() {
    let registry = prometheus::Registry::new();
    let none = Authenticator::start(Vec::new(), options(), &registry);
    assert!(matches!(none, Err(ConfigError::NoIssuers)));

    let issuer = "http://127.0.0.1:1";
    let duplicate = Authenticator::start(
        vec![issuer_config(issuer), issuer_config(issuer)],
        options(),
        &registry,
    );
    assert!(matches!(
        duplicate,
        Err(ConfigError::DuplicateIssuer { .. })
    ));
}

// Units below the authenticator.

#[test]
fn key_set_skips_unusable_keys() {
    let rsa = TestKey::rsa_a();
    let mut encryption = TestKey::rsa_b().jwk;
    encryption["use"] = json!("enc");
    let document = json!({"keys": [
        rsa.jwk,
        encryption,
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "short"},
    ]});
    let key_set = keys::KeySet::parse(document.to_string().as_bytes()).expect("parses");

    assert_eq!(key_set.keys.len(), 1);
    assert_eq!(key_set.skipped, 4);
    assert_eq!(key_set.keys[0].key_id.as_deref(), Some("rsa-a"));
}

#[test]
fn key_set_without_usable_keys_is_an_error() {
    let document = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
    let result = keys::KeySet::parse(document.to_string().as_bytes());
    assert!(matches!(
        result,
        Err(keys::KeySetError::NoUsableKeys { skipped: 1 })
    ));
}

#[test]
fn max_age_reads_cache_control() {
    let cases = [
        ("public, max-age=3600", Some(3600)),
        ("Max-Age=60", Some(60)),
        ("max-age=60, no-cache", None),
        ("no-store", None),
        ("private", None),
        ("max-age=abc", None),
    ];
    for (value, expected) in cases {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CACHE_CONTROL, value.parse().expect("valid"));
        let expected = expected.map(Duration::from_secs);
        assert_eq!(client::max_age(&headers), expected, "{value}");
    }
}

#[test]
fn credential_forms_extract_the_same_token() {
    let token = "aGVhZGVy.cGF5bG9hZA.c2ln";
    let forms = [
        format!("Bearer {token}"),
        format!("BEARER  {token}"),
        format!("type=aad&ver=1.0&sig={token}"),
        format!("TYPE=AAD&VER=1.0&SIG={token}"),
        format!("type%3Daad%26ver%3D1.0%26sig%3D{token}"),
        format!("type%3daad%26ver%3d1.0%26sig%3d{token}"),
    ];
    for form in forms {
        let headers = authorization(&form);
        let extracted = credential::extract_token(&headers, 16 * 1024);
        assert_eq!(extracted.as_deref(), Ok(token), "{form}");
    }
}

#[test]
fn credential_rejects_repeated_fields() {
    let headers = authorization("type=aad&sig=a.b.c&sig=d.e.f");
    let error = credential::extract_token(&headers, 16 * 1024).expect_err("two sig fields");
    assert_eq!(error.reason(), "malformed");
}

#[test]
fn auth_error_reasons_and_infrastructure_split() {
    let infrastructure = [
        AuthError::NoKeysYet {
            issuer: "i".to_owned(),
        },
        AuthError::IssuerUnavailable {
            issuer: "i".to_owned(),
            error: "e".to_owned(),
        },
    ];
    for error in infrastructure {
        assert!(error.is_infrastructure(), "{}", error.reason());
    }
    let caller_faults = [
        AuthError::Missing,
        AuthError::BadSignature,
        AuthError::Expired {
            exp: 0,
            now: 100,
            leeway: 60,
        },
        AuthError::UnknownKeyId {
            issuer: "i".to_owned(),
            kid: None,
        },
    ];
    for error in caller_faults {
        assert!(!error.is_infrastructure(), "{}", error.reason());
    }
    assert_eq!(
        AuthError::Expired {
            exp: 0,
            now: 100,
            leeway: 60
        }
        .reason(),
        "expired"
    );
}

#[tokio::test]
async fn registers_all_identity_metrics() {
    let key = TestKey::rsa_a();
    let idp = TestIssuer::start(&[&key]).await;
    let registry = prometheus::Registry::new();
    let _authenticator = ready_authenticator(vec![issuer_config(&idp.url())], &registry).await;

    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|family| family.name().to_owned())
        .collect();
    for name in [
        "cosmoguard_token_validations_total",
        "cosmoguard_jwks_fetches_total",
        "cosmoguard_jwks_keys",
        "cosmoguard_jwks_last_success_timestamp_seconds",
    ] {
        assert!(
            names.iter().any(|found| found == name),
            "{name} in {names:?}"
        );
    }
    let keys = metric(&registry, "cosmoguard_jwks_keys", &[("issuer", &idp.url())]);
    assert_eq!(keys, 1.0);
    let last_success = metric(
        &registry,
        "cosmoguard_jwks_last_success_timestamp_seconds",
        &[("issuer", &idp.url())],
    );
    assert!(last_success > 1.0e9);
}

#[test]
fn authenticator_is_send_sync_and_clone() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<Authenticator>();
}
