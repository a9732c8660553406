//! Parameter diffs for high-change operations: a throughput (offer) replace, a container
//! replace (indexing policy, TTL, conflict resolution) and a container or database
//! delete.
//!
//! Before forwarding such a request, the proxy reads the resource as it is now (a GET of
//! the same resource link, signed like any request) and records what the request
//! changes. An offer replace reuses the offer read before the decision instead. A failed
//! read never blocks the request: its error goes into the audit record. Only a replace
//! body is buffered, up to [`MAX_REPLACE_BODY_BYTES`]; every other body keeps streaming.

use bytes::{Bytes, BytesMut};
use cosmoguard_policy::{Operation, OperationKind, ResourceType};
use http::{HeaderValue, Method, Request, header, request};
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use crate::body::{ProxyBody, full};
use crate::classify::Classified;
use crate::error::ProxyError;
use crate::upstream::Upstream;

/// The largest replace body buffered for a diff. Container and offer definitions are a
/// few KiB; a larger body is rejected with 413 rather than forwarded undiffed.
pub(super) const MAX_REPLACE_BODY_BYTES: usize = 1024 * 1024;

/// The largest current resource read for a diff.
const MAX_CURRENT_BYTES: usize = 1024 * 1024;

/// Request headers copied onto the read before a change.
const COPIED_HEADERS: [&str; 2] = ["x-ms-version", "x-ms-consistency-level"];

/// The kinds of high-change operation the proxy diffs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChangeKind {
    Replace,
    Delete,
}

/// Returns the change kind of a request, or `None` for every other operation.
pub(super) fn change_kind(operation: Operation) -> Option<ChangeKind> {
    match (operation.kind, operation.resource_type) {
        (OperationKind::Replace, ResourceType::Offer | ResourceType::Container) => {
            Some(ChangeKind::Replace)
        }
        (OperationKind::Delete, ResourceType::Container | ResourceType::Database) => {
            Some(ChangeKind::Delete)
        }
        _ => None,
    }
}

/// The body to forward (buffered for a replace) and, for a high-change request, its
/// changes or the reason they are unknown.
pub(super) type Captured = Result<(ProxyBody, Option<Result<Value, String>>), ProxyError>;

/// Reads the current resource for a high-change request and computes its changes.
/// `current` is the resource (or why it is unknown) when the pipeline already read it
/// before the decision, so the account is not asked twice.
pub(super) async fn capture(
    upstream: &Upstream,
    parts: &request::Parts,
    body: ProxyBody,
    classified: &Classified,
    current: Option<Result<Value, String>>,
) -> Captured {
    let Some(kind) = change_kind(classified.request.operation) else {
        return Ok((body, None));
    };
    let (body, requested) = match kind {
        ChangeKind::Replace => {
            let bytes = read_replace_body(body).await?;
            let requested = serde_json::from_slice::<Value>(&bytes)
                .map_err(|error| format!("the replace body is not JSON: {error}"));
            (full(bytes), Some(requested))
        }
        ChangeKind::Delete => (body, None),
    };

    let before = match current {
        Some(current) => current,
        None => read_current(upstream, parts, classified).await,
    };
    let changes = match (before, requested) {
        (Err(error), _) => Err(error),
        (Ok(_), Some(Err(error))) => Err(error),
        (Ok(before), Some(Ok(after))) => Ok(replace_changes(&before, &after)),
        (Ok(before), None) => Ok(delete_changes(&before)),
    };
    if let Err(error) = &changes {
        tracing::warn!(
            error = %error,
            db.operation.name = %classified.request.operation.name(),
            "Failed to read the resource before a change; forwarding without a diff"
        );
    }
    Ok((body, Some(changes)))
}

