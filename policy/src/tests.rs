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

fn parse(text: &str) -> Policy {
    Policy::parse(text, "test.toml").unwrap_or_else(|errors| panic!("{errors:#?}"))
}

const ORDERS_POLICY: &str = r#"
version = 1

[[rules]]
id = "writer"
actions = ["items/*"]
scopes = ["/dbs/shop/colls/orders"]
principal = { subject = "app" }

[[rules]]
id = "no-deletes-of-locked"
effect = "deny"
actions = ["items/delete"]
scopes = ["/dbs/shop/colls/orders"]
items = ["locked-*"]
"#;

#[test]
fn batch_allowed_when_every_operation_is() {
    let policy = parse(ORDERS_POLICY);
    let mut request = with_key(item(K::Batch, "dbs/shop/colls/orders"), &[json!("p")]);
    request.batch = vec![
        batch_op(K::Create, Some("a"), None),
        batch_op(K::Delete, Some("b"), Some(&[json!("q")])),
    ];
    let decision = decide(&policy, &principal("app"), &request);
    assert!(decision.is_allowed(), "{decision:?}");
    assert_eq!(decision.rule_id.as_deref(), Some("writer"));
    assert_eq!(
        decision.reason,
        "all 2 batch operations on /dbs/shop/colls/orders are allowed"
    );
}

#[test]
fn one_denied_batch_operation_denies_all() {
    let policy = parse(ORDERS_POLICY);
    let mut request = item(K::Batch, "dbs/shop/colls/orders");
    request.batch = vec![
        batch_op(K::Create, Some("a"), None),
        batch_op(K::Delete, Some("locked-1"), None),
    ];
    let decision = decide(&policy, &principal("app"), &request);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.rule_id.as_deref(), Some("no-deletes-of-locked"));
    assert_eq!(
        decision.reason,
        "batch operation 1 (delete_item `locked-1` in /dbs/shop/colls/orders) is explicitly denied"
    );
}

#[test]
fn batch_operation_uses_own_partition_key() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "tenant"
actions = ["items/*"]
scopes = ["/"]
principal = { subject = "app" }
partition_key = ["{claims.tid}"]
"#,
    );
    let caller = with_claim(principal("app"), "tid", json!("t1"));
    let mut request = with_key(item(K::Batch, "dbs/shop/colls/orders"), &[json!("t1")]);
    request.batch = vec![
        batch_op(K::Upsert, Some("a"), None),
        batch_op(K::Upsert, Some("b"), Some(&[json!("t2")])),
    ];
    let decision = decide(&policy, &caller, &request);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.rule_id, None);
    assert!(
        decision
            .reason
            .starts_with("no rule allows batch operation 1"),
        "{}",
        decision.reason
    );
    request.batch.pop();
    assert!(decide(&policy, &caller, &request).is_allowed());
}

#[test]
fn empty_batch_is_denied() {
    let policy = parse(ORDERS_POLICY);
    let request = item(K::Batch, "dbs/shop/colls/orders");
    let decision = decide(&policy, &principal("app"), &request);
    assert_eq!(decision.effect, Effect::Deny);
    assert!(decision.reason.contains("has no operations"));
}

#[test]
fn deny_rule_wins_over_allow() {
    let policy = parse(ORDERS_POLICY);
    let locked = item(K::Delete, "dbs/shop/colls/orders/docs/locked-7");
    let decision = decide(&policy, &principal("app"), &locked);
    assert_eq!(decision.rule_id.as_deref(), Some("no-deletes-of-locked"));
    assert_eq!(
        decision.reason,
        "delete_item on /dbs/shop/colls/orders/docs/locked-7 is explicitly denied"
    );
    let open = item(K::Delete, "dbs/shop/colls/orders/docs/open-7");
    assert!(decide(&policy, &principal("app"), &open).is_allowed());
}

#[test]
fn hierarchical_key_matches_leading_components() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "tenant-user"
actions = ["items/read", "executeQuery"]
scopes = ["/dbs/shop/colls/events"]
principal = { subject = "app" }
partition_key = ["{claims.tid}", "user-*"]
"#,
    );
    let caller = with_claim(principal("app"), "tid", json!("t1"));
    let read = |components: &[serde_json::Value]| {
        with_key(item(K::Read, "dbs/shop/colls/events/docs/1"), components)
    };
    assert!(decide(&policy, &caller, &read(&[json!("t1"), json!("user-1")])).is_allowed());
    assert!(
        decide(
            &policy,
            &caller,
            &read(&[json!("t1"), json!("user-1"), json!(3)])
        )
        .is_allowed()
    );
    assert!(!decide(&policy, &caller, &read(&[json!("t1")])).is_allowed());
    assert!(!decide(&policy, &caller, &read(&[json!("t1"), json!("admin")])).is_allowed());
    assert!(!decide(&policy, &caller, &read(&[json!("t2"), json!("user-1")])).is_allowed());
    assert!(!decide(&policy, &caller, &read(&[json!("t1"), json!({})])).is_allowed());
    assert!(!decide(&policy, &caller, &read(&[])).is_allowed());
}

