//! Classification: turns a Cosmos DB REST request (method, path, headers) into the
//! [`Request`] a policy decides on, plus the resource type and link the upstream signature
//! covers.
//!
//! The path is percent-decoded once, the way the service decodes it, and keywords are
//! matched by position, never by searching the string, so a database named `docs` is a
//! database. Shapes the service does not define are rejected rather than forwarded.

pub mod batch;
mod created;
mod headers;
pub mod path;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use cosmoguard_policy::{Operation, OperationKind, Request, RequestProperties, ResourceType};
use http::{HeaderMap, Method};

pub use batch::{MAX_BATCH_BODY_BYTES, parse_batch};
pub use created::{MAX_CREATE_BODY_BYTES, apply_created_id, check_replaced_id};
pub use path::{ResourcePath, RidAddress, parse_path, without_empty_segments};

/// Errors from classifying a request. Every variant is the caller's fault (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("the path is not valid percent-encoded UTF-8")]
    InvalidEncoding,
    #[error("the path contains a control character")]
    ControlCharacter,
    #[error("the path contains {character:?} inside a segment, which no resource id may contain")]
    ForbiddenCharacter { character: char },
    #[error("the path contains a '.' or '..' segment")]
    DotSegment,
    #[error("the path is {length} bytes long; the maximum is {max}")]
    PathTooLong { length: usize, max: usize },
    #[error("'{keyword}' is not a resource type at this position of the path")]
    UnknownResourceType { keyword: String },
    #[error(
        "the path addresses a resource below a container by resource id (RID); address it by name"
    )]
    AddressedByRid,
    #[error("{method} is not a Cosmos DB operation on {target}")]
    UnsupportedMethod {
        method: String,
        target: &'static str,
    },
    #[error(
        "the request has a query string; Cosmos DB REST requests carry their parameters in headers"
    )]
    QueryString,
    #[error("the access token also appears in {0}; send it only in the Authorization header")]
    TokenInOtherHeader(String),
    #[error("the request sets conflicting operation headers: {0}")]
    ConflictingHeaders(&'static str),
    #[error("header {name} is invalid: {problem}")]
    InvalidHeader { name: &'static str, problem: String },
    #[error("the batch body is invalid: {0}")]
    InvalidBatch(String),
    #[error("the request body is invalid: {0}")]
    InvalidBody(String),
}

/// A classified request: the policy input and what the upstream signature needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Classified {
    pub request: Request,
    /// The resource type keyword the signature covers (`dbs`, `docs`, ... or `""`).
    pub signing_resource_type: &'static str,
    /// The resource link the signature covers, exactly as the service computes it.
    pub signing_resource_link: String,
    /// The resource ids of a RID-addressed path, which must be resolved to names before
    /// the policy decides.
    pub rid: Option<RidAddress>,
}

impl Classified {
    /// Whether the request body must be read to authorize the request: a batch's
    /// operations, the id of the resource a create or upsert makes, or the id a replace
    /// writes. Cosmos DB limits an item to 2 MB, so these bodies are small.
    pub fn needs_body(&self) -> bool {
        self.request.operation.kind == OperationKind::Batch
            || created::names_resource_in_body(self)
            || created::replaces_resource(self)
    }
}

/// Classifies a request from its method, raw (still percent-encoded) path and headers.
/// A batch's operations are added later by [`parse_batch`], once the body is read.
pub fn classify(
    method: &Method,
    raw_path: &str,
    headers: &HeaderMap,
) -> Result<Classified, ClassifyError> {
    let resource = parse_path(raw_path)?;
    let kind = operation_kind(method, &resource, headers)?;
    let operation = Operation::new(kind, resource.resource_type);

    let request = Request {
        operation,
        resource_link: resource.link,
        database: resource.database,
        container: resource.container,
        resource_id: resource.resource_id,
        partition_key: headers::partition_key(headers)?,
        batch: Vec::new(),
        properties: request_properties(kind, headers)?,
    };
    Ok(Classified {
        request,
        signing_resource_type: resource.resource_type.keyword(),
        signing_resource_link: resource.signing_link,
        rid: resource.rid,
    })
}

