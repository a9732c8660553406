//! Lingering close: after the proxy ends a connection, it reads and discards what the
//! client still sends for a while before it closes the socket.
//!
//! Closing a socket with unread bytes in its receive queue makes the kernel reset the
//! connection, and a client still sending (a head too large to accept, say) then loses
//! the error response that was already on its way. So the proxy shuts its sending side
//! down first, which signals the end of the response, and closes the socket once the
//! client closes its side, sends nothing for [`LINGER_QUIET`] or [`LINGER_TIMEOUT`]
//! passes, as nginx's lingering close does. An idle client sends nothing, so its
//! connection closes after the quiet time and shutdown does not wait for it.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps discarding what the client sends.
pub(super) const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection waits for more input before it closes. A client still
/// sending a request sends faster than this.
pub(super) const LINGER_QUIET: Duration = Duration::from_millis(300);

/// The state of a connection being closed. Its timers and buffer are allocated only then.
#[derive(Debug)]
pub(super) struct Linger {
    write_closed: bool,
    deadline: Pin<Box<Sleep>>,
    /// The end of the wait for more input, moved on by each read that returns bytes.
    quiet: Pin<Box<Sleep>>,
    discard: Box<[u8; 4096]>,
}

/// Shuts down `io`'s sending side, then discards what it reads until the peer closes or
/// goes quiet, a read fails or the linger timeout passes. Call it from `poll_shutdown`.
pub(super) fn poll_linger<I>(
    io: &mut I,
    linger: &mut Option<Linger>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let state = linger.get_or_insert_with(|| Linger {
        write_closed: false,
        deadline: Box::pin(tokio::time::sleep(LINGER_TIMEOUT)),
        quiet: Box::pin(tokio::time::sleep(LINGER_QUIET)),
        discard: Box::new([0; 4096]),
    });
    if !state.write_closed {
        ready!(Pin::new(&mut *io).poll_shutdown(cx))?;
        state.write_closed = true;
    }
    loop {
        if state.deadline.as_mut().poll(cx).is_ready() || state.quiet.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let mut buffer = ReadBuf::new(&mut state.discard[..]);
        match ready!(Pin::new(&mut *io).poll_read(cx, &mut buffer)) {
            Ok(()) if buffer.filled().is_empty() => return Poll::Ready(Ok(())),
            Ok(()) => {
                let quiet_until = tokio::time::Instant::now() + LINGER_QUIET;
                state.quiet.as_mut().reset(quiet_until);
            }
            // The socket is closed either way: a reset or a broken TLS record from a
            // client that went away is no error of the close.
            Err(_) => return Poll::Ready(Ok(())),
        }
    }
}

/// A stream that lingers when it is shut down. Everything else passes through.
#[derive(Debug)]
pub(super) struct Lingering<I> {
    io: I,
    linger: Option<Linger>,
}

impl<I> Lingering<I> {
    pub(super) fn new(io: I) -> Lingering<I> {
        Lingering { io, linger: None }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Lingering<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        poll_linger(&mut this.io, &mut this.linger, cx)
    }
}

#[cfg(test)]
mod tests;
