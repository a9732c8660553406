//! The span pipeline between a finished span and the collector: the SDK's batch span
//! processor, wrapped so that every span is either counted as exported or counted as
//! dropped with a reason.
//!
//! The SDK's processor drops spans silently when its queue is full, so the wrapper keeps
//! its own count of spans not yet settled and drops (and counts) a span before the SDK
//! would have to. The request path only ever pushes into a bounded channel.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// The counters of the span pipeline, registered once.
#[derive(Clone, Debug)]
pub struct SpanMetrics {
    exported: IntCounter,
    dropped: IntCounterVec,
}

impl SpanMetrics {
    /// Registers `cosmoguard_spans_exported_total` and `cosmoguard_spans_dropped_total`.
    pub fn register(registry: &Registry) -> prometheus::Result<SpanMetrics> {
        let exported = IntCounter::new(
            "cosmoguard_spans_exported_total",
            "Request spans the OTLP collector accepted.",
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "cosmoguard_spans_dropped_total",
                "Request spans dropped: queue_full when the export queue was full, \
                 export_failed when the collector rejected or did not answer an export.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(exported.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        for reason in ["queue_full", "export_failed"] {
            dropped.with_label_values(&[reason]);
        }
        Ok(SpanMetrics { exported, dropped })
    }

    pub fn exported(&self) -> u64 {
        self.exported.get()
    }

    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped.with_label_values(&[reason]).get()
    }
}

/// Spans handed to the SDK processor and not yet exported or dropped.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    count: Arc<AtomicUsize>,
    capacity: usize,
    metrics: SpanMetrics,
}

impl Pending {
    pub(crate) fn new(capacity: usize, metrics: SpanMetrics) -> Pending {
        Pending {
            count: Arc::new(AtomicUsize::new(0)),
            capacity,
            metrics,
        }
    }

    /// Takes a place for one span, or counts it as dropped when none is free.
    pub(crate) fn try_acquire(&self) -> bool {
        let taken = self.count.fetch_add(1, Ordering::AcqRel);
        if taken < self.capacity {
            return true;
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.metrics
            .dropped
            .with_label_values(&["queue_full"])
            .inc();
        false
    }

    pub(crate) fn settle(&self, spans: usize, exported: bool) {
        self.count.fetch_sub(spans, Ordering::AcqRel);
        if exported {
            self.metrics.exported.inc_by(spans as u64);
        } else {
            self.metrics
                .dropped
                .with_label_values(&["export_failed"])
                .inc_by(spans as u64);
        }
    }
}

/// The SDK's batch processor behind a bounded count of unsettled spans.
#[derive(Debug)]
pub(crate) struct BoundedProcessor {
    inner: BatchSpanProcessor,
    pending: Pending,
}

impl BoundedProcessor {
    pub(crate) fn new(inner: BatchSpanProcessor, pending: Pending) -> BoundedProcessor {
        BoundedProcessor { inner, pending }
    }
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, span: &mut Span, context: &Context) {
        self.inner.on_start(span, context);
    }

    fn on_end(&self, span: SpanData) {
        if self.pending.try_acquire() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// An exporter that settles each batch in [`Pending`] once the inner exporter returns,
/// or as failed when the export is abandoned (its future dropped on a timeout).
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    pending: Pending,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, pending: Pending) -> CountingExporter<E> {
        CountingExporter { inner, pending }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let mut settlement = Settlement {
            pending: self.pending.clone(),
            spans: batch.len(),
            settled: false,
        };
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            if let Err(error) = &result {
                tracing::warn!(%error, spans = settlement.spans, "Failed to export request spans");
            }
            settlement.settle(result.is_ok());
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One batch's outcome, settled exactly once.
struct Settlement {
    pending: Pending,
    spans: usize,
    settled: bool,
}

impl Settlement {
    fn settle(&mut self, exported: bool) {
        if !self.settled {
            self.settled = true;
            self.pending.settle(self.spans, exported);
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.settle(false);
    }
}
