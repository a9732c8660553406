//! HTTP/1.1 connections that hold only their socket, and on TLS their TLS session, while
//! they wait for the next request.
//!
//! hyper keeps a connection's read buffer, header write buffer and last header map for
//! the connection's life, and its server API cannot release them between requests. Each
//! idle keep-alive connection of an SDK's pool therefore costs about 15 KiB while hyper
//! serves it (bench/RESULTS.md).
//! Like nginx, which frees its buffers on idle keep-alive connections, the proxy takes a
//! connection with nothing in flight back from hyper when its socket has no bytes to read.
//! [`IdleStream`] reports the end of the stream to hyper, which then finishes without
//! shutting the socket down. [`serve`] drops hyper's state, waits until the socket is
//! readable and serves it with a new hyper connection. The client keeps one keep-alive
//! connection throughout. A connection is released only once it has been idle through a
//! whole tick of its worker's [`IdleSweep`] (a quarter to half a second). Building a new
//! hyper connection for every request of a busy connection cost about 2 µs of CPU per
//! request in the benchmark.
//!
//! On TLS the session stays with the proxy: a TLS read that came back pending leaves no
//! decrypted bytes in rustls, so from then on the socket's readiness shows the next
//! request too. A released connection that is closed (by shutdown or the idle timeout)
//! still sends its TLS close notification, as hyper would.
//!
//! A request is in flight from the moment hyper hands it to the service until hyper has
//! dropped its response body and the request body has been read to its end
//! ([`InFlight`]). A request body dropped before its end leaves hyper draining or closing
//! the connection, so that hyper connection is never taken back. Bytes hyper had read but
//! not parsed (the start of a head sent in several pieces, or a pipelined request) come
//! back in hyper's read buffer and are given to the next hyper connection first.

use std::future::{Future, poll_fn};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::Shutdown;
use crate::body::ProxyBody;

/// The in-flight state of one hyper connection, shared by its stream and its service.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Response bodies hyper has not dropped and request bodies not read to their end.
    in_flight: AtomicU32,
    /// A request body was dropped before its end. hyper then drains it or closes, so the
    /// connection is never taken back from this hyper connection.
    abandoned: AtomicBool,
    /// False from the time hyper handed back the start of an unfinished head until the
    /// next request, so hyper's header read timeout runs without being restarted.
    may_release: AtomicBool,
    /// Set by [`IdleStream`] when it reported the end of the stream to take the socket back.
    released: AtomicBool,
    /// hyper handed a request to the service on this hyper connection.
    requested: AtomicBool,
    /// The sweep tick at which the connection last became idle, or [`BUSY`].
    idle_since: AtomicU32,
    /// Set by the sweep: the connection has been idle for a whole tick.
    release_due: AtomicBool,
    /// The connection is on its worker's sweep list.
    listed: AtomicBool,
}

/// The value of [`Activity::idle_since`] while a request is in flight.
const BUSY: u32 = u32::MAX;

impl Activity {
    fn new(may_release: bool) -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicU32::new(0),
            abandoned: AtomicBool::new(false),
            may_release: AtomicBool::new(may_release),
            released: AtomicBool::new(false),
            requested: AtomicBool::new(false),
            idle_since: AtomicU32::new(BUSY),
            release_due: AtomicBool::new(false),
            listed: AtomicBool::new(false),
        })
    }

    /// Marks the start of a request: its response is in flight until the returned guard
    /// drops.
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.may_release.store(true, Ordering::Relaxed);
        self.requested.store(true, Ordering::Relaxed);
        self.idle_since.store(BUSY, Ordering::Relaxed);
        self.hold()
    }

    /// Marks a request body as in flight until it is read to its end.
    pub(crate) fn hold(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && !self.abandoned.load(Ordering::Relaxed)
            && self.may_release.load(Ordering::Relaxed)
    }
}

/// The list of one worker's idle connections. Every tick it marks each connection that has
/// been idle since before the previous tick for release and wakes its task.
#[derive(Debug)]
pub(super) struct IdleSweep {
    tick: AtomicU32,
    listed: std::sync::Mutex<Vec<(Weak<Activity>, Waker)>>,
}

impl IdleSweep {
    /// Starts a sweep on the current runtime that ticks every `interval` until the
    /// returned sweep is dropped.
    pub(super) fn start(interval: Duration) -> Arc<IdleSweep> {
        let sweep = Arc::new(IdleSweep {
            tick: AtomicU32::new(0),
            listed: std::sync::Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&sweep);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(sweep) = weak.upgrade() else {
                    return;
                };
                sweep.sweep();
            }
        });
        sweep
    }

    fn tick(&self) -> u32 {
        self.tick.load(Ordering::Relaxed)
    }

    /// Puts a connection on the list, once, with the waker of its task.
    fn list(&self, activity: &Arc<Activity>, waker: &Waker) {
        if activity.listed.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut listed = self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listed.push((Arc::downgrade(activity), waker.clone()));
    }

    fn sweep(&self) {
        let tick = self.tick.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let mut listed = self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listed.retain(|(activity, waker)| {
            let Some(activity) = activity.upgrade() else {
                return false;
            };
            let since = activity.idle_since.load(Ordering::Relaxed);
            if since == BUSY || tick.wrapping_sub(since) < 2 {
                return true;
            }
            activity.release_due.store(true, Ordering::Relaxed);
            waker.wake_by_ref();
            false
        });
    }
}

