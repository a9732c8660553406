//! Listeners: the data listener that SDKs call (TLS or, when configured, plain HTTP;
//! HTTP/1.1 and HTTP/2), served by connection workers, and the admin listener for metrics
//! and health.

pub mod admin;
mod idle;
mod linger;
mod protocol;
pub mod tls;
mod workers;

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::pipeline::{Client, Proxy};
pub(crate) use idle::InFlight;
use workers::{WorkerSettings, Workers};

/// Time allowed for a TLS handshake before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed to receive a request's headers, which bounds slow-header attacks. An
/// idle keep-alive connection is closed after the same time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The tick of each worker's [`idle::IdleSweep`]: an HTTP/1.1 connection idle for
/// one to two ticks releases hyper's buffers.
const IDLE_SWEEP_INTERVAL: Duration = Duration::from_millis(250);

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

/// The shared state every connection of one worker is served with.
struct ConnectionContext {
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    builders: ConnectionBuilders,
    sweep: Arc<idle::IdleSweep>,
    shutdown: Shutdown,
}

/// Serves one connection on the current worker's event loop: the TLS handshake, if any,
/// then HTTP until either side closes or shutdown drains it.
fn spawn_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    context: &Arc<ConnectionContext>,
    open: workers::OpenConnection,
) {
    let context = Arc::clone(context);
    let mut shutdown = context.shutdown.clone();
    tokio::spawn(async move {
        let ConnectionContext {
            tls,
            proxy,
            builders,
            sweep,
            ..
        } = &*context;
        let result = match tls {
            None => match first_bytes(&stream, peer).await {
                None => return,
                Some(protocol::Protocol::Http1) => builders
                    .serve_http1(stream, proxy, peer, sweep, &mut shutdown)
                    .await
                    .map_err(Into::into),
                // Boxed, like the TLS branch, so that the task of a plain HTTP/1.1
                // connection is sized for that connection alone.
                Some(protocol::Protocol::Http2) => {
                    Box::pin(builders.serve_http2(stream, proxy, peer, &mut shutdown)).await
                }
            },
            // Boxed, so that the task of a plain connection is not sized for a TLS session.
            // The TLS stream is never borrowed here (the handshake reads its ALPN), so the
            // box keeps no second room for it while the stream is being served.
            Some(acceptor) => Box::pin(async {
                let (stream, protocol) = handshake(acceptor, stream, peer).await?;
                Some(match protocol {
                    protocol::Protocol::Http1 => builders
                        .serve_http1(stream, proxy, peer, sweep, &mut shutdown)
                        .await
                        .map_err(Into::into),
                    protocol::Protocol::Http2 => {
                        Box::pin(builders.serve_http2(stream, proxy, peer, &mut shutdown)).await
                    }
                })
            })
            .await
            .unwrap_or(Ok(())),
        };
        report_connection_end(proxy, peer, result);
        drop(open);
    });
}

/// The future of one request: boxed, because hyper keeps room for one per connection for
/// as long as the connection lives, and the pipeline's future is several KiB.
type RequestFuture = Pin<
    Box<dyn Future<Output = Result<Response<idle::ResponseBody>, std::convert::Infallible>> + Send>,
>;

/// Builds the service of one hyper connection. With `activity`, the service records when a
/// request is in flight, so an idle HTTP/1.1 connection can release hyper's state.
fn request_service(
    proxy: &Arc<Proxy>,
    peer: SocketAddr,
    activity: Option<Arc<idle::Activity>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<idle::ResponseBody>,
    Error = std::convert::Infallible,
    Future = RequestFuture,
> + Clone
+ Unpin {
    let handler = Arc::clone(proxy);
    let client = Client::new(peer);
    service_fn(move |request: Request<Incoming>| -> RequestFuture {
        let (parts, body) = request.into_parts();
        let (body, in_flight) = idle::track(activity.as_ref(), body);
        let request = Request::from_parts(parts, body);
        let handler = Arc::clone(&handler);
        let client = client.clone();
        Box::pin(async move {
            let response = handler.handle(request, Some(client)).await;
            Ok(response.map(|body| idle::ResponseBody::new(body, in_flight)))
        })
    })
}

/// The listener's shutdown signal, as each connection receives it.
#[derive(Clone, Debug)]
pub(super) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn is_requested(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Completes once shutdown is requested (or the listener is gone).
    async fn requested(&mut self) {
        // An error means the sender is gone, which is shutdown too.
        let _ = self.0.wait_for(|requested| *requested).await;
    }
}

/// A hyper connection that can be asked to finish its requests and close.
trait Drain: Future<Output = Result<(), hyper::Error>> {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drain for http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Drain for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `connection` to its end, asking it to drain once shutdown is requested.
async fn until_done<C: Drain>(connection: C, shutdown: &mut Shutdown) -> Result<(), hyper::Error> {
    let mut connection = std::pin::pin!(connection);
    let mut requested = std::pin::pin!(shutdown.requested());
    let mut draining = false;
    poll_fn(|cx| {
        if !draining && requested.as_mut().poll(cx).is_ready() {
            draining = true;
            connection.as_mut().drain();
        }
        connection.as_mut().poll(cx)
    })
    .await
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

/// Runs the TLS handshake, and returns the stream with the protocol its ALPN chose, or
/// `None` when the handshake failed or timed out.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    protocol::Protocol,
)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let protocol = protocol::Protocol::from_alpn(stream.get_ref().1.alpn_protocol());
            Some((stream, protocol))
        }
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

/// The HTTP/1.1 and HTTP/2 settings of the data listener, with header buffers and the
/// HTTP/1.1 header count a little above the pipeline's own limits, so most oversized
/// requests reach the pipeline and get an audited, Cosmos-shaped 431.
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
            .max_headers(crate::pipeline::MAX_HEADER_COUNT + 28)
            .max_buf_size(buffer.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(buffer).unwrap_or(u32::MAX));
        ConnectionBuilders { http1, http2 }
    }

    /// Serves HTTP/1.1 on `stream` until either side closes it, shutdown drains it or it
    /// stays idle for the header read timeout. Between requests the stream is taken back
    /// from hyper ([`idle::serve`]). This is a plain function that returns that future,
    /// because an async function would keep room for its own copy of `stream` for the
    /// connection's life.
    fn serve_http1<'a, T>(
        &'a self,
        stream: T,
        proxy: &'a Arc<Proxy>,
        peer: SocketAddr,
        sweep: &'a Arc<idle::IdleSweep>,
        shutdown: &'a mut Shutdown,
    ) -> impl Future<Output = Result<(), hyper::Error>> + 'a
    where
        T: idle::Transport + Send + 'static,
    {
        let service = move |activity| request_service(proxy, peer, Some(activity));
        idle::serve(
            stream,
            &self.http1,
            service,
            sweep,
            HEADER_READ_TIMEOUT,
            shutdown,
        )
    }

    /// Serves HTTP/2 on `io` until either side closes it or shutdown drains it.
    async fn serve_http2<I>(
        &self,
        io: I,
        proxy: &Arc<Proxy>,
        peer: SocketAddr,
        shutdown: &mut Shutdown,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = request_service(proxy, peer, None);
        let io = TokioIo::new(linger::Lingering::new(io));
        until_done(self.http2.serve_connection(io, service), shutdown)
            .await
            .map_err(Into::into)
    }
}
