//! One trusted issuer at run time: its current keys and the background task that fetches
//! them.
//!
//! Each issuer has its own task, so a broken issuer never delays the others. Requests only
//! read the published key set (a `watch` channel) and may ask the task for an early
//! refetch. They never fetch themselves, so a cancelled request cannot break a refresh.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use url::Url;

use super::client::{DocumentClient, FetchError};
use super::config::{IssuerConfig, TENANT_PLACEHOLDER};
use super::error::{AuthError, ConfigError};
use super::keys::{KeySet, KeySetError};
use super::metrics::IdentityMetrics;

/// The first retry after a failed fetch waits this long; each further failure doubles it.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The maximum delay of a retry after failed fetches.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// A `Cache-Control: max-age` longer than this is shortened to it.
const MAX_REFRESH_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The key state the refresh task last published.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyState {
    /// The last key set fetched successfully, kept through later failures.
    pub(crate) keys: Option<Arc<KeySet>>,
    pub(crate) fetched_at: Option<Instant>,
    /// The error of the last fetch, or `None` when it succeeded.
    pub(crate) last_error: Option<String>,
}

/// The reason an issuer has no keys to verify with.
#[derive(Debug)]
pub(crate) enum KeysUnavailable {
    NotYetFetched,
    Failed(String),
    Stale { age: Duration },
}

#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the discovery document is invalid: {0}")]
    InvalidDiscovery(serde_json::Error),
    #[error(
        "the discovery document names issuer `{found}`, but the configured issuer is `{expected}`"
    )]
    IssuerMismatch { expected: String, found: String },
    #[error(transparent)]
    KeySet(#[from] KeySetError),
}

/// The discovery document members the proxy reads (OpenID Connect Discovery 1.0).
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: Url,
}

/// The source of an issuer's keys.
#[derive(Debug)]
enum KeySource {
    /// An OIDC discovery document whose `jwks_uri` names the JWKS.
    Discovery(Url),
    /// A configured JWKS URL.
    Jwks(Url),
}

/// A configured issuer with its key state.
#[derive(Debug)]
pub(crate) struct Issuer {
    pub(crate) config: IssuerConfig,
    pub(crate) audiences: HashSet<String>,
    pub(crate) allowed_tenants: HashSet<String>,
    key_source: KeySource,
    state: watch::Sender<KeyState>,
    refetch_requested: Notify,
    fetch_in_flight: AtomicBool,
    /// The earliest time a refetch asked for by a request may start.
    next_refetch_at: Mutex<Instant>,
}

impl Issuer {
    pub(crate) fn new(config: IssuerConfig) -> Result<Issuer, ConfigError> {
        let key_source = match &config.jwks_url {
            Some(jwks_url) => KeySource::Jwks(jwks_url.clone()),
            None => KeySource::Discovery(config.discovery_document_url()?),
        };
        Ok(Issuer {
            audiences: config.audiences.iter().cloned().collect(),
            allowed_tenants: config.allowed_tenant_set(),
            key_source,
            config,
            state: watch::Sender::new(KeyState::default()),
            refetch_requested: Notify::new(),
            // The refresh task starts with a fetch, so requests arriving before it runs
            // wait for that fetch instead of failing at once.
            fetch_in_flight: AtomicBool::new(true),
            next_refetch_at: Mutex::new(Instant::now()),
        })
    }

    /// Returns the configured issuer string, which is also the metric label.
    pub(crate) fn name(&self) -> &str {
        &self.config.issuer
    }

    /// Returns the keys to verify with, unless none were fetched or the last good ones are
    /// older than `jwks_max_stale`.
    pub(crate) fn usable_keys(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        let state = self.state.borrow();
        let (Some(keys), Some(fetched_at)) = (&state.keys, state.fetched_at) else {
            return Err(match &state.last_error {
                Some(error) => KeysUnavailable::Failed(error.clone()),
                None => KeysUnavailable::NotYetFetched,
            });
        };
        let age = fetched_at.elapsed();
        if age > self.config.jwks_max_stale {
            return Err(KeysUnavailable::Stale { age });
        }
        Ok(Arc::clone(keys))
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.usable_keys().is_ok()
    }

    pub(crate) fn is_fetching(&self) -> bool {
        self.fetch_in_flight.load(Ordering::Acquire)
    }

