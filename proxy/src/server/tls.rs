//! The data listener's TLS: a certificate chain and key from PEM files, HTTP/2 and
//! HTTP/1.1 offered by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the server certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {path}: {source}")]
    Certificate {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate file {path} contains no certificate")]
    NoCertificate { path: String },
    #[error("cannot read private key file {path}: {source}")]
    PrivateKey {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the certificate and private key do not form a valid TLS identity: {0}")]
    Invalid(#[from] rustls::Error),
}

/// Builds the server TLS configuration from PEM files.
pub fn server_config(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: certificate.display().to_string(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: certificate.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(private_key).map_err(|source| TlsError::PrivateKey {
        path: private_key.display().to_string(),
        source,
    })?;

    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