#[test]
fn items_template_limits_ids() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "own-items"
actions = ["items/read"]
scopes = ["/dbs/shop/colls/profiles"]
principal = { issuer = "http://127.0.0.1:*" }
items = ["{subject}-*"]
"#,
    );
    let alice = principal("alice");
    assert!(
        decide(
            &policy,
            &alice,
            &item(K::Read, "dbs/shop/colls/profiles/docs/alice-1")
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &policy,
            &alice,
            &item(K::Read, "dbs/shop/colls/profiles/docs/bob-1")
        )
        .is_allowed()
    );
    let mut elsewhere = principal("alice");
    elsewhere.issuer = "https://login.example.com".to_owned();
    assert!(
        !decide(
            &policy,
            &elsewhere,
            &item(K::Read, "dbs/shop/colls/profiles/docs/alice-1")
        )
        .is_allowed()
    );
}

#[test]
fn resource_ids_limit_stored_procedures() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "run-bulk"
actions = ["executeStoredProcedure"]
scopes = ["/dbs/shop/colls/orders"]
principal = { subject = "app" }
resource_ids = ["bulk-*"]
"#,
    );
    let run = |id: &str| {
        request(
            K::Execute,
            T::StoredProcedure,
            &format!("dbs/shop/colls/orders/sprocs/{id}"),
        )
    };
    assert!(decide(&policy, &principal("app"), &run("bulk-import")).is_allowed());
    assert!(!decide(&policy, &principal("app"), &run("drop-all")).is_allowed());
}

#[test]
fn principal_fields_and_combinators_match() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "readers"
actions = ["items/read"]
scopes = ["/"]
principal = { groups = ["readers", "auditors-*"], not = { claims = { guest = true } } }

[[rules]]
id = "scoped-app"
actions = ["executeQuery"]
scopes = ["/"]
principal = { app_id = "app-1", scopes = ["cosmos.read"], roles = ["Reader"], claims = { tid = ["t1", "t2"], level = { ge = 2 } } }
"#,
    );
    let read = item(K::Read, "dbs/d/colls/c/docs/1");
    let mut auditor = principal("u");
    auditor.groups = vec!["auditors-eu".to_owned()];
    assert!(decide(&policy, &auditor, &read).is_allowed());
    let guest = with_claim(auditor.clone(), "guest", json!(true));
    assert!(!decide(&policy, &guest, &read).is_allowed());
    let mut app = with_claim(
        with_claim(principal("svc"), "tid", json!("t2")),
        "level",
        json!(2),
    );
    app.app_id = Some("app-1".to_owned());
    app.scopes = vec!["cosmos.read".to_owned()];
    app.roles = vec!["Reader".to_owned()];
    let query = item(K::Query, "dbs/d/colls/c");
    assert!(decide(&policy, &app, &query).is_allowed());
    app.roles.clear();
    assert!(!decide(&policy, &app, &query).is_allowed());
}

#[test]
fn when_conditions_from_toml_apply() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "office-hours"
actions = ["executeQuery"]
scopes = ["/"]
principal = { subject = "analyst" }
[rules.when]
days = ["mon", "tue", "wednesday", "thu", "fri"]
hours = "08:00-18:00"
not_after = 2027-01-01T00:00:00Z
source_addresses = ["10.0.0.0/8", "2001:db8::/32"]
single_partition = true
max_item_count = 100
consistency_levels = ["Session", "eventual"]
"#,
    );
    let caller = principal("analyst");
    let mut query = with_key(item(K::Query, "dbs/d/colls/c"), &[json!("p")]);
    query.properties.max_item_count = Some(100);
    query.properties.consistency_level = Some("Eventual".to_owned());
    assert!(decide(&policy, &caller, &query).is_allowed());
    let saturday = Context {
        unix_time: context().unix_time + 3 * 86_400,
        ..context()
    };
    assert!(!policy.decide(&caller, &query, &saturday).is_allowed());
    let evening = Context {
        unix_time: context().unix_time + 7 * 3600,
        ..context()
    };
    assert!(!policy.decide(&caller, &query, &evening).is_allowed());
    let outside = Context {
        source_address: Some("192.0.2.1".parse().unwrap()),
        ..context()
    };
    assert!(!policy.decide(&caller, &query, &outside).is_allowed());
    let next_year = Context {
        unix_time: context().unix_time + 366 * 86_400,
        ..context()
    };
    assert!(!policy.decide(&caller, &query, &next_year).is_allowed());
    query.properties.max_item_count = Some(1000);
    assert!(!decide(&policy, &caller, &query).is_allowed());
}

