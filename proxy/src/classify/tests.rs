use cosmoguard_policy::{OperationKind as Kind, ResourceType as Type};
use http::{HeaderMap, HeaderValue, Method};

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn classify_plain(method: Method, path: &str) -> Classified {
    classify(&method, path, &HeaderMap::new()).unwrap()
}

#[test]
fn classifies_every_name_based_shape() {
    let cases: &[(Method, &str, Kind, Type, &str, &str)] = &[
        (Method::GET, "/", Kind::Read, Type::Account, "", ""),
        (
            Method::GET,
            "/dbs",
            Kind::ReadFeed,
            Type::Database,
            "dbs",
            "",
        ),
        (
            Method::POST,
            "/dbs",
            Kind::Create,
            Type::Database,
            "dbs",
            "",
        ),
        (
            Method::GET,
            "/dbs/d",
            Kind::Read,
            Type::Database,
            "dbs",
            "dbs/d",
        ),
        (
            Method::DELETE,
            "/dbs/d",
            Kind::Delete,
            Type::Database,
            "dbs",
            "dbs/d",
        ),
        (
            Method::GET,
            "/dbs/d/colls",
            Kind::ReadFeed,
            Type::Container,
            "colls",
            "dbs/d",
        ),
        (
            Method::POST,
            "/dbs/d/colls",
            Kind::Create,
            Type::Container,
            "colls",
            "dbs/d",
        ),
        (
            Method::PUT,
            "/dbs/d/colls/c",
            Kind::Replace,
            Type::Container,
            "colls",
            "dbs/d/colls/c",
        ),
        (
            Method::POST,
            "/dbs/d/colls/c/docs",
            Kind::Create,
            Type::Document,
            "docs",
            "dbs/d/colls/c",
        ),
        (
            Method::GET,
            "/dbs/d/colls/c/docs",
            Kind::ReadFeed,
            Type::Document,
            "docs",
            "dbs/d/colls/c",
        ),
        (
            Method::GET,
            "/dbs/d/colls/c/docs/i",
            Kind::Read,
            Type::Document,
            "docs",
            "dbs/d/colls/c/docs/i",
        ),
        (
            Method::PUT,
            "/dbs/d/colls/c/docs/i",
            Kind::Replace,
            Type::Document,
            "docs",
            "dbs/d/colls/c/docs/i",
        ),
        (
            Method::PATCH,
            "/dbs/d/colls/c/docs/i",
            Kind::Patch,
            Type::Document,
            "docs",
            "dbs/d/colls/c/docs/i",
        ),
        (
            Method::DELETE,
            "/dbs/d/colls/c/docs/i",
            Kind::Delete,
            Type::Document,
            "docs",
            "dbs/d/colls/c/docs/i",
        ),
        (
            Method::GET,
            "/dbs/d/colls/c/pkranges",
            Kind::ReadFeed,
            Type::PartitionKeyRange,
            "pkranges",
            "dbs/d/colls/c",
        ),
        (
            Method::POST,
            "/dbs/d/colls/c/sprocs/s",
            Kind::Execute,
            Type::StoredProcedure,
            "sprocs",
            "dbs/d/colls/c/sprocs/s",
        ),
        (
            Method::PUT,
            "/dbs/d/colls/c/udfs/u",
            Kind::Replace,
            Type::UserDefinedFunction,
            "udfs",
            "dbs/d/colls/c/udfs/u",
        ),
        (
            Method::DELETE,
            "/dbs/d/colls/c/triggers/t",
            Kind::Delete,
            Type::Trigger,
            "triggers",
            "dbs/d/colls/c/triggers/t",
        ),
        (
            Method::GET,
            "/dbs/d/colls/c/conflicts",
            Kind::ReadFeed,
            Type::Conflict,
            "conflicts",
            "dbs/d/colls/c",
        ),
        (
            Method::GET,
            "/dbs/d/users/u/permissions/p",
            Kind::Read,
            Type::Permission,
            "permissions",
            "dbs/d/users/u/permissions/p",
        ),
        (
            Method::GET,
            "/dbs/d/colls/c/docs/i/attachments/a",
            Kind::Read,
            Type::Attachment,
            "attachments",
            "dbs/d/colls/c/docs/i/attachments/a",
        ),
        (
            Method::GET,
            "/dbs/d/clientencryptionkeys",
            Kind::ReadFeed,
            Type::ClientEncryptionKey,
            "clientencryptionkeys",
            "dbs/d",
        ),
        (
            Method::GET,
            "/offers",
            Kind::ReadFeed,
            Type::Offer,
            "offers",
            "",
        ),
    ];
    for (method, path, kind, resource_type, signing_type, signing_link) in cases {
        let classified = classify_plain(method.clone(), path);
        let operation = classified.request.operation;
        assert_eq!(operation.kind, *kind, "{method} {path}: kind");
        assert_eq!(
            operation.resource_type, *resource_type,
            "{method} {path}: type"
        );
        assert_eq!(
            classified.signing_resource_type, *signing_type,
            "{method} {path}: signed type"
        );
        assert_eq!(
            classified.signing_resource_link, *signing_link,
            "{method} {path}: signed link"
        );
    }
}

