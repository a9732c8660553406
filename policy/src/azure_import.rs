//! Import of Azure Cosmos DB SQL role definitions and role assignments into a policy.
//!
//! The input is the JSON that `az cosmosdb sql role definition list` and
//! `az cosmosdb sql role assignment list` print. Each custom role definition becomes a
//! `[roles.NAME]` table, and each assignment becomes an allow rule for its principal on its
//! scope. Azure identifies a principal by its Entra object id, which an access token carries
//! as the `oid` claim for a user or service principal and in the `groups` claim for a
//! group, so the rule matches either.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Deserialize;

use crate::action::{self, ActionSet, BUILT_IN_ROLES};

/// An import failure: invalid JSON, an assignment of an unknown role, a scope that is not a
/// Cosmos DB account path, or assignments in two accounts.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ImportError {
    pub message: String,
}

/// The imported policy and notes about what was left out.
#[derive(Clone, Debug, PartialEq)]
pub struct AzureImport {
    /// The policy document, in the format `Policy::parse` reads.
    pub policy: String,
    /// Data actions that Cosmoguard does not know and that the import left out, and other
    /// findings, one sentence each.
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleDefinition {
    id: String,
    role_name: String,
    #[serde(default)]
    permissions: Vec<Permission>,
    #[serde(default)]
    type_properties_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Permission {
    #[serde(default)]
    data_actions: Vec<String>,
    #[serde(default)]
    not_data_actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleAssignment {
    id: String,
    principal_id: String,
    role_definition_id: String,
    scope: String,
}

/// Accepts a JSON array or a single object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(items) => items,
            OneOrMany::One(item) => vec![item],
        }
    }
}

/// A role as the generated policy names it.
#[derive(Debug)]
struct ImportedRole {
    /// The name in `roles = [...]`: a built-in role name or a `[roles.NAME]` key.
    name: String,
    /// The actions of a custom role; `None` for a built-in role.
    custom_actions: Option<Vec<&'static str>>,
}

/// Converts role definitions and assignments into policy text. Every assignment must name
/// a role that is built in or defined in `definitions_json`, and every scope must belong
/// to one and the same database account.
pub fn import(definitions_json: &str, assignments_json: &str) -> Result<AzureImport, ImportError> {
    let definitions: Vec<RoleDefinition> =
        parse_json(definitions_json, "role definitions", "definition list")?;
    let assignments: Vec<RoleAssignment> =
        parse_json(assignments_json, "role assignments", "assignment list")?;
    let mut warnings = Vec::new();
    let roles = import_roles(&definitions, &mut warnings);
    let mut account = None;
    let mut rules = String::new();
    for assignment in &assignments {
        let guid = last_segment(&assignment.role_definition_id).to_ascii_lowercase();
        let role = roles.get(&guid).ok_or_else(|| ImportError {
            message: format!(
                "role assignment `{}` names role definition `{}`, which is neither built in nor in the role definitions",
                assignment.id, assignment.role_definition_id
            ),
        })?;
        let (assignment_account, scope) = cosmos_scope(&assignment.scope)?;
        check_one_account(&mut account, assignment_account)?;
        write_rule(&mut rules, assignment, role, &scope);
    }
    let policy = render(&roles, account.as_deref(), &rules);
    Ok(AzureImport { policy, warnings })
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    text: &str,
    input_name: &str,
    az_subcommand: &str,
) -> Result<Vec<T>, ImportError> {
    serde_json::from_str::<OneOrMany<T>>(text)
        .map(OneOrMany::into_vec)
        .map_err(|error| ImportError {
            message: format!(
                "invalid {input_name} JSON: {error}; expected the output of `az cosmosdb sql role {az_subcommand}`"
            ),
        })
}

/// Returns the roles by lowercase GUID: the built-in roles, then each custom definition.
fn import_roles(
    definitions: &[RoleDefinition],
    warnings: &mut Vec<String>,
) -> BTreeMap<String, ImportedRole> {
    let mut roles = BTreeMap::new();
    for built_in in &BUILT_IN_ROLES {
        let role = ImportedRole {
            name: built_in.name.to_owned(),
            custom_actions: None,
        };
        roles.insert(built_in.id.to_owned(), role);
    }
    let mut used_names: BTreeSet<String> = BUILT_IN_ROLES
        .iter()
        .map(|r| r.name.to_ascii_lowercase())
        .collect();
    for definition in definitions {
        let guid = last_segment(&definition.id).to_ascii_lowercase();
        let built_in = definition.type_properties_type.as_deref() == Some("BuiltInRole");
        if built_in || roles.contains_key(&guid) {
            continue;
        }
        let mut name = definition.role_name.clone();
        if !used_names.insert(name.to_ascii_lowercase()) {
            name = format!("{} ({guid})", definition.role_name);
            used_names.insert(name.to_ascii_lowercase());
        }
        let actions = definition_actions(definition, warnings);
        roles.insert(
            guid,
            ImportedRole {
                name,
                custom_actions: Some(actions),
            },
        );
    }
    roles
}

