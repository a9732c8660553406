//! OpenTelemetry tracing: one server span per request, exported over OTLP (gRPC or
//! HTTP/protobuf, each over http or https) through a bounded batch processor.
//!
//! The span starts when the request arrives, as a child of the caller's W3C
//! `traceparent` when there is one, and ends when the response body ends, with the same
//! facts as the audit record. The upstream request carries a `traceparent` naming this
//! span. Export runs on the SDK's own thread: a slow or absent collector costs dropped
//! spans (counted in `cosmoguard_spans_dropped_total`), never a slower request.
//!
//! Every span is recorded, whatever sampling flag the caller sends, so a caller cannot
//! keep its requests out of the exported trail.

mod attributes;
mod export;
mod settings;
mod stamp;
mod tls;

// Tests panic on failure by design; `unwrap` is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span,
    SpanExporter,
};
use prometheus::Registry;
use url::Url;

use crate::audit::AuditRecord;
use crate::config::TelemetryConfig;

pub use export::SpanMetrics;
pub use stamp::SubjectStamp;

use export::{BoundedProcessor, CountingExporter, Pending};
use settings::{ExportSettings, Protocol};
use tls::CollectorTls;
pub(crate) use tls::check_tls_config;

/// The instrumentation scope name on every span.
const SCOPE: &str = "cosmoguard";

/// Starts request spans, or does nothing when export is off.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    tracer: Option<SdkTracer>,
    server_address: Option<String>,
    server_port: Option<u16>,
}

impl Telemetry {
    /// Returns a handle that starts no spans.
    pub fn disabled() -> Telemetry {
        Telemetry::default()
    }

    /// Returns whether spans are recorded and exported.
    pub fn is_enabled(&self) -> bool {
        self.tracer.is_some()
    }

    /// Starts the span of a request that arrived at `started`, as a child of the
    /// `traceparent` in `headers` if it has a valid one.
    pub fn start_span(
        &self,
        headers: &HeaderMap,
        method: &str,
        started: SystemTime,
    ) -> Option<RequestSpan> {
        let tracer = self.tracer.as_ref()?;
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let mut attributes = vec![
            KeyValue::new("db.system.name", attributes::DB_SYSTEM),
            KeyValue::new("http.request.method", method.to_owned()),
        ];
        if let Some(address) = &self.server_address {
            attributes.push(KeyValue::new("server.address", address.clone()));
        }
        if let Some(port) = self.server_port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = tracer
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Some(RequestSpan { span })
    }
}

/// One request's span, open until [`RequestSpan::end`].
#[derive(Debug)]
pub struct RequestSpan {
    span: Span,
}

impl RequestSpan {
    /// Sets `traceparent` (and `tracestate`) on an upstream request so that the
    /// account's side of the trace is a child of this span.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let context = Context::new().with_remote_span_context(self.span.span_context().clone());
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }

    /// Returns the trace id as 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.span.span_context().trace_id().to_string()
    }

    /// Ends the span at `ended` with the facts of the finished record.
    pub fn end(mut self, record: &AuditRecord, ended: SystemTime) {
        self.span.update_name(attributes::span_name(record));
        self.span
            .set_attributes(attributes::span_attributes(record));
        self.span.set_status(attributes::span_status(record));
        self.span.end_with_timestamp(ended);
    }
}

/// The running exporter, shut down once at the end of [`crate::run::serve`].
#[derive(Debug)]
pub struct TelemetryHandle {
    pub telemetry: Telemetry,
    pub metrics: SpanMetrics,
    provider: Option<SdkTracerProvider>,
}

