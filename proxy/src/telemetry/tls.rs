//! TLS to an `https` collector: the trusted roots and the optional client certificate for
//! mutual TLS, read and checked once when export starts, then handed to the gRPC or the
//! HTTP exporter. Both use rustls with aws-lc-rs, as the rest of the proxy does. tonic
//! picks it because the build has no other rustls provider.
//!
//! A CA file replaces the system roots, as `upstream.ca_file` does for the account.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::tonic_types::transport::{ClientTlsConfig, Identity};
use rustls::RootCertStore;
use rustls::client::WantsClientCert;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::settings::{self, ClientFiles, TlsFile, TlsFiles};
use crate::config::TelemetryConfig;

/// A failure to set up TLS to the collector.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectorTlsError {
    /// A file that cannot be used, with the configuration key or variable that named it.
    #[error("{key}: {message}")]
    File { key: &'static str, message: String },
    #[error("failed to set up TLS to the collector: {0}")]
    Tls(#[from] rustls::Error),
}

/// The checked roots and client identity of one exporter.
pub(crate) struct CollectorTls {
    roots: RootCertStore,
    client: Option<ClientPem>,
    /// The HTTP exporter's configuration. Building it checks that the client key belongs
    /// to the client certificate, for both exporters.
    http_config: rustls::ClientConfig,
}

/// The client certificate chain and private key as read, for the gRPC exporter, which
/// parses PEM itself.
struct ClientPem {
    certificate: Vec<u8>,
    key: Vec<u8>,
}

/// Shows counts only, never the private key.
impl fmt::Debug for CollectorTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorTls")
            .field("roots", &self.roots.len())
            .field("client_certificate", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl CollectorTls {
    /// Reads and checks every file in `files`. Without a CA file, the system roots are
    /// trusted.
    pub(crate) fn load(files: &TlsFiles) -> Result<CollectorTls, CollectorTlsError> {
        let roots = match &files.ca_file {
            Some(file) => roots_from_file(file)?,
            None => system_roots()?,
        };
        CollectorTls::with_roots(roots, files)
    }

    fn with_roots(
        roots: RootCertStore,
        files: &TlsFiles,
    ) -> Result<CollectorTls, CollectorTlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone());
        let (http_config, client) = match &files.client {
            Some(files) => {
                let (config, pem) = with_client_certificate(builder, files)?;
                (config, Some(pem))
            }
            None => (builder.with_no_client_auth(), None),
        };
        Ok(CollectorTls {
            roots,
            client,
            http_config,
        })
    }

    /// Returns the gRPC exporter's TLS settings. The server name is the endpoint's host.
    pub(crate) fn grpc_config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new()
            .trust_anchors(self.roots.roots.clone())
            // gRPC runs over HTTP/2 only. TLS terminators that relay TCP, such as stunnel or
            // a load balancer in TCP mode, often negotiate no ALPN protocol, and without
            // this setting tonic rejects such a connection.
            .assume_http2(true);
        if let Some(client) = &self.client {
            config = config.identity(Identity::from_pem(&client.certificate, &client.key));
        }
        config
    }

    /// Builds the HTTP exporter's blocking client. Must not run on an async worker thread,
    /// because the client starts and stops a runtime of its own.
    pub(crate) fn http_client(
        self,
        timeout: Duration,
    ) -> Result<reqwest::blocking::Client, reqwest::Error> {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .tls_backend_preconfigured(self.http_config)
            .build()
    }
}

/// A problem with the TLS files of a `[telemetry]` section.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TlsProblem {
    /// The configuration key of the file, when the problem is about one file.
    pub(crate) key: Option<&'static str>,
    pub(crate) message: String,
}

/// Checks the TLS files that `config` sets, without the environment, for `cosmoguard
/// check`: a client certificate without its key, files for a plain http endpoint and, when
/// `read_files` is set, files that cannot be read or used.
pub(crate) fn check_tls_config(
    config: &TelemetryConfig,
    base_dir: &Path,
    read_files: bool,
) -> Result<(), TlsProblem> {
    if !config.enabled {
        return Ok(());
    }
    let files = settings::resolve_config_tls_files(config, base_dir)
        .map_err(|message| TlsProblem { key: None, message })?;
    if !read_files {
        return Ok(());
    }
    check_files(&files).map_err(|error| {
        let key = match &error {
            CollectorTlsError::File { key, .. } => Some(*key),
            CollectorTlsError::Tls(_) => None,
        };
        TlsProblem {
            key,
            message: error.to_string(),
        }
    })
}

