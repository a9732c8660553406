use serde_json::json;

use super::*;
use crate::testing::*;
use crate::{OperationKind as K, Policy};

const DEFINITIONS: &str = include_str!("../../examples/azure/role-definitions.json");
const ASSIGNMENTS: &str = include_str!("../../examples/azure/role-assignments.json");

fn imported() -> (AzureImport, Policy) {
    let imported = import(DEFINITIONS, ASSIGNMENTS).unwrap();
    let policy = Policy::parse(&imported.policy, "imported").unwrap_or_else(|errors| {
        panic!(
            "imported policy does not parse: {errors:?}\n{}",
            imported.policy
        )
    });
    (imported, policy)
}

fn oid(value: &str) -> crate::Principal {
    with_claim(principal("someone"), "oid", json!(value))
}

#[test]
fn example_imports_into_valid_policy() {
    let (imported, policy) = imported();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    assert_eq!(policy.rule_count(), 3);
    assert!(imported.policy.contains("[roles.\"Order Intake\"]"));
    assert!(
        !imported
            .policy
            .contains("[roles.\"Cosmos DB Built-in Data Reader\"]")
    );
    assert!(imported.policy.contains("# Database account: shop-cosmos"));
}

#[test]
fn built_in_reader_assignment_reads_database() {
    let (_, policy) = imported();
    let reader = oid("11111111-aaaa-4bbb-8ccc-000000000001");
    let read = item(K::Read, "dbs/shop/colls/orders/docs/1");
    let decision = policy.decide(&reader, &read, &context());
    assert!(decision.is_allowed());
    assert_eq!(
        decision.rule_id.as_deref(),
        Some("azure-a1b2c3d4-0000-4000-8000-000000000001")
    );
    let write = item(K::Create, "dbs/shop/colls/orders");
    assert!(!policy.decide(&reader, &write, &context()).is_allowed());
}

#[test]
fn built_in_contributor_assignment_is_container_scoped() {
    let (_, policy) = imported();
    let contributor = oid("22222222-aaaa-4bbb-8ccc-000000000002");
    let write = item(K::Upsert, "dbs/shop/colls/orders");
    assert!(policy.decide(&contributor, &write, &context()).is_allowed());
    let other = item(K::Upsert, "dbs/shop/colls/returns");
    assert!(!policy.decide(&contributor, &other, &context()).is_allowed());
    let sproc = crate::testing::request(
        K::Execute,
        crate::ResourceType::StoredProcedure,
        "dbs/shop/colls/orders/sprocs/bulk",
    );
    assert!(policy.decide(&contributor, &sproc, &context()).is_allowed());
}

#[test]
fn custom_role_assignment_keeps_its_actions() {
    let (_, policy) = imported();
    let intake = oid("33333333-aaaa-4bbb-8ccc-000000000003");
    let create = item(K::Create, "dbs/anything/colls/orders");
    assert!(policy.decide(&intake, &create, &context()).is_allowed());
    let delete = item(K::Delete, "dbs/anything/colls/orders/docs/1");
    assert!(!policy.decide(&intake, &delete, &context()).is_allowed());
}

#[test]
fn group_object_id_matches_too() {
    let (_, policy) = imported();
    let mut member = principal("member");
    member.groups = vec!["11111111-aaaa-4bbb-8ccc-000000000001".to_owned()];
    let read = item(K::Read, "dbs/shop/colls/orders/docs/1");
    assert!(policy.decide(&member, &read, &context()).is_allowed());
}

#[test]
fn unknown_principal_gets_nothing() {
    let (_, policy) = imported();
    let read = item(K::Read, "dbs/shop/colls/orders/docs/1");
    assert!(
        !policy
            .decide(
                &oid("99999999-0000-0000-0000-000000000000"),
                &read,
                &context()
            )
            .is_allowed()
    );
}

