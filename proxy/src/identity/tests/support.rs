//! Test keys, token signing and an in-process issuer on 127.0.0.1.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::identity::{Authenticator, AuthenticatorOptions, IssuerConfig};

pub(super) const AUDIENCE: &str = "api://cosmoguard";

/// A signing key with its public JWK.
#[derive(Clone)]
pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) algorithm: Algorithm,
    pub(super) encoding: EncodingKey,
    pub(super) jwk: Value,
}

impl TestKey {
    pub(super) fn rsa_a() -> TestKey {
        TestKey::rsa("rsa-a", include_bytes!("../testdata/rsa-a.pem"))
    }

    pub(super) fn rsa_b() -> TestKey {
        TestKey::rsa("rsa-b", include_bytes!("../testdata/rsa-b.pem"))
    }

    pub(super) fn ec_p256() -> TestKey {
        let pem = include_bytes!("../testdata/ec-p256.pem");
        let encoding = EncodingKey::from_ec_pem(pem).expect("test EC key parses");
        TestKey::with_jwk("ec-p256", Algorithm::ES256, encoding)
    }

    pub(super) fn ed25519() -> TestKey {
        let pem = include_bytes!("../testdata/ed25519.pem");
        let encoding = EncodingKey::from_ed_pem(pem).expect("test Ed25519 key parses");
        let x = include_str!("../testdata/ed25519.x").trim();
        TestKey {
            kid: "ed25519".to_owned(),
            algorithm: Algorithm::EdDSA,
            encoding,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed25519", "use": "sig"}),
        }
    }

    fn rsa(kid: &str, pem: &[u8]) -> TestKey {
        let encoding = EncodingKey::from_rsa_pem(pem).expect("test RSA key parses");
        TestKey::with_jwk(kid, Algorithm::RS256, encoding)
    }

    fn with_jwk(kid: &str, algorithm: Algorithm, encoding: EncodingKey) -> TestKey {
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, algorithm)
            .expect("public JWK derives from the test key");
        let mut jwk = serde_json::to_value(jwk).expect("JWK serializes");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey {
            kid: kid.to_owned(),
            algorithm,
            encoding,
            jwk,
        }
    }

    /// Signs claims with this key, naming its kid.
    pub(super) fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(claims, Some(&self.kid))
    }

    pub(super) fn sign_with_kid(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("test token signs")
    }
}

pub(super) fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>()})
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock is after 1970")
        .as_secs() as i64
}

/// Claims of a valid token for `issuer`, valid for an hour from now.
pub(super) fn claims(issuer: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": issuer,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": "Test User",
        "groups": ["readers", "writers"],
        "roles": ["Data.Read"],
        "scp": "items.read items.write",
        "azp": "client-app",
    })
}

pub(super) fn bearer(token: &str) -> HeaderMap {
    authorization(&format!("Bearer {token}"))
}

pub(super) fn authorization(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(value).expect("test header is valid"),
    );
    headers
}

/// Shared, mutable behaviour of the test issuer.
struct ServerState {
    /// The `issuer` the discovery document names; the base URL when `None`.
    discovery_issuer: Option<String>,
    /// The `jwks_uri` the discovery document names; `{base}/jwks` when `None`.
    jwks_uri: Option<String>,
    jwks: Value,
    cache_control: Option<String>,
    hits: HashMap<String, usize>,
}

/// An OIDC issuer on 127.0.0.1: any path ending in `/.well-known/openid-configuration`
/// returns a discovery document pointing at `/jwks`.
pub(super) struct TestIssuer {
    pub(super) address: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<ServerState>>,
    down: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl TestIssuer {
    pub(super) async fn start(keys: &[&TestKey]) -> TestIssuer {
        TestIssuer::start_with(keys, None).await
    }

    /// Starts the issuer over TLS with a certificate for 127.0.0.1 signed by
    /// `testdata/test-ca.pem`.
    pub(super) async fn start_tls(keys: &[&TestKey]) -> TestIssuer {
        TestIssuer::start_with(keys, Some(tls_acceptor())).await
    }

    async fn start_with(keys: &[&TestKey], tls: Option<TlsAcceptor>) -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test issuer binds");
        let address = listener.local_addr().expect("listener has an address");
        let state = Arc::new(Mutex::new(ServerState {
            discovery_issuer: None,
            jwks_uri: None,
            jwks: jwks(keys),
            cache_control: None,
            hits: HashMap::new(),
        }));
        let down = Arc::new(AtomicBool::new(false));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{address}");
        let task = tokio::spawn(serve(
            listener,
            tls,
            base,
            Arc::clone(&state),
            Arc::clone(&down),
        ));
        TestIssuer {
            address,
            scheme,
            state,
            down,
            task,
        }
    }

