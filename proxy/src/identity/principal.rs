//! The mapping of verified claims into the policy's [`Principal`].

use cosmoguard_policy::Principal;
use serde_json::Value;

use super::config::ClaimMapping;
use super::error::AuthError;
use super::token::{Claims, string_claim};

/// Builds the principal from verified claims. The subject claim is required; every other
/// field is empty when its claims are absent. All claims are kept in `claims`.
pub(crate) fn map_principal(
    claims: Claims,
    mapping: &ClaimMapping,
) -> Result<Principal, AuthError> {
    let issuer = string_claim(&claims, "iss")?.to_owned();
    let subject = string_claim(&claims, &mapping.subject)?.to_owned();
    if subject.is_empty() {
        return Err(AuthError::InvalidClaim {
            claim: mapping.subject.clone(),
            expected: "a non-empty string",
        });
    }

    Ok(Principal {
        issuer,
        subject,
        display_name: first_string(&claims, &mapping.display_name),
        groups: string_list(&claims, &mapping.groups)?,
        roles: string_list(&claims, &mapping.roles)?,
        scopes: scopes(&claims, &mapping.scopes)?,
        app_id: first_string(&claims, &mapping.app_id),
        claims,
    })
}

/// Returns the value of the first listed claim that is a string.
fn first_string(claims: &Claims, names: &[String]) -> Option<String> {
    names
        .iter()
        .find_map(|name| claims.get(name).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Reads an array of strings, or one string as a one-element list.
// NOTE: Entra ID replaces `groups` with `_claim_names` when a user is in too many groups
// (the "overage" case); such users get no groups here.
fn string_list(claims: &Claims, name: &str) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(value)) => Ok(vec![value.clone()]),
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(AuthError::InvalidClaim {
                        claim: name.to_owned(),
                        expected: "an array of strings",
                    })
            })
            .collect(),
        Some(_) => Err(AuthError::InvalidClaim {
            claim: name.to_owned(),
            expected: "an array of strings",
        }),
    }
}

/// Reads the first present scope claim: a space-separated string (`scp`, RFC 8693 `scope`)
/// or an array of strings.
fn scopes(claims: &Claims, names: &[String]) -> Result<Vec<String>, AuthError> {
    let Some((name, value)) = names
        .iter()
        .find_map(|name| claims.get(name).map(|value| (name, value)))
    else {
        return Ok(Vec::new());
    };
    match value {
        Value::String(text) => Ok(text.split_whitespace().map(str::to_owned).collect()),
        _ => string_list(claims, name),
    }
}
