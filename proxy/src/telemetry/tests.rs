use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cosmoguard_policy::Principal;
use http::HeaderMap;
use opentelemetry::trace::{SpanKind, Status, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use prometheus::Registry;

use toml::Spanned;

use super::settings::{ClientFiles, TlsFile, TlsFiles};
use super::tls::{CollectorTls, CollectorTlsError};
use super::*;
use crate::audit::{AuditPrincipal, AuditRecord};

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn test_settings(max_queue_size: usize) -> ExportSettings {
    ExportSettings {
        protocol: Protocol::HttpProtobuf,
        endpoint: "http://127.0.0.1:4318/v1/traces".to_owned(),
        headers: Vec::new(),
        service_name: "cosmoguard-test".to_owned(),
        timeout: Duration::from_secs(1),
        max_queue_size,
        max_export_batch_size: max_queue_size,
        scheduled_delay: Duration::from_millis(10),
        tls: None,
    }
}

/// Builds a telemetry handle that exports into memory, with its span metrics.
fn in_memory() -> (
    Telemetry,
    SdkTracerProvider,
    InMemorySpanExporter,
    SpanMetrics,
) {
    let exporter = InMemorySpanExporter::default();
    let metrics = SpanMetrics::register(&Registry::new()).unwrap();
    let settings = test_settings(64);
    let pending = Pending::new(settings.max_queue_size, metrics.clone());
    let provider = provider_with_exporter(exporter.clone(), &settings, pending);
    let telemetry = Telemetry {
        tracer: Some(provider.tracer(SCOPE)),
        server_address: Some("account.example".to_owned()),
        server_port: Some(443),
    };
    (telemetry, provider, exporter, metrics)
}

fn allowed_record() -> AuditRecord {
    AuditRecord {
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600),
        principal: Some(AuditPrincipal::new(Arc::new(Principal {
            issuer: "https://issuer.example".to_owned(),
            subject: "alice".to_owned(),
            ..Principal::default()
        }))),
        operation: Some("read_item"),
        resource: Some("dbs/shop/colls/orders/docs/o-1".to_owned()),
        database: Some("shop".to_owned()),
        container: Some("orders".to_owned()),
        partition_key: Some("[\"c-1\"]".to_owned()),
        decision: "allow",
        rule: Some("readers".to_owned()),
        reason: Some("rule readers allows read_item".to_owned()),
        status: 200,
        substatus: Some(0),
        request_charge: Some(1.25),
        activity_id: Some("a1b2".to_owned()),
        upstream_duration_ms: Some(3.5),
        method: Some(http::Method::GET),
        path: "/dbs/shop/colls/orders/docs/o-1".to_owned(),
        client_address: Some("127.0.0.1:50000".into()),
        completed: true,
        ..AuditRecord::default()
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn finished_spans(provider: &SdkTracerProvider, exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

#[test]
fn span_carries_record_attributes() {
    let (telemetry, provider, exporter, metrics) = in_memory();
    let started = SystemTime::now();
    let span = telemetry
        .start_span(&HeaderMap::new(), "GET", started)
        .unwrap();
    span.end(&allowed_record(), started + Duration::from_millis(7));

    let spans = finished_spans(&provider, &exporter);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "read_item shop.orders");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(span.start_time, started);
    assert_eq!(span.end_time, started + Duration::from_millis(7));
    let expected: [(&str, Value); 20] = [
        ("db.system.name", "azure.cosmosdb".into()),
        ("db.namespace", "shop".into()),
        ("db.collection.name", "orders".into()),
        ("db.operation.name", "read_item".into()),
        ("http.request.method", "GET".into()),
        ("http.response.status_code", 200_i64.into()),
        ("enduser.id", "alice".into()),
        ("client.address", "127.0.0.1".into()),
        ("client.port", 50000_i64.into()),
        ("server.address", "account.example".into()),
        ("cosmoguard.issuer", "https://issuer.example".into()),
        ("cosmoguard.subject", "alice".into()),
        ("cosmoguard.decision", "allow".into()),
        ("cosmoguard.rule_id", "readers".into()),
        ("cosmoguard.partition_key", "[\"c-1\"]".into()),
        ("cosmoguard.request_charge", 1.25.into()),
        ("azure.cosmosdb.request.charge", 1.25.into()),
        ("cosmoguard.activity_id", "a1b2".into()),
        ("cosmoguard.substatus", 0_i64.into()),
        ("cosmoguard.upstream_duration_ms", 3.5.into()),
    ];
    for (key, value) in expected {
        assert_eq!(attribute(span, key), Some(&value), "attribute {key}");
    }
    assert!(attribute(span, "cosmoguard.reason").is_some());
    assert_eq!(metrics.exported(), 1);
}

#[test]
fn server_error_sets_error_status() {
    let mut record = allowed_record();
    record.status = 502;
    record.decision = "error";
    record.reason = Some("upstream_unavailable".to_owned());
    assert_eq!(
        attributes::span_status(&record),
        Status::error("upstream_unavailable")
    );
    let attributes = attributes::span_attributes(&record);
    assert!(attributes.contains(&KeyValue::new("error.type", "upstream_unavailable")));
}

#[test]
fn client_error_leaves_status_unset() {
    let mut record = allowed_record();
    record.status = 403;
    record.decision = "deny";
    assert_eq!(attributes::span_status(&record), Status::Unset);
    let has_error_type = attributes::span_attributes(&record)
        .iter()
        .any(|kv| kv.key.as_str() == "error.type");
    assert!(!has_error_type);
}

#[test]
fn unclassified_request_is_named_by_method() {
    let record = AuditRecord {
        method: Some(http::Method::POST),
        status: 401,
        decision: "unauthenticated",
        ..AuditRecord::default()
    };
    assert_eq!(attributes::span_name(&record), "POST");
    let keys: Vec<String> = attributes::span_attributes(&record)
        .iter()
        .map(|kv| kv.key.to_string())
        .collect();
    assert!(!keys.contains(&"enduser.id".to_owned()));
    assert!(!keys.contains(&"db.namespace".to_owned()));
}

#[test]
fn span_is_child_of_incoming_traceparent() {
    let (telemetry, provider, exporter, _metrics) = in_memory();
    let mut headers = HeaderMap::new();
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    headers.insert("traceparent", traceparent.parse().unwrap());
    headers.insert("tracestate", "vendor=value".parse().unwrap());

    let span = telemetry
        .start_span(&headers, "GET", SystemTime::now())
        .unwrap();
    let mut upstream = HeaderMap::new();
    span.inject(&mut upstream);
    span.end(&allowed_record(), SystemTime::now());

    let spans = finished_spans(&provider, &exporter);
    let span = &spans[0];
    assert_eq!(span.span_context.trace_id().to_string(), PARENT_TRACE);
    assert_eq!(span.parent_span_id.to_string(), PARENT_SPAN);

    let sent = upstream.get("traceparent").unwrap().to_str().unwrap();
    let own_span = span.span_context.span_id().to_string();
    assert_eq!(sent, format!("00-{PARENT_TRACE}-{own_span}-01"));
    assert_eq!(upstream.get("tracestate").unwrap(), "vendor=value");
}

#[test]
fn unsampled_parent_is_still_recorded() {
    let (telemetry, provider, exporter, _metrics) = in_memory();
    let mut headers = HeaderMap::new();
    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-00");
    headers.insert("traceparent", traceparent.parse().unwrap());
    let span = telemetry
        .start_span(&headers, "GET", SystemTime::now())
        .unwrap();
    span.end(&allowed_record(), SystemTime::now());
    assert_eq!(finished_spans(&provider, &exporter).len(), 1);
}

#[test]
fn span_without_traceparent_starts_a_trace() {
    let (telemetry, provider, exporter, _metrics) = in_memory();
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", "garbage".parse().unwrap());
    let span = telemetry
        .start_span(&headers, "GET", SystemTime::now())
        .unwrap();
    span.end(&allowed_record(), SystemTime::now());
    let spans = finished_spans(&provider, &exporter);
    assert_ne!(spans[0].span_context.trace_id(), TraceId::INVALID);
    assert_ne!(spans[0].span_context.trace_id().to_string(), PARENT_TRACE);
    assert_eq!(
        spans[0].parent_span_id,
        opentelemetry::trace::SpanId::INVALID
    );
}

#[test]
fn disabled_telemetry_starts_no_span() {
    let telemetry = Telemetry::disabled();
    assert!(!telemetry.is_enabled());
    assert!(
        telemetry
            .start_span(&HeaderMap::new(), "GET", SystemTime::now())
            .is_none()
    );
}

#[test]
fn full_queue_counts_dropped_spans() {
    let metrics = SpanMetrics::register(&Registry::new()).unwrap();
    let pending = Pending::new(2, metrics.clone());
    assert!(pending.try_acquire());
    assert!(pending.try_acquire());
    assert!(!pending.try_acquire());
    assert_eq!(metrics.dropped("queue_full"), 1);
    pending.settle(2, true);
    assert!(pending.try_acquire());
    assert_eq!(metrics.exported(), 2);
}

/// An exporter whose collector always rejects the batch.
#[derive(Debug)]
struct RejectingExporter;

impl SpanExporter for RejectingExporter {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Err(OTelSdkError::InternalFailure(
            "collector unavailable".to_owned(),
        ))
    }
}

#[test]
fn failed_export_counts_dropped_spans() {
    let metrics = SpanMetrics::register(&Registry::new()).unwrap();
    let settings = test_settings(8);
    let pending = Pending::new(settings.max_queue_size, metrics.clone());
    let provider = provider_with_exporter(RejectingExporter, &settings, pending);
    let telemetry = Telemetry {
        tracer: Some(provider.tracer(SCOPE)),
        ..Telemetry::default()
    };
    for _ in 0..3 {
        let span = telemetry
            .start_span(&HeaderMap::new(), "GET", SystemTime::now())
            .unwrap();
        span.end(&allowed_record(), SystemTime::now());
    }
    let _ = provider.force_flush();
    assert_eq!(metrics.dropped("export_failed"), 3);
    assert_eq!(metrics.exported(), 0);
}

/// Resolves with the configuration directory `/etc/cosmoguard`.
fn resolve(
    config: Option<&TelemetryConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ExportSettings>, String> {
    settings::resolve(config, Path::new("/etc/cosmoguard"), env)
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn settings_off_without_endpoint() {
    let env = env_of(&[("OTEL_SERVICE_NAME", "x")]);
    assert_eq!(resolve(None, &env).unwrap(), None);
    let config = TelemetryConfig::default();
    assert_eq!(resolve(Some(&config), &env).unwrap(), None);
}

#[test]
fn settings_from_environment() {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x-tenant=t1"),
        ("OTEL_SERVICE_NAME", "edge-proxy"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ]);
    let settings = resolve(None, &env).unwrap().unwrap();
    assert_eq!(settings.protocol, Protocol::HttpProtobuf);
    assert_eq!(settings.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(
        settings.headers,
        vec![
            ("api-key".to_owned(), "a b".to_owned()),
            ("x-tenant".to_owned(), "t1".to_owned())
        ]
    );
    assert_eq!(settings.service_name, "edge-proxy");
    assert_eq!(settings.timeout, Duration::from_millis(2500));
}

#[test]
fn settings_signal_endpoint_used_as_is() {
    let env = env_of(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9999"),
    ]);
    let settings = resolve(None, &env).unwrap().unwrap();
    assert_eq!(settings.endpoint, "http://127.0.0.1:4318/custom");
}

#[test]
fn settings_config_wins_over_environment() {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=from-env"),
        ("OTEL_SERVICE_NAME", "from-env"),
    ]);
    let mut config = TelemetryConfig {
        endpoint: Some("http://127.0.0.1:4317".to_owned()),
        protocol: Some("grpc".to_owned()),
        service_name: Some("from-config".to_owned()),
        ..TelemetryConfig::default()
    };
    config
        .headers
        .insert("api-key".to_owned(), "from-config".to_owned());
    let settings = resolve(Some(&config), &env).unwrap().unwrap();
    assert_eq!(settings.protocol, Protocol::Grpc);
    assert_eq!(settings.endpoint, "http://127.0.0.1:4317");
    assert_eq!(
        settings.headers,
        vec![("api-key".to_owned(), "from-config".to_owned())]
    );
    assert_eq!(settings.service_name, "from-config");
}

