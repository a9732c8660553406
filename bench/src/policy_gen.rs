//! One description of a policy, written both as a Cosmoguard policy and as Cedar, and the
//! requests both engines decide in the benches.
//!
//! A policy of `n` rules cycles through four rule shapes, so the Cosmoguard index cannot
//! skip them all: an allow for one exact subject on one container, an allow for a group on
//! one database, an allow for a subject glob on a container glob of one database, and a
//! deny for one subject on the whole account. Every rule names an exact subject, an exact
//! group or an exact database, so the index narrows each decision to the rules of the
//! caller's subject and groups and of the request's database. The last rule lets the
//! load-test caller (`bench-client`) do everything on database `bench`.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// The subject of the tokens the load suite mints.
pub const BENCH_SUBJECT: &str = "bench-client";
/// The database the load suite reads and writes.
pub const BENCH_DATABASE: &str = "bench";

const ITEM_ACTIONS: [&str; 5] = [
    "items/create",
    "items/read",
    "items/replace",
    "items/upsert",
    "items/delete",
];

/// The callers a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalSpec {
    Subject(String),
    SubjectGlob(String),
    Group(String),
}

/// The resources a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeSpec {
    Account,
    Database(String),
    Container {
        database: String,
        container: String,
    },
    /// A container name pattern (`*` globs) inside one database.
    ContainerGlob {
        database: String,
        pattern: String,
    },
}

/// One rule of the description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub id: String,
    pub allow: bool,
    pub principal: PrincipalSpec,
    pub scope: ScopeSpec,
    /// Short action names, as the Cosmoguard policy format writes them.
    pub actions: Vec<&'static str>,
}

/// Describes a policy of `rule_count` rules (at least one).
pub fn describe(rule_count: usize) -> Vec<RuleSpec> {
    let mut rules: Vec<RuleSpec> = (0..rule_count.saturating_sub(1))
        .map(describe_rule)
        .collect();
    let mut actions = vec![
        "readMetadata",
        "executeQuery",
        "readChangeFeed",
        "executeStoredProcedure",
    ];
    actions.extend(ITEM_ACTIONS);
    rules.push(RuleSpec {
        id: "bench-client-all".to_owned(),
        allow: true,
        principal: PrincipalSpec::Subject(BENCH_SUBJECT.to_owned()),
        scope: ScopeSpec::Database(BENCH_DATABASE.to_owned()),
        actions,
    });
    rules
}

fn describe_rule(index: usize) -> RuleSpec {
    let database = format!("db{}", index % 10);
    let id = format!("rule-{index:04}");
    match index % 4 {
        0 => RuleSpec {
            id,
            allow: true,
            principal: PrincipalSpec::Subject(format!("app-{index}")),
            scope: ScopeSpec::Container {
                database,
                container: format!("c{index}"),
            },
            actions: vec!["items/read", "items/upsert", "executeQuery"],
        },
        1 => RuleSpec {
            id,
            allow: true,
            principal: PrincipalSpec::Group(group_name(index)),
            scope: ScopeSpec::Database(database),
            actions: vec![
                "readMetadata",
                "items/read",
                "executeQuery",
                "readChangeFeed",
            ],
        },
        2 => RuleSpec {
            id,
            allow: true,
            principal: PrincipalSpec::SubjectGlob(format!("svc-{index}-*")),
            scope: ScopeSpec::ContainerGlob {
                database,
                pattern: format!("tenant-{index}-*"),
            },
            actions: ITEM_ACTIONS.to_vec(),
        },
        _ => RuleSpec {
            id,
            allow: false,
            principal: PrincipalSpec::Subject(format!("blocked-{index}")),
            scope: ScopeSpec::Account,
            actions: vec!["items/delete"],
        },
    }
}

fn group_name(index: usize) -> String {
    format!("group-{index}")
}

