//! The decision engine: compiled rules behind an index, and the decide path.
//!
//! The index has one bucket per action. In each bucket, allow and deny rules are listed
//! apart. A rule whose principal requires one of a few exact values (a subject, an app id,
//! groups, roles or OAuth scopes, see [`Condition::required_values`]) is filed under each
//! of those values. Other rules whose scopes all name an exact database are filed under
//! those databases, and the rest go in one list. A decision tests only the rules filed
//! under the caller's own values, under the request's database and in the rest, so a rule
//! for a group the caller is not in is never tested (`explain` still tests every rule). It
//! allocates only the strings of the returned [`Decision`].

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::action::{self, ACTIONS, ActionSet, Requirement};
use crate::condition::{self, Condition, IndexedField, Subject};
use crate::request::{BatchOperation, Context, Principal, Request};
use crate::rule::{CompiledRule, Target};
use crate::{Decision, Effect};

/// Compiled rules and their index.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) rules: Box<[CompiledRule]>,
    buckets: Box<[Bucket]>,
}

#[derive(Debug, Default)]
struct Bucket {
    allow: RuleLists,
    deny: RuleLists,
}

/// Rule indexes in ascending order, filed by the key each rule requires.
#[derive(Debug, Default)]
struct RuleLists {
    /// One map per [`IndexedField`], from an exact value to the rules that require it.
    by_principal: [HashMap<Box<str>, Vec<u32>>; IndexedField::COUNT],
    by_database: HashMap<Box<str>, Vec<u32>>,
    rest: Vec<u32>,
}

/// The lists a rule is filed in, worked out once per rule for all its action buckets.
#[derive(Debug)]
enum Placement<'r> {
    Principal(Vec<(IndexedField, &'r str)>),
    Databases(Vec<&'r str>),
    Rest,
}

impl<'r> Placement<'r> {
    fn of(rule: &'r CompiledRule) -> Placement<'r> {
        if let Some(values) = rule.principal.as_ref().and_then(Condition::required_values) {
            return Placement::Principal(values);
        }
        let databases: Option<Vec<&str>> = rule.scopes.iter().map(|s| s.exact_database()).collect();
        match databases {
            Some(mut databases) if !databases.is_empty() => {
                databases.sort_unstable();
                databases.dedup();
                Placement::Databases(databases)
            }
            _ => Placement::Rest,
        }
    }
}

impl RuleLists {
    /// Files a rule. Rules are added in ascending index order, so every list stays sorted,
    /// and the placement's values have no duplicates, so no list contains an index twice.
    fn add(&mut self, index: u32, placement: &Placement<'_>) {
        match placement {
            Placement::Principal(values) => {
                for (field, value) in values {
                    self.by_principal[*field as usize]
                        .entry((*value).into())
                        .or_default()
                        .push(index);
                }
            }
            Placement::Databases(databases) => {
                for database in databases {
                    self.by_database
                        .entry((*database).into())
                        .or_default()
                        .push(index);
                }
            }
            Placement::Rest => self.rest.push(index),
        }
    }

    /// Returns the lists of the rules that may apply: those filed under one of the
    /// caller's values, those filed under the request's database, and the rest.
    fn candidates<'a>(
        &'a self,
        principal: &'a Principal,
        database: Option<&'a str>,
    ) -> impl Iterator<Item = &'a [u32]> {
        let by_principal = condition::indexed_values(principal)
            .filter_map(|(field, value)| self.by_principal[field as usize].get(value));
        let by_database = database.and_then(|name| self.by_database.get(name));
        by_principal
            .chain(by_database)
            .map(Vec::as_slice)
            .chain(std::iter::once(self.rest.as_slice()))
    }
}

/// Returns the lowest index in the sorted lists for which `applies` is true, or `lowest`
/// when that is lower. Each list is scanned only below the lowest index found so far. An
/// index that is in several lists may be tested once per list.
fn lowest_applying<'a>(
    lists: impl Iterator<Item = &'a [u32]>,
    mut lowest: Option<u32>,
    mut applies: impl FnMut(u32) -> bool,
) -> Option<u32> {
    for list in lists {
        let below = match lowest {
            Some(bound) => &list[..list.partition_point(|index| *index < bound)],
            None => list,
        };
        if let Some(index) = below.iter().copied().find(|index| applies(*index)) {
            lowest = Some(index);
        }
    }
    lowest
}

