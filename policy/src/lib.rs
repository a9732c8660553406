//! Policy decisions for Cosmoguard: who may run which Cosmos DB operation on which
//! resource. Pure logic: no I/O, no async, no clock (the caller passes the time in).
//!
//! [`Policy::parse`] reads a TOML policy (format in `policy/README.md`) and compiles it
//! into an index. [`Policy::decide`] decides one classified request, and
//! [`Policy::explain`] explains the decision rule by rule. [`check`] lists errors and
//! warnings for `cosmoguard policy check`. [`azure_import::import`] turns Azure role
//! definitions and assignments into a policy.

pub mod action;
pub mod azure_import;
mod check;
mod compile;
mod condition;
mod engine;
mod explain;
mod format;
pub mod request;
mod rule;
mod template;
mod time;

#[cfg(test)]
mod testing;

use std::fmt;
use std::sync::Arc;

pub use action::{ACTIONS, ActionSet, BUILT_IN_ROLES, Requirement, data_action, requirement};
pub use azure_import::{AzureImport, ImportError};
pub use check::{CheckReport, check};
pub use explain::{Explanation, OperationExplanation, RuleExplanation};
pub use request::{
    BatchOperation, Context, Operation, OperationKind, PartitionKey, Principal, Request,
    RequestProperties, ResourceType,
};

use serde::Serialize;

/// Whether a decision lets the request through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        })
    }
}

/// The outcome of one policy decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub effect: Effect,
    /// The id of the rule that decided, or `None` when no rule matched (default deny).
    pub rule_id: Option<String>,
    /// Why, in one sentence, for audit records and `policy explain`. It names the
    /// operation and the resource, and for a batch the index of the denied operation.
    pub reason: String,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// A parse or check error, with the 1-based line and column it was found at.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A finding that does not stop the policy from loading, such as a rule that can never
/// apply, with the 1-based line and column it was found at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyWarning {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PolicyWarning {
            source_name,
            line,
            column,
            message,
        } = self;
        write!(f, "{source_name}:{line}:{column}: warning: {message}")
    }
}

/// A parsed, checked policy. Cloning is cheap: the compiled rules are shared.
#[derive(Clone, Debug)]
pub struct Policy {
    engine: Arc<engine::Engine>,
    warnings: Arc<[PolicyWarning]>,
}

impl Policy {
    /// Parses and checks a policy document. `source_name` (usually the file path) prefixes
    /// every error. Returns every error found, not only the first.
    pub fn parse(text: &str, source_name: &str) -> Result<Policy, Vec<PolicyError>> {
        let report = check(text, source_name);
        match report.policy {
            Some(policy) if report.errors.is_empty() => Ok(policy),
            _ => Err(report.errors),
        }
    }

    /// Decides one request. Deny wins over allow, and no matching rule is a deny. A batch
    /// request is allowed only when every one of its operations is.
    pub fn decide(&self, principal: &Principal, request: &Request, context: &Context) -> Decision {
        self.engine.decide(principal, request, context)
    }

    /// Decides one request and explains, for every rule, why it did or did not apply.
    pub fn explain(
        &self,
        principal: &Principal,
        request: &Request,
        context: &Context,
    ) -> Explanation {
        explain::explain(&self.engine, principal, request, context)
    }

    /// Returns the warnings found while parsing, for the caller to log.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// Returns the number of rules.
    pub fn rule_count(&self) -> usize {
        self.engine.rules.len()
    }

    /// Returns the rule ids in file order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.engine.rules.iter().map(|rule| &*rule.id)
    }

    fn from_parts(engine: engine::Engine, warnings: Vec<PolicyWarning>) -> Policy {
        Policy {
            engine: Arc::new(engine),
            warnings: warnings.into(),
        }
    }
}

#[cfg(test)]
mod tests;
