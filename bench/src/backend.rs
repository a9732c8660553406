//! A fast Cosmos DB stand-in for load tests: canned account, document, query and feed
//! responses with the headers the service sends, a 256 MiB streamed feed and a sink that
//! counts a request body without keeping it.
//!
//! Routes (any database name; the container name picks the special endpoints):
//! - `GET /`: the account.
//! - `GET /dbs/{db}/colls/{coll}/docs/{id}`: one document (about 400 bytes).
//! - `POST /dbs/{db}/colls/{coll}/docs` with `x-ms-documentdb-isquery`: a query page.
//! - `GET /dbs/{db}/colls/{coll}/docs`: a feed page of ten documents.
//! - `GET /dbs/{db}/colls/large/docs`: a feed of `stream_bytes` bytes, streamed.
//! - `POST /dbs/{db}/colls/sink/sprocs/{id}`, `PUT /dbs/{db}/colls/sink/docs/{id}` and
//!   `POST /dbs/{db}/colls/sink/docs`: read and count the body without keeping it, then
//!   return 200 or 201.
//! - `POST /dbs/{db}/colls/{coll}/docs` otherwise: 201 with a created document.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::body::{CHUNK_BYTES, RepeatBody};

/// Response body type of the bench servers.
pub type ServerBody = BoxBody<Bytes, Infallible>;

/// Settings of the backend.
#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Size of the streamed feed response, in bytes.
    pub stream_bytes: u64,
}

/// Serves `handler` on `listener` until the process ends, over TLS when `tls` is given.
/// HTTP/1.1 keep-alive and HTTP/2 (by ALPN, or prior knowledge without TLS).
pub async fn serve<F, Fut>(listener: TcpListener, tls: Option<TlsAcceptor>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ServerBody>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    accept_each(listener, move |stream| {
        let handler = handler.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let result = match tls {
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(_) => return,
                },
            };
            drop(result);
        });
    })
    .await;
}

/// Accepts connections on `listener` until the process ends, and passes each to
/// `on_connection` with TCP_NODELAY set. A failed accept is logged and retried after 20 ms.
pub async fn accept_each(listener: TcpListener, mut on_connection: impl FnMut(TcpStream)) {
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        on_connection(stream);
    }
}

/// Binds `address` and serves the backend on it.
pub async fn run(
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
    options: BackendOptions,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address).await?;
    println!("listening on {}", listener.local_addr()?);
    let backend = Arc::new(Backend::new(options));
    serve(listener, tls, move |request| {
        let backend = Arc::clone(&backend);
        async move { backend.handle(request).await }
    })
    .await;
    Ok(())
}

/// Canned bodies, built once.
#[derive(Debug)]
pub struct Backend {
    options: BackendOptions,
    account: Bytes,
    document: Bytes,
    query: Bytes,
    feed: Bytes,
    requests: AtomicU64,
}

fn document_json(id: &str) -> String {
    format!(
        concat!(
            r#"{{"id":"{id}","pk":"p1","customer":"c-1042","status":"shipped","total":129.5,"#,
            r#""lines":[{{"sku":"A-100","qty":2}},{{"sku":"B-220","qty":1}}],"#,
            r#""_rid":"bTh0AIv0VQABAAAAAAAAAA==","_self":"dbs/bTh0AA==/colls/bTh0AIv0VQA=/docs/bTh0AIv0VQABAAAAAAAAAA==/","#,
            r#""_etag":"\"0000d81e-0000-0200-0000-6750c1a70000\"","_attachments":"attachments/","_ts":1733345703}}"#
        ),
        id = id
    )
}

fn documents_page(count: usize) -> String {
    let documents: Vec<String> = (0..count)
        .map(|index| document_json(&format!("doc{index}")))
        .collect();
    format!(
        r#"{{"_rid":"bTh0AIv0VQA=","Documents":[{}],"_count":{count}}}"#,
        documents.join(",")
    )
}

const ACCOUNT_JSON: &str = concat!(
    r#"{"_self":"","id":"bench","_rid":"bench.documents.azure.com","media":"//media/","addresses":"//addresses/","#,
    r#""_dbs":"//dbs/","writableLocations":[{"name":"West Europe","databaseAccountEndpoint":"https://bench-westeurope.documents.azure.com:443/"}],"#,
    r#""readableLocations":[{"name":"West Europe","databaseAccountEndpoint":"https://bench-westeurope.documents.azure.com:443/"}],"#,
    r#""enableMultipleWriteLocations":false,"userReplicationPolicy":{"asyncReplication":false,"minReplicaSetSize":3,"maxReplicasetSize":4},"#,
    r#""userConsistencyPolicy":{"defaultConsistencyLevel":"Session"},"systemReplicationPolicy":{"minReplicaSetSize":3,"maxReplicasetSize":4},"#,
    r#""readPolicy":{"primaryReadCoefficient":1,"secondaryReadCoefficient":1},"queryEngineConfiguration":"{}"}"#
);

