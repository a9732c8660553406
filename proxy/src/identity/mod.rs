//! Caller authentication: OIDC access tokens from any configured issuer.
//!
//! A request carries a JWT as `Authorization: Bearer <jwt>` or in the Cosmos DB Entra ID
//! form `type=aad&ver=1.0&sig=<jwt>`. The token's unverified `iss` picks one `[[issuers]]`
//! entry, whose keys come from its JWKS (found by OIDC discovery unless configured). The
//! signature, `iss`, `aud`, `exp`, `nbf` and `iat` are then checked and the claims mapped
//! into a [`Principal`]. Keys are fetched by one background task per issuer; requests never
//! perform network I/O. Verified tokens are cached until their `exp`.

mod cache;
mod client;
mod config;
mod credential;
mod error;
mod issuer;
mod keys;
mod metrics;
mod principal;
mod routing;
mod token;
mod verify;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cosmoguard_policy::Principal;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

pub use config::{ClaimMapping, IssuerConfig, SigningAlgorithm, TENANT_PLACEHOLDER};
pub use error::{AuthError, ConfigError};

use cache::TokenCache;
use client::{ClientSettings, DocumentClient};
use issuer::Issuer;
use metrics::{IdentityMetrics, UNKNOWN_ISSUER_LABEL};
use routing::IssuerDirectory;

/// Returns the token in the request's `Authorization` header, in any form the
/// authenticator accepts, without verifying it. Returns `None` when there is none.
pub fn presented_token(headers: &http::HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    credential::extract_token(headers, usize::MAX).ok()
}

/// Maps a token's claims to a principal with an issuer's claim mapping, for tools such as
/// `cosmoguard policy explain` that start from claims rather than a token.
pub fn principal_from_claims(
    claims: serde_json::Map<String, serde_json::Value>,
    mapping: &ClaimMapping,
) -> Result<Principal, AuthError> {
    principal::map_principal(claims, mapping)
}

/// Settings of the authenticator that are not per issuer.
#[derive(Clone, Debug)]
pub struct AuthenticatorOptions {
    /// Allows `http://` issuer, discovery and JWKS URLs (`[dangerous] plain_http_issuers`).
    /// Default: false.
    pub allow_plain_http: bool,
    /// A PEM file of extra CA certificates trusted for https issuers, on top of the system
    /// roots. Default: none.
    pub extra_ca_file: Option<PathBuf>,
    /// The largest accepted token, in bytes. Default: 16 KiB, the limit the Cosmos DB .NET
    /// SDK enforces for Entra ID tokens.
    pub max_token_size: usize,
    /// The maximum memory of the verified tokens in the cache, in estimated bytes. 0
    /// disables the cache. Default: 64 MiB, about 20,000 tokens of 700 bytes.
    pub token_cache_max_bytes: u64,
    /// The TCP connect timeout for discovery and JWKS requests. Default: 5 s.
    pub connect_timeout: Duration,
    /// The total timeout of one discovery or JWKS request. Default: 10 s.
    pub request_timeout: Duration,
    /// How long a request waits for a key fetch in flight (first fetch, or a refetch for an
    /// unknown `kid`) before it fails. Default: 2 s.
    pub key_fetch_wait: Duration,
}

impl Default for AuthenticatorOptions {
    fn default() -> AuthenticatorOptions {
        AuthenticatorOptions {
            allow_plain_http: false,
            extra_ca_file: None,
            max_token_size: 16 * 1024,
            token_cache_max_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            key_fetch_wait: Duration::from_secs(2),
        }
    }
}

