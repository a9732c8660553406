//! The account rejecting the proxy's token: 401, or 403 with substatus 5300, triggers
//! exactly one refresh, and the response still reaches the caller unchanged.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::stand_in::{Behaviour, StandIn, transport_trusting};
use super::{CredentialOptions, Fixture, aad_header, config_text, metric, quick_refresh};
use crate::config::Config;
use crate::upstream::{Credential, Upstream};

/// Starts an account stand-in that replies to each request with the next scripted status and
/// substatus, then 200, and records the `Authorization` headers it received.
async fn account(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(script);
    let count = Arc::new(AtomicUsize::new(0));
    let recorded = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (script, count, recorded) = (
                Arc::clone(&script),
                Arc::clone(&count),
                Arc::clone(&recorded),
            );
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let index = count.fetch_add(1, Ordering::SeqCst);
                    let authorization = request.headers()["authorization"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    recorded.lock().unwrap().push(authorization);
                    let (status, substatus) = script.get(index).copied().unwrap_or((200, None));
                    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    if let Some(substatus) = substatus {
                        response
                            .headers_mut()
                            .insert("x-ms-substatus", substatus.parse().unwrap());
                    }
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{address}"), seen)
}

async fn send(upstream: &Upstream) -> StatusCode {
    let classified = crate::classify::classify(&Method::GET, "/dbs/db", &HeaderMap::new()).unwrap();
    let request = Request::get("/dbs/db")
        .body(crate::body::full(Bytes::new()))
        .unwrap();
    upstream.send(request, &classified).await.unwrap().status()
}

async fn wait_for_requests(stand_in: &StandIn, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stand_in.request_count() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the authority got {} requests",
            stand_in.request_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn token_rejections_trigger_one_refresh_each() {
    let authority = StandIn::authority(Behaviour::new(3600)).await;
    let mut script = vec![(401, None)];
    script.extend(std::iter::repeat_n((403, Some("5300")), 5));
    script.push((403, Some("3")));
    let (endpoint, seen) = account(script).await;

    let fixture = Fixture::new();
    fixture.write("client.secret", "secret");
    let credential_table = format!(
        "kind = \"client_secret\"\ntenant_id = \"tenant\"\nclient_id = \"client\"\n\
         client_secret_file = \"client.secret\"\nauthority_host = \"{}\"",
        authority.authority_host()
    );
    let text = config_text(&credential_table)
        .replace("https://127.0.0.1:8081", &endpoint)
        .replace(
            "plain_http_listener = true",
            "plain_http_listener = true\nplain_http_upstream = true",
        );
    let config = Config::parse(&text, &fixture.path("cosmoguard.toml"))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let registry = prometheus::Registry::new();
    let options = CredentialOptions {
        refresh: quick_refresh(),
        transport: Some(transport_trusting(authority.ca_pem.as_deref().unwrap())),
        ..CredentialOptions::default()
    };
    let credential = Credential::start(&config, &registry, options).unwrap();
    let ca_file = fixture.write("ca.pem", authority.ca_pem.as_deref().unwrap());
    let upstream = Upstream::new(&config.upstream, Some(&ca_file), credential, true).unwrap();

    // A 401 reaches the caller unchanged and triggers one refresh.
    assert_eq!(send(&upstream).await, StatusCode::UNAUTHORIZED);
    wait_for_requests(&authority, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.lock().unwrap()[0], aad_header("stand-in-token-1"));

    // Five concurrent 403/5300 responses to the second token trigger one more refresh.
    let statuses = futures_util::future::join_all((0..5).map(|_| send(&upstream))).await;
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::FORBIDDEN),
        "{statuses:?}"
    );
    wait_for_requests(&authority, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(authority.request_count(), 3);
    assert!(
        seen.lock().unwrap()[1..6]
            .iter()
            .all(|header| *header == aad_header("stand-in-token-2"))
    );

    // A 403 with another substatus is a permission decision, not a token rejection.
    assert_eq!(send(&upstream).await, StatusCode::FORBIDDEN);
    assert_eq!(send(&upstream).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(authority.request_count(), 3);
    assert_eq!(seen.lock().unwrap()[7], aad_header("stand-in-token-3"));
    assert_eq!(
        metric(&registry, "cosmoguard_upstream_token_rejections_total"),
        Some(6.0)
    );
}
