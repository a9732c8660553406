//! Compiled principal matchers and `when` conditions: a tree of tests over the caller, the
//! request properties and the context, combined with all, any and not.

use std::fmt;

use ipnet::IpNet;

use crate::request::{Context, Principal, Request};
use crate::template::{ClaimPath, Pattern};
use crate::time::Zone;

/// A compiled test. `All` of nothing is true and `Any` of nothing is false.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Condition {
    Issuer(Pattern),
    Subject(Pattern),
    AppId(Pattern),
    /// Any of the caller's groups matches any pattern.
    Groups(Box<[Pattern]>),
    Roles(Box<[Pattern]>),
    Scopes(Box<[Pattern]>),
    Claim(ClaimPath, ClaimTest),
    /// Days of the week in the zone, bit 0 for Monday.
    Days {
        days: u8,
        zone: Zone,
    },
    /// Minutes since midnight in the zone, `start` inclusive and `end` exclusive. A window
    /// whose end is before its start wraps past midnight.
    Hours {
        start: u32,
        end: u32,
        zone: Zone,
    },
    NotBefore(i64),
    NotAfter(i64),
    SourceAddresses(Box<[IpNet]>),
    /// The request must (true) or must not (false) be limited to one partition key.
    SinglePartition(bool),
    MaxItemCount(i64),
    ConsistencyLevels(Box<[Box<str>]>),
    All(Box<[Condition]>),
    Any(Box<[Condition]>),
    Not(Box<Condition>),
}

/// A test on one claim. When the claim is an array, a value test passes if any element
/// passes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ClaimTest {
    /// The claim is a string that matches the pattern.
    Text(Pattern),
    Bool(bool),
    Number(f64),
    /// Numeric bounds, each optional.
    Range {
        gt: Option<f64>,
        ge: Option<f64>,
        lt: Option<f64>,
        le: Option<f64>,
    },
    /// The claim is present (true) or absent (false). `null` counts as absent.
    Present(bool),
    AnyOf(Box<[ClaimTest]>),
}

/// The caller, request and context that a condition tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) request: &'a Request,
    pub(crate) context: &'a Context,
    /// True when the operation being authorized has a partition key.
    pub(crate) has_partition_key: bool,
}

const SECONDS_PER_DAY: i64 = 86_400;

impl Condition {
    pub(crate) fn holds(&self, on: &Subject<'_>) -> bool {
        let principal = on.principal;
        match self {
            Condition::Issuer(pattern) => pattern.matches_plain(&principal.issuer),
            Condition::Subject(pattern) => pattern.matches_plain(&principal.subject),
            Condition::AppId(pattern) => principal
                .app_id
                .as_deref()
                .is_some_and(|id| pattern.matches_plain(id)),
            Condition::Groups(patterns) => any_matches(patterns, &principal.groups),
            Condition::Roles(patterns) => any_matches(patterns, &principal.roles),
            Condition::Scopes(patterns) => any_matches(patterns, &principal.scopes),
            Condition::Claim(path, test) => test.holds(path.lookup(principal)),
            Condition::Days { days, zone } => {
                let wall_clock = zone.wall_clock_seconds(on.context.unix_time);
                days & (1 << weekday(wall_clock)) != 0
            }
            Condition::Hours { start, end, zone } => {
                in_hours(*start, *end, zone.wall_clock_seconds(on.context.unix_time))
            }
            Condition::NotBefore(time) => on.context.unix_time >= *time,
            Condition::NotAfter(time) => on.context.unix_time <= *time,
            Condition::SourceAddresses(networks) => on
                .context
                .source_address
                .is_some_and(|address| networks.iter().any(|net| net.contains(&address))),
            Condition::SinglePartition(expected) => is_single_partition(on) == *expected,
            Condition::MaxItemCount(max) => on
                .request
                .properties
                .max_item_count
                .is_some_and(|count| count >= 1 && count <= *max),
            Condition::ConsistencyLevels(levels) => on
                .request
                .properties
                .consistency_level
                .as_deref()
                .is_some_and(|level| levels.iter().any(|l| l.eq_ignore_ascii_case(level))),
            Condition::All(conditions) => conditions.iter().all(|c| c.holds(on)),
            Condition::Any(conditions) => conditions.iter().any(|c| c.holds(on)),
            Condition::Not(condition) => !condition.holds(on),
        }
    }

    /// Returns a description of the first test that fails, or `None` when it holds.
    pub(crate) fn explain_failure(&self, on: &Subject<'_>) -> Option<String> {
        if self.holds(on) {
            return None;
        }
        match self {
            Condition::All(conditions) => conditions.iter().find_map(|c| c.explain_failure(on)),
            Condition::Subject(_) => Some(format!(
                "{self} is false (caller: `{}`)",
                on.principal.subject
            )),
            Condition::Issuer(_) => Some(format!(
                "{self} is false (caller: `{}`)",
                on.principal.issuer
            )),
            _ => Some(format!("{self} is false")),
        }
    }