#[test]
fn names_database_container_and_item() {
    let classified = classify_plain(Method::GET, "/dbs/shop/colls/orders/docs/o-1");
    let request = classified.request;
    assert_eq!(request.database.as_deref(), Some("shop"));
    assert_eq!(request.container.as_deref(), Some("orders"));
    assert_eq!(request.item_id(), Some("o-1"));
    assert_eq!(request.operation.name(), "read_item");
}

#[test]
fn container_read_has_no_resource_id() {
    let request = classify_plain(Method::GET, "/dbs/shop/colls/orders").request;
    assert_eq!(request.container.as_deref(), Some("orders"));
    assert_eq!(request.resource_id, None);
}

#[test]
fn keyword_named_database_is_a_database() {
    let request = classify_plain(Method::GET, "/dbs/colls/colls/docs/docs/dbs").request;
    assert_eq!(request.database.as_deref(), Some("colls"));
    assert_eq!(request.container.as_deref(), Some("docs"));
    assert_eq!(request.item_id(), Some("dbs"));
}

#[test]
fn path_is_decoded_once() {
    let classified = classify_plain(Method::GET, "/dbs/d/colls/c/docs/%253D%3Dx+y");
    assert_eq!(classified.request.item_id(), Some("%3D=x+y"));
    assert_eq!(
        classified.signing_resource_link,
        "dbs/d/colls/c/docs/%3D=x+y"
    );
}

#[test]
fn doubled_and_trailing_slashes_collapse() {
    let classified = classify_plain(Method::GET, "//dbs//d/colls/c/");
    assert_eq!(classified.signing_resource_link, "dbs/d/colls/c");
    assert_eq!(classified.request.operation.resource_type, Type::Container);
}

#[test]
fn forwarded_path_drops_empty_segments() {
    assert_eq!(
        path::without_empty_segments("//dbs//d/colls/c/").as_deref(),
        Some("/dbs/d/colls/c/")
    );
    assert_eq!(
        path::without_empty_segments("/dbs/d//colls/c").as_deref(),
        Some("/dbs/d/colls/c")
    );
    assert_eq!(path::without_empty_segments("//").as_deref(), Some("/"));
    assert_eq!(path::without_empty_segments("/dbs/d/colls/c/"), None);
    assert_eq!(path::without_empty_segments("/"), None);
}

#[test]
fn offer_link_is_lowercased_rid() {
    let classified = classify_plain(Method::PUT, "/offers/AbCd");
    assert_eq!(classified.signing_resource_link, "abcd");
    assert_eq!(classified.request.operation.kind, Kind::Replace);
    assert_eq!(classified.request.resource_id.as_deref(), Some("AbCd"));
}

#[test]
fn rejects_unknown_and_misplaced_keywords() {
    for path in [
        "/widgets",
        "/dbs/d/widgets/w",
        "/DBS/d",
        "/dbs/d/Colls/c",
        "/dbs/d/docs/i",
        "/dbs/d/colls/c/colls/x",
        "/dbs/d/colls/c/docs/i/attachments/a/x/y",
        "/offers/o/colls",
    ] {
        let error = classify(&Method::GET, path, &HeaderMap::new()).unwrap_err();
        assert!(
            matches!(error, ClassifyError::UnknownResourceType { .. }),
            "{path}: {error:?}"
        );
    }
}

