//! Streams one large response or request body through a server and reports the bytes and
//! time, so the suite can watch the proxy's memory while it runs.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use serde::Serialize;

use crate::body::RepeatBody;
use crate::client::{self, Target};

/// The direction of the streamed body.
#[derive(Clone, Debug)]
pub enum Direction {
    /// `GET` the path and count the response body.
    Download,
    /// `POST` a body of this many bytes to the path. The proxy streams a stored procedure
    /// execution, but reads create, upsert and replace bodies to check the ids they name.
    Upload(u64),
}

/// One streaming request.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    pub target: Target,
    pub path: String,
    pub host: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub direction: Direction,
}

/// The outcome, printed as JSON.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    pub status: u16,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
}

type RequestBody = BoxBody<Bytes, std::convert::Infallible>;

/// Sends the request and reads the whole response, one frame at a time.
pub async fn run(options: StreamOptions) -> anyhow::Result<StreamReport> {
    let mut sender = client::connect::<RequestBody>(&options.target).await?;
    let (method, body, bytes_sent) = match options.direction {
        Direction::Download => (Method::GET, RepeatBody::filler(0).boxed(), 0),
        Direction::Upload(bytes) => (Method::POST, RepeatBody::filler(bytes).boxed(), bytes),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(options.path.as_str())
        .header(http::header::HOST, options.host.as_str());
    for (name, value) in &options.headers {
        builder = builder.header(name, value);
    }
    let started = Instant::now();
    let response = sender.send(builder.body(body)?).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes_received = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes_received += data.len() as u64;
        }
    }
    Ok(StreamReport {
        status,
        bytes_sent,
        bytes_received,
        seconds: started.elapsed().as_secs_f64(),
    })
}
