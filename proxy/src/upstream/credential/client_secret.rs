//! `kind = "client_secret"`: a service principal with a client secret, through
//! azure_identity's `ClientSecretCredential`. The secret comes from a file or an
//! environment variable, never from the configuration file.

use std::path::PathBuf;

use azure_core::credentials::{AccessToken, Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};

use super::CredentialError;
use super::entra::EntraHttp;
use super::token_cache::TokenSource;
use crate::config::Config;

/// Where the client secret is read from.
#[derive(Debug)]
enum SecretLocation {
    File(PathBuf),
    Env(String),
}

/// Fetches service principal tokens. The secret is read at every fetch, so a rotated
/// secret file takes effect at the next refresh.
#[derive(Debug)]
pub(super) struct ClientSecretSource {
    tenant_id: String,
    client_id: String,
    secret: SecretLocation,
    http: EntraHttp,
}

impl ClientSecretSource {
    /// Reads the secret once, so a missing one fails at start.
    pub(super) fn new(
        config: &Config,
        http: EntraHttp,
    ) -> Result<ClientSecretSource, CredentialError> {
        let credential = &config.upstream.credential;
        let secret = match (
            &credential.client_secret_file,
            &credential.client_secret_env,
        ) {
            (Some(file), _) => SecretLocation::File(config.resolve(file.get_ref())),
            (None, Some(variable)) => SecretLocation::Env(variable.get_ref().clone()),
            (None, None) => {
                return Err(CredentialError::Setup(
                    "upstream.credential: kind = \"client_secret\" needs client_secret_file or client_secret_env"
                        .to_owned(),
                ));
            }
        };
        let (Some(tenant_id), Some(client_id)) = (&credential.tenant_id, &credential.client_id)
        else {
            return Err(CredentialError::Setup(
                "upstream.credential: kind = \"client_secret\" needs tenant_id and client_id"
                    .to_owned(),
            ));
        };
        let source = ClientSecretSource {
            tenant_id: tenant_id.get_ref().clone(),
            client_id: client_id.get_ref().clone(),
            secret,
            http,
        };
        source
            .read_secret()
            .map_err(|error| CredentialError::Setup(error.to_string()))?;
        tracing::info!(
            azure.tenant_id = %source.tenant_id,
            azure.client_id = %source.client_id,
            authority = %source.http.authority(),
            "Client secret credential configured"
        );
        Ok(source)
    }

    fn read_secret(&self) -> azure_core::Result<Secret> {
        let text = match &self.secret {
            SecretLocation::File(path) => std::fs::read_to_string(path).map_err(|error| {
                azure_core::Error::with_message(
                    ErrorKind::Credential,
                    format!("cannot read the client secret file {}: {error}", path.display()),
                )
            })?,
            SecretLocation::Env(variable) => std::env::var(variable).map_err(|_| {
                azure_core::Error::with_message(
                    ErrorKind::Credential,
                    format!("environment variable {variable} is not set; it must contain the client secret"),
                )
            })?,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                "the client secret is empty",
            ));
        }
        Ok(Secret::new(text.to_owned()))
    }
}

#[async_trait::async_trait]
impl TokenSource for ClientSecretSource {
    fn name(&self) -> &'static str {
        "client secret"
    }

    async fn fetch(&self, scope: &str) -> azure_core::Result<AccessToken> {
        #[cfg(test)]
        super::entra::ensure_loopback_authority(&self.http)?;
        let options = ClientSecretCredentialOptions {
            client_options: self.http.client_options(),
        };
        let credential = ClientSecretCredential::new(
            &self.tenant_id,
            self.client_id.clone(),
            self.read_secret()?,
            Some(options),
        )?;
        credential.get_token(&[scope], None).await
    }
}
