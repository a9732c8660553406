//! The proxy's own credential for the account, chosen by `[upstream.credential] kind`.
//!
//! - `key`: master-key signatures with the account key ([`key`]).
//! - `managed_identity`, `workload_identity`, `client_secret`: Entra ID tokens from
//!   azure_identity, sent as `type=aad&ver=1.0&sig=<token>` and kept fresh by the
//!   [`token_cache`].
//!
//! Every forwarded request gets its `Authorization` value at send time. When the
//! account rejects the credential, [`Credential::rejected`] triggers one refresh (a new
//! token, or the secondary key); the request itself is never retried.

mod client_secret;
mod entra;
mod key;
mod managed_identity;
mod metrics;
mod token_cache;
mod workload_identity;

// Tests panic on failure by design; `unwrap` is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::time::Duration;

use azure_core::http::Transport;
use http::HeaderValue;
use prometheus::Registry;
use tokio::sync::watch;

use crate::config::{Config, CredentialKind};

use self::entra::EntraHttp;
use self::key::KeyCredential;
use self::metrics::CredentialMetrics;
use self::token_cache::{TokenCache, TokenSource};

pub use self::token_cache::RefreshSettings;

pub(crate) use crate::upstream::signing::encode_component;

/// The scope of Cosmos DB data-plane tokens in the public cloud. Managed identities
/// cannot get tokens for per-account audiences.
pub const DEFAULT_SCOPE: &str = "https://cosmos.azure.com/.default";

/// A failure to set up or use the credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A problem found at start: a missing file, variable or setting.
    #[error("{0}")]
    Setup(String),
    /// No valid token or key is available for a request.
    #[error("no valid {mode} credential: {reason}")]
    Unavailable { mode: &'static str, reason: String },
    #[error("cannot register credential metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// An `Authorization` value, with the generation of the token or key that produced it,
/// so a rejection can name what was rejected.
#[derive(Clone, Debug)]
pub struct Signed {
    pub header: HeaderValue,
    pub generation: u64,
}

/// Knobs that production leaves at their defaults and tests shorten.
#[derive(Clone, Debug)]
pub struct CredentialOptions {
    /// How often key files are checked for changes. Default 5 s.
    pub key_reload_interval: Duration,
    /// Timing of Entra ID token refreshes.
    pub refresh: RefreshSettings,
    /// The HTTP client azure_identity uses; `None` keeps azure_core's default client.
    pub transport: Option<Transport>,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        CredentialOptions {
            key_reload_interval: key::DEFAULT_RELOAD_INTERVAL,
            refresh: RefreshSettings::default(),
            transport: None,
        }
    }
}

/// The proxy's credential for the account.
#[derive(Debug)]
pub struct Credential {
    inner: Inner,
    metrics: CredentialMetrics,
}

#[derive(Debug)]
enum Inner {
    Key(KeyCredential),
    Entra(TokenCache),
}

impl Credential {
    /// Builds the configured credential and starts its background task (key file
    /// polling or token refresh). Must be called inside a tokio runtime.
    pub fn start(
        config: &Config,
        registry: &Registry,
        options: CredentialOptions,
    ) -> Result<Credential, CredentialError> {
        let metrics = CredentialMetrics::register(registry)?;
        let credential = &config.upstream.credential;
        let kind = *credential.kind.get_ref();
        let http = EntraHttp::new(
            options.transport.clone(),
            credential
                .authority_host
                .as_ref()
                .map(|host| host.get_ref()),
        );
        let source: Box<dyn TokenSource> = match kind {
            CredentialKind::Key => {
                let key =
                    KeyCredential::start(config, metrics.clone(), options.key_reload_interval)?;
                return Ok(Credential {
                    inner: Inner::Key(key),
                    metrics,
                });
            }
            CredentialKind::ManagedIdentity => Box::new(
                managed_identity::ManagedIdentitySource::new(credential, http)?,
            ),
            CredentialKind::WorkloadIdentity => {
                let env = |name: &str| std::env::var(name).ok();
                Box::new(workload_identity::WorkloadIdentitySource::new(
                    config, http, env,
                )?)
            }
            CredentialKind::ClientSecret => {
                Box::new(client_secret::ClientSecretSource::new(config, http)?)
            }
        };
        let scope = credential
            .scope
            .as_ref()
            .map_or_else(|| DEFAULT_SCOPE.to_owned(), |scope| scope.get_ref().clone());
        tracing::info!(credential = source.name(), scope = %scope, "Requesting a token for the account");
        let inner = Inner::Entra(TokenCache::start(
            source,
            scope,
            options.refresh,
            metrics.clone(),
        ));
        Ok(Credential { inner, metrics })
    }

    /// Returns the `Authorization` value for one request, signed for `date` (the request's
    /// `x-ms-date`). Entra modes return the cached token and wait only when none is valid.
    pub async fn authorization(
        &self,
        verb: &str,
        resource_type: &str,
        resource_link: &str,
        date: &str,
    ) -> Result<Signed, CredentialError> {
        match &self.inner {
            Inner::Key(key) => key.authorization(verb, resource_type, resource_link, date),
            Inner::Entra(cache) => cache.authorization().await,
        }
    }

    /// Records that the account rejected the credential of `generation` and triggers one
    /// refresh for it.
    pub fn rejected(&self, generation: u64) {
        self.metrics.rejected();
        match &self.inner {
            Inner::Key(key) => key.rejected(generation),
            Inner::Entra(cache) => cache.rejected(generation),
        }
    }

    /// Returns a handle that reports whether the credential can sign requests now.
    pub fn readiness(&self) -> CredentialReadiness {
        match &self.inner {
            Inner::Key(_) => CredentialReadiness(None),
            Inner::Entra(cache) => CredentialReadiness(Some(cache.readiness())),
        }
    }
}

/// Whether the credential can sign requests: always for keys, once a valid token is held
/// for Entra modes.
#[derive(Clone, Debug)]
pub struct CredentialReadiness(Option<watch::Receiver<token_cache::State>>);

impl CredentialReadiness {
    /// Returns a readiness that is always true, for states built without a credential.
    pub fn always() -> CredentialReadiness {
        CredentialReadiness(None)
    }

    pub fn is_ready(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|receiver| receiver.borrow().is_ready())
    }

    /// Waits until ready or until `limit` passes; returns whether it is ready.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let Some(receiver) = &self.0 else {
            return true;
        };
        let mut receiver = receiver.clone();
        let ready = receiver.wait_for(token_cache::State::is_ready);
        matches!(tokio::time::timeout(limit, ready).await, Ok(Ok(_)))
    }
}
