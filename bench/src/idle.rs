//! Opens many keep-alive connections, sends one request on each, then holds them idle, so
//! the suite can read the server's memory with all of them open.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use serde::Serialize;
use tokio::io::AsyncBufReadExt;

use crate::client::{self, Sender, Target};

/// The connections to open and how long to keep them.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    pub target: Target,
    pub connections: usize,
    /// Connections opened at once.
    pub batch: usize,
    pub path: String,
    pub host: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The maximum time to keep the connections; a line on standard input ends it sooner.
    pub hold: Duration,
}

/// Counts printed as JSON when the connections are open.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub open: usize,
    pub failed: usize,
    pub seconds_to_open: f64,
}

async fn open_one(options: &IdleOptions) -> anyhow::Result<Sender<Empty<Bytes>>> {
    let mut sender = client::connect::<Empty<Bytes>>(&options.target).await?;
    let mut builder =
        Request::get(options.path.as_str()).header(http::header::HOST, options.host.as_str());
    for (name, value) in &options.headers {
        builder = builder.header(name, value);
    }
    let response = sender.send(builder.body(Empty::new())?).await?;
    let status = response.status();
    response.into_body().collect().await?;
    anyhow::ensure!(status.is_success(), "status {status}");
    Ok(sender)
}

/// Opens the connections, prints the report, then holds them until `hold` passes or a
/// line arrives on standard input.
pub async fn run(options: IdleOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut open = Vec::with_capacity(options.connections);
    let mut failed = 0;
    let mut remaining = options.connections;
    while remaining > 0 {
        let batch = remaining.min(options.batch.max(1));
        let attempts = (0..batch).map(|_| open_one(&options));
        for result in futures_util::future::join_all(attempts).await {
            match result {
                Ok(sender) => open.push(sender),
                Err(_) => failed += 1,
            }
        }
        remaining -= batch;
    }
    let report = IdleReport {
        open: open.len(),
        failed,
        seconds_to_open: started.elapsed().as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&report)?);
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let _ = tokio::time::timeout(options.hold, stdin.read_line(&mut line)).await;
    drop(open);
    Ok(())
}
