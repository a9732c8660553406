use serde_json::json;

use super::*;
use crate::testing::*;
use crate::{OperationKind as K, Policy};

fn parse(text: &str) -> Policy {
    Policy::parse(text, "test.toml").unwrap_or_else(|errors| panic!("{errors:#?}"))
}

/// Writes one allow rule for `items/read` on database `shop`.
fn read_rule(id: &str, principal: &str) -> String {
    format!(
        "[[rules]]\nid = \"{id}\"\nactions = [\"items/read\"]\nscopes = [\"/dbs/shop\"]\nprincipal = {principal}\n"
    )
}

fn policy_of(rules: &[String]) -> Policy {
    parse(&format!("version = 1\n{}", rules.concat()))
}

fn member_of(groups: &[&str]) -> Principal {
    let mut caller = principal("user");
    caller.groups = groups.iter().map(|group| (*group).to_owned()).collect();
    caller
}

fn read() -> Request {
    item(K::Read, "dbs/shop/colls/orders/docs/1")
}

/// Returns the ids of the allow rules that the index offers for the request, in list order.
fn allow_candidates(policy: &Policy, caller: &Principal, request: &Request) -> Vec<String> {
    let engine = &policy.engine;
    let Requirement::Actions(required) = action::requirement(request.operation) else {
        panic!("{request:?} needs no action");
    };
    let target = request_target(request, required);
    let bit = target.required.first_index().unwrap();
    engine.buckets[bit]
        .allow
        .candidates(caller, target.database)
        .flatten()
        .map(|index| engine.rules[*index as usize].id.to_string())
        .collect()
}

fn decided_by(policy: &Policy, caller: &Principal, request: &Request) -> (Effect, Option<String>) {
    let decision = policy.decide(caller, request, &context());
    (decision.effect, decision.rule_id)
}

#[test]
fn group_rule_found_for_member() {
    let policy = policy_of(&[read_rule("readers", "{ groups = [\"readers\"] }")]);
    let caller = member_of(&["staff", "readers"]);
    assert_eq!(allow_candidates(&policy, &caller, &read()), ["readers"]);
    assert_eq!(
        decided_by(&policy, &caller, &read()),
        (Effect::Allow, Some("readers".to_owned()))
    );
}

#[test]
fn group_rule_skipped_for_non_member() {
    let policy = policy_of(&[read_rule("readers", "{ groups = [\"readers\"] }")]);
    let caller = member_of(&["writers"]);
    assert!(allow_candidates(&policy, &caller, &read()).is_empty());
    assert!(allow_candidates(&policy, &principal("user"), &read()).is_empty());
    assert_eq!(decided_by(&policy, &caller, &read()), (Effect::Deny, None));
}

#[test]
fn multi_group_rule_listed_per_group() {
    let policy = policy_of(&[read_rule("staff", "{ groups = [\"eu\", \"us\"] }")]);
    for groups in [&["eu"][..], &["us"], &["us", "eu"]] {
        let caller = member_of(groups);
        assert_eq!(
            allow_candidates(&policy, &caller, &read()).len(),
            groups.len(),
            "{groups:?}"
        );
        assert!(
            policy.decide(&caller, &read(), &context()).is_allowed(),
            "{groups:?}"
        );
    }
    assert!(
        !policy
            .decide(&member_of(&["asia"]), &read(), &context())
            .is_allowed()
    );
}

#[test]
fn deny_group_rule_wins_over_earlier_allow() {
    let deny = "[[rules]]\nid = \"no-contractors\"\neffect = \"deny\"\nactions = [\"items/*\"]\nscopes = [\"/\"]\nprincipal = { groups = [\"contractors\"] }\n";
    let policy = policy_of(&[
        read_rule("staff", "{ groups = [\"staff\"] }"),
        deny.to_owned(),
    ]);
    assert_eq!(
        decided_by(&policy, &member_of(&["staff", "contractors"]), &read()),
        (Effect::Deny, Some("no-contractors".to_owned()))
    );
    assert_eq!(
        decided_by(&policy, &member_of(&["staff"]), &read()),
        (Effect::Allow, Some("staff".to_owned()))
    );
}

#[test]
fn not_around_group_stays_unindexed() {
    let policy = policy_of(&[read_rule(
        "no-guests",
        "{ not = { groups = [\"guests\"] } }",
    )]);
    let guest = member_of(&["guests"]);
    let staff = member_of(&["staff"]);
    assert_eq!(allow_candidates(&policy, &staff, &read()), ["no-guests"]);
    assert_eq!(allow_candidates(&policy, &guest, &read()), ["no-guests"]);
    assert!(policy.decide(&staff, &read(), &context()).is_allowed());
    assert!(
        policy
            .decide(&principal("user"), &read(), &context())
            .is_allowed()
    );
    assert!(!policy.decide(&guest, &read(), &context()).is_allowed());
}

