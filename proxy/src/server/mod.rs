//! Listeners: the data listener that SDKs call (TLS or, when configured, plain HTTP;
//! HTTP/1.1 and HTTP/2), served by connection workers, and the admin listener for metrics
//! and health.

pub mod admin;
mod protocol;
pub mod tls;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pipeline::Proxy;
use workers::{WorkerSettings, Workers};

/// Time allowed for a TLS handshake before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed to receive a request's headers, which bounds slow-header attacks.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the data listener until `shutdown` completes, then waits up to `grace` for
/// open connections to finish their requests. Connections are served by `workers`
/// threads (see [`workers`]); this task only accepts them.
pub async fn serve_data(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: &Proxy,
    settings: DataSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let worker_settings = Arc::new(WorkerSettings {
        tls,
        max_header_bytes: settings.max_header_bytes,
        grace: settings.grace,
    });
    let workers = Workers::start(settings.workers, proxy, &worker_settings)?;
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "Failed to set TCP_NODELAY");
        }
        workers.dispatch(stream, peer);
    }

    drop(listener);
    tracing::info!(
        grace_seconds = settings.grace.as_secs(),
        "Draining open connections"
    );
    workers.shutdown().await;
    Ok(())
}

/// Settings of the data listener.
#[derive(Clone, Copy, Debug)]
pub struct DataSettings {
    /// Connection worker threads.
    pub workers: usize,
    pub max_header_bytes: usize,
    /// Time open connections get to finish after the shutdown signal.
    pub grace: Duration,
}

/// Serves one connection on the current worker's event loop: the TLS handshake, if any,
/// then HTTP until either side closes or shutdown drains it.
fn spawn_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsAcceptor>,
    proxy: &Arc<Proxy>,
    builders: &Arc<ConnectionBuilders>,
    graceful: &GracefulShutdown,
    open: workers::OpenConnection,
) {
    let builders = Arc::clone(builders);
    let watcher = graceful.watcher();
    let proxy = Arc::clone(proxy);
    let acceptor = tls.cloned();
    tokio::spawn(async move {
        let result = match acceptor {
            None => {
                let Some(protocol) = first_bytes(&stream, peer).await else {
                    return;
                };
                builders
                    .serve(stream, protocol, &proxy, peer, watcher)
                    .await
            }
            Some(acceptor) => {
                // Boxed, so that the connection's task does not keep room for the
                // handshake's state after it ends.
                let Some(stream) = Box::pin(handshake(&acceptor, stream, peer)).await else {
                    return;
                };
                let protocol = protocol::Protocol::from_alpn(stream.get_ref().1.alpn_protocol());
                builders
                    .serve(stream, protocol, &proxy, peer, watcher)
                    .await
            }
        };
        report_connection_end(&proxy, peer, result);
        drop(open);
    });
}

/// Waits for a plain connection's first bytes, up to the header read timeout, and returns
/// the protocol they show. Returns `None` when the connection closed or sent nothing in
/// time.
async fn first_bytes(
    stream: &tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<protocol::Protocol> {
    match tokio::time::timeout(HEADER_READ_TIMEOUT, protocol::sniff(stream)).await {
        Ok(Ok(protocol)) => protocol,
        Ok(Err(error)) => {
            tracing::debug!(%error, client.address = %peer, "Failed to read a connection's first bytes");
            None
        }
        Err(_) => {
            tracing::debug!(client.address = %peer, "Closed a connection that sent no bytes within the header read timeout");
            None
        }
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%error, client.address = %peer, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(client.address = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Logs how a connection ended; requests the HTTP layer rejected get an audit record.
fn report_connection_end(
    proxy: &Proxy,
    peer: SocketAddr,
    result: Result<(), Box<dyn std::error::Error + Send + Sync>>,
) {
    let Err(error) = result else {
        return;
    };
    match error.downcast_ref::<hyper::Error>() {
        Some(http_error) => proxy.audit_connection_error(peer, http_error),
        None => tracing::debug!(%error, client.address = %peer, "Connection ended with an error"),
    }
}

/// The HTTP/1.1 and HTTP/2 settings of the data listener, with header buffers sized a
/// little above the pipeline's own limit, so most oversized requests reach the pipeline
/// and get an audited 431.
#[derive(Clone)]
pub(super) struct ConnectionBuilders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl ConnectionBuilders {
    pub(super) fn new(max_header_bytes: usize) -> ConnectionBuilders {
        let buffer = max_header_bytes + 16 * 1024;
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(buffer.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(buffer).unwrap_or(u32::MAX));
        ConnectionBuilders { http1, http2 }
    }

    /// Serves HTTP on `io` until either side closes it or shutdown drains it.
    async fn serve<I>(
        &self,
        io: I,
        protocol: protocol::Protocol,
        proxy: &Arc<Proxy>,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let handler = Arc::clone(proxy);
        // hyper keeps room for one request future per connection for as long as the
        // connection lives. The pipeline's future is several KiB, so it is boxed per request
        // and an idle connection keeps only a pointer.
        let service = service_fn(move |request| {
            let handler = Arc::clone(&handler);
            async move {
                let response = Box::pin(handler.handle(request, Some(peer))).await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let io = TokioIo::new(io);
        let result = match protocol {
            protocol::Protocol::Http1 => {
                watcher
                    .watch(self.http1.serve_connection(io, service))
                    .await
            }
            // Boxed, so that the task of every HTTP/1.1 connection is not sized for an
            // HTTP/2 connection's state.
            protocol::Protocol::Http2 => {
                Box::pin(watcher.watch(self.http2.serve_connection(io, service))).await
            }
        };
        result.map_err(Into::into)
    }
}
