//! Extraction of the caller's token from the `Authorization` header.
//!
//! Two forms are accepted: `Bearer <jwt>` and the Cosmos DB Entra ID form
//! `type=aad&ver=1.0&sig=<jwt>`, which the Python SDK sends as is and the .NET SDK
//! percent-encodes as a whole (`type%3Daad%26ver%3D1.0%26sig%3D...`). Master-key and
//! resource-token credentials are rejected: callers of the proxy must not hold account keys.

use std::borrow::Cow;
use std::ops::Range;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use percent_encoding::percent_decode_str;

use super::error::AuthError;

/// Room for the scheme or the `type=aad&ver=1.0&sig=` prefix, percent-encoded, on top of
/// the token size limit, so the raw header can be rejected before it is parsed.
const PREFIX_ALLOWANCE: usize = 64;

/// Returns the token carried by the request's single `Authorization` header.
pub(crate) fn extract_token(
    headers: &HeaderMap,
    max_token_size: usize,
) -> Result<Cow<'_, str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateHeader);
    }

    let raw_limit = max_token_size.saturating_add(PREFIX_ALLOWANCE);
    if value.len() > raw_limit {
        return Err(AuthError::TokenTooLarge {
            size: value.len(),
            limit: max_token_size,
        });
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed {
        detail: "the header contains bytes other than visible ASCII",
    })?;

    let token = parse_credential(value.trim())?;
    if token.len() > max_token_size {
        return Err(AuthError::TokenTooLarge {
            size: token.len(),
            limit: max_token_size,
        });
    }
    if token.is_empty() {
        return Err(AuthError::Malformed {
            detail: "the token is empty",
        });
    }
    Ok(token)
}

fn parse_credential(value: &str) -> Result<Cow<'_, str>, AuthError> {
    if let Some(token) = strip_bearer(value) {
        return Ok(Cow::Borrowed(token.trim_start_matches(' ')));
    }
    if value.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed {
            detail: "the Bearer scheme has no token",
        });
    }
    if starts_with_ignore_case(value, "type") {
        return parse_cosmos_credential(value);
    }
    if !value.contains(' ') && value.matches('.').count() == 2 {
        return Err(AuthError::Malformed {
            detail: "the header contains a bare token: prefix it with `Bearer `",
        });
    }
    let scheme = value.split(' ').next().unwrap_or_default();
    Err(AuthError::UnsupportedScheme {
        scheme: printable_prefix(scheme),
    })
}

/// Strips the `Bearer ` scheme, which RFC 9110 makes case-insensitive.
fn strip_bearer(value: &str) -> Option<&str> {
    const SCHEME: &str = "bearer ";
    if starts_with_ignore_case(value, SCHEME) {
        Some(&value[SCHEME.len()..])
    } else {
        None
    }
}

/// Parses `type=aad&ver=1.0&sig=<jwt>`, percent-encoded or not. The value is decoded once:
/// a JWT contains only base64url characters and dots, which need no encoding, so a second
/// decode could only change a crafted value.
fn parse_cosmos_credential(value: &str) -> Result<Cow<'_, str>, AuthError> {
    let decoded = percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| AuthError::Malformed {
            detail: "the percent-decoded credential is not UTF-8",
        })?;

    let fields = CosmosFields::parse(&decoded)?;
    let credential_type = fields.credential_type.ok_or(AuthError::Malformed {
        detail: "the credential has no `type` field",
    })?;
    let credential_type = &decoded[credential_type];
    if !credential_type.eq_ignore_ascii_case("aad") {
        return Err(AuthError::UnsupportedScheme {
            scheme: format!("type={}", printable_prefix(credential_type)),
        });
    }
    let signature = fields.signature.ok_or(AuthError::Malformed {
        detail: "the credential has no `sig` field",
    })?;

    Ok(match decoded {
        Cow::Borrowed(text) => Cow::Borrowed(&text[signature]),
        Cow::Owned(mut text) => {
            text.truncate(signature.end);
            text.replace_range(..signature.start, "");
            Cow::Owned(text)
        }
    })
}

/// Byte ranges of the `type` and `sig` values in a decoded Cosmos DB credential.
#[derive(Default)]
struct CosmosFields {
    credential_type: Option<Range<usize>>,
    signature: Option<Range<usize>>,
}

impl CosmosFields {
    fn parse(decoded: &str) -> Result<CosmosFields, AuthError> {
        let mut fields = CosmosFields::default();
        let mut pair_start = 0;
        for pair in decoded.split('&') {
            let (key, field_value) = pair.split_once('=').ok_or(AuthError::Malformed {
                detail: "a credential field has no `=`",
            })?;
            let value_start = pair_start + key.len() + 1;
            let range = value_start..value_start + field_value.len();
            pair_start += pair.len() + 1;

            let slot = if key.eq_ignore_ascii_case("type") {
                &mut fields.credential_type
            } else if key.eq_ignore_ascii_case("sig") {
                &mut fields.signature
            } else {
                // `ver` and any future field carry nothing the proxy needs.
                continue;
            };
            if slot.replace(range).is_some() {
                return Err(AuthError::Malformed {
                    detail: "a credential field appears twice",
                });
            }
        }
        Ok(fields)
    }
}

fn starts_with_ignore_case(value: &str, prefix: &str) -> bool {
    value
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Keeps at most 32 alphanumeric characters of an attacker-chosen scheme name, so the
/// error text stays short and safe to log.
fn printable_prefix(text: &str) -> String {
    text.chars()
        .filter(|character| character.is_ascii_alphanumeric())
        .take(32)
        .collect()
}
