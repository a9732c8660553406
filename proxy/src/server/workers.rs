//! Connection workers: threads that each run a single-threaded event loop and serve the
//! connections handed to them from the first request to the last.
//!
//! With one event loop per thread, a request is read, decided, forwarded and responded to
//! on one thread, through that thread's own upstream connection pool. No task moves
//! between threads and no thread wakes another, which a shared work-stealing runtime does
//! several times per request. The listener hands each new connection to the worker with
//! the fewest open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::pipeline::Proxy;

/// A connection accepted by the listener, on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
}

/// Settings every worker serves with.
pub(super) struct WorkerSettings {
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) max_header_bytes: usize,
    pub(super) grace: Duration,
}

struct Worker {
    sender: mpsc::UnboundedSender<Accepted>,
    open_connections: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

/// The running workers.
pub(super) struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    /// Starts `count` workers, each with its own copy of `proxy` (see [`Proxy::for_worker`]).
    pub(super) fn start(
        count: usize,
        proxy: &Proxy,
        settings: &Arc<WorkerSettings>,
    ) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let (sender, receiver) = mpsc::unbounded_channel();
            let open_connections = Arc::new(AtomicUsize::new(0));
            let worker_proxy = Arc::new(proxy.for_worker());
            let worker_settings = Arc::clone(settings);
            let counter = Arc::clone(&open_connections);
            let thread = std::thread::Builder::new()
                .name(format!("cosmoguard-worker-{index}"))
                .spawn(move || run(receiver, worker_proxy, &worker_settings, &counter))?;
            workers.push(Worker {
                sender,
                open_connections,
                thread,
            });
        }
        tracing::info!(workers = count, "Started connection workers");
        Ok(Workers { workers })
    }

    /// Hands a connection to the worker with the fewest open connections.
    pub(super) fn dispatch(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, client.address = %peer, "Failed to hand over a connection");
                return;
            }
        };
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|worker| worker.open_connections.load(Ordering::Relaxed))
        else {
            return;
        };
        worker.open_connections.fetch_add(1, Ordering::Relaxed);
        if worker.sender.send(Accepted { stream, peer }).is_err() {
            worker.open_connections.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(client.address = %peer, "Closed a connection because its worker has stopped");
        }
    }

    /// Stops handing out connections and waits for every worker to finish its open
    /// connections (each worker waits up to the grace period).
    pub(super) async fn shutdown(self) {
        let threads: Vec<JoinHandle<()>> = self
            .workers
            .into_iter()
            .map(|worker| {
                drop(worker.sender);
                worker.thread
            })
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(JoinHandle::join)
                .filter(Result::is_err)
                .count()
        })
        .await;
        match joined {
            Ok(0) => {}
            Ok(panicked) => tracing::error!(workers = panicked, "Connection workers panicked"),
            Err(error) => tracing::error!(%error, "Failed to wait for the connection workers"),
        }
    }
}

/// Runs a worker thread: serves the connections it receives until the listener stops,
/// then drains them.
fn run(
    receiver: mpsc::UnboundedReceiver<Accepted>,
    proxy: Arc<Proxy>,
    settings: &WorkerSettings,
    open_connections: &Arc<AtomicUsize>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "Failed to start a connection worker's event loop");
            return;
        }
    };
    runtime.block_on(serve(receiver, proxy, settings, open_connections));
}

async fn serve(
    mut receiver: mpsc::UnboundedReceiver<Accepted>,
    proxy: Arc<Proxy>,
    settings: &WorkerSettings,
    open_connections: &Arc<AtomicUsize>,
) {
    let (stop, listening) = watch::channel(false);
    let context = Arc::new(super::ConnectionContext {
        tls: settings.tls.clone(),
        proxy,
        builders: super::ConnectionBuilders::new(settings.max_header_bytes),
        sweep: super::idle::IdleSweep::start(super::IDLE_SWEEP_INTERVAL),
        shutdown: super::Shutdown(listening),
    });
    while let Some(Accepted { stream, peer }) = receiver.recv().await {
        let guard = OpenConnection(Arc::clone(open_connections));
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, client.address = %peer, "Failed to register a connection");
                continue;
            }
        };
        super::spawn_connection(stream, peer, &context, guard);
    }
    // Each connection's task keeps the context, and with it a receiver of the signal, so
    // `closed` completes once the last connection ends.
    drop(context);
    stop.send_replace(true);
    if tokio::time::timeout(settings.grace, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("Grace period ended with connections still open");
    }
}

/// A connection counted as open on its worker until this guard is dropped.
pub(super) struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