/// A guard on a response or request body that hyper or the pipeline still uses.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    /// Records that a request body was dropped before its end.
    pub(crate) fn abandon(self) {
        self.0.abandoned.store(true, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts tracking a request: returns its request body, held until read to its end, and
/// the guard its response body carries. Without `activity` (HTTP/2 connections)
/// nothing is tracked.
pub(super) fn track(
    activity: Option<&Arc<Activity>>,
    body: Incoming,
) -> (crate::body::RequestBody, Option<InFlight>) {
    let Some(activity) = activity else {
        return (crate::body::RequestBody::new(body, None), None);
    };
    let response = activity.start_request();
    let body_hold = (!body.is_end_stream()).then(|| activity.hold());
    (
        crate::body::RequestBody::new(body, body_hold),
        Some(response),
    )
}

/// A response body that keeps its request in flight until hyper drops it.
pub(super) struct ResponseBody {
    inner: ProxyBody,
    _in_flight: Option<InFlight>,
}

impl ResponseBody {
    pub(super) fn new(inner: ProxyBody, in_flight: Option<InFlight>) -> ResponseBody {
        ResponseBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's transport: a TCP socket, or a TLS session on one.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Returns the TCP socket under the transport, whose readiness shows the next request.
    fn socket(&self) -> &TcpStream;

    /// Returns true when the transport has buffered input that a read returns without the
    /// socket, so the socket's readiness does not show it.
    fn has_buffered_input(&self) -> bool;
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn has_buffered_input(&self) -> bool {
        false
    }
}

impl Transport for TlsStream<TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }

    /// rustls stops wanting TLS records while it has decrypted bytes or the client's close
    /// buffered, and a read returns either without touching the socket.
    fn has_buffered_input(&self) -> bool {
        !self.get_ref().1.wants_read()
    }
}

/// The transport that hyper reads and writes. Reads return the bytes handed back from the
/// previous hyper connection first, then the transport's, and the end of the stream when
/// nothing is in flight and the socket has nothing to read.
pub(super) struct IdleStream<T> {
    stream: T,
    handed_back: Bytes,
    activity: Arc<Activity>,
    sweep: Arc<IdleSweep>,
    /// hyper wrote since it last flushed, so its write buffer may hold bytes.
    unflushed: bool,
    /// A read found the connection idle but for unflushed bytes: hyper is woken after
    /// the flush so it reads again and the socket can be taken back.
    wake_after_flush: bool,
    /// The lingering close, once hyper shuts the connection down.
    linger: Option<super::linger::Linger>,
}

impl<T: Transport> IdleStream<T> {
    fn new(
        stream: T,
        handed_back: Bytes,
        activity: Arc<Activity>,
        sweep: Arc<IdleSweep>,
    ) -> IdleStream<T> {
        IdleStream {
            stream,
            handed_back,
            activity,
            sweep,
            unflushed: false,
            wake_after_flush: false,
            linger: None,
        }
    }

    /// Reads from the socket, or reports the end of the stream when the socket has
    /// nothing to read.
    fn poll_read_or_release(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.stream.has_buffered_input() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        loop {
            match self.stream.socket().poll_read_ready(cx) {
                Poll::Pending => {
                    self.activity.released.store(true, Ordering::Relaxed);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {}
            }
            // Readiness can be stale. A read that would block clears it, so the next
            // check above reflects the socket's current state.
            match Pin::new(&mut self.stream).poll_read(cx, buf) {
                Poll::Pending => {}
                ready => return ready,
            }
        }
    }
}

impl<T: Transport> AsyncRead for IdleStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.handed_back.is_empty() {
            let count = this.handed_back.len().min(buf.remaining());
            buf.put_slice(&this.handed_back[..count]);
            this.handed_back.advance(count);
            return Poll::Ready(Ok(()));
        }
        if this.activity.is_idle() {
            if this.unflushed {
                this.wake_after_flush = true;
            } else if this.activity.release_due.load(Ordering::Relaxed) {
                return this.poll_read_or_release(cx, buf);
            } else {
                if this.activity.idle_since.load(Ordering::Relaxed) == BUSY {
                    this.activity
                        .idle_since
                        .store(this.sweep.tick(), Ordering::Relaxed);
                }
                this.sweep.list(&this.activity, cx.waker());
            }
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<T: Transport> AsyncWrite for IdleStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.unflushed = true;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.unflushed = true;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if flushed.is_ready() {
            this.unflushed = false;
            if std::mem::take(&mut this.wake_after_flush) {
                cx.waker().wake_by_ref();
            }
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        super::linger::poll_linger(&mut this.stream, &mut this.linger, cx)
    }
}

/// Serves HTTP/1.1 on `stream` until either side closes it, shutdown drains it or it stays
/// idle for `idle_timeout`. `service` builds the service of each hyper connection.
pub(super) async fn serve<T, S, F>(
    mut stream: T,
    builder: &http1::Builder,
    service: F,
    sweep: &Arc<IdleSweep>,
    idle_timeout: Duration,
    shutdown: &mut Shutdown,
) -> Result<(), hyper::Error>
where
    T: Transport + Send + 'static,
    F: Fn(Arc<Activity>) -> S,
    S: HttpService<Incoming, ResBody = ResponseBody> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut handed_back = Bytes::new();
    // The time at which the connection is closed unless a request starts first. A TLS
    // record sent a byte at a time stays in rustls and never reaches hyper, whose header
    // read timeout restarts with each new hyper connection, so this deadline holds across
    // releases.
    let mut idle_deadline: Option<tokio::time::Instant> = None;
    loop {
        let activity = Activity::new(handed_back.is_empty());
        let mut connection = hyper_connection(
            builder,
            IdleStream::new(
                stream,
                handed_back,
                Arc::clone(&activity),
                Arc::clone(sweep),
            ),
            service(Arc::clone(&activity)),
        );
        let result = {
            let mut requested = std::pin::pin!(shutdown.requested());
            let mut draining = false;
            poll_fn(|cx| {
                if !draining && requested.as_mut().poll(cx).is_ready() {
                    draining = true;
                    Pin::new(&mut *connection).graceful_shutdown();
                }
                connection.poll_without_shutdown(cx)
            })
            .await
        };
        if !activity.released.load(Ordering::Relaxed) {
            // hyper ended the connection itself. Polling it again lets it flush what it
            // wrote and shut the socket down, as it does when it owns the connection.
            let finished = (&mut *connection).await;
            return result.and(finished);
        }
        // The end of the stream was this module's: nothing was in flight or unflushed,
        // and what hyper reports about that end is not the client's doing.
        (stream, handed_back) = take_back(connection);
        if activity.requested.load(Ordering::Relaxed) || idle_deadline.is_none() {
            idle_deadline = Some(tokio::time::Instant::now() + idle_timeout);
        }
        if shutdown.is_requested() {
            close(&mut stream).await;
            return Ok(());
        }
        if !handed_back.is_empty() {
            continue;
        }
        let waited = tokio::select! {
            readable = tokio::time::timeout_at(
                idle_deadline.unwrap_or_else(|| tokio::time::Instant::now() + idle_timeout),
                stream.socket().readable(),
            ) => Some(readable),
            () = shutdown.requested() => None,
        };
        match waited {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(error))) => {
                tracing::debug!(%error, "Failed to wait for an idle connection's next request");
                return Ok(());
            }
            Some(Err(_)) => {
                tracing::debug!("Closed a connection idle for longer than the header read timeout");
                close(&mut stream).await;
                return Ok(());
            }
            None => {
                close(&mut stream).await;
                return Ok(());
            }
        }
    }
}

