//! Offer scope: the database or container an offer (throughput) belongs to, so rules
//! scoped to `/dbs/shop` or `/dbs/shop/colls/orders` can allow or deny throughput actions.
//!
//! Offers are addressed by resource id (`/offers/{rid}`), and nothing in the request names
//! what they belong to. Before the decision on an offer read or replace, the proxy reads
//! the offer with its own credential and takes its `offerResourceId` and `resource` (the
//! self link `dbs/{db rid}/colls/{container rid}/`, or `dbs/{db rid}/` for throughput
//! shared by a database). It maps those RIDs to names through the [`RidMap`], reading the
//! database and container by RID when the map does not know them. Nothing the caller sent
//! is used. An offer that cannot be resolved leaves the request without a database or
//! container, so only rules scoped to `/` match it.

use std::sync::Arc;

use cosmoguard_policy::{OperationKind, ResourceType};
use http::{HeaderMap, Method, request};
use serde::Deserialize;
use serde_json::Value;

use crate::classify::{self, Classified, ClassifyError, path::is_rid};
use crate::rid::RidMap;
use crate::upstream::Upstream;

use super::diff;

/// An offer read before the decision, and what it belongs to.
#[derive(Debug)]
pub(super) struct ResolvedOffer {
    /// The offer as the account returned it, or why it could not be read. The diff of a
    /// replace reuses it.
    pub(super) current: Result<Value, String>,
    /// The offer's owner, when the account's offer names a valid one.
    pub(super) owner: Option<OfferOwner>,
    /// The reason the request has no database or container, when the offer was not
    /// resolved.
    pub(super) unresolved: Option<String>,
}

/// The resource whose throughput an offer sets, as the account reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct OfferOwner {
    /// `offerResourceId`: the container's RID, or the database's for shared throughput.
    pub(super) resource_rid: String,
    /// `resource`, the owner's self link, without leading and trailing `/`.
    pub(super) resource_link: String,
    pub(super) database_rid: String,
    pub(super) container_rid: Option<String>,
}

/// The owner fields of an offer body.
#[derive(Deserialize)]
struct OfferFields {
    #[serde(rename = "offerResourceId")]
    resource_rid: Option<Value>,
    resource: Option<Value>,
}

/// Returns whether the request reads or replaces one offer by id: the operations whose
/// throughput rules may be scoped to a database or container.
pub(super) fn addresses_offer(classified: &Classified) -> bool {
    let operation = classified.request.operation;
    operation.resource_type == ResourceType::Offer
        && matches!(operation.kind, OperationKind::Read | OperationKind::Replace)
        && classified.request.resource_id.is_some()
}

/// Reads the offer the request addresses and sets the request's database and container
/// to the names of its owner. On any failure the request keeps no database or container,
/// and the result contains the reason.
pub(super) async fn resolve(
    upstream: &Upstream,
    rids: &RidMap,
    parts: &request::Parts,
    classified: &mut Classified,
) -> ResolvedOffer {
    let current = read_offer(upstream, parts, classified).await;
    let owner = current.as_ref().map_err(Clone::clone).and_then(parse_owner);
    let resolver = Resolver {
        upstream,
        rids,
        headers: &parts.headers,
    };
    let names = match &owner {
        Ok(owner) => resolver.names(owner).await,
        Err(error) => Err(error.clone()),
    };

    let unresolved = match names {
        Ok((database, container)) => {
            classified.request.database = Some(database.to_string());
            classified.request.container = container.map(|name| name.to_string());
            None
        }
        Err(error) => {
            tracing::warn!(
                error = %error,
                db.operation.name = %classified.request.operation.name(),
                "Failed to resolve the offer's database and container, so only account-scoped rules apply"
            );
            Some(error)
        }
    };
    ResolvedOffer {
        current,
        owner: owner.ok(),
        unresolved,
    }
}

async fn read_offer(
    upstream: &Upstream,
    parts: &request::Parts,
    classified: &Classified,
) -> Result<Value, String> {
    let bytes =
        diff::read_with_own_credential(upstream, parts.uri.path(), &parts.headers, classified)
            .await
            .map_err(|error| format!("the offer read {error}"))?;
    serde_json::from_slice(&bytes).map_err(|error| format!("the offer is not JSON: {error}"))
}

