//! The subject stamp on upstream requests: a keyed hash of the caller's subject appended
//! to `User-Agent`, so that the account's own diagnostic logs (which see only the
//! proxy's identity) can be joined to the proxy's audit records without naming the
//! caller to anyone who lacks the key.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::{HeaderValue, USER_AGENT};
use sha2::Sha256;

/// Hex digits of the HMAC kept in the stamp: 64 bits, enough to tell callers apart in
/// logs while keeping `User-Agent` short.
const STAMP_HEX_DIGITS: usize = 16;

/// The HMAC-SHA256 key and the stamping rule.
#[derive(Clone)]
pub struct SubjectStamp {
    key: Vec<u8>,
}

/// The key is a secret, so it is never printed.
impl fmt::Debug for SubjectStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectStamp").finish_non_exhaustive()
    }
}

impl SubjectStamp {
    /// Uses `key` as the HMAC key. Rejects an empty key.
    pub fn new(key: &[u8]) -> Result<SubjectStamp, String> {
        if key.is_empty() {
            return Err("the HMAC key is empty".to_owned());
        }
        Ok(SubjectStamp { key: key.to_vec() })
    }

    /// Reads the key from a file; surrounding whitespace (a trailing newline) is not
    /// part of the key.
    pub fn from_file(path: &Path) -> Result<SubjectStamp, String> {
        let bytes = std::fs::read(path).map_err(|error| {
            format!("cannot read the HMAC key file {}: {error}", path.display())
        })?;
        SubjectStamp::new(bytes.trim_ascii())
            .map_err(|error| format!("{}: {error}", path.display()))
    }

    /// Returns the first 16 hex digits of HMAC-SHA256(key, subject).
    pub fn digest(&self, subject: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC-SHA256 accepts keys of any length")
        };
        mac.update(subject.as_bytes());
        let hash = mac.finalize().into_bytes();
        let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
        hex[..STAMP_HEX_DIGITS].to_owned()
    }

    /// Appends ` cosmoguard-subject/<digest>` to `User-Agent` (or sets it when absent)
    /// and returns the digest.
    pub fn apply(&self, headers: &mut HeaderMap, subject: &str) -> String {
        let digest = self.digest(subject);
        let stamp = format!("cosmoguard-subject/{digest}");
        let value = match headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
        {
            Some(existing) if !existing.trim().is_empty() => {
                format!("{} {stamp}", existing.trim_end())
            }
            _ => stamp,
        };
        // The digest is hex and the existing value was valid visible ASCII.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(USER_AGENT, value);
        }
        digest
    }
}