/// Closes a connection taken back from hyper the way hyper closes one it serves: a TLS
/// session sends its close notification, and the lingering close reads what the client
/// still sends.
async fn close<T: Transport>(stream: &mut T) {
    let mut linger = None;
    // The connection is closed either way.
    let _ = poll_fn(|cx| super::linger::poll_linger(stream, &mut linger, cx)).await;
}

/// Builds the hyper connection served on `io`, boxed so that a connection waiting for its
/// next request keeps none of hyper's state. It is built outside the async function, so
/// that the function's state keeps no room for the unboxed value.
fn hyper_connection<T, S>(
    builder: &http1::Builder,
    io: IdleStream<T>,
    service: S,
) -> Box<http1::Connection<TokioIo<IdleStream<T>>, S>>
where
    T: Transport,
    S: HttpService<Incoming, ResBody = ResponseBody>,
{
    Box::new(builder.serve_connection(TokioIo::new(io), service))
}

/// Takes the transport back from a hyper connection that finished on the released
/// stream, with the bytes hyper had read but not parsed. It runs outside the async
/// function for the same reason as [`hyper_connection`].
#[expect(
    clippy::boxed_local,
    reason = "the box is moved in, so the unboxed connection never sits in the async function"
)]
fn take_back<T, S>(connection: Box<http1::Connection<TokioIo<IdleStream<T>>, S>>) -> (T, Bytes)
where
    T: Transport,
    S: HttpService<Incoming, ResBody = ResponseBody>,
{
    let parts = connection.into_parts();
    // An empty read buffer still keeps hyper's allocation alive, so only a copy of the
    // remaining bytes is kept.
    let handed_back = Bytes::copy_from_slice(&parts.read_buf);
    (parts.io.into_inner().stream, handed_back)
}

#[cfg(test)]
mod tests;
