//! The proxy's TOML configuration, parsed into typed values at start. Each error names its
//! file, line and fix. The semantic checks report every error at once, but serde stops at
//! the first TOML syntax or type error, so only that one is reported.
//!
//! Relative paths resolve against the directory of the configuration file.

mod observability;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::identity::IssuerConfig;

pub use observability::{MetricsConfig, TelemetryConfig};
pub use validate::{ConfigError, ConfigErrors};

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listener: ListenerConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    /// The OIDC issuers whose tokens are accepted. At least one is required.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    pub policy: PolicyConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// OpenTelemetry span export; off when absent (see [`TelemetryConfig`]).
    pub telemetry: Option<TelemetryConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Switches that weaken security, for local use only. Each logs a warning at start.
    #[serde(default)]
    pub dangerous: DangerousConfig,
    /// The directory relative paths resolve against (the configuration file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// The data listener that SDKs connect to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// The socket address to bind, for example `0.0.0.0:8443`.
    #[serde(deserialize_with = "socket_address")]
    pub address: SocketAddr,
    /// The URL SDKs reach the proxy at. The account read advertises it as every
    /// regional endpoint. Defaults to `https://` (or `http://`) plus `address`.
    pub public_url: Option<Spanned<Url>>,
    /// The server certificate. Required unless `dangerous.plain_http_listener` is set.
    pub tls: Option<TlsConfig>,
    /// Threads that serve connections, each with its own event loop and upstream
    /// connection pool (1 to 1024). Defaults to the number of CPUs the process may use.
    #[serde(default, deserialize_with = "worker_count")]
    pub workers: Option<Spanned<usize>>,
}

impl ListenerConfig {
    /// Returns the number of connection workers: the configured one, or one per available
    /// CPU.
    pub fn worker_count(&self) -> usize {
        match &self.workers {
            Some(workers) => *workers.get_ref(),
            None => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: Spanned<PathBuf>,
    pub private_key: Spanned<PathBuf>,
}

/// The admin listener: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Default `127.0.0.1:9464`: loopback only, so metrics are not exposed by accident.
    #[serde(default = "default_admin_address", deserialize_with = "socket_address")]
    pub address: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: default_admin_address(),
        }
    }
}

fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// Parses an `IP:PORT` socket address, with an error that shows the expected form.
fn socket_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not a socket address: write an IP address and a port from 0 to \
             65535, such as 127.0.0.1:8443 or [::1]:8443"
        ))
    })
}

/// Parses `listener.workers` from any TOML value, so that a negative number or a string
/// gets an error with the accepted range in place of serde's "expected usize". `validate`
/// checks the range of a non-negative integer.
fn worker_count<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Spanned<usize>>, D::Error> {
    let value = Spanned::<toml::Value>::deserialize(deserializer)?;
    let span = value.span();
    match value.into_inner() {
        toml::Value::Integer(integer) => match usize::try_from(integer) {
            Ok(count) => Ok(Some(Spanned::new(span, count))),
            Err(_) => Err(serde::de::Error::custom(validate::invalid_workers(
                integer,
                "is out of range",
            ))),
        },
        other => Err(serde::de::Error::custom(validate::invalid_workers(
            other,
            "is not an integer",
        ))),
    }
}

/// The Cosmos DB account the proxy forwards to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The account endpoint, for example `https://myaccount.documents.azure.com`.
    pub endpoint: Spanned<Url>,
    /// A PEM file of CA certificates trusted for the account, in place of the system
    /// roots. For an emulator or a test account with its own CA.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Time allowed to open a connection (TCP and TLS). Default 5 s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to receiving the response headers. Default 65 s,
    /// above the service's own 60 s limit for a request.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    pub credential: CredentialConfig,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_response_timeout() -> Duration {
    Duration::from_secs(65)
}

fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}

/// The proxy's own credential for the account. `kind` chooses the mode; each mode
/// accepts only its own fields, and validation rejects the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    pub kind: Spanned<CredentialKind>,
    /// `key`: a file whose only content is the base64 account key. Re-read when it changes.
    pub key_file: Option<Spanned<PathBuf>>,
    /// `key`: the name of an environment variable that contains the base64 account key.
    pub key_env: Option<Spanned<String>>,
    /// `key`: a file with the other account key, used after the account rejects the first.
    pub secondary_key_file: Option<Spanned<PathBuf>>,
    /// `key`: the name of an environment variable that contains the other account key.
    pub secondary_key_env: Option<Spanned<String>>,
    /// `managed_identity`, `workload_identity`, `client_secret`: the application (client)
    /// id. For `managed_identity` it selects a user-assigned identity.
    pub client_id: Option<Spanned<String>>,
    /// `managed_identity`: the object (principal) id of a user-assigned identity.
    pub object_id: Option<Spanned<String>>,
    /// `managed_identity`: the Azure resource id of a user-assigned identity (IMDS only).
    pub resource_id: Option<Spanned<String>>,
    /// `managed_identity`: refuse to start unless `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`
    /// are set, so the proxy never falls back to IMDS. Default false; set it in test profiles.
    pub require_identity_endpoint: Option<Spanned<bool>>,
    /// `workload_identity`, `client_secret`: the Entra tenant id. Workload identity falls
    /// back to `AZURE_TENANT_ID`.
    pub tenant_id: Option<Spanned<String>>,
    /// `workload_identity`: the projected service account token. Defaults to
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub token_file: Option<Spanned<PathBuf>>,
    /// `client_secret`: a file whose only content is the client secret. Read at every refresh.
    pub client_secret_file: Option<Spanned<PathBuf>>,
    /// `client_secret`: the name of an environment variable that contains the client secret.
    pub client_secret_env: Option<Spanned<String>>,
    /// `workload_identity`, `client_secret`: the https token authority. Defaults to
    /// `AZURE_AUTHORITY_HOST`, then `https://login.microsoftonline.com`.
    pub authority_host: Option<Spanned<Url>>,
    /// Entra modes: the token scope. Default `https://cosmos.azure.com/.default`;
    /// sovereign clouds use their own, for example `https://cosmos.azure.us/.default`.
    pub scope: Option<Spanned<String>>,
}

