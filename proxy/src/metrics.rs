//! Request metrics, registered once on the registry the admin listener serves.
//!
//! Label values come from bounded sets (operation names, decisions, status classes), never
//! from a subject, token or item id.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Latency buckets in seconds: 250 µs to 60 s, dense where proxied Cosmos calls land.
const LATENCY_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 60.0,
];

/// The proxy's own request metrics.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: Histogram,
    in_flight: IntGauge,
}

impl RequestMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<RequestMetrics> {
        let requests = IntCounterVec::new(
            Opts::new(
                "cosmoguard_requests_total",
                "Requests handled, by Cosmos operation, decision and response status class.",
            ),
            &["operation", "decision", "status_class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "cosmoguard_request_duration_seconds",
                "Time from receiving a request to the end of its response body.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["decision"],
        )?;
        let upstream_duration = Histogram::with_opts(
            HistogramOpts::new(
                "cosmoguard_upstream_duration_seconds",
                "Time from sending a request to the account to receiving its response headers.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let in_flight = IntGauge::new(
            "cosmoguard_requests_in_flight",
            "Requests received whose response has not finished.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(RequestMetrics {
            requests,
            duration,
            upstream_duration,
            in_flight,
        })
    }

    pub fn started(&self) {
        self.in_flight.inc();
    }

    /// Records a finished request. `operation` is an operation name or `unknown`.
    pub fn finished(&self, operation: &str, decision: &str, status: u16, seconds: f64) {
        self.in_flight.dec();
        self.requests
            .with_label_values(&[operation, decision, status_class(status)])
            .inc();
        self.duration.with_label_values(&[decision]).observe(seconds);
    }

    pub fn observe_upstream(&self, seconds: f64) {
        self.upstream_duration.observe(seconds);
    }
}

/// Registers `cosmoguard_build_info`, a constant 1 labelled with the version.
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new("cosmoguard_build_info", "Build information; the value is always 1."),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Renders every metric of the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let encoder = prometheus::TextEncoder::new();
    encoder
        .encode_to_string(&registry.gather())
        .unwrap_or_else(|error| format!("# metrics encoding failed: {error}\n"))
}