/// Decides what the request does from its method, whether it addresses one resource or
/// a feed, and the headers that change what a POST or GET means.
fn operation_kind(
    method: &Method,
    resource: &ResourcePath,
    headers: &HeaderMap,
) -> Result<OperationKind, ClassifyError> {
    if resource.resource_type == ResourceType::Account {
        return match *method {
            Method::GET => Ok(OperationKind::Read),
            Method::HEAD => Ok(OperationKind::Head),
            _ => Err(unsupported(method, "the account")),
        };
    }
    if resource.is_feed {
        feed_operation_kind(method, resource.resource_type, headers)
    } else {
        item_operation_kind(method, resource.resource_type)
    }
}

fn feed_operation_kind(
    method: &Method,
    resource_type: ResourceType,
    headers: &HeaderMap,
) -> Result<OperationKind, ClassifyError> {
    match *method {
        Method::GET
            if resource_type == ResourceType::Document && headers::is_change_feed(headers) =>
        {
            Ok(OperationKind::ReadChangeFeed)
        }
        Method::GET => Ok(OperationKind::ReadFeed),
        Method::HEAD => Ok(OperationKind::Head),
        Method::POST => post_feed_kind(resource_type, headers),
        _ => Err(unsupported(method, "a feed")),
    }
}

/// Decides whether a POST to a feed creates, upserts, queries, plans a query or runs a
/// batch, from its headers. More than one of those at once is rejected, because the
/// service and the policy could otherwise read the request differently.
fn post_feed_kind(
    resource_type: ResourceType,
    headers: &HeaderMap,
) -> Result<OperationKind, ClassifyError> {
    let query = headers::is_query(headers)?;
    let query_plan = headers::flag(headers, &headers::IS_QUERY_PLAN)?;
    let upsert = headers::flag(headers, &headers::IS_UPSERT)?;
    let batch = headers::flag(headers, &headers::IS_BATCH)?;

    let set = [query, query_plan, upsert, batch]
        .iter()
        .filter(|flag| **flag)
        .count();
    if set > 1 && !(query && query_plan) {
        return Err(ClassifyError::ConflictingHeaders(
            "a POST may be one of query, query plan, upsert or batch",
        ));
    }
    if batch && resource_type != ResourceType::Document {
        return Err(ClassifyError::ConflictingHeaders(
            "a batch is only valid on the docs feed",
        ));
    }

    if query_plan {
        Ok(OperationKind::QueryPlan)
    } else if query {
        Ok(OperationKind::Query)
    } else if batch {
        Ok(OperationKind::Batch)
    } else if upsert {
        Ok(OperationKind::Upsert)
    } else {
        Ok(OperationKind::Create)
    }
}

fn item_operation_kind(
    method: &Method,
    resource_type: ResourceType,
) -> Result<OperationKind, ClassifyError> {
    match *method {
        Method::GET => Ok(OperationKind::Read),
        Method::HEAD => Ok(OperationKind::Head),
        Method::PUT => Ok(OperationKind::Replace),
        Method::DELETE => Ok(OperationKind::Delete),
        Method::PATCH if resource_type == ResourceType::Document => Ok(OperationKind::Patch),
        Method::POST if resource_type == ResourceType::StoredProcedure => {
            Ok(OperationKind::Execute)
        }
        _ => Err(unsupported(method, "this resource")),
    }
}

fn unsupported(method: &Method, target: &'static str) -> ClassifyError {
    ClassifyError::UnsupportedMethod {
        method: method.as_str().to_owned(),
        target,
    }
}

fn request_properties(
    kind: OperationKind,
    headers: &HeaderMap,
) -> Result<RequestProperties, ClassifyError> {
    let fans_out = matches!(
        kind,
        OperationKind::Query | OperationKind::ReadFeed | OperationKind::ReadChangeFeed
    );
    Ok(RequestProperties {
        max_item_count: headers::max_item_count(headers)?,
        consistency_level: headers::text(headers, &headers::CONSISTENCY_LEVEL),
        cross_partition: fans_out && !headers.contains_key(&headers::PARTITION_KEY),
    })
}
