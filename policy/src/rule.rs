//! A compiled rule and the test of whether it applies to one operation.

use std::fmt;

use crate::Effect;
use crate::action::ActionSet;
use crate::condition::{Condition, Subject};
use crate::request::PartitionKey;
use crate::template::{Pattern, scalar_text};

/// A resource scope: the account, a database, or a container. Each covers everything
/// below it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scope {
    Account,
    Database(Pattern),
    Container(Pattern, Pattern),
}

impl Scope {
    /// Parses `/`, `/dbs/<db>` or `/dbs/<db>/colls/<coll>`, where each name is an exact
    /// name, a glob or a template.
    pub(crate) fn parse(text: &str) -> Result<Scope, String> {
        let hint = "expected `/`, `/dbs/<database>` or `/dbs/<database>/colls/<container>`";
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("invalid scope `{text}`: {hint}"));
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let pattern = |name: &str| {
            Pattern::parse(name, true)
                .map_err(|message| format!("invalid scope `{text}`: {message}"))
        };
        match segments.as_slice() {
            [] => Ok(Scope::Account),
            ["dbs", database] => Ok(Scope::Database(pattern(database)?)),
            ["dbs", database, "colls", container] => {
                Ok(Scope::Container(pattern(database)?, pattern(container)?))
            }
            _ => Err(format!("invalid scope `{text}`: {hint}")),
        }
    }

    pub(crate) fn matches(&self, target: &Target<'_>, on: &Subject<'_>) -> bool {
        let principal = on.principal;
        let database_matches = |pattern: &Pattern| {
            target
                .database
                .is_some_and(|name| pattern.matches(name, principal))
        };
        match self {
            Scope::Account => true,
            Scope::Database(database) => database_matches(database),
            Scope::Container(database, container) => {
                database_matches(database)
                    && target
                        .container
                        .is_some_and(|name| container.matches(name, principal))
            }
        }
    }

    /// Returns the exact database name the scope is limited to, if any.
    pub(crate) fn exact_database(&self) -> Option<&str> {
        match self {
            Scope::Account => None,
            Scope::Database(database) | Scope::Container(database, _) => database.exact(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Account => f.write_str("/"),
            Scope::Database(database) => write!(f, "/dbs/{database}"),
            Scope::Container(database, container) => write!(f, "/dbs/{database}/colls/{container}"),
        }
    }
}

/// One operation to authorize: the request itself, or one operation of a batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub(crate) required: ActionSet,
    pub(crate) database: Option<&'a str>,
    pub(crate) container: Option<&'a str>,
    /// The item id, for item operations only.
    pub(crate) item_id: Option<&'a str>,
    /// The id of the resource below the container (or of a user or permission).
    pub(crate) resource_id: Option<&'a str>,
    pub(crate) partition_key: Option<&'a PartitionKey>,
}

/// A rule after parsing, with every pattern compiled.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    pub(crate) id: Box<str>,
    pub(crate) description: Option<Box<str>>,
    pub(crate) effect: Effect,
    pub(crate) actions: ActionSet,
    pub(crate) scopes: Box<[Scope]>,
    pub(crate) principal: Option<Condition>,
    /// One pattern per partition key component, compared with the request's leading
    /// components.
    pub(crate) partition_key: Option<Box<[Pattern]>>,
    pub(crate) items: Option<Box<[Pattern]>>,
    pub(crate) resource_ids: Option<Box<[Pattern]>>,
    pub(crate) when: Option<Condition>,
    /// The 1-based line of the rule's `id`, for `explain` and `check`.
    pub(crate) line: usize,
}

/// The first reason a rule does not apply, in the order the checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mismatch {
    Action,
    Scope,
    Principal,
    PartitionKey,
    Item,
    ResourceId,
    Condition,
}

impl CompiledRule {
    /// Returns why the rule does not apply to the target, or `None` when it applies. An
    /// allow rule must grant every required action; a deny rule applies when it names any
    /// of them.
    pub(crate) fn mismatch(&self, target: &Target<'_>, on: &Subject<'_>) -> Option<Mismatch> {
        let actions_match = match self.effect {
            Effect::Allow => self.actions.contains_all(target.required),
            Effect::Deny => self.actions.intersects(target.required),
        };
        if !actions_match {
            return Some(Mismatch::Action);
        }
        if !self.scopes.iter().any(|scope| scope.matches(target, on)) {
            return Some(Mismatch::Scope);
        }
        if self.principal.as_ref().is_some_and(|p| !p.holds(on)) {
            return Some(Mismatch::Principal);
        }
        if let Some(patterns) = &self.partition_key
            && !partition_key_matches(patterns, target.partition_key, on)
        {
            return Some(Mismatch::PartitionKey);
        }
        if !id_matches(self.items.as_deref(), target.item_id, on) {
            return Some(Mismatch::Item);
        }
        if !id_matches(self.resource_ids.as_deref(), target.resource_id, on) {
            return Some(Mismatch::ResourceId);
        }
        if self.when.as_ref().is_some_and(|c| !c.holds(on)) {
            return Some(Mismatch::Condition);
        }
        None
    }
}

/// Matches rule patterns against the leading components of a partition key. A key with
/// fewer components than the rule spans more than the rule allows, so it does not match.
fn partition_key_matches(
    patterns: &[Pattern],
    key: Option<&PartitionKey>,
    on: &Subject<'_>,
) -> bool {
    let Some(key) = key else { return false };
    if key.components.len() < patterns.len() {
        return false;
    }
    patterns
        .iter()
        .zip(&key.components)
        .all(|(pattern, component)| {
            scalar_text(component).is_some_and(|text| pattern.matches(text.as_str(), on.principal))
        })
}

fn id_matches(patterns: Option<&[Pattern]>, id: Option<&str>, on: &Subject<'_>) -> bool {
    let Some(patterns) = patterns else {
        return true;
    };
    id.is_some_and(|id| {
        patterns
            .iter()
            .any(|pattern| pattern.matches(id, on.principal))
    })
}