#[test]
fn time_zone_reads_nested_tables() {
    let policy = parse(
        r#"version = 1
[[rules]]
id = "office-hours"
actions = ["executeQuery"]
scopes = ["/"]
principal = { subject = "analyst" }
[rules.when]
time_zone = "America/New_York"
not_before = 2026-01-28T09:30:00
[[rules.when.any]]
days = ["wed"]
hours = "09:00-17:00"
[[rules.when.any]]
time_zone = "Asia/Tokyo"
days = ["thu"]
hours = "09:00-10:00"
"#,
    );
    let caller = principal("analyst");
    let query = item(K::Query, "dbs/d/colls/c");
    let at = |utc_hour: i64, utc_minute: i64| Context {
        // Midnight UTC of Wednesday 2026-01-28. New York is UTC-5 and Tokyo UTC+9.
        unix_time: 1_769_558_400 + utc_hour * 3600 + utc_minute * 60,
        ..context()
    };
    let allowed = |moment: Context| policy.decide(&caller, &query, &moment).is_allowed();
    // 07:00 in New York and 21:00 in Tokyo.
    assert!(!allowed(at(12, 0)));
    // 09:00 in New York, but before `not_before`, which is New York time too.
    assert!(!allowed(at(14, 0)));
    assert!(allowed(at(14, 30)));
    // 19:30 on Wednesday in New York, 09:30 on Thursday in Tokyo.
    assert!(allowed(at(24, 30)));
    assert!(!allowed(at(25, 30)));
}

#[test]
fn explain_lists_every_rule_with_reason() {
    let policy = demo();
    let caller = principal("support-agent");
    let request = item(K::Delete, "dbs/shop/colls/orders/docs/1");
    let explanation = policy.explain(&caller, &request, &context());

    assert_eq!(explanation.decision, decide(&policy, &caller, &request));
    let [operation] = explanation.operations.as_slice() else {
        panic!("one operation expected")
    };
    assert_eq!(
        operation.required_actions,
        vec![data_action(request.operation)]
    );
    assert_eq!(operation.rules.len(), policy.rule_count());

    let by_id = |id: &str| operation.rules.iter().find(|r| r.rule_id == id).unwrap();
    assert!(by_id("support-agent-no-writes").applies);
    assert_eq!(
        by_id("support-agent-read-orders").reason,
        "action not granted: the operation needs Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete"
    );
    let writer = by_id("orders-app-read-write");
    assert_eq!(
        writer.reason,
        "principal mismatch: subject matches `orders-app` is false (caller: `support-agent`)"
    );
    assert!(
        by_id("tenant-app-own-partition")
            .reason
            .starts_with("scope mismatch")
    );

    let text = explanation.to_string();
    assert!(
        text.starts_with("decision: deny by support-agent-no-writes"),
        "{text}"
    );
}

#[test]
fn explain_names_partition_and_condition_mismatches() {
    let policy = demo();
    let caller = with_claim(principal("tenant-app"), "tid", json!("t1"));
    let request = with_key(
        item(K::Read, "dbs/shop/colls/tenants/docs/1"),
        &[json!("t2")],
    );
    let explanation = policy.explain(&caller, &request, &context());
    let rule = explanation.operations[0]
        .rules
        .iter()
        .find(|r| r.rule_id == "tenant-app-own-partition")
        .unwrap();
    assert_eq!(
        rule.reason,
        "partition key mismatch: `[\"t2\"]` does not match [`{claims.tid}`]"
    );
}

#[test]
fn explain_covers_batch_operations() {
    let policy = parse(ORDERS_POLICY);
    let mut request = item(K::Batch, "dbs/shop/colls/orders");
    request.batch = vec![
        batch_op(K::Read, Some("a"), None),
        batch_op(K::Delete, Some("locked-1"), None),
    ];
    let explanation = policy.explain(&principal("app"), &request, &context());
    assert_eq!(explanation.operations.len(), 2);
    assert_eq!(explanation.operations[1].batch_index, Some(1));
    assert!(explanation.operations[1].rules[1].applies);
}

#[test]
fn unsupported_operation_is_denied() {
    let policy = parse(
        "version = 1\n[[rules]]\nid = \"all\"\nactions = [\"*\"]\nscopes = [\"/\"]\nprincipal = { subject = \"root\" }\n",
    );
    let decision = decide(
        &policy,
        &principal("root"),
        &request(K::Delete, T::Account, ""),
    );
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(
        decision.reason,
        "delete_account on the account is not an operation that Cosmoguard policy can allow"
    );
    assert!(
        decide(
            &policy,
            &principal("root"),
            &request(K::Delete, T::Database, "dbs/x")
        )
        .is_allowed()
    );
}

#[test]
fn policy_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Policy>();
}