    /// Returns exact principal values, sorted and without duplicates, such that the
    /// condition holds only for a caller that has at least one of them. Returns `None` when
    /// there is no such list, as for a glob, a claim, a `not`, an empty list or an `any`
    /// with a branch that has none. The decision index files rules under these values.
    pub(crate) fn required_values(&self) -> Option<Vec<(IndexedField, &str)>> {
        let mut values = self.alternatives()?;
        values.sort_unstable();
        values.dedup();
        Some(values)
    }

    fn alternatives(&self) -> Option<Vec<(IndexedField, &str)>> {
        match self {
            Condition::Subject(pattern) => Some(vec![(IndexedField::Subject, pattern.exact()?)]),
            Condition::AppId(pattern) => Some(vec![(IndexedField::AppId, pattern.exact()?)]),
            Condition::Groups(patterns) => exact_values(IndexedField::Group, patterns),
            Condition::Roles(patterns) => exact_values(IndexedField::Role, patterns),
            Condition::Scopes(patterns) => exact_values(IndexedField::Scope, patterns),
            // Every test must hold, so the values of any one test will do, and the shortest
            // list narrows the most. `min_by_key` keeps the first of equal lengths, and
            // `compile_principal` writes subject, app id, groups, roles and scopes in that
            // order, so a subject wins a tie.
            Condition::All(conditions) => conditions
                .iter()
                .filter_map(Condition::alternatives)
                .min_by_key(Vec::len),
            // One branch must hold, so the caller has a value of some branch.
            Condition::Any(conditions) if !conditions.is_empty() => {
                let branches: Option<Vec<_>> =
                    conditions.iter().map(Condition::alternatives).collect();
                branches.map(|branches| branches.concat())
            }
            _ => None,
        }
    }
}

/// A principal field whose exact values the decision index files rules under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum IndexedField {
    Subject,
    AppId,
    Group,
    Role,
    Scope,
}

impl IndexedField {
    /// The number of fields. It is counted from the last one, so a new field goes after
    /// `Scope`.
    pub(crate) const COUNT: usize = IndexedField::Scope as usize + 1;
}

/// Returns every value of the caller's indexed fields, as [`Condition::required_values`]
/// names them.
pub(crate) fn indexed_values(principal: &Principal) -> impl Iterator<Item = (IndexedField, &str)> {
    std::iter::once((IndexedField::Subject, principal.subject.as_str()))
        .chain(
            principal
                .app_id
                .as_deref()
                .map(|id| (IndexedField::AppId, id)),
        )
        .chain(each_value(IndexedField::Group, &principal.groups))
        .chain(each_value(IndexedField::Role, &principal.roles))
        .chain(each_value(IndexedField::Scope, &principal.scopes))
}

fn each_value(
    field: IndexedField,
    values: &[String],
) -> impl Iterator<Item = (IndexedField, &str)> {
    values.iter().map(move |value| (field, value.as_str()))
}

/// Returns the values of a list test whose patterns are all exact. An empty list never
/// holds, and it returns `None` so that such a rule stays in the unindexed list.
fn exact_values(field: IndexedField, patterns: &[Pattern]) -> Option<Vec<(IndexedField, &str)>> {
    if patterns.is_empty() {
        return None;
    }
    patterns
        .iter()
        .map(|pattern| pattern.exact().map(|value| (field, value)))
        .collect()
}

fn any_matches(patterns: &[Pattern], values: &[String]) -> bool {
    values
        .iter()
        .any(|value| patterns.iter().any(|pattern| pattern.matches_plain(value)))
}

fn is_single_partition(on: &Subject<'_>) -> bool {
    on.has_partition_key && !on.request.properties.cross_partition
}

/// Returns the weekday of a wall-clock time in seconds, 0 for Monday. 1970-01-01 was a
/// Thursday.
pub(crate) fn weekday(wall_clock: i64) -> u32 {
    let days = wall_clock.div_euclid(SECONDS_PER_DAY);
    // Every value of `rem_euclid(7)` fits in u32.
    (days + 3).rem_euclid(7) as u32
}

fn in_hours(start: u32, end: u32, wall_clock: i64) -> bool {
    // `rem_euclid` keeps the minute of the day in 0..1440.
    let minute = (wall_clock.rem_euclid(SECONDS_PER_DAY) / 60) as u32;
    if start <= end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    }
}

