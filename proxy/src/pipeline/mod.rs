//! The request pipeline: every layer a request passes, in order.
//!
//! 1. Header size limits, before any parsing.
//! 2. Authentication of the caller's token, before anything about the request is
//!    trusted. A caller without a valid token learns nothing about the path.
//! 3. Classification into a Cosmos operation and resource (also computed before
//!    authentication, only to enrich the audit record of a rejected request). An offer
//!    read or replace is then resolved to the database or container it belongs to, by
//!    reading the offer with the proxy's own credential.
//! 4. The policy decision, which needs both the principal and the classified request.
//! 5. Signing with the proxy's credential and forwarding, only for allowed requests.
//! 6. The account-read rewrite, so SDK endpoint discovery keeps using the proxy.
//!
//! The audit record, metrics and request span wrap all of it and are emitted when the
//! response body ends, so they carry the real duration and whether the body completed.

mod diff;
mod drain;
mod finish;
mod offer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use cosmoguard_policy::{Context, OperationKind, Policy, ResourceType};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Limited};
use url::Url;

use crate::account;
use crate::audit::AuditSink;
use crate::body::{BoxError, ProxyBody, RequestBody, full};
use crate::classify::{self, Classified};
use crate::error::ProxyError;
use crate::identity::Authenticator;
use crate::metrics::RequestMetrics;
use crate::rid::RidMap;
use crate::telemetry::{SubjectStamp, Telemetry};
use crate::upstream::Upstream;

pub use finish::Finish;

/// Size limits the pipeline enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_account_response_bytes: usize,
}

/// The caller's TCP peer. Its text form, which every audit record carries, is made once per
/// connection rather than per request.
#[derive(Clone, Debug)]
pub struct Client {
    pub address: SocketAddr,
    text: Arc<str>,
}

impl Client {
    pub fn new(address: SocketAddr) -> Client {
        Client {
            address,
            text: address.to_string().into(),
        }
    }
}

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    pub authenticator: Authenticator,
    pub policy: Arc<ArcSwap<Policy>>,
    pub upstream: Upstream,
    pub audit: Arc<AuditSink>,
    pub metrics: RequestMetrics,
    pub public_url: Url,
    pub limits: Limits,
    /// Names learnt for database and container resource ids, shared by every worker.
    pub rids: RidMap,
    /// Request spans; disabled when no OTLP endpoint is configured.
    pub telemetry: Telemetry,
    /// The keyed subject digest appended to the upstream `User-Agent`, when configured.
    pub subject_stamp: Option<SubjectStamp>,
}

impl Proxy {
    /// Returns a copy for one connection worker: everything is shared except the upstream
    /// connection pool, which each worker keeps on its own event loop.
    pub fn for_worker(&self) -> Proxy {
        Proxy {
            authenticator: self.authenticator.clone(),
            policy: Arc::clone(&self.policy),
            upstream: self.upstream.with_own_pool(),
            audit: Arc::clone(&self.audit),
            metrics: self.metrics.clone(),
            public_url: self.public_url.clone(),
            limits: self.limits,
            rids: self.rids.clone(),
            telemetry: self.telemetry.clone(),
            subject_stamp: self.subject_stamp.clone(),
        }
    }

