//! Unread request bodies. An HTTP/1.1 connection can carry the next request only after
//! the current request's body is read. When a request is rejected before its body was
//! read (401, 403, 400), the body is drained, so the client is not reset while still
//! sending and does receive the response, and the response says `Connection: close`.
//! hyper 1 may close such a connection even after the body was drained to its end, and
//! a client that was not told would send its next request into a closed connection.
//! HTTP/2 streams are independent and need neither.

use std::time::Duration;

use http::{HeaderValue, Response, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::body::{ProxyBody, RequestBody};

/// The most of an unread body that is read and discarded to keep the connection.
const MAX_DRAIN_BYTES: usize = 1024 * 1024;

/// The longest a client is waited for while draining.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Drains an unread body (bounded in size and time) and marks the response
/// `Connection: close`. A request without a body keeps its connection.
pub(super) async fn drain_unread_body(
    body: RequestBody,
    version: Version,
    response: &mut Response<ProxyBody>,
) {
    if version == Version::HTTP_2 || version == Version::HTTP_3 || body.is_end_stream() {
        return;
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, drain(body))
        .await
        .unwrap_or(false);
    if !drained {
        tracing::debug!("Closing the connection: the rejected request's body was not fully read");
    }
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Reads and discards up to [`MAX_DRAIN_BYTES`]; returns whether the body ended.
async fn drain(mut body: RequestBody) -> bool {
    let mut read = 0;
    loop {
        match body.frame().await {
            None => return true,
            Some(Ok(frame)) => {
                read += frame.data_ref().map_or(0, |data| data.len());
                if read > MAX_DRAIN_BYTES {
                    return false;
                }
            }
            Some(Err(_)) => return false,
        }
    }
}