#[test]
fn any_of_groups_filed_under_each_branch() {
    let policy = policy_of(&[read_rule(
        "either",
        "{ any = [{ groups = [\"a\"] }, { groups = [\"b\"] }] }",
    )]);
    assert_eq!(
        allow_candidates(&policy, &member_of(&["a"]), &read()),
        ["either"]
    );
    assert_eq!(
        allow_candidates(&policy, &member_of(&["b"]), &read()),
        ["either"]
    );
    assert!(allow_candidates(&policy, &member_of(&["c"]), &read()).is_empty());
    assert!(
        policy
            .decide(&member_of(&["b"]), &read(), &context())
            .is_allowed()
    );
    assert!(
        !policy
            .decide(&member_of(&["c"]), &read(), &context())
            .is_allowed()
    );
}

#[test]
fn any_with_claim_branch_stays_unindexed() {
    let policy = policy_of(&[read_rule(
        "group-or-level",
        "{ any = [{ groups = [\"a\"] }, { claims = { level = { ge = 2 } } }] }",
    )]);
    let senior = with_claim(principal("user"), "level", json!(3));
    assert_eq!(
        allow_candidates(&policy, &senior, &read()),
        ["group-or-level"]
    );
    assert!(policy.decide(&senior, &read(), &context()).is_allowed());
    assert!(
        policy
            .decide(&member_of(&["a"]), &read(), &context())
            .is_allowed()
    );
    assert!(
        !policy
            .decide(&member_of(&["b"]), &read(), &context())
            .is_allowed()
    );
}

#[test]
fn group_glob_stays_unindexed() {
    let policy = policy_of(&[read_rule("auditors", "{ groups = [\"auditors-*\"] }")]);
    let caller = member_of(&["auditors-eu"]);
    assert_eq!(allow_candidates(&policy, &caller, &read()), ["auditors"]);
    assert!(policy.decide(&caller, &read(), &context()).is_allowed());
    assert!(
        !policy
            .decide(&member_of(&["staff"]), &read(), &context())
            .is_allowed()
    );
}

#[test]
fn group_and_negated_claim_filed_under_group() {
    let policy = policy_of(&[read_rule(
        "members",
        "{ groups = [\"staff\"], not = { claims = { guest = true } } }",
    )]);
    let staff = member_of(&["staff"]);
    let guest = with_claim(staff.clone(), "guest", json!(true));
    assert!(allow_candidates(&policy, &member_of(&["other"]), &read()).is_empty());
    assert!(policy.decide(&staff, &read(), &context()).is_allowed());
    assert!(!policy.decide(&guest, &read(), &context()).is_allowed());
}

#[test]
fn lowest_numbered_rule_wins_across_lists() {
    let by_database = read_rule("by-database", "{ subject = \"user*\" }");
    let by_group = read_rule("by-group", "{ groups = [\"staff\"] }");
    let caller = member_of(&["staff"]);
    let first = policy_of(&[by_database.clone(), by_group.clone()]);
    assert_eq!(
        decided_by(&first, &caller, &read()),
        (Effect::Allow, Some("by-database".to_owned()))
    );
    let second = policy_of(&[by_group, by_database]);
    assert_eq!(
        decided_by(&second, &caller, &read()),
        (Effect::Allow, Some("by-group".to_owned()))
    );
}

#[test]
fn lowest_numbered_rule_wins_among_caller_groups() {
    let policy = policy_of(&[
        read_rule("first", "{ groups = [\"b\"] }"),
        read_rule("second", "{ groups = [\"a\"] }"),
    ]);
    let caller = member_of(&["a", "b"]);
    assert_eq!(
        allow_candidates(&policy, &caller, &read()),
        ["second", "first"]
    );
    assert_eq!(
        decided_by(&policy, &caller, &read()),
        (Effect::Allow, Some("first".to_owned()))
    );
}

#[test]
fn roles_app_id_and_scopes_indexed() {
    let policy = policy_of(&[
        read_rule("by-role", "{ roles = [\"Reader\"] }"),
        read_rule("by-app", "{ app_id = \"app-1\" }"),
        read_rule("by-scope", "{ scopes = [\"cosmos.read\"] }"),
    ]);
    let mut reader = principal("user");
    reader.roles = vec!["Reader".to_owned()];
    let mut app = principal("user");
    app.app_id = Some("app-1".to_owned());
    let mut scoped = principal("user");
    scoped.scopes = vec!["cosmos.read".to_owned()];
    assert_eq!(allow_candidates(&policy, &reader, &read()), ["by-role"]);
    assert_eq!(allow_candidates(&policy, &app, &read()), ["by-app"]);
    assert_eq!(allow_candidates(&policy, &scoped, &read()), ["by-scope"]);
    assert!(allow_candidates(&policy, &principal("user"), &read()).is_empty());
    assert_eq!(
        decided_by(&policy, &scoped, &read()),
        (Effect::Allow, Some("by-scope".to_owned()))
    );
}

#[test]
fn lowest_applying_respects_bound() {
    let lists: [&[u32]; 3] = [&[1, 4, 9], &[2, 6], &[3, 7]];
    let applies = |index: u32| index.is_multiple_of(3);
    assert_eq!(lowest_applying(lists.into_iter(), None, applies), Some(3));
    assert_eq!(
        lowest_applying(lists.into_iter(), Some(2), applies),
        Some(2)
    );
    let mut tested = Vec::new();
    let found = lowest_applying(lists.into_iter(), Some(5), |index| {
        tested.push(index);
        false
    });
    assert_eq!(found, Some(5));
    assert_eq!(tested, [1, 4, 2, 3]);
}
