//! The `[telemetry]` and `[metrics]` sections: span export over OTLP and the bounds on
//! metric labels.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// OpenTelemetry span export. Without this section and without an
/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variable, no
/// exporter is built and no span leaves the proxy.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Turns export off even when an endpoint is set. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The collector URL, `http` or `https`. For `grpc` the whole URL
    /// (`https://collector.example:4317`); for `http/protobuf` a base URL to which
    /// `/v1/traces` is appended, unless the path already ends with it. Default: the OTLP
    /// environment variables, else no export.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, then `http/protobuf`, the OTLP specification's default.
    pub protocol: Option<String>,
    /// Headers sent with every export (gRPC metadata), such as a collector API key.
    /// Merged over `OTEL_EXPORTER_OTLP_HEADERS`. Never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The `service.name` resource attribute. Default: `OTEL_SERVICE_NAME`, else
    /// `cosmoguard`.
    pub service_name: Option<String>,
    /// The maximum number of spans held for export. Once it is reached, new spans are
    /// dropped and counted. Default 2048.
    #[serde(default = "default_max_queue_size")]
    pub max_queue_size: usize,
    /// The largest batch sent in one export. Default 512.
    #[serde(default = "default_max_export_batch_size")]
    pub max_export_batch_size: usize,
    /// The maximum time a span waits in the queue before a batch is sent. Default 2 s.
    #[serde(default = "default_scheduled_delay", with = "humantime_serde")]
    pub scheduled_delay: Duration,
    /// Time allowed for one export request. Default: `OTEL_EXPORTER_OTLP_TIMEOUT`
    /// (milliseconds), else 10 s.
    #[serde(default, with = "humantime_serde")]
    pub export_timeout: Option<Duration>,
    /// A PEM file of CA certificates trusted for an `https` collector, in place of the
    /// system roots. Default: `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, then
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`, else the system roots.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// A PEM certificate chain that the proxy presents to an `https` collector that
    /// requires mutual TLS. Needs `client_key_file`. When either of the two is set, the
    /// `OTEL_EXPORTER_OTLP_*CLIENT_CERTIFICATE` and `*CLIENT_KEY` variables are ignored.
    pub client_certificate_file: Option<Spanned<PathBuf>>,
    /// The PEM private key of `client_certificate_file`. Its content is never logged.
    pub client_key_file: Option<Spanned<PathBuf>>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: true,
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            service_name: None,
            max_queue_size: default_max_queue_size(),
            max_export_batch_size: default_max_export_batch_size(),
            scheduled_delay: default_scheduled_delay(),
            export_timeout: None,
            ca_file: None,
            client_certificate_file: None,
            client_key_file: None,
        }
    }
}

/// Header values are often credentials, so only their names are shown.
impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("enabled", &self.enabled)
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("service_name", &self.service_name)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_export_batch_size", &self.max_export_batch_size)
            .field("scheduled_delay", &self.scheduled_delay)
            .field("export_timeout", &self.export_timeout)
            .field("ca_file", &self.ca_file)
            .field("client_certificate_file", &self.client_certificate_file)
            .field("client_key_file", &self.client_key_file)
            .finish()
    }
}

fn default_true() -> bool {
    true
}

fn default_max_queue_size() -> usize {
    2048
}

fn default_max_export_batch_size() -> usize {
    512
}

fn default_scheduled_delay() -> Duration {
    Duration::from_secs(2)
}

/// Bounds on the label values of the Prometheus metrics.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Containers, as `database/container`, that get their own series in
    /// `cosmoguard_request_charge_total`. Every other container is counted under
    /// `database="other", container="other"`. Default empty.
    #[serde(default)]
    pub charge_containers: Vec<String>,
}

/// The protocols `[telemetry] protocol` accepts, as the OTLP environment variables spell them.
pub(crate) const TELEMETRY_PROTOCOLS: [&str; 2] = ["grpc", "http/protobuf"];

/// Finds the problems in the audit, telemetry and metrics settings that serde cannot
/// express. Each message names the key and the fix.
pub(super) fn problems(config: &super::Config) -> Vec<String> {
    let mut problems = Vec::new();
    let audit = &config.audit;
    if let Some(max_file_bytes) = audit.max_file_bytes {
        if audit.file == "-" {
            problems.push(
                "audit.max_file_bytes: standard output cannot be rotated; set audit.file to a file \
                 or remove max_file_bytes"
                    .to_owned(),
            );
        }
        if max_file_bytes < 4096 {
            problems.push(format!(
                "audit.max_file_bytes: {max_file_bytes} is below the minimum of 4096 bytes"
            ));
        }
    }
    if let Some(telemetry) = &config.telemetry {
        if let Some(protocol) = &telemetry.protocol
            && !TELEMETRY_PROTOCOLS.contains(&protocol.as_str())
        {
            problems.push(format!(
                "telemetry.protocol: {protocol:?} is not supported; use \"grpc\" or \"http/protobuf\""
            ));
        }
        if telemetry.max_queue_size == 0 || telemetry.max_export_batch_size == 0 {
            problems.push(
                "telemetry: max_queue_size and max_export_batch_size must be at least 1".to_owned(),
            );
        }
    }
    for entry in &config.metrics.charge_containers {
        let valid = entry.split_once('/').is_some_and(|(database, container)| {
            !database.is_empty() && !container.is_empty() && !container.contains('/')
        });
        if !valid {
            problems.push(format!(
                "metrics.charge_containers: {entry:?} is not of the form \"database/container\""
            ));
        }
    }
    problems
}
