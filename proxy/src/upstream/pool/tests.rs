//! The account connection pool against a raw HTTP/1.1 server on loopback that counts the
//! connections it accepts and the ones its clients closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{ConnectionPool, PoolSettings};
use crate::body;

/// A server that responds to each request according to its path:
/// - `/ok`: a 2-byte body;
/// - `/close`: the same, then it closes the connection without a `Connection: close`
///   header;
/// - `/slow`: half the body, and the other half 300 ms later;
/// - `/echo`: the request body's length as the body;
/// - `/echo-close`: the same, then it closes the connection the same way;
/// - `/never`: no response, and the connection stays open until the client closes it.
struct Server {
    address: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Request heads received, across every connection.
    requests: Arc<AtomicUsize>,
    /// Connections that reached their end from the client's side.
    ended: Arc<AtomicUsize>,
}

async fn start_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (accepted_count, ended_count) = (Arc::clone(&accepted), Arc::clone(&ended));
    let request_count = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            accepted_count.fetch_add(1, Ordering::SeqCst);
            let ended = Arc::clone(&ended_count);
            let requests = Arc::clone(&request_count);
            tokio::spawn(async move {
                if serve_connection(stream, &requests).await {
                    ended.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    Server {
        address,
        accepted,
        requests,
        ended,
    }
}

/// Serves requests until the client closes (returns true) or the server does (false).
async fn serve_connection(mut stream: TcpStream, requests: &AtomicUsize) -> bool {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") else {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&received[..end]).into_owned();
        received.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        requests.fetch_add(1, Ordering::SeqCst);
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while received.len() < length {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
        received.drain(..length);
        assert!(
            head.to_ascii_lowercase().contains("\r\nhost: "),
            "no Host header: {head}"
        );
        match path.as_str() {
            "/slow" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab")
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = stream.write_all(b"cd").await;
            }
            "/echo" | "/echo-close" => {
                let text = length.to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
            "/never" => {
                // Keeps the connection open until the client closes it.
                let _ = stream.read(&mut buffer).await;
                return true;
            }
            _ => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        }
        if path == "/close" || path == "/echo-close" {
            return false;
        }
    }
}

fn pool_for(address: std::net::SocketAddr, idle_timeout: Duration) -> ConnectionPool {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(HttpConnector::new());
    ConnectionPool::new(PoolSettings {
        connector,
        endpoint: format!("http://{address}").parse().unwrap(),
        idle_timeout,
        max_idle: 4,
    })
}

fn request(address: std::net::SocketAddr, path: &str) -> Request<body::ProxyBody> {
    Request::builder()
        .uri(Uri::try_from(path).unwrap())
        .header(http::header::HOST, address.to_string())
        .body(body::empty())
        .unwrap()
}

async fn read_body(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

/// Sends `/ok` and checks its body.
async fn send_ok(pool: &ConnectionPool, address: std::net::SocketAddr) {
    let response = pool.send(request(address, "/ok")).await.unwrap();
    assert_eq!(read_body(response).await, "ok");
}

/// Waits until `count` connections reached their end from the client's side.
async fn wait_for_ended(server: &Server, count: usize, what: &str) {
    let ended = Arc::clone(&server.ended);
    wait_until(what, || ended.load(Ordering::SeqCst) == count).await;
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn pool_reuses_one_connection_sequentially() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    for _ in 0..3 {
        send_ok(&pool, server.address).await;
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn pool_passes_by_a_streaming_connection() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    let streaming = pool.send(request(server.address, "/slow")).await.unwrap();
    let second = pool.send(request(server.address, "/ok")).await.unwrap();
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(read_body(second).await, "ok");
    assert_eq!(read_body(streaming).await, "abcd");

    // Both connections are ready again, so the next requests open none.
    for _ in 0..2 {
        send_ok(&pool, server.address).await;
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pool_replaces_a_closed_connection() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    let response = pool.send(request(server.address, "/close")).await.unwrap();
    assert_eq!(read_body(response).await, "ok");
    // Let the connection's task see the end of its stream.
    tokio::time::sleep(Duration::from_millis(100)).await;

    send_ok(&pool, server.address).await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pool_closes_a_dropped_response_connection() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    let streaming = pool.send(request(server.address, "/slow")).await.unwrap();
    drop(streaming);
    wait_for_ended(&server, 1, "the dropped response's connection closes").await;

    send_ok(&pool, server.address).await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pool_closes_idle_connections_after_timeout() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_millis(100));
    send_ok(&pool, server.address).await;
    assert_eq!(pool.idle_count(), 1);

    // The reaper closes it with no request coming to find it.
    wait_for_ended(&server, 1, "the idle connection closes").await;
    assert_eq!(pool.idle_count(), 0);

    send_ok(&pool, server.address).await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pool_keeps_at_most_max_idle() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    let mut streaming = Vec::new();
    for _ in 0..6 {
        streaming.push(pool.send(request(server.address, "/slow")).await.unwrap());
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 6);
    for response in streaming {
        assert_eq!(read_body(response).await, "abcd");
    }
    assert_eq!(pool.idle_count(), 4);
    wait_for_ended(&server, 2, "the connections over the limit close").await;
}

#[tokio::test]
async fn connect_error_names_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let pool = pool_for(address, Duration::from_secs(30));
    let error = pool.send(request(address, "/ok")).await.unwrap_err();
    let text = crate::upstream::client::describe(&error);
    assert!(
        text.starts_with(&format!("cannot connect to http://{address}")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
}

fn request_with_body(
    address: std::net::SocketAddr,
    path: &str,
    body: &'static [u8],
) -> Request<body::ProxyBody> {
    Request::builder()
        .method(http::Method::POST)
        .uri(Uri::try_from(path).unwrap())
        .header(http::header::HOST, address.to_string())
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body::full(Bytes::from_static(body)))
        .unwrap()
}

#[tokio::test]
async fn pool_reuses_a_connection_after_a_long_body() {
    // The body streams for longer than the idle timeout, but the connection is idle
    // only from the body's end.
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_millis(200));
    let streaming = pool.send(request(server.address, "/slow")).await.unwrap();
    assert_eq!(read_body(streaming).await, "abcd");

    send_ok(&pool, server.address).await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pool_sends_body_once_after_upstream_close() {
    // The account closes each connection right after its response, so the next request
    // finds the pooled connection closed, possibly before hyper has read the end of its
    // stream.
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    for round in 0..20 {
        let response = pool
            .send(request_with_body(server.address, "/echo-close", b"12345"))
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error:?}"));
        assert_eq!(read_body(response).await, "5", "round {round}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 20);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn pool_closes_connection_after_response_timeout() {
    let server = start_server().await;
    let pool = pool_for(server.address, Duration::from_secs(30));
    send_ok(&pool, server.address).await;

    // The pooled connection carries a request that never gets a response.
    let waited = tokio::time::timeout(
        Duration::from_millis(200),
        pool.send(request(server.address, "/never")),
    )
    .await;
    assert!(waited.is_err(), "unexpected response to /never");
    wait_for_ended(&server, 1, "the timed-out connection closes").await;
    assert_eq!(pool.idle_count(), 0);

    send_ok(&pool, server.address).await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pool_reuses_connections_under_concurrency() {
    let server = start_server().await;
    let pool = Arc::new(pool_for(server.address, Duration::from_secs(30)));
    for round in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let pool = Arc::clone(&pool);
            let address = server.address;
            tasks.spawn(async move {
                let response = pool.send(request(address, "/slow")).await.unwrap();
                read_body(response).await
            });
        }
        while let Some(body) = tasks.join_next().await {
            assert_eq!(body.unwrap(), "abcd", "round {round}");
        }
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 4);
    assert_eq!(pool.idle_count(), 4);
}

#[tokio::test]
async fn pool_replaces_a_connection_close_response() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                // A chunked body and `Connection: close`, with the socket left open.
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                    )
                    .await;
                let _ = stream.read(&mut buffer).await;
            });
        }
    });
    let pool = pool_for(address, Duration::from_secs(30));
    for _ in 0..3 {
        send_ok(&pool, address).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
