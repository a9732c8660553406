//! Property tests of the decision rules over generated policies and requests.

use cosmoguard_policy::{
    Context, Effect, Operation, OperationKind, PartitionKey, Policy, Principal, Request,
    RequestProperties, ResourceType,
};
use proptest::prelude::*;
use serde_json::json;

const ACTIONS: [&str; 8] = [
    "items/read",
    "items/create",
    "items/upsert",
    "items/replace",
    "items/delete",
    "executeQuery",
    "items/*",
    "*",
];
const SCOPES: [&str; 6] = [
    "/",
    "/dbs/d1",
    "/dbs/d*",
    "/dbs/d1/colls/c1",
    "/dbs/d2/colls/c*",
    "/dbs/d3",
];
const SUBJECTS: [&str; 3] = ["a", "b", "c"];
const KINDS: [OperationKind; 7] = [
    OperationKind::Read,
    OperationKind::Create,
    OperationKind::Upsert,
    OperationKind::Replace,
    OperationKind::Patch,
    OperationKind::Delete,
    OperationKind::Query,
];

#[derive(Clone, Debug)]
struct RuleSpec {
    deny: bool,
    actions: Vec<usize>,
    scope: usize,
    subject: Option<usize>,
    partition_key: Option<bool>,
    items: bool,
}

#[derive(Clone, Debug)]
struct RequestSpec {
    subject: usize,
    database: usize,
    container: usize,
    kind: usize,
    partition: Option<usize>,
    item: usize,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        any::<bool>(),
        prop::collection::vec(0..ACTIONS.len(), 1..3),
        0..SCOPES.len(),
        prop::option::of(0..SUBJECTS.len()),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(
            |(deny, actions, scope, subject, partition_key, items)| RuleSpec {
                deny,
                actions,
                scope,
                subject,
                partition_key,
                items,
            },
        )
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        0..3usize,
        0..3usize,
        0..2usize,
        0..KINDS.len(),
        prop::option::of(0..2usize),
        0..2usize,
    )
        .prop_map(
            |(subject, database, container, kind, partition, item)| RequestSpec {
                subject,
                database,
                container,
                kind,
                partition,
                item,
            },
        )
}

fn render_rule(index: usize, rule: &RuleSpec) -> String {
    let actions: Vec<String> = rule
        .actions
        .iter()
        .map(|a| format!("\"{}\"", ACTIONS[*a]))
        .collect();
    let mut text = format!(
        "[[rules]]\nid = \"r{index}\"\neffect = \"{}\"\nactions = [{}]\nscopes = [\"{}\"]\n",
        if rule.deny { "deny" } else { "allow" },
        actions.join(", "),
        SCOPES[rule.scope]
    );
    if let Some(subject) = rule.subject {
        text.push_str(&format!(
            "principal = {{ subject = \"{}\" }}\n",
            SUBJECTS[subject]
        ));
    }
    match rule.partition_key {
        Some(true) => text.push_str("partition_key = [\"{claims.tid}\"]\n"),
        Some(false) => text.push_str("partition_key = [\"p1\"]\n"),
        None => {}
    }
    if rule.items {
        text.push_str("items = [\"x-*\"]\n");
    }
    text
}

fn render(rules: &[(usize, &RuleSpec)]) -> String {
    let mut text = String::from("version = 1\n");
    for (id, rule) in rules {
        text.push_str(&render_rule(*id, rule));
    }
    text
}

fn build_policy(rules: &[RuleSpec]) -> Policy {
    let numbered: Vec<(usize, &RuleSpec)> = rules.iter().enumerate().collect();
    Policy::parse(&render(&numbered), "generated")
        .unwrap_or_else(|errors| panic!("generated policy is invalid: {errors:?}"))
}

fn principal(spec: &RequestSpec) -> Principal {
    let subject = SUBJECTS[spec.subject];
    Principal {
        issuer: "http://127.0.0.1:1".to_owned(),
        subject: subject.to_owned(),
        claims: serde_json::Map::from_iter([("tid".to_owned(), json!("p2"))]),
        ..Principal::default()
    }
}

fn request(spec: &RequestSpec) -> Request {
    let kind = KINDS[spec.kind];
    let database = ["d1", "d2", "d3"][spec.database];
    let container = ["c1", "c2"][spec.container];
    let item = ["i1", "x-1"][spec.item];
    let point = !matches!(
        kind,
        OperationKind::Create | OperationKind::Upsert | OperationKind::Query
    );
    let link = if point {
        format!("dbs/{database}/colls/{container}/docs/{item}")
    } else {
        format!("dbs/{database}/colls/{container}")
    };
    let partition_key = spec.partition.map(|p| {
        let value = json!(["p1", "p2"][p]);
        PartitionKey {
            raw: format!("[{value}]"),
            components: vec![value],
        }
    });
    Request {
        operation: Operation::new(kind, ResourceType::Document),
        resource_link: link,
        database: Some(database.to_owned()),
        container: Some(container.to_owned()),
        resource_id: point.then(|| item.to_owned()),
        partition_key,
        batch: Vec::new(),
        properties: RequestProperties::default(),
    }
}

fn context() -> Context {
    Context {
        source_address: None,
        unix_time: 1_769_601_600,
    }
}

fn effect(policy: &Policy, spec: &RequestSpec) -> Effect {
    policy
        .decide(&principal(spec), &request(spec), &context())
        .effect
}