/// The result for one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allowed(u32),
    Denied(u32),
    NoMatch,
}

impl Engine {
    pub(crate) fn new(rules: Vec<CompiledRule>) -> Engine {
        let mut buckets: Vec<Bucket> = (0..ACTIONS.len()).map(|_| Bucket::default()).collect();
        for (index, rule) in rules.iter().enumerate() {
            // Indexes fit in u32: 2^32 rules of at least 40 bytes each would be a policy file
            // of over 160 GiB.
            let index = index as u32;
            let placement = Placement::of(rule);
            for bit in rule.actions.indexes() {
                let bucket = &mut buckets[bit];
                match rule.effect {
                    Effect::Allow => bucket.allow.add(index, &placement),
                    Effect::Deny => bucket.deny.add(index, &placement),
                }
            }
        }
        Engine {
            rules: rules.into(),
            buckets: buckets.into(),
        }
    }

    /// Decides one operation: the lowest-numbered deny rule that applies wins, then the
    /// lowest-numbered allow rule, else no rule matched.
    pub(crate) fn decide_target(&self, target: &Target<'_>, on: &Subject<'_>) -> Outcome {
        let principal = on.principal;
        let applies = |index: u32| self.rules[index as usize].mismatch(target, on).is_none();
        let denied = target.required.indexes().fold(None, |lowest, bit| {
            let deny = self.buckets[bit]
                .deny
                .candidates(principal, target.database);
            lowest_applying(deny, lowest, applies)
        });
        if let Some(index) = denied {
            return Outcome::Denied(index);
        }
        // An allow rule must grant every required action, so the bucket of any one of them
        // contains every candidate.
        let Some(bit) = target.required.first_index() else {
            return Outcome::NoMatch;
        };
        let allow = self.buckets[bit]
            .allow
            .candidates(principal, target.database);
        lowest_applying(allow, None, applies).map_or(Outcome::NoMatch, Outcome::Allowed)
    }

    pub(crate) fn decide(
        &self,
        principal: &Principal,
        request: &Request,
        context: &Context,
    ) -> Decision {
        if !request.batch.is_empty() {
            return self.decide_batch(principal, request, context);
        }
        let required = match action::requirement(request.operation) {
            Requirement::Actions(required) => required,
            Requirement::Batch => {
                return default_deny(format!(
                    "a batch request on {} has no operations",
                    resource_text(request)
                ));
            }
            Requirement::Unsupported => return unsupported(request),
        };
        let target = request_target(request, required);
        let on = subject(principal, request, context, target.partition_key.is_some());
        let outcome = self.decide_target(&target, &on);
        self.decision(outcome, || operation_text(request))
    }

    fn decide_batch(
        &self,
        principal: &Principal,
        request: &Request,
        context: &Context,
    ) -> Decision {
        let mut first_allow = None;
        for (index, operation) in request.batch.iter().enumerate() {
            let describe = || batch_operation_text(index, operation, request);
            let Requirement::Actions(required) =
                action::batch_operation_requirement(operation.kind)
            else {
                return default_deny(format!(
                    "{} is not an item operation that a batch may contain",
                    describe()
                ));
            };
            let target = batch_target(request, operation, required);
            let on = subject(principal, request, context, target.partition_key.is_some());
            match self.decide_target(&target, &on) {
                Outcome::Allowed(rule) => {
                    first_allow.get_or_insert(rule);
                }
                outcome => return self.decision(outcome, describe),
            }
        }
        let Some(rule) = first_allow else {
            return default_deny(format!(
                "a batch request on {} has no operations",
                resource_text(request)
            ));
        };
        let count = request.batch.len();
        Decision {
            effect: Effect::Allow,
            rule_id: Some(self.rules[rule as usize].id.to_string()),
            reason: format!(
                "all {count} batch operations on {} are allowed",
                resource_text(request)
            ),
        }
    }

