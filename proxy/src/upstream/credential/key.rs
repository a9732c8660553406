//! `kind = "key"`: the account key, with an optional secondary key.
//!
//! Key files are polled and re-read when their content changes, so keys rotate without a
//! restart. A change that yields an invalid key keeps the previous one. When the account
//! rejects the primary key (it was regenerated), signing switches to the secondary.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::metrics::CredentialMetrics;
use super::{CredentialError, Signed};
use crate::config::Config;
use crate::upstream::signing::MasterKey;

/// How often key files are checked for changes in production.
pub(super) const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The source of one key: a file or an environment variable.
#[derive(Debug)]
enum KeyLocation {
    File(PathBuf),
    Env(String),
}

impl KeyLocation {
    fn from_fields(
        config: &Config,
        file: &Option<toml::Spanned<PathBuf>>,
        env: &Option<toml::Spanned<String>>,
    ) -> Option<KeyLocation> {
        match (file, env) {
            (Some(file), _) => Some(KeyLocation::File(config.resolve(file.get_ref()))),
            (None, Some(variable)) => Some(KeyLocation::Env(variable.get_ref().clone())),
            (None, None) => None,
        }
    }

    fn read(&self) -> Result<String, String> {
        match self {
            KeyLocation::File(path) => std::fs::read_to_string(path).map_err(|error| {
                format!(
                    "cannot read the account key file {}: {error}",
                    path.display()
                )
            }),
            KeyLocation::Env(variable) => std::env::var(variable).map_err(|_| {
                format!(
                    "environment variable {variable} is not set; it must contain the account key"
                )
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            KeyLocation::File(path) => path.display().to_string(),
            KeyLocation::Env(variable) => format!("${variable}"),
        }
    }
}

/// The keys in use, replaced whole on every change. `generation` identifies the state a
/// rejection refers to, so rejections of an older state are ignored.
#[derive(Debug)]
struct KeyState {
    primary: MasterKey,
    secondary: Option<MasterKey>,
    use_secondary: bool,
    generation: u64,
}

impl KeyState {
    fn signing_key(&self) -> &MasterKey {
        match (&self.secondary, self.use_secondary) {
            (Some(secondary), true) => secondary,
            _ => &self.primary,
        }
    }
}

/// One watched key: its location and the last text read, valid or not, so an unchanged
/// file is not parsed again and an invalid one is reported once.
#[derive(Debug)]
struct WatchedKey {
    location: KeyLocation,
    is_primary: bool,
    last_text: Option<String>,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    state: ArcSwap<KeyState>,
    /// Asks the reload task to check the files now, after a rejection.
    reload_now: Notify,
    metrics: CredentialMetrics,
}

/// The account key credential.
#[derive(Debug)]
pub(crate) struct KeyCredential {
    shared: Arc<Shared>,
    reload_task: Option<JoinHandle<()>>,
}

impl Drop for KeyCredential {
    fn drop(&mut self) {
        if let Some(task) = &self.reload_task {
            task.abort();
        }
    }
}

impl KeyCredential {
    /// Reads the keys and, when any comes from a file, starts polling it every
    /// `reload_interval`. Must be called inside a tokio runtime when a file is configured.
    pub(crate) fn start(
        config: &Config,
        metrics: CredentialMetrics,
        reload_interval: Duration,
    ) -> Result<KeyCredential, CredentialError> {
        let credential = &config.upstream.credential;
        let primary = KeyLocation::from_fields(config, &credential.key_file, &credential.key_env)
            .ok_or_else(|| {
            CredentialError::Setup(
                "upstream.credential: kind = \"key\" needs key_file or key_env".to_owned(),
            )
        })?;
        let secondary = KeyLocation::from_fields(
            config,
            &credential.secondary_key_file,
            &credential.secondary_key_env,
        );

        let mut primary = WatchedKey::load(primary, true)?;
        let mut secondary = secondary
            .map(|location| WatchedKey::load(location, false))
            .transpose()?;
        let state = KeyState {
            primary: primary.take_initial()?,
            secondary: secondary
                .as_mut()
                .map(WatchedKey::take_initial)
                .transpose()?,
            use_secondary: false,
            generation: 1,
        };
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(state),
            reload_now: Notify::new(),
            metrics,
        });

        let watched: Vec<WatchedKey> = std::iter::once(primary)
            .chain(secondary)
            .filter(|key| matches!(key.location, KeyLocation::File(_)))
            .collect();
        let reload_task = if watched.is_empty() {
            None
        } else {
            Some(tokio::spawn(reload_loop(
                Arc::clone(&shared),
                watched,
                reload_interval,
            )))
        };
        Ok(KeyCredential {
            shared,
            reload_task,
        })
    }