/// Returns the full action names a definition grants: its data actions less its not-data
/// actions. Unknown names are left out, which grants less, never more.
fn definition_actions(
    definition: &RoleDefinition,
    warnings: &mut Vec<String>,
) -> Vec<&'static str> {
    let mut granted = ActionSet::EMPTY;
    let mut excluded = ActionSet::EMPTY;
    for permission in &definition.permissions {
        granted = granted.union(known_actions(
            &permission.data_actions,
            definition,
            warnings,
        ));
        excluded = excluded.union(known_actions(
            &permission.not_data_actions,
            definition,
            warnings,
        ));
    }
    granted.difference(excluded).names().collect()
}

fn known_actions(
    names: &[String],
    definition: &RoleDefinition,
    warnings: &mut Vec<String>,
) -> ActionSet {
    let mut set = ActionSet::EMPTY;
    for name in names {
        match action::parse_action(name) {
            // Imported roles keep Azure's meaning, so `*` stays within the data actions.
            Some(parsed) => set = set.union(azure_meaning(name, parsed.set())),
            None => warnings.push(format!(
                "role `{}` names data action `{name}`, which Cosmoguard does not know; the import leaves it out",
                definition.role_name
            )),
        }
    }
    set
}

/// Reads `*` in an Azure role definition as every data action. An Azure role can grant
/// only data actions, so the import never turns it into the Cosmoguard actions.
fn azure_meaning(name: &str, set: ActionSet) -> ActionSet {
    if name.trim() == "*" {
        ActionSet::range(0, 10)
    } else {
        set
    }
}

/// Splits an ARM scope into the account name and the Cosmoguard scope (`/`, `/dbs/d` or
/// `/dbs/d/colls/c`).
fn cosmos_scope(arm_scope: &str) -> Result<(String, String), ImportError> {
    const MARKER: &str = "/providers/microsoft.documentdb/databaseaccounts/";
    let invalid = || ImportError {
        message: format!(
            "role assignment scope `{arm_scope}` is not a Cosmos DB account path; expected `/subscriptions/.../providers/Microsoft.DocumentDB/databaseAccounts/ACCOUNT[/dbs/DB[/colls/CONTAINER]]`"
        ),
    };
    let start = arm_scope
        .to_ascii_lowercase()
        .find(MARKER)
        .ok_or_else(invalid)?
        + MARKER.len();
    let rest = &arm_scope[start..];
    let (account, path) = rest.split_once('/').unwrap_or((rest, ""));
    if account.is_empty() {
        return Err(invalid());
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let scope = match segments.as_slice() {
        [] => "/".to_owned(),
        ["dbs", database] => format!("/dbs/{database}"),
        ["dbs", database, "colls", container] => format!("/dbs/{database}/colls/{container}"),
        _ => return Err(invalid()),
    };
    Ok((account.to_owned(), scope))
}

fn check_one_account(account: &mut Option<String>, next: String) -> Result<(), ImportError> {
    match account {
        Some(existing) if !existing.eq_ignore_ascii_case(&next) => Err(ImportError {
            message: format!(
                "role assignments name two database accounts, `{existing}` and `{next}`; a policy governs one account, so import each account's assignments on their own"
            ),
        }),
        Some(_) => Ok(()),
        None => {
            *account = Some(next);
            Ok(())
        }
    }
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Returns a TOML basic string with escapes.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn write_rule(out: &mut String, assignment: &RoleAssignment, role: &ImportedRole, scope: &str) {
    let assignment_guid = last_segment(&assignment.id);
    let principal = quoted(&assignment.principal_id);
    let _ = writeln!(out, "\n[[rules]]");
    let _ = writeln!(out, "id = {}", quoted(&format!("azure-{assignment_guid}")));
    let description = format!(
        "Azure role assignment {assignment_guid}: {} for {}",
        role.name, assignment.principal_id
    );
    let _ = writeln!(out, "description = {}", quoted(&description));
    let _ = writeln!(out, "roles = [{}]", quoted(&role.name));
    let _ = writeln!(out, "scopes = [{}]", quoted(scope));
    let _ = writeln!(
        out,
        "# The principal id is a user's or service principal's `oid`, or a group's object id."
    );
    let _ = writeln!(
        out,
        "principal = {{ any = [{{ claims = {{ oid = {principal} }} }}, {{ groups = [{principal}] }}] }}"
    );
}

fn render(roles: &BTreeMap<String, ImportedRole>, account: Option<&str>, rules: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from Azure Cosmos DB SQL role definitions and assignments."
    );
    if let Some(account) = account {
        let _ = writeln!(out, "# Database account: {account}");
    }
    let _ = writeln!(out, "version = 1");
    for (guid, role) in roles {
        let Some(actions) = &role.custom_actions else {
            continue;
        };
        let names: Vec<String> = actions.iter().map(|name| quoted(name)).collect();
        let _ = writeln!(out, "\n[roles.{}]", quoted(&role.name));
        let _ = writeln!(
            out,
            "description = {}",
            quoted(&format!("Azure role definition {guid}"))
        );
        let _ = writeln!(out, "actions = [{}]", names.join(", "));
    }
    out.push_str(rules);
    out
}

#[cfg(test)]
mod tests;
