//! Forwarding to the account: a pooled keep-alive client, header handling as HTTP
//! requires, and a fresh signature on every request at send time.
//!
//! Bodies stream both ways; only the account read is buffered, by the caller, because
//! its JSON is rewritten.

mod client;
pub mod credential;
mod headers;

pub use headers::remove_hop_by_hop;
mod pool;
pub mod signing;

use std::time::Duration;

use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use url::Url;

use crate::body::ProxyBody;
use crate::classify::Classified;
use crate::config::UpstreamConfig;
use crate::error::ProxyError;

pub use client::ClientError;
pub use credential::{Credential, CredentialError, CredentialOptions, CredentialReadiness};
pub use signing::MasterKey;

/// The account endpoint and the means to reach and sign for it.
#[derive(Debug)]
pub struct Upstream {
    pool: pool::ConnectionPool,
    settings: pool::PoolSettings,
    endpoint: Url,
    /// The `Host` header every request to the account carries.
    host: Option<HeaderValue>,
    /// The endpoint's path without its trailing `/`, put before each request's path.
    base_path: String,
    credential: std::sync::Arc<Credential>,
    response_timeout: Duration,
}

impl Upstream {
    /// Builds the client. `ca_file` (resolved) replaces the system roots when given.
    pub fn new(
        config: &UpstreamConfig,
        ca_file: Option<&std::path::Path>,
        credential: Credential,
        allow_plain_http: bool,
    ) -> Result<Upstream, ClientError> {
        let settings = client::build(config, ca_file, allow_plain_http)?;
        let endpoint = config.endpoint.get_ref().clone();
        Ok(Upstream {
            pool: pool::ConnectionPool::new(settings.clone()),
            settings,
            host: headers::host_header(&endpoint),
            base_path: endpoint.path().trim_end_matches('/').to_owned(),
            endpoint,
            credential: std::sync::Arc::new(credential),
            response_timeout: config.response_timeout,
        })
    }

    /// Returns the same upstream with a connection pool of its own, for a connection
    /// worker: a pooled connection is driven on the runtime that opened it, so sharing
    /// one pool between workers would cost a thread wake-up per request.
    pub fn with_own_pool(&self) -> Upstream {
        Upstream {
            pool: pool::ConnectionPool::new(self.settings.clone()),
            settings: self.settings.clone(),
            host: self.host.clone(),
            base_path: self.base_path.clone(),
            endpoint: self.endpoint.clone(),
            credential: std::sync::Arc::clone(&self.credential),
            response_timeout: self.response_timeout,
        }
    }

    /// The account endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends a request to the account with the caller's credentials replaced by the
    /// proxy's, and returns the response once its headers arrive. The request's hop-by-hop
    /// headers must already be removed ([`remove_hop_by_hop`]). A response that rejects
    /// the proxy's credential triggers one credential refresh; it still goes to the caller.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        classified: &Classified,
    ) -> Result<Response<Incoming>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        parts.uri = self.upstream_uri(&parts.uri)?;
        // The account connection is HTTP/1.1 whatever the caller spoke to the proxy.
        parts.version = http::Version::HTTP_11;
        headers::prepare_request_headers(&mut parts.headers, self.host.as_ref());
        let generation = self.sign(&mut parts, classified).await?;

        let response = tokio::time::timeout(
            self.response_timeout,
            self.pool.send(Request::from_parts(parts, body)),
        )
        .await
        .map_err(|_| ProxyError::UpstreamTimeout(self.response_timeout))?
        .map_err(|error| ProxyError::UpstreamUnavailable(client::describe(&error)))?;

        if rejects_credential(&response) {
            tracing::warn!(
                http.response.status_code = response.status().as_u16(),
                substatus = header_text(response.headers(), "x-ms-substatus"),
                "The account rejected the proxy's credential"
            );
            self.credential.rejected(generation);
        }

        let (mut parts, body) = response.into_parts();
        headers::prepare_response_headers(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }

    /// Returns the request target for the account's connection (origin form), keeping the
    /// caller's path and query exactly as received: the SDKs encode ids in different ways,
    /// and the signature covers the decoded form, not the spelling.
    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, ProxyError> {
        let path_and_query = match uri.path_and_query() {
            Some(value) if self.base_path.is_empty() => value.clone(),
            Some(value) => self.prefixed(value.as_str())?,
            None => self.prefixed("/")?,
        };
        Ok(Uri::from(path_and_query))
    }

    fn prefixed(&self, path_and_query: &str) -> Result<PathAndQuery, ProxyError> {
        let base = &self.base_path;
        PathAndQuery::try_from(format!("{base}{path_and_query}")).map_err(|error| {
            ProxyError::UpstreamInvalid(format!("cannot build the upstream URI: {error}"))
        })
    }

    /// Sets a fresh `x-ms-date` and the credential's `Authorization` for it. Returns the
    /// generation of the token or key used.
    async fn sign(
        &self,
        parts: &mut http::request::Parts,
        classified: &Classified,
    ) -> Result<u64, ProxyError> {
        let date = signing::current_date();
        let date_text = date
            .to_str()
            .map_err(|error| ProxyError::Credential(format!("invalid x-ms-date: {error}")))?;
        let signed = self
            .credential
            .authorization(
                parts.method.as_str(),
                classified.signing_resource_type,
                &classified.signing_resource_link,
                date_text,
            )
            .await
            .map_err(|error| ProxyError::Credential(error.to_string()))?;
        parts.headers.insert(&headers::X_MS_DATE, date);
        parts
            .headers
            .insert(http::header::AUTHORIZATION, signed.header);
        Ok(signed.generation)
    }

    /// Returns a handle for `/readyz` that reports whether the credential can sign now.
    pub fn credential_readiness(&self) -> CredentialReadiness {
        self.credential.readiness()
    }
}

/// Checks whether the account rejected the credential itself: 401, or 403 with substatus
/// 5300 (the Entra ID token is invalid or expired), after which SDKs refresh their token.
fn rejects_credential<B>(response: &Response<B>) -> bool {
    match response.status() {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::FORBIDDEN => {
            header_text(response.headers(), "x-ms-substatus").as_deref() == Some("5300")
        }
        _ => false,
    }
}

fn header_text(headers: &http::HeaderMap, name: &str) -> Option<String> {
    Some(headers.get(name)?.to_str().ok()?.trim().to_owned())
}
