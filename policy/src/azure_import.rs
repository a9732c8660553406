//! Import of Azure Cosmos DB SQL role definitions and role assignments into a policy.

/// An import failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ImportError {
    pub message: String,
}

/// Converts the JSON printed by `az cosmosdb sql role definition list` and
/// `az cosmosdb sql role assignment list` into policy text.
pub fn import(definitions_json: &str, assignments_json: &str) -> Result<String, ImportError> {
    let _ = (definitions_json, assignments_json);
    Err(ImportError {
        message: "not implemented".to_owned(),
    })
}