    fn decision(&self, outcome: Outcome, describe: impl FnOnce() -> String) -> Decision {
        match outcome {
            Outcome::Allowed(index) => {
                let mut reason = describe();
                reason.push_str(" is allowed");
                Decision {
                    effect: Effect::Allow,
                    rule_id: Some(self.rules[index as usize].id.to_string()),
                    reason,
                }
            }
            Outcome::Denied(index) => Decision {
                effect: Effect::Deny,
                rule_id: Some(self.rules[index as usize].id.to_string()),
                reason: format!("{} is explicitly denied", describe()),
            },
            Outcome::NoMatch => default_deny(format!("no rule allows {}", describe())),
        }
    }
}

pub(crate) fn subject<'a>(
    principal: &'a Principal,
    request: &'a Request,
    context: &'a Context,
    has_partition_key: bool,
) -> Subject<'a> {
    Subject {
        principal,
        request,
        context,
        has_partition_key,
    }
}

pub(crate) fn request_target(request: &Request, required: ActionSet) -> Target<'_> {
    Target {
        required,
        database: request.database.as_deref(),
        container: request.container.as_deref(),
        item_id: request.item_id(),
        resource_id: request.resource_id.as_deref(),
        partition_key: non_empty_key(request.partition_key.as_ref()),
    }
}

/// Builds the target of one batch operation: its own item id and partition key, falling
/// back to the request's partition key.
pub(crate) fn batch_target<'a>(
    request: &'a Request,
    operation: &'a BatchOperation,
    required: ActionSet,
) -> Target<'a> {
    let partition_key = operation
        .partition_key
        .as_ref()
        .or(request.partition_key.as_ref());
    Target {
        required,
        database: request.database.as_deref(),
        container: request.container.as_deref(),
        item_id: operation.item_id.as_deref(),
        resource_id: operation.item_id.as_deref(),
        partition_key: non_empty_key(partition_key),
    }
}

/// Treats `[]` (the header value for "no partition key") as no key.
fn non_empty_key(key: Option<&crate::PartitionKey>) -> Option<&crate::PartitionKey> {
    key.filter(|key| !key.components.is_empty())
}

fn default_deny(reason: String) -> Decision {
    Decision {
        effect: Effect::Deny,
        rule_id: None,
        reason,
    }
}

fn unsupported(request: &Request) -> Decision {
    default_deny(format!(
        "{} is not an operation that Cosmoguard policy can allow",
        operation_text(request)
    ))
}

/// Returns the request's resource for messages: `/dbs/shop/colls/orders` or `the account`.
pub(crate) fn resource_text(request: &Request) -> String {
    if request.resource_link.is_empty() {
        "the account".to_owned()
    } else {
        format!("/{}", request.resource_link)
    }
}

pub(crate) fn operation_text(request: &Request) -> String {
    let mut text = String::with_capacity(48 + request.resource_link.len());
    let _ = write!(text, "{} on ", request.operation);
    if request.resource_link.is_empty() {
        text.push_str("the account");
    } else {
        text.push('/');
        text.push_str(&request.resource_link);
    }
    text
}

pub(crate) fn batch_operation_text(
    index: usize,
    operation: &BatchOperation,
    request: &Request,
) -> String {
    let mut text = format!("batch operation {index} ({}_item", operation.kind.name());
    if let Some(id) = &operation.item_id {
        let _ = write!(text, " `{id}`");
    }
    let _ = write!(text, " in {})", resource_text(request));
    text
}

#[cfg(test)]
mod tests;