#[test]
fn production_policy_parses_without_warnings() {
    let report = check(PRODUCTION_POLICY, "deploy/policy.toml");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[test]
fn indexed_decisions_match_linear_scan() {
    let mut text = String::from("version = 1\n");
    for i in 0..200 {
        let effect = if i % 17 == 0 { "deny" } else { "allow" };
        let _ = std::fmt::Write::write_fmt(
            &mut text,
            format_args!(
                "[[rules]]\nid = \"r{i}\"\neffect = \"{effect}\"\nactions = [\"items/read\", \"executeQuery\"]\nscopes = [\"/dbs/db{}/colls/c{}\", \"/dbs/db-*\"]\nprincipal = {{ subject = \"app{}\" }}\n",
                i % 7,
                i % 5,
                i % 11
            ),
        );
    }
    let policy = parse(&text);
    for subject in 0..12 {
        for database in ["db0", "db3", "db-x", "other"] {
            for container in 0..6 {
                let caller = principal(&format!("app{subject}"));
                let request = item(
                    K::Read,
                    &format!("dbs/{database}/colls/c{container}/docs/1"),
                );
                let decision = decide(&policy, &caller, &request);
                let expected = linear_decision(&policy, &caller, &request);
                assert_eq!(
                    decision.effect, expected.0,
                    "{subject} {database} {container}"
                );
                assert_eq!(
                    decision.rule_id, expected.1,
                    "{subject} {database} {container}"
                );
            }
        }
    }
}

/// Decides by scanning every rule through `explain`, without the index.
fn linear_decision(
    policy: &Policy,
    principal: &Principal,
    request: &Request,
) -> (Effect, Option<String>) {
    let explanation = policy.explain(principal, request, &context());
    let rules = &explanation.operations[0].rules;
    let first = |effect| {
        rules
            .iter()
            .find(|r| r.applies && r.effect == effect)
            .map(|r| r.rule_id.clone())
    };
    match (first(Effect::Deny), first(Effect::Allow)) {
        (Some(deny), _) => (Effect::Deny, Some(deny)),
        (None, Some(allow)) => (Effect::Allow, Some(allow)),
        (None, None) => (Effect::Deny, None),
    }
}

#[test]
fn batch_with_query_operation_is_denied() {
    let policy = parse(ORDERS_POLICY);
    let mut request = item(K::Batch, "dbs/shop/colls/orders");
    request.batch = vec![
        batch_op(K::Read, Some("a"), None),
        batch_op(K::Query, None, None),
    ];
    let decision = decide(&policy, &principal("app"), &request);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(
        decision.reason,
        "batch operation 1 (query_item in /dbs/shop/colls/orders) is not an item operation that a batch may contain"
    );
}

#[test]
fn container_throughput_rule_matches_offer() {
    let text = r#"
version = 1

[[rules]]
id = "orders-throughput"
actions = ["throughput/replace"]
scopes = ["/dbs/shop/colls/orders"]
principal = { subject = "capacity-bot" }

[[rules]]
id = "shop-throughput-reads"
actions = ["throughput/read"]
scopes = ["/dbs/shop"]
principal = { subject = "capacity-bot" }
"#;
    let policy = Policy::parse(text, "throughput.toml").unwrap();
    let caller = principal("capacity-bot");
    let offer = |kind, container: Option<&str>| {
        let mut offer = request(kind, T::Offer, "offers/XYZ1");
        offer.resource_id = Some("XYZ1".to_owned());
        offer.database = Some("shop".to_owned());
        offer.container = container.map(str::to_owned);
        offer
    };

    let orders = decide(&policy, &caller, &offer(K::Replace, Some("orders")));
    assert!(orders.is_allowed(), "{orders:?}");
    assert_eq!(orders.rule_id.as_deref(), Some("orders-throughput"));
    assert!(!decide(&policy, &caller, &offer(K::Replace, Some("tenants"))).is_allowed());
    assert!(!decide(&policy, &caller, &offer(K::Replace, None)).is_allowed());

    let shared = decide(&policy, &caller, &offer(K::Read, None));
    assert_eq!(shared.rule_id.as_deref(), Some("shop-throughput-reads"));
    let mut unscoped = offer(K::Read, None);
    unscoped.database = None;
    assert!(!decide(&policy, &caller, &unscoped).is_allowed());
}

#[test]
fn operation_names_match_display() {
    for kind in OperationKind::ALL {
        for resource_type in ResourceType::ALL {
            let operation = Operation::new(kind, resource_type);
            assert_eq!(operation.name(), operation.to_string());
        }
    }
    let read_item = Operation::new(OperationKind::Read, ResourceType::Document);
    assert_eq!(read_item.name(), "read_item");
    let query_containers = Operation::new(OperationKind::Query, ResourceType::Container);
    assert_eq!(query_containers.name(), "query_containers");
}
