//! The policy file as serde reads it: TOML structures with the byte spans that error
//! messages turn into lines and columns. `compile` turns them into the matcher.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A `[roles.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleFile {
    #[allow(dead_code)]
    pub(crate) description: Option<String>,
    pub(crate) actions: Vec<Spanned<String>>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    pub(crate) id: Spanned<String>,
    pub(crate) description: Option<String>,
    pub(crate) effect: Option<Spanned<EffectFile>>,
    #[serde(default)]
    pub(crate) roles: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) actions: Vec<Spanned<String>>,
    pub(crate) scopes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) principal: Option<Spanned<PrincipalFile>>,
    pub(crate) partition_key: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) items: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) resource_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) when: Option<Spanned<ConditionFile>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EffectFile {
    Allow,
    Deny,
}

/// A principal matcher: every field given must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrincipalFile {
    pub(crate) issuer: Option<Spanned<String>>,
    pub(crate) subject: Option<Spanned<String>>,
    pub(crate) app_id: Option<Spanned<String>>,
    pub(crate) groups: Option<Vec<Spanned<String>>>,
    pub(crate) roles: Option<Vec<Spanned<String>>>,
    pub(crate) scopes: Option<Vec<Spanned<String>>>,
    pub(crate) claims: Option<BTreeMap<String, Spanned<toml::Value>>>,
    pub(crate) any: Option<Vec<Spanned<PrincipalFile>>>,
    pub(crate) all: Option<Vec<Spanned<PrincipalFile>>>,
    pub(crate) not: Option<Box<Spanned<PrincipalFile>>>,
}

/// A `[rules.when]` condition: every field given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionFile {
    /// The IANA zone that `days`, `hours` and date-times without an offset are read in,
    /// here and in the tables inside. It is UTC when no table names one.
    pub(crate) time_zone: Option<Spanned<String>>,
    pub(crate) principal: Option<Spanned<PrincipalFile>>,
    pub(crate) claims: Option<BTreeMap<String, Spanned<toml::Value>>>,
    pub(crate) days: Option<Vec<Spanned<String>>>,
    pub(crate) hours: Option<Spanned<String>>,
    pub(crate) not_before: Option<Spanned<toml::Value>>,
    pub(crate) not_after: Option<Spanned<toml::Value>>,
    pub(crate) source_addresses: Option<Vec<Spanned<String>>>,
    pub(crate) single_partition: Option<Spanned<bool>>,
    pub(crate) max_item_count: Option<Spanned<i64>>,
    pub(crate) consistency_levels: Option<Vec<Spanned<String>>>,
    pub(crate) any: Option<Vec<Spanned<ConditionFile>>>,
    pub(crate) all: Option<Vec<Spanned<ConditionFile>>>,
    pub(crate) not: Option<Box<Spanned<ConditionFile>>>,
}