#[test]
fn settings_disabled_switches() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    let off = TelemetryConfig {
        enabled: false,
        ..TelemetryConfig::default()
    };
    assert_eq!(resolve(Some(&off), &env_of(&[endpoint])).unwrap(), None);
    let sdk_disabled = env_of(&[endpoint, ("OTEL_SDK_DISABLED", "true")]);
    assert_eq!(resolve(None, &sdk_disabled).unwrap(), None);
    let no_exporter = env_of(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]);
    assert_eq!(resolve(None, &no_exporter).unwrap(), None);
}

#[test]
fn settings_reject_bad_values() {
    let cases = [
        vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://collector.example:4318",
        )],
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5s"),
        ],
    ];
    for pairs in cases {
        let result = resolve(None, &env_of(&pairs));
        assert!(result.is_err(), "{pairs:?} gave {result:?}");
    }
}

#[test]
fn settings_debug_hides_header_values() {
    let mut settings = test_settings(1);
    settings
        .headers
        .push(("api-key".to_owned(), "s3cret".to_owned()));
    let text = format!("{settings:?}");
    assert!(text.contains("api-key"));
    assert!(!text.contains("s3cret"));
}

#[test]
fn stamp_digest_matches_hmac_sha256() {
    // Computed independently: hmac.new(b"audit-key", b"alice", hashlib.sha256).hexdigest()[:16]
    let stamp = SubjectStamp::new(b"audit-key").unwrap();
    assert_eq!(stamp.digest("alice"), "0826c5fe1cfbaaa0");
    assert_ne!(stamp.digest("bob"), stamp.digest("alice"));
}

