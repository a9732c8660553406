//! Polling of configuration files, shared by the policy and the TLS certificate reloads.
//!
//! Polling, rather than inotify, also catches the symlink swap by which Kubernetes updates
//! a mounted ConfigMap or Secret.

use std::time::Duration;

/// Runs `reload` every `period` on the blocking thread pool, because file reads block,
/// until the task is dropped. `name` identifies the watched files in error logs.
pub async fn poll_blocking<F>(period: Duration, name: &'static str, reload: F)
where
    F: Fn() -> bool + Clone + Send + 'static,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let reload = reload.clone();
        if let Err(error) = tokio::task::spawn_blocking(reload).await {
            tracing::error!(%error, watched = name, "Reload task failed");
        }
    }
}