    /// Signs one request with the key in use.
    pub(crate) fn authorization(
        &self,
        verb: &str,
        resource_type: &str,
        resource_link: &str,
        date: &str,
    ) -> Result<Signed, CredentialError> {
        let state = self.shared.state.load();
        let value = state
            .signing_key()
            .authorization(verb, resource_type, resource_link, date);
        let header =
            HeaderValue::try_from(value).map_err(|error| CredentialError::Unavailable {
                mode: "account key",
                reason: error.to_string(),
            })?;
        Ok(Signed {
            header,
            generation: state.generation,
        })
    }

    /// Reacts to the account rejecting the key of `generation`: switches to the secondary
    /// key once, if there is one, and re-reads the key files at once.
    pub(crate) fn rejected(&self, generation: u64) {
        let current = self.shared.state.load();
        if current.generation != generation {
            return;
        }
        self.shared.reload_now.notify_one();
        if current.secondary.is_none() || current.use_secondary {
            tracing::warn!(
                "The account rejected the account key; check that the configured key is current"
            );
            return;
        }
        let switched = KeyState {
            primary: current.primary.clone(),
            secondary: current.secondary.clone(),
            use_secondary: true,
            generation: generation + 1,
        };
        // Only the first rejection of this generation switches; later ones see a new state.
        let previous = self
            .shared
            .state
            .compare_and_swap(&current, Arc::new(switched));
        if Arc::ptr_eq(&previous, &current) {
            tracing::warn!("The account rejected the primary key; signing with the secondary key");
        }
    }
}

impl WatchedKey {
    fn load(location: KeyLocation, is_primary: bool) -> Result<WatchedKey, CredentialError> {
        let text = location.read().map_err(CredentialError::Setup)?;
        Ok(WatchedKey {
            location,
            is_primary,
            last_text: Some(text),
            last_error: None,
        })
    }

    fn take_initial(&mut self) -> Result<MasterKey, CredentialError> {
        let text = self.last_text.as_deref().unwrap_or_default();
        MasterKey::from_base64(text).map_err(|error| {
            CredentialError::Setup(format!(
                "invalid account key in {}: {error}",
                self.location.describe()
            ))
        })
    }

    /// Re-reads the key. Returns the new key only when the content changed and is valid.
    fn poll(&mut self, metrics: &CredentialMetrics) -> Option<MasterKey> {
        let text = match self.location.read() {
            Ok(text) => text,
            Err(error) => {
                // A file replaced by a rename is briefly missing; report once, keep the key.
                if self.last_error.as_deref() != Some(error.as_str()) {
                    tracing::error!(%error, "Cannot re-read the account key; keeping the previous key");
                    metrics.key_reloaded(false);
                    self.last_error = Some(error);
                }
                return None;
            }
        };
        if self.last_text.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.last_error = None;
        let parsed = MasterKey::from_base64(&text);
        self.last_text = Some(text);
        match parsed {
            Ok(key) => {
                metrics.key_reloaded(true);
                tracing::info!(key.location = %self.location.describe(), "Reloaded the account key");
                Some(key)
            }
            Err(error) => {
                metrics.key_reloaded(false);
                tracing::error!(
                    key.location = %self.location.describe(),
                    %error,
                    "The changed account key is invalid; keeping the previous key"
                );
                None
            }
        }
    }
}

async fn reload_loop(shared: Arc<Shared>, mut watched: Vec<WatchedKey>, interval: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shared.reload_now.notified() => {}
        }
        reload(&shared, &mut watched);
    }
}

/// Applies changed keys.
fn reload(shared: &Shared, watched: &mut [WatchedKey]) {
    let current = shared.state.load();
    let mut primary = current.primary.clone();
    let mut secondary = current.secondary.clone();
    let mut changed = false;
    for key in watched.iter_mut() {
        let Some(new_key) = key.poll(&shared.metrics) else {
            continue;
        };
        changed = true;
        if key.is_primary {
            primary = new_key;
        } else {
            secondary = Some(new_key);
        }
    }
    if changed {
        // New keys start again from the primary.
        shared.state.store(Arc::new(KeyState {
            primary,
            secondary,
            use_secondary: false,
            generation: current.generation + 1,
        }));
    }
}