    /// Handles one request from the data listener. Returns a response for every request:
    /// each error becomes an error response and an audit record.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<RequestBody>,
        client: Option<Client>,
    ) -> Response<ProxyBody> {
        let mut finish = Finish::start(&self, &request, client.as_ref());
        let peer = client.map(|client| client.address);
        let (parts, body) = request.into_parts();
        let version = parts.version;
        let mut unread_body = Some(body);
        match self
            .process(parts, &mut unread_body, peer, &mut finish)
            .await
        {
            Ok(response) => finish.attach(response),
            Err(error) => {
                finish.fail(&error);
                let mut response = error.to_response();
                if let Some(body) = unread_body {
                    drain::drain_unread_body(body, version, &mut response).await;
                }
                finish.attach(response)
            }
        }
    }

    /// Runs the layers in order. `body` is taken once the request is forwarded or its
    /// body read, so on an early error the caller can drain what was not read.
    async fn process(
        &self,
        mut parts: http::request::Parts,
        body: &mut Option<RequestBody>,
        peer: Option<SocketAddr>,
        finish: &mut Finish,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        check_header_size(&parts.headers, &parts.uri, self.limits.max_header_bytes)?;
        // Hop-by-hop headers, and any header the `Connection` header names, end at the
        // proxy. Removing them before anything reads the headers means the decision is made
        // on the headers the account gets. A caller then cannot have a header that decided
        // the operation (a query flag, a page size) dropped after the decision.
        crate::upstream::remove_hop_by_hop(&mut parts.headers);

        let classified = if parts.uri.query().is_some() {
            // The path alone is classified and the query would travel upstream unchecked.
            Err(classify::ClassifyError::QueryString)
        } else {
            classify::classify(&parts.method, parts.uri.path(), &parts.headers)
        };
        if let Ok(classified) = &classified {
            finish.note_request(classified);
        }

        let principal = self
            .authenticator
            .authenticate_shared(&parts.headers)
            .await
            .map_err(ProxyError::Unauthenticated)?;
        finish.note_principal(&principal);
        reject_token_copies(&parts.headers, &parts.uri)?;

        let mut classified = classified.map_err(ProxyError::Invalid)?;
        if let Some(path) = classify::without_empty_segments(parts.uri.path()) {
            parts.uri = with_path(&parts.uri, &path)?;
        }
        self.rids
            .resolve(&mut classified)
            .map_err(|error| ProxyError::UnresolvedRid { rid: error.rid })?;
        if classified.rid.is_some() {
            finish.note_request(&classified);
        }
        // Offers are addressed by RID only, so their owner comes from the account.
        let offer = if offer::addresses_offer(&classified) {
            let resolved =
                offer::resolve(&self.upstream, &self.rids, &parts, &mut classified).await;
            finish.note_request(&classified);
            Some(resolved)
        } else {
            None
        };
        // A body the decision depends on is read now; any other body stays unread until
        // the request is allowed, so a rejected request's body can still be drained.
        let read_body = if classified.needs_body() {
            let owner = offer.as_ref().and_then(|offer| offer.owner.as_ref());
            let read = self
                .read_body(take_body(body)?, &mut classified, owner)
                .await?;
            // The body named the created resource or the batch's operations.
            finish.note_request(&classified);
            Some(read)
        } else {
            None
        };

        let context = Context {
            source_address: peer.map(|peer| peer.ip()),
            unix_time: unix_time(),
        };
        let mut decision = self
            .policy
            .load()
            .decide(&principal, &classified.request, &context);
        if let Some(why) = offer.as_ref().and_then(|offer| offer.unresolved.as_ref()) {
            decision.reason = format!(
                "{}, and only rules scoped to `/` apply because the offer's database and container are unknown: {why}",
                decision.reason
            );
        }
        let allowed = decision.is_allowed();
        finish.note_decision(decision);
        if !allowed {
            return Err(ProxyError::Denied {
                operation: classified.request.operation.name().to_owned(),
                resource: display_resource(&classified),
            });
        }

        let body = match read_body {
            Some(read) => read,
            None => take_body(body)?.map_err(BoxError::from).boxed(),
        };

        pin_operation_headers(&mut parts.headers, &classified);
        let is_account_read = is_account_read(&classified);
        if is_account_read {
            // The rewrite needs the JSON as sent, not compressed.
            parts.headers.remove(http::header::ACCEPT_ENCODING);
        }
        // High-change operations read the resource first, to record what they change. An
        // offer was already read before the decision.
        let current = offer.map(|offer| offer.current);
        let (body, changes) =
            diff::capture(&self.upstream, &parts, body, &classified, current).await?;
        if let Some(changes) = changes {
            finish.note_changes(changes);
        }
        finish.prepare_upstream_headers(&mut parts.headers, self.subject_stamp.as_ref());

        let upstream_started = Instant::now();
        let response = self
            .upstream
            .send(Request::from_parts(parts, body), &classified)
            .await?;
        finish.note_upstream(&response, upstream_started.elapsed());
        self.metrics
            .observe_upstream(upstream_started.elapsed().as_secs_f64());

        if is_account_read && response.status().is_success() {
            return self.rewrite_account(response).await;
        }
        let status = response.status();
        Ok(response.map(|body| {
            self.rids
                .learn_from(&classified, status, body.map_err(BoxError::from).boxed())
        }))
    }

    /// Reads a body the decision depends on (bounded): a batch, whose operations are
    /// authorized one by one, a create or upsert, whose new resource's id is in the body,
    /// or a replace, whose body must name the resource it replaces (and for an offer,
    /// the `offer_owner` the account reported). The bytes are then forwarded from memory.
    async fn read_body(
        &self,
        body: RequestBody,
        classified: &mut Classified,
        offer_owner: Option<&offer::OfferOwner>,
    ) -> Result<ProxyBody, ProxyError> {
        if classified.request.operation.kind == OperationKind::Batch {
            let bytes = read_limited(body, classify::MAX_BATCH_BODY_BYTES).await?;
            classified.request.batch =
                classify::parse_batch(&bytes).map_err(ProxyError::Invalid)?;
            return Ok(full(bytes));
        }
        let bytes = read_limited(body, classify::MAX_CREATE_BODY_BYTES).await?;
        if classified.request.operation.kind == OperationKind::Replace {
            classify::check_replaced_id(classified, &bytes).map_err(ProxyError::Invalid)?;
            if let Some(owner) = offer_owner {
                offer::check_replaced_owner(owner, &bytes).map_err(ProxyError::Invalid)?;
            }
        } else {
            classify::apply_created_id(classified, &bytes).map_err(ProxyError::Invalid)?;
        }
        Ok(full(bytes))
    }

    async fn rewrite_account(
        &self,
        response: Response<hyper::body::Incoming>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = response.into_parts();
        let bytes = Limited::new(body, self.limits.max_account_response_bytes)
            .collect()
            .await
            .map_err(|error| ProxyError::UpstreamInvalid(format!("account response: {error}")))?
            .to_bytes();
        let rewritten = account::rewrite_account(&bytes, &self.public_url)
            .map_err(|error| ProxyError::UpstreamInvalid(error.to_string()))?;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts.headers.remove(http::header::CONTENT_ENCODING);
        Ok(Response::from_parts(parts, full(Bytes::from(rewritten))))
    }
}