#[test]
fn rejects_hostile_path_spellings() {
    let cases: &[(&str, ClassifyError)] = &[
        (
            "/dbs/a%2Fb",
            ClassifyError::ForbiddenCharacter { character: '/' },
        ),
        (
            "/dbs/a%5Cb",
            ClassifyError::ForbiddenCharacter { character: '\\' },
        ),
        (
            "/dbs/a%3Fb",
            ClassifyError::ForbiddenCharacter { character: '?' },
        ),
        ("/dbs/a%00b", ClassifyError::ControlCharacter),
        ("/dbs/a%0Ab", ClassifyError::ControlCharacter),
        ("/dbs/%2e%2e/colls/c", ClassifyError::DotSegment),
        ("/dbs/../colls/c", ClassifyError::DotSegment),
        ("/dbs/./colls", ClassifyError::DotSegment),
        ("/dbs/a%zz", ClassifyError::InvalidEncoding),
        ("/dbs/a%", ClassifyError::InvalidEncoding),
        ("/dbs/%ff", ClassifyError::InvalidEncoding),
        (
            "/dbs/AbCdEf==/colls/AbCdEfGhIjk=/docs/x",
            ClassifyError::AddressedByRid,
        ),
        ("/dbs/AbCdEf==/colls/orders", ClassifyError::AddressedByRid),
    ];
    for (path, expected) in cases {
        let error = classify(&Method::GET, path, &HeaderMap::new()).unwrap_err();
        assert_eq!(&error, expected, "{path}");
    }
}

#[test]
fn rejects_overlong_path() {
    let path = format!("/dbs/{}", "a".repeat(path::MAX_PATH_BYTES));
    let error = classify(&Method::GET, &path, &HeaderMap::new()).unwrap_err();
    assert!(matches!(error, ClassifyError::PathTooLong { .. }));
}

#[test]
fn rejects_methods_that_are_no_operation() {
    for (method, path) in [
        (Method::POST, "/"),
        (Method::PUT, "/dbs"),
        (Method::DELETE, "/dbs/d/colls"),
        (Method::PATCH, "/dbs/d/colls/c"),
        (Method::POST, "/dbs/d/colls/c/docs/i"),
        (Method::OPTIONS, "/dbs/d"),
    ] {
        let error = classify(&method, path, &HeaderMap::new()).unwrap_err();
        assert!(
            matches!(error, ClassifyError::UnsupportedMethod { .. }),
            "{method} {path}: {error:?}"
        );
    }
}

