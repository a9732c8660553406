//! The cache of verified tokens, so a repeated token costs a hash and a lookup.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmoguard_policy::Principal;
use moka::Expiry;
use moka::sync::Cache;
use siphasher::sip128::{Hasher128, SipHasher13};

/// The cache key: a 128-bit SipHash of the token under a key drawn at start, so the cache
/// contains no bearer token, and a token cannot be tested against it without the key.
pub(crate) type TokenDigest = u128;

/// A verified token.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    pub(crate) principal: Arc<Principal>,
    pub(crate) issuer_index: usize,
    /// The key that verified the token. A hit counts only while this key is published.
    pub(crate) key_fingerprint: [u8; 32],
    /// The token's `exp`, in Unix seconds.
    pub(crate) expires_at: i64,
    time_to_live: Duration,
    /// The entry's estimated memory in bytes, which the cache's bound counts.
    weight: u32,
}

/// The estimated memory of a cache entry beyond its claims: the key, the principal's
/// fixed fields and the cache's own bookkeeping.
const ENTRY_OVERHEAD_BYTES: usize = 512;

/// Returns the estimated memory of the entry for a token of `token_len` bytes. The claims
/// parsed from a token take about four times its length.
// NOTE: an estimate from the benchmarks' cold-token runs, where 60,000 cached 680-byte
// tokens took about 2.7 KiB each; tokens with unusually nested claims take more.
fn entry_weight(token_len: usize) -> u32 {
    let bytes = ENTRY_OVERHEAD_BYTES.saturating_add(token_len.saturating_mul(4));
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl CachedToken {
    /// Describes a token of `token_len` bytes verified at `now` (Unix seconds). Returns
    /// `None` when it expires within a second, because caching it would gain nothing.
    pub(crate) fn new(
        principal: Arc<Principal>,
        issuer_index: usize,
        key_fingerprint: [u8; 32],
        expires_at: i64,
        now: i64,
        token_len: usize,
    ) -> Option<CachedToken> {
        let seconds_left = u64::try_from(expires_at.checked_sub(now)?).ok()?;
        if seconds_left == 0 {
            return None;
        }
        Some(CachedToken {
            principal,
            issuer_index,
            key_fingerprint,
            expires_at,
            time_to_live: Duration::from_secs(seconds_left),
            weight: entry_weight(token_len),
        })
    }
}

/// Removes each entry when its token expires.
struct TokenExpiry;

impl Expiry<TokenDigest, CachedToken> for TokenExpiry {
    fn expire_after_create(
        &self,
        _digest: &TokenDigest,
        token: &CachedToken,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(token.time_to_live)
    }
}

/// A cache of verified tokens bounded by their estimated memory, or a disabled one when
/// the bound is zero.
#[derive(Clone)]
pub(crate) struct TokenCache {
    entries: Option<Cache<TokenDigest, CachedToken>>,
    /// The SipHash key of the digests.
    keys: (u64, u64),
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("enabled", &self.entries.is_some())
            .finish()
    }
}

impl TokenCache {
    /// Returns a cache whose entries take at most `max_bytes`, estimated.
    pub(crate) fn new(max_bytes: u64) -> TokenCache {
        let entries = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_digest: &TokenDigest, token: &CachedToken| token.weight)
                .expire_after(TokenExpiry)
                .build()
        });
        TokenCache {
            entries,
            keys: (random_u64(), random_u64()),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// Returns the token's cache key. SipHash is a keyed pseudorandom function, so without
    /// the key no one can compute a token's digest or find two tokens with the same one.
    /// On a 680-byte token it took 209 ns here, against 511 ns for SHA-256.
    pub(crate) fn digest(&self, token: &str) -> TokenDigest {
        let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(token.as_bytes());
        hasher.finish128().as_u128()
    }

    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<CachedToken> {
        self.entries.as_ref()?.get(digest)
    }

    pub(crate) fn insert(&self, digest: TokenDigest, token: CachedToken) {
        if let Some(entries) = &self.entries {
            entries.insert(digest, token);
        }
    }

    pub(crate) fn remove(&self, digest: &TokenDigest) {
        if let Some(entries) = &self.entries {
            entries.invalidate(digest);
        }
    }
}

/// Returns 64 random bits. The standard library seeds each `RandomState` from the
/// operating system's random source, and its keyed hash of a constant is unpredictable
/// without that seed.
fn random_u64() -> u64 {
    RandomState::new().hash_one(0u8)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{CachedToken, TokenCache};

    #[test]
    fn digest_is_stable_within_one_cache() {
        let cache = TokenCache::new(10);
        assert_eq!(cache.digest("a.b.c"), cache.digest("a.b.c"));
        assert_ne!(cache.digest("a.b.c"), cache.digest("a.b.d"));
    }

    #[test]
    fn digest_key_differs_between_caches() {
        let (first, second) = (TokenCache::new(10), TokenCache::new(10));
        assert_ne!(first.keys, second.keys);
        assert_ne!(first.digest("a.b.c"), second.digest("a.b.c"));
    }

    #[test]
    fn cache_keeps_within_its_byte_bound() {
        let cache = TokenCache::new(10_000);
        let principal = Arc::new(cosmoguard_policy::Principal::default());
        for index in 0..20 {
            let token = CachedToken::new(Arc::clone(&principal), 0, [0; 32], 3_600, 0, 1_000);
            cache.insert(index, token.unwrap());
        }
        let entries = cache.entries.as_ref().unwrap();
        entries.run_pending_tasks();
        assert!(
            entries.weighted_size() <= 10_000,
            "{}",
            entries.weighted_size()
        );
        assert!(entries.entry_count() <= 2, "{}", entries.entry_count());
        assert!(entries.entry_count() >= 1, "{}", entries.entry_count());
    }
}
