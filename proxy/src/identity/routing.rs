//! The choice of issuer configuration for a token, by its unverified `iss` (and `tid` for
//! Entra ID tenant templates).

use std::collections::HashMap;
use std::sync::Arc;

use super::config::TENANT_PLACEHOLDER;
use super::error::AuthError;
use super::issuer::Issuer;
use super::token::{Claims, string_claim, truncate};

/// Entra ID v1 access tokens carry this issuer prefix.
const ENTRA_V1_PREFIX: &str = "https://sts.windows.net/";
/// Entra ID v2 access tokens carry this issuer prefix and end in `/v2.0`.
const ENTRA_V2_PREFIX: &str = "https://login.microsoftonline.com/";

/// The configured issuers, indexed for lookup by `iss`.
#[derive(Debug)]
pub(crate) struct IssuerDirectory {
    issuers: Vec<Arc<Issuer>>,
    exact: HashMap<String, usize>,
    templates: Vec<usize>,
}

/// The issuer chosen for a token.
#[derive(Debug)]
pub(crate) struct Route<'a> {
    pub(crate) index: usize,
    pub(crate) issuer: &'a Arc<Issuer>,
    /// The `iss` the verified token must carry (the template with `tid` filled in).
    pub(crate) expected_iss: String,
}

impl IssuerDirectory {
    pub(crate) fn new(issuers: Vec<Arc<Issuer>>) -> IssuerDirectory {
        let mut exact = HashMap::new();
        let mut templates = Vec::new();
        for (index, issuer) in issuers.iter().enumerate() {
            if issuer.config.is_tenant_template() {
                templates.push(index);
            } else {
                exact.insert(issuer.config.issuer.clone(), index);
            }
        }
        IssuerDirectory {
            issuers,
            exact,
            templates,
        }
    }

    pub(crate) fn issuers(&self) -> &[Arc<Issuer>] {
        &self.issuers
    }

    /// Picks the issuer for a token from its unverified claims and checks its tenant.
    pub(crate) fn route(&self, claims: &Claims) -> Result<Route<'_>, AuthError> {
        let iss = string_claim(claims, "iss")?;
        let tenant = claims.get("tid").and_then(|tid| tid.as_str());

        let route = self
            .find(iss, tenant)
            .ok_or_else(|| AuthError::UnknownIssuer {
                issuer: truncate(iss, 200),
                hint: self.hint(iss, tenant),
            })?;
        check_tenant(route.issuer, tenant)?;
        Ok(route)
    }

    fn find(&self, iss: &str, tenant: Option<&str>) -> Option<Route<'_>> {
        if let Some(&index) = self.exact.get(iss) {
            return Some(self.route_at(index, iss.to_owned()));
        }
        let tenant = tenant?;
        self.templates.iter().find_map(|&index| {
            let expected = self.issuers[index]
                .config
                .issuer
                .replace(TENANT_PLACEHOLDER, tenant);
            (expected == iss).then(|| self.route_at(index, expected))
        })
    }

    fn route_at(&self, index: usize, expected_iss: String) -> Route<'_> {
        Route {
            index,
            issuer: &self.issuers[index],
            expected_iss,
        }
    }

    /// Explains the likely configuration mistake behind an unknown issuer.
    fn hint(&self, iss: &str, tenant: Option<&str>) -> Option<&'static str> {
        let trimmed = iss.trim_end_matches('/');
        let differs_in_slash = self
            .issuers
            .iter()
            .any(|issuer| issuer.config.issuer.trim_end_matches('/') == trimmed);
        if differs_in_slash {
            return Some("a configured issuer differs from it only in a trailing `/`");
        }
        let template_prefix_matches = self.templates.iter().any(|&index| {
            let template = &self.issuers[index].config.issuer;
            let prefix = template
                .split(TENANT_PLACEHOLDER)
                .next()
                .unwrap_or_default();
            iss.starts_with(prefix)
        });
        if template_prefix_matches {
            return Some(match tenant {
                Some(_) => "the token's `tid` does not match the tenant in its `iss`",
                None => "the token has no `tid` claim to fill the issuer's {tenantid}",
            });
        }
        if iss.starts_with(ENTRA_V1_PREFIX) {
            return Some(
                "Entra ID v1 tokens need an issuer entry for https://sts.windows.net/{tenantid}/",
            );
        }
        if iss.starts_with(ENTRA_V2_PREFIX) && iss.ends_with("/v2.0") {
            return Some(
                "Entra ID v2 tokens need an issuer entry for \
                 https://login.microsoftonline.com/{tenantid}/v2.0",
            );
        }
        None
    }
}

/// Checks the token's `tid` against `allowed_tenants`, when the issuer lists any.
fn check_tenant(issuer: &Issuer, tenant: Option<&str>) -> Result<(), AuthError> {
    if issuer.allowed_tenants.is_empty() {
        return Ok(());
    }
    let tenant = tenant.ok_or_else(|| AuthError::MissingClaim {
        claim: "tid".to_owned(),
    })?;
    if issuer
        .allowed_tenants
        .contains(&tenant.to_ascii_lowercase())
    {
        return Ok(());
    }
    Err(AuthError::TenantNotAllowed {
        issuer: issuer.name().to_owned(),
        tenant: truncate(tenant, 64),
    })
}
