//! The request headers that change what a request means or what a policy can test.

use cosmoguard_policy::PartitionKey;
use http::{HeaderMap, HeaderName};

use super::ClassifyError;

// Statics rather than text: a lookup by `HeaderName` hashes it as it is, while a lookup by
// `&str` first checks and lowercases every character.
pub(super) static PARTITION_KEY: HeaderName =
    HeaderName::from_static("x-ms-documentdb-partitionkey");
pub(super) static IS_QUERY: HeaderName = HeaderName::from_static("x-ms-documentdb-isquery");
pub(super) static IS_QUERY_PLAN: HeaderName =
    HeaderName::from_static("x-ms-cosmos-is-query-plan-request");
pub(super) static IS_UPSERT: HeaderName = HeaderName::from_static("x-ms-documentdb-is-upsert");
pub(super) static IS_BATCH: HeaderName = HeaderName::from_static("x-ms-cosmos-is-batch-request");
pub(super) static MAX_ITEM_COUNT: HeaderName = HeaderName::from_static("x-ms-max-item-count");
pub(super) static CONSISTENCY_LEVEL: HeaderName = HeaderName::from_static("x-ms-consistency-level");
static INCREMENTAL_FEED: HeaderName = HeaderName::from_static("a-im");
const QUERY_CONTENT_TYPE: &str = "application/query+json";

/// Reads a boolean Cosmos header (`True`/`False`, any case). A repeated or unparsable
/// value is rejected, so the proxy and the service cannot read it differently.
pub(super) fn flag(headers: &HeaderMap, name: &'static HeaderName) -> Result<bool, ClassifyError> {
    let Some(value) = single(headers, name)? else {
        return Ok(false);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ClassifyError::InvalidHeader {
            name: name.as_str(),
            problem: format!("expected True or False, got {other:?}"),
        }),
    }
}

/// Whether a POST is a query: the SDKs send both `x-ms-documentdb-isquery: True` and the
/// query content type, and either one alone makes the service run a query.
pub(super) fn is_query(headers: &HeaderMap) -> Result<bool, ClassifyError> {
    let content_type = text(headers, &http::header::CONTENT_TYPE).unwrap_or_default();
    let query_content = content_type
        .split(';')
        .next()
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(QUERY_CONTENT_TYPE));
    Ok(flag(headers, &IS_QUERY)? || query_content)
}

/// Whether a GET on the docs feed reads the change feed (`A-IM: Incremental feed`).
pub(super) fn is_change_feed(headers: &HeaderMap) -> bool {
    headers
        .get_all(&INCREMENTAL_FEED)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.trim().eq_ignore_ascii_case("incremental feed"))
}

/// Parses `x-ms-documentdb-partitionkey`: a JSON array with one component per key path.
pub(super) fn partition_key(headers: &HeaderMap) -> Result<Option<PartitionKey>, ClassifyError> {
    let Some(raw) = single(headers, &PARTITION_KEY)? else {
        return Ok(None);
    };
    let components: Vec<serde_json::Value> =
        serde_json::from_str(raw).map_err(|error| ClassifyError::InvalidHeader {
            name: PARTITION_KEY.as_str(),
            problem: format!("expected a JSON array: {error}"),
        })?;
    Ok(Some(PartitionKey {
        raw: raw.to_owned(),
        components,
    }))
}

pub(super) fn max_item_count(headers: &HeaderMap) -> Result<Option<i64>, ClassifyError> {
    let Some(raw) = single(headers, &MAX_ITEM_COUNT)? else {
        return Ok(None);
    };
    raw.trim()
        .parse()
        .map(Some)
        .map_err(|_| ClassifyError::InvalidHeader {
            name: MAX_ITEM_COUNT.as_str(),
            problem: format!("expected an integer, got {raw:?}"),
        })
}

pub(super) fn text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Returns the header's only value, rejecting repeats and non-ASCII values.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static HeaderName,
) -> Result<Option<&'h str>, ClassifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ClassifyError::InvalidHeader {
            name: name.as_str(),
            problem: "sent more than once".to_owned(),
        });
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ClassifyError::InvalidHeader {
            name: name.as_str(),
            problem: "not visible ASCII".to_owned(),
        })
}
