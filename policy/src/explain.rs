//! `explain`: the decision for a request and, for every rule, why it did or did not apply.

use std::fmt;

use serde::Serialize;

use crate::action::{self, ActionSet, Requirement};
use crate::condition::Subject;
use crate::engine::{self, Engine};
use crate::request::{Context, Principal, Request};
use crate::rule::{CompiledRule, Mismatch, Target};
use crate::{Decision, Effect};

/// A decision with the evaluation of every rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    pub decision: Decision,
    /// One entry for the request, or one per batch operation.
    pub operations: Vec<OperationExplanation>,
}

/// The evaluation of every rule for one operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperationExplanation {
    /// The index of the batch operation, or `None` for the request itself.
    pub batch_index: Option<usize>,
    /// The operation and its resource, such as `read_item on /dbs/shop/colls/orders/docs/1`.
    pub operation: String,
    /// The full names of the actions the operation needs. It is empty when no action covers
    /// the operation.
    pub required_actions: Vec<&'static str>,
    pub rules: Vec<RuleExplanation>,
}

/// Whether one rule applied, and if not, the first reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleExplanation {
    pub rule_id: String,
    pub description: Option<String>,
    /// The 1-based line of the rule's `id` in the policy file.
    pub line: usize,
    pub effect: Effect,
    pub applies: bool,
    /// `applies` when it applied, else the mismatch, such as `principal mismatch: subject
    /// matches `orders-app` is false (caller: `reporting`)`.
    pub reason: String,
}

pub(crate) fn explain(
    engine: &Engine,
    principal: &Principal,
    request: &Request,
    context: &Context,
) -> Explanation {
    let decision = engine.decide(principal, request, context);
    let operations = if request.batch.is_empty() {
        vec![explain_request(engine, principal, request, context)]
    } else {
        explain_batch(engine, principal, request, context)
    };
    Explanation {
        decision,
        operations,
    }
}

fn explain_request(
    engine: &Engine,
    principal: &Principal,
    request: &Request,
    context: &Context,
) -> OperationExplanation {
    let operation = engine::operation_text(request);
    let Requirement::Actions(required) = action::requirement(request.operation) else {
        return unsupported(None, operation);
    };
    let target = engine::request_target(request, required);
    let on = engine::subject(principal, request, context, target.partition_key.is_some());
    explain_target(engine, None, operation, &target, &on)
}

fn explain_batch(
    engine: &Engine,
    principal: &Principal,
    request: &Request,
    context: &Context,
) -> Vec<OperationExplanation> {
    let mut operations = Vec::new();
    for (index, batch_operation) in request.batch.iter().enumerate() {
        let text = engine::batch_operation_text(index, batch_operation, request);
        let Requirement::Actions(required) =
            action::batch_operation_requirement(batch_operation.kind)
        else {
            operations.push(unsupported(Some(index), text));
            continue;
        };
        let target = engine::batch_target(request, batch_operation, required);
        let on = engine::subject(principal, request, context, target.partition_key.is_some());
        operations.push(explain_target(engine, Some(index), text, &target, &on));
    }
    operations
}

fn unsupported(batch_index: Option<usize>, operation: String) -> OperationExplanation {
    OperationExplanation {
        batch_index,
        operation,
        required_actions: Vec::new(),
        rules: Vec::new(),
    }
}

fn explain_target(
    engine: &Engine,
    batch_index: Option<usize>,
    operation: String,
    target: &Target<'_>,
    on: &Subject<'_>,
) -> OperationExplanation {
    let rules = engine
        .rules
        .iter()
        .map(|rule| explain_rule(rule, target, on))
        .collect();
    OperationExplanation {
        batch_index,
        operation,
        required_actions: target.required.names().collect(),
        rules,
    }
}

fn explain_rule(rule: &CompiledRule, target: &Target<'_>, on: &Subject<'_>) -> RuleExplanation {
    let mismatch = rule.mismatch(target, on);
    RuleExplanation {
        rule_id: rule.id.to_string(),
        description: rule.description.as_deref().map(str::to_owned),
        line: rule.line,
        effect: rule.effect,
        applies: mismatch.is_none(),
        reason: mismatch.map_or_else(|| "applies".to_owned(), |m| describe(m, rule, target, on)),
    }
}

fn describe(
    mismatch: Mismatch,
    rule: &CompiledRule,
    target: &Target<'_>,
    on: &Subject<'_>,
) -> String {
    match mismatch {
        Mismatch::Action => describe_actions(rule, target.required),
        Mismatch::Scope => format!(
            "scope mismatch: {} does not cover database {} container {}",
            list(&rule.scopes),
            optional(target.database),
            optional(target.container),
        ),
        Mismatch::Principal => {
            let detail = rule.principal.as_ref().and_then(|p| p.explain_failure(on));
            format!("principal mismatch: {}", detail.unwrap_or_default())
        }
        Mismatch::PartitionKey => format!(
            "partition key mismatch: {} does not match {}",
            target
                .partition_key
                .map_or("no partition key".to_owned(), |key| format!(
                    "`{}`",
                    key.raw
                )),
            list(rule.partition_key.as_deref().unwrap_or_default()),
        ),
        Mismatch::Item => format!(
            "item mismatch: item id {} does not match {}",
            optional(target.item_id),
            list(rule.items.as_deref().unwrap_or_default()),
        ),
        Mismatch::ResourceId => format!(
            "resource id mismatch: {} does not match {}",
            optional(target.resource_id),
            list(rule.resource_ids.as_deref().unwrap_or_default()),
        ),
        Mismatch::Condition => {
            let detail = rule.when.as_ref().and_then(|c| c.explain_failure(on));
            format!("condition false: {}", detail.unwrap_or_default())
        }
    }
}

fn describe_actions(rule: &CompiledRule, required: ActionSet) -> String {
    let needed: Vec<&str> = required.names().collect();
    match rule.effect {
        Effect::Allow => format!(
            "action not granted: the operation needs {}",
            needed.join(" and ")
        ),
        Effect::Deny => format!(
            "action not denied: the rule does not name {}",
            needed.join(" or ")
        ),
    }
}

fn optional(value: Option<&str>) -> String {
    value.map_or("(none)".to_owned(), |value| format!("`{value}`"))
}

fn list<T: fmt::Display>(values: &[T]) -> String {
    let parts: Vec<String> = values.iter().map(|value| format!("`{value}`")).collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decision = &self.decision;
        let rule = decision.rule_id.as_deref().unwrap_or("(no rule)");
        writeln!(
            f,
            "decision: {} by {rule}: {}",
            decision.effect, decision.reason
        )?;
        for operation in &self.operations {
            write!(f, "{operation}")?;
        }
        Ok(())
    }
}

impl fmt::Display for OperationExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.operation)?;
        if self.required_actions.is_empty() {
            return writeln!(
                f,
                "  no action covers this operation, so it is always denied"
            );
        }
        writeln!(f, "  needs: {}", self.required_actions.join(", "))?;
        for rule in &self.rules {
            let mark = if rule.applies { "+" } else { "-" };
            writeln!(
                f,
                "  {mark} {} ({}, line {}): {}",
                rule.rule_id, rule.effect, rule.line, rule.reason
            )?;
        }
        Ok(())
    }
}
