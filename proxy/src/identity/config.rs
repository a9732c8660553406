//! The `[[issuers]]` tables of the proxy's configuration, and their checks at start.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use super::error::ConfigError;

/// The placeholder that Entra ID multi-tenant discovery documents put in `issuer`. It is
/// replaced by the token's `tid` claim before the issuer is compared.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// One trusted token issuer: one `[[issuers]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Must equal the token's `iss` exactly. May contain `{tenantid}` (Entra ID
    /// multi-tenant), which then needs `allowed_tenants` and `discovery_url` or `jwks_url`.
    pub issuer: String,

    /// Accepted `aud` values. A token's `aud` (a string or an array) must contain one.
    pub audiences: Vec<String>,

    /// The OpenID Connect discovery document, unused when `jwks_url` is set. Default: the
    /// issuer with any trailing `/` removed, plus `/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: Option<Url>,

    /// The JWKS document. When set, discovery is skipped.
    #[serde(default)]
    pub jwks_url: Option<Url>,

    /// Accepted signing algorithms. Default: every asymmetric algorithm (RS256, RS384,
    /// RS512, PS256, PS384, PS512, ES256, ES384, EdDSA). `none` and HMAC are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,

    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default: 60 s.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,

    /// How often keys are refetched when the JWKS response has no usable
    /// `Cache-Control: max-age`. Default: 5 min.
    #[serde(default = "default_refresh_interval", with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,

    /// How long the last successfully fetched keys stay in use while the issuer cannot be
    /// reached. Default: 24 h.
    #[serde(default = "default_max_stale", with = "humantime_serde")]
    pub jwks_max_stale: Duration,

    /// The minimum time between two JWKS fetches that tokens with an unknown `kid` trigger,
    /// which also bounds how often a `max-age` refresh runs. Default: 10 s.
    #[serde(default = "default_min_refetch_interval", with = "humantime_serde")]
    pub jwks_min_refetch_interval: Duration,

    /// Accepted Entra ID tenant ids (`tid`). Required when `issuer` contains `{tenantid}`.
    /// When set on any other issuer, the token's `tid` must also be listed. Default: empty.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,

    /// Whether the proxy reports ready only once this issuer's keys are fetched.
    /// Default: true.
    #[serde(default = "default_required")]
    pub required: bool,

    /// The claims that fill the principal's fields.
    #[serde(default)]
    pub claims: ClaimMapping,
}

/// Names of the claims that fill the principal's fields. A list means the first claim
/// present wins. Each field takes a string or an array of strings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    /// Default: `sub`.
    pub subject: String,
    /// Default: `name`, `preferred_username`, `upn`, `email`.
    #[serde(deserialize_with = "one_or_many")]
    pub display_name: Vec<String>,
    /// An array (or one string). Default: `groups`.
    pub groups: String,
    /// An array (or one string). Default: `roles`.
    pub roles: String,
    /// A space-separated string or an array. Default: `scp`, `scope`.
    #[serde(deserialize_with = "one_or_many")]
    pub scopes: Vec<String>,
    /// Default: `azp`, `appid`, `client_id`.
    #[serde(deserialize_with = "one_or_many")]
    pub app_id: Vec<String>,
}

impl Default for ClaimMapping {
    fn default() -> ClaimMapping {
        ClaimMapping {
            subject: "sub".to_owned(),
            display_name: owned(&["name", "preferred_username", "upn", "email"]),
            groups: "groups".to_owned(),
            roles: "roles".to_owned(),
            scopes: owned(&["scp", "scope"]),
            app_id: owned(&["azp", "appid", "client_id"]),
        }
    }
}

