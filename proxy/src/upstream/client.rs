//! The pooled HTTPS client to the account.

use std::path::Path;
use std::sync::Arc;

use http::Uri;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::pool::PoolSettings;
use crate::config::UpstreamConfig;

/// The maximum number of idle connections one worker keeps to the account.
const MAX_IDLE_CONNECTIONS: usize = 256;

/// Errors from building the upstream client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("CA file {path} contains no usable certificate")]
    NoCertificates { path: String },
    #[error("no system root certificates could be loaded; set upstream.ca_file")]
    NoSystemRoots,
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("upstream.endpoint {endpoint} is not a URI the connector can dial: {source}")]
    Endpoint {
        endpoint: String,
        source: http::uri::InvalidUri,
    },
}

pub(super) fn build(
    config: &UpstreamConfig,
    ca_file: Option<&Path>,
    allow_plain_http: bool,
) -> Result<PoolSettings, ClientError> {
    let roots = match ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots()?,
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));

    let builder = HttpsConnectorBuilder::new().with_tls_config(tls);
    let connector = if allow_plain_http {
        builder.https_or_http().enable_http1().wrap_connector(http)
    } else {
        builder.https_only().enable_http1().wrap_connector(http)
    };

    let endpoint = config.endpoint.get_ref();
    let origin = endpoint.origin().ascii_serialization();
    let endpoint: Uri = origin.parse().map_err(|source| ClientError::Endpoint {
        endpoint: endpoint.to_string(),
        source,
    })?;
    Ok(PoolSettings {
        connector,
        endpoint,
        idle_timeout: config.pool_idle_timeout,
        max_idle: MAX_IDLE_CONNECTIONS,
    })
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, ClientError> {
    let display = path.display().to_string();
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| ClientError::CaFile {
            path: display.clone(),
            source,
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(ClientError::NoCertificates { path: display });
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, ClientError> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(error = %error, "Skipped a system root certificate");
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(ClientError::NoSystemRoots);
    }
    Ok(roots)
}

/// Describes an error with its whole cause chain, for the audit record and logs.
pub(super) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
