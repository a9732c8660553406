//! The verification of one request's token: cache lookup, issuer routing, key choice,
//! signature and claim checks, and principal mapping.

use std::sync::Arc;

use cosmoguard_policy::Principal;

use super::Inner;
use super::cache::{CachedToken, TokenDigest};
use super::error::AuthError;
use super::issuer::Issuer;
use super::keys::{KeySelectionError, VerificationKey};
use super::routing::Route;
use super::token::{self, TimeCheck, UnverifiedToken};
use super::{credential, principal};

impl Inner {
    pub(super) async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        issuer_index: &mut Option<usize>,
    ) -> Result<Arc<Principal>, AuthError> {
        let token = credential::extract_token(headers, self.options.max_token_size)?;
        let digest = self.cache.digest(&token);
        if let Some(cached) = self.cached_token(&digest) {
            *issuer_index = Some(cached.issuer_index);
            return Ok(cached.principal);
        }

        let unverified = UnverifiedToken::parse(&token)?;
        let route = self.directory.route(&unverified.claims)?;
        *issuer_index = Some(route.index);

        let (principal, key, expires_at) = self.verify(&token, &unverified, &route).await?;
        let principal = Arc::new(principal);
        let now = (self.clock)();
        let entry = CachedToken::new(
            Arc::clone(&principal),
            route.index,
            key.fingerprint,
            expires_at,
            now,
            token.len(),
        );
        if let Some(entry) = entry {
            self.cache.insert(digest, entry);
        }
        Ok(principal)
    }

    /// Returns a cached verification, unless the token has expired since or its issuer no
    /// longer publishes the key that verified it.
    fn cached_token(&self, digest: &TokenDigest) -> Option<CachedToken> {
        if !self.cache.is_enabled() {
            return None;
        }
        let hit = self.cache.get(digest).filter(|cached| {
            let issuer = &self.directory.issuers()[cached.issuer_index];
            let key_published = issuer
                .usable_keys()
                .is_ok_and(|keys| keys.contains(&cached.key_fingerprint));
            key_published && (self.clock)() < cached.expires_at
        });
        if hit.is_none() {
            self.cache.remove(digest);
        }
        self.metrics.record_cache_lookup(hit.is_some());
        hit
    }

    /// Verifies the token against its issuer and maps its claims. Returns the principal,
    /// the key that verified it and `exp`.
    async fn verify(
        &self,
        token: &str,
        unverified: &UnverifiedToken,
        route: &Route<'_>,
    ) -> Result<(Principal, Arc<VerificationKey>, i64), AuthError> {
        let issuer = route.issuer;
        let algorithm = unverified.algorithm;
        if !issuer.config.algorithms.contains(&algorithm) {
            return Err(AuthError::DisallowedAlgorithm {
                alg: algorithm.name().to_owned(),
            });
        }

        let key = self.select_key(issuer, unverified).await?;
        let claims = token::verify_signature(token, &key, algorithm)?;

        // The routing read the unverified payload: check the verified one again.
        if token::string_claim(&claims, "iss")? != route.expected_iss {
            return Err(AuthError::UnknownIssuer {
                issuer: token::truncate(token::string_claim(&claims, "iss")?, 200),
                hint: None,
            });
        }
        let time_check = TimeCheck {
            now: (self.clock)(),
            leeway: issuer.config.leeway.as_secs(),
        };
        let expires_at = time_check.check(&claims)?;
        if !token::audience_matches(&claims, &issuer.audiences)? {
            return Err(AuthError::WrongAudience {
                issuer: issuer.name().to_owned(),
            });
        }

        let principal = principal::map_principal(claims, &issuer.config.claims)?;
        Ok((principal, key, expires_at))
    }

    /// Finds the token's key, waiting (bounded) for a first fetch in flight or for a
    /// refetch when the token names a key id the issuer has not published.
    async fn select_key(
        &self,
        issuer: &Issuer,
        unverified: &UnverifiedToken,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        let wait = self.options.key_fetch_wait;
        let keys = match issuer.usable_keys() {
            Ok(keys) => keys,
            Err(_) => {
                issuer.wait_for_fetch(wait).await;
                issuer
                    .usable_keys()
                    .map_err(|reason| issuer.unavailable_error(reason))?
            }
        };

        let key_id = unverified.key_id.as_deref();
        let algorithm = unverified.algorithm;
        match keys.select(key_id, algorithm) {
            Ok(key) => return Ok(Arc::clone(key)),
            Err(KeySelectionError::UnknownKeyId) => {}
            Err(error) => return Err(error.into_auth_error(issuer.name(), key_id, algorithm)),
        }

        issuer.refetch_for_unknown_key(wait).await;
        let keys = issuer
            .usable_keys()
            .map_err(|reason| issuer.unavailable_error(reason))?;
        keys.select(key_id, algorithm)
            .map(Arc::clone)
            .map_err(|error| error.into_auth_error(issuer.name(), key_id, algorithm))
    }
}