#[test]
fn stamp_appends_to_user_agent() {
    let stamp = SubjectStamp::new(b"audit-key").unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        "azsdk-python-cosmos/4.17.0".parse().unwrap(),
    );
    let digest = stamp.apply(&mut headers, "alice");
    assert_eq!(digest, "0826c5fe1cfbaaa0");
    assert_eq!(
        headers.get(http::header::USER_AGENT).unwrap(),
        "azsdk-python-cosmos/4.17.0 cosmoguard-subject/0826c5fe1cfbaaa0"
    );
}

#[test]
fn stamp_sets_missing_user_agent() {
    let stamp = SubjectStamp::new(b"audit-key").unwrap();
    let mut headers = HeaderMap::new();
    stamp.apply(&mut headers, "alice");
    assert_eq!(
        headers.get(http::header::USER_AGENT).unwrap(),
        "cosmoguard-subject/0826c5fe1cfbaaa0"
    );
}

#[test]
fn stamp_rejects_empty_key_and_hides_key() {
    assert!(SubjectStamp::new(b"").is_err());
    let stamp = SubjectStamp::new(b"audit-key").unwrap();
    assert!(!format!("{stamp:?}").contains("audit-key"));
}

#[test]
fn stamp_key_file_is_trimmed() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("hmac.key");
    std::fs::write(&path, "audit-key\n").unwrap();
    let stamp = SubjectStamp::from_file(&path).unwrap();
    assert_eq!(stamp.digest("alice"), "0826c5fe1cfbaaa0");
    assert!(SubjectStamp::from_file(&directory.path().join("missing")).is_err());
}

