//! The audit log: one JSON line per request, appended by a dedicated writer thread.
//!
//! The request path only queues a finished line; it never waits on the disk. When the
//! queue is full the record is dropped, counted and logged, so a stuck disk cannot stall
//! requests.
//!
//! A file can rotate by size. Lines are written in batches of whole lines with one write
//! call per batch, and rotation happens only between batches, so no line is ever split
//! across two files.
//!
//! Under load the writer wakes on its own every [`BATCH_INTERVAL`] instead of being woken
//! per record, so a record reaches the file at most that much later. A busy proxy then
//! makes one write and no thread wake-up per batch, rather than one of each per request.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use cosmoguard_policy::Principal;
use http::Method;
use prometheus::{IntCounter, Registry};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// The room reserved for one serialized record. An allowed read in the benchmarks makes a
/// 768-byte line, so most lines fit without growing the buffer.
const LINE_CAPACITY: usize = 1024;

/// Records queued for the writer before new ones are dropped.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// How long the writer waits after a batch before it takes the next, so records that
/// arrive meanwhile share one write. An idle writer blocks on the queue instead, so the
/// first record after a quiet spell is written at once.
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// The largest batch of lines given to one write call, so that a burst reaches the disk
/// in steps and rotation can happen between them.
const MAX_BATCH_BYTES: usize = 60 * 1024;

/// The destination of the audit log and its rotation rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTarget {
    /// `-` for standard output, otherwise a file path.
    pub file: String,
    /// Rotate before the file would exceed this size. `None`: never rotate.
    pub max_file_bytes: Option<u64>,
    /// Rotated files kept (`file.1` is the newest).
    pub max_files: usize,
}

impl AuditTarget {
    /// Returns a target that writes to `file` without rotation.
    pub fn unrotated(file: &str) -> AuditTarget {
        AuditTarget {
            file: file.to_owned(),
            max_file_bytes: None,
            max_files: 0,
        }
    }
}

/// The caller as the audit record names it: the issuer, subject and display name of the
/// authenticated principal, which the record shares rather than copies.
#[derive(Clone, Debug)]
pub struct AuditPrincipal(Arc<Principal>);

impl AuditPrincipal {
    pub fn new(principal: Arc<Principal>) -> AuditPrincipal {
        AuditPrincipal(principal)
    }

    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    pub fn name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
}

impl Serialize for AuditPrincipal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("AuditPrincipal", 3)?;
        fields.serialize_field("issuer", self.issuer())?;
        fields.serialize_field("subject", self.subject())?;
        fields.serialize_field("name", &self.name())?;
        fields.end()
    }
}

/// One request's audit record.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRecord {
    /// When the request arrived, written as RFC 3339 in UTC with milliseconds.
    #[serde(serialize_with = "serialize_time")]
    pub time: SystemTime,
    pub principal: Option<AuditPrincipal>,
    /// The operation name, such as `read_item`, when the request could be classified.
    pub operation: Option<&'static str>,
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
    /// The request method, or none when the HTTP layer could not parse the request; the
    /// line then has `""`.
    #[serde(serialize_with = "serialize_method")]
    pub method: Option<Method>,
    pub path: String,
    /// The caller's address and port, formatted once per connection.
    #[serde(serialize_with = "serialize_shared_text")]
    pub client_address: Option<Arc<str>>,
    /// False when the response body was cut off (the caller or the account went away).
    pub completed: bool,
    /// The OpenTelemetry trace id of the request's span, when spans are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The ` cosmoguard-subject/` digest sent upstream in `User-Agent`, when stamping is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent_subject: Option<String>,
    /// For a high-change operation (throughput or container replace, container or
    /// database delete): each changed top-level field as `{"before": .., "after": ..}`.
    /// A delete lists every field of the resource as it was, with `after` null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<serde_json::Value>,
    /// The reason `changes` is missing for a high-change operation (the read before it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes_error: Option<String>,
}

impl Default for AuditRecord {
    fn default() -> AuditRecord {
        AuditRecord {
            time: SystemTime::UNIX_EPOCH,
            principal: None,
            operation: None,
            action: None,
            resource_type: None,
            resource: None,
            database: None,
            container: None,
            partition_key: None,
            decision: "",
            rule: None,
            reason: None,
            error: None,
            status: 0,
            substatus: None,
            request_charge: None,
            activity_id: None,
            duration_ms: 0.0,
            upstream_duration_ms: None,
            method: None,
            path: String::new(),
            client_address: None,
            completed: false,
            trace_id: None,
            user_agent_subject: None,
            changes: None,
            changes_error: None,
        }
    }
}

/// Writes the `time` field straight into the line, without an intermediate string.
fn serialize_time<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}

fn serialize_method<S: Serializer>(
    method: &Option<Method>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(method.as_ref().map_or("", Method::as_str))
}

fn serialize_shared_text<S: Serializer>(
    text: &Option<Arc<str>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    text.as_deref().serialize(serializer)
}

