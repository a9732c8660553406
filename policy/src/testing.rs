//! Builders for tests: principals, requests and contexts with few lines.

use serde_json::json;

use crate::request::{
    BatchOperation, Context, Operation, OperationKind, PartitionKey, Principal, Request,
    RequestProperties, ResourceType,
};

pub(crate) const DEMO_POLICY: &str = include_str!("../../deploy/demo/policy.toml");
pub(crate) const PRODUCTION_POLICY: &str = include_str!("../../deploy/policy.toml");

pub(crate) fn principal(subject: &str) -> Principal {
    Principal {
        issuer: "http://127.0.0.1:8080".to_owned(),
        subject: subject.to_owned(),
        claims: serde_json::Map::from_iter([
            ("sub".to_owned(), json!(subject)),
            ("iss".to_owned(), json!("http://127.0.0.1:8080")),
        ]),
        ..Principal::default()
    }
}

pub(crate) fn with_claim(
    mut principal: Principal,
    name: &str,
    value: serde_json::Value,
) -> Principal {
    principal.claims.insert(name.to_owned(), value);
    principal
}

pub(crate) fn context() -> Context {
    Context {
        source_address: Some(
            "10.1.2.3"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        ),
        // Wednesday 2026-01-28 12:00:00 UTC.
        unix_time: 1_769_601_600,
    }
}

pub(crate) fn key(components: &[serde_json::Value]) -> PartitionKey {
    PartitionKey {
        raw: serde_json::Value::Array(components.to_vec()).to_string(),
        components: components.to_vec(),
    }
}

/// Builds a request from a resource link such as `dbs/shop/colls/orders/docs/1`: the
/// database, container and resource id come from its segments.
pub(crate) fn request(kind: OperationKind, resource_type: ResourceType, link: &str) -> Request {
    let segments: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
    let at = |index: usize| segments.get(index).map(|s| (*s).to_owned());
    Request {
        operation: Operation::new(kind, resource_type),
        resource_link: link.to_owned(),
        database: at(1),
        container: at(3),
        resource_id: at(5),
        partition_key: None,
        batch: Vec::new(),
        properties: RequestProperties::default(),
    }
}

pub(crate) fn item(kind: OperationKind, link: &str) -> Request {
    request(kind, ResourceType::Document, link)
}

pub(crate) fn with_key(mut request: Request, components: &[serde_json::Value]) -> Request {
    request.partition_key = Some(key(components));
    request
}

pub(crate) fn batch_op(
    kind: OperationKind,
    id: Option<&str>,
    partition: Option<&[serde_json::Value]>,
) -> BatchOperation {
    BatchOperation {
        kind,
        item_id: id.map(str::to_owned),
        partition_key: partition.map(key),
    }
}
