//! Request failures and the one place that maps them to HTTP responses.
//!
//! Inside the proxy each failure keeps its precise cause for the audit record and logs.
//! The caller gets a status and a Cosmos-shaped JSON body (`{"code": ..., "message":
//! ...}`), never the proxy's internals. Authentication failures all read alike, so the
//! response cannot be used to probe which check a forged token failed.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};
use crate::classify::ClassifyError;
use crate::identity::AuthError;

/// The `Retry-After` value, in seconds, sent with an infrastructure failure.
const RETRY_AFTER_SECONDS: &str = "5";

/// The side that caused a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Client,
    Proxy,
    Upstream,
}

/// A failure that stopped a request before the account, or on its way.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("authentication failed: {0}")]
    Unauthenticated(AuthError),
    #[error("invalid request: {0}")]
    Invalid(ClassifyError),
    #[error("request headers are {size} bytes; the maximum is {max}")]
    HeadersTooLarge { size: usize, max: usize },
    #[error("the request has {count} headers; the maximum is {max}")]
    TooManyHeaders { count: usize, max: usize },
    #[error("the request body is larger than {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("{operation} on {resource} is not allowed")]
    Denied { operation: String, resource: String },
    #[error("resource id {rid} is not known, so no policy can be applied to it")]
    UnresolvedRid { rid: String },
    #[error("the upstream credential is unavailable: {0}")]
    Credential(String),
    #[error("the account could not be reached: {0}")]
    UpstreamUnavailable(String),
    #[error("the account did not respond within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    #[error("the account returned an invalid response: {0}")]
    UpstreamInvalid(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthenticated(error) if error.is_infrastructure() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Invalid(_) | ProxyError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::HeadersTooLarge { .. } | ProxyError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Denied { .. } | ProxyError::UnresolvedRid { .. } => StatusCode::FORBIDDEN,
            ProxyError::Credential(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamUnavailable(_) | ProxyError::UpstreamInvalid(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::Unauthenticated(error) if error.is_infrastructure() => Fault::Proxy,
            ProxyError::Unauthenticated(_)
            | ProxyError::Invalid(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::TooManyHeaders { .. }
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::BodyRead(_)
            | ProxyError::BodyTimeout(_)
            | ProxyError::Denied { .. }
            | ProxyError::UnresolvedRid { .. } => Fault::Client,
            ProxyError::Credential(_) => Fault::Proxy,
            ProxyError::UpstreamUnavailable(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::UpstreamInvalid(_) => Fault::Upstream,
        }
    }

    /// Returns whether a client may retry the same request unchanged and hope for success.
    pub fn is_retryable(&self) -> bool {
        matches!(self.fault(), Fault::Proxy | Fault::Upstream)
    }

    /// Returns the audit record's decision for a request that failed this way.
    pub fn decision(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) => "unauthenticated",
            ProxyError::Invalid(_)
            | ProxyError::HeadersTooLarge { .. }
            | ProxyError::TooManyHeaders { .. }
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::BodyRead(_)
            | ProxyError::BodyTimeout(_) => "invalid",
            ProxyError::Denied { .. } | ProxyError::UnresolvedRid { .. } => "deny",
            ProxyError::Credential(_)
            | ProxyError::UpstreamUnavailable(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::UpstreamInvalid(_) => "error",
        }
    }

    /// Returns a short snake_case cause for audit records and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(error) => error.reason(),
            ProxyError::Invalid(_) => "invalid_request",
            ProxyError::HeadersTooLarge { .. } | ProxyError::TooManyHeaders { .. } => {
                "headers_too_large"
            }
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::BodyRead(_) => "body_read_failed",
            ProxyError::BodyTimeout(_) => "body_read_timeout",
            ProxyError::Denied { .. } => "policy_denied",
            ProxyError::UnresolvedRid { .. } => "unresolved_resource_id",
            ProxyError::Credential(_) => "credential_unavailable",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::UpstreamInvalid(_) => "upstream_invalid_response",
        }
    }

    fn code(&self) -> &'static str {
        match self.status() {
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::REQUEST_TIMEOUT => "RequestTimeout",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "RequestHeaderFieldsTooLarge",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
            _ => "BadGateway",
        }
    }

    /// Returns the message for the caller. Authentication failures share one text, so a
    /// forged token learns nothing. Invalid requests and denials name what the caller
    /// sent, never the policy's internals.
    fn public_message(&self) -> String {
        match self {
            ProxyError::Unauthenticated(AuthError::Missing) => {
                "The request has no access token. Send an OIDC access token as \
                 'Authorization: type=aad&ver=1.0&sig=<token>' or 'Bearer <token>'."
                    .to_owned()
            }
            ProxyError::Unauthenticated(error) if error.is_infrastructure() => {
                "The proxy cannot validate tokens right now. Retry later.".to_owned()
            }
            ProxyError::Unauthenticated(_) => {
                "The access token is invalid, expired or not accepted by this proxy.".to_owned()
            }
            ProxyError::Denied {
                operation,
                resource,
            } => {
                format!("The caller is not allowed to run {operation} on {resource}.")
            }
            ProxyError::UnresolvedRid { rid } => format!(
                "The request addresses {rid} by resource id, which the proxy has not seen in a \
                 response yet. Read the database or container by name first, or address it by name."
            ),
            ProxyError::Credential(_) => {
                "The proxy's credential for the account is unavailable. Retry later.".to_owned()
            }
            ProxyError::UpstreamUnavailable(_) => "The account could not be reached.".to_owned(),
            ProxyError::UpstreamTimeout(_) => "The account did not respond in time.".to_owned(),
            ProxyError::UpstreamInvalid(_) => {
                "The account returned an invalid response.".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// Builds the response the caller gets for this failure.
    pub fn to_response(&self) -> Response<ProxyBody> {
        let body = serde_json::json!({
            "code": self.code(),
            "message": self.public_message(),
        });
        let mut response = Response::new(full(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self.status() {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, www_authenticate(self));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        response
    }
}

/// RFC 6750: no error code when the request carried no token, `invalid_token` otherwise.
fn www_authenticate(error: &ProxyError) -> HeaderValue {
    match error {
        ProxyError::Unauthenticated(AuthError::Missing) => {
            HeaderValue::from_static("Bearer realm=\"cosmoguard\"")
        }
        _ => HeaderValue::from_static("Bearer realm=\"cosmoguard\", error=\"invalid_token\""),
    }
}
