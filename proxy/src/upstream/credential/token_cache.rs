//! The token cache in front of an Entra ID credential.
//!
//! One background task owns every refresh, so exactly one token request is in flight at
//! a time and a cancelled caller cannot interrupt it. Callers read the current token and
//! wait only when no valid token exists. The task refreshes at 80% of a token's lifetime
//! or 5 minutes before expiry, whichever is earlier, and keeps serving the old token
//! while it retries with exponential backoff.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::AccessToken;
use azure_core::time::OffsetDateTime;
use http::HeaderValue;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::metrics::CredentialMetrics;
use super::{CredentialError, Signed, encode_component};

/// Obtains one token for a scope, with no caching of its own.
#[async_trait::async_trait]
pub(crate) trait TokenSource: Send + Sync + fmt::Debug {
    /// The mode, for logs and errors, for example `managed identity`.
    fn name(&self) -> &'static str;

    async fn fetch(&self, scope: &str) -> azure_core::Result<AccessToken>;
}

/// Timing of refreshes. Production uses [`RefreshSettings::default`].
#[derive(Clone, Copy, Debug)]
pub struct RefreshSettings {
    /// Time one token request may take before it counts as failed. Default 30 s.
    pub fetch_timeout: Duration,
    /// The wait after the first failure; it doubles after each further one. Default 1 s.
    pub initial_backoff: Duration,
    /// The longest wait between failed attempts. Default 60 s.
    pub max_backoff: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        RefreshSettings {
            fetch_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// How long before expiry a refresh starts, at most.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A token ready to use, with its header value computed once.
#[derive(Clone, Debug)]
struct CachedToken {
    header: HeaderValue,
    expires_at: Instant,
    refresh_at: Instant,
    generation: u64,
}

/// What callers see of the cache.
#[derive(Debug, Default)]
pub(super) struct State {
    token: Option<CachedToken>,
    /// Whether a token request is in flight.
    fetching: bool,
    /// Why the last attempt failed, cleared by a success.
    last_error: Option<String>,
    /// The generation a rejection already asked to replace, so a burst of rejections of
    /// one token triggers one refresh.
    rejected_generation: Option<u64>,
}

impl State {
    fn usable(&self, now: Instant) -> Option<&CachedToken> {
        self.token.as_ref().filter(|token| now < token.expires_at)
    }

    pub(super) fn is_ready(&self) -> bool {
        self.usable(Instant::now()).is_some()
    }
}

#[derive(Debug)]
struct Shared {
    source: Box<dyn TokenSource>,
    scope: String,
    settings: RefreshSettings,
    state: watch::Sender<State>,
    metrics: CredentialMetrics,
}

/// Entra ID tokens for one scope, refreshed ahead of expiry by a background task.
#[derive(Debug)]
pub(crate) struct TokenCache {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for TokenCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenCache {
    /// Starts the refresh task, which requests the first token at once. Must be called
    /// inside a tokio runtime.
    pub(crate) fn start(
        source: Box<dyn TokenSource>,
        scope: String,
        settings: RefreshSettings,
        metrics: CredentialMetrics,
    ) -> TokenCache {
        let state = State {
            fetching: true,
            ..State::default()
        };
        let shared = Arc::new(Shared {
            source,
            scope,
            settings,
            state: watch::Sender::new(state),
            metrics,
        });
        let task = tokio::spawn(refresh_loop(Arc::clone(&shared)));
        TokenCache { shared, task }
    }

    /// Returns the `Authorization` value for the current token. Waits only while no valid
    /// token exists and a token request is in flight.
    pub(crate) async fn authorization(&self) -> Result<Signed, CredentialError> {
        let mut receiver = self.shared.state.subscribe();
        loop {
            {
                let state = receiver.borrow_and_update();
                if let Some(token) = state.usable(Instant::now()) {
                    return Ok(Signed {
                        header: token.header.clone(),
                        generation: token.generation,
                    });
                }
                if !state.fetching {
                    return Err(self.unavailable(&state));
                }
            }
            if receiver.changed().await.is_err() {
                return Err(CredentialError::Unavailable {
                    mode: self.shared.source.name(),
                    reason: "the token refresh task stopped".to_owned(),
                });
            }
        }
    }

    fn unavailable(&self, state: &State) -> CredentialError {
        let reason = match (&state.last_error, &state.token) {
            (Some(error), Some(_)) => {
                format!("the last token expired and the refresh failed: {error}")
            }
            (Some(error), None) => error.clone(),
            (None, _) => "the token expired before a refresh was scheduled".to_owned(),
        };
        CredentialError::Unavailable {
            mode: self.shared.source.name(),
            reason,
        }
    }

    /// Asks for one early refresh after the account rejected the token of `generation`.
    /// Later rejections of the same token, and rejections of an older one, are ignored.
    pub(crate) fn rejected(&self, generation: u64) {
        let first = self.shared.state.send_if_modified(|state| {
            let current = state.token.as_ref().map(|token| token.generation);
            if current != Some(generation) || state.rejected_generation == Some(generation) {
                return false;
            }
            state.rejected_generation = Some(generation);
            true
        });
        if first {
            tracing::warn!(
                credential = self.shared.source.name(),
                "The account rejected the proxy's token; requesting a new one"
            );
        }
    }

    pub(super) fn readiness(&self) -> watch::Receiver<State> {
        self.shared.state.subscribe()
    }
}

async fn refresh_loop(shared: Arc<Shared>) {
    let mut backoff = shared.settings.initial_backoff;
    loop {
        shared.state.send_modify(|state| state.fetching = true);
        match fetch(&shared).await {
            Ok((refresh_at, generation)) => {
                backoff = shared.settings.initial_backoff;
                tokio::select! {
                    () = tokio::time::sleep_until(refresh_at) => {}
                    () = rejection_of(&shared, generation) => {}
                }
            }
            Err(()) => {
                // Rejections do not shorten the backoff, so a failing authority is not hammered.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(shared.settings.max_backoff);
            }
        }
    }
}

/// Resolves when the account has rejected the token of `generation`.
async fn rejection_of(shared: &Shared, generation: u64) {
    let mut receiver = shared.state.subscribe();
    // The sender lives in `shared`, so the channel cannot close while this waits.
    let _ = receiver
        .wait_for(|state| state.rejected_generation == Some(generation))
        .await;
}

/// Runs one token request and publishes its outcome. Returns when to refresh next and the
/// new token's generation.
async fn fetch(shared: &Shared) -> Result<(Instant, u64), ()> {
    let name = shared.source.name();
    let outcome = tokio::time::timeout(
        shared.settings.fetch_timeout,
        shared.source.fetch(&shared.scope),
    )
    .await
    .map_err(|_| {
        format!(
            "the token request timed out after {:?}",
            shared.settings.fetch_timeout
        )
    })
    .and_then(|result| result.map_err(|error| describe(&error)))
    .and_then(|token| cache_entry(&token));

    match outcome {
        Ok((mut token, expires_unix)) => {
            shared.metrics.refreshed(true, Some(expires_unix));
            let refresh_at = token.refresh_at;
            let mut generation = 0;
            shared.state.send_modify(|state| {
                generation = state.token.as_ref().map_or(1, |old| old.generation + 1);
                token.generation = generation;
                state.token = Some(token);
                state.fetching = false;
                state.last_error = None;
            });
            tracing::info!(
                credential = name,
                expires_on = expires_unix,
                "Obtained a token for the account"
            );
            Ok((refresh_at, generation))
        }
        Err(error) => {
            shared.metrics.refreshed(false, None);
            let still_valid = shared.state.borrow().usable(Instant::now()).is_some();
            if still_valid {
                tracing::warn!(credential = name, %error, "Token refresh failed; the current token is still valid");
            } else {
                tracing::error!(credential = name, %error, "Token refresh failed and no valid token is left");
            }
            shared.state.send_modify(|state| {
                state.fetching = false;
                state.last_error = Some(error);
            });
            Err(())
        }
    }
}

/// Converts a token into a cache entry and its Unix expiry. The entry's generation is set
/// when it is stored.
fn cache_entry(token: &AccessToken) -> Result<(CachedToken, i64), String> {
    let remaining = token.expires_on - OffsetDateTime::now_utc();
    let lifetime = Duration::try_from(remaining)
        .ok()
        .filter(|lifetime| !lifetime.is_zero())
        .ok_or_else(|| {
            format!(
                "the token returned has already expired (expires_on {})",
                token.expires_on
            )
        })?;
    let header = HeaderValue::try_from(encode_component(&format!(
        "type=aad&ver=1.0&sig={}",
        token.token.secret()
    )))
    .map_err(|_| "the token returned cannot be sent in a header".to_owned())?;
    let now = Instant::now();
    let entry = CachedToken {
        header,
        expires_at: now + lifetime,
        refresh_at: now + refresh_delay(lifetime),
        generation: 0,
    };
    Ok((entry, token.expires_on.unix_timestamp()))
}

/// Time from receiving a token to refreshing it: 80% of its lifetime or 5 minutes before
/// expiry, whichever is earlier. For tokens shorter than 10 minutes the margin shrinks to
/// half the lifetime, so a refresh never starts right after the previous one.
pub(super) fn refresh_delay(lifetime: Duration) -> Duration {
    let at_80_percent = lifetime.mul_f64(0.8);
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    at_80_percent.min(lifetime - margin)
}

/// Describes an azure_core error with its causes, which carry the HTTP details.
fn describe(error: &azure_core::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
