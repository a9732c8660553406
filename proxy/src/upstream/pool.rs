//! A keep-alive pool of HTTP/1.1 connections to the account, one per connection worker.
//!
//! hyper-util's pooled client spawns a task to put a connection back whenever its response
//! body is still to come, and locks a shared pool keyed by host. Each worker here talks to
//! one account from one thread, so its pool is a list. A request takes the most recently
//! used connection that is ready, and puts it back as soon as the response head arrives.
//! A connection still streaming a response body is not ready, so the next request passes
//! it by.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::body::ProxyBody;

type Connector = HttpsConnector<HttpConnector>;
type Sender = SendRequest<ProxyBody>;

/// An error that kept a request from getting a response from the account.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("cannot connect to {endpoint}")]
    Connect {
        endpoint: Uri,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the HTTP/1.1 handshake with {endpoint} failed")]
    Handshake { endpoint: Uri, source: hyper::Error },
    #[error(transparent)]
    Request(hyper::Error),
}

/// The pool settings: where to connect, and how long and how many connections stay idle.
#[derive(Clone, Debug)]
pub(super) struct PoolSettings {
    pub(super) connector: Connector,
    /// The account's scheme and authority, which the connector dials.
    pub(super) endpoint: Uri,
    pub(super) idle_timeout: Duration,
    pub(super) max_idle: usize,
}

/// One worker's connections to the account.
#[derive(Debug)]
pub(super) struct ConnectionPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    settings: PoolSettings,
    /// Connections not waiting for a response head, the most recently used last.
    idle: Mutex<VecDeque<IdleConnection>>,
    reaper_started: AtomicBool,
}

#[derive(Debug)]
struct IdleConnection {
    sender: Sender,
    since: Instant,
}

impl ConnectionPool {
    pub(super) fn new(settings: PoolSettings) -> ConnectionPool {
        ConnectionPool {
            inner: Arc::new(PoolInner {
                settings,
                idle: Mutex::new(VecDeque::new()),
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Sends the request on a pooled connection, or on a new one when none is ready. A
    /// request that a pooled connection closed before sending is sent once more on a new
    /// connection; nothing of it had reached the account.
    pub(super) async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut request = request;
        if let Some(mut sender) = self.inner.checkout(Instant::now()) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.inner.put_back(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => {
                        tracing::info!(
                            error = %error.error(),
                            "A pooled account connection closed before the request was \
                             sent; retrying on a new connection"
                        );
                        request = unsent;
                    }
                    None => return Err(SendError::Request(error.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(SendError::Request)?;
        self.inner.put_back(sender);
        Ok(response)
    }

    /// Counts the pooled connections that are not waiting for a response head.
    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.inner.lock_idle().len()
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let settings = &self.inner.settings;
        let mut connector = settings.connector.clone();
        let endpoint = settings.endpoint.clone();
        let connect_error = |source| SendError::Connect {
            endpoint: endpoint.clone(),
            source,
        };
        poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect_error)?;
        let stream = connector
            .call(endpoint.clone())
            .await
            .map_err(connect_error)?;
        let (sender, connection) =
            http1::Builder::new()
                .handshake(stream)
                .await
                .map_err(|source| SendError::Handshake {
                    endpoint: endpoint.clone(),
                    source,
                })?;
        tokio::spawn(async move {
            // A failed request gets this error from its own response future too.
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "An account connection ended with an error");
            }
        });
        self.start_reaper();
        Ok(sender)
    }

    /// Starts, once, the task that closes connections idle for longer than the timeout
    /// while no request comes to take them.
    fn start_reaper(&self) {
        if self.inner.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(&self.inner);
        let period = (self.inner.settings.idle_timeout / 2)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(reap(pool, period));
    }
}

async fn reap(pool: Weak<PoolInner>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.close_expired(Instant::now());
    }
}

impl PoolInner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, VecDeque<IdleConnection>> {
        // The list stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the most recently used connection that is ready for a request. Closed and
    /// expired connections found on the way are dropped, and busy ones stay.
    fn checkout(&self, now: Instant) -> Option<Sender> {
        let mut idle = self.lock_idle();
        let mut index = idle.len();
        while index > 0 {
            index -= 1;
            let entry = &mut idle[index];
            if self.is_spent(entry, now) {
                idle.remove(index);
            } else if entry.sender.is_ready() {
                return idle.remove(index).map(|entry| entry.sender);
            } else {
                // Still streaming a response, so its idle time has not started.
                entry.since = now;
            }
        }
        None
    }

    fn put_back(&self, sender: Sender) {
        let mut idle = self.lock_idle();
        if idle.len() >= self.settings.max_idle {
            idle.pop_front();
        }
        idle.push_back(IdleConnection {
            sender,
            since: Instant::now(),
        });
    }

    fn close_expired(&self, now: Instant) {
        self.lock_idle().retain_mut(|entry| {
            if !entry.sender.is_closed() && !entry.sender.is_ready() {
                entry.since = now;
            }
            !self.is_spent(entry, now)
        });
    }

    /// Checks whether a connection is closed, or has been ready and unused for longer than
    /// the idle timeout. A connection still streaming a response never expires, and its
    /// idle time counts from the last time it was seen streaming.
    fn is_spent(&self, entry: &IdleConnection, now: Instant) -> bool {
        let expired = now.saturating_duration_since(entry.since) > self.settings.idle_timeout;
        entry.sender.is_closed() || (expired && entry.sender.is_ready())
    }
}

#[cfg(test)]
mod tests;
