//! Signing keys and test tokens: PEM keys from the suite, JWKs derived from them, and
//! access tokens with a distinct `jti` each, so every token is a separate cache entry.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// A private signing key with its JWS algorithm and key id.
#[derive(Clone)]
pub struct SigningKey {
    pub algorithm: Algorithm,
    pub key_id: String,
    key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM key: RSA for RS256, P-256 for ES256.
    pub fn from_pem_file(
        path: &Path,
        algorithm: Algorithm,
        key_id: &str,
    ) -> anyhow::Result<SigningKey> {
        let pem =
            std::fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?;
        SigningKey::from_pem(&pem, algorithm, key_id)
    }

    /// Parses a PKCS#8 PEM key.
    pub fn from_pem(pem: &[u8], algorithm: Algorithm, key_id: &str) -> anyhow::Result<SigningKey> {
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem)?,
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem)?,
            other => anyhow::bail!("unsupported algorithm {other:?}; use RS256 or ES256"),
        };
        Ok(SigningKey {
            algorithm,
            key_id: key_id.to_owned(),
            key,
        })
    }

    /// Returns the public key as a JWK with `kid`, `alg` and `use = sig`.
    pub fn jwk(&self) -> anyhow::Result<Jwk> {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm)?;
        jwk.common.key_id = Some(self.key_id.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(jwk)
    }

    /// Signs `claims` with this key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// Returns the JWKS document for `keys`.
pub fn jwk_set(keys: &[SigningKey]) -> anyhow::Result<JwkSet> {
    let keys = keys
        .iter()
        .map(SigningKey::jwk)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(JwkSet { keys })
}

/// The claims of a bench caller's access token, shaped like an Entra ID token.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    pub azp: &'a str,
    pub name: &'a str,
    pub groups: &'a [&'a str],
    pub scp: &'a str,
    pub tid: &'a str,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// The caller, issuer, audience and lifetime of minted tokens.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    /// Lifetime in seconds from now.
    pub lifetime_seconds: i64,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Signs token number `index`: the same caller each time, a distinct `jti`.
pub fn mint_one(key: &SigningKey, spec: &TokenSpec, index: u64) -> anyhow::Result<String> {
    let now = unix_now();
    let claims = Claims {
        iss: &spec.issuer,
        aud: &spec.audience,
        sub: &spec.subject,
        azp: "bench-driver",
        name: "Bench Client",
        groups: &["bench-readers", "bench-writers"],
        scp: "user_impersonation",
        tid: "72f988bf-86f1-41af-91ab-2d7cd011db47",
        iat: now,
        nbf: now - 5,
        exp: now + spec.lifetime_seconds,
        jti: format!("bench-{index:08}"),
    };
    key.sign(&claims)
}

/// Signs `count` tokens on all cores and returns them in index order.
pub fn mint_many(key: &SigningKey, spec: &TokenSpec, count: u64) -> anyhow::Result<Vec<String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let per_thread = count.div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let start = thread * per_thread;
                let end = ((thread + 1) * per_thread).min(count);
                scope.spawn(move || {
                    (start..end)
                        .map(|index| mint_one(key, spec, index))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(count as usize);
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a minting thread panicked"))??;
            tokens.extend(part);
        }
        Ok(tokens)
    })
}