const HTTPS_ENDPOINT: (&str, &str) = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "https://collector.example:4318",
);

fn tls_file(key: &'static str, path: &str) -> TlsFile {
    TlsFile {
        key,
        path: PathBuf::from(path),
    }
}

fn spanned(path: &str) -> Option<Spanned<PathBuf>> {
    Some(Spanned::new(0..0, PathBuf::from(path)))
}

fn resolved_tls(config: Option<&TelemetryConfig>, pairs: &[(&str, &str)]) -> TlsFiles {
    let settings = resolve(config, &env_of(pairs)).unwrap().unwrap();
    settings.tls.expect("an https endpoint gets TLS settings")
}

fn resolve_error(config: Option<&TelemetryConfig>, pairs: &[(&str, &str)]) -> String {
    resolve(config, &env_of(pairs)).unwrap_err()
}

#[test]
fn settings_https_endpoint_uses_system_roots() {
    let settings = resolve(None, &env_of(&[HTTPS_ENDPOINT])).unwrap().unwrap();
    assert_eq!(
        settings.endpoint,
        "https://collector.example:4318/v1/traces"
    );
    assert_eq!(settings.tls, Some(TlsFiles::default()));

    let plain = resolve(
        None,
        &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(plain.tls, None);
}

#[test]
fn settings_tls_files_from_environment() {
    let tls = resolved_tls(
        None,
        &[
            HTTPS_ENDPOINT,
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/run/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/run/client-key.pem"),
        ],
    );
    assert_eq!(
        tls.ca_file,
        Some(tls_file("OTEL_EXPORTER_OTLP_CERTIFICATE", "ca.pem")),
        "a relative path from the environment stays relative to the working directory"
    );
    assert_eq!(
        tls.client,
        Some(ClientFiles {
            certificate: tls_file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/run/client.pem"),
            key: tls_file("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/run/client-key.pem"),
        })
    );
}

#[test]
fn settings_traces_tls_variables_win() {
    let tls = resolved_tls(
        None,
        &[
            HTTPS_ENDPOINT,
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "/generic/client.pem",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "/traces/client.pem",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/generic/client-key.pem"),
        ],
    );
    assert_eq!(
        tls.ca_file,
        Some(tls_file(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "/traces/ca.pem"
        ))
    );
    let client = tls.client.unwrap();
    assert_eq!(
        client.certificate,
        tls_file(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "/traces/client.pem"
        )
    );
    assert_eq!(
        client.key,
        tls_file("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/generic/client-key.pem"),
        "each variable falls back to the generic one on its own"
    );
}

#[test]
fn settings_tls_config_wins_over_environment() {
    let config = TelemetryConfig {
        endpoint: Some("https://collector.example:4317".to_owned()),
        ca_file: spanned("pki/ca.pem"),
        client_certificate_file: spanned("/abs/client.pem"),
        client_key_file: spanned("pki/client-key.pem"),
        ..TelemetryConfig::default()
    };
    let tls = resolved_tls(
        Some(&config),
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/env/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/env/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/env/client-key.pem"),
        ],
    );
    assert_eq!(
        tls.ca_file,
        Some(tls_file("telemetry.ca_file", "/etc/cosmoguard/pki/ca.pem"))
    );
    assert_eq!(
        tls.client,
        Some(ClientFiles {
            certificate: tls_file("telemetry.client_certificate_file", "/abs/client.pem"),
            key: tls_file(
                "telemetry.client_key_file",
                "/etc/cosmoguard/pki/client-key.pem"
            ),
        })
    );
}