/// Writes the rules as a Cosmoguard policy (TOML, version 1).
pub fn to_toml(rules: &[RuleSpec]) -> String {
    let mut text = String::from("version = 1\n");
    for rule in rules {
        let effect = if rule.allow { "allow" } else { "deny" };
        let actions: Vec<String> = rule
            .actions
            .iter()
            .map(|action| format!("{action:?}"))
            .collect();
        let scope = match &rule.scope {
            ScopeSpec::Account => "/".to_owned(),
            ScopeSpec::Database(name) => format!("/dbs/{name}"),
            ScopeSpec::Container {
                database,
                container,
            } => format!("/dbs/{database}/colls/{container}"),
            ScopeSpec::ContainerGlob { database, pattern } => {
                format!("/dbs/{database}/colls/{pattern}")
            }
        };
        let principal = match &rule.principal {
            PrincipalSpec::Subject(subject) | PrincipalSpec::SubjectGlob(subject) => {
                format!("{{ subject = {subject:?} }}")
            }
            PrincipalSpec::Group(group) => format!("{{ groups = [{group:?}] }}"),
        };
        let _ = write!(
            text,
            "\n[[rules]]\nid = {id:?}\neffect = \"{effect}\"\nactions = [{actions}]\nscopes = [{scope:?}]\nprincipal = {principal}\n",
            id = rule.id,
            actions = actions.join(", "),
        );
    }
    text
}

/// Writes the rules as Cedar policies in namespace `Cosmoguard`. Documents are children of
/// their container and containers of their database, so `resource in` covers a scope and
/// everything below it, as a Cosmoguard scope does.
pub fn to_cedar(rules: &[RuleSpec]) -> String {
    let mut text = String::new();
    for rule in rules {
        let effect = if rule.allow { "permit" } else { "forbid" };
        let mut conditions = Vec::new();
        let principal = match &rule.principal {
            PrincipalSpec::Subject(subject) => {
                format!("principal == Cosmoguard::User::{subject:?}")
            }
            PrincipalSpec::Group(group) => format!("principal in Cosmoguard::Group::{group:?}"),
            PrincipalSpec::SubjectGlob(pattern) => {
                conditions.push(format!("principal.subject like {pattern:?}"));
                "principal".to_owned()
            }
        };
        let resource = match &rule.scope {
            ScopeSpec::Account => "resource".to_owned(),
            ScopeSpec::Database(name) => format!("resource in Cosmoguard::Database::{name:?}"),
            ScopeSpec::Container {
                database,
                container,
            } => {
                format!("resource in Cosmoguard::Container::\"{database}/{container}\"")
            }
            ScopeSpec::ContainerGlob { database, pattern } => {
                conditions.push(format!(
                    "resource has container && resource.container like {pattern:?}"
                ));
                format!("resource in Cosmoguard::Database::{database:?}")
            }
        };
        let actions: Vec<String> = rule
            .actions
            .iter()
            .map(|action| format!("Cosmoguard::Action::{action:?}"))
            .collect();
        let _ = write!(
            text,
            "@id({id:?})\n{effect} (\n  {principal},\n  action in [{actions}],\n  {resource}\n)",
            id = rule.id,
            actions = actions.join(", "),
        );
        if !conditions.is_empty() {
            let _ = write!(text, "\nwhen {{ {} }}", conditions.join(" && "));
        }
        text.push_str(";\n\n");
    }
    text
}

/// A request both engines decide: the caller, the REST request for the Cosmoguard
/// classifier, and the Cedar action and resource for the same operation.
#[derive(Clone, Debug)]
pub struct BenchRequest {
    pub name: &'static str,
    pub subject: String,
    pub groups: Vec<String>,
    pub method: http::Method,
    pub path: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub cedar_action: &'static str,
    pub database: String,
    pub container: String,
    /// The item id for item operations; `None` addresses the container.
    pub item: Option<String>,
    /// The decision both engines must reach.
    pub expect_allow: bool,
}

