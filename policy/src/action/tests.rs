use super::*;
use crate::request::{Operation, OperationKind as K, ResourceType as T};

fn parsed(name: &str) -> ActionSet {
    parse_action(name)
        .map(ParsedAction::set)
        .unwrap_or_default()
}

#[test]
fn full_and_short_forms_are_equal() {
    let full = "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read";
    assert_eq!(parsed(full), ITEMS_READ);
    assert_eq!(parsed("sqlDatabases/containers/items/read"), ITEMS_READ);
    assert_eq!(parsed("items/read"), ITEMS_READ);
    assert_eq!(parsed("readMetadata"), READ_METADATA);
    assert_eq!(parsed("executeQuery"), EXECUTE_QUERY);
    assert_eq!(parsed("Cosmoguard/databases/create"), DATABASES_CREATE);
    assert_eq!(parsed("databases/create"), DATABASES_CREATE);
}

#[test]
fn wildcards_expand_like_azure() {
    let items = parsed("items/*");
    assert_eq!(items, ActionSet::range(1, 6));
    let containers = parsed("sqlDatabases/containers/*");
    assert!(containers.contains_all(items.union(EXECUTE_QUERY).union(MANAGE_CONFLICTS)));
    assert!(!containers.intersects(READ_METADATA));
    assert!(!containers.intersects(CONTAINERS_CREATE));
    assert!(parsed("Microsoft.DocumentDB/databaseAccounts/*").is_azure_only());
    assert_eq!(parsed("*"), ActionSet::ALL);
}

#[test]
fn cosmoguard_container_wildcard_is_management_only() {
    let management = parsed("containers/*");
    assert_eq!(
        management,
        CONTAINERS_CREATE
            .union(CONTAINERS_REPLACE)
            .union(CONTAINERS_DELETE)
    );
}

#[test]
fn case_differences_are_flagged() {
    assert_eq!(
        parse_action("items/READ"),
        Some(ParsedAction::CaseDiffers(ITEMS_READ, "items/read"))
    );
    assert_eq!(
        parse_action("items/read"),
        Some(ParsedAction::Exact(ITEMS_READ))
    );
}

#[test]
fn unknown_action_gets_suggestion() {
    assert_eq!(parse_action("items/reed"), None);
    assert_eq!(suggest_action("items/reed"), Some("items/read"));
    assert_eq!(suggest_action("completely different"), None);
}

#[test]
fn every_action_name_parses_to_its_bit() {
    for (index, info) in ACTIONS.iter().enumerate() {
        assert_eq!(parsed(info.name), ActionSet::bit(index), "{}", info.name);
    }
}

#[test]
fn operations_map_to_documented_actions() {
    let cases = [
        (K::Read, T::Account, READ_METADATA),
        (K::ReadFeed, T::Database, READ_METADATA),
        (K::Read, T::Container, READ_METADATA),
        (K::ReadFeed, T::PartitionKeyRange, READ_METADATA),
        (K::Read, T::Document, ITEMS_READ),
        (K::Head, T::Document, ITEMS_READ),
        (K::Query, T::Document, EXECUTE_QUERY),
        (K::QueryPlan, T::Document, EXECUTE_QUERY),
        (K::ReadFeed, T::Document, EXECUTE_QUERY),
        (K::ReadChangeFeed, T::Document, READ_CHANGE_FEED),
        (K::Create, T::Document, ITEMS_CREATE),
        (K::Upsert, T::Document, ITEMS_UPSERT),
        (K::Replace, T::Document, ITEMS_REPLACE),
        (K::Patch, T::Document, ITEMS_REPLACE),
        (K::Delete, T::Document, ITEMS_DELETE),
        (K::Execute, T::StoredProcedure, EXECUTE_STORED_PROCEDURE),
        (K::Create, T::StoredProcedure, SPROCS_CREATE),
        (K::Read, T::StoredProcedure, READ_METADATA),
        (K::Create, T::Database, DATABASES_CREATE),
        (K::Delete, T::Database, DATABASES_DELETE),
        (K::Create, T::Container, CONTAINERS_CREATE),
        (K::Replace, T::Container, CONTAINERS_REPLACE),
        (K::Delete, T::Container, CONTAINERS_DELETE),
        (K::Read, T::Offer, THROUGHPUT_READ),
        (K::Replace, T::Offer, THROUGHPUT_REPLACE),
        (K::Delete, T::Conflict, MANAGE_CONFLICTS),
        (K::Read, T::Permission, PERMISSIONS_READ),
        (K::Create, T::User, USERS_CREATE),
    ];
    for (kind, resource_type, expected) in cases {
        let operation = Operation::new(kind, resource_type);
        assert_eq!(
            requirement(operation),
            Requirement::Actions(expected),
            "{operation}"
        );
    }
}

#[test]
fn upsert_of_definition_needs_create_and_replace() {
    let operation = Operation::new(K::Upsert, T::Trigger);
    assert_eq!(
        requirement(operation),
        Requirement::Actions(TRIGGERS_CREATE.union(TRIGGERS_REPLACE))
    );
}

#[test]
fn account_writes_are_unsupported() {
    for kind in [K::Create, K::Replace, K::Delete, K::Execute] {
        let operation = Operation::new(kind, T::Account);
        assert_eq!(
            requirement(operation),
            Requirement::Unsupported,
            "{operation}"
        );
    }
    assert_eq!(
        requirement(Operation::new(K::Execute, T::Trigger)),
        Requirement::Unsupported
    );
}

#[test]
fn data_action_returns_full_names() {
    assert_eq!(
        data_action(Operation::new(K::Query, T::Document)),
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery"
    );
    assert_eq!(
        data_action(Operation::new(K::Read, T::Account)),
        "Microsoft.DocumentDB/databaseAccounts/readMetadata"
    );
    assert_eq!(
        data_action(Operation::new(K::Create, T::Database)),
        "Cosmoguard/databases/create"
    );
    assert_eq!(
        data_action(Operation::new(K::Delete, T::Account)),
        UNSUPPORTED_NAME
    );
    assert_eq!(
        data_action(Operation::new(K::Batch, T::Document)),
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/*"
    );
}

#[test]
fn built_in_roles_resolve_by_name_and_id() {
    let reader = built_in_role("00000000-0000-0000-0000-000000000001").unwrap();
    assert_eq!(reader.name, "Cosmos DB Built-in Data Reader");
    let actions = built_in_role_actions(reader);
    assert_eq!(
        actions,
        READ_METADATA
            .union(ITEMS_READ)
            .union(EXECUTE_QUERY)
            .union(READ_CHANGE_FEED)
    );
    let contributor = built_in_role("cosmos db built-in data contributor").unwrap();
    let actions = built_in_role_actions(contributor);
    assert!(actions.contains_all(ActionSet::range(0, 10)));
    assert!(!actions.intersects(DATABASES_CREATE));
}
