//! Classifies arbitrary requests: any method, raw path and headers. Besides not
//! panicking, a classified name-based request must sign the same resource link that the
//! policy decides on, and that link must never contain a segment the service would read
//! as a path step.

#![no_main]

use arbitrary::Arbitrary;
use cosmoguard::classify::classify;
use cosmoguard_policy::ResourceType;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

/// Header names the classifier reads, so the fuzzer reaches them without guessing names.
const KNOWN_HEADERS: [&str; 9] = [
    "x-ms-documentdb-partitionkey",
    "x-ms-documentdb-isquery",
    "x-ms-cosmos-is-query-plan-request",
    "x-ms-documentdb-is-upsert",
    "x-ms-cosmos-is-batch-request",
    "x-ms-max-item-count",
    "x-ms-consistency-level",
    "a-im",
    "content-type",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a [u8],
    path: &'a str,
    headers: Vec<(u8, &'a [u8])>,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(method) = Method::from_bytes(input.method) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name_index, value) in input.headers {
        let name = KNOWN_HEADERS[usize::from(name_index) % KNOWN_HEADERS.len()];
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        headers.append(HeaderName::from_static(name), value);
    }

    let Ok(classified) = classify(&method, input.path, &headers) else {
        return;
    };
    let request = &classified.request;
    // Offers and RID-addressed paths sign the lowercased resource id, not the link.
    if request.operation.resource_type != ResourceType::Offer && classified.rid.is_none() {
        assert_eq!(classified.signing_resource_link, request.resource_link);
    }
    // The account and the top-level feeds (`/dbs`, `/offers`) have an empty link.
    let segments = request.resource_link.split('/').filter(|_| !request.resource_link.is_empty());
    for segment in segments {
        assert!(!segment.is_empty(), "empty segment in {:?}", request.resource_link);
        assert!(segment != "." && segment != "..", "dot segment in {:?}", request.resource_link);
        assert!(!segment.contains(['\\', '?', '#']), "forbidden character in {:?}", segment);
        assert!(!segment.chars().any(char::is_control), "control character in {:?}", segment);
    }
});