/// An asymmetric JWS algorithm (RFC 7518). HMAC and `none` are deliberately absent, so a
/// configuration that lists them fails to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum SigningAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 9] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::RS512,
        SigningAlgorithm::PS256,
        SigningAlgorithm::PS384,
        SigningAlgorithm::PS512,
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
        SigningAlgorithm::EdDSA,
    ];

    /// Parses a JOSE `alg` value. Returns `None` for `none`, HMAC and anything unknown.
    pub fn from_name(name: &str) -> Option<SigningAlgorithm> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
    }

    /// Returns the JOSE `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::RS384 => "RS384",
            SigningAlgorithm::RS512 => "RS512",
            SigningAlgorithm::PS256 => "PS256",
            SigningAlgorithm::PS384 => "PS384",
            SigningAlgorithm::PS512 => "PS512",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::ES384 => "ES384",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            SigningAlgorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            SigningAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            SigningAlgorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            SigningAlgorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl IssuerConfig {
    /// Creates an issuer with the given audiences and every other field at its default.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> IssuerConfig {
        IssuerConfig {
            issuer: issuer.into(),
            audiences,
            discovery_url: None,
            jwks_url: None,
            algorithms: default_algorithms(),
            leeway: default_leeway(),
            jwks_refresh_interval: default_refresh_interval(),
            jwks_max_stale: default_max_stale(),
            jwks_min_refetch_interval: default_min_refetch_interval(),
            allowed_tenants: Vec::new(),
            required: default_required(),
            claims: ClaimMapping::default(),
        }
    }

    /// Returns true when `issuer` contains `{tenantid}`.
    pub fn is_tenant_template(&self) -> bool {
        self.issuer.contains(TENANT_PLACEHOLDER)
    }

    /// Returns the URL of the discovery document: `discovery_url`, or the default derived
    /// from the issuer.
    pub fn discovery_document_url(&self) -> Result<Url, ConfigError> {
        if let Some(url) = &self.discovery_url {
            return Ok(url.clone());
        }
        let value = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        Url::parse(&value).map_err(|error| ConfigError::InvalidUrl {
            issuer: self.issuer.clone(),
            field: "discovery_url",
            value: value.clone(),
            error,
        })
    }

    /// Checks the fields that serde cannot: URL schemes, empty lists, templates and
    /// durations. `allow_plain_http` is the `[dangerous] plain_http_issuers` switch.
    pub fn validate(&self, allow_plain_http: bool) -> Result<(), ConfigError> {
        let issuer = &self.issuer;
        let issuer_url = self.issuer.replace(TENANT_PLACEHOLDER, "tenant");
        let parsed = Url::parse(&issuer_url).map_err(|error| ConfigError::InvalidUrl {
            issuer: issuer.clone(),
            field: "issuer",
            value: issuer.clone(),
            error,
        })?;
        check_scheme(issuer, "issuer", &parsed, allow_plain_http)?;

        if self.is_tenant_template() {
            if self.discovery_url.is_none() && self.jwks_url.is_none() {
                return Err(ConfigError::TemplateWithoutDiscoveryUrl {
                    issuer: issuer.clone(),
                });
            }
            if self.allowed_tenants.is_empty() {
                return Err(ConfigError::TemplateWithoutTenants {
                    issuer: issuer.clone(),
                });
            }
        }
        match &self.jwks_url {
            Some(url) => check_scheme(issuer, "jwks_url", url, allow_plain_http)?,
            None => {
                let url = self.discovery_document_url()?;
                check_scheme(issuer, "discovery_url", &url, allow_plain_http)?;
            }
        }

        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudiences {
                issuer: issuer.clone(),
            });
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms {
                issuer: issuer.clone(),
            });
        }
        self.check_durations()
    }

    fn check_durations(&self) -> Result<(), ConfigError> {
        let durations = [
            ("jwks_refresh_interval", self.jwks_refresh_interval),
            ("jwks_max_stale", self.jwks_max_stale),
            ("jwks_min_refetch_interval", self.jwks_min_refetch_interval),
        ];
        for (field, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration {
                    issuer: self.issuer.clone(),
                    field,
                });
            }
        }
        if self.jwks_refresh_interval >= self.jwks_max_stale {
            return Err(ConfigError::RefreshNotBeforeStale {
                issuer: self.issuer.clone(),
            });
        }
        Ok(())
    }

    /// Returns the accepted tenant ids, lowercased because Entra ID compares GUIDs
    /// without regard to case.
    pub(crate) fn allowed_tenant_set(&self) -> HashSet<String> {
        self.allowed_tenants
            .iter()
            .map(|tenant| tenant.to_ascii_lowercase())
            .collect()
    }
}

/// Checks that an issuer URL is https, or http when the dangerous switch allows it.
pub(crate) fn check_scheme(
    issuer: &str,
    field: &'static str,
    url: &Url,
    allow_plain_http: bool,
) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http => Ok(()),
        "http" => Err(ConfigError::PlainHttp {
            issuer: issuer.to_owned(),
            field,
            url: url.to_string(),
        }),
        _ => Err(ConfigError::UnsupportedUrlScheme {
            issuer: issuer.to_owned(),
            field,
            url: url.to_string(),
        }),
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    })
}

fn default_algorithms() -> Vec<SigningAlgorithm> {
    SigningAlgorithm::ALL.to_vec()
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_refresh_interval() -> Duration {
    Duration::from_secs(5 * 60)
}

fn default_max_stale() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}

fn default_min_refetch_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_required() -> bool {
    true
}