    /// Converts missing keys into the request's error.
    pub(crate) fn unavailable_error(&self, reason: KeysUnavailable) -> AuthError {
        let issuer = self.name().to_owned();
        match reason {
            KeysUnavailable::NotYetFetched => AuthError::NoKeysYet { issuer },
            KeysUnavailable::Failed(error) => AuthError::IssuerUnavailable { issuer, error },
            KeysUnavailable::Stale { age } => {
                let last_error = self.state.borrow().last_error.clone();
                AuthError::IssuerUnavailable {
                    issuer,
                    error: format!(
                        "the last keys were fetched {} s ago, longer than jwks_max_stale \
                         allows (last fetch error: {})",
                        age.as_secs(),
                        last_error.as_deref().unwrap_or("none")
                    ),
                }
            }
        }
    }

    /// Waits up to `timeout` for the fetch in flight to finish.
    pub(crate) async fn wait_for_fetch(&self, timeout: Duration) {
        let mut receiver = self.state.subscribe();
        if !self.is_fetching() {
            return;
        }
        let _ = tokio::time::timeout(timeout, receiver.changed()).await;
    }

    /// Asks the refresh task for an early fetch because a token named an unknown key, and
    /// waits up to `timeout` for it when it starts now or is already running. When the
    /// rate limit delays the fetch, returns at once: the fetch then starts when the
    /// window opens, so a rotation is still seen soon.
    pub(crate) async fn refetch_for_unknown_key(&self, timeout: Duration) {
        let mut receiver = self.state.subscribe();
        let window_open = Instant::now() >= self.next_refetch_at();
        let will_fetch_now = window_open || self.is_fetching();
        self.refetch_requested.notify_one();
        if will_fetch_now {
            let _ = tokio::time::timeout(timeout, receiver.changed()).await;
        }
    }

    fn next_refetch_at(&self) -> Instant {
        *self
            .next_refetch_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the fetch loop until the task is aborted: fetch, publish, wait for the
    /// refresh time or an early refetch request, repeat. `keys_changed` is notified after
    /// every fetch, for readiness waiters.
    pub(crate) async fn run_refresh(
        self: Arc<Self>,
        client: DocumentClient,
        metrics: IdentityMetrics,
        keys_changed: Arc<Notify>,
    ) {
        let mut jwks_url = None;
        let mut consecutive_failures: u32 = 0;
        loop {
            self.begin_fetch();
            let started = Instant::now();
            tracing::debug!(auth.issuer = self.name(), "Fetching issuer signing keys");
            let delay = match self.fetch_key_set(&client, &mut jwks_url).await {
                Ok((key_set, max_age)) => {
                    consecutive_failures = 0;
                    self.publish_keys(key_set, &metrics, started.elapsed());
                    self.refresh_delay(max_age)
                }
                Err(error) => {
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    // The JWKS location may have moved: discover it again.
                    jwks_url = None;
                    let delay = self.retry_delay(consecutive_failures);
                    self.publish_failure(&error, &metrics, consecutive_failures, delay);
                    delay
                }
            };
            keys_changed.notify_waiters();
            self.wait_for_next_fetch(delay).await;
        }
    }

    fn begin_fetch(&self) {
        self.fetch_in_flight.store(true, Ordering::Release);
        let next = Instant::now() + self.config.jwks_min_refetch_interval;
        *self
            .next_refetch_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = next;
    }

    async fn wait_for_next_fetch(&self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.refetch_requested.notified() => {
                tokio::time::sleep_until(self.next_refetch_at()).await;
                tracing::debug!(auth.issuer = self.name(), "Refetching keys for an unknown key id");
            }
        }
    }

    async fn fetch_key_set(
        &self,
        client: &DocumentClient,
        jwks_url: &mut Option<Url>,
    ) -> Result<(KeySet, Option<Duration>), RefreshError> {
        let url = match (&self.key_source, &*jwks_url) {
            (_, Some(url)) => url.clone(),
            (KeySource::Jwks(url), None) => url.clone(),
            (KeySource::Discovery(discovery_url), None) => {
                let url = self.discover_jwks_url(client, discovery_url).await?;
                *jwks_url = Some(url.clone());
                url
            }
        };
        let document = client.get(&url).await?;
        let key_set = KeySet::parse(&document.body)?;
        Ok((key_set, document.max_age))
    }

