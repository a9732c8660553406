//! `check`: every error of a policy at once, and warnings about rules that load but can
//! never apply as written.

use std::ops::Range;

use crate::action::{self, ActionSet};
use crate::compile::{self, Diagnostics, RuleSource};
use crate::engine::Engine;
use crate::rule::{CompiledRule, Scope};
use crate::{Effect, Policy, PolicyError, PolicyWarning};

/// The result of checking a policy document.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The policy, when there are no errors.
    pub policy: Option<Policy>,
    /// Errors in line order. Any error means the policy does not load.
    pub errors: Vec<PolicyError>,
    /// Warnings in line order.
    pub warnings: Vec<PolicyWarning>,
}

/// Parses and checks a policy document, returning every error and warning.
pub fn check(text: &str, source_name: &str) -> CheckReport {
    let mut diagnostics = Diagnostics::new(text, source_name);
    let sources = compile::compile(&mut diagnostics);
    lint(&sources, &mut diagnostics);
    let Diagnostics {
        mut errors,
        mut warnings,
        ..
    } = diagnostics;
    errors.sort_by_key(|error| (error.line, error.column));
    warnings.sort_by_key(|warning| (warning.line, warning.column));
    let policy = errors.is_empty().then(|| {
        let rules = sources.into_iter().map(|source| source.rule).collect();
        Policy::from_parts(Engine::new(rules), warnings.clone())
    });
    CheckReport {
        policy,
        errors,
        warnings,
    }
}

/// Actions whose requests never carry a partition key or an item id.
const CONTROL_ACTIONS: ActionSet = ActionSet::EMPTY
    .union(action::READ_METADATA)
    .union(ActionSet::range(10, 39))
    .union(action::EXECUTE_STORED_PROCEDURE)
    .union(action::MANAGE_CONFLICTS);

/// Item actions whose requests carry an item id in the path.
const ACTIONS_WITH_ITEM_ID: ActionSet = action::ITEMS_READ
    .union(action::ITEMS_REPLACE)
    .union(action::ITEMS_DELETE)
    .union(action::ITEMS_CREATE)
    .union(action::ITEMS_UPSERT);

fn lint(sources: &[RuleSource], diagnostics: &mut Diagnostics<'_>) {
    let has_allow = sources
        .iter()
        .any(|source| source.rule.effect == Effect::Allow);
    if !has_allow && diagnostics.errors.is_empty() {
        diagnostics.warning(
            0..0,
            "the policy has no allow rules, so it denies every request",
        );
    }
    for source in sources {
        lint_rule(source, diagnostics);
    }
    for source in sources {
        if source.rule.effect != Effect::Allow {
            continue;
        }
        if let Some(deny) = sources
            .iter()
            .find(|deny| shadows(&deny.rule, &source.rule))
        {
            let position = if deny.rule.line < source.rule.line {
                "earlier"
            } else {
                "later"
            };
            diagnostics.warning(
                source.span.clone(),
                format!(
                    "allow rule `{}` never applies: the {position} deny rule `{}` (line {}) covers everything it allows",
                    source.rule.id, deny.rule.id, deny.rule.line
                ),
            );
        }
    }
}

fn lint_rule(source: &RuleSource, diagnostics: &mut Diagnostics<'_>) {
    let rule = &source.rule;
    let span = source.span.clone();
    if rule.actions.is_empty() {
        diagnostics.warning(
            span.clone(),
            format!(
                "rule `{}` grants nothing: its roles and actions are empty",
                rule.id
            ),
        );
    }
    if rule.effect == Effect::Allow && rule.principal.is_none() {
        diagnostics.warning(
            span.clone(),
            format!(
                "allow rule `{}` has no `principal`, so it applies to every authenticated caller",
                rule.id
            ),
        );
    }
    if rule.partition_key.is_some() && CONTROL_ACTIONS.contains_all(rule.actions) {
        diagnostics.warning(
            span.clone(),
            format!("rule `{}` requires a partition key, but none of its actions is sent with one, so it never applies", rule.id),
        );
    }
    if rule.items.is_some() && !rule.actions.intersects(ACTIONS_WITH_ITEM_ID) {
        diagnostics.warning(
            span.clone(),
            format!("rule `{}` names `items`, but none of its actions addresses an item by id, so it never applies", rule.id),
        );
    }
    lint_scopes(rule, &source.scope_spans, diagnostics);
}

/// Warns about container scopes on rules whose actions are all database operations,
/// which carry no container. Throughput actions match database and container scopes,
/// because the proxy resolves an offer to the resource it belongs to.
fn lint_scopes(rule: &CompiledRule, spans: &[Range<usize>], diagnostics: &mut Diagnostics<'_>) {
    let database_level = ActionSet::range(10, 13);
    for (scope, span) in rule.scopes.iter().zip(spans) {
        let never = match scope {
            Scope::Account | Scope::Database(_) => false,
            Scope::Container(_, _) => database_level.contains_all(rule.actions),
        };
        if never {
            diagnostics.warning(
                span.clone(),
                format!(
                    "scope `{scope}` of rule `{}` never matches its actions: database operations need a database or account scope",
                    rule.id
                ),
            );
        }
    }
}

/// True when `deny` applies to every request that `allow` would allow.
fn shadows(deny: &CompiledRule, allow: &CompiledRule) -> bool {
    deny.effect == Effect::Deny
        && deny.actions.contains_all(allow.actions)
        && !allow.actions.is_empty()
        && deny
            .principal
            .as_ref()
            .is_none_or(|p| allow.principal.as_ref() == Some(p))
        && restriction_covers(&deny.partition_key, &allow.partition_key)
        && restriction_covers(&deny.items, &allow.items)
        && restriction_covers(&deny.resource_ids, &allow.resource_ids)
        && restriction_covers(&deny.when, &allow.when)
        && allow
            .scopes
            .iter()
            .all(|scope| deny.scopes.iter().any(|d| scope_covers(d, scope)))
}

/// True when the deny restriction is absent or identical to the allow rule's.
fn restriction_covers<T: PartialEq>(deny: &Option<T>, allow: &Option<T>) -> bool {
    deny.is_none() || deny == allow
}

fn scope_covers(outer: &Scope, inner: &Scope) -> bool {
    match (outer, inner) {
        (Scope::Account, _) => true,
        (Scope::Database(outer), Scope::Database(inner) | Scope::Container(inner, _)) => {
            outer == inner
                || outer.matches_everything()
                || inner.exact().is_some_and(|name| outer.matches_plain(name))
        }
        (
            Scope::Container(outer_db, outer_container),
            Scope::Container(inner_db, inner_container),
        ) => {
            scope_covers(
                &Scope::Database(outer_db.clone()),
                &Scope::Database(inner_db.clone()),
            ) && (outer_container == inner_container
                || outer_container.matches_everything()
                || inner_container
                    .exact()
                    .is_some_and(|name| outer_container.matches_plain(name)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
