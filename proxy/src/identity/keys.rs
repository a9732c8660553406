//! An issuer's signing keys, parsed from its JWKS document (RFC 7517), and the choice of
//! key for a token.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config::SigningAlgorithm;
use super::error::AuthError;

/// RSA keys shorter than this are skipped (NIST SP 800-131A disallows them for signatures).
const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The key families the proxy verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "Ed25519",
        }
    }

    fn fits(self, algorithm: SigningAlgorithm) -> bool {
        use SigningAlgorithm::*;
        match self {
            KeyType::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyType::EcP256 => algorithm == ES256,
            KeyType::EcP384 => algorithm == ES384,
            KeyType::Ed25519 => algorithm == EdDSA,
        }
    }
}

/// One public key from a JWKS.
pub(crate) struct VerificationKey {
    pub(crate) key_id: Option<String>,
    pub(crate) key_type: KeyType,
    /// The JWK's `alg`, when it pins the key to one algorithm.
    pub(crate) algorithm: Option<SigningAlgorithm>,
    pub(crate) decoding_key: DecodingKey,
    /// SHA-256 over the key id and public key material, so a cached token can tell whether
    /// its key is still published.
    pub(crate) fingerprint: [u8; 32],
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("key_id", &self.key_id)
            .field("key_type", &self.key_type)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The usable signing keys of one JWKS document.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<VerificationKey>>,
    /// Keys left out: encryption keys, HMAC keys, unsupported curves, short RSA keys.
    pub(crate) skipped: usize,
}

/// The reason no key was chosen for a token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeySelectionError {
    UnknownKeyId,
    Mismatch(KeyType),
}

/// The reason a whole JWKS document was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeySetError {
    #[error("the JWKS is not a JSON object with a `keys` array: {0}")]
    InvalidJson(serde_json::Error),
    #[error("the JWKS has no usable signing key ({skipped} keys skipped)")]
    NoUsableKeys { skipped: usize },
}

/// The JWK members the proxy reads. Certificates (`x5c`) are ignored: only the bare public
/// key is used.
#[derive(Deserialize)]
struct JwkFields {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    public_key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot verify signatures are skipped one by one,
    /// so a single odd key does not hide the others. A document with no usable key fails.
    pub(crate) fn parse(body: &[u8]) -> Result<KeySet, KeySetError> {
        let document: JwksDocument =
            serde_json::from_slice(body).map_err(KeySetError::InvalidJson)?;
        let mut key_set = KeySet::default();
        for value in document.keys {
            match parse_key(value) {
                Some(key) => key_set.keys.push(Arc::new(key)),
                None => key_set.skipped += 1,
            }
        }
        if key_set.keys.is_empty() {
            return Err(KeySetError::NoUsableKeys {
                skipped: key_set.skipped,
            });
        }
        Ok(key_set)
    }

    /// Picks the key for a token. A token `kid` must match a key's `kid`, except that a
    /// lone key without `kid` is used for any token. A token without `kid` needs exactly
    /// one key that fits its algorithm.
    pub(crate) fn select(
        &self,
        key_id: Option<&str>,
        algorithm: SigningAlgorithm,
    ) -> Result<&Arc<VerificationKey>, KeySelectionError> {
        let key = match key_id {
            Some(key_id) => self.find_by_id(key_id)?,
            None => self.find_only_fitting(algorithm)?,
        };
        let pinned_elsewhere = key.algorithm.is_some_and(|pinned| pinned != algorithm);
        if !key.key_type.fits(algorithm) || pinned_elsewhere {
            return Err(KeySelectionError::Mismatch(key.key_type));
        }
        Ok(key)
    }

    /// Returns true when a key with this fingerprint is still published.
    pub(crate) fn contains(&self, fingerprint: &[u8; 32]) -> bool {
        self.keys.iter().any(|key| &key.fingerprint == fingerprint)
    }

    fn find_by_id(&self, key_id: &str) -> Result<&Arc<VerificationKey>, KeySelectionError> {
        if let Some(key) = self
            .keys
            .iter()
            .find(|key| key.key_id.as_deref() == Some(key_id))
        {
            return Ok(key);
        }
        match self.keys.as_slice() {
            [only] if only.key_id.is_none() => Ok(only),
            _ => Err(KeySelectionError::UnknownKeyId),
        }
    }