impl Proxy {
    /// Records a request that the HTTP layer rejected before the pipeline saw it: a head
    /// larger than the connection's buffer (431), a malformed request (400) or headers
    /// that did not arrive in time (408). The HTTP layer has already sent its response.
    pub fn audit_connection_error(&self, peer: SocketAddr, error: &hyper::Error) {
        let (status, reason) = if error.is_parse_too_large() {
            (431, "headers_too_large")
        } else if error.is_parse() {
            (400, "malformed_http")
        } else if error.is_timeout() {
            (408, "header_read_timeout")
        } else {
            return;
        };
        finish::record_connection_error(self, peer, status, reason, &error.to_string());
    }
}

/// Rejects a request that repeats its access token in a header other than
/// `Authorization` (a cookie, `X-Forwarded-Access-Token`, ...), because the caller's token
/// must never reach the account and every other header is forwarded. The token's
/// signature segment is what is looked for: it is unique to the token and long.
fn reject_token_copies(headers: &HeaderMap, uri: &http::Uri) -> Result<(), ProxyError> {
    let Some(token) = crate::identity::presented_token(headers) else {
        return Ok(());
    };
    let Some(signature) = token_signature(&token) else {
        return Ok(());
    };
    // Most values are shorter than a signature and cannot contain one, so the searcher is
    // built only for a value long enough.
    let mut finder = None;
    let mut contains = |value: &[u8]| {
        value.len() >= signature.len()
            && finder
                .get_or_insert_with(|| memchr::memmem::Finder::new(signature.as_bytes()))
                .find(value)
                .is_some()
    };
    let target = uri.path_and_query().map_or("", |target| target.as_str());
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    if contains(target.as_bytes()) || contains(authority.as_bytes()) {
        return Err(ProxyError::Invalid(
            classify::ClassifyError::TokenInOtherHeader("the request path".to_owned()),
        ));
    }
    for (name, value) in headers {
        if name != http::header::AUTHORIZATION && contains(value.as_bytes()) {
            return Err(ProxyError::Invalid(
                classify::ClassifyError::TokenInOtherHeader(format!("header {name}")),
            ));
        }
    }
    Ok(())
}