impl Backend {
    pub fn new(options: BackendOptions) -> Backend {
        Backend {
            options,
            account: Bytes::from_static(ACCOUNT_JSON.as_bytes()),
            document: Bytes::from(document_json("doc1")),
            query: Bytes::from(documents_page(3)),
            feed: Bytes::from(documents_page(10)),
            requests: AtomicU64::new(0),
        }
    }

    /// Returns the response to one request; never fails.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ServerBody> {
        let sequence = self.requests.fetch_add(1, Ordering::Relaxed);
        let segments: Vec<&str> = request
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let method = request.method().clone();
        let is_query = request.headers().contains_key("x-ms-documentdb-isquery");
        match (method, segments.as_slice()) {
            (Method::GET, []) => canned(StatusCode::OK, self.account.clone(), sequence, None),
            (Method::GET, ["dbs", _, "colls", "large", "docs"]) => self.stream_feed(sequence),
            (Method::GET, ["dbs", _, "colls", _, "docs"]) => {
                canned(StatusCode::OK, self.feed.clone(), sequence, Some(10))
            }
            (Method::GET, ["dbs", _, "colls", _, "docs", _]) => {
                canned(StatusCode::OK, self.document.clone(), sequence, None)
            }
            (Method::POST, ["dbs", _, "colls", "sink", "docs"]) => {
                sink(request.into_body(), StatusCode::CREATED, sequence).await
            }
            (Method::POST, ["dbs", _, "colls", "sink", "sprocs", _]) => {
                sink(request.into_body(), StatusCode::OK, sequence).await
            }
            (Method::PUT, ["dbs", _, "colls", "sink", "docs", _]) => {
                sink(request.into_body(), StatusCode::OK, sequence).await
            }
            (Method::POST, ["dbs", _, "colls", _, "docs"]) if is_query => {
                canned(StatusCode::OK, self.query.clone(), sequence, Some(3))
            }
            (Method::POST, ["dbs", _, "colls", _, "docs"]) => {
                canned(StatusCode::CREATED, self.document.clone(), sequence, None)
            }
            _ => not_found(sequence),
        }
    }

    fn stream_feed(&self, sequence: u64) -> Response<ServerBody> {
        let one = document_json("streamed");
        let per_chunk = (CHUNK_BYTES / (one.len() + 1)).max(1);
        let mut chunk = String::with_capacity(CHUNK_BYTES);
        for _ in 0..per_chunk {
            chunk.push_str(&one);
            chunk.push(',');
        }
        let body = RepeatBody::new(
            Bytes::from_static(br#"{"_rid":"bTh0AIv0VQA=","Documents":["#),
            Bytes::from(chunk),
            Bytes::from(format!("{one}]}}")),
            self.options.stream_bytes,
        );
        let mut response = Response::new(body.boxed());
        add_cosmos_headers(response.headers_mut(), sequence, None);
        response
    }
}

async fn sink(mut body: Incoming, status: StatusCode, sequence: u64) -> Response<ServerBody> {
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let text = format!(r#"{{"id":"sink","received_bytes":{received}}}"#);
    canned(status, Bytes::from(text), sequence, None)
}

fn canned(
    status: StatusCode,
    body: Bytes,
    sequence: u64,
    item_count: Option<u32>,
) -> Response<ServerBody> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    add_cosmos_headers(response.headers_mut(), sequence, item_count);
    response
}

fn not_found(sequence: u64) -> Response<ServerBody> {
    let body = Bytes::from_static(br#"{"code":"NotFound","message":"Resource Not Found"}"#);
    canned(StatusCode::NOT_FOUND, body, sequence, None)
}

/// Adds the headers the service sets on a data-plane response, with a distinct activity id and
/// session token per request.
fn add_cosmos_headers(headers: &mut http::HeaderMap, sequence: u64, item_count: Option<u32>) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-ms-request-charge", HeaderValue::from_static("1.05"));
    let activity = format!("6f1c2a4e-0b7d-4e1a-9c3f-{sequence:012x}");
    headers.insert("x-ms-activity-id", header_value(&activity));
    headers.insert(
        "x-ms-session-token",
        header_value(&format!("0:-1#{}", sequence + 1)),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::from_static("\"0000d81e-0000-0200-0000-6750c1a70000\""),
    );
    headers.insert("x-ms-schemaversion", HeaderValue::from_static("1.18"));
    headers.insert(
        "x-ms-serviceversion",
        HeaderValue::from_static("version=2.14.0.0"),
    );
    headers.insert("x-ms-gatewayversion", HeaderValue::from_static("2.14.0"));
    headers.insert(
        "x-ms-resource-quota",
        HeaderValue::from_static(
            "documentSize=51200;documentsSize=52428800;collectionSize=52428800;",
        ),
    );
    headers.insert(
        "x-ms-resource-usage",
        HeaderValue::from_static("documentSize=0;documentsSize=1;collectionSize=1;"),
    );
    if let Some(count) = item_count {
        headers.insert("x-ms-item-count", HeaderValue::from(count));
    }
}

fn header_value(text: &str) -> HeaderValue {
    // Only ASCII digits, letters, '-', ':' and '#' reach here.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
