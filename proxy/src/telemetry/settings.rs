//! Resolves where and how spans are exported from the `[telemetry]` section and the
//! standard OpenTelemetry environment variables.
//!
//! A value set in the configuration file wins over the environment. Without an endpoint
//! from either, export stays off: there is no default collector address.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use toml::Spanned;
use url::Url;

use crate::config::TelemetryConfig;

/// The OTLP transports the proxy can export over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Everything needed to build the exporter and the batch processor.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ExportSettings {
    pub(crate) protocol: Protocol,
    /// The full URL: for HTTP it includes the `/v1/traces` path.
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) service_name: String,
    pub(crate) timeout: Duration,
    pub(crate) max_queue_size: usize,
    pub(crate) max_export_batch_size: usize,
    pub(crate) scheduled_delay: Duration,
    /// The TLS files of an `https` endpoint, or `None` for `http`.
    pub(crate) tls: Option<TlsFiles>,
}

/// The files that set up TLS to the collector. Empty means the system roots and no client
/// certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// CA certificates trusted in place of the system roots.
    pub(crate) ca_file: Option<TlsFile>,
    pub(crate) client: Option<ClientFiles>,
}

/// The certificate chain and private key the proxy presents for mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientFiles {
    pub(crate) certificate: TlsFile,
    pub(crate) key: TlsFile,
}

/// A file path with the configuration key or environment variable that set it, for errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsFile {
    pub(crate) key: &'static str,
    pub(crate) path: PathBuf,
}

impl TlsFiles {
    /// Returns every file that is set, CA file first.
    pub(crate) fn files(&self) -> Vec<&TlsFile> {
        let mut files: Vec<&TlsFile> = self.ca_file.iter().collect();
        if let Some(client) = &self.client {
            files.push(&client.certificate);
            files.push(&client.key);
        }
        files
    }
}

/// Header values are often credentials, so only their names are shown.
impl fmt::Debug for ExportSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ExportSettings")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("headers", &header_names)
            .field("service_name", &self.service_name)
            .field("timeout", &self.timeout)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_export_batch_size", &self.max_export_batch_size)
            .field("scheduled_delay", &self.scheduled_delay)
            .field("tls", &self.tls)
            .finish()
    }
}

const TRACES_PATH: &str = "/v1/traces";
const DEFAULT_SERVICE_NAME: &str = "cosmoguard";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves the export settings, or `None` when export is off. Relative paths from the
/// configuration resolve against `base_dir`, and those from the environment against the
/// working directory. `env` looks up an environment variable; tests pass a map.
pub(crate) fn resolve(
    config: Option<&TelemetryConfig>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ExportSettings>, String> {
    let defaults = TelemetryConfig::default();
    let config = config.unwrap_or(&defaults);
    if !config.enabled || is_disabled_by_env(env) {
        return Ok(None);
    }

    let protocol = resolve_protocol(config, env)?;
    let Some(endpoint) = resolve_endpoint(config, protocol, env)? else {
        return Ok(None);
    };
    let tls_files = resolve_tls_files(config, base_dir, env)?;
    let tls = if endpoint.is_https {
        Some(tls_files)
    } else {
        reject_tls_files_for_http(&tls_files, &endpoint)?;
        None
    };
    Ok(Some(ExportSettings {
        protocol,
        endpoint: endpoint.url,
        headers: resolve_headers(config, env)?,
        service_name: config
            .service_name
            .clone()
            .or_else(|| non_empty(env("OTEL_SERVICE_NAME")))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
        timeout: resolve_timeout(config, env)?,
        max_queue_size: config.max_queue_size,
        max_export_batch_size: config.max_export_batch_size.min(config.max_queue_size),
        scheduled_delay: config.scheduled_delay,
        tls,
    }))
}

fn is_disabled_by_env(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let sdk_disabled = env("OTEL_SDK_DISABLED").is_some_and(|value| value.trim() == "true");
    let no_exporter = env("OTEL_TRACES_EXPORTER").is_some_and(|value| value.trim() == "none");
    sdk_disabled || no_exporter
}

fn resolve_protocol(
    config: &TelemetryConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Protocol, String> {
    let (source, value) = match &config.protocol {
        Some(value) => ("telemetry.protocol", value.clone()),
        None => match first_env(
            env,
            &[
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        ) {
            Some(found) => found,
            None => return Ok(Protocol::HttpProtobuf),
        },
    };
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        other => Err(format!(
            "{source}: the OTLP protocol {other:?} is not supported; use \"grpc\" or \"http/protobuf\""
        )),
    }
}

/// A resolved collector endpoint.
struct Endpoint {
    url: String,
    /// The configuration key or environment variable that set it.
    source: &'static str,
    is_https: bool,
}

/// Resolves the endpoint. The signal-specific variable is a whole URL, but the generic one
/// and the configuration value are base URLs to which HTTP export appends `/v1/traces`.
fn resolve_endpoint(
    config: &TelemetryConfig,
    protocol: Protocol,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Endpoint>, String> {
    let (source, value, is_base) = if let Some(value) = &config.endpoint {
        ("telemetry.endpoint", value.clone(), true)
    } else if let Some(value) = non_empty(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value, false)
    } else if let Some(value) = non_empty(env("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        ("OTEL_EXPORTER_OTLP_ENDPOINT", value, true)
    } else {
        return Ok(None);
    };

    let url = Url::parse(value.trim())
        .map_err(|error| format!("{source}: {value:?} is not a valid URL: {error}"))?;
    let is_https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "{source}: the scheme {other:?} is not supported; use http or https"
            ));
        }
    };

    let mut text = url.as_str().trim_end_matches('/').to_owned();
    if protocol == Protocol::HttpProtobuf && is_base && !text.ends_with(TRACES_PATH) {
        text.push_str(TRACES_PATH);
    }
    Ok(Some(Endpoint {
        url: text,
        source,
        is_https,
    }))
}

