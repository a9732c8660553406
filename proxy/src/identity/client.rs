//! The HTTP client for discovery and JWKS documents.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, USER_AGENT};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

use super::error::ConfigError;

/// Discovery and JWKS documents larger than this are rejected. Real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

const CLIENT_USER_AGENT: &str = concat!("cosmoguard/", env!("CARGO_PKG_VERSION"));

/// A fetched document with the freshness lifetime its server announced.
#[derive(Debug)]
pub(crate) struct Document {
    pub(crate) body: Bytes,
    /// `Cache-Control: max-age`, unless `no-cache` or `no-store` is also present.
    pub(crate) max_age: Option<Duration>,
}

/// A failure to fetch a document.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{url} uses plain http, which is not allowed")]
    PlainHttp { url: String },
    #[error("{url} is not a valid request URI")]
    InvalidUri { url: String },
    #[error("request to {url} failed: {error}")]
    Request { url: String, error: String },
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} returned HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("failed to read the response of {url}: {error}")]
    Body { url: String, error: String },
}

/// Settings of the issuer HTTP client.
#[derive(Clone, Debug)]
pub(crate) struct ClientSettings<'a> {
    pub(crate) allow_plain_http: bool,
    pub(crate) extra_ca_file: Option<&'a Path>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

/// A shared HTTPS client with the system roots, plus the optional extra CA.
#[derive(Clone, Debug)]
pub(crate) struct DocumentClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    allow_plain_http: bool,
    request_timeout: Duration,
}

impl DocumentClient {
    pub(crate) fn new(settings: &ClientSettings<'_>) -> Result<DocumentClient, ConfigError> {
        let roots = root_store(settings.extra_ca_file)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let builder = if settings.allow_plain_http {
            builder.https_or_http()
        } else {
            builder.https_only()
        };
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);

        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(DocumentClient {
            client,
            allow_plain_http: settings.allow_plain_http,
            request_timeout: settings.request_timeout,
        })
    }

    /// Fetches a JSON document, bounded by the request timeout and the size limit.
    /// Redirects are not followed: discovery and JWKS URLs are expected to be final.
    pub(crate) async fn get(&self, url: &Url) -> Result<Document, FetchError> {
        if url.scheme() == "http" && !self.allow_plain_http {
            return Err(FetchError::PlainHttp {
                url: url.to_string(),
            });
        }
        let timeout = self.request_timeout;
        match tokio::time::timeout(timeout, self.get_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
                timeout,
            }),
        }
    }

    async fn get_unbounded(&self, url: &Url) -> Result<Document, FetchError> {
        let uri: Uri = url.as_str().parse().map_err(|_| FetchError::InvalidUri {
            url: url.to_string(),
        })?;
        let request = Request::get(uri)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, CLIENT_USER_AGENT)
            .body(Empty::new())
            .map_err(|error| FetchError::Request {
                url: url.to_string(),
                error: error.to_string(),
            })?;

        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| FetchError::Request {
                url: url.to_string(),
                error: error_chain(&error),
            })?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status(),
            });
        }

        let max_age = max_age(response.headers());
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|error| FetchError::Body {
                url: url.to_string(),
                error: error.to_string(),
            })?
            .to_bytes();
        Ok(Document { body, max_age })
    }
}

/// Formats an error with its sources, because the legacy client's own message
/// ("client error (Connect)") hides the cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn root_store(extra_ca_file: Option<&Path>) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "Failed to load a system CA certificate");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(
        tls.system_roots = added,
        tls.ignored_roots = ignored,
        "Loaded system CA certificates for issuers"
    );

    if let Some(path) = extra_ca_file {
        add_ca_file(&mut roots, path)?;
    }
    Ok(roots)
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), ConfigError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iterator| iterator.collect::<Result<Vec<_>, _>>())
        .map_err(|error| ConfigError::CaFile {
            path: path.to_owned(),
            error,
        })?;
    if certificates.is_empty() {
        return Err(ConfigError::EmptyCaFile {
            path: path.to_owned(),
        });
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| ConfigError::InvalidCaCertificate {
                path: path.to_owned(),
                error,
            })?;
    }
    Ok(())
}

/// Reads `Cache-Control: max-age`. Directives are case-insensitive (RFC 9111).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let value = value.to_str().ok()?;
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, argument) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim().to_ascii_lowercase();
            match name.as_str() {
                "no-cache" | "no-store" => return None,
                "max-age" => {
                    let seconds = argument.trim().trim_matches('"').parse::<u64>().ok()?;
                    max_age = Some(Duration::from_secs(seconds));
                }
                _ => {}
            }
        }
    }
    max_age
}