    fn find_only_fitting(
        &self,
        algorithm: SigningAlgorithm,
    ) -> Result<&Arc<VerificationKey>, KeySelectionError> {
        let mut fitting = self.keys.iter().filter(|key| key.key_type.fits(algorithm));
        match (fitting.next(), fitting.next()) {
            (Some(key), None) => Ok(key),
            _ => Err(KeySelectionError::UnknownKeyId),
        }
    }
}

impl KeySelectionError {
    pub(crate) fn into_auth_error(
        self,
        issuer: &str,
        key_id: Option<&str>,
        algorithm: SigningAlgorithm,
    ) -> AuthError {
        match self {
            KeySelectionError::UnknownKeyId => AuthError::UnknownKeyId {
                issuer: issuer.to_owned(),
                kid: key_id.map(|kid| super::token::truncate(kid, 64)),
            },
            KeySelectionError::Mismatch(key_type) => AuthError::AlgorithmKeyMismatch {
                alg: algorithm.name().to_owned(),
                key_type: key_type.name(),
            },
        }
    }
}

fn parse_key(value: serde_json::Value) -> Option<VerificationKey> {
    let fields: JwkFields = serde_json::from_value(value).ok()?;
    if fields
        .public_key_use
        .as_deref()
        .is_some_and(|usage| usage != "sig")
    {
        return None;
    }
    if let Some(operations) = &fields.key_ops
        && !operations.iter().any(|operation| operation == "verify")
    {
        return None;
    }
    let algorithm = match fields.alg.as_deref() {
        Some(name) => Some(SigningAlgorithm::from_name(name)?),
        None => None,
    };

    let (key_type, decoding_key) = decoding_key(&fields)?;
    if algorithm.is_some_and(|algorithm| !key_type.fits(algorithm)) {
        return None;
    }
    Some(VerificationKey {
        fingerprint: fingerprint(&fields),
        key_id: fields.kid,
        key_type,
        algorithm,
        decoding_key,
    })
}

fn decoding_key(fields: &JwkFields) -> Option<(KeyType, DecodingKey)> {
    match (fields.kty.as_str(), fields.crv.as_deref()) {
        ("RSA", _) => {
            let modulus = URL_SAFE_NO_PAD.decode(fields.n.as_deref()?).ok()?;
            let exponent = URL_SAFE_NO_PAD.decode(fields.e.as_deref()?).ok()?;
            if significant_bits(&modulus) < MIN_RSA_MODULUS_BITS || exponent.is_empty() {
                return None;
            }
            let key = DecodingKey::from_rsa_raw_components(&modulus, &exponent);
            Some((KeyType::Rsa, key))
        }
        ("EC", Some(curve @ ("P-256" | "P-384"))) => {
            let key_type = if curve == "P-256" {
                KeyType::EcP256
            } else {
                KeyType::EcP384
            };
            let coordinate_length = if key_type == KeyType::EcP256 { 32 } else { 48 };
            let x = fields.x.as_deref()?;
            let y = fields.y.as_deref()?;
            if decoded_length(x)? != coordinate_length || decoded_length(y)? != coordinate_length {
                return None;
            }
            let key = DecodingKey::from_ec_components(x, y).ok()?;
            Some((key_type, key))
        }
        ("OKP", Some("Ed25519")) => {
            let x = fields.x.as_deref()?;
            if decoded_length(x)? != 32 {
                return None;
            }
            let key = DecodingKey::from_ed_components(x).ok()?;
            Some((KeyType::Ed25519, key))
        }
        _ => None,
    }
}

fn decoded_length(value: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(value).ok().map(|bytes| bytes.len())
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let Some(first) = big_endian.iter().position(|byte| *byte != 0) else {
        return 0;
    };
    let leading_zeros = big_endian[first].leading_zeros() as usize;
    (big_endian.len() - first) * 8 - leading_zeros
}

fn fingerprint(fields: &JwkFields) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let parts = [
        Some(fields.kty.as_str()),
        fields.kid.as_deref(),
        fields.crv.as_deref(),
        fields.n.as_deref(),
        fields.e.as_deref(),
        fields.x.as_deref(),
        fields.y.as_deref(),
    ];
    for part in parts {
        let part = part.unwrap_or_default();
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}