#[test]
fn settings_client_pair_comes_from_one_source() {
    let config = TelemetryConfig {
        client_certificate_file: spanned("client.pem"),
        ..TelemetryConfig::default()
    };
    let error = resolve_error(
        Some(&config),
        &[
            HTTPS_ENDPOINT,
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/env/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/env/client-key.pem"),
        ],
    );
    assert!(
        error.starts_with("telemetry.client_certificate_file: "),
        "{error}"
    );
    assert!(error.contains("set telemetry.client_key_file"), "{error}");
}

#[test]
fn settings_reject_half_client_pair() {
    let certificate_only = TelemetryConfig {
        client_certificate_file: spanned("client.pem"),
        ..TelemetryConfig::default()
    };
    let key_only = TelemetryConfig {
        client_key_file: spanned("client-key.pem"),
        ..TelemetryConfig::default()
    };
    let cases = [
        (
            Some(&certificate_only),
            vec![HTTPS_ENDPOINT],
            "telemetry.client_certificate_file",
            "telemetry.client_key_file",
        ),
        (
            Some(&key_only),
            vec![HTTPS_ENDPOINT],
            "telemetry.client_key_file",
            "telemetry.client_certificate_file",
        ),
        (
            None,
            vec![
                HTTPS_ENDPOINT,
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "c.pem"),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ),
        (
            None,
            vec![
                HTTPS_ENDPOINT,
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "k.pem"),
            ],
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        ),
    ];
    for (config, pairs, present, missing) in cases {
        let error = resolve_error(config, &pairs);
        assert!(error.starts_with(&format!("{present}: ")), "{error}");
        assert!(error.contains(&format!("set {missing} as well")), "{error}");
    }
}

