//! Authenticates requests whose `Authorization` header is arbitrary bytes, through the
//! public `Authenticator`: header extraction, both credential forms, JWT header and
//! payload decoding, and issuer routing.
//!
//! The one issuer's JWKS URL is a loopback port that nothing listens on, so no key is
//! ever loaded and no token can verify. Signature and claim checks after key selection
//! are therefore not reached by this target.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use cosmoguard::identity::{Authenticator, AuthenticatorOptions, IssuerConfig};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

/// The issuer the seed tokens name in `iss`, so routing succeeds and key selection runs.
const ISSUER: &str = "https://issuer.fuzz.test";

/// A loopback port below 1024 that the fuzzing machine is not expected to serve.
const UNSERVED_JWKS_URL: &str = "http://127.0.0.1:9/jwks";

struct Harness {
    runtime: Runtime,
    authenticator: Authenticator,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        let mut issuer = IssuerConfig::new(ISSUER, vec!["api://fuzz".to_owned()]);
        issuer.jwks_url = Some(UNSERVED_JWKS_URL.parse().expect("the JWKS URL is valid"));
        issuer.jwks_min_refetch_interval = Duration::from_secs(3600);
        let options = AuthenticatorOptions {
            allow_plain_http: true,
            key_fetch_wait: Duration::ZERO,
            token_cache_max_bytes: 0,
            ..AuthenticatorOptions::default()
        };
        let registry = prometheus::Registry::new();
        let authenticator = runtime
            .block_on(async { Authenticator::start(vec![issuer], options, &registry) })
            .expect("the fuzzing issuer configuration is valid");
        Harness { runtime, authenticator }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let harness = harness();
    let result = harness.runtime.block_on(harness.authenticator.authenticate(&headers));
    assert!(result.is_err(), "a token verified although no key is loaded");
});