/// Reads and checks the files in `files` as [`CollectorTls::load`] does, but without
/// loading the system roots, for `cosmoguard check`.
fn check_files(files: &TlsFiles) -> Result<(), CollectorTlsError> {
    let roots = match &files.ca_file {
        Some(file) => roots_from_file(file)?,
        None => RootCertStore::empty(),
    };
    CollectorTls::with_roots(roots, files).map(drop)
}

fn roots_from_file(file: &TlsFile) -> Result<RootCertStore, CollectorTlsError> {
    let certificates = read_certificates(file, "a PEM file of the collector's CA certificates")?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate).map_err(|error| {
            file_error(
                file,
                format!(
                    "{} contains a CA certificate that cannot be used: {error}; set it to a \
                     PEM file of valid CA certificates",
                    file.path.display()
                ),
            )
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, CollectorTlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "Skipped a system root certificate for the OTLP collector");
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(CollectorTlsError::File {
            key: "telemetry.ca_file",
            message: "not set, and no system root certificates could be loaded; set it to a \
                      PEM file of the collector's CA certificates"
                .to_owned(),
        });
    }
    Ok(roots)
}

fn with_client_certificate(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, WantsClientCert>,
    files: &ClientFiles,
) -> Result<(rustls::ClientConfig, ClientPem), CollectorTlsError> {
    let certificate_pem = read_file(&files.certificate)?;
    let chain = parse_certificates(
        &files.certificate,
        &certificate_pem,
        "the PEM certificate chain the proxy presents, its own certificate first",
    )?;
    let key_pem = read_file(&files.key)?;
    let key = parse_private_key(&files.key, &key_pem)?;

    let config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => file_error(
                &files.key,
                format!(
                    "{} is not the private key of the certificate {} ({}); set the key that \
                     belongs to that certificate",
                    files.key.path.display(),
                    files.certificate.path.display(),
                    files.certificate.key
                ),
            ),
            other => file_error(
                &files.key,
                format!(
                    "{} cannot be used as a client key: {other}; use an RSA, ECDSA or \
                     Ed25519 key",
                    files.key.path.display()
                ),
            ),
        })?;
    let pem = ClientPem {
        certificate: certificate_pem,
        key: key_pem,
    };
    Ok((config, pem))
}

fn read_file(file: &TlsFile) -> Result<Vec<u8>, CollectorTlsError> {
    std::fs::read(&file.path).map_err(|error| {
        file_error(
            file,
            format!(
                "cannot read {}: {error}; set it to a readable PEM file",
                file.path.display()
            ),
        )
    })
}

fn read_certificates(
    file: &TlsFile,
    expected: &str,
) -> Result<Vec<CertificateDer<'static>>, CollectorTlsError> {
    let pem = read_file(file)?;
    parse_certificates(file, &pem, expected)
}

/// Parses every certificate in `pem`. `expected` describes the right content for the fix.
fn parse_certificates(
    file: &TlsFile,
    pem: &[u8],
    expected: &str,
) -> Result<Vec<CertificateDer<'static>>, CollectorTlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid_pem(file, &error, expected))?;
    if certificates.is_empty() {
        return Err(file_error(
            file,
            format!(
                "{} contains no PEM certificate; set it to {expected}",
                file.path.display()
            ),
        ));
    }
    Ok(certificates)
}

fn parse_private_key(
    file: &TlsFile,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, CollectorTlsError> {
    const EXPECTED: &str =
        "the unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) of the client certificate";
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        pem::Error::NoItemsFound => file_error(
            file,
            format!(
                "{} contains no PEM private key; set it to {EXPECTED}",
                file.path.display()
            ),
        ),
        other => invalid_pem(file, &other, EXPECTED),
    })
}

fn invalid_pem(file: &TlsFile, error: &pem::Error, expected: &str) -> CollectorTlsError {
    file_error(
        file,
        format!(
            "{} is not a valid PEM file: {error}; set it to {expected}",
            file.path.display()
        ),
    )
}

fn file_error(file: &TlsFile, message: String) -> CollectorTlsError {
    CollectorTlsError::File {
        key: file.key,
        message,
    }
}