/// Returns the current time in Unix seconds.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Authenticates requests against the configured issuers. Cloning is cheap: clones share
/// the key sets, the token cache and the background tasks, which stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    directory: IssuerDirectory,
    cache: TokenCache,
    metrics: IdentityMetrics,
    /// Each issuer's `valid` validation series, by issuer index.
    valid_tokens: Vec<prometheus::IntCounter>,
    options: AuthenticatorOptions,
    clock: Clock,
    keys_changed: Arc<Notify>,
    refresh_tasks: Vec<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.refresh_tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self
            .inner
            .directory
            .issuers()
            .iter()
            .map(|issuer| issuer.name())
            .collect();
        f.debug_struct("Authenticator")
            .field("issuers", &issuers)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks the issuer configuration, registers the metrics and starts one background
    /// key-fetch task per issuer (with `tokio::spawn`, so it must run inside a Tokio
    /// runtime). Returns without waiting on the network: see [`Authenticator::wait_ready`].
    pub fn start(
        issuers: Vec<IssuerConfig>,
        options: AuthenticatorOptions,
        registry: &prometheus::Registry,
    ) -> Result<Authenticator, ConfigError> {
        Authenticator::start_with_clock(issuers, options, registry, Arc::new(unix_now))
    }

    fn start_with_clock(
        issuers: Vec<IssuerConfig>,
        options: AuthenticatorOptions,
        registry: &prometheus::Registry,
        clock: Clock,
    ) -> Result<Authenticator, ConfigError> {
        let issuers = build_issuers(issuers, options.allow_plain_http)?;
        let client = DocumentClient::new(&ClientSettings {
            allow_plain_http: options.allow_plain_http,
            extra_ca_file: options.extra_ca_file.as_deref(),
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
        })?;
        let metrics = IdentityMetrics::register(registry)?;

        let keys_changed = Arc::new(Notify::new());
        let mut refresh_tasks = Vec::with_capacity(issuers.len());
        let mut valid_tokens = Vec::with_capacity(issuers.len());
        for issuer in &issuers {
            valid_tokens.push(metrics.add_issuer(issuer.name()));
            let task = tokio::spawn(Arc::clone(issuer).run_refresh(
                client.clone(),
                metrics.clone(),
                Arc::clone(&keys_changed),
            ));
            refresh_tasks.push(task.abort_handle());
        }
        tracing::info!(
            identity.issuers = issuers.len(),
            identity.plain_http_allowed = options.allow_plain_http,
            "Started fetching issuer signing keys"
        );

        Ok(Authenticator {
            inner: Arc::new(Inner {
                directory: IssuerDirectory::new(issuers),
                cache: TokenCache::new(options.token_cache_max_bytes),
                metrics,
                valid_tokens,
                options,
                clock,
                keys_changed,
                refresh_tasks,
            }),
        })
    }

    /// Authenticates one request from its headers and returns a copy of the principal.
    /// Never performs network I/O on the caller's task: it may wait (up to
    /// `key_fetch_wait`) for a background fetch.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, AuthError> {
        self.authenticate_shared(headers)
            .await
            .map(|principal| Principal::clone(&principal))
    }

    /// Like [`Authenticator::authenticate`], but returns the principal shared with the token
    /// cache, which saves a copy of every claim on each request.
    pub async fn authenticate_shared(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Arc<Principal>, AuthError> {
        let mut issuer_index = None;
        let result = self.inner.authenticate(headers, &mut issuer_index).await;

        let issuer = issuer_index
            .map(|index| self.inner.directory.issuers()[index].name())
            .unwrap_or(UNKNOWN_ISSUER_LABEL);
        match &result {
            Ok(_) => match issuer_index.and_then(|index| self.inner.valid_tokens.get(index)) {
                Some(valid) => valid.inc(),
                None => self.inner.metrics.record_validation(issuer, "valid"),
            },
            Err(error) => {
                self.inner.metrics.record_validation(issuer, error.reason());
                tracing::debug!(
                    auth.issuer = issuer,
                    auth.reason = error.reason(),
                    %error,
                    "Rejected the request's token"
                );
            }
        }
        result
    }

    /// Returns true once every issuer with `required = true` has usable keys (at once when
    /// no issuer is required).
    pub fn is_ready(&self) -> bool {
        self.inner
            .directory
            .issuers()
            .iter()
            .filter(|issuer| issuer.config.required)
            .all(|issuer| issuer.is_ready())
    }

    /// Waits until [`Authenticator::is_ready`] or until `timeout`; returns readiness.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let keys_changed = self.inner.keys_changed.notified();
            tokio::pin!(keys_changed);
            // Registers the waiter before checking, so a fetch finishing in between is seen.
            keys_changed.as_mut().enable();
            if self.is_ready() {
                return true;
            }
            if tokio::time::timeout_at(deadline, keys_changed)
                .await
                .is_err()
            {
                return self.is_ready();
            }
        }
    }
}

/// Checks every issuer and wraps it for run time, rejecting duplicates.
fn build_issuers(
    configs: Vec<IssuerConfig>,
    allow_plain_http: bool,
) -> Result<Vec<Arc<Issuer>>, ConfigError> {
    if configs.is_empty() {
        return Err(ConfigError::NoIssuers);
    }
    let mut seen = std::collections::HashSet::new();
    let mut issuers = Vec::with_capacity(configs.len());
    for config in configs {
        config.validate(allow_plain_http)?;
        if !seen.insert(config.issuer.clone()) {
            return Err(ConfigError::DuplicateIssuer {
                issuer: config.issuer,
            });
        }
        issuers.push(Arc::new(Issuer::new(config)?));
    }
    Ok(issuers)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
