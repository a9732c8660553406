//! What the Entra ID modes share: the HTTP options every azure_identity credential gets.

use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use url::Url;

/// The HTTP options for azure_identity credentials.
#[derive(Clone, Debug, Default)]
pub(super) struct EntraHttp {
    /// Replaces azure_core's default reqwest client; tests pass one that trusts a test CA.
    pub(super) transport: Option<Transport>,
    /// The token authority, when configured; otherwise azure_identity reads
    /// `AZURE_AUTHORITY_HOST` and falls back to the public cloud.
    pub(super) cloud: Option<Arc<CloudConfiguration>>,
}

impl EntraHttp {
    pub(super) fn new(transport: Option<Transport>, authority_host: Option<&Url>) -> EntraHttp {
        let cloud = authority_host.map(|host| {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.as_str().trim_end_matches('/').to_owned();
            Arc::new(CloudConfiguration::from(custom))
        });
        EntraHttp { transport, cloud }
    }

    /// Options with azure_core's retries turned off: the token cache retries with its own
    /// backoff and counts every attempt.
    pub(super) fn client_options(&self) -> ClientOptions {
        ClientOptions {
            retry: RetryOptions::none(),
            transport: self.transport.clone(),
            cloud: self.cloud.clone(),
            ..ClientOptions::default()
        }
    }

    /// The configured authority, for logs.
    pub(super) fn authority(&self) -> String {
        match self.cloud.as_deref() {
            Some(CloudConfiguration::Custom(custom)) => custom.authority_host.clone(),
            _ => std::env::var("AZURE_AUTHORITY_HOST")
                .unwrap_or_else(|_| "https://login.microsoftonline.com".to_owned()),
        }
    }
}

/// Whether a URL names a loopback host (127.0.0.0/8, [::1] or localhost).
#[cfg(test)]
pub(super) fn is_loopback(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    }
}

/// Unit tests must reach only loopback stand-ins, never a real token authority.
#[cfg(test)]
pub(super) fn ensure_loopback_authority(http: &EntraHttp) -> azure_core::Result<()> {
    let authority = http.authority();
    if http.cloud.is_none() || !is_loopback(&authority) {
        return Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!("tests must set a loopback authority_host, not {authority}"),
        ));
    }
    Ok(())
}
