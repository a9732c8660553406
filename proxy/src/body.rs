//! The body type every response of the proxy has: streamed from upstream or built here.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};

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