#[test]
fn unknown_role_definition_is_an_error() {
    let assignments = ASSIGNMENTS.replace(
        "7f3c1d2e-5a4b-4c3d-9e8f-0a1b2c3d4e5f",
        "deadbeef-0000-0000-0000-000000000000",
    );
    let error = import(DEFINITIONS, &assignments).unwrap_err();
    assert!(
        error
            .message
            .contains("deadbeef-0000-0000-0000-000000000000"),
        "{error}"
    );
}

#[test]
fn unknown_data_action_is_left_out_with_warning() {
    let definitions = DEFINITIONS.replace(
        "sqlDatabases/containers/items/create\"",
        "sqlDatabases/containers/items/teleport\"",
    );
    let imported = import(&definitions, ASSIGNMENTS).unwrap();
    assert_eq!(imported.warnings.len(), 1, "{:?}", imported.warnings);
    assert!(imported.warnings[0].contains("items/teleport"));
    assert!(!imported.policy.contains("items/create"));
}

#[test]
fn not_data_actions_are_subtracted() {
    let definitions = DEFINITIONS.replace(
        "\"notDataActions\": []\n      }\n    ],\n    \"resourceGroup\": \"shop-rg\",\n    \"roleName\": \"Order Intake\"",
        "\"notDataActions\": [\"Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery\"]\n      }\n    ],\n    \"resourceGroup\": \"shop-rg\",\n    \"roleName\": \"Order Intake\"",
    );
    assert_ne!(definitions, DEFINITIONS);
    let imported = import(&definitions, ASSIGNMENTS).unwrap();
    let role_section = imported
        .policy
        .split("[roles.\"Order Intake\"]")
        .nth(1)
        .unwrap();
    let actions_line = role_section
        .lines()
        .find(|line| line.starts_with("actions"))
        .unwrap();
    assert!(!actions_line.contains("executeQuery"), "{actions_line}");
    assert!(actions_line.contains("items/read"), "{actions_line}");
}

#[test]
fn two_accounts_are_rejected() {
    let assignments = ASSIGNMENTS.replacen(
        "databaseAccounts/shop-cosmos/dbs/shop\"",
        "databaseAccounts/other-cosmos/dbs/shop\"",
        1,
    );
    let error = import(DEFINITIONS, &assignments).unwrap_err();
    assert!(error.message.contains("two database accounts"), "{error}");
}

#[test]
fn scope_outside_cosmos_is_rejected() {
    let assignments = ASSIGNMENTS.replace(
        "/providers/Microsoft.DocumentDB/databaseAccounts/shop-cosmos\"",
        "/providers/Microsoft.Storage/storageAccounts/x\"",
    );
    assert!(import(DEFINITIONS, &assignments).is_err());
}

#[test]
fn arm_scopes_convert_to_policy_scopes() {
    let base =
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.DocumentDB/databaseAccounts/acc";
    assert_eq!(
        cosmos_scope(base).unwrap(),
        ("acc".to_owned(), "/".to_owned())
    );
    assert_eq!(cosmos_scope(&format!("{base}/")).unwrap().1, "/");
    assert_eq!(cosmos_scope(&format!("{base}/dbs/d")).unwrap().1, "/dbs/d");
    assert_eq!(
        cosmos_scope(&format!("{base}/dbs/d/colls/c")).unwrap().1,
        "/dbs/d/colls/c"
    );
    assert!(cosmos_scope(&format!("{base}/dbs/d/colls")).is_err());
}

#[test]
fn single_objects_are_accepted() {
    let definitions: serde_json::Value = serde_json::from_str(DEFINITIONS).unwrap();
    let assignments: serde_json::Value = serde_json::from_str(ASSIGNMENTS).unwrap();
    let imported = import(&definitions[2].to_string(), &assignments[2].to_string()).unwrap();
    assert!(Policy::parse(&imported.policy, "one").is_ok());
}

#[test]
fn invalid_json_names_the_command() {
    let error = import("{", ASSIGNMENTS).unwrap_err();
    assert!(
        error
            .message
            .contains("az cosmosdb sql role definition list"),
        "{error}"
    );
}