/// The destination of audit records: a file or standard output.
#[derive(Debug)]
pub struct AuditSink {
    sender: Option<SyncSender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    dropped: IntCounter,
    written: IntCounter,
}

impl AuditSink {
    /// Opens the sink: `-` is standard output, anything else a file appended to.
    pub fn open(target: &AuditTarget, registry: &Registry) -> io::Result<AuditSink> {
        let output = Output::open(target)?;
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
        registry
            .register(Box::new(dropped.clone()))
            .map_err(io::Error::other)?;
        registry
            .register(Box::new(written.clone()))
            .map_err(io::Error::other)?;

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
        let mut line = Vec::with_capacity(LINE_CAPACITY);
        if let Err(error) = serde_json::to_writer(&mut line, record) {
            tracing::error!(%error, "Failed to serialize an audit record");
            self.dropped.inc();
            return;
        }
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

    /// Returns the number of records written so far.
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

/// Writes queued lines in batches of whole lines, one write call per batch, and
/// flushes after each. After a batch the writer sleeps for [`BATCH_INTERVAL`] rather
/// than waiting on the queue: senders only wake a receiver that waits, so under load
/// they never make a system call.
fn write_lines(
    receiver: Receiver<Vec<u8>>,
    mut output: Output,
    written: &IntCounter,
    dropped: &IntCounter,
) {
    let mut buffer = Vec::with_capacity(MAX_BATCH_BYTES + 4096);
    let mut carried: Option<Vec<u8>> = None;
    loop {
        let first = match carried.take() {
            Some(line) => line,
            None => match receiver.recv() {
                Ok(line) => line,
                Err(_) => return,
            },
        };
        let limit = output.batch_limit();
        let mut count = 0;
        for line in std::iter::once(first).chain(receiver.try_iter()) {
            // A line that does not fit waits for the next batch, unless it is the first:
            // a single line larger than the limit is written alone.
            if count > 0 && buffer.len() + line.len() + 1 > limit {
                carried = Some(line);
                break;
            }
            buffer.extend_from_slice(&line);
            buffer.push(b'\n');
            count += 1;
            if buffer.len() >= limit {
                break;
            }
        }
        // A full batch means more lines wait, so the next batch follows at once.
        let filled = carried.is_some() || buffer.len() >= limit;
        match output.write_batch(&buffer) {
            Ok(()) => written.inc_by(count),
            Err(error) => {
                dropped.inc_by(count);
                tracing::error!(%error, records = count, "Failed to write audit records");
            }
        }
        buffer.clear();
        if !filled {
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
}

/// The writer's destination.
enum Output {
    Stdout(io::Stdout),
    File(RotatingFile),
}

impl Output {
    fn open(target: &AuditTarget) -> io::Result<Output> {
        if target.file == "-" {
            return Ok(Output::Stdout(io::stdout()));
        }
        Ok(Output::File(RotatingFile::open(target)?))
    }

    /// Returns the size of the next batch, small enough that a rotating file stays within
    /// its size bound.
    fn batch_limit(&self) -> usize {
        match self {
            Output::Stdout(_) => MAX_BATCH_BYTES,
            Output::File(file) => file.batch_limit(),
        }
    }

    fn write_batch(&mut self, batch: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(stdout) => {
                let mut locked = stdout.lock();
                locked.write_all(batch)?;
                locked.flush()
            }
            Output::File(file) => file.write_batch(batch),
        }
    }
}

/// An append-only file that rotates by size: `log` → `log.1` → `log.2` …, keeping
/// `max_files` rotated files.
struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: Option<u64>,
    max_files: usize,
}

impl RotatingFile {
    fn open(target: &AuditTarget) -> io::Result<RotatingFile> {
        let path = PathBuf::from(&target.file);
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file,
            size,
            max_bytes: target.max_file_bytes,
            max_files: target.max_files,
        })
    }

    /// Returns the room left in the current file, or the whole bound of a fresh file when
    /// the current one is full (it rotates before the next write).
    fn batch_limit(&self) -> usize {
        let Some(max_bytes) = self.max_bytes else {
            return MAX_BATCH_BYTES;
        };
        let room = max_bytes.saturating_sub(self.size);
        let room = if room == 0 { max_bytes } else { room };
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(MAX_BATCH_BYTES)
    }

    fn write_batch(&mut self, batch: &[u8]) -> io::Result<()> {
        let len = batch.len() as u64;
        if let Some(max_bytes) = self.max_bytes
            && self.size > 0
            && self.size + len > max_bytes
        {
            self.rotate()?;
        }
        // One write call per batch: an append-mode write of whole lines, so a reader
        // never sees a line cut between two files.
        self.file.write_all(batch)?;
        self.file.flush()?;
        self.size += len;
        Ok(())
    }