/// Reads the whole replace body, up to the limit. `Limited` is not used on a
/// `ProxyBody` because its boxed error type makes rustc 1.88+ reject the pipeline future
/// as not `Send` for every lifetime.
async fn read_replace_body(mut body: ProxyBody) -> Result<Bytes, ProxyError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| ProxyError::BodyRead(error.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > MAX_REPLACE_BODY_BYTES {
            return Err(ProxyError::BodyTooLarge {
                max: MAX_REPLACE_BODY_BYTES,
            });
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// GETs the resource the request addresses, at the path exactly as the caller spelled
/// it, with the proxy's own signature.
pub(super) async fn read_current(
    upstream: &Upstream,
    parts: &request::Parts,
    classified: &Classified,
) -> Result<Value, String> {
    let mut read = classified.clone();
    read.request.operation = Operation::new(
        OperationKind::Read,
        classified.request.operation.resource_type,
    );
    let bytes = read_with_own_credential(upstream, parts.uri.path(), &parts.headers, &read)
        .await
        .map_err(|error| format!("the read before the change {error}"))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| format!("the current resource is not JSON: {error}"))
}

/// GETs `path` with the proxy's own signature for `classified` and returns the body of a
/// successful response. The error completes a sentence about the read: `failed: ...` or
/// `returned status 404`.
pub(super) async fn read_with_own_credential(
    upstream: &Upstream,
    path: &str,
    headers: &http::HeaderMap,
    classified: &Classified,
) -> Result<Bytes, String> {
    let request = build_read_request(path, headers)?;
    let response = upstream
        .send(request, classified)
        .await
        .map_err(|error| format!("failed: {error}"))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_CURRENT_BYTES)
        .collect()
        .await
        .map_err(|error| format!("failed: {error}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("returned status {}", status.as_u16()));
    }
    Ok(bytes)
}

fn build_read_request(path: &str, headers: &http::HeaderMap) -> Result<Request<ProxyBody>, String> {
    let mut request = Request::builder().method(Method::GET).uri(path);
    for name in COPIED_HEADERS {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    request
        .header(header::ACCEPT, HeaderValue::from_static("application/json"))
        .body(full(Bytes::new()))
        .map_err(|error| format!("failed: cannot build the request: {error}"))
}

/// Returns the top-level fields whose values differ, each as `{"before", "after"}`.
/// System properties (`_rid`, `_etag`, `_ts`, `_self`, …) are set by the service, so
/// they are left out.
pub(super) fn replace_changes(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let before_fields = before.as_object().unwrap_or(&empty);
    let after_fields = after.as_object().unwrap_or(&empty);

    let mut names: Vec<&String> = before_fields.keys().chain(after_fields.keys()).collect();
    names.sort();
    names.dedup();

    let mut changes = Map::new();
    for name in names.into_iter().filter(|name| !name.starts_with('_')) {
        let old = before_fields.get(name).unwrap_or(&Value::Null);
        let new = after_fields.get(name).unwrap_or(&Value::Null);
        if old != new {
            changes.insert(name.clone(), change(old.clone(), new.clone()));
        }
    }
    Value::Object(changes)
}

/// Returns every field of a deleted resource, system properties included, with `after`
/// null.
pub(super) fn delete_changes(before: &Value) -> Value {
    let Some(fields) = before.as_object() else {
        return Value::Object(Map::new());
    };
    let changes = fields
        .iter()
        .map(|(name, value)| (name.clone(), change(value.clone(), Value::Null)))
        .collect();
    Value::Object(changes)
}

fn change(before: Value, after: Value) -> Value {
    let mut pair = Map::new();
    pair.insert("before".to_owned(), before);
    pair.insert("after".to_owned(), after);
    Value::Object(pair)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replace_lists_only_changed_fields() {
        let before = json!({
            "id": "orders",
            "defaultTtl": 3600,
            "indexingPolicy": {"indexingMode": "consistent"},
            "_etag": "\"1\"",
        });
        let after = json!({
            "id": "orders",
            "defaultTtl": 60,
            "indexingPolicy": {"indexingMode": "consistent"},
            "_etag": "\"2\"",
        });
        let changes = replace_changes(&before, &after);
        assert_eq!(
            changes,
            json!({"defaultTtl": {"before": 3600, "after": 60}})
        );
    }

    #[test]
    fn replace_records_added_and_removed_fields() {
        let before = json!({"id": "orders", "defaultTtl": 3600});
        let after = json!({"id": "orders", "conflictResolutionPolicy": {"mode": "LastWriterWins"}});
        let changes = replace_changes(&before, &after);
        assert_eq!(
            changes["defaultTtl"],
            json!({"before": 3600, "after": null})
        );
        assert_eq!(
            changes["conflictResolutionPolicy"],
            json!({"before": null, "after": {"mode": "LastWriterWins"}})
        );
        assert_eq!(changes.as_object().map(Map::len), Some(2));
    }

    #[test]
    fn offer_replace_diffs_content() {
        let before =
            json!({"id": "AbCd", "content": {"offerThroughput": 400}, "offerVersion": "V2"});
        let after =
            json!({"id": "AbCd", "content": {"offerThroughput": 1000}, "offerVersion": "V2"});
        let changes = replace_changes(&before, &after);
        assert_eq!(
            changes,
            json!({"content": {"before": {"offerThroughput": 400}, "after": {"offerThroughput": 1000}}})
        );
    }

    #[test]
    fn delete_lists_every_field() {
        let before = json!({"id": "orders", "_rid": "AbCdEf==", "defaultTtl": 5});
        let changes = delete_changes(&before);
        assert_eq!(changes["id"], json!({"before": "orders", "after": null}));
        assert_eq!(
            changes["_rid"],
            json!({"before": "AbCdEf==", "after": null})
        );
        assert_eq!(changes["defaultTtl"], json!({"before": 5, "after": null}));
    }

    #[test]
    fn change_kind_covers_high_change_operations() {
        let cases = [
            (
                OperationKind::Replace,
                ResourceType::Offer,
                Some(ChangeKind::Replace),
            ),
            (
                OperationKind::Replace,
                ResourceType::Container,
                Some(ChangeKind::Replace),
            ),
            (
                OperationKind::Delete,
                ResourceType::Container,
                Some(ChangeKind::Delete),
            ),
            (
                OperationKind::Delete,
                ResourceType::Database,
                Some(ChangeKind::Delete),
            ),
            (OperationKind::Replace, ResourceType::Document, None),
            (OperationKind::Delete, ResourceType::Document, None),
            (OperationKind::Read, ResourceType::Container, None),
        ];
        for (kind, resource_type, expected) in cases {
            assert_eq!(
                change_kind(Operation::new(kind, resource_type)),
                expected,
                "{kind:?} {resource_type:?}"
            );
        }
    }
}