#[test]
fn post_headers_select_the_operation() {
    let cases: &[(&[(&'static str, &str)], Kind)] = &[
        (&[("x-ms-documentdb-isquery", "True")], Kind::Query),
        (&[("content-type", "application/query+json")], Kind::Query),
        (&[("x-ms-documentdb-is-upsert", "True")], Kind::Upsert),
        (&[("x-ms-documentdb-is-upsert", "false")], Kind::Create),
        (&[("x-ms-cosmos-is-batch-request", "True")], Kind::Batch),
        (
            &[
                ("x-ms-cosmos-is-query-plan-request", "True"),
                ("x-ms-documentdb-isquery", "True"),
            ],
            Kind::QueryPlan,
        ),
    ];
    for (pairs, kind) in cases {
        let classified = classify(&Method::POST, "/dbs/d/colls/c/docs", &headers(pairs)).unwrap();
        assert_eq!(classified.request.operation.kind, *kind, "{pairs:?}");
    }
}

#[test]
fn rejects_conflicting_post_headers() {
    let pairs = headers(&[
        ("x-ms-documentdb-is-upsert", "True"),
        ("x-ms-documentdb-isquery", "True"),
    ]);
    let error = classify(&Method::POST, "/dbs/d/colls/c/docs", &pairs).unwrap_err();
    assert!(matches!(error, ClassifyError::ConflictingHeaders(_)));
}

#[test]
fn rejects_repeated_or_invalid_flags() {
    let repeated = headers(&[
        ("x-ms-documentdb-is-upsert", "False"),
        ("x-ms-documentdb-is-upsert", "True"),
    ]);
    let error = classify(&Method::POST, "/dbs/d/colls/c/docs", &repeated).unwrap_err();
    assert!(matches!(error, ClassifyError::InvalidHeader { .. }));

    let invalid = headers(&[("x-ms-documentdb-is-upsert", "yes")]);
    let error = classify(&Method::POST, "/dbs/d/colls/c/docs", &invalid).unwrap_err();
    assert!(matches!(error, ClassifyError::InvalidHeader { .. }));
}

#[test]
fn change_feed_is_recognised_in_any_case() {
    let pairs = headers(&[("a-im", "incremental FEED")]);
    let classified = classify(&Method::GET, "/dbs/d/colls/c/docs", &pairs).unwrap();
    assert_eq!(classified.request.operation.kind, Kind::ReadChangeFeed);
    assert_eq!(
        classified.request.operation.name(),
        "read_change_feed_items"
    );
}

#[test]
fn partition_key_and_properties_are_read() {
    let pairs = headers(&[
        ("x-ms-documentdb-partitionkey", r#"["tenant-a",42]"#),
        ("x-ms-max-item-count", "25"),
        ("x-ms-consistency-level", "Session"),
        ("x-ms-documentdb-isquery", "True"),
    ]);
    let request = classify(&Method::POST, "/dbs/d/colls/c/docs", &pairs)
        .unwrap()
        .request;
    let partition_key = request.partition_key.unwrap();
    assert_eq!(
        partition_key.components,
        vec![serde_json::json!("tenant-a"), serde_json::json!(42)]
    );
    assert_eq!(partition_key.raw, r#"["tenant-a",42]"#);
    assert_eq!(request.properties.max_item_count, Some(25));
    assert_eq!(
        request.properties.consistency_level.as_deref(),
        Some("Session")
    );
    assert!(!request.properties.cross_partition);
}

#[test]
fn query_without_partition_key_is_cross_partition() {
    let pairs = headers(&[("x-ms-documentdb-isquery", "True")]);
    let request = classify(&Method::POST, "/dbs/d/colls/c/docs", &pairs)
        .unwrap()
        .request;
    assert!(request.properties.cross_partition);
}

#[test]
fn rejects_partition_key_that_is_not_json() {
    let pairs = headers(&[("x-ms-documentdb-partitionkey", "tenant-a")]);
    let error = classify(&Method::GET, "/dbs/d/colls/c/docs/i", &pairs).unwrap_err();
    assert!(matches!(error, ClassifyError::InvalidHeader { .. }));
}

#[test]
fn batch_operations_are_parsed() {
    let body = br#"[
        {"operationType": "Create", "resourceBody": {"id": "a"}},
        {"operationType": "Delete", "id": "b", "partitionKey": "[\"p2\"]"}
    ]"#;
    let operations = parse_batch(body).unwrap();
    assert_eq!(operations.len(), 2);
    assert_eq!(operations[0].kind, Kind::Create);
    assert_eq!(operations[0].item_id.as_deref(), Some("a"));
    assert_eq!(operations[1].kind, Kind::Delete);
    assert_eq!(
        operations[1].partition_key.as_ref().unwrap().components,
        vec![serde_json::json!("p2")]
    );
}

#[test]
fn rejects_invalid_batches() {
    let too_many = format!(
        "[{}]",
        vec![r#"{"operationType":"Read","id":"x"}"#; batch::MAX_BATCH_OPERATIONS + 1].join(",")
    );
    for body in [
        b"not json".as_slice(),
        b"[]",
        br#"[{"operationType": "Explode", "id": "x"}]"#,
        br#"[{"operationType": "Read", "id": "x", "partitionKey": "p"}]"#,
        too_many.as_bytes(),
    ] {
        assert!(
            parse_batch(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn rid_addressed_pkranges_keep_rids_for_resolution() {
    let classified = classify_plain(Method::GET, "/dbs/AbCdEf==/colls/AbCdEf-Hij8=/pkranges");
    let rid = classified.rid.clone().unwrap();
    assert_eq!(rid.database, "AbCdEf==");
    assert_eq!(rid.container.as_deref(), Some("AbCdEf-Hij8="));
    assert_eq!(classified.signing_resource_type, "pkranges");
    assert_eq!(classified.signing_resource_link, "abcdef-hij8=");
    assert_eq!(
        classified.request.operation.resource_type,
        Type::PartitionKeyRange
    );
}

#[test]
fn rid_addressed_database_signs_its_own_rid() {
    let classified = classify_plain(Method::GET, "/dbs/AbCdEf==");
    assert_eq!(classified.signing_resource_link, "abcdef==");
    assert_eq!(classified.rid.unwrap().container, None);
}

#[test]
fn names_are_not_mistaken_for_rids() {
    for path in ["/dbs/shop", "/dbs/abcdefgh", "/dbs/abcdef=x"] {
        assert!(classify_plain(Method::GET, path).rid.is_none(), "{path}");
    }
}

/// Path, body, then the expected database, container, resource id and resource link.
type CreateCase<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
);

#[test]
fn create_reads_the_new_resource_id_from_the_body() {
    let cases: &[CreateCase<'_>] = &[
        (
            "/dbs",
            r#"{"id":"shop"}"#,
            Some("shop"),
            None,
            None,
            "dbs/shop",
        ),
        (
            "/dbs/shop/colls",
            r#"{"id":"orders","partitionKey":{}}"#,
            Some("shop"),
            Some("orders"),
            None,
            "dbs/shop/colls/orders",
        ),
        (
            "/dbs/shop/colls/orders/docs",
            r#"{"id":"o-1","n":1}"#,
            Some("shop"),
            Some("orders"),
            Some("o-1"),
            "dbs/shop/colls/orders/docs/o-1",
        ),
        (
            "/dbs/shop/colls/orders/sprocs",
            r#"{"id":"bulk","body":"function(){}"}"#,
            Some("shop"),
            Some("orders"),
            Some("bulk"),
            "dbs/shop/colls/orders/sprocs/bulk",
        ),
    ];
    for (path, body, database, container, resource_id, link) in cases {
        let mut classified = classify_plain(Method::POST, path);
        assert!(classified.needs_body(), "{path}");
        let signing_link = classified.signing_resource_link.clone();
        apply_created_id(&mut classified, body.as_bytes()).unwrap();
        let request = &classified.request;
        assert_eq!(request.database.as_deref(), *database, "{path}");
        assert_eq!(request.container.as_deref(), *container, "{path}");
        assert_eq!(request.resource_id.as_deref(), *resource_id, "{path}");
        assert_eq!(request.resource_link, *link, "{path}");
        assert_eq!(
            classified.signing_resource_link, signing_link,
            "{path}: signed link is the feed's"
        );
    }
}

#[test]
fn create_rejects_forbidden_or_invalid_ids() {
    for body in [
        r#"{"id":"a/b"}"#,
        r#"{"id":"a\u0000"}"#,
        r#"{"id":""}"#,
        r#"{"id":7}"#,
        "not json",
    ] {
        let mut classified = classify_plain(Method::POST, "/dbs");
        let error = apply_created_id(&mut classified, body.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ClassifyError::InvalidBody(_)),
            "{body}: {error:?}"
        );
    }
}

#[test]
fn reads_and_queries_need_no_body() {
    let query = headers(&[("x-ms-documentdb-isquery", "True")]);
    assert!(
        !classify(&Method::POST, "/dbs/d/colls/c/docs", &query)
            .unwrap()
            .needs_body()
    );
    assert!(!classify_plain(Method::GET, "/dbs/d/colls/c/docs/i").needs_body());
    assert!(!classify_plain(Method::DELETE, "/dbs/d/colls/c/docs/i").needs_body());
}

#[test]
fn replace_body_must_name_the_addressed_resource() {
    let item = classify_plain(Method::PUT, "/dbs/d/colls/c/docs/mallory-1");
    assert!(item.needs_body());
    assert!(check_replaced_id(&item, br#"{"id":"mallory-1","n":2}"#).is_ok());
    let error = check_replaced_id(&item, br#"{"id":"victim-1"}"#).unwrap_err();
    assert!(matches!(error, ClassifyError::InvalidBody(_)), "{error:?}");

    let container = classify_plain(Method::PUT, "/dbs/d/colls/c");
    assert!(check_replaced_id(&container, br#"{"id":"c","defaultTtl":60}"#).is_ok());
    assert!(check_replaced_id(&container, br#"{"id":"other"}"#).is_err());
}

#[test]
fn batch_operation_ids_must_agree() {
    let upsert =
        br#"[{"operationType": "Upsert", "id": "mallory-1", "resourceBody": {"id": "secret-1"}}]"#;
    assert!(matches!(
        parse_batch(upsert),
        Err(ClassifyError::InvalidBatch(_))
    ));
    let replace =
        br#"[{"operationType": "Replace", "id": "mallory-1", "resourceBody": {"id": "victim-9"}}]"#;
    assert!(matches!(
        parse_batch(replace),
        Err(ClassifyError::InvalidBatch(_))
    ));

    let create = br#"[{"operationType": "Create", "resourceBody": {"id": "secret-1"}}]"#;
    assert_eq!(
        parse_batch(create).unwrap()[0].item_id.as_deref(),
        Some("secret-1")
    );
}
