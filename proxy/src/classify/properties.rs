//! Property tests: the classification depends on the resource a path names, not on how
//! the path is spelled, and never panics.

use http::{HeaderMap, Method};
use proptest::prelude::*;

use super::{Classified, ClassifyError, classify};
use cosmoguard_policy::ResourceType;

/// Path shapes as keyword lists; `None` marks a position filled with a generated id.
const SHAPES: &[&[Option<&str>]] = &[
    &[Some("dbs")],
    &[Some("dbs"), None],
    &[Some("dbs"), None, Some("colls")],
    &[Some("dbs"), None, Some("colls"), None],
    &[Some("dbs"), None, Some("colls"), None, Some("docs")],
    &[Some("dbs"), None, Some("colls"), None, Some("docs"), None],
    &[Some("dbs"), None, Some("colls"), None, Some("sprocs"), None],
    &[
        Some("dbs"),
        None,
        Some("users"),
        None,
        Some("permissions"),
        None,
    ],
    &[
        Some("dbs"),
        None,
        Some("colls"),
        None,
        Some("docs"),
        None,
        Some("attachments"),
        None,
    ],
];

/// Ids without `%`, so their literal spelling is also their decoded form. Includes
/// keywords, dots, `+`, spaces and non-ASCII letters.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _.+=~!$&'()*,;:@é中-]{1,12}",
        Just("colls".to_owned()),
        Just("docs".to_owned()),
        Just("dbs".to_owned()),
        Just("..".to_owned()),
    ]
}

fn segments() -> impl Strategy<Value = Vec<String>> {
    (0..SHAPES.len()).prop_flat_map(|shape| {
        let slots: Vec<BoxedStrategy<String>> = SHAPES[shape]
            .iter()
            .map(|slot| match slot {
                Some(keyword) => Just((*keyword).to_owned()).boxed(),
                None => id().boxed(),
            })
            .collect();
        slots
    })
}

/// Spells `segment` with each character either literal or percent-encoded (all of its
/// UTF-8 bytes, in upper or lower case hex), as `choices` selects.
fn encode(segment: &str, choices: &[u8]) -> String {
    let mut encoded = String::new();
    for (index, character) in segment.chars().enumerate() {
        let choice = choices
            .get(index % choices.len().max(1))
            .copied()
            .unwrap_or(0);
        let must_encode = character == ' ' || !character.is_ascii();
        if choice % 3 == 0 && !must_encode {
            encoded.push(character);
            continue;
        }
        let mut buffer = [0; 4];
        for byte in character.encode_utf8(&mut buffer).bytes() {
            if choice % 3 == 1 {
                encoded.push_str(&format!("%{byte:02X}"));
            } else {
                encoded.push_str(&format!("%{byte:02x}"));
            }
        }
    }
    encoded
}

fn classify_get(path: &str) -> Result<Classified, ClassifyError> {
    classify(&Method::GET, path, &HeaderMap::new())
}

fn literal_path(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

proptest! {
    #[test]
    fn encoded_path_classifies_as_its_decoded_form(
        segments in segments(),
        choices in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let encoded: Vec<String> = segments.iter().map(|segment| encode(segment, &choices)).collect();
        let decoded_result = classify_get(&literal_path(&segments));
        let encoded_result = classify_get(&literal_path(&encoded));
        prop_assert_eq!(encoded_result, decoded_result);
    }

    #[test]
    fn extra_slashes_do_not_change_the_resource(
        segments in segments(),
        extra in proptest::collection::vec(0..3usize, 1..12),
    ) {
        let mut padded = "/".repeat(extra[0]);
        for (index, segment) in segments.iter().enumerate() {
            padded.push('/');
            padded.push_str(&"/".repeat(extra[(index + 1) % extra.len()]));
            padded.push_str(segment);
        }
        padded.push_str(&"/".repeat(extra[extra.len() - 1]));
        prop_assert_eq!(classify_get(&padded), classify_get(&literal_path(&segments)));
    }

    #[test]
    fn signed_link_is_the_policy_link(segments in segments()) {
        if let Ok(classified) = classify_get(&literal_path(&segments)) {
            prop_assert_ne!(classified.request.operation.resource_type, ResourceType::Offer);
            prop_assert_eq!(&classified.signing_resource_link, &classified.request.resource_link);
            let expected_keyword = if segments.len() % 2 == 1 {
                &segments[segments.len() - 1]
            } else {
                &segments[segments.len() - 2]
            };
            prop_assert_eq!(classified.signing_resource_type, expected_keyword.as_str());
        }
    }

    #[test]
    fn arbitrary_input_never_panics(
        method in prop_oneof![
            Just(Method::GET), Just(Method::POST), Just(Method::PUT),
            Just(Method::PATCH), Just(Method::DELETE), Just(Method::HEAD), Just(Method::OPTIONS),
        ],
        path in any::<String>(),
        flags in proptest::collection::vec(("[a-zA-Z ]{0,6}", 0..4usize), 0..4),
    ) {
        let names = [
            "x-ms-documentdb-isquery",
            "x-ms-documentdb-is-upsert",
            "x-ms-cosmos-is-batch-request",
            "x-ms-documentdb-partitionkey",
        ];
        let mut headers = HeaderMap::new();
        for (value, name) in flags {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.append(names[name], value);
            }
        }
        if let Ok(classified) = classify(&method, &path, &headers)
            && classified.request.operation.resource_type != ResourceType::Offer
            && classified.rid.is_none()
        {
            prop_assert_eq!(&classified.signing_resource_link, &classified.request.resource_link);
        }
    }
}
