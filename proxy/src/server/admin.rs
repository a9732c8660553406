//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process serves) and
//! `/readyz` (token keys loaded, so requests can be authenticated, and the upstream
//! credential able to sign).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus::Registry;
use tokio::net::TcpListener;

use crate::identity::Authenticator;
use crate::upstream::CredentialReadiness;

/// The state the admin endpoints report on.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub registry: Registry,
    pub authenticator: Authenticator,
    /// Whether the proxy has a valid token for the account (always true for keys).
    pub credential: CredentialReadiness,
}

/// Serves the admin listener until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) {
    let state = Arc::new(state);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept an admin connection");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, &request)) }
            });
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "Admin connection ended with an error");
            }
        });
    }
}

fn route<B>(state: &AdminState, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are supported\n",
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(crate::metrics::render(
                &state.registry,
            ))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if !state.authenticator.is_ready() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: token signing keys are not loaded yet\n",
        ),
        "/readyz" if !state.credential.is_ready() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the upstream credential has no valid token yet\n",
        ),
        "/readyz" => text(StatusCode::OK, "ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