/// Returns the signature segment of a JWT, when it has one of at least 16 characters.
fn token_signature(token: &str) -> Option<&str> {
    let signature = token.trim().rsplit('.').next()?;
    (signature.len() >= 16).then_some(signature)
}

/// Sets the headers that define what a POST is to exactly what the proxy decided on, so the
/// account cannot read the request as another operation (a query content type with
/// parameters, which one implementation reads as a query and another as a create).
fn pin_operation_headers(headers: &mut HeaderMap, classified: &Classified) {
    use http::header::{CONTENT_TYPE, HeaderValue};
    if classified.request.operation.kind == OperationKind::Query {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/query+json"),
        );
        headers.insert("x-ms-documentdb-isquery", HeaderValue::from_static("True"));
    }
}

/// Returns `uri` with another path; the request target never has a query here.
fn with_path(uri: &http::Uri, path: &str) -> Result<http::Uri, ProxyError> {
    let mut target = uri.clone().into_parts();
    target.path_and_query = Some(
        path.parse()
            .map_err(|_| ProxyError::Invalid(classify::ClassifyError::InvalidEncoding))?,
    );
    http::Uri::from_parts(target)
        .map_err(|_| ProxyError::Invalid(classify::ClassifyError::InvalidEncoding))
}

/// Takes the request body out of its slot; it is there until the request is forwarded.
fn take_body(body: &mut Option<RequestBody>) -> Result<RequestBody, ProxyError> {
    body.take()
        .ok_or_else(|| ProxyError::BodyRead("the request body was already read".to_owned()))
}

fn is_account_read(classified: &Classified) -> bool {
    let operation = classified.request.operation;
    operation.resource_type == ResourceType::Account && operation.kind == OperationKind::Read
}

/// Names the resource in a denial message the way the caller addressed it.
fn display_resource(classified: &Classified) -> String {
    match classified.request.resource_link.as_str() {
        "" => "the account".to_owned(),
        link => format!("/{link}"),
    }
}

/// The maximum number of headers a request may have, on HTTP/1.1 and HTTP/2 alike. The
/// SDKs send about 20 (an estimate from their requests in the end-to-end tests).
pub const MAX_HEADER_COUNT: usize = 100;

/// Rejects requests with more than [`MAX_HEADER_COUNT`] headers, or whose headers and
/// target together exceed the limit, counting each header as name, value and the four
/// bytes of `: ` and CRLF.
fn check_header_size(headers: &HeaderMap, uri: &http::Uri, max: usize) -> Result<(), ProxyError> {
    if headers.len() > MAX_HEADER_COUNT {
        return Err(ProxyError::TooManyHeaders {
            count: headers.len(),
            max: MAX_HEADER_COUNT,
        });
    }
    let size = uri_length(uri)
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > max {
        return Err(ProxyError::HeadersTooLarge { size, max });
    }
    Ok(())
}

/// Returns the length of the request target as written in the request line.
fn uri_length(uri: &http::Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |scheme| scheme.len() + 3);
    let authority = uri
        .authority()
        .map_or(0, |authority| authority.as_str().len());
    let target = uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    scheme + authority + target
}

/// The maximum time a body the decision depends on may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn read_limited(body: RequestBody, max: usize) -> Result<Bytes, ProxyError> {
    let collected = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, max).collect())
        .await
        .map_err(|_| ProxyError::BodyTimeout(BODY_READ_TIMEOUT))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::BodyTooLarge { max })
        }
        Err(error) => Err(ProxyError::BodyRead(error.to_string())),
    }
}

fn unix_time() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The server spawns each request's future on the multi-threaded runtime, so it must be
/// `Send`; this fails to compile, not at run time, when a change breaks that.
#[cfg(test)]
#[allow(dead_code)]
fn handle_future_is_send(proxy: Arc<Proxy>, request: Request<RequestBody>) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(proxy.handle(request, None));
}