impl ClaimTest {
    fn holds(&self, claim: Option<&serde_json::Value>) -> bool {
        let claim = claim.filter(|value| !value.is_null());
        match (self, claim) {
            (ClaimTest::Present(expected), _) => claim.is_some() == *expected,
            (ClaimTest::AnyOf(tests), _) => tests.iter().any(|test| test.holds(claim)),
            (_, None) => false,
            (_, Some(serde_json::Value::Array(elements))) => {
                elements.iter().any(|element| self.holds_on_scalar(element))
            }
            (_, Some(value)) => self.holds_on_scalar(value),
        }
    }

    fn holds_on_scalar(&self, value: &serde_json::Value) -> bool {
        match self {
            ClaimTest::Text(pattern) => value
                .as_str()
                .is_some_and(|text| pattern.matches_plain(text)),
            ClaimTest::Bool(expected) => value.as_bool() == Some(*expected),
            ClaimTest::Number(expected) => value.as_f64() == Some(*expected),
            ClaimTest::Range { gt, ge, lt, le } => value.as_f64().is_some_and(|number| {
                gt.is_none_or(|bound| number > bound)
                    && ge.is_none_or(|bound| number >= bound)
                    && lt.is_none_or(|bound| number < bound)
                    && le.is_none_or(|bound| number <= bound)
            }),
            ClaimTest::Present(_) | ClaimTest::AnyOf(_) => self.holds(Some(value)),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Issuer(pattern) => write!(f, "issuer matches `{pattern}`"),
            Condition::Subject(pattern) => write!(f, "subject matches `{pattern}`"),
            Condition::AppId(pattern) => write!(f, "app_id matches `{pattern}`"),
            Condition::Groups(patterns) => write!(f, "groups include one of {}", list(patterns)),
            Condition::Roles(patterns) => write!(f, "roles include one of {}", list(patterns)),
            Condition::Scopes(patterns) => write!(f, "scopes include one of {}", list(patterns)),
            Condition::Claim(path, test) => write!(f, "claim `{path}` {test}"),
            Condition::Days { days, zone } => {
                write!(f, "{zone} day is one of {}", day_names(*days))
            }
            Condition::Hours { start, end, zone } => {
                write!(f, "{zone} time is within {}-{}", clock(*start), clock(*end))
            }
            Condition::NotBefore(time) => write!(f, "time is at or after {}", instant(*time)),
            Condition::NotAfter(time) => write!(f, "time is at or before {}", instant(*time)),
            Condition::SourceAddresses(networks) => {
                write!(f, "source address is in {}", list(networks))
            }
            Condition::SinglePartition(true) => {
                f.write_str("request is limited to one partition key")
            }
            Condition::SinglePartition(false) => f.write_str("request spans partitions"),
            Condition::MaxItemCount(max) => {
                write!(f, "x-ms-max-item-count is set and at most {max}")
            }
            Condition::ConsistencyLevels(levels) => {
                write!(f, "consistency level is one of {}", list(levels))
            }
            Condition::All(conditions) => write!(f, "all of [{}]", joined(conditions)),
            Condition::Any(conditions) => write!(f, "any of [{}]", joined(conditions)),
            Condition::Not(condition) => write!(f, "not ({condition})"),
        }
    }
}

impl fmt::Display for ClaimTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimTest::Text(pattern) => write!(f, "matches `{pattern}`"),
            ClaimTest::Bool(value) => write!(f, "is {value}"),
            ClaimTest::Number(value) => write!(f, "equals {value}"),
            ClaimTest::Range { gt, ge, lt, le } => {
                let bounds = [("> ", gt), (">= ", ge), ("< ", lt), ("<= ", le)];
                let parts: Vec<String> = bounds
                    .iter()
                    .filter_map(|(symbol, bound)| bound.map(|b| format!("{symbol}{b}")))
                    .collect();
                write!(f, "is {}", parts.join(" and "))
            }
            ClaimTest::Present(true) => f.write_str("is present"),
            ClaimTest::Present(false) => f.write_str("is absent"),
            ClaimTest::AnyOf(tests) => {
                let parts: Vec<String> = tests.iter().map(ToString::to_string).collect();
                write!(f, "{}", parts.join(" or "))
            }
        }
    }
}

fn list<T: fmt::Display>(values: &[T]) -> String {
    let parts: Vec<String> = values.iter().map(|value| format!("`{value}`")).collect();
    format!("[{}]", parts.join(", "))
}

fn joined(conditions: &[Condition]) -> String {
    let parts: Vec<String> = conditions.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

pub(crate) const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_names(days: u8) -> String {
    let names: Vec<&str> = DAY_NAMES
        .iter()
        .enumerate()
        .filter(|(index, _)| days & (1 << index) != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join(", ")
}

/// Shows Unix seconds as an RFC 3339 UTC date-time, or as seconds outside the years that
/// RFC 3339 can write.
fn instant(unix_time: i64) -> String {
    match jiff::Timestamp::from_second(unix_time) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => format!("{unix_time} (Unix seconds)"),
    }
}

fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests;
