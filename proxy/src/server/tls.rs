//! The data listener's TLS: a certificate chain and key from PEM files, HTTP/2 and
//! HTTP/1.1 offered by ALPN, and the files reloaded when they change, so a renewed
//! certificate (a cert-manager renewal, an updated Kubernetes Secret) needs no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// How often the certificate files are checked for changes.
const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Errors from loading the server certificate.
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

/// The server certificate in force, swapped when its files change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    current: ArcSwap<CertifiedKey>,
    certificate_path: PathBuf,
    private_key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded_digest: Mutex<[u8; 32]>,
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ReloadingCertificate {
    fn load(
        certificate: &Path,
        private_key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let (key, digest) = certified_key(certificate, private_key, &provider)?;
        Ok(ReloadingCertificate {
            current: ArcSwap::from_pointee(key),
            certificate_path: certificate.to_path_buf(),
            private_key_path: private_key.to_path_buf(),
            provider,
            loaded_digest: Mutex::new(digest),
        })
    }

    /// Reloads the files if their content changed. An invalid new pair is logged and the
    /// certificate in force keeps serving. Returns whether a new certificate is in force.
    pub fn reload_if_changed(&self) -> bool {
        let digest = match file_digest(&self.certificate_path, &self.private_key_path) {
            Ok(digest) => digest,
            Err(error) => {
                tracing::error!(%error, "Kept the current TLS certificate: cannot read the files");
                return false;
            }
        };
        let Ok(mut loaded) = self.loaded_digest.lock() else {
            return false;
        };
        if *loaded == digest {
            return false;
        }
        // Remember this version either way, so an invalid pair is reported once.
        *loaded = digest;
        match certified_key(
            &self.certificate_path,
            &self.private_key_path,
            &self.provider,
        ) {
            Ok((key, _)) => {
                self.current.store(Arc::new(key));
                tracing::info!(certificate = %self.certificate_path.display(), "Reloaded the TLS certificate");
                true
            }
            Err(error) => {
                tracing::error!(%error, "Kept the current TLS certificate: the new files are invalid");
                false
            }
        }
    }

    /// Polls the files until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        let certificate = self;
        crate::file_watch::poll_blocking(POLL_INTERVAL, "TLS certificate", move || {
            certificate.reload_if_changed()
        })
        .await;
    }
}

/// Builds the server TLS configuration from PEM files; the returned certificate handle
/// reloads them.
pub fn server_config(
    certificate: &Path,
    private_key: &Path,
) -> Result<(Arc<ServerConfig>, Arc<ReloadingCertificate>), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Arc::new(ReloadingCertificate::load(
        certificate,
        private_key,
        Arc::clone(&provider),
    )?);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

fn certified_key(
    certificate: &Path,
    private_key: &Path,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, [u8; 32]), TlsError> {
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
    let signing_key = provider.key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match()?;
    let digest = file_digest(certificate, private_key).unwrap_or_default();
    Ok((certified, digest))
}

fn file_digest(certificate: &Path, private_key: &Path) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read(certificate)?);
    hasher.update(std::fs::read(private_key)?);
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(directory: &Path, name: &str) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let certificate = directory.join("cert.pem");
        let key = directory.join("key.pem");
        std::fs::write(&certificate, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (certificate, key)
    }

    fn served_certificate(certificate: &ReloadingCertificate) -> Vec<u8> {
        certificate.current.load().cert[0].to_vec()
    }

    #[test]
    fn reloads_changed_pair_and_keeps_old_on_error() {
        let directory = tempfile::tempdir().unwrap();
        let (certificate_path, key_path) = write_pair(directory.path(), "one.test");
        let (_config, certificate) = server_config(&certificate_path, &key_path).unwrap();
        let first = served_certificate(&certificate);
        assert!(
            !certificate.reload_if_changed(),
            "unchanged files are not reloaded"
        );

        write_pair(directory.path(), "two.test");
        assert!(certificate.reload_if_changed());
        let second = served_certificate(&certificate);
        assert_ne!(first, second);

        std::fs::write(&key_path, "not a key").unwrap();
        assert!(!certificate.reload_if_changed());
        assert_eq!(
            served_certificate(&certificate),
            second,
            "the old certificate keeps serving"
        );
    }

    #[test]
    fn rejects_key_of_another_certificate() {
        let directory = tempfile::tempdir().unwrap();
        let (certificate_path, _) = write_pair(directory.path(), "one.test");
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = write_pair(other.path(), "two.test");
        let error = server_config(&certificate_path, &other_key).unwrap_err();
        assert!(matches!(error, TlsError::Invalid(_)), "{error}");
    }
}