/// Principal matchers for the index property: exact values the index files rules under,
/// and globs, negations, claims and `any` mixes that it must leave unindexed.
const PRINCIPALS: [&str; 12] = [
    "{ subject = \"a\" }",
    "{ subject = \"*\" }",
    "{ groups = [\"g1\"] }",
    "{ groups = [\"g1\", \"g2\"] }",
    "{ groups = [\"g*\"] }",
    "{ groups = [\"g2\"], subject = \"a\" }",
    "{ roles = [\"Reader\"] }",
    "{ app_id = \"app-1\" }",
    "{ not = { groups = [\"g3\"] } }",
    "{ any = [{ groups = [\"g1\"] }, { roles = [\"Reader\"] }] }",
    "{ any = [{ groups = [\"g3\"] }, { claims = { tid = \"p2\" } }] }",
    "{ groups = [\"g2\"], not = { subject = \"c\" } }",
];
const GROUPS: [&str; 3] = ["g1", "g2", "g3"];

#[derive(Clone, Debug)]
struct CallerSpec {
    /// Bit `i` set means the caller is in `GROUPS[i]`.
    groups: u8,
    reader: bool,
    app: bool,
}

fn render_principal_rule(index: usize, rule: &RuleSpec, principal: Option<usize>) -> String {
    let mut text = render_rule(
        index,
        &RuleSpec {
            subject: None,
            ..rule.clone()
        },
    );
    if let Some(principal) = principal {
        text.push_str(&format!("principal = {}\n", PRINCIPALS[principal]));
    }
    text
}

fn caller(spec: &RequestSpec, caller: &CallerSpec) -> Principal {
    let mut principal = principal(spec);
    principal.groups = GROUPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| caller.groups & (1 << bit) != 0)
        .map(|(_, group)| (*group).to_owned())
        .collect();
    if caller.reader {
        principal.roles = vec!["Reader".to_owned()];
    }
    if caller.app {
        principal.app_id = Some("app-1".to_owned());
    }
    principal
}

/// Decides by testing every rule in file order, as `explain` reports them: the first deny
/// rule that applies, else the first allow rule, else no rule.
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
            .find(|rule| rule.applies && rule.effect == effect)
            .map(|rule| rule.rule_id.clone())
    };
    match (first(Effect::Deny), first(Effect::Allow)) {
        (Some(deny), _) => (Effect::Deny, Some(deny)),
        (None, Some(allow)) => (Effect::Allow, Some(allow)),
        (None, None) => (Effect::Deny, None),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deny_always_wins(
        rules in prop::collection::vec(rule_spec(), 0..12),
        spec in request_spec(),
    ) {
        let policy = build_policy(&rules);
        let explanation = policy.explain(&principal(&spec), &request(&spec), &context());
        let any_deny_applies = explanation.operations[0]
            .rules
            .iter()
            .any(|rule| rule.applies && rule.effect == Effect::Deny);
        if any_deny_applies {
            prop_assert_eq!(explanation.decision.effect, Effect::Deny);
        }
        let mut with_deny = rules.clone();
        with_deny.push(RuleSpec { deny: true, actions: vec![7], scope: 0, subject: None, partition_key: None, items: false });
        prop_assert_eq!(effect(&build_policy(&with_deny), &spec), Effect::Deny);
    }

    #[test]
    fn adding_allow_never_removes_access(
        rules in prop::collection::vec(rule_spec(), 0..12),
        extra in rule_spec(),
        spec in request_spec(),
    ) {
        let before = effect(&build_policy(&rules), &spec);
        let mut more = rules.clone();
        more.push(RuleSpec { deny: false, ..extra });
        let after = effect(&build_policy(&more), &spec);
        if before == Effect::Allow {
            prop_assert_eq!(after, Effect::Allow);
        }
    }

    #[test]
    fn decision_ignores_rule_order(
        rules in prop::collection::vec(rule_spec(), 0..12),
        seed in any::<u64>(),
        spec in request_spec(),
    ) {
        let numbered: Vec<(usize, &RuleSpec)> = rules.iter().enumerate().collect();
        let mut shuffled = numbered.clone();
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let original = Policy::parse(&render(&numbered), "original").unwrap();
        let reordered = Policy::parse(&render(&shuffled), "shuffled").unwrap();
        let first = original.decide(&principal(&spec), &request(&spec), &context());
        let second = reordered.decide(&principal(&spec), &request(&spec), &context());
        prop_assert_eq!(first.effect, second.effect);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = Policy::parse(&text, "arbitrary");
    }

    #[test]
    fn parse_never_panics_on_mutated_policy(
        position in 0usize..4000,
        insert in "[\\[\\]{}\"=*,./a-z0-9\n ]{0,8}",
        cut in 0usize..20,
    ) {
        let base = include_str!("../../deploy/policy.toml");
        let mut start = position.min(base.len());
        while !base.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + cut).min(base.len());
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        let mutated = format!("{}{}{}", &base[..start], insert, &base[end..]);
        let _ = Policy::parse(&mutated, "mutated");
    }

    #[test]
    fn indexed_decision_matches_linear_scan(
        rules in prop::collection::vec(
            (rule_spec(), prop::option::of(0..PRINCIPALS.len())),
            0..16,
        ),
        spec in request_spec(),
        groups in 0u8..8,
        reader in any::<bool>(),
        app in any::<bool>(),
    ) {
        let mut text = String::from("version = 1\n");
        for (index, (rule, principal)) in rules.iter().enumerate() {
            text.push_str(&render_principal_rule(index, rule, *principal));
        }
        let policy = Policy::parse(&text, "generated").unwrap();
        let principal = caller(&spec, &CallerSpec { groups, reader, app });
        let request = request(&spec);
        let decision = policy.decide(&principal, &request, &context());
        let expected = linear_decision(&policy, &principal, &request);
        prop_assert_eq!((decision.effect, decision.rule_id), expected);
    }
}