/// Parses the owner of an offer from the account's JSON. `resource` must be a database
/// or container self link by RID whose last RID is `offerResourceId`.
pub(super) fn parse_owner(offer: &Value) -> Result<OfferOwner, String> {
    let resource_rid = offer_text(offer, "offerResourceId")?;
    let resource = offer_text(offer, "resource")?;
    let segments: Vec<&str> = resource.split('/').filter(|s| !s.is_empty()).collect();
    let (database_rid, container_rid) = match segments.as_slice() {
        ["dbs", database] if is_rid(database, 4) => (*database, None),
        ["dbs", database, "colls", container] if is_rid(database, 4) && is_rid(container, 8) => {
            (*database, Some(*container))
        }
        _ => {
            return Err(format!(
                "the offer's resource {resource:?} is not a database or container link by resource id"
            ));
        }
    };
    if container_rid.unwrap_or(database_rid) != resource_rid {
        return Err(format!(
            "the offer's offerResourceId {resource_rid:?} is not the resource {resource:?}"
        ));
    }
    Ok(OfferOwner {
        resource_rid: resource_rid.to_owned(),
        resource_link: segments.join("/"),
        database_rid: database_rid.to_owned(),
        container_rid: container_rid.map(str::to_owned),
    })
}

fn offer_text<'a>(offer: &'a Value, name: &str) -> Result<&'a str, String> {
    offer
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the offer has no string field {name}"))
}

/// Rejects an offer replace whose body moves the offer to another resource: an
/// `offerResourceId` or `resource` other than the account's. The policy decided on the
/// owner the account reported, so the body must not name another. A body without those
/// fields is left to the service.
pub(super) fn check_replaced_owner(owner: &OfferOwner, body: &[u8]) -> Result<(), ClassifyError> {
    let fields: OfferFields = serde_json::from_slice(body).map_err(|error| {
        ClassifyError::InvalidBody(format!("the offer body is not a JSON object: {error}"))
    })?;
    if let Some(value) = fields.resource_rid {
        let rid = body_text(value, "offerResourceId")?;
        if rid != owner.resource_rid {
            return Err(ClassifyError::InvalidBody(format!(
                "the body names offerResourceId {rid:?} but the offer belongs to {:?}, and an offer replace cannot move the offer",
                owner.resource_rid
            )));
        }
    }
    if let Some(value) = fields.resource {
        let resource = body_text(value, "resource")?;
        if resource.trim_matches('/') != owner.resource_link {
            return Err(ClassifyError::InvalidBody(format!(
                "the body names resource {resource:?} but the offer belongs to {:?}, and an offer replace cannot move the offer",
                owner.resource_link
            )));
        }
    }
    Ok(())
}

fn body_text(value: Value, name: &str) -> Result<String, ClassifyError> {
    match value {
        Value::String(text) => Ok(text),
        _ => Err(ClassifyError::InvalidBody(format!(
            "the body's {name} is not a string"
        ))),
    }
}

/// Maps an offer owner's RIDs to names, reading what the [`RidMap`] does not know.
struct Resolver<'a> {
    upstream: &'a Upstream,
    rids: &'a RidMap,
    /// The caller's request headers; only the version and consistency headers are copied.
    headers: &'a HeaderMap,
}

