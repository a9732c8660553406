//! The body types of the proxy: every response's, streamed from upstream or built here,
//! and the client's request body as the pipeline reads it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;

use crate::server::InFlight;

/// Errors a body can fail with while it streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response or request body: a stream from the other side, or bytes built here.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Wraps bytes built by the proxy.
pub fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

/// A request body as the pipeline reads it: hyper's stream of the client's bytes. It
/// records on the connection when it was read to its end, so that an idle keep-alive
/// connection can release hyper's buffers (see `server::idle`).
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    in_flight: Option<InFlight>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, in_flight: Option<InFlight>) -> RequestBody {
        RequestBody { inner, in_flight }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(in_flight) = self.in_flight.take()
            && !self.inner.is_end_stream()
        {
            in_flight.abandon();
        }
    }
}
