//! Token validation: the identity layer cold (token cache off, so every call verifies the
//! signature and checks the claims) and cached, against calling jsonwebtoken directly with
//! the same key and the same issuer and audience checks.
//!
//! The issuer's keys come from the bench's own JWKS server on 127.0.0.1.

use std::hint::black_box;

use cosmoguard::identity::{Authenticator, AuthenticatorOptions, IssuerConfig};
use cosmoguard_bench::mint::{SigningKey, TokenSpec, mint_one};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

const AUDIENCE: &str = "api://cosmoguard-bench";

fn generate_key(algorithm: Algorithm, key_id: &str) -> SigningKey {
    let pair = match algorithm {
        Algorithm::RS256 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
    }
    .unwrap_or_else(|error| panic!("key generation: {error}"));
    SigningKey::from_pem(pair.serialize_pem().as_bytes(), algorithm, key_id)
        .unwrap_or_else(|error| panic!("key parse: {error}"))
}

fn start_authenticator(issuer: &str, jwks_url: &str, cache_max_bytes: u64) -> Authenticator {
    let mut config = IssuerConfig::new(issuer, vec![AUDIENCE.to_owned()]);
    config.jwks_url = Some(
        jwks_url
            .parse()
            .unwrap_or_else(|error| panic!("{jwks_url}: {error}")),
    );
    let options = AuthenticatorOptions {
        allow_plain_http: true,
        token_cache_max_bytes: cache_max_bytes,
        ..AuthenticatorOptions::default()
    };
    Authenticator::start(vec![config], options, &prometheus::Registry::new())
        .unwrap_or_else(|error| panic!("authenticator: {error}"))
}

fn bench_identity(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    let keys = vec![
        generate_key(Algorithm::RS256, "bench-rs256"),
        generate_key(Algorithm::ES256, "bench-es256"),
    ];

    let (issuer, cold, cached) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("bind: {error}"));
        let issuer = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|error| panic!("{error}"))
        );
        tokio::spawn(cosmoguard_bench::idp::serve_on(
            listener,
            keys.clone(),
            "unused".to_owned(),
        ));
        let jwks_url = format!("{issuer}/jwks");
        let cold = start_authenticator(&issuer, &jwks_url, 0);
        let cached = start_authenticator(&issuer, &jwks_url, 64 * 1024 * 1024);
        for authenticator in [&cold, &cached] {
            assert!(
                authenticator
                    .wait_ready(std::time::Duration::from_secs(10))
                    .await,
                "keys not loaded"
            );
        }
        (issuer, cold, cached)
    });

    let spec = TokenSpec {
        issuer: issuer.clone(),
        audience: AUDIENCE.to_owned(),
        subject: "bench-client".to_owned(),
        lifetime_seconds: 3600,
    };
    let mut group = c.benchmark_group("token_validation");
    for key in &keys {
        let name = format!("{:?}", key.algorithm);
        let token = mint_one(key, &spec, 1).unwrap_or_else(|error| panic!("mint: {error}"));
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|error| panic!("{error}"));
        headers.insert(http::header::AUTHORIZATION, bearer);

        let jwk = key.jwk().unwrap_or_else(|error| panic!("jwk: {error}"));
        let decoding =
            DecodingKey::from_jwk(&jwk).unwrap_or_else(|error| panic!("decoding key: {error}"));
        let mut validation = Validation::new(key.algorithm);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;

        let bare = jsonwebtoken::decode::<Map<String, Value>>(&token, &decoding, &validation);
        assert!(
            bare.is_ok(),
            "jsonwebtoken rejected the token: {:?}",
            bare.err()
        );
        for authenticator in [&cold, &cached] {
            let result = runtime.block_on(authenticator.authenticate_shared(&headers));
            assert!(
                result.is_ok(),
                "Cosmoguard rejected the token: {:?}",
                result.err()
            );
        }

        group.bench_function(format!("jsonwebtoken/{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&token),
                    &decoding,
                    &validation,
                )
            })
        });
        group.bench_function(format!("cosmoguard_cold/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| cold.authenticate_shared(black_box(&headers)))
        });
        group.bench_function(format!("cosmoguard_cached/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| cached.authenticate_shared(black_box(&headers)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_identity);
criterion_main!(benches);