impl Resolver<'_> {
    async fn names(&self, owner: &OfferOwner) -> Result<(Arc<str>, Option<Arc<str>>), String> {
        match &owner.container_rid {
            Some(container_rid) => {
                let (database, container) =
                    self.container(&owner.database_rid, container_rid).await?;
                Ok((database, Some(container)))
            }
            None => Ok((self.database(&owner.database_rid).await?, None)),
        }
    }

    async fn database(&self, database_rid: &str) -> Result<Arc<str>, String> {
        if let Some(name) = self.rids.database_name(database_rid) {
            return Ok(name);
        }
        let path = format!("/dbs/{database_rid}");
        let bytes = self
            .read(&path)
            .await
            .map_err(|error| format!("the read of database {database_rid} {error}"))?;
        self.rids
            .learn_database_read(database_rid, &bytes)
            .ok_or_else(|| format!("the read of database {database_rid} returned another resource"))
    }

    async fn container(
        &self,
        database_rid: &str,
        container_rid: &str,
    ) -> Result<(Arc<str>, Arc<str>), String> {
        if let Some(names) = self.rids.container_names(database_rid, container_rid) {
            return Ok(names);
        }
        let database = self.database(database_rid).await?;
        let path = format!("/dbs/{database_rid}/colls/{container_rid}");
        let bytes = self
            .read(&path)
            .await
            .map_err(|error| format!("the read of container {container_rid} {error}"))?;
        let container = self
            .rids
            .learn_container_read(database_rid, &database, container_rid, &bytes)
            .ok_or_else(|| {
                format!("the read of container {container_rid} returned another resource")
            })?;
        Ok((database, container))
    }

    /// GETs a database or container path by RID, signed as the classifier signs it.
    async fn read(&self, path: &str) -> Result<bytes::Bytes, String> {
        let classified = classify::classify(&Method::GET, path, &HeaderMap::new())
            .map_err(|error| format!("failed: {error}"))?;
        diff::read_with_own_credential(self.upstream, path, self.headers, &classified).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn container_owner() -> OfferOwner {
        OfferOwner {
            resource_rid: "rnYYAMU-+yE=".to_owned(),
            resource_link: "dbs/rnYYAA==/colls/rnYYAMU-+yE=".to_owned(),
            database_rid: "rnYYAA==".to_owned(),
            container_rid: Some("rnYYAMU-+yE=".to_owned()),
        }
    }

    #[test]
    fn parses_container_offer() {
        let offer = json!({
            "id": "XYZ1",
            "_rid": "XYZ1",
            "resource": "dbs/rnYYAA==/colls/rnYYAMU-+yE=/",
            "offerResourceId": "rnYYAMU-+yE=",
            "content": {"offerThroughput": 400},
        });
        assert_eq!(parse_owner(&offer), Ok(container_owner()));
    }

    #[test]
    fn parses_database_offer() {
        let offer = json!({"resource": "dbs/rnYYAA==/", "offerResourceId": "rnYYAA=="});
        let owner = parse_owner(&offer).unwrap();
        assert_eq!(owner.database_rid, "rnYYAA==");
        assert_eq!(owner.container_rid, None);
        assert_eq!(owner.resource_link, "dbs/rnYYAA==");
    }

    #[test]
    fn rejects_offer_of_unknown_shape() {
        let cases = [
            json!({"resource": "dbs/rnYYAA==/colls/rnYYAMU-+yE=/"}),
            json!({"offerResourceId": "rnYYAA=="}),
            json!({"resource": 5, "offerResourceId": "rnYYAA=="}),
            json!({"resource": "dbs/shop/colls/orders/", "offerResourceId": "rnYYAMU-+yE="}),
            json!({"resource": "dbs/rnYYAA==/users/rnYYAMU-+yE=/", "offerResourceId": "rnYYAMU-+yE="}),
            json!({"resource": "dbs/rnYYAA==/colls/rnYYAMU-+yE=/docs/x", "offerResourceId": "x"}),
            json!([1, 2]),
        ];
        for offer in cases {
            assert!(parse_owner(&offer).is_err(), "{offer}");
        }
    }

    #[test]
    fn rejects_mismatched_offer_resource_id() {
        let offer = json!({"resource": "dbs/rnYYAA==/colls/rnYYAMU-+yE=/", "offerResourceId": "rnYYAMU-+yF="});
        let error = parse_owner(&offer).unwrap_err();
        assert!(error.contains("is not the resource"), "{error}");
    }

    #[test]
    fn replace_keeping_the_owner_passes() {
        let owner = container_owner();
        let body = br#"{"id":"XYZ1","offerResourceId":"rnYYAMU-+yE=","resource":"dbs/rnYYAA==/colls/rnYYAMU-+yE=/","content":{"offerThroughput":1000}}"#;
        assert_eq!(check_replaced_owner(&owner, body), Ok(()));
        let without_owner = br#"{"id":"XYZ1","content":{"offerThroughput":1000}}"#;
        assert_eq!(check_replaced_owner(&owner, without_owner), Ok(()));
    }

    #[test]
    fn replace_naming_another_resource_id_is_invalid() {
        let owner = container_owner();
        let body = br#"{"id":"XYZ1","offerResourceId":"rnYYAJQ2kwA=","content":{}}"#;
        let error = check_replaced_owner(&owner, body).unwrap_err();
        assert!(
            matches!(&error, ClassifyError::InvalidBody(message) if message.contains("rnYYAJQ2kwA=")),
            "{error:?}"
        );
    }

    #[test]
    fn replace_naming_another_resource_is_invalid() {
        let owner = container_owner();
        let body = br#"{"resource":"dbs/rnYYAA==/colls/rnYYAJQ2kwA=/"}"#;
        assert!(check_replaced_owner(&owner, body).is_err());
        let not_text = br#"{"offerResourceId":7}"#;
        assert!(check_replaced_owner(&owner, not_text).is_err());
        assert!(check_replaced_owner(&owner, b"not json").is_err());
    }

    #[test]
    fn offer_reads_and_replaces_by_id_are_resolved() {
        let headers = HeaderMap::new();
        let read = classify::classify(&Method::GET, "/offers/XYZ1", &headers).unwrap();
        let replace = classify::classify(&Method::PUT, "/offers/XYZ1", &headers).unwrap();
        let list = classify::classify(&Method::GET, "/offers", &headers).unwrap();
        let container = classify::classify(&Method::GET, "/dbs/d/colls/c", &headers).unwrap();
        assert!(addresses_offer(&read));
        assert!(addresses_offer(&replace));
        assert!(!addresses_offer(&list));
        assert!(!addresses_offer(&container));
    }
}
