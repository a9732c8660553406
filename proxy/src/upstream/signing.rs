//! Master-key signatures: the `Authorization` value the service expects from a holder of
//! the account key.
//!
//! The signature is an HMAC-SHA256, keyed with the base64-decoded account key, over
//! `lower(verb) \n lower(resource type) \n resource link \n lower(x-ms-date) \n \n`. The
//! resource link keeps its case, and the whole header value is percent-encoded.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::Sha256;

/// An account key, decoded once and kept as an HMAC state with the key already absorbed,
/// which each signature clones. `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Errors from decoding an account key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the account key is empty")]
    Empty,
    #[error(
        "the account key is not valid base64 ({0}); copy the primary or secondary key as the portal shows it"
    )]
    NotBase64(base64::DecodeError),
}

impl MasterKey {
    /// Decodes a base64 account key. Surrounding white space (a trailing newline in a
    /// key file) is ignored.
    pub fn from_base64(key: &str) -> Result<MasterKey, KeyError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        let decoded = STANDARD.decode(key).map_err(KeyError::NotBase64)?;
        // HMAC-SHA256 accepts keys of any length, so this cannot fail.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&decoded)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Ok(MasterKey { keyed })
    }

    /// Returns the base64 signature for one request.
    pub fn signature(
        &self,
        verb: &str,
        resource_type: &str,
        resource_link: &str,
        date: &str,
    ) -> String {
        let mut encoded = [0; SIGNATURE_BASE64_BYTES];
        self.encoded_signature(verb, resource_type, resource_link, date, &mut encoded)
            .to_owned()
    }

    /// Returns the percent-encoded `Authorization` header value for one request.
    pub fn authorization(
        &self,
        verb: &str,
        resource_type: &str,
        resource_link: &str,
        date: &str,
    ) -> String {
        let mut encoded = [0; SIGNATURE_BASE64_BYTES];
        let signature =
            self.encoded_signature(verb, resource_type, resource_link, date, &mut encoded);
        let mut value = String::with_capacity(AUTHORIZATION_CAPACITY);
        push_encoded(&mut value, "type=master&ver=1.0&sig=");
        push_encoded(&mut value, signature);
        value
    }

    /// Writes the base64 signature into `encoded` and returns it. The payload goes into
    /// the HMAC piece by piece, so signing an ASCII payload allocates nothing.
    fn encoded_signature<'a>(
        &self,
        verb: &str,
        resource_type: &str,
        resource_link: &str,
        date: &str,
        encoded: &'a mut [u8; SIGNATURE_BASE64_BYTES],
    ) -> &'a str {
        let mut mac = self.keyed.clone();
        update_lowercase(&mut mac, verb);
        mac.update(b"\n");
        update_lowercase(&mut mac, resource_type);
        mac.update(b"\n");
        mac.update(resource_link.as_bytes());
        mac.update(b"\n");
        update_lowercase(&mut mac, date);
        mac.update(b"\n\n");
        let length = STANDARD
            .encode_slice(mac.finalize().into_bytes(), encoded)
            .unwrap_or_else(|_| unreachable!("a SHA-256 digest is 44 base64 characters"));
        std::str::from_utf8(&encoded[..length]).unwrap_or_else(|_| unreachable!("base64 is ASCII"))
    }
}

/// The length of a SHA-256 digest in padded base64.
const SIGNATURE_BASE64_BYTES: usize = 44;

/// Room for the percent-encoded header value: the prefix, and the signature with its
/// `+`, `/` and `=` escaped.
const AUTHORIZATION_CAPACITY: usize = 96;

/// Adds `text` lowercased to the HMAC. The inputs are ASCII (verbs, resource types,
/// RFC 1123 dates), and any other text is lowercased by Unicode rules.
fn update_lowercase(mac: &mut Hmac<Sha256>, text: &str) {
    if !text.is_ascii() {
        mac.update(text.to_lowercase().as_bytes());
        return;
    }
    let mut buffer = [0; 32];
    for chunk in text.as_bytes().chunks(buffer.len()) {
        let lowered = &mut buffer[..chunk.len()];
        lowered.copy_from_slice(chunk);
        lowered.make_ascii_lowercase();
        mac.update(lowered);
    }
}

/// Percent-encodes everything except unreserved characters, with lowercase hex digits as
/// the service's own examples use.
pub(crate) fn encode_component(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len() * 3 / 2);
    push_encoded(&mut encoded, value);
    encoded
}

fn push_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Formats a time as the RFC 1123 date the `x-ms-date` header carries.
pub fn format_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Returns the `x-ms-date` value for now. The text changes once a second, so each thread
/// formats it once a second and shares it with the requests of that second, as hyper does
/// for the `Date` header.
pub fn current_date() -> HeaderValue {
    thread_local! {
        static CURRENT: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    CURRENT.with_borrow_mut(|current| match current {
        Some((formatted, value)) if *formatted == second => value.clone(),
        _ => {
            let value = HeaderValue::from_str(&format_date(now))
                .unwrap_or_else(|_| unreachable!("RFC 1123 dates are visible ASCII"));
            *current = Some((second, value.clone()));
            value
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Microsoft's REST reference publishes this key, request and signature.
    const DOCS_KEY: &str =
        "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==";

    #[test]
    fn matches_published_rest_vector() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        let date = "Thu, 27 Apr 2017 00:51:12 GMT";
        assert_eq!(
            key.signature("GET", "dbs", "dbs/ToDoList", date),
            "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c="
        );
        assert_eq!(
            key.authorization("GET", "dbs", "dbs/ToDoList", date),
            "type%3dmaster%26ver%3d1.0%26sig%3dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2bc%2bc%3d"
        );
    }

    #[test]
    fn matches_second_public_vector() {
        let key = MasterKey::from_base64(
            "8F8xXXOptJxkblM1DBXW7a6NMI5oE8NnwPGYBmwxLCKfejOK7B7yhcCHMGvN3PBrlMLIOeol1Hv9RCdzAZR5sg==",
        )
        .unwrap();
        let signature = key.signature(
            "GET",
            "dbs",
            "dbs/MyDatabase/colls/MyCollection",
            "Mon, 01 Jan 1900 01:00:00 GMT",
        );
        assert_eq!(signature, "Qkz/r+1N2+PEnNijxGbGB/ADvLsLBQmZ7uBBMuIwf4I=");
    }

    #[test]
    fn link_case_is_kept_and_verb_case_ignored() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        let date = "Thu, 27 Apr 2017 00:51:12 GMT";
        assert_eq!(
            key.signature("get", "DBS", "dbs/ToDoList", date),
            key.signature("GET", "dbs", "dbs/ToDoList", date)
        );
        assert_ne!(
            key.signature("GET", "dbs", "dbs/todolist", date),
            key.signature("GET", "dbs", "dbs/ToDoList", date)
        );
    }

    #[test]
    fn rejects_keys_that_are_not_base64() {
        assert!(matches!(
            MasterKey::from_base64("  \n"),
            Err(KeyError::Empty)
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(KeyError::NotBase64(_))
        ));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = MasterKey::from_base64(DOCS_KEY).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    fn dates_are_rfc_1123() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_493_254_272);
        assert_eq!(format_date(time), "Thu, 27 Apr 2017 00:51:12 GMT");
    }
}