    /// Shifts `log.N-1` to `log.N` down to `log` to `log.1`, deleting the oldest, then
    /// reopens `log` empty.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let oldest = numbered(&self.path, self.max_files);
            if oldest.exists() {
                std::fs::remove_file(&oldest)?;
            }
            for index in (1..self.max_files).rev() {
                let from = numbered(&self.path, index);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, index + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        tracing::info!(audit.file = %self.path.display(), "Rotated the audit log");
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn numbered(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record_with_path(path: String) -> AuditRecord {
        AuditRecord {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600),
            decision: "allow",
            status: 200,
            method: Some(Method::GET),
            path,
            ..AuditRecord::default()
        }
    }

    #[test]
    fn shared_fields_serialize_as_text() {
        let principal = Principal {
            issuer: "https://issuer.example".to_owned(),
            subject: "alice".to_owned(),
            display_name: Some("Alice".to_owned()),
            ..Principal::default()
        };
        let record = AuditRecord {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_735_689_600_123),
            principal: Some(AuditPrincipal::new(Arc::new(principal))),
            operation: Some("read_item"),
            method: Some(Method::from_bytes(b"PURGE").unwrap()),
            client_address: Some("127.0.0.1:50000".into()),
            ..record_with_path("/dbs/d".to_owned())
        };
        let line: serde_json::Value = serde_json::to_value(&record).unwrap();
        assert_eq!(line["time"], "2025-01-01T00:00:00.123Z");
        assert_eq!(
            line["principal"],
            serde_json::json!({"issuer": "https://issuer.example", "subject": "alice", "name": "Alice"})
        );
        assert_eq!(line["operation"], "read_item");
        assert_eq!(line["method"], "PURGE");
        assert_eq!(line["client_address"], "127.0.0.1:50000");
        let unnamed = AuditRecord::default();
        let line: serde_json::Value = serde_json::to_value(&unnamed).unwrap();
        assert_eq!(line["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(line["method"], "");
        assert!(line["client_address"].is_null());
        assert!(line["principal"].is_null());
    }

    fn read_lines(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            path.display()
        );
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn rotation_keeps_lines_whole_and_files_bounded() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("audit.log");
        let target = AuditTarget {
            file: file.display().to_string(),
            max_file_bytes: Some(4096),
            max_files: 3,
        };
        let registry = Registry::new();
        let mut sink = AuditSink::open(&target, &registry).unwrap();
        for index in 0..200 {
            sink.record(&record_with_path(format!(
                "/dbs/shop/colls/orders/docs/item-{index:04}"
            )));
        }
        sink.close();

        let mut files = vec![file.clone()];
        files.extend((1..=3).map(|index| numbered(&file, index)));
        let mut paths_seen = Vec::new();
        for path in &files {
            let size = std::fs::metadata(path)
                .map(|metadata| metadata.len())
                .unwrap_or(0);
            assert!(size <= 4096, "{} is {size} bytes", path.display());
            for line in read_lines(path) {
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                paths_seen.push(value["path"].as_str().unwrap().to_owned());
            }
        }
        assert!(
            !numbered(&file, 4).exists(),
            "only max_files rotated files are kept"
        );
        assert!(
            numbered(&file, 3).exists(),
            "200 records fill more than four files"
        );
        // The newest records survive, in order, with none split or repeated.
        paths_seen.sort();
        paths_seen.dedup();
        let last = paths_seen.last().unwrap();
        assert_eq!(last, "/dbs/shop/colls/orders/docs/item-0199");
        assert_eq!(sink.written(), 200);
    }

    #[test]
    fn rotation_keeps_existing_file_size() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("audit.log");
        std::fs::write(&file, "x".repeat(4000) + "\n").unwrap();
        let target = AuditTarget {
            file: file.display().to_string(),
            max_file_bytes: Some(4096),
            max_files: 1,
        };
        let mut sink = AuditSink::open(&target, &Registry::new()).unwrap();
        sink.record(&record_with_path("/dbs/shop".to_owned()));
        sink.close();
        assert_eq!(
            read_lines(&numbered(&file, 1)).len(),
            1,
            "the old content moved aside"
        );
        let current = read_lines(&file);
        assert_eq!(current.len(), 1);
        assert!(current[0].contains("/dbs/shop"));
    }

    #[test]
    fn unrotated_file_appends() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("audit.log");
        let target = AuditTarget::unrotated(&file.display().to_string());
        for _ in 0..2 {
            let mut sink = AuditSink::open(&target, &Registry::new()).unwrap();
            sink.record(&record_with_path("/".to_owned()));
            sink.close();
        }
        assert_eq!(read_lines(&file).len(), 2);
        assert!(!numbered(&file, 1).exists());
    }

    #[test]
    fn record_omits_unset_optional_fields() {
        let line = serde_json::to_string(&record_with_path("/".to_owned())).unwrap();
        assert!(!line.contains("changes"));
        assert!(!line.contains("trace_id"));
        assert!(!line.contains("user_agent_subject"));
    }
}
