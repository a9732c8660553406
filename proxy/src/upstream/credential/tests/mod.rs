//! Tests of the credential modes against loopback stand-ins, and of the token cache
//! against an in-process token source under paused time.

mod authority;
mod config;
mod key;
mod managed_identity;
mod rejection;
mod stand_in;
mod token_cache;

use std::path::PathBuf;
use std::time::Duration;

use prometheus::Registry;

use super::{Credential, CredentialOptions, RefreshSettings};
use crate::config::Config;

/// A temporary directory with the files every test configuration names.
pub(super) struct Fixture {
    pub(super) directory: tempfile::TempDir,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("policy.toml"), "x").unwrap();
        Fixture { directory }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    pub(super) fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Parses a configuration whose `[upstream.credential]` table is `credential`.
    pub(super) fn parse(&self, credential: &str) -> Result<Config, crate::config::ConfigErrors> {
        Config::parse(&config_text(credential), &self.path("cosmoguard.toml"))
    }

    pub(super) fn config(&self, credential: &str) -> Config {
        self.parse(credential)
            .unwrap_or_else(|errors| panic!("{errors}"))
    }
}

/// A configuration with a plain-http listener and the given credential table body.
/// The credential table starts on line 8.
pub(super) fn config_text(credential: &str) -> String {
    format!(
        r#"[listener]
address = "127.0.0.1:0"
[dangerous]
plain_http_listener = true
[upstream]
endpoint = "https://127.0.0.1:8081"
[upstream.credential]
{credential}
[[issuers]]
issuer = "https://127.0.0.1:8080"
audiences = ["api://cosmoguard"]
[policy]
file = "policy.toml"
"#
    )
}

/// Refresh timing short enough for tests against real stand-ins.
pub(super) fn quick_refresh() -> RefreshSettings {
    RefreshSettings {
        fetch_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
    }
}

pub(super) fn start(config: &Config, options: CredentialOptions) -> (Credential, Registry) {
    let registry = Registry::new();
    let credential =
        Credential::start(config, &registry, options).unwrap_or_else(|error| panic!("{error}"));
    (credential, registry)
}

/// Signs one request and returns the `Authorization` value.
pub(super) async fn sign(credential: &Credential) -> Result<String, super::CredentialError> {
    let signed = credential
        .authorization("GET", "dbs", "dbs/db", "Thu, 27 Apr 2017 00:51:12 GMT")
        .await?;
    Ok(signed.header.to_str().unwrap().to_owned())
}

/// Reads one sample from the registry's text exposition, for example
/// `cosmoguard_credential_refreshes_total{result="success"}`.
pub(super) fn metric(registry: &Registry, series: &str) -> Option<f64> {
    let text = crate::metrics::render(registry);
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The header the Entra modes send for `token`.
pub(super) fn aad_header(token: &str) -> String {
    format!("type%3daad%26ver%3d1.0%26sig%3d{token}")
}
