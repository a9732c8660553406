//! Transactional batch and bulk bodies: the operations a policy authorizes one by one.

use cosmoguard_policy::{BatchOperation, OperationKind, PartitionKey};
use serde::Deserialize;

use super::ClassifyError;

/// The largest batch body read for authorization. The service limits a batch to 2 MB of
/// payload, so a larger body cannot be a valid batch.
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The service's limit on operations per batch request.
pub const MAX_BATCH_OPERATIONS: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOperation {
    operation_type: String,
    id: Option<String>,
    partition_key: Option<String>,
    resource_body: Option<serde_json::Value>,
}

/// Parses a batch body (a JSON array of operations) into the operations to authorize.
pub fn parse_batch(body: &[u8]) -> Result<Vec<BatchOperation>, ClassifyError> {
    let raw: Vec<RawOperation> = serde_json::from_slice(body).map_err(|error| {
        ClassifyError::InvalidBatch(format!("expected a JSON array of operations: {error}"))
    })?;
    if raw.is_empty() {
        return Err(ClassifyError::InvalidBatch(
            "the batch has no operations".to_owned(),
        ));
    }
    if raw.len() > MAX_BATCH_OPERATIONS {
        return Err(ClassifyError::InvalidBatch(format!(
            "the batch has {} operations; the maximum is {MAX_BATCH_OPERATIONS}",
            raw.len()
        )));
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, operation)| batch_operation(index, operation))
        .collect()
}

fn batch_operation(index: usize, raw: RawOperation) -> Result<BatchOperation, ClassifyError> {
    let kind = match raw.operation_type.to_ascii_lowercase().as_str() {
        "create" => OperationKind::Create,
        "upsert" => OperationKind::Upsert,
        "read" => OperationKind::Read,
        "replace" => OperationKind::Replace,
        "patch" => OperationKind::Patch,
        "delete" => OperationKind::Delete,
        other => {
            return Err(ClassifyError::InvalidBatch(format!(
                "operation {index} has the unknown operationType {other:?}"
            )));
        }
    };
    let body_id = raw
        .resource_body
        .as_ref()
        .and_then(|body| body.get("id"))
        .and_then(|id| id.as_str())
        .map(str::to_owned);
    let partition_key = raw
        .partition_key
        .map(|text| parse_partition_key(index, text))
        .transpose()?;
    Ok(BatchOperation {
        kind,
        item_id: operation_item_id(index, kind, raw.id, body_id)?,
        partition_key,
    })
}

/// Returns the id of the item an operation acts on. A create or upsert writes the item
/// its `resourceBody` names, and a replace addresses `id` but writes `resourceBody`, so
/// an operation whose two ids differ is rejected: the policy would otherwise decide on
/// one item while the account writes another.
fn operation_item_id(
    index: usize,
    kind: OperationKind,
    id: Option<String>,
    body_id: Option<String>,
) -> Result<Option<String>, ClassifyError> {
    if let (Some(id), Some(body_id)) = (&id, &body_id)
        && id != body_id
    {
        return Err(ClassifyError::InvalidBatch(format!(
            "operation {index} names item {id:?} but its resourceBody is item {body_id:?}"
        )));
    }
    Ok(match kind {
        OperationKind::Create | OperationKind::Upsert => body_id.or(id),
        _ => id.or(body_id),
    })
}

fn parse_partition_key(index: usize, raw: String) -> Result<PartitionKey, ClassifyError> {
    let components = serde_json::from_str(&raw).map_err(|error| {
        ClassifyError::InvalidBatch(format!(
            "operation {index} has a partitionKey that is not a JSON array: {error}"
        ))
    })?;
    Ok(PartitionKey { raw, components })
}
