//! JWT parsing before verification, and the claim checks after it.
//!
//! The unverified header and payload are read only to pick the issuer and key. Every
//! decision is then made on the claims that the signature check returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::SigningAlgorithm;
use super::error::AuthError;
use super::keys::VerificationKey;

pub(crate) type Claims = Map<String, Value>;

/// A compact JWS whose header and payload were decoded but not verified.
#[derive(Debug)]
pub(crate) struct UnverifiedToken {
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) key_id: Option<String>,
    pub(crate) claims: Claims,
}

/// The JOSE header fields the proxy reads. `jwk`, `jku`, `x5u` and `x5c` are ignored on
/// purpose: keys come only from the issuer's configured JWKS.
#[derive(Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

impl UnverifiedToken {
    /// Decodes a compact JWS. Rejects JWE (five parts), `none`, HMAC and unknown algorithms,
    /// and headers with `crit` extensions, which the proxy does not implement.
    pub(crate) fn parse(token: &str) -> Result<UnverifiedToken, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed {
                detail: "the token is not a JWT of three dot-separated parts",
            });
        };

        let header: JoseHeader = decode_json(header, "the JWT header is not base64url JSON")?;
        if header.crit.is_some() {
            return Err(AuthError::Malformed {
                detail: "the JWT header has critical extensions (`crit`), which are not supported",
            });
        }
        let alg = header.alg.ok_or(AuthError::Malformed {
            detail: "the JWT header has no `alg`",
        })?;
        let algorithm =
            SigningAlgorithm::from_name(&alg).ok_or_else(|| AuthError::DisallowedAlgorithm {
                alg: truncate(&alg, 32),
            })?;

        let claims: Claims =
            decode_json(payload, "the JWT payload is not a base64url JSON object")?;
        Ok(UnverifiedToken {
            algorithm,
            key_id: header.kid,
            claims,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(
    part: &str,
    detail: &'static str,
) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed { detail })?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed { detail })
}

/// Returns a required string claim.
pub(crate) fn string_claim<'a>(claims: &'a Claims, name: &str) -> Result<&'a str, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(AuthError::MissingClaim {
            claim: name.to_owned(),
        }),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(AuthError::InvalidClaim {
            claim: name.to_owned(),
            expected: "a string",
        }),
    }
}

/// The time rules of one issuer: the current time and the allowed clock skew.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeCheck {
    /// Seconds since the Unix epoch.
    pub(crate) now: i64,
    pub(crate) leeway: u64,
}

impl TimeCheck {
    /// Checks `exp` (required), `nbf` and `iat` (optional), each with the leeway. Returns
    /// `exp`.
    pub(crate) fn check(&self, claims: &Claims) -> Result<i64, AuthError> {
        let leeway = i64::try_from(self.leeway).unwrap_or(i64::MAX);
        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingClaim {
            claim: "exp".to_owned(),
        })?;
        if self.now > exp.saturating_add(leeway) {
            return Err(AuthError::Expired {
                exp,
                now: self.now,
                leeway: self.leeway,
            });
        }

        for claim in ["nbf", "iat"] {
            if let Some(at) = numeric_date(claims, claim)?
                && at > self.now.saturating_add(leeway)
            {
                return Err(AuthError::NotYetValid {
                    claim,
                    at,
                    now: self.now,
                });
            }
        }
        Ok(exp)
    }
}

/// Reads a NumericDate claim (RFC 7519: seconds, possibly fractional). Fractions are
/// dropped, which moves `exp` earlier and `nbf` earlier by less than a second.
fn numeric_date(claims: &Claims, name: &'static str) -> Result<Option<i64>, AuthError> {
    let invalid = || AuthError::InvalidClaim {
        claim: name.to_owned(),
        expected: "a number of seconds since the Unix epoch",
    };
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(seconds) = number.as_i64() {
                return Ok(Some(seconds));
            }
            let seconds = number.as_f64().ok_or_else(invalid)?;
            if !seconds.is_finite() || seconds.abs() > i64::MAX as f64 {
                return Err(invalid());
            }
            Ok(Some(seconds.trunc() as i64))
        }
        Some(_) => Err(invalid()),
    }
}

/// Returns true when the `aud` claim (a string or an array of strings) contains one of
/// the accepted audiences.
pub(crate) fn audience_matches(
    claims: &Claims,
    accepted: &std::collections::HashSet<String>,
) -> Result<bool, AuthError> {
    let invalid = || AuthError::InvalidClaim {
        claim: "aud".to_owned(),
        expected: "a string or an array of strings",
    };
    match claims.get("aud") {
        None | Some(Value::Null) => Err(AuthError::MissingClaim {
            claim: "aud".to_owned(),
        }),
        Some(Value::String(audience)) => Ok(accepted.contains(audience)),
        Some(Value::Array(audiences)) => {
            let mut found = false;
            for audience in audiences {
                let audience = audience.as_str().ok_or_else(invalid)?;
                found |= accepted.contains(audience);
            }
            Ok(found)
        }
        Some(_) => Err(invalid()),
    }
}

/// Shortens an attacker-chosen value to at most `max_chars` characters for an error
/// message.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    let mut shortened: String = text.chars().take(max_chars).collect();
    if shortened.len() < text.len() {
        shortened.push('…');
    }
    shortened
}

/// Verifies the signature with the chosen key and returns the verified claims. Only the
/// signature is checked here: the claims are checked by the caller with its own clock.
pub(crate) fn verify_signature(
    token: &str,
    key: &VerificationKey,
    algorithm: SigningAlgorithm,
) -> Result<Claims, AuthError> {
    let mut validation = jsonwebtoken::Validation::new(algorithm.to_jsonwebtoken());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;

    match jsonwebtoken::decode::<Claims>(token, &key.decoding_key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(error) => Err(signature_error(error.kind(), key, algorithm)),
    }
}

fn signature_error(
    kind: &jsonwebtoken::errors::ErrorKind,
    key: &VerificationKey,
    algorithm: SigningAlgorithm,
) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmKeyMismatch {
            alg: algorithm.name().to_owned(),
            key_type: key.key_type.name(),
        },
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed {
            detail: "the JWT is not valid base64url JSON",
        },
        _ => AuthError::BadSignature,
    }
}
