//! Errors of the identity layer: why a request was not authenticated, and why the issuer
//! configuration could not be used.

use std::path::PathBuf;

/// A failure to authenticate a request.
///
/// Most variants are the caller's fault and map to 401. [`AuthError::NoKeysYet`] and
/// [`AuthError::IssuerUnavailable`] are the proxy's own failures (it cannot verify any
/// token of that issuer right now) and map to 503, see [`AuthError::is_infrastructure`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request has no Authorization header")]
    Missing,

    #[error("the request has more than one Authorization header")]
    DuplicateHeader,

    #[error("the Authorization header is invalid: {detail}")]
    Malformed { detail: &'static str },

    #[error(
        "the Authorization scheme `{scheme}` is not accepted: send an OIDC access token as \
         `Bearer <token>` or `type=aad&ver=1.0&sig=<token>`"
    )]
    UnsupportedScheme { scheme: String },

    #[error("the token is {size} bytes, more than the limit of {limit} bytes")]
    TokenTooLarge { size: usize, limit: usize },

    #[error("the token's issuer `{issuer}` is not configured{}", hint_suffix(.hint))]
    UnknownIssuer {
        issuer: String,
        hint: Option<&'static str>,
    },

    #[error("the token's tenant `{tenant}` is not in allowed_tenants of issuer `{issuer}`")]
    TenantNotAllowed { issuer: String, tenant: String },

    #[error("no key of issuer `{issuer}` matches the token's key id {}", kid_text(.kid))]
    UnknownKeyId { issuer: String, kid: Option<String> },

    #[error("the signing algorithm `{alg}` is not allowed")]
    DisallowedAlgorithm { alg: String },

    #[error("the signing algorithm `{alg}` does not fit the issuer's {key_type} key")]
    AlgorithmKeyMismatch { alg: String, key_type: &'static str },

    #[error("the token signature is invalid")]
    BadSignature,

    #[error("the token expired at {exp} (Unix seconds), now is {now}, leeway {leeway} s")]
    Expired { exp: i64, now: i64, leeway: u64 },

    #[error("the token is not valid before {claim} = {at} (Unix seconds), now is {now}")]
    NotYetValid {
        claim: &'static str,
        at: i64,
        now: i64,
    },

    #[error("the token's audience is not one of the audiences configured for `{issuer}`")]
    WrongAudience { issuer: String },

    #[error("the token has no `{claim}` claim")]
    MissingClaim { claim: String },

    #[error("the token's `{claim}` claim is invalid: expected {expected}")]
    InvalidClaim {
        claim: String,
        expected: &'static str,
    },

    #[error("no signing keys of issuer `{issuer}` have been fetched yet")]
    NoKeysYet { issuer: String },

    #[error("the signing keys of issuer `{issuer}` are unavailable: {error}")]
    IssuerUnavailable { issuer: String, error: String },
}

impl AuthError {
    /// Returns a short snake_case label for audit records and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::DuplicateHeader => "duplicate_header",
            AuthError::Malformed { .. } => "malformed",
            AuthError::UnsupportedScheme { .. } => "unsupported_scheme",
            AuthError::TokenTooLarge { .. } => "token_too_large",
            AuthError::UnknownIssuer { .. } => "unknown_issuer",
            AuthError::TenantNotAllowed { .. } => "tenant_not_allowed",
            AuthError::UnknownKeyId { .. } => "unknown_key_id",
            AuthError::DisallowedAlgorithm { .. } => "disallowed_algorithm",
            AuthError::AlgorithmKeyMismatch { .. } => "algorithm_key_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::WrongAudience { .. } => "wrong_audience",
            AuthError::MissingClaim { .. } => "missing_claim",
            AuthError::InvalidClaim { .. } => "invalid_claim",
            AuthError::NoKeysYet { .. } => "no_keys_yet",
            AuthError::IssuerUnavailable { .. } => "issuer_unavailable",
        }
    }

    /// Returns true when the proxy, not the caller, is at fault: the request may succeed
    /// later unchanged, so the proxy responds with 503 and `Retry-After` instead of 401.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            AuthError::NoKeysYet { .. } | AuthError::IssuerUnavailable { .. }
        )
    }
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    match hint {
        Some(hint) => format!(" ({hint})"),
        None => String::new(),
    }
}

fn kid_text(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!("`{kid}`"),
        None => "(the token has no kid)".to_owned(),
    }
}

/// An invalid `[[issuers]]` configuration or authenticator option.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no [[issuers]] are configured, so no token could be accepted")]
    NoIssuers,

    #[error("issuer `{issuer}` is configured more than once")]
    DuplicateIssuer { issuer: String },

    #[error("issuer `{issuer}`: {field} `{value}` is not a valid URL: {error}")]
    InvalidUrl {
        issuer: String,
        field: &'static str,
        value: String,
        error: url::ParseError,
    },

    #[error(
        "issuer `{issuer}`: {field} `{url}` uses plain http; use https, or set \
         [dangerous] plain_http_issuers = true for a test setup"
    )]
    PlainHttp {
        issuer: String,
        field: &'static str,
        url: String,
    },

    #[error("issuer `{issuer}`: {field} `{url}` must use https (or http when allowed)")]
    UnsupportedUrlScheme {
        issuer: String,
        field: &'static str,
        url: String,
    },

    #[error("issuer `{issuer}`: audiences is empty; list at least one accepted `aud` value")]
    NoAudiences { issuer: String },

    #[error("issuer `{issuer}`: algorithms is empty; list at least one, or remove the field")]
    NoAlgorithms { issuer: String },

    #[error(
        "issuer `{issuer}` contains {{tenantid}}, so it needs discovery_url or jwks_url \
         (for Entra ID, the `common` or `organizations` discovery document)"
    )]
    TemplateWithoutDiscoveryUrl { issuer: String },

    #[error(
        "issuer `{issuer}` contains {{tenantid}}, so it accepts tokens of any tenant: list \
         the accepted tenant ids in allowed_tenants"
    )]
    TemplateWithoutTenants { issuer: String },

    #[error("issuer `{issuer}`: {field} must be more than zero")]
    ZeroDuration { issuer: String, field: &'static str },

    #[error(
        "issuer `{issuer}`: jwks_refresh_interval must be shorter than jwks_max_stale, or \
         keys would expire before they are refreshed"
    )]
    RefreshNotBeforeStale { issuer: String },

    #[error("failed to read the CA certificate file {}: {error}", path.display())]
    CaFile {
        path: PathBuf,
        error: rustls_pki_types::pem::Error,
    },

    #[error("the CA certificate file {} contains no certificate", path.display())]
    EmptyCaFile { path: PathBuf },

    #[error("failed to add a CA certificate from {}: {error}", path.display())]
    InvalidCaCertificate { path: PathBuf, error: rustls::Error },

    #[error("failed to build the TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),

    #[error("failed to build the HTTP client for issuers: {0}")]
    HttpClient(String),

    #[error("failed to register identity metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
