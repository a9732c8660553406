//! `kind = "managed_identity"`: a system- or user-assigned managed identity through
//! azure_identity's `ManagedIdentityCredential`.
//!
//! azure_identity 1.0 uses the App Service protocol when `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` are set, and IMDS at 169.254.169.254 otherwise.

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

use super::CredentialError;
use super::entra::EntraHttp;
use super::token_cache::TokenSource;
use crate::config::CredentialConfig;

const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
const IDENTITY_HEADER: &str = "IDENTITY_HEADER";

/// Fetches managed-identity tokens. A new azure_identity credential is built for every
/// fetch, so its internal cache never hands back the token being replaced.
#[derive(Debug)]
pub(super) struct ManagedIdentitySource {
    user_assigned: Option<UserAssignedId>,
    http: EntraHttp,
}

impl ManagedIdentitySource {
    /// Checks the environment and builds the credential once, so a setup azure_identity
    /// rejects fails at start rather than at the first refresh.
    pub(super) fn new(
        config: &CredentialConfig,
        http: EntraHttp,
    ) -> Result<ManagedIdentitySource, CredentialError> {
        let user_assigned = user_assigned_id(config);
        check_environment(config)?;
        let source = ManagedIdentitySource {
            user_assigned,
            http,
        };
        source.build().map_err(|error| {
            CredentialError::Setup(format!(
                "upstream.credential: cannot set up the managed identity: {error}"
            ))
        })?;
        Ok(source)
    }

    fn build(&self) -> azure_core::Result<std::sync::Arc<ManagedIdentityCredential>> {
        #[cfg(test)]
        ensure_loopback_endpoint()?;
        ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: self.user_assigned.clone(),
            client_options: self.http.client_options(),
        }))
    }
}

#[async_trait::async_trait]
impl TokenSource for ManagedIdentitySource {
    fn name(&self) -> &'static str {
        "managed identity"
    }

    async fn fetch(&self, scope: &str) -> azure_core::Result<AccessToken> {
        self.build()?.get_token(&[scope], None).await
    }
}

fn user_assigned_id(config: &CredentialConfig) -> Option<UserAssignedId> {
    let value =
        |field: &Option<toml::Spanned<String>>| field.as_ref().map(|id| id.get_ref().clone());
    value(&config.client_id)
        .map(UserAssignedId::ClientId)
        .or_else(|| value(&config.object_id).map(UserAssignedId::ObjectId))
        .or_else(|| value(&config.resource_id).map(UserAssignedId::ResourceId))
}

/// Logs which protocol the credential will use, and rejects an IMDS fallback when the
/// configuration requires the App Service endpoint.
fn check_environment(config: &CredentialConfig) -> Result<(), CredentialError> {
    let endpoint = std::env::var(IDENTITY_ENDPOINT).ok();
    let has_header = std::env::var_os(IDENTITY_HEADER).is_some();
    match endpoint {
        Some(endpoint) if has_header => {
            tracing::info!(identity.endpoint = %endpoint, "Managed identity uses the App Service endpoint");
            Ok(())
        }
        _ if config.requires_identity_endpoint() => Err(CredentialError::Setup(format!(
            "upstream.credential: require_identity_endpoint = true, but {IDENTITY_ENDPOINT} and \
             {IDENTITY_HEADER} are not both set; set them to the identity endpoint, or remove \
             require_identity_endpoint to use IMDS"
        ))),
        _ => {
            tracing::info!(
                "{IDENTITY_ENDPOINT} and {IDENTITY_HEADER} are not set; managed identity uses \
                 IMDS at 169.254.169.254"
            );
            Ok(())
        }
    }
}

/// Unit tests must reach a loopback stand-in, never IMDS or a real identity endpoint.
#[cfg(test)]
fn ensure_loopback_endpoint() -> azure_core::Result<()> {
    let endpoint = std::env::var(IDENTITY_ENDPOINT).unwrap_or_default();
    if std::env::var_os(IDENTITY_HEADER).is_none() || !super::entra::is_loopback(&endpoint) {
        return Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "tests must set {IDENTITY_HEADER} and a loopback {IDENTITY_ENDPOINT}, not {endpoint:?}"
            ),
        ));
    }
    Ok(())
}