/// The credential modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The account key (primary or secondary), as the emulator and key-based accounts use.
    Key,
    /// An Azure managed identity, system-assigned or user-assigned.
    ManagedIdentity,
    /// AKS workload identity: a federated Kubernetes service account token.
    WorkloadIdentity,
    /// A service principal with a client secret.
    ClientSecret,
}

impl CredentialConfig {
    /// Whether `require_identity_endpoint = true` is set.
    pub fn requires_identity_endpoint(&self) -> bool {
        self.require_identity_endpoint
            .as_ref()
            .is_some_and(|value| *value.get_ref())
    }
}

impl CredentialKind {
    /// The value `kind` takes in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Key => "key",
            CredentialKind::ManagedIdentity => "managed_identity",
            CredentialKind::WorkloadIdentity => "workload_identity",
            CredentialKind::ClientSecret => "client_secret",
        }
    }
}

/// The policy source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy file (TOML).
    pub file: Spanned<PathBuf>,
}

/// The JSON-lines audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// A file to append to, or `-` for standard output (the default).
    #[serde(default = "default_audit_file")]
    pub file: String,
    /// Rotates the file before it would grow past this many bytes: `audit.log` becomes
    /// `audit.log.1`, and so on. Only for a file, not `-`. Default: no rotation.
    pub max_file_bytes: Option<u64>,
    /// Rotated files kept besides the current one; older ones are deleted. Default 5.
    #[serde(default = "default_audit_max_files")]
    pub max_files: usize,
    /// A file with a secret key. When set, the upstream `User-Agent` gets
    /// ` cosmoguard-subject/<first 16 hex digits of HMAC-SHA256(key, subject)>`, so
    /// the account's own logs can be tied to a caller without naming them.
    pub user_agent_hmac_key_file: Option<Spanned<PathBuf>>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: default_audit_file(),
            max_file_bytes: None,
            max_files: default_audit_max_files(),
            user_agent_hmac_key_file: None,
        }
    }
}

fn default_audit_max_files() -> usize {
    5
}

fn default_audit_file() -> String {
    "-".to_owned()
}

/// Size limits on requests and responses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest total size of request headers; larger requests get 431. Default 64 KiB.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// The largest account-read response read from upstream for rewriting. Default 1 MiB.
    #[serde(default = "default_max_account_bytes")]
    pub max_account_response_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_bytes: default_max_header_bytes(),
            max_account_response_bytes: default_max_account_bytes(),
        }
    }
}

fn default_max_header_bytes() -> usize {
    64 * 1024
}

fn default_max_account_bytes() -> usize {
    1024 * 1024
}

/// Insecure switches for local development.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DangerousConfig {
    /// Serve the data listener over plain HTTP, so callers' tokens travel in clear text.
    #[serde(default)]
    pub plain_http_listener: bool,
    /// Accept `http://` issuer, discovery and JWKS URLs, so keys can be forged in transit.
    #[serde(default)]
    pub plain_http_issuers: bool,
    /// Accept an `http://` upstream endpoint (an emulator started without TLS).
    #[serde(default)]
    pub plain_http_upstream: bool,
}

/// The scope of a configuration check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Report files the configuration names that do not exist on this machine. Off for
    /// configurations written for another machine, such as a container's mounted secrets.
    pub require_files: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            require_files: true,
        }
    }
}

impl Config {
    /// Reads, parses and checks a configuration file, reporting every error found.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, CheckOptions::default())
    }

    /// Like [`Config::load`], with a choice of what is checked.
    pub fn load_with(path: &Path, options: CheckOptions) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigErrors::unreadable(path, &error))?;
        Config::parse_with(&text, path, options)
    }

    /// Parses and checks configuration text; `path` names the file in errors and
    /// anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        Config::parse_with(text, path, CheckOptions::default())
    }

    /// Like [`Config::parse`], with a choice of what is checked.
    pub fn parse_with(
        text: &str,
        path: &Path,
        options: CheckOptions,
    ) -> Result<Config, ConfigErrors> {
        let mut config: Config =
            toml::from_str(text).map_err(|error| ConfigErrors::syntax(path, text, &error))?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        validate::check(&config, text, path, options)?;
        Ok(config)
    }

    /// Resolves a path from the configuration against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Returns the URL the account read advertises to SDKs.
    pub fn public_url(&self) -> Url {
        if let Some(url) = &self.listener.public_url {
            return url.get_ref().clone();
        }
        let scheme = if self.listener.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let text = format!("{scheme}://{}/", self.listener.address);
        // A scheme and a socket address always form a valid URL.
        Url::parse(&text).unwrap_or_else(|_| unreachable!("{text} is a valid URL"))
    }

    /// Returns the policy file path, resolved against the configuration directory.
    pub fn policy_path(&self) -> PathBuf {
        self.resolve(self.policy.file.get_ref())
    }
}
