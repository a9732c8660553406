use serde_json::json;

use super::*;
use crate::testing::*;
use OperationKind as K;
use ResourceType as T;

fn demo() -> Policy {
    match Policy::parse(DEMO_POLICY, "deploy/demo/policy.toml") {
        Ok(policy) => policy,
        Err(errors) => panic!("demo policy does not parse: {errors:?}"),
    }
}

fn decide(policy: &Policy, principal: &Principal, request: &Request) -> Decision {
    policy.decide(principal, request, &context())
}

#[test]
fn demo_policy_parses_without_warnings() {
    let report = check(DEMO_POLICY, "demo");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn orders_app_reads_and_writes_orders() {
    let policy = demo();
    let caller = principal("orders-app");
    for kind in [
        K::Read,
        K::Create,
        K::Upsert,
        K::Replace,
        K::Patch,
        K::Delete,
    ] {
        let request = with_key(item(kind, "dbs/shop/colls/orders/docs/1"), &[json!("a")]);
        let decision = decide(&policy, &caller, &request);
        assert!(decision.is_allowed(), "{kind:?}: {decision:?}");
        assert_eq!(decision.rule_id.as_deref(), Some("orders-app-read-write"));
    }
}

#[test]
fn orders_app_creates_database_and_container() {
    let policy = demo();
    let caller = principal("orders-app");
    let mut database = request(K::Create, T::Database, "");
    database.database = Some("shop".to_owned());
    assert!(decide(&policy, &caller, &database).is_allowed());
    let mut container = request(K::Create, T::Container, "dbs/shop");
    container.container = Some("orders".to_owned());
    assert!(decide(&policy, &caller, &container).is_allowed());
    container.container = Some("other".to_owned());
    assert!(!decide(&policy, &caller, &container).is_allowed());
}

#[test]
fn orders_app_cannot_touch_tenants() {
    let policy = demo();
    let request = with_key(
        item(K::Read, "dbs/shop/colls/tenants/docs/1"),
        &[json!("t1")],
    );
    let decision = decide(&policy, &principal("orders-app"), &request);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.rule_id, None);
    assert_eq!(
        decision.reason,
        "no rule allows read_item on /dbs/shop/colls/tenants/docs/1"
    );
}

#[test]
fn reporting_reads_but_never_writes() {
    let policy = demo();
    let caller = principal("reporting");
    let query = item(K::Query, "dbs/shop/colls/anything");
    assert!(decide(&policy, &caller, &query).is_allowed());
    let read = item(K::Read, "dbs/shop/colls/orders/docs/1");
    assert!(decide(&policy, &caller, &read).is_allowed());
    let write = item(K::Upsert, "dbs/shop/colls/orders");
    assert!(!decide(&policy, &caller, &write).is_allowed());
    let elsewhere = item(K::Read, "dbs/other/colls/orders/docs/1");
    assert!(!decide(&policy, &caller, &elsewhere).is_allowed());
}

#[test]
fn support_agent_write_is_explicitly_denied() {
    let policy = demo();
    let caller = principal("support-agent");
    assert!(decide(&policy, &caller, &item(K::Query, "dbs/shop/colls/orders")).is_allowed());
    for kind in [K::Create, K::Upsert, K::Replace, K::Patch, K::Delete] {
        let decision = decide(
            &policy,
            &caller,
            &item(kind, "dbs/shop/colls/orders/docs/1"),
        );
        assert_eq!(decision.effect, Effect::Deny, "{kind:?}");
        assert_eq!(
            decision.rule_id.as_deref(),
            Some("support-agent-no-writes"),
            "{kind:?}"
        );
    }
}

#[test]
fn tenant_app_is_limited_to_its_partition() {
    let policy = demo();
    let caller = with_claim(principal("tenant-app"), "tid", json!("tenant-a"));
    let own = with_key(
        item(K::Read, "dbs/shop/colls/tenants/docs/1"),
        &[json!("tenant-a")],
    );
    assert!(decide(&policy, &caller, &own).is_allowed());
    let other = with_key(
        item(K::Read, "dbs/shop/colls/tenants/docs/1"),
        &[json!("tenant-b")],
    );
    assert!(!decide(&policy, &caller, &other).is_allowed());
    let cross_partition = item(K::Query, "dbs/shop/colls/tenants");
    assert!(!decide(&policy, &caller, &cross_partition).is_allowed());
    let metadata = request(K::Read, T::Container, "dbs/shop/colls/tenants");
    assert!(decide(&policy, &caller, &metadata).is_allowed());
}

#[test]
fn tenant_app_without_tid_claim_gets_nothing() {
    let policy = demo();
    let caller = principal("tenant-app");
    let request = with_key(item(K::Read, "dbs/shop/colls/tenants/docs/1"), &[json!("")]);
    assert!(!decide(&policy, &caller, &request).is_allowed());
}

#[test]
fn nobody_deletes_shop_database() {
    let policy = demo();
    let request = request(K::Delete, T::Database, "dbs/shop");
    for subject in [
        "orders-app",
        "reporting",
        "support-agent",
        "tenant-app",
        "root",
    ] {
        let decision = decide(&policy, &principal(subject), &request);
        assert_eq!(decision.effect, Effect::Deny, "{subject}");
        assert_eq!(
            decision.rule_id.as_deref(),
            Some("nobody-deletes-shop"),
            "{subject}"
        );
    }
}

#[test]
fn every_demo_app_reads_the_account() {
    let policy = demo();
    let account = request(K::Read, T::Account, "");
    for subject in ["orders-app", "reporting", "support-agent", "tenant-app"] {
        assert!(
            decide(&policy, &principal(subject), &account).is_allowed(),
            "{subject}"
        );
    }
    assert!(!decide(&policy, &principal("stranger"), &account).is_allowed());
}