    pub(super) fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    pub(super) fn set_keys(&self, keys: &[&TestKey]) {
        self.state.lock().expect("state lock").jwks = jwks(keys);
    }

    pub(super) fn set_jwks(&self, document: Value) {
        self.state.lock().expect("state lock").jwks = document;
    }

    pub(super) fn set_discovery_issuer(&self, issuer: &str) {
        self.state.lock().expect("state lock").discovery_issuer = Some(issuer.to_owned());
    }

    pub(super) fn set_jwks_uri(&self, uri: &str) {
        self.state.lock().expect("state lock").jwks_uri = Some(uri.to_owned());
    }

    pub(super) fn set_cache_control(&self, value: &str) {
        self.state.lock().expect("state lock").cache_control = Some(value.to_owned());
    }

    /// Makes every request fail with 503 (`true`) or succeed again (`false`).
    pub(super) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub(super) fn jwks_hits(&self) -> usize {
        self.hits("/jwks")
    }

    pub(super) fn hits(&self, path: &str) -> usize {
        let state = self.state.lock().expect("state lock");
        state.hits.get(path).copied().unwrap_or_default()
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    base: String,
    state: Arc<Mutex<ServerState>>,
    down: Arc<AtomicBool>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let base = base.clone();
        let state = Arc::clone(&state);
        let down = Arc::clone(&down);
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&request, &base, &state, &down);
                async move { Ok::<_, Infallible>(response) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    // A client that rejects the certificate ends the handshake here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

fn tls_acceptor() -> TlsAcceptor {
    let certificates = CertificateDer::pem_slice_iter(include_bytes!("../testdata/issuer-tls.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("test certificate parses");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../testdata/issuer-tls.key"))
        .expect("test TLS key parses");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .expect("test certificate fits its key");
    TlsAcceptor::from(Arc::new(config))
}

/// Returns the path of a file under `testdata/`.
pub(super) fn testdata_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/identity/testdata")
        .join(name)
}

fn respond(
    request: &Request<Incoming>,
    base: &str,
    state: &Mutex<ServerState>,
    down: &AtomicBool,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let mut state = state.lock().expect("state lock");
    *state.hits.entry(path.clone()).or_default() += 1;
    if down.load(Ordering::SeqCst) {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }

    if path.ends_with("/.well-known/openid-configuration") {
        let issuer = state.discovery_issuer.clone().unwrap_or(base.to_owned());
        let jwks_uri = state.jwks_uri.clone().unwrap_or(format!("{base}/jwks"));
        let document = json!({"issuer": issuer, "jwks_uri": jwks_uri});
        return json_response(&document, None);
    }
    if path == "/jwks" {
        return json_response(&state.jwks, state.cache_control.as_deref());
    }
    status(StatusCode::NOT_FOUND)
}

fn json_response(document: &Value, cache_control: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(document.to_string())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(value) = cache_control {
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_str(value).expect("cache-control is valid"),
        );
    }
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// Options for tests: plain http allowed, short waits.
pub(super) fn options() -> AuthenticatorOptions {
    AuthenticatorOptions {
        allow_plain_http: true,
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        key_fetch_wait: Duration::from_secs(2),
        ..AuthenticatorOptions::default()
    }
}

pub(super) fn issuer_config(issuer: &str) -> IssuerConfig {
    IssuerConfig::new(issuer, vec![AUDIENCE.to_owned()])
}

/// Starts an authenticator with the system clock and waits until it is ready.
pub(super) async fn ready_authenticator(
    configs: Vec<IssuerConfig>,
    registry: &prometheus::Registry,
) -> Authenticator {
    let authenticator =
        Authenticator::start(configs, options(), registry).expect("authenticator starts");
    assert!(
        authenticator.wait_ready(Duration::from_secs(5)).await,
        "authenticator became ready"
    );
    authenticator
}

/// Returns the value of one counter or gauge series, or 0 when it does not exist.
pub(super) fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let family = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == name);
    let Some(family) = family else {
        return 0.0;
    };
    let is_counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
    family
        .get_metric()
        .iter()
        .find(|metric| {
            labels.iter().all(|(name, value)| {
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == *name && label.value() == *value)
            })
        })
        .map(|metric| {
            if is_counter {
                metric.get_counter().get_value()
            } else {
                metric.get_gauge().get_value()
            }
        })
        .unwrap_or_default()
}

/// Returns a loopback address with nothing listening on it.
pub(super) async fn closed_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("probe binds");
    listener.local_addr().expect("probe has an address")
}