/// Resolves the TLS files that the configuration alone sets, and rejects them when its own
/// endpoint is plain http. For `cosmoguard check`, which does not read the environment.
pub(crate) fn resolve_config_tls_files(
    config: &TelemetryConfig,
    base_dir: &Path,
) -> Result<TlsFiles, String> {
    let no_environment = |_: &str| None;
    let files = resolve_tls_files(config, base_dir, &no_environment)?;
    if let Ok(Some(endpoint)) = resolve_endpoint(config, Protocol::Grpc, &no_environment)
        && !endpoint.is_https
    {
        reject_tls_files_for_http(&files, &endpoint)?;
    }
    Ok(files)
}

/// The CA file variables, signal-specific first.
const CA_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
];

/// The client certificate and key variables, signal-specific first. Each variable falls
/// back to the generic one on its own, as the OpenTelemetry SDKs do.
const CLIENT_CERTIFICATE_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
];
const CLIENT_KEY_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
];

/// Resolves the TLS files. The CA file comes from the configuration, else the environment.
/// The client certificate and key come as a pair: from the configuration when it sets
/// either of them, else from the environment, and one without the other is an error.
fn resolve_tls_files(
    config: &TelemetryConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TlsFiles, String> {
    let from_config = |key: &'static str, path: &Option<Spanned<PathBuf>>| {
        path.as_ref().map(|path| TlsFile {
            key,
            path: base_dir.join(path.get_ref()),
        })
    };
    let from_env = |names: &[&'static str]| {
        first_env(env, names).map(|(key, value)| TlsFile {
            key,
            path: PathBuf::from(value.trim()),
        })
    };

    let ca_file =
        from_config("telemetry.ca_file", &config.ca_file).or_else(|| from_env(&CA_VARIABLES));
    let (certificate, key) =
        if config.client_certificate_file.is_some() || config.client_key_file.is_some() {
            (
                from_config(
                    "telemetry.client_certificate_file",
                    &config.client_certificate_file,
                ),
                from_config("telemetry.client_key_file", &config.client_key_file),
            )
        } else {
            (
                from_env(&CLIENT_CERTIFICATE_VARIABLES),
                from_env(&CLIENT_KEY_VARIABLES),
            )
        };
    let client = match (certificate, key) {
        (Some(certificate), Some(key)) => Some(ClientFiles { certificate, key }),
        (None, None) => None,
        (Some(certificate), None) => {
            return Err(format!(
                "{}: a client certificate needs its private key; set {} as well, or remove {}",
                certificate.key,
                counterpart(certificate.key),
                certificate.key
            ));
        }
        (None, Some(key)) => {
            return Err(format!(
                "{}: a client key needs its certificate; set {} as well, or remove {}",
                key.key,
                counterpart(key.key),
                key.key
            ));
        }
    };
    Ok(TlsFiles { ca_file, client })
}

/// Returns the setting that completes `present`, one half of a client certificate pair.
fn counterpart(present: &str) -> &'static str {
    match present {
        "telemetry.client_certificate_file" => "telemetry.client_key_file",
        "telemetry.client_key_file" => "telemetry.client_certificate_file",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE" => "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY" => "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" => "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        // The one left: OTEL_EXPORTER_OTLP_CLIENT_KEY.
        _ => "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    }
}

fn reject_tls_files_for_http(files: &TlsFiles, endpoint: &Endpoint) -> Result<(), String> {
    let Some(file) = files.files().into_iter().next() else {
        return Ok(());
    };
    Err(format!(
        "{}: TLS files apply only to an https collector, but {} {} is plain http; use an \
         https endpoint, or remove {}",
        file.key, endpoint.source, endpoint.url, file.key
    ))
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`-style lists (`name=value,name2=value2`, values
/// percent-encoded), then lets the configuration's headers override them.
fn resolve_headers(
    config: &TelemetryConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for variable in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        let Some(list) = env(variable) else { continue };
        for entry in list.split(',').filter(|entry| !entry.trim().is_empty()) {
            let Some((name, value)) = entry.split_once('=') else {
                return Err(format!(
                    "{variable}: an entry has no '=': write name=value pairs"
                ));
            };
            let value = percent_decode_str(value.trim())
                .decode_utf8_lossy()
                .into_owned();
            set_header(&mut headers, name.trim(), value);
        }
    }
    for (name, value) in &config.headers {
        set_header(&mut headers, name, value.clone());
    }
    Ok(headers)
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    let name = name.to_ascii_lowercase();
    headers.retain(|(existing, _)| *existing != name);
    headers.push((name, value));
}

fn resolve_timeout(
    config: &TelemetryConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Duration, String> {
    if let Some(timeout) = config.export_timeout {
        return Ok(timeout);
    }
    match first_env(
        env,
        &[
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
    ) {
        Some((variable, value)) => value
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{variable}: {value:?} is not a whole number of milliseconds")),
        None => Ok(DEFAULT_TIMEOUT),
    }
}

fn first_env(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|name| non_empty(env(name)).map(|value| (*name, value)))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}
