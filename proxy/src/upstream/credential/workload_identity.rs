//! `kind = "workload_identity"`: AKS workload identity. The federated Kubernetes service
//! account token is exchanged for an Entra ID token through azure_identity's
//! `WorkloadIdentityCredential`.

use std::path::PathBuf;

use azure_core::credentials::{AccessToken, TokenCredential};
use azure_identity::{
    ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::CredentialError;
use super::entra::EntraHttp;
use super::token_cache::TokenSource;
use crate::config::Config;

/// The variables the AKS workload identity webhook sets in the pod.
const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// Fetches workload-identity tokens. A new azure_identity credential is built for every
/// fetch, so the token file is read afresh (the kubelet rotates it) and azure_identity's
/// internal cache never hands back the token being replaced.
#[derive(Debug)]
pub(super) struct WorkloadIdentitySource {
    tenant_id: String,
    client_id: String,
    token_file: PathBuf,
    http: EntraHttp,
}

impl WorkloadIdentitySource {
    /// Resolves each setting from the configuration, then from the webhook's variables.
    pub(super) fn new(
        config: &Config,
        http: EntraHttp,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkloadIdentitySource, CredentialError> {
        let credential = &config.upstream.credential;
        let setting = |field: &Option<toml::Spanned<String>>, variable: &str| {
            field
                .as_ref()
                .map(|value| value.get_ref().clone())
                .or_else(|| env(variable))
        };
        let tenant_id = setting(&credential.tenant_id, AZURE_TENANT_ID);
        let client_id = setting(&credential.client_id, AZURE_CLIENT_ID);
        let token_file = match &credential.token_file {
            Some(path) => Some(config.resolve(path.get_ref())),
            None => env(AZURE_FEDERATED_TOKEN_FILE).map(PathBuf::from),
        };

        let mut missing = Vec::new();
        if tenant_id.is_none() {
            missing.push(format!("tenant_id (or {AZURE_TENANT_ID})"));
        }
        if client_id.is_none() {
            missing.push(format!("client_id (or {AZURE_CLIENT_ID})"));
        }
        if token_file.is_none() {
            missing.push(format!("token_file (or {AZURE_FEDERATED_TOKEN_FILE})"));
        }
        let (Some(tenant_id), Some(client_id), Some(token_file)) =
            (tenant_id, client_id, token_file)
        else {
            return Err(CredentialError::Setup(format!(
                "upstream.credential: kind = \"workload_identity\" is missing {}; set them in the \
                 configuration or let the AKS workload identity webhook set the variables",
                missing.join(", ")
            )));
        };
        tracing::info!(
            azure.tenant_id = %tenant_id,
            azure.client_id = %client_id,
            token_file = %token_file.display(),
            authority = %http.authority(),
            "Workload identity configured"
        );
        Ok(WorkloadIdentitySource {
            tenant_id,
            client_id,
            token_file,
            http,
        })
    }
}

#[async_trait::async_trait]
impl TokenSource for WorkloadIdentitySource {
    fn name(&self) -> &'static str {
        "workload identity"
    }

    async fn fetch(&self, scope: &str) -> azure_core::Result<AccessToken> {
        #[cfg(test)]
        super::entra::ensure_loopback_authority(&self.http)?;
        // NOTE: azure_identity 1.0 reads the token file synchronously and sends its
        // content untrimmed; projected service account tokens have no trailing newline.
        let credential =
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: self.http.client_options(),
                },
                client_id: Some(self.client_id.clone()),
                tenant_id: Some(self.tenant_id.clone()),
                token_file_path: Some(self.token_file.clone()),
            }))?;
        credential.get_token(&[scope], None).await
    }
}
