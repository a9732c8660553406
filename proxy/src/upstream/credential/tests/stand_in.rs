//! Loopback stand-ins that speak the real protocols: the App Service managed-identity
//! endpoint and an https Entra ID token authority with a CA generated per test.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The secret the App Service stand-in expects in `x-identity-header`.
pub(super) const IDENTITY_HEADER_VALUE: &str = "stand-in-identity-header";

/// The replies a stand-in gives to token requests, changeable while it runs.
#[derive(Debug)]
pub(super) struct Behaviour {
    /// Token lifetime in seconds.
    pub(super) lifetime_seconds: AtomicU64,
    /// Delay before replying, in milliseconds, for requests after the first `fast_requests`.
    pub(super) delay_ms: AtomicU64,
    pub(super) fast_requests: AtomicUsize,
    /// Requests after this many successes get 500.
    pub(super) fail_after: AtomicUsize,
}

impl Behaviour {
    pub(super) fn new(lifetime_seconds: u64) -> Behaviour {
        Behaviour {
            lifetime_seconds: AtomicU64::new(lifetime_seconds),
            delay_ms: AtomicU64::new(0),
            fast_requests: AtomicUsize::new(usize::MAX),
            fail_after: AtomicUsize::new(usize::MAX),
        }
    }
}

/// A running stand-in: its address, request count and the requests it received.
#[derive(Debug)]
pub(super) struct StandIn {
    pub(super) address: SocketAddr,
    pub(super) requests: Arc<AtomicUsize>,
    pub(super) received: Arc<Mutex<Vec<Received>>>,
    /// The CA certificate (PEM) that signed the server certificate, for https stand-ins.
    pub(super) ca_pem: Option<String>,
}

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
pub(super) struct Received {
    pub(super) path: String,
    pub(super) query: HashMap<String, String>,
    pub(super) headers: http::HeaderMap,
    pub(super) form: HashMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    AppService,
    Authority,
}

impl StandIn {
    /// Starts an App Service managed-identity endpoint on plain http.
    pub(super) async fn app_service(behaviour: Behaviour) -> StandIn {
        StandIn::start(Protocol::AppService, behaviour, None).await
    }

    /// Starts an https token authority with a certificate for 127.0.0.1 from a fresh CA.
    pub(super) async fn authority(behaviour: Behaviour) -> StandIn {
        let crate::test_tls::LoopbackTls {
            acceptor, ca_pem, ..
        } = crate::test_tls::loopback_tls();
        let mut stand_in = StandIn::start(Protocol::Authority, behaviour, Some(acceptor)).await;
        stand_in.ca_pem = Some(ca_pem);
        stand_in
    }

    /// The value for `IDENTITY_ENDPOINT`.
    pub(super) fn identity_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.address)
    }

    pub(super) fn authority_host(&self) -> String {
        format!("https://{}", self.address)
    }

    pub(super) fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub(super) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn start(protocol: Protocol, behaviour: Behaviour, tls: Option<TlsAcceptor>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(behaviour);
        let state = Arc::new(Handler {
            protocol,
            requests: Arc::clone(&requests),
            received: Arc::clone(&received),
            behaviour,
        });
        tokio::spawn(accept_loop(listener, tls, state));
        StandIn {
            address,
            requests,
            received,
            ca_pem: None,
        }
    }
}

#[derive(Debug)]
struct Handler {
    protocol: Protocol,
    requests: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Behaviour>,
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, handler: Arc<Handler>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let handler = Arc::clone(&handler);
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler.handle(request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

impl Handler {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let number = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        let received = Received {
            path: parts.uri.path().to_owned(),
            query: pairs(parts.uri.query().unwrap_or_default().as_bytes()),
            headers: parts.headers.clone(),
            form: pairs(&body),
        };
        self.received.lock().unwrap().push(received.clone());

        if number > self.behaviour.fast_requests.load(Ordering::SeqCst) {
            let delay = self.behaviour.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if number > self.behaviour.fail_after.load(Ordering::SeqCst) {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"stand-in failure"}"#.to_owned(),
            );
        }
        let lifetime = self.behaviour.lifetime_seconds.load(Ordering::SeqCst);
        let token = format!("stand-in-token-{number}");
        match self.protocol {
            Protocol::AppService => self.app_service_reply(&received, &token, lifetime),
            Protocol::Authority => authority_reply(&received, &token, lifetime),
        }
    }

    fn app_service_reply(
        &self,
        received: &Received,
        token: &str,
        lifetime: u64,
    ) -> Response<Full<Bytes>> {
        let header = received.headers.get("x-identity-header");
        if header.is_none_or(|value| value != IDENTITY_HEADER_VALUE) {
            return json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"missing x-identity-header"}"#.to_owned(),
            );
        }
        let expires_on = unix_now() + lifetime;
        let body = serde_json::json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "token_type": "Bearer",
            "resource": received.query.get("resource").cloned().unwrap_or_default(),
        });
        json(StatusCode::OK, body.to_string())
    }
}

fn authority_reply(received: &Received, token: &str, lifetime: u64) -> Response<Full<Bytes>> {
    if !received.path.ends_with("/oauth2/v2.0/token") {
        return json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.to_owned());
    }
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    });
    json(StatusCode::OK, body.to_string())
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn pairs(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An azure_core transport that trusts only `ca_pem`, so Entra credentials reach the
/// https stand-in without touching the system roots.
pub(super) fn transport_trusting(ca_pem: &str) -> azure_core::http::Transport {
    let certificate = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([certificate])
        .no_proxy()
        .build()
        .unwrap();
    azure_core::http::Transport::new(Arc::new(client))
}
