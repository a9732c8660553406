//! Endpoint discovery: the account read (`GET /`) lists regional endpoints that SDKs
//! then call directly, bypassing the proxy. The proxy rewrites every
//! `databaseAccountEndpoint` to its own public URL and drops the thin-client lists, whose
//! presence switches the .NET SDK to a protocol the proxy does not carry.

use serde_json::Value;
use url::Url;

const LOCATION_LISTS: [&str; 2] = ["writableLocations", "readableLocations"];
const THIN_CLIENT_LISTS: [&str; 2] = ["thinClientReadableLocations", "thinClientWritableLocations"];

/// Errors from rewriting an account response.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the account response is not valid JSON: {0}")]
    InvalidJson(serde_json::Error),
    #[error("the account response is not a JSON object")]
    NotAnObject,
    #[error("the account response field {0} is not a list of locations")]
    InvalidLocations(&'static str),
}

/// Rewrites an account response body so that every endpoint is `public_url`.
pub fn rewrite_account(body: &[u8], public_url: &Url) -> Result<Vec<u8>, AccountError> {
    let mut account: Value = serde_json::from_slice(body).map_err(AccountError::InvalidJson)?;
    let object = account.as_object_mut().ok_or(AccountError::NotAnObject)?;

    for list in THIN_CLIENT_LISTS {
        object.remove(list);
    }
    for list in LOCATION_LISTS {
        let Some(locations) = object.get_mut(list) else {
            continue;
        };
        let locations = locations
            .as_array_mut()
            .ok_or(AccountError::InvalidLocations(list))?;
        for location in locations {
            let location = location
                .as_object_mut()
                .ok_or(AccountError::InvalidLocations(list))?;
            location.insert(
                "databaseAccountEndpoint".to_owned(),
                Value::String(public_url.to_string()),
            );
        }
    }
    serde_json::to_vec(&account).map_err(AccountError::InvalidJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public_url() -> Url {
        Url::parse("https://127.0.0.2:8443/").unwrap()
    }

    #[test]
    fn rewrites_every_location_and_drops_thin_client_lists() {
        let body = serde_json::json!({
            "id": "account",
            "writableLocations": [
                {"name": "West US", "databaseAccountEndpoint": "https://account-westus.documents.azure.com:443/"}
            ],
            "readableLocations": [
                {"name": "West US", "databaseAccountEndpoint": "https://account-westus.documents.azure.com:443/"},
                {"name": "East US", "databaseAccountEndpoint": "https://account-eastus.documents.azure.com:443/"}
            ],
            "thinClientReadableLocations": [{"name": "West US", "databaseAccountEndpoint": "https://x:10250/"}],
            "thinClientWritableLocations": [],
            "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"}
        });
        let rewritten = rewrite_account(body.to_string().as_bytes(), &public_url()).unwrap();
        let account: Value = serde_json::from_slice(&rewritten).unwrap();

        for list in LOCATION_LISTS {
            for location in account[list].as_array().unwrap() {
                assert_eq!(
                    location["databaseAccountEndpoint"],
                    "https://127.0.0.2:8443/"
                );
            }
        }
        assert_eq!(account["readableLocations"][1]["name"], "East US");
        assert!(account.get("thinClientReadableLocations").is_none());
        assert!(account.get("thinClientWritableLocations").is_none());
        assert_eq!(
            account["userConsistencyPolicy"]["defaultConsistencyLevel"],
            "Session"
        );
    }

    #[test]
    fn rejects_invalid_account_bodies() {
        assert!(matches!(
            rewrite_account(b"{not json", &public_url()),
            Err(AccountError::InvalidJson(_))
        ));
        assert!(matches!(
            rewrite_account(b"[]", &public_url()),
            Err(AccountError::NotAnObject)
        ));
        assert!(matches!(
            rewrite_account(br#"{"readableLocations": "x"}"#, &public_url()),
            Err(AccountError::InvalidLocations("readableLocations"))
        ));
    }
}
