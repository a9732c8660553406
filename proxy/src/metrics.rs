//! Request metrics, registered once on the registry the admin listener serves.
//!
//! Label values come from bounded sets (operation names, decisions, status classes, an
//! allow-list of containers, error reasons), never from a subject, token or item id.

use std::collections::HashSet;
use std::sync::Arc;

use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The label value for a database or container outside the charge allow-list.
const OTHER: &str = "other";

/// Latency buckets in seconds: 250 µs to 60 s, dense where proxied Cosmos calls land.
const LATENCY_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    60.0,
];

/// The proxy's own request metrics. Clones share one set of handles, so each request's
/// clone costs one reference count.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    handles: Arc<Handles>,
}

#[derive(Clone, Debug)]
struct Handles {
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: Histogram,
    in_flight: IntGauge,
    request_charge: CounterVec,
    /// `database/container` pairs that get their own request-charge series.
    charge_containers: Arc<HashSet<String>>,
    upstream_errors: IntCounterVec,
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
        let request_charge = CounterVec::new(
            Opts::new(
                "cosmoguard_request_charge_total",
                "Request units the account charged (x-ms-request-charge), by database and \
                 container; containers outside metrics.charge_containers count as \"other\".",
            ),
            &["database", "container"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "cosmoguard_upstream_errors_total",
                "Requests that failed between the proxy and the account, by reason \
                 (upstream_unavailable, upstream_timeout, upstream_invalid_response, \
                 credential_unavailable).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(request_charge.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        let handles = Handles {
            requests,
            duration,
            upstream_duration,
            in_flight,
            request_charge,
            charge_containers: Arc::new(HashSet::new()),
            upstream_errors,
        };
        Ok(RequestMetrics {
            handles: Arc::new(handles),
        })
    }

    /// Gives each `database/container` in `containers` its own request-charge series.
    #[must_use]
    pub fn with_charge_containers(self, containers: &[String]) -> RequestMetrics {
        let handles = Handles {
            charge_containers: Arc::new(containers.iter().cloned().collect()),
            ..Handles::clone(&self.handles)
        };
        RequestMetrics {
            handles: Arc::new(handles),
        }
    }

    pub fn started(&self) {
        self.handles.in_flight.inc();
    }

    /// Records a finished request. `operation` is an operation name or `unknown`.
    pub fn finished(&self, operation: &str, decision: &str, status: u16, seconds: f64) {
        self.handles.in_flight.dec();
        self.handles
            .requests
            .with_label_values(&[operation, decision, status_class(status)])
            .inc();
        self.handles
            .duration
            .with_label_values(&[decision])
            .observe(seconds);
    }

    pub fn observe_upstream(&self, seconds: f64) {
        self.handles.upstream_duration.observe(seconds);
    }

    /// Adds a response's request charge, under its own labels only for an allow-listed
    /// container.
    pub fn add_request_charge(&self, database: Option<&str>, container: Option<&str>, charge: f64) {
        if !charge.is_finite() || charge < 0.0 {
            return;
        }
        let (database, container) = self.charge_labels(database, container);
        self.handles
            .request_charge
            .with_label_values(&[database, container])
            .inc_by(charge);
    }

    fn charge_labels<'a>(
        &self,
        database: Option<&'a str>,
        container: Option<&'a str>,
    ) -> (&'a str, &'a str) {
        let allowed = &self.handles.charge_containers;
        if let (Some(database), Some(container)) = (database, container)
            && !allowed.is_empty()
            && allowed.contains(&format!("{database}/{container}"))
        {
            return (database, container);
        }
        (OTHER, OTHER)
    }

    /// Counts a request that failed on the way to or from the account. `reason` is one
    /// of the fixed reasons of the proxy's error type.
    pub fn upstream_failed(&self, reason: &'static str) {
        self.handles
            .upstream_errors
            .with_label_values(&[reason])
            .inc();
    }
}

/// Registers the standard `process_*` metrics of this process: CPU seconds, resident and
/// virtual memory, open and maximum descriptors, threads and start time.
pub fn register_process_metrics(registry: &Registry) -> prometheus::Result<()> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))
}

/// Registers `cosmoguard_build_info`, a constant 1 labelled with the version.
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "cosmoguard_build_info",
            "Build information; the value is always 1.",
        ),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn charge_labels_bounded_by_allow_list() {
        let registry = Registry::new();
        let metrics = RequestMetrics::register(&registry)
            .unwrap()
            .with_charge_containers(&["shop/orders".to_owned()]);
        metrics.add_request_charge(Some("shop"), Some("orders"), 2.5);
        metrics.add_request_charge(Some("shop"), Some("orders"), 1.0);
        metrics.add_request_charge(Some("shop"), Some("carts"), 4.0);
        metrics.add_request_charge(Some("shop"), None, 1.0);
        metrics.add_request_charge(None, None, f64::NAN);

        let text = render(&registry);
        assert!(
            text.contains(
                r#"cosmoguard_request_charge_total{container="orders",database="shop"} 3.5"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"cosmoguard_request_charge_total{container="other",database="other"} 5"#
            ),
            "{text}"
        );
        assert!(!text.contains("carts"));
    }
}