#[test]
fn settings_reject_tls_files_for_http() {
    let error = resolve_error(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/run/ca.pem"),
        ],
    );
    assert!(
        error.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: "),
        "{error}"
    );
    assert!(
        error.contains("http://127.0.0.1:4318/v1/traces is plain http"),
        "{error}"
    );
    assert!(error.contains("use an https endpoint"), "{error}");

    let config = TelemetryConfig {
        endpoint: Some("http://127.0.0.1:4317".to_owned()),
        protocol: Some("grpc".to_owned()),
        client_certificate_file: spanned("client.pem"),
        client_key_file: spanned("client-key.pem"),
        ..TelemetryConfig::default()
    };
    let error = resolve_error(Some(&config), &[]);
    assert!(
        error.starts_with("telemetry.client_certificate_file: "),
        "{error}"
    );
    assert!(
        error.contains("telemetry.endpoint http://127.0.0.1:4317"),
        "{error}"
    );
}

#[test]
fn settings_debug_shows_tls_paths_only() {
    let mut settings = test_settings(1);
    settings.tls = Some(TlsFiles {
        ca_file: Some(tls_file("telemetry.ca_file", "/pki/ca.pem")),
        client: None,
    });
    assert!(format!("{settings:?}").contains("/pki/ca.pem"));
}

/// A CA, a collector certificate it issued, and a client certificate with its key, as PEM
/// files in a fresh directory.
struct TestPki {
    directory: tempfile::TempDir,
}

