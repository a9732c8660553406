//! One client connection for the drivers: HTTP/1.1 or HTTP/2 (prior knowledge without TLS,
//! ALPN with it), each on its own TCP connection with TCP_NODELAY.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The server address, TLS settings and protocol of a connection.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: SocketAddr,
    /// TLS with this client configuration and server name, when set.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub http2: bool,
}

/// A request sender on one connection.
#[derive(Debug)]
pub enum Sender<B> {
    Http1(http1::SendRequest<B>),
    Http2(http2::SendRequest<B>),
}

impl<B> Sender<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Waits until the connection can take a request, then sends it.
    pub async fn send(&mut self, request: Request<B>) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }
}

/// Opens one connection. Its driver task runs until the sender is dropped.
pub async fn connect<B>(target: &Target) -> anyhow::Result<Sender<B>>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(target.address)
        .await
        .with_context(|| format!("cannot connect to {}", target.address))?;
    stream.set_nodelay(true)?;
    match &target.tls {
        None => handshake(TokioIo::new(stream), target.http2).await,
        Some((config, name)) => {
            let stream = TlsConnector::from(Arc::clone(config))
                .connect(name.clone(), stream)
                .await
                .context("TLS handshake failed")?;
            handshake(TokioIo::new(stream), target.http2).await
        }
    }
}

async fn handshake<I, B>(io: TokioIo<I>, use_http2: bool) -> anyhow::Result<Sender<B>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if use_http2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        Ok(Sender::Http2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(connection);
        Ok(Sender::Http1(sender))
    }
}
