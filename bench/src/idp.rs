//! A local OIDC issuer for the bench: the discovery document and JWKS for the suite's keys,
//! plus an App Service managed-identity token endpoint, so the proxy's Entra signing mode
//! can run against loopback only.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::backend::{ServerBody, serve};
use crate::mint::{SigningKey, jwk_set, unix_now};

/// The path of the managed-identity token endpoint; `IDENTITY_ENDPOINT` points here.
pub const MANAGED_IDENTITY_PATH: &str = "/msi/token";

/// The documents the issuer serves.
#[derive(Debug)]
struct Documents {
    discovery: Bytes,
    jwks: Bytes,
    identity_header: String,
}

/// Binds `address` and serves the issuer until the process ends. `identity_header` is the
/// secret the managed-identity endpoint expects in `x-identity-header`.
pub async fn run(
    address: SocketAddr,
    keys: Vec<SigningKey>,
    identity_header: String,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    println!("listening on {local}");
    serve_on(listener, keys, identity_header).await
}

/// Serves the issuer on a bound listener; its address is the issuer URL's authority.
pub async fn serve_on(
    listener: TcpListener,
    keys: Vec<SigningKey>,
    identity_header: String,
) -> anyhow::Result<()> {
    let issuer = format!("http://{}", listener.local_addr()?);
    let discovery = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    });
    let documents = Arc::new(Documents {
        discovery: Bytes::from(serde_json::to_vec(&discovery)?),
        jwks: Bytes::from(serde_json::to_vec(&jwk_set(&keys)?)?),
        identity_header,
    });
    serve(listener, None, move |request| {
        let documents = Arc::clone(&documents);
        async move { documents.handle(&request) }
    })
    .await;
    Ok(())
}

impl Documents {
    fn handle(&self, request: &Request<Incoming>) -> Response<ServerBody> {
        match request.uri().path() {
            "/.well-known/openid-configuration" => json(StatusCode::OK, self.discovery.clone()),
            "/jwks" => json(StatusCode::OK, self.jwks.clone()),
            MANAGED_IDENTITY_PATH => self.managed_identity_token(request),
            _ => json(
                StatusCode::NOT_FOUND,
                Bytes::from_static(br#"{"error":"not_found"}"#),
            ),
        }
    }

    /// Returns a token as App Service does: `expires_on` is a string of Unix seconds.
    fn managed_identity_token(&self, request: &Request<Incoming>) -> Response<ServerBody> {
        let header_ok = request
            .headers()
            .get("x-identity-header")
            .is_some_and(|value| value.as_bytes() == self.identity_header.as_bytes());
        if !header_ok {
            return json(
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(br#"{"error":"invalid x-identity-header"}"#),
            );
        }
        let body = serde_json::json!({
            "access_token": "bench-entra-access-token",
            "expires_on": (unix_now() + 3600).to_string(),
            "token_type": "Bearer",
            "resource": "https://cosmos.azure.com",
        });
        json(StatusCode::OK, Bytes::from(body.to_string()))
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<ServerBody> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