impl TestPki {
    fn new() -> TestPki {
        let directory = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["test ca".to_owned()]).unwrap();
        let client = rcgen::generate_simple_self_signed(vec!["cosmoguard".to_owned()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        let files = [
            ("ca.pem", ca.cert.pem()),
            ("client.pem", client.cert.pem()),
            ("client-key.pem", client.signing_key.serialize_pem()),
            ("other-key.pem", other.signing_key.serialize_pem()),
            (
                "truncated.pem",
                "-----BEGIN CERTIFICATE-----\nMIIB\n".to_owned(),
            ),
            ("text.pem", "not a certificate\n".to_owned()),
        ];
        for (name, content) in files {
            std::fs::write(directory.path().join(name), content).unwrap();
        }
        TestPki { directory }
    }

    fn file(&self, key: &'static str, name: &str) -> TlsFile {
        TlsFile {
            key,
            path: self.directory.path().join(name),
        }
    }

    fn files(&self, ca: Option<&str>, client: Option<(&str, &str)>) -> TlsFiles {
        TlsFiles {
            ca_file: ca.map(|name| self.file("telemetry.ca_file", name)),
            client: client.map(|(certificate, key)| ClientFiles {
                certificate: self.file("telemetry.client_certificate_file", certificate),
                key: self.file("telemetry.client_key_file", key),
            }),
        }
    }

    fn path(&self, name: &str) -> String {
        self.directory.path().join(name).display().to_string()
    }
}

/// Loads `files` and returns the error's key and message.
fn tls_error(files: &TlsFiles) -> (&'static str, String) {
    match CollectorTls::load(files).unwrap_err() {
        CollectorTlsError::File { key, message } => (key, message),
        other => panic!("expected a file error, got {other}"),
    }
}

#[test]
fn tls_loads_ca_and_client_certificate() {
    let pki = TestPki::new();
    let tls =
        CollectorTls::load(&pki.files(Some("ca.pem"), Some(("client.pem", "client-key.pem"))))
            .unwrap();
    let text = format!("{tls:?}");
    assert!(text.contains("roots: 1"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let _grpc = tls.grpc_config();
    // The blocking client starts a runtime of its own, so it is built off the test thread.
    let client = std::thread::spawn(move || tls.http_client(Duration::from_secs(1)).map(drop));
    assert!(client.join().unwrap().is_ok());
}

#[test]
fn tls_rejects_unusable_files() {
    let pki = TestPki::new();
    let cases = [
        (
            pki.files(Some("missing.pem"), None),
            "telemetry.ca_file",
            format!("cannot read {}", pki.path("missing.pem")),
        ),
        (
            pki.files(Some("truncated.pem"), None),
            "telemetry.ca_file",
            format!("{} is not a valid PEM file", pki.path("truncated.pem")),
        ),
        (
            pki.files(Some("text.pem"), None),
            "telemetry.ca_file",
            format!("{} contains no PEM certificate", pki.path("text.pem")),
        ),
        (
            pki.files(Some("ca.pem"), Some(("client-key.pem", "client-key.pem"))),
            "telemetry.client_certificate_file",
            format!("{} contains no PEM certificate", pki.path("client-key.pem")),
        ),
        (
            pki.files(Some("ca.pem"), Some(("client.pem", "client.pem"))),
            "telemetry.client_key_file",
            format!("{} contains no PEM private key", pki.path("client.pem")),
        ),
        (
            pki.files(Some("ca.pem"), Some(("client.pem", "missing-key.pem"))),
            "telemetry.client_key_file",
            format!("cannot read {}", pki.path("missing-key.pem")),
        ),
        (
            pki.files(Some("ca.pem"), Some(("client.pem", "other-key.pem"))),
            "telemetry.client_key_file",
            format!(
                "{} is not the private key of the certificate {}",
                pki.path("other-key.pem"),
                pki.path("client.pem")
            ),
        ),
    ];
    for (files, expected_key, expected_message) in cases {
        let (key, message) = tls_error(&files);
        assert_eq!(key, expected_key, "{message}");
        assert!(message.contains(&expected_message), "{message}");
        assert!(
            message.contains("; set it to") || message.contains("; set the key"),
            "{message}"
        );
    }
}

#[test]
fn tls_error_never_shows_key_content() {
    let pki = TestPki::new();
    let key_pem = std::fs::read_to_string(pki.path("other-key.pem")).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    let files = pki.files(Some("ca.pem"), Some(("client.pem", "other-key.pem")));
    let error = CollectorTls::load(&files).unwrap_err().to_string();
    assert!(!error.contains(key_body), "{error}");
}

#[test]
fn tls_check_reads_files_on_request() {
    let pki = TestPki::new();
    let config = TelemetryConfig {
        endpoint: Some("https://collector.example:4317".to_owned()),
        ca_file: spanned("missing.pem"),
        ..TelemetryConfig::default()
    };
    assert_eq!(
        check_tls_config(&config, pki.directory.path(), false),
        Ok(())
    );
    let problem = check_tls_config(&config, pki.directory.path(), true).unwrap_err();
    assert_eq!(problem.key, Some("telemetry.ca_file"));
    assert!(
        problem.message.contains(&pki.path("missing.pem")),
        "{}",
        problem.message
    );

    let valid = TelemetryConfig {
        ca_file: spanned("ca.pem"),
        client_certificate_file: spanned("client.pem"),
        client_key_file: spanned("client-key.pem"),
        ..config.clone()
    };
    assert_eq!(check_tls_config(&valid, pki.directory.path(), true), Ok(()));
}

#[test]
fn tls_check_rejects_files_for_http_endpoint() {
    let config = TelemetryConfig {
        endpoint: Some("http://127.0.0.1:4318".to_owned()),
        ca_file: spanned("ca.pem"),
        ..TelemetryConfig::default()
    };
    let problem = check_tls_config(&config, Path::new("/etc/cosmoguard"), false).unwrap_err();
    assert_eq!(problem.key, None);
    assert!(
        problem.message.starts_with("telemetry.ca_file: "),
        "{}",
        problem.message
    );

    let off = TelemetryConfig {
        enabled: false,
        ..config
    };
    assert_eq!(
        check_tls_config(&off, Path::new("/etc/cosmoguard"), false),
        Ok(())
    );
}