impl TelemetryHandle {
    /// Builds the exporter the configuration and environment ask for, or a disabled
    /// handle. Relative paths in `config` resolve against `base_dir`. Fails when a TLS
    /// file cannot be read or used. Must run inside the tokio runtime because the gRPC
    /// exporter spawns its connection task there.
    pub async fn start(
        config: Option<&TelemetryConfig>,
        base_dir: &Path,
        upstream: &Url,
        registry: &Registry,
    ) -> anyhow::Result<TelemetryHandle> {
        let metrics = SpanMetrics::register(registry)?;
        let environment = |name: &str| std::env::var(name).ok();
        let Some(settings) =
            settings::resolve(config, base_dir, &environment).map_err(anyhow::Error::msg)?
        else {
            tracing::info!("Span export is off: no OTLP endpoint configured");
            return Ok(TelemetryHandle {
                telemetry: Telemetry::disabled(),
                metrics,
                provider: None,
            });
        };

        // The HTTP exporter's blocking client must not be created or dropped on an async
        // worker thread, so the provider is built on a blocking thread.
        let span_metrics = metrics.clone();
        let log_settings = settings.clone();
        let provider =
            tokio::task::spawn_blocking(move || build_provider(&settings, span_metrics)).await??;
        let tls = log_settings.tls.as_ref();
        let ca_file = tls
            .and_then(|tls| tls.ca_file.as_ref())
            .map(|file| file.path.display().to_string());
        let client_certificate = tls
            .and_then(|tls| tls.client.as_ref())
            .map(|client| client.certificate.path.display().to_string());
        tracing::info!(
            otlp.endpoint = %log_settings.endpoint,
            otlp.protocol = ?log_settings.protocol,
            otlp.ca_file = ca_file,
            otlp.client_certificate = client_certificate,
            service.name = %log_settings.service_name,
            "Exporting request spans"
        );
        let telemetry = Telemetry {
            tracer: Some(provider.tracer(SCOPE)),
            server_address: upstream.host_str().map(str::to_owned),
            server_port: upstream.port_or_known_default(),
        };
        Ok(TelemetryHandle {
            telemetry,
            metrics,
            provider: Some(provider),
        })
    }

    /// Flushes queued spans and stops the exporter. The SDK flushes synchronously, so
    /// this runs on a blocking thread.
    pub async fn shutdown(mut self) {
        self.telemetry = Telemetry::disabled();
        let Some(provider) = self.provider.take() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match result {
            Ok(Ok(())) => tracing::info!("Span export stopped"),
            Ok(Err(error)) => tracing::warn!(%error, "Span export stopped with spans unexported"),
            Err(error) => tracing::error!(%error, "Span export shutdown panicked"),
        }
    }
}

/// Builds the tracer provider for `settings` with the OTLP exporter.
fn build_provider(
    settings: &ExportSettings,
    metrics: SpanMetrics,
) -> anyhow::Result<SdkTracerProvider> {
    let pending = Pending::new(settings.max_queue_size, metrics);
    let exporter = build_exporter(settings)?;
    Ok(provider_with_exporter(exporter, settings, pending))
}

fn provider_with_exporter<E: SpanExporter + 'static>(
    exporter: E,
    settings: &ExportSettings,
    pending: Pending,
) -> SdkTracerProvider {
    let batch_config = BatchConfigBuilder::default()
        .with_max_queue_size(settings.max_queue_size)
        .with_max_export_batch_size(settings.max_export_batch_size)
        .with_scheduled_delay(settings.scheduled_delay)
        .build();
    let batch = BatchSpanProcessor::builder(CountingExporter::new(exporter, pending.clone()))
        .with_batch_config(batch_config)
        .build();
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(BoundedProcessor::new(batch, pending))
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(resource)
        .build()
}

/// Builds the OTLP exporter, with TLS for an https endpoint. Runs on a blocking thread,
/// where the HTTP exporter's blocking client may be created.
fn build_exporter(settings: &ExportSettings) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let tls = settings.tls.as_ref().map(CollectorTls::load).transpose()?;
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match settings.protocol {
        Protocol::Grpc => {
            let mut grpc = builder
                .with_tonic()
                .with_endpoint(settings.endpoint.clone())
                .with_timeout(settings.timeout)
                .with_metadata(grpc_metadata(&settings.headers)?);
            if let Some(tls) = &tls {
                grpc = grpc.with_tls_config(tls.grpc_config());
            }
            grpc.build()?
        }
        Protocol::HttpProtobuf => {
            let mut http = builder
                .with_http()
                .with_endpoint(settings.endpoint.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(settings.timeout)
                .with_headers(settings.headers.iter().cloned().collect::<HashMap<_, _>>());
            if let Some(tls) = tls {
                let client = tls.http_client(settings.timeout).map_err(|error| {
                    anyhow::anyhow!("cannot build the OTLP HTTP client: {error}")
                })?;
                http = http.with_http_client(client);
            }
            http.build()?
        }
    };
    Ok(exporter)
}

fn grpc_metadata(
    headers: &[(String, String)],
) -> anyhow::Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| anyhow::anyhow!("telemetry header {name:?} is not a valid header name"))?;
        let header_value = HeaderValue::from_str(value).map_err(|_| {
            anyhow::anyhow!("the value of telemetry header {name:?} is not a valid header value")
        })?;
        map.insert(header_name, header_value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
