//! Creates and upserts: the new resource's id is in the body, not the path, and a policy
//! scoped to that resource (`/dbs/shop`, items whose id starts with the caller's
//! subject) must see it.

use cosmoguard_policy::{OperationKind, ResourceType};
use serde::Deserialize;

use super::{Classified, ClassifyError};

/// The largest create or upsert body read to find its id. The service limits an item to
/// 2 MB, and database, container and script definitions are far smaller.
pub const MAX_CREATE_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct CreatedResource {
    id: Option<serde_json::Value>,
}

/// Returns whether the request creates or upserts a resource whose id is only in its body.
pub(super) fn names_resource_in_body(classified: &Classified) -> bool {
    matches!(
        classified.request.operation.kind,
        OperationKind::Create | OperationKind::Upsert
    ) && classified.rid.is_none()
}

/// Returns whether the request replaces a resource, whose body carries the id it writes.
pub(super) fn replaces_resource(classified: &Classified) -> bool {
    classified.request.operation.kind == OperationKind::Replace && classified.rid.is_none()
}

/// Checks that a replace body names the resource its path addresses, so the policy
/// decides on the resource the account writes. A body without an id is left to the
/// service, which rejects it.
pub fn check_replaced_id(classified: &Classified, body: &[u8]) -> Result<(), ClassifyError> {
    let created: CreatedResource = serde_json::from_slice(body)
        .map_err(|error| ClassifyError::InvalidBody(format!("expected a JSON object: {error}")))?;
    let body_id = match created.id {
        Some(serde_json::Value::String(id)) => id,
        Some(_) => {
            return Err(ClassifyError::InvalidBody(
                "the id is not a string".to_owned(),
            ));
        }
        None => return Ok(()),
    };
    let request = &classified.request;
    let path_id = match request.operation.resource_type {
        ResourceType::Database => request.database.as_deref(),
        ResourceType::Container => request.container.as_deref(),
        _ => request.resource_id.as_deref(),
    };
    if path_id != Some(body_id.as_str()) {
        return Err(ClassifyError::InvalidBody(format!(
            "the body names {body_id:?} but the path addresses {:?}; a replace must name the resource it replaces",
            path_id.unwrap_or("")
        )));
    }
    Ok(())
}

/// Reads the `id` of a create or upsert body into the request, so the policy decides on
/// the resource being made. The signing link stays the feed's, as the service expects.
pub fn apply_created_id(classified: &mut Classified, body: &[u8]) -> Result<(), ClassifyError> {
    let created: CreatedResource = serde_json::from_slice(body)
        .map_err(|error| ClassifyError::InvalidBody(format!("expected a JSON object: {error}")))?;
    let id = match created.id {
        Some(serde_json::Value::String(id)) => id,
        Some(_) => {
            return Err(ClassifyError::InvalidBody(
                "the id is not a string".to_owned(),
            ));
        }
        // The service rejects a create without an id, so the policy decides on the feed.
        None => return Ok(()),
    };
    check_id(&id)?;

    let request = &mut classified.request;
    let keyword = request.operation.resource_type.keyword();
    request.resource_link = if request.resource_link.is_empty() {
        format!("{keyword}/{id}")
    } else {
        format!("{}/{keyword}/{id}", request.resource_link)
    };
    match request.operation.resource_type {
        ResourceType::Database => request.database = Some(id),
        ResourceType::Container => request.container = Some(id),
        _ => request.resource_id = Some(id),
    }
    Ok(())
}

/// Rejects ids the service forbids, which would otherwise make the policy see a path
/// other than the one the service creates.
fn check_id(id: &str) -> Result<(), ClassifyError> {
    if id.is_empty() {
        return Err(ClassifyError::InvalidBody("the id is empty".to_owned()));
    }
    for character in id.chars() {
        if character.is_control() || matches!(character, '/' | '\\' | '?' | '#') {
            return Err(ClassifyError::InvalidBody(format!(
                "the id contains {character:?}, which no resource id may contain"
            )));
        }
    }
    Ok(())
}