    async fn discover_jwks_url(
        &self,
        client: &DocumentClient,
        discovery_url: &Url,
    ) -> Result<Url, RefreshError> {
        let document = client.get(discovery_url).await?;
        let metadata: DiscoveryDocument =
            serde_json::from_slice(&document.body).map_err(RefreshError::InvalidDiscovery)?;
        if !discovery_issuer_matches(&metadata.issuer, &self.config.issuer) {
            return Err(RefreshError::IssuerMismatch {
                expected: self.config.issuer.clone(),
                found: metadata.issuer,
            });
        }
        tracing::debug!(
            auth.issuer = self.name(),
            jwks.url = %metadata.jwks_uri,
            "Discovered the JWKS location"
        );
        Ok(metadata.jwks_uri)
    }

    fn publish_keys(&self, key_set: KeySet, metrics: &IdentityMetrics, elapsed: Duration) {
        let key_count = key_set.keys.len();
        let skipped = key_set.skipped;
        metrics.record_fetch_success(self.name(), key_count, unix_seconds());
        self.fetch_in_flight.store(false, Ordering::Release);
        let recovered = self.state.borrow().last_error.is_some();
        self.state.send_modify(|state| {
            state.keys = Some(Arc::new(key_set));
            state.fetched_at = Some(Instant::now());
            state.last_error = None;
        });
        tracing::info!(
            auth.issuer = self.name(),
            jwks.keys = key_count,
            jwks.skipped_keys = skipped,
            jwks.duration_ms = elapsed.as_millis() as u64,
            jwks.recovered = recovered,
            "Fetched issuer signing keys"
        );
    }

    fn publish_failure(
        &self,
        error: &RefreshError,
        metrics: &IdentityMetrics,
        consecutive_failures: u32,
        retry_in: Duration,
    ) {
        metrics.record_fetch_failure(self.name());
        self.fetch_in_flight.store(false, Ordering::Release);
        self.state.send_modify(|state| {
            state.last_error = Some(error.to_string());
        });
        let keeping_keys = self.is_ready();
        if !keeping_keys {
            metrics.record_keys_expired(self.name());
        }
        tracing::warn!(
            auth.issuer = self.name(),
            %error,
            jwks.consecutive_failures = consecutive_failures,
            jwks.retry_in_ms = retry_in.as_millis() as u64,
            jwks.keeping_last_keys = keeping_keys,
            "Failed to fetch issuer signing keys, will retry"
        );
    }

    /// Returns the delay until the next refresh: the server's `max-age`, at least
    /// `jwks_min_refetch_interval` and at most half of `jwks_max_stale` (so one failed
    /// refresh does not let good keys expire), or the configured interval without one.
    fn refresh_delay(&self, max_age: Option<Duration>) -> Duration {
        let config = &self.config;
        match max_age {
            Some(max_age) if !max_age.is_zero() => {
                let upper = (config.jwks_max_stale / 2)
                    .min(MAX_REFRESH_DELAY)
                    .max(config.jwks_min_refetch_interval);
                max_age.clamp(config.jwks_min_refetch_interval, upper)
            }
            _ => config.jwks_refresh_interval,
        }
    }

    fn retry_delay(&self, consecutive_failures: u32) -> Duration {
        let exponent = consecutive_failures.saturating_sub(1).min(16);
        let delay = FIRST_RETRY_DELAY.saturating_mul(1 << exponent);
        delay
            .min(MAX_RETRY_DELAY)
            .min(self.config.jwks_refresh_interval)
    }
}

/// Compares the discovery document's `issuer` with the configured one. They must be equal,
/// except that a document `issuer` with `{tenantid}` (Entra ID `common` and `organizations`
/// documents) also matches a configured issuer naming one tenant in that place.
pub(crate) fn discovery_issuer_matches(document_issuer: &str, configured: &str) -> bool {
    if document_issuer == configured {
        return true;
    }
    let Some((prefix, suffix)) = document_issuer.split_once(TENANT_PLACEHOLDER) else {
        return false;
    };
    let tenant = configured
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix));
    tenant.is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/'))
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}
