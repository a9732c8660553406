//! Prometheus metrics of token validation and key fetching. The `issuer` label is always a
//! configured issuer string (or `unknown`), never a value taken from a token.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The `issuer` label of outcomes decided before any configured issuer was picked.
pub(crate) const UNKNOWN_ISSUER_LABEL: &str = "unknown";

#[derive(Clone, Debug)]
pub(crate) struct IdentityMetrics {
    token_validations: IntCounterVec,
    token_cache_requests: IntCounterVec,
    /// The `hit` and `miss` series, looked up once since every request counts one.
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    jwks_fetches: IntCounterVec,
    jwks_keys: IntGaugeVec,
    jwks_last_success: GaugeVec,
}

impl IdentityMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<IdentityMetrics, prometheus::Error> {
        let token_cache_requests = IntCounterVec::new(
            Opts::new(
                "cosmoguard_token_cache_requests_total",
                "Lookups in the cache of verified tokens, by result (`hit` or `miss`).",
            ),
            &["result"],
        )?;
        let metrics = IdentityMetrics {
            token_validations: IntCounterVec::new(
                Opts::new(
                    "cosmoguard_token_validations_total",
                    "Token validations by issuer and result (`valid` or the rejection reason).",
                ),
                &["issuer", "result"],
            )?,
            cache_hits: token_cache_requests.with_label_values(&["hit"]),
            cache_misses: token_cache_requests.with_label_values(&["miss"]),
            token_cache_requests,
            jwks_fetches: IntCounterVec::new(
                Opts::new(
                    "cosmoguard_jwks_fetches_total",
                    "Discovery and JWKS fetches by issuer and result (`success` or `failure`).",
                ),
                &["issuer", "result"],
            )?,
            jwks_keys: IntGaugeVec::new(
                Opts::new(
                    "cosmoguard_jwks_keys",
                    "Signing keys currently in use for each issuer.",
                ),
                &["issuer"],
            )?,
            jwks_last_success: GaugeVec::new(
                Opts::new(
                    "cosmoguard_jwks_last_success_timestamp_seconds",
                    "Unix time of the last successful JWKS fetch for each issuer.",
                ),
                &["issuer"],
            )?,
        };
        registry.register(Box::new(metrics.token_validations.clone()))?;
        registry.register(Box::new(metrics.token_cache_requests.clone()))?;
        registry.register(Box::new(metrics.jwks_fetches.clone()))?;
        registry.register(Box::new(metrics.jwks_keys.clone()))?;
        registry.register(Box::new(metrics.jwks_last_success.clone()))?;
        Ok(metrics)
    }

    /// Creates the series of one issuer at zero, so dashboards see them before traffic.
    /// Returns its `valid` series, which counts every accepted request.
    pub(crate) fn add_issuer(&self, issuer: &str) -> IntCounter {
        let valid = self.token_validations.with_label_values(&[issuer, "valid"]);
        self.jwks_fetches.with_label_values(&[issuer, "success"]);
        self.jwks_fetches.with_label_values(&[issuer, "failure"]);
        self.jwks_keys.with_label_values(&[issuer]);
        self.jwks_last_success.with_label_values(&[issuer]);
        valid
    }

    pub(crate) fn record_validation(&self, issuer: &str, result: &str) {
        self.token_validations
            .with_label_values(&[issuer, result])
            .inc();
    }

    pub(crate) fn record_cache_lookup(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    pub(crate) fn record_fetch_success(&self, issuer: &str, key_count: usize, unix_time: f64) {
        self.jwks_fetches
            .with_label_values(&[issuer, "success"])
            .inc();
        self.jwks_keys
            .with_label_values(&[issuer])
            .set(i64::try_from(key_count).unwrap_or(i64::MAX));
        self.jwks_last_success
            .with_label_values(&[issuer])
            .set(unix_time);
    }

    pub(crate) fn record_fetch_failure(&self, issuer: &str) {
        self.jwks_fetches
            .with_label_values(&[issuer, "failure"])
            .inc();
    }

    /// Sets the key gauge to zero once stale keys are no longer used.
    pub(crate) fn record_keys_expired(&self, issuer: &str) {
        self.jwks_keys.with_label_values(&[issuer]).set(0);
    }
}
