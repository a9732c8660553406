//! A minimal HTTP/1.1 reverse proxy on hyper, with no authentication, policy or logging of
//! requests. The suite measures it next to nginx and Cosmoguard as the floor that any proxy
//! built on hyper pays per request.
//!
//! Each request goes to the upstream on a kept-alive connection from a shared pool. A
//! request takes the most recently used connection that is ready, and the connection goes
//! back as soon as the response head arrives. Both bodies stream through unbuffered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context as _;
use bytes::Bytes;
use cosmoguard::upstream::remove_hop_by_hop;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{client, server};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::backend::accept_each;

/// Response body of the pass-through: the upstream's body, or an empty one on a 502.
pub type PassthroughBody = Either<Incoming, Empty<Bytes>>;

/// Maximum number of upstream connections the pool keeps: the bound of `keepalive 256` in
/// the suite's nginx configuration, which nginx applies per worker.
const MAX_POOLED: usize = 256;

/// Binds `address` and forwards every request on it to `upstream`.
pub async fn run(address: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener, upstream).await;
    Ok(())
}

/// Serves HTTP/1.1 with keep-alive on `listener` until the process ends.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) {
    let pool = Arc::new(Pool::new(upstream));
    let builder = server::conn::http1::Builder::new();
    accept_each(listener, move |stream| {
        let pool = Arc::clone(&pool);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let pool = Arc::clone(&pool);
                async move { Ok::<_, Infallible>(pool.forward(request).await) }
            });
            // A client that goes away mid-request is no error of the pass-through.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    })
    .await;
}

/// Kept-alive connections to the upstream, shared by every client connection.
#[derive(Debug)]
struct Pool {
    upstream: SocketAddr,
    /// Connections not waiting for a response head, the most recently used last.
    senders: Mutex<Vec<SendRequest<Incoming>>>,
    /// Requests that got a 502, counted so repeated failures log one line per thousand.
    failures: AtomicU64,
}

