//! Resolves where and how spans are exported from the `[telemetry]` section and the
//! standard OpenTelemetry environment variables.
//!
//! A value set in the configuration file wins over the environment. Without an endpoint
//! from either, export stays off: there is no default collector address.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
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
            .finish()
    }
}

const TRACES_PATH: &str = "/v1/traces";
const DEFAULT_SERVICE_NAME: &str = "cosmoguard";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves the export settings, or `None` when export is off. `env` looks up an
/// environment variable; tests pass a map.
pub(crate) fn resolve(
    config: Option<&TelemetryConfig>,
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
    Ok(Some(ExportSettings {
        protocol,
        endpoint,
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

/// Resolves the endpoint. The signal-specific variable is a whole URL, but the generic one
/// and the configuration value are base URLs to which HTTP export appends `/v1/traces`.
fn resolve_endpoint(
    config: &TelemetryConfig,
    protocol: Protocol,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
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
    match url.scheme() {
        "http" => {}
        "https" => {
            // TODO: build the exporters with TLS so a remote collector can be reached
            // directly, not only through a local collector over plain HTTP.
            return Err(format!(
                "{source}: {value} uses https, which this build cannot export to; send spans to \
                 a local collector over http"
            ));
        }
        other => {
            return Err(format!(
                "{source}: the scheme {other:?} is not supported; use http"
            ));
        }
    }

    let text = url.as_str().trim_end_matches('/').to_owned();
    if protocol == Protocol::HttpProtobuf && is_base && !text.ends_with(TRACES_PATH) {
        return Ok(Some(format!("{text}{TRACES_PATH}")));
    }
    Ok(Some(text))
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
