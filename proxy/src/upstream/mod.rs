//! Forwarding to the account: a pooled keep-alive client, header handling as HTTP
//! requires, and a fresh signature on every request at send time.
//!
//! Bodies stream both ways; only the account read is buffered, by the caller, because
//! its JSON is rewritten.

mod client;
mod headers;
pub mod signing;

use std::time::{Duration, SystemTime};

use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use url::Url;

use crate::body::ProxyBody;
use crate::classify::Classified;
use crate::config::UpstreamConfig;
use crate::error::ProxyError;

pub use client::ClientError;
pub use signing::MasterKey;

/// The account endpoint and the means to reach and sign for it.
#[derive(Debug)]
pub struct Upstream {
    client: client::HttpsClient,
    endpoint: Url,
    key: MasterKey,
    response_timeout: Duration,
}

impl Upstream {
    /// Builds the client. `ca_file` (resolved) replaces the system roots when given.
    pub fn new(
        config: &UpstreamConfig,
        ca_file: Option<&std::path::Path>,
        key: MasterKey,
        allow_plain_http: bool,
    ) -> Result<Upstream, ClientError> {
        let client = client::build(config, ca_file, allow_plain_http)?;
        Ok(Upstream {
            client,
            endpoint: config.endpoint.get_ref().clone(),
            key,
            response_timeout: config.response_timeout,
        })
    }

    /// The account endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends a request to the account with the caller's credentials replaced by the
    /// proxy's, and returns the response once its headers arrive.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        classified: &Classified,
    ) -> Result<Response<Incoming>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        parts.uri = self.upstream_uri(&parts.uri)?;
        headers::prepare_request_headers(&mut parts.headers, &self.endpoint);
        self.sign(&mut parts, classified)?;

        let response = tokio::time::timeout(
            self.response_timeout,
            self.client.request(Request::from_parts(parts, body)),
        )
        .await
        .map_err(|_| ProxyError::UpstreamTimeout(self.response_timeout))?
        .map_err(|error| ProxyError::UpstreamUnavailable(client::describe(&error)))?;

        let (mut parts, body) = response.into_parts();
        headers::prepare_response_headers(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }

    /// Keeps the caller's path and query exactly as received: the SDKs encode ids in
    /// different ways, and the signature covers the decoded form, not the spelling.
    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, ProxyError> {
        let path_and_query = uri.path_and_query().map_or("/", |value| value.as_str());
        let base = self.endpoint.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
            .parse()
            .map_err(|error| ProxyError::UpstreamInvalid(format!("cannot build the upstream URI: {error}")))
    }

    /// Sets a fresh `x-ms-date` and the master-key signature over it.
    fn sign(&self, parts: &mut http::request::Parts, classified: &Classified) -> Result<(), ProxyError> {
        let date = signing::format_date(SystemTime::now());
        let authorization = self.key.authorization(
            parts.method.as_str(),
            classified.signing_resource_type,
            &classified.signing_resource_link,
            &date,
        );
        let date = HeaderValue::from_str(&date)
            .map_err(|error| ProxyError::Credential(format!("invalid x-ms-date: {error}")))?;
        let authorization = HeaderValue::from_str(&authorization)
            .map_err(|error| ProxyError::Credential(format!("invalid signature header: {error}")))?;
        parts.headers.insert("x-ms-date", date);
        parts.headers.insert(http::header::AUTHORIZATION, authorization);
        Ok(())
    }
}
