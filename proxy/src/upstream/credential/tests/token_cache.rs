//! The token cache against an in-process source, under paused tokio time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret};
use azure_core::time::OffsetDateTime;
use prometheus::Registry;
use tokio::time::Instant;

use super::super::metrics::CredentialMetrics;
use super::super::token_cache::{RefreshSettings, TokenCache, TokenSource, refresh_delay};
use super::aad_header;

/// A token source that counts fetches and can be slow or fail.
#[derive(Debug, Default)]
struct FakeSource {
    fetches: AtomicUsize,
    lifetime_seconds: AtomicU64,
    delay_ms: AtomicU64,
    fail: AtomicBool,
}

#[async_trait::async_trait]
impl TokenSource for Arc<FakeSource> {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn fetch(&self, _scope: &str) -> azure_core::Result<AccessToken> {
        let number = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "identity endpoint returned 500",
            ));
        }
        let lifetime = self.lifetime_seconds.load(Ordering::SeqCst);
        let expires_on =
            OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(lifetime as i64);
        Ok(AccessToken::new(
            Secret::new(format!("token-{number}")),
            expires_on,
        ))
    }
}

fn source(lifetime_seconds: u64, delay_ms: u64) -> Arc<FakeSource> {
    let source = FakeSource::default();
    source
        .lifetime_seconds
        .store(lifetime_seconds, Ordering::SeqCst);
    source.delay_ms.store(delay_ms, Ordering::SeqCst);
    Arc::new(source)
}

fn settings() -> RefreshSettings {
    RefreshSettings {
        fetch_timeout: Duration::from_secs(30),
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
    }
}

fn start(source: &Arc<FakeSource>) -> (TokenCache, CredentialMetrics) {
    let metrics = CredentialMetrics::register(&Registry::new()).unwrap();
    let cache = TokenCache::start(
        Box::new(Arc::clone(source)),
        "scope".to_owned(),
        settings(),
        metrics.clone(),
    );
    (cache, metrics)
}

async fn header(cache: &TokenCache) -> String {
    let signed = cache
        .authorization()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    signed.header.to_str().unwrap().to_owned()
}

#[test]
fn refresh_starts_at_80_percent_or_5_minutes_before_expiry() {
    let minutes = |count: u64| Duration::from_secs(count * 60);
    assert_eq!(refresh_delay(minutes(60)), minutes(48));
    assert_eq!(refresh_delay(minutes(20)), minutes(15));
    assert_eq!(refresh_delay(minutes(100)), minutes(80));
    // Short tokens keep half their lifetime as the margin, never refreshing at once.
    assert_eq!(
        refresh_delay(Duration::from_secs(10)),
        Duration::from_secs(5)
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_first_callers_share_one_fetch() {
    let source = source(3600, 1000);
    let (cache, _metrics) = start(&source);
    let cache = Arc::new(cache);

    let callers: Vec<_> = (0..50)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { header(&cache).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), aad_header("token-1"));
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_refresh_keeps_serving_the_current_token() {
    let source = source(60, 0);
    let (cache, metrics) = start(&source);
    assert_eq!(header(&cache).await, aad_header("token-1"));

    // The refresh starts at 30 s (half of a 60 s lifetime) and takes 10 s.
    source.delay_ms.store(10_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        2,
        "the refresh has started"
    );
    let before = Instant::now();
    assert_eq!(header(&cache).await, aad_header("token-1"));
    assert_eq!(
        Instant::now(),
        before,
        "the caller did not wait for the refresh"
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(header(&cache).await, aad_header("token-2"));
    assert_eq!(metrics.refresh_count(true), 2);
}

#[tokio::test(start_paused = true)]
async fn failing_refresh_errors_only_after_the_last_token_expires() {
    let source = source(10, 0);
    let (cache, metrics) = start(&source);
    assert_eq!(header(&cache).await, aad_header("token-1"));

    source.fail.store(true, Ordering::SeqCst);
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            header(&cache).await,
            aad_header("token-1"),
            "the token is still valid"
        );
    }
    assert!(
        metrics.refresh_count(false) >= 2,
        "retries ran while the token was valid"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let error = cache.authorization().await.unwrap_err().to_string();
    assert!(error.contains("identity endpoint returned 500"), "{error}");
    assert!(error.contains("expired"), "{error}");

    // The backoff keeps retrying; a recovered source brings the credential back.
    source.fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(header(&cache).await.starts_with("type%3daad"));
}

#[tokio::test(start_paused = true)]
async fn failure_backoff_doubles_up_to_the_maximum() {
    let source = source(10, 0);
    source.fail.store(true, Ordering::SeqCst);
    let (cache, _metrics) = start(&source);
    assert!(cache.authorization().await.is_err());

    // Attempts at 0, 1, 3, 7, 15 and 23 s (backoff 1, 2, 4, 8, 8).
    tokio::time::sleep(Duration::from_millis(23_500)).await;
    assert_eq!(source.fetches.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn burst_of_rejections_triggers_one_refresh() {
    let source = source(3600, 0);
    let (cache, _metrics) = start(&source);
    let cache = Arc::new(cache);
    let generation = cache.authorization().await.unwrap().generation;

    let rejections: Vec<_> = (0..50)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.rejected(generation) })
        })
        .collect();
    for rejection in rejections {
        rejection.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(header(&cache).await, aad_header("token-2"));

    // A late rejection of the replaced token changes nothing.
    cache.rejected(generation);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn cancelled_caller_does_not_interrupt_the_fetch() {
    let source = source(3600, 5000);
    let (cache, _metrics) = start(&source);

    let cancelled = tokio::time::timeout(Duration::from_secs(1), cache.authorization()).await;
    assert!(cancelled.is_err(), "the caller gave up while the fetch ran");

    assert_eq!(header(&cache).await, aad_header("token-1"));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn hung_fetch_times_out_and_is_retried() {
    let source = source(3600, 60_000);
    let (cache, metrics) = start(&source);
    let error = cache.authorization().await.unwrap_err().to_string();
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(metrics.refresh_count(false), 1);

    source.delay_ms.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(header(&cache).await, aad_header("token-2"));
}
