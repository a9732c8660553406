//! The end of a request: its audit record, metrics, span and log line, emitted once when
//! the response body ends or is dropped.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cosmoguard_policy::{Decision, Principal, data_action};
use http::{HeaderMap, HeaderName, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::audit::{AuditPrincipal, AuditRecord, AuditSink};
use crate::body::{BoxError, ProxyBody};
use crate::classify::Classified;
use crate::error::{Fault, ProxyError};
use crate::metrics::RequestMetrics;
use crate::telemetry::{RequestSpan, SubjectStamp};

use super::{Client, Proxy};

/// The status recorded when the caller went away before a response was sent (the
/// convention nginx started).
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request's audit record under construction. Emitted exactly once, by [`Drop`] at
/// the latest, so a cancelled request is recorded too.
#[derive(Debug)]
pub struct Finish {
    audit: Arc<AuditSink>,
    metrics: RequestMetrics,
    record: AuditRecord,
    started: Instant,
    started_at: SystemTime,
    operation_label: &'static str,
    /// The request's span, when spans are exported.
    span: Option<RequestSpan>,
    emitted: bool,
}

impl Finish {
    pub(super) fn start<B>(proxy: &Proxy, request: &Request<B>, client: Option<&Client>) -> Finish {
        proxy.metrics.started();
        let started_at = SystemTime::now();
        let span =
            proxy
                .telemetry
                .start_span(request.headers(), request.method().as_str(), started_at);
        let record = AuditRecord {
            time: started_at,
            trace_id: span.as_ref().map(RequestSpan::trace_id),
            method: Some(request.method().clone()),
            path: request.uri().path().to_owned(),
            client_address: client.map(|client| Arc::clone(&client.text)),
            status: CLIENT_CLOSED_REQUEST,
            ..AuditRecord::default()
        };
        Finish {
            audit: Arc::clone(&proxy.audit),
            metrics: proxy.metrics.clone(),
            record,
            started: Instant::now(),
            started_at,
            operation_label: "unknown",
            span,
            emitted: false,
        }
    }

    pub(super) fn note_request(&mut self, classified: &Classified) {
        let request = &classified.request;
        self.operation_label = request.operation.name();
        self.record.operation = Some(self.operation_label);
        self.record.action = Some(data_action(request.operation));
        self.record.resource_type = Some(classified.signing_resource_type);
        self.record.resource = Some(request.resource_link.clone());
        self.record.database = request.database.clone();
        self.record.container = request.container.clone();
        self.record.partition_key = request.partition_key.as_ref().map(|key| key.raw.clone());
    }

    pub(super) fn note_principal(&mut self, principal: &Arc<Principal>) {
        self.record.principal = Some(AuditPrincipal::new(Arc::clone(principal)));
    }

    /// Records the decision, keeping its rule id and reason.
    pub(super) fn note_decision(&mut self, decision: Decision) {
        self.record.decision = if decision.is_allowed() {
            "allow"
        } else {
            "deny"
        };
        self.record.rule = decision.rule_id;
        self.record.reason = Some(decision.reason);
    }

    pub(super) fn note_upstream<B>(&mut self, response: &Response<B>, elapsed: Duration) {
        let headers = response.headers();
        self.record.substatus = header_number(headers, &SUBSTATUS);
        self.record.request_charge = header_number(headers, &REQUEST_CHARGE);
        self.record.activity_id = header_text(headers, &ACTIVITY_ID);
        self.record.upstream_duration_ms = Some(elapsed.as_secs_f64() * 1000.0);
    }

    /// Records the changes of a high-change operation, or why they are unknown.
    pub(super) fn note_changes(&mut self, changes: Result<serde_json::Value, String>) {
        match changes {
            Ok(changes) => self.record.changes = Some(changes),
            Err(error) => self.record.changes_error = Some(error),
        }
    }

    /// Adds the trace context of this request's span and, when configured, the caller's
    /// subject stamp to the headers of the upstream request.
    pub(super) fn prepare_upstream_headers(
        &mut self,
        headers: &mut HeaderMap,
        stamp: Option<&SubjectStamp>,
    ) {
        if let Some(span) = &self.span {
            span.inject(headers);
        }
        if let (Some(stamp), Some(principal)) = (stamp, &self.record.principal) {
            self.record.user_agent_subject = Some(stamp.apply(headers, principal.subject()));
        }
    }

    pub(super) fn fail(&mut self, error: &ProxyError) {
        if error.fault() == Fault::Upstream || matches!(error, ProxyError::Credential(_)) {
            self.metrics.upstream_failed(error.reason());
        }
        self.record.decision = error.decision();
        self.record.error = Some(error.to_string());
        // A denial keeps the policy's reason; any other failure replaces it with its
        // cause, even after an allow (an upstream failure is not explained by the rule).
        if !matches!(error, ProxyError::Denied { .. }) || self.record.reason.is_none() {
            self.record.reason = Some(error.reason().to_owned());
        }
        log_failure(&self.record, error);
    }

    /// Attaches this record to the response; it is emitted when the body ends.
    pub(super) fn attach(mut self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        self.record.status = response.status().as_u16();
        if self.record.decision.is_empty() {
            self.record.decision = "allow";
        }
        response.map(|inner| {
            AuditedBody {
                inner,
                finish: Some(self),
            }
            .boxed()
        })
    }

    fn emit(&mut self, completed: bool) {
        if self.emitted {
            return;
        }
        self.emitted = true;
        if self.record.decision.is_empty() {
            self.record.decision = "error";
        }
        let elapsed = self.started.elapsed();
        self.record.duration_ms = elapsed.as_secs_f64() * 1000.0;
        self.record.completed = completed;
        self.metrics.finished(
            self.operation_label,
            self.record.decision,
            self.record.status,
            elapsed.as_secs_f64(),
        );
        if let Some(charge) = self.record.request_charge {
            self.metrics.add_request_charge(
                self.record.database.as_deref(),
                self.record.container.as_deref(),
                charge,
            );
        }
        if let Some(span) = self.span.take() {
            span.end(&self.record, self.started_at + elapsed);
        }
        if self.record.decision == "allow" {
            tracing::debug!(
                db.operation.name = %self.operation_label,
                http.response.status_code = self.record.status,
                "Forwarded request"
            );
        }
        self.audit.record(&self.record);
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.emit(false);
    }
}

/// Emits the audit record and metrics of a request the HTTP layer rejected itself.
pub(super) fn record_connection_error(
    proxy: &Proxy,
    peer: SocketAddr,
    status: u16,
    reason: &'static str,
    error: &str,
) {
    tracing::info!(client.address = %peer, %error, "Rejected a malformed request");
    proxy.metrics.started();
    proxy.metrics.finished("unknown", "invalid", status, 0.0);
    let record = AuditRecord {
        time: SystemTime::now(),
        decision: "invalid",
        reason: Some(reason.to_owned()),
        error: Some(error.to_owned()),
        status,
        client_address: Some(peer.to_string().into()),
        completed: true,
        ..AuditRecord::default()
    };
    proxy.audit.record(&record);
}

fn log_failure(record: &AuditRecord, error: &ProxyError) {
    let subject = record.principal.as_ref().map(AuditPrincipal::subject);
    match error {
        ProxyError::Denied { .. } => tracing::info!(
            enduser.id = subject,
            db.operation.name = record.operation,
            rule = record.rule.as_deref(),
            "Denied request"
        ),
        error if error.is_retryable() => tracing::warn!(
            %error,
            db.operation.name = record.operation,
            "Request failed"
        ),
        error => tracing::info!(
            %error,
            db.operation.name = record.operation,
            "Rejected request"
        ),
    }
}

static SUBSTATUS: HeaderName = HeaderName::from_static("x-ms-substatus");
static REQUEST_CHARGE: HeaderName = HeaderName::from_static("x-ms-request-charge");
static ACTIVITY_ID: HeaderName = HeaderName::from_static("x-ms-activity-id");

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

fn header_number<T: std::str::FromStr>(headers: &HeaderMap, name: &HeaderName) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A response body that emits the request's audit record when it ends or is dropped.
struct AuditedBody {
    inner: ProxyBody,
    finish: Option<Finish>,
}

impl AuditedBody {
    fn end(&mut self, completed: bool) {
        if let Some(mut finish) = self.finish.take() {
            finish.emit(completed);
        }
    }
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        match &polled {
            Poll::Ready(None) => self.end(true),
            Poll::Ready(Some(Err(error))) => {
                if let Some(finish) = self.finish.as_mut() {
                    finish.record.error = Some(format!("response body failed: {error}"));
                    tracing::warn!(%error, "Response body from the account failed");
                }
                self.end(false);
            }
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.end(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        let completed = self.inner.is_end_stream();
        self.end(completed);
    }
}