/// Three requests against a policy of `rule_count` rules: the bench caller's read (allowed
/// by the last rule), a query by a member of the last group rule, and a read no rule allows.
pub fn bench_requests(rule_count: usize) -> Vec<BenchRequest> {
    let partition_key = ("x-ms-documentdb-partitionkey", "[\"p1\"]");
    let mut requests = vec![BenchRequest {
        name: "read_allowed_by_last_rule",
        subject: BENCH_SUBJECT.to_owned(),
        groups: Vec::new(),
        method: http::Method::GET,
        path: format!("/dbs/{BENCH_DATABASE}/colls/items/docs/doc1"),
        headers: vec![partition_key],
        cedar_action: "items/read",
        database: BENCH_DATABASE.to_owned(),
        container: "items".to_owned(),
        item: Some("doc1".to_owned()),
        expect_allow: true,
    }];
    let last_group_rule = (0..rule_count.saturating_sub(1))
        .rev()
        .find(|index| index % 4 == 1);
    if let Some(index) = last_group_rule {
        requests.push(BenchRequest {
            name: "query_allowed_by_group",
            subject: "analyst".to_owned(),
            groups: vec!["analysts".to_owned(), group_name(index)],
            method: http::Method::POST,
            path: format!("/dbs/db{}/colls/orders/docs", index % 10),
            headers: vec![
                ("x-ms-documentdb-isquery", "True"),
                ("content-type", "application/query+json"),
                partition_key,
            ],
            cedar_action: "executeQuery",
            database: format!("db{}", index % 10),
            container: "orders".to_owned(),
            item: None,
            expect_allow: true,
        });
    }
    requests.push(BenchRequest {
        name: "read_denied_no_rule",
        subject: "stranger".to_owned(),
        groups: vec!["visitors".to_owned()],
        method: http::Method::GET,
        path: "/dbs/db3/colls/c3/docs/x".to_owned(),
        headers: vec![partition_key],
        cedar_action: "items/read",
        database: "db3".to_owned(),
        container: "c3".to_owned(),
        item: Some("x".to_owned()),
        expect_allow: false,
    });
    requests
}

fn uid(kind: &str, id: &str) -> Value {
    json!({ "type": format!("Cosmoguard::{kind}"), "id": id })
}

impl BenchRequest {
    /// Returns the Cedar entity type and id of the resource.
    pub fn cedar_resource(&self) -> (&'static str, String) {
        match &self.item {
            Some(item) => (
                "Document",
                format!("{}/{}/{item}", self.database, self.container),
            ),
            None => ("Container", format!("{}/{}", self.database, self.container)),
        }
    }

    /// Builds the Cedar entities of this request in Cedar's JSON entity format: the caller and its
    /// groups, and the resource with its container and database.
    pub fn cedar_entities(&self) -> Value {
        let mut entities = Vec::new();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|group| uid("Group", group))
            .collect();
        entities.push(json!({
            "uid": uid("User", &self.subject),
            "attrs": { "subject": self.subject },
            "parents": groups,
        }));
        for group in &self.groups {
            entities.push(json!({ "uid": uid("Group", group), "attrs": {}, "parents": [] }));
        }
        let container_id = format!("{}/{}", self.database, self.container);
        entities.push(json!({
            "uid": uid("Database", &self.database),
            "attrs": { "database": self.database },
            "parents": [],
        }));
        entities.push(json!({
            "uid": uid("Container", &container_id),
            "attrs": { "database": self.database, "container": self.container },
            "parents": [uid("Database", &self.database)],
        }));
        if let Some(item) = &self.item {
            entities.push(json!({
                "uid": uid("Document", &format!("{container_id}/{item}")),
                "attrs": { "database": self.database, "container": self.container },
                "parents": [uid("Container", &container_id)],
            }));
        }
        Value::Array(entities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_has_requested_size() {
        assert_eq!(describe(10).len(), 10);
        assert_eq!(describe(1000).len(), 1000);
    }

    #[test]
    fn generated_toml_parses() {
        for size in [10, 100] {
            let text = to_toml(&describe(size));
            let policy = cosmoguard_policy::Policy::parse(&text, "generated.toml");
            assert!(policy.is_ok(), "size {size}: {:?}", policy.err());
        }
    }

    #[test]
    fn generated_cedar_parses() {
        let text = to_cedar(&describe(100));
        let parsed: Result<cedar_policy::PolicySet, _> = text.parse();
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }
}
