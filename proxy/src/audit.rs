//! The audit log: one JSON line per request, appended by a dedicated writer thread.
//!
//! The request path only queues a finished line; it never waits on the disk. When the
//! queue is full the record is dropped, counted and logged, so a stuck disk cannot stall
//! requests.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use prometheus::{IntCounter, Registry};
use serde::Serialize;

/// Records queued for the writer before new ones are dropped.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// The caller as the audit record names it.
#[derive(Clone, Debug, Serialize)]
pub struct AuditPrincipal {
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
}

/// One request's audit record.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditRecord {
    /// When the request arrived (RFC 3339, UTC).
    pub time: String,
    pub principal: Option<AuditPrincipal>,
    /// The operation name, such as `read_item`, when the request could be classified.
    pub operation: Option<String>,
    /// The data action the operation needs.
    pub action: Option<&'static str>,
    pub resource_type: Option<&'static str>,
    /// The resource link (`dbs/shop/colls/orders/docs/o-1`).
    pub resource: Option<String>,
    pub database: Option<String>,
    pub container: Option<String>,
    pub partition_key: Option<String>,
    /// `allow`, `deny`, `unauthenticated`, `invalid` or `error`.
    pub decision: &'static str,
    /// The id of the policy rule that decided.
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// The precise cause of a failure, for operators; callers never see it.
    pub error: Option<String>,
    pub status: u16,
    pub substatus: Option<u32>,
    pub request_charge: Option<f64>,
    pub activity_id: Option<String>,
    pub duration_ms: f64,
    pub upstream_duration_ms: Option<f64>,
    pub method: String,
    pub path: String,
    pub client_address: Option<String>,
    /// False when the response body was cut off (the caller or the account went away).
    pub completed: bool,
}

/// Formats a time for the `time` field.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Where audit records go.
#[derive(Debug)]
pub struct AuditSink {
    sender: Option<SyncSender<String>>,
    writer: Option<JoinHandle<()>>,
    dropped: IntCounter,
    written: IntCounter,
}

impl AuditSink {
    /// Opens the sink: `-` is standard output, anything else a file appended to.
    pub fn open(target: &str, registry: &Registry) -> io::Result<AuditSink> {
        let output: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(Path::new(target))?)
        };
        let dropped = IntCounter::new(
            "cosmoguard_audit_records_dropped_total",
            "Audit records dropped because the writer queue was full or the write failed.",
        )
        .map_err(io::Error::other)?;
        let written = IntCounter::new(
            "cosmoguard_audit_records_written_total",
            "Audit records written to the audit log.",
        )
        .map_err(io::Error::other)?;
        registry.register(Box::new(dropped.clone())).map_err(io::Error::other)?;
        registry.register(Box::new(written.clone())).map_err(io::Error::other)?;

        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let writer_dropped = dropped.clone();
        let writer_written = written.clone();
        let writer = std::thread::Builder::new()
            .name("cosmoguard-audit".to_owned())
            .spawn(move || write_lines(receiver, output, &writer_written, &writer_dropped))?;
        Ok(AuditSink {
            sender: Some(sender),
            writer: Some(writer),
            dropped,
            written,
        })
    }

    /// Queues a record for writing without waiting.
    pub fn record(&self, record: &AuditRecord) {
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(error) => {
                tracing::error!(%error, "Failed to serialize an audit record");
                self.dropped.inc();
                return;
            }
        };
        let Some(sender) = &self.sender else { return };
        match sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.inc();
                tracing::warn!("Audit queue full; dropped an audit record");
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
                tracing::error!("Audit writer stopped; dropped an audit record");
            }
        }
    }

    /// The number of records written so far.
    pub fn written(&self) -> u64 {
        self.written.get()
    }

    /// Writes every queued record and stops the writer thread.
    pub fn close(&mut self) {
        self.sender = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("Audit writer thread panicked");
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        self.close();
    }
}

/// Writes each line whole, then flushes once the queue is empty, so lines reach the
/// file promptly without a system call per record under load.
fn write_lines(
    receiver: Receiver<String>,
    mut output: Box<dyn Write + Send>,
    written: &IntCounter,
    dropped: &IntCounter,
) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    while let Ok(first) = receiver.recv() {
        let mut count = 0;
        for line in std::iter::once(first).chain(receiver.try_iter()) {
            buffer.extend_from_slice(line.as_bytes());
            buffer.push(b'\n');
            count += 1;
            if buffer.len() >= 60 * 1024 {
                break;
            }
        }
        match output.write_all(&buffer).and_then(|()| output.flush()) {
            Ok(()) => written.inc_by(count),
            Err(error) => {
                dropped.inc_by(count);
                tracing::error!(%error, records = count, "Failed to write audit records");
            }
        }
        buffer.clear();
    }
}
