//! A load driver with HDR histograms: open loop (a constant request rate, for latency
//! below saturation) or closed loop (each connection sends its next request when the
//! previous response ends).
//!
//! In open loop, request `k` is due at `start + k / rate`. Tokio's timer wakes in 1 ms
//! steps, so requests leave in small bursts. Two latencies are kept: from the moment the
//! request was written (`service`), and from the moment it was due (`corrected`), which
//! also counts time spent waiting for a free connection or a late timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Empty};
use serde::Serialize;

use crate::client::{self, Sender, Target};

/// The requests to send, the load shape and the duration.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub target: Target,
    pub method: Method,
    /// Path and query, for example `/dbs/bench/colls/items/docs/doc1`.
    pub path: String,
    pub host: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Bearer tokens, one per request in order. The run ends when they run out, so no
    /// token is sent twice. Without tokens, no `Authorization` header is sent.
    pub tokens: Option<Arc<Vec<String>>>,
    pub connections: usize,
    /// Requests per second; `None` is closed loop.
    pub rate: Option<f64>,
    pub duration: Duration,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// The outcome of one run, printed as JSON.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub requests: u64,
    pub ok: u64,
    pub non_success: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub offered_rate: Option<f64>,
    /// Requests written more than 1 ms after they were due.
    pub late_sends: u64,
    pub service_us: Percentiles,
    pub corrected_us: Percentiles,
}

struct WorkerResult {
    service: Histogram<u64>,
    corrected: Histogram<u64>,
    ok: u64,
    non_success: u64,
    errors: u64,
    late_sends: u64,
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds from 1 ns to 100 s, three significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid bounds"))
}

fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    let micros = |nanos: u64| nanos as f64 / 1000.0;
    Percentiles {
        p50: micros(histogram.value_at_quantile(0.50)),
        p90: micros(histogram.value_at_quantile(0.90)),
        p99: micros(histogram.value_at_quantile(0.99)),
        p999: micros(histogram.value_at_quantile(0.999)),
        max: micros(histogram.max()),
        mean: histogram.mean() / 1000.0,
    }
}

/// Runs the load and returns its report. Connections are opened before the clock starts.
pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    let mut senders = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        senders.push(client::connect::<Empty<Bytes>>(&options.target).await?);
    }
    let options = Arc::new(options);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(5);
    let end = start + options.duration;

    let mut tasks = Vec::with_capacity(senders.len());
    for sender in senders {
        let options = Arc::clone(&options);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(worker(sender, options, next, start, end)));
    }
    let mut service = new_histogram();
    let mut corrected = new_histogram();
    let (mut ok, mut non_success, mut errors, mut late_sends) = (0, 0, 0, 0);
    for task in tasks {
        let result = task.await?;
        service.add(&result.service)?;
        corrected.add(&result.corrected)?;
        ok += result.ok;
        non_success += result.non_success;
        errors += result.errors;
        late_sends += result.late_sends;
    }
    // Ends early when the tokens run out.
    let seconds = Instant::now()
        .min(end)
        .duration_since(start)
        .as_secs_f64()
        .max(1e-9);
    let requests = ok + non_success + errors;
    Ok(LoadReport {
        requests,
        ok,
        non_success,
        errors,
        seconds,
        requests_per_second: requests as f64 / seconds,
        offered_rate: options.rate,
        late_sends,
        service_us: percentiles(&service),
        corrected_us: percentiles(&corrected),
    })
}

fn build_request(options: &LoadOptions, index: u64) -> Option<Request<Empty<Bytes>>> {
    let mut builder = Request::builder()
        .method(options.method.clone())
        .uri(options.path.as_str())
        .header(http::header::HOST, options.host.as_str());
    for (name, value) in &options.headers {
        builder = builder.header(name, value);
    }
    if let Some(tokens) = &options.tokens {
        let token = tokens.get(usize::try_from(index).ok()?)?;
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Empty::new()).ok()
}

async fn worker(
    mut sender: Sender<Empty<Bytes>>,
    options: Arc<LoadOptions>,
    next: Arc<AtomicU64>,
    start: Instant,
    end: Instant,
) -> WorkerResult {
    let mut result = WorkerResult {
        service: new_histogram(),
        corrected: new_histogram(),
        ok: 0,
        non_success: 0,
        errors: 0,
        late_sends: 0,
    };
    let interval = options.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    tokio::time::sleep_until(start.into()).await;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let due = match interval {
            Some(interval) => start + interval.mul_f64(index as f64),
            None => Instant::now(),
        };
        if due >= end || Instant::now() >= end {
            break;
        }
        let Some(request) = build_request(&options, index) else {
            break;
        };
        if interval.is_some() {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        if sent.duration_since(due) > Duration::from_millis(1) {
            result.late_sends += 1;
        }
        match sender.send(request).await {
            Ok(response) => {
                let success = response.status().is_success();
                let drained = response.into_body().collect().await.is_ok();
                let done = Instant::now();
                record(&mut result.service, done.duration_since(sent));
                record(&mut result.corrected, done.duration_since(due));
                match (success, drained) {
                    (true, true) => result.ok += 1,
                    (false, true) => result.non_success += 1,
                    _ => result.errors += 1,
                }
            }
            Err(_) => {
                result.errors += 1;
                match client::connect(&options.target).await {
                    Ok(new_sender) => sender = new_sender,
                    Err(_) => break,
                }
            }
        }
    }
    result
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
    histogram.saturating_record(nanos);
}