impl Pool {
    fn new(upstream: SocketAddr) -> Pool {
        Pool {
            upstream,
            senders: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// Sends the request upstream without its hop-by-hop headers and returns the response
    /// without its own, or a 502 when the upstream cannot take the request.
    async fn forward(&self, mut request: Request<Incoming>) -> Response<PassthroughBody> {
        remove_hop_by_hop(request.headers_mut());
        // Upstream connections stay HTTP/1.1 whatever the client spoke, so they stay pooled.
        *request.version_mut() = Version::HTTP_11;
        match self.send(request).await {
            Ok(response) => {
                let mut response = response.map(Either::Left);
                remove_hop_by_hop(response.headers_mut());
                response
            }
            Err(error) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures == 1 || failures.is_multiple_of(1000) {
                    eprintln!(
                        "request to upstream {} failed ({failures} failures so far): {error:#}",
                        self.upstream
                    );
                }
                let mut response = Response::new(Either::Right(Empty::new()));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }

    /// Sends the request on a pooled connection, or on a new one when none is ready. A
    /// request that a pooled connection closed before sending goes once more on a new
    /// connection, because none of it reached the upstream.
    async fn send(&self, mut request: Request<Incoming>) -> anyhow::Result<Response<Incoming>> {
        if let Some(mut sender) = self.checkout() {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.put_back(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(error.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        self.put_back(sender);
        Ok(response)
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Incoming>> {
        let stream = TcpStream::connect(self.upstream)
            .await
            .with_context(|| format!("cannot connect to {}", self.upstream))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("the HTTP/1.1 handshake with {} failed", self.upstream))?;
        // A failed request gets the connection's error from its own response future.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SendRequest<Incoming>>> {
        // The list stays consistent whatever panicked while holding it.
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the most recently used connection that is ready for a request. Closed
    /// connections found on the way are dropped, and ones still streaming a response body
    /// stay.
    fn checkout(&self) -> Option<SendRequest<Incoming>> {
        let mut senders = self.lock();
        let mut index = senders.len();
        while index > 0 {
            index -= 1;
            if senders[index].is_closed() {
                senders.remove(index);
            } else if senders[index].is_ready() {
                return Some(senders.remove(index));
            }
        }
        None
    }

    fn put_back(&self, sender: SendRequest<Incoming>) {
        let mut senders = self.lock();
        if senders.len() >= MAX_POOLED {
            senders.remove(0);
        }
        senders.push(sender);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{HeaderValue, Method, Request, Response, StatusCode};
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use hyper::body::Incoming;
    use tokio::net::TcpListener;

    use crate::backend::{self, Backend, BackendOptions, ServerBody};
    use crate::body::CHUNK_BYTES;
    use crate::client::{self, Sender, Target};

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        (listener, address)
    }

    /// Starts a pass-through to `upstream` and returns its address.
    async fn start_passthrough(upstream: SocketAddr) -> SocketAddr {
        let (listener, address) = listener().await;
        tokio::spawn(super::serve(listener, upstream));
        address
    }

    /// Starts the Cosmos-shaped backend with a feed of `stream_bytes` and returns its
    /// address.
    async fn start_backend(stream_bytes: u64) -> SocketAddr {
        let (listener, address) = listener().await;
        let backend = Arc::new(Backend::new(BackendOptions { stream_bytes }));
        tokio::spawn(backend::serve(listener, None, move |request| {
            let backend = Arc::clone(&backend);
            async move { backend.handle(request).await }
        }));
        address
    }

    async fn connect<B>(address: SocketAddr) -> Sender<B>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let target = Target {
            address,
            tls: None,
            http2: false,
        };
        client::connect(&target).await.expect("connect")
    }

    fn get(path: &str) -> Request<Empty<Bytes>> {
        Request::builder()
            .uri(path)
            .header("host", "localhost")
            .body(Empty::new())
            .expect("valid request")
    }

    async fn body_bytes(response: Response<Incoming>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .expect("read the body")
            .to_bytes()
    }

    #[tokio::test]
    async fn forwards_point_reads_on_one_connection() {
        let passthrough = start_passthrough(start_backend(1024).await).await;
        let mut sender = connect(passthrough).await;
        for _ in 0..3 {
            let response = sender
                .send(get("/dbs/bench/colls/items/docs/doc1"))
                .await
                .expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().contains_key("x-ms-activity-id"));
            let body = body_bytes(response).await;
            assert!(body.starts_with(br#"{"id":"doc1""#), "body {body:?}");
        }
    }

    #[tokio::test]
    async fn streams_large_download() {
        let bytes = 4 * 1024 * 1024;
        let passthrough = start_passthrough(start_backend(bytes).await).await;
        let mut sender = connect(passthrough).await;
        let response = sender
            .send(get("/dbs/bench/colls/large/docs"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = body_bytes(response).await;
        assert!(body.len() as u64 >= bytes, "received {} bytes", body.len());
        assert!(body.ends_with(b"]}"));
    }

    #[tokio::test]
    async fn streams_chunked_upload() {
        let chunk = Bytes::from(vec![b'x'; CHUNK_BYTES]);
        let chunks = 48;
        let bytes = chunks * CHUNK_BYTES;
        let passthrough = start_passthrough(start_backend(1024).await).await;
        let mut sender = connect(passthrough).await;
        // A stream has no known length, so the client sends it chunked.
        let frames = (0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone())));
        let request = Request::builder()
            .method(Method::POST)
            .uri("/dbs/bench/colls/sink/sprocs/big")
            .header("host", "localhost")
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .expect("valid request");
        let response = sender.send(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = body_bytes(response).await;
        let expected = format!(r#""received_bytes":{bytes}"#);
        assert!(
            String::from_utf8_lossy(&body).contains(&expected),
            "body {body:?}"
        );
    }

    /// An upstream that returns the names of the request headers it received, one per
    /// line, and sets hop-by-hop headers on its response.
    async fn start_echo_upstream() -> SocketAddr {
        let (listener, address) = listener().await;
        tokio::spawn(backend::serve(
            listener,
            None,
            |request: Request<Incoming>| {
                let names: Vec<&str> = request.headers().keys().map(|name| name.as_str()).collect();
                let body: ServerBody = Full::new(Bytes::from(names.join("\n")))
                    .map_err(|never: Infallible| match never {})
                    .boxed();
                let mut response = Response::new(body);
                let headers = response.headers_mut();
                headers.insert("connection", HeaderValue::from_static("x-response-hop"));
                headers.insert("x-response-hop", HeaderValue::from_static("1"));
                headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
                headers.insert("x-end-to-end", HeaderValue::from_static("1"));
                async move { response }
            },
        ));
        address
    }

    #[tokio::test]
    async fn drops_hop_by_hop_headers_both_ways() {
        let passthrough = start_passthrough(start_echo_upstream().await).await;
        let mut sender = connect(passthrough).await;
        let request = Request::builder()
            .uri("/")
            .header("host", "localhost")
            .header("connection", "keep-alive, x-request-hop")
            .header("x-request-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("te", "trailers")
            .header("x-ms-version", "2020-07-15")
            .body(Empty::<Bytes>::new())
            .expect("valid request");
        let response = sender.send(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);

        let headers = response.headers().clone();
        assert!(!headers.contains_key("x-response-hop"));
        assert!(!headers.contains_key("keep-alive"));
        assert!(headers.contains_key("x-end-to-end"));

        let body = body_bytes(response).await;
        let received: Vec<&str> = std::str::from_utf8(&body)
            .expect("UTF-8 header names")
            .lines()
            .collect();
        for dropped in [
            "connection",
            "x-request-hop",
            "keep-alive",
            "proxy-connection",
            "te",
        ] {
            assert!(
                !received.contains(&dropped),
                "{dropped} reached the upstream"
            );
        }
        assert!(received.contains(&"x-ms-version"));
        assert!(received.contains(&"host"));
    }

    #[tokio::test]
    async fn closed_upstream_gets_bad_gateway() {
        let (closed, upstream) = listener().await;
        drop(closed);
        let passthrough = start_passthrough(upstream).await;
        let mut sender = connect(passthrough).await;
        let response = sender.send(get("/")).await.expect("response");
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
}
