//! Turns policy text into compiled rules, collecting every error with its line and column.
//!
//! The document is first parsed into a spanned TOML tree, and then each role and each rule
//! is deserialized on its own, so an error in one rule does not hide errors in the next.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::action::{self, ActionSet, ParsedAction};
use crate::condition::{ClaimTest, Condition, DAY_NAMES};
use crate::format::{ConditionFile, EffectFile, PrincipalFile, RoleFile, RuleFile};
use crate::rule::{CompiledRule, Scope};
use crate::template::{ClaimPath, Pattern};
use crate::time::{self, TimeError, Zone};
use crate::{Effect, PolicyError, PolicyWarning};

/// The only policy format version this crate reads.
pub(crate) const FORMAT_VERSION: i64 = 1;

/// Errors and warnings found while compiling, with offsets turned into positions.
#[derive(Debug)]
pub(crate) struct Diagnostics<'a> {
    text: &'a str,
    source_name: &'a str,
    pub(crate) errors: Vec<PolicyError>,
    pub(crate) warnings: Vec<PolicyWarning>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(text: &'a str, source_name: &'a str) -> Diagnostics<'a> {
        Diagnostics {
            text,
            source_name,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.errors.push(PolicyError {
            source_name: self.source_name.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.warnings.push(PolicyWarning {
            source_name: self.source_name.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Returns the 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    fn serde_error(&mut self, error: &toml::de::Error, fallback: Range<usize>) {
        let span = error.span().unwrap_or(fallback);
        self.error(span, error.message().trim_end().to_owned());
    }
}

/// A compiled rule with the spans `check` needs for its warnings.
#[derive(Debug)]
pub(crate) struct RuleSource {
    pub(crate) rule: CompiledRule,
    pub(crate) span: Range<usize>,
    pub(crate) scope_spans: Vec<Range<usize>>,
}

/// Compiles a policy document. Returns the rules in file order; the diagnostics tell
/// whether they may be used.
pub(crate) fn compile(diagnostics: &mut Diagnostics<'_>) -> Vec<RuleSource> {
    let (root, syntax_errors) = DeTable::parse_recoverable(diagnostics.text);
    if !syntax_errors.is_empty() {
        for error in &syntax_errors {
            diagnostics.serde_error(error, 0..0);
        }
        return Vec::new();
    }
    let root_span = root.span();
    let mut version = None;
    let mut roles = HashMap::new();
    let mut rule_values = Vec::new();
    for (key, value) in root.into_inner() {
        let key_span = key.span();
        match &**key.get_ref() {
            "version" => version = Some(value),
            "roles" => roles = compile_roles(value, diagnostics),
            "rules" => rule_values = array_items(value, "rules", diagnostics),
            other => diagnostics.error(
                key_span,
                format!("unknown top-level key `{other}`; expected `version`, `roles` or `rules`"),
            ),
        }
    }
    check_version(version, root_span, diagnostics);
    compile_rules(rule_values, &roles, diagnostics)
}

fn check_version(
    version: Option<Spanned<DeValue<'_>>>,
    root_span: Range<usize>,
    diagnostics: &mut Diagnostics<'_>,
) {
    let Some(version) = version else {
        diagnostics.error(
            root_span.start..root_span.start,
            "missing `version = 1` at the top of the policy",
        );
        return;
    };
    let span = version.span();
    match version
        .get_ref()
        .as_integer()
        .and_then(|v| v.as_str().parse::<i64>().ok())
    {
        Some(FORMAT_VERSION) => {}
        _ => diagnostics.error(
            span,
            format!("unsupported policy version; this build reads `version = {FORMAT_VERSION}`"),
        ),
    }
}

fn array_items<'i>(
    value: Spanned<DeValue<'i>>,
    key: &str,
    diagnostics: &mut Diagnostics<'_>,
) -> Vec<Spanned<DeValue<'i>>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.to_vec(),
        _ => {
            diagnostics.error(
                span,
                format!("`{key}` must be an array of tables (`[[{key}]]`)"),
            );
            Vec::new()
        }
    }
}

fn deserialize<'i, T: Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            diagnostics.serde_error(&error, span);
            None
        }
    }
}

/// The actions of a custom role.
#[derive(Debug)]
struct Role {
    actions: ActionSet,
}

fn compile_roles(
    value: Spanned<DeValue<'_>>,
    diagnostics: &mut Diagnostics<'_>,
) -> HashMap<String, Role> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        diagnostics.error(span, "`roles` must be a table of roles (`[roles.NAME]`)");
        return HashMap::new();
    };
    let mut roles = HashMap::new();
    for (name, value) in table {
        let name_span = name.span();
        let name = name.into_inner().into_owned();
        if action::built_in_role(&name).is_some() {
            diagnostics.error(
                name_span.clone(),
                format!("role `{name}` has the name of a built-in role; choose another name"),
            );
        }
        let Some(file) = deserialize::<RoleFile>(value, diagnostics) else {
            continue;
        };
        if file.actions.is_empty() {
            diagnostics.warning(
                name_span,
                format!("role `{name}` has no actions, so it grants nothing"),
            );
        }
        let actions = compile_actions(&file.actions, diagnostics);
        roles.insert(name, Role { actions });
    }
    roles
}

fn compile_actions(names: &[Spanned<String>], diagnostics: &mut Diagnostics<'_>) -> ActionSet {
    let mut set = ActionSet::EMPTY;
    for name in names {
        match action::parse_action(name.get_ref()) {
            Some(ParsedAction::Exact(actions)) => set = set.union(actions),
            Some(ParsedAction::CaseDiffers(actions, canonical)) => {
                diagnostics.warning(
                    name.span(),
                    format!(
                        "action `{}` differs in case from `{canonical}`; write it as documented",
                        name.get_ref()
                    ),
                );
                set = set.union(actions);
            }
            None => diagnostics.error(name.span(), unknown_action_message(name.get_ref())),
        }
    }
    set
}

fn unknown_action_message(name: &str) -> String {
    match action::suggest_action(name) {
        Some(suggestion) => format!("unknown action `{name}`; did you mean `{suggestion}`?"),
        None => format!(
            "unknown action `{name}`; expected a Cosmos DB data action such as `items/read` or a Cosmoguard action such as `containers/create` (see the action table in policy/README.md)"
        ),
    }
}

fn compile_rules(
    values: Vec<Spanned<DeValue<'_>>>,
    roles: &HashMap<String, Role>,
    diagnostics: &mut Diagnostics<'_>,
) -> Vec<RuleSource> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::new();
    for value in values {
        let span = value.span();
        let Some(file) = deserialize::<RuleFile>(value, diagnostics) else {
            continue;
        };
        let id = file.id.get_ref().clone();
        let (line, _) = diagnostics.position(file.id.span().start);
        if let Some(first_line) = seen.insert(id.clone(), line) {
            diagnostics.error(
                file.id.span(),
                format!("duplicate rule id `{id}`; it is already used on line {first_line}"),
            );
        }
        if let Some(rule) = compile_rule(file, line, roles, diagnostics) {
            rules.push(RuleSource { span, ..rule });
        }
    }
    rules
}

fn compile_rule(
    file: RuleFile,
    line: usize,
    roles: &HashMap<String, Role>,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<RuleSource> {
    let errors_before = diagnostics.errors.len();
    let id = file.id.get_ref().trim();
    if id.is_empty() {
        diagnostics.error(file.id.span(), "rule `id` must not be empty");
    }

    let effect = match file.effect.as_ref().map(Spanned::get_ref) {
        Some(EffectFile::Deny) => Effect::Deny,
        Some(EffectFile::Allow) | None => Effect::Allow,
    };

    let actions = rule_actions(&file, roles, diagnostics);
    let (scopes, scope_spans) = rule_scopes(&file, diagnostics);

    let principal = file
        .principal
        .as_ref()
        .map(|p| compile_principal(p, diagnostics));
    let partition_key = file
        .partition_key
        .as_ref()
        .map(|list| compile_patterns(list, diagnostics));
    let items = file
        .items
        .as_ref()
        .map(|list| compile_patterns(list, diagnostics));
    let resource_ids = file
        .resource_ids
        .as_ref()
        .map(|list| compile_patterns(list, diagnostics));
    let when = file
        .when
        .as_ref()
        .map(|c| compile_condition(c, &Zone::default(), diagnostics));

    if diagnostics.errors.len() > errors_before {
        return None;
    }

    let rule = CompiledRule {
        id: id.into(),
        description: file.description.map(Into::into),
        effect,
        actions,
        scopes,
        principal,
        partition_key,
        items,
        resource_ids,
        when,
        line,
    };
    Some(RuleSource {
        rule,
        span: 0..0,
        scope_spans,
    })
}

fn rule_actions(
    file: &RuleFile,
    roles: &HashMap<String, Role>,
    diagnostics: &mut Diagnostics<'_>,
) -> ActionSet {
    if file.roles.is_empty() && file.actions.is_empty() {
        diagnostics.error(
            file.id.span(),
            format!("rule `{}` needs `roles` or `actions`", file.id.get_ref()),
        );
    }
    let mut set = compile_actions(&file.actions, diagnostics);
    for role in &file.roles {
        match resolve_role(role.get_ref(), roles) {
            Some(actions) => set = set.union(actions),
            None => diagnostics.error(role.span(), unknown_role_message(role.get_ref(), roles)),
        }
    }
    set
}

fn resolve_role(name: &str, roles: &HashMap<String, Role>) -> Option<ActionSet> {
    if let Some(role) = roles.get(name) {
        return Some(role.actions);
    }
    action::built_in_role(name).map(action::built_in_role_actions)
}

fn unknown_role_message(name: &str, roles: &HashMap<String, Role>) -> String {
    let mut known: Vec<&str> = roles.keys().map(String::as_str).collect();
    known.sort_unstable();
    known.extend(action::BUILT_IN_ROLES.iter().map(|role| role.name));
    format!(
        "unknown role `{name}`; define it under `[roles.{name}]` or use one of: {}",
        known.join(", ")
    )
}

fn rule_scopes(
    file: &RuleFile,
    diagnostics: &mut Diagnostics<'_>,
) -> (Box<[Scope]>, Vec<Range<usize>>) {
    let Some(list) = &file.scopes else {
        diagnostics.error(
            file.id.span(),
            format!(
                "rule `{}` needs `scopes`; write `scopes = [\"/\"]` for the whole account",
                file.id.get_ref()
            ),
        );
        return (Box::new([]), Vec::new());
    };
    if list.get_ref().is_empty() {
        diagnostics.error(
            list.span(),
            "`scopes` is empty, so the rule could never apply; name at least one scope",
        );
    }
    let mut scopes = Vec::new();
    let mut spans = Vec::new();
    for scope in list.get_ref() {
        match Scope::parse(scope.get_ref()) {
            Ok(parsed) => {
                scopes.push(parsed);
                spans.push(scope.span());
            }
            Err(message) => diagnostics.error(scope.span(), message),
        }
    }
    (scopes.into(), spans)
}

fn compile_patterns(
    list: &Spanned<Vec<Spanned<String>>>,
    diagnostics: &mut Diagnostics<'_>,
) -> Box<[Pattern]> {
    list.get_ref()
        .iter()
        .filter_map(|text| template_pattern(text, true, diagnostics))
        .collect()
}

fn template_pattern(
    text: &Spanned<String>,
    templates: bool,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<Pattern> {
    Pattern::parse(text.get_ref(), templates)
        .map_err(|message| diagnostics.error(text.span(), message))
        .ok()
}

fn plain_patterns(list: &[Spanned<String>], diagnostics: &mut Diagnostics<'_>) -> Box<[Pattern]> {
    list.iter()
        .filter_map(|text| template_pattern(text, false, diagnostics))
        .collect()
}

pub(crate) fn compile_principal(
    file: &Spanned<PrincipalFile>,
    diagnostics: &mut Diagnostics<'_>,
) -> Condition {
    let principal = file.get_ref();
    let errors_before = diagnostics.errors.len();
    let mut tests = Vec::new();
    let single = |text: &Option<Spanned<String>>, diagnostics: &mut Diagnostics<'_>| {
        text.as_ref()
            .and_then(|t| template_pattern(t, false, diagnostics))
    };

    if let Some(pattern) = single(&principal.issuer, diagnostics) {
        tests.push(Condition::Issuer(pattern));
    }
    if let Some(pattern) = single(&principal.subject, diagnostics) {
        tests.push(Condition::Subject(pattern));
    }
    if let Some(pattern) = single(&principal.app_id, diagnostics) {
        tests.push(Condition::AppId(pattern));
    }

    if let Some(list) = &principal.groups {
        tests.push(Condition::Groups(plain_patterns(list, diagnostics)));
    }
    if let Some(list) = &principal.roles {
        tests.push(Condition::Roles(plain_patterns(list, diagnostics)));
    }
    if let Some(list) = &principal.scopes {
        tests.push(Condition::Scopes(plain_patterns(list, diagnostics)));
    }
    if let Some(claims) = &principal.claims {
        tests.extend(compile_claims(claims, diagnostics));
    }

    compile_combinators(
        &mut tests,
        (&principal.any, &principal.all, &principal.not),
        compile_principal,
        diagnostics,
    );

    // A test that failed to compile has its own error, and the matcher was not empty.
    if tests.is_empty() && diagnostics.errors.len() == errors_before {
        diagnostics.warning(
            file.span(),
            "empty principal matcher: it matches every authenticated caller",
        );
    }
    Condition::All(tests.into())
}

type Combinators<'f, T> = (
    &'f Option<Vec<Spanned<T>>>,
    &'f Option<Vec<Spanned<T>>>,
    &'f Option<Box<Spanned<T>>>,
);

fn compile_combinators<T>(
    tests: &mut Vec<Condition>,
    (any, all, not): Combinators<'_, T>,
    compile_one: impl Fn(&Spanned<T>, &mut Diagnostics<'_>) -> Condition,
    diagnostics: &mut Diagnostics<'_>,
) {
    if let Some(list) = any {
        tests.push(Condition::Any(
            list.iter()
                .map(|item| compile_one(item, diagnostics))
                .collect(),
        ));
    }
    if let Some(list) = all {
        tests.push(Condition::All(
            list.iter()
                .map(|item| compile_one(item, diagnostics))
                .collect(),
        ));
    }
    if let Some(item) = not {
        tests.push(Condition::Not(Box::new(compile_one(item, diagnostics))));
    }
}

fn compile_claims(
    claims: &BTreeMap<String, Spanned<toml::Value>>,
    diagnostics: &mut Diagnostics<'_>,
) -> Vec<Condition> {
    let mut tests = Vec::new();
    for (name, value) in claims {
        let path = match ClaimPath::parse(name) {
            Ok(path) => path,
            Err(message) => {
                diagnostics.error(value.span(), message);
                continue;
            }
        };
        if let Some(test) = claim_test(value.get_ref(), value.span(), diagnostics) {
            tests.push(Condition::Claim(path, test));
        }
    }
    tests
}

fn claim_test(
    value: &toml::Value,
    span: Range<usize>,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<ClaimTest> {
    match value {
        toml::Value::String(text) => match Pattern::parse(text, false) {
            Ok(pattern) => Some(ClaimTest::Text(pattern)),
            Err(message) => {
                diagnostics.error(span, message);
                None
            }
        },
        toml::Value::Boolean(flag) => Some(ClaimTest::Bool(*flag)),
        // Claim numbers are compared through `serde_json::Value::as_f64`, so the bound is f64 too.
        toml::Value::Integer(number) => Some(ClaimTest::Number(*number as f64)),
        toml::Value::Float(number) => Some(ClaimTest::Number(*number)),
        toml::Value::Array(values) => {
            let tests: Option<Vec<ClaimTest>> = values
                .iter()
                .map(|v| claim_test(v, span.clone(), diagnostics))
                .collect();
            tests.map(|tests| ClaimTest::AnyOf(tests.into()))
        }
        toml::Value::Table(table) => claim_table_test(table, span, diagnostics),
        toml::Value::Datetime(_) => {
            diagnostics.error(span, "a claim cannot be compared with a date; use `[rules.when]` `not_before` or `not_after`");
            None
        }
    }
}

fn claim_table_test(
    table: &toml::Table,
    span: Range<usize>,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<ClaimTest> {
    if let Some(present) = table.get("present") {
        return match (present.as_bool(), table.len()) {
            (Some(flag), 1) => Some(ClaimTest::Present(flag)),
            _ => {
                diagnostics.error(span, "`present` takes `true` or `false` and no other key");
                None
            }
        };
    }
    let mut bounds = [None; 4];
    for (key, value) in table {
        let Some(slot) = ["gt", "ge", "lt", "le"].iter().position(|name| name == key) else {
            diagnostics.error(
                span.clone(),
                format!(
                    "unknown claim comparison `{key}`; expected `gt`, `ge`, `lt`, `le` or `present`"
                ),
            );
            return None;
        };
        let number = value
            .as_float()
            .or_else(|| value.as_integer().map(|n| n as f64));
        let Some(number) = number else {
            diagnostics.error(
                span.clone(),
                format!("claim comparison `{key}` needs a number"),
            );
            return None;
        };
        bounds[slot] = Some(number);
    }
    if table.is_empty() {
        diagnostics.error(
            span,
            "empty claim comparison; give `gt`, `ge`, `lt`, `le` or `present`",
        );
        return None;
    }
    let [gt, ge, lt, le] = bounds;
    Some(ClaimTest::Range { gt, ge, lt, le })
}

/// Compiles a `when` table. `outer_zone` is the time zone of the table around it, or UTC
/// for a rule's own table. The table's `time_zone` replaces it here and inside.
pub(crate) fn compile_condition(
    file: &Spanned<ConditionFile>,
    outer_zone: &Zone,
    diagnostics: &mut Diagnostics<'_>,
) -> Condition {
    let condition = file.get_ref();
    let zone = match &condition.time_zone {
        Some(name) => compile_zone(name, condition, diagnostics),
        None => outer_zone.clone(),
    };
    // Counted after the zone, so an unknown `time_zone` alone still gets the empty warning.
    let errors_before = diagnostics.errors.len();
    let mut tests = Vec::new();
    if let Some(principal) = &condition.principal {
        tests.push(compile_principal(principal, diagnostics));
    }
    if let Some(claims) = &condition.claims {
        tests.extend(compile_claims(claims, diagnostics));
    }

    if let Some(days) = &condition.days {
        tests.push(Condition::Days {
            days: compile_days(days, diagnostics),
            zone: zone.clone(),
        });
    }
    if let Some(hours) = &condition.hours {
        tests.extend(compile_hours(hours, &zone, diagnostics));
    }
    if let Some(value) = &condition.not_before {
        tests.extend(compile_time(value, &zone, diagnostics).map(Condition::NotBefore));
    }
    if let Some(value) = &condition.not_after {
        tests.extend(compile_time(value, &zone, diagnostics).map(Condition::NotAfter));
    }

    if let Some(list) = &condition.source_addresses {
        tests.push(Condition::SourceAddresses(compile_networks(
            list,
            diagnostics,
        )));
    }
    if let Some(flag) = &condition.single_partition {
        tests.push(Condition::SinglePartition(*flag.get_ref()));
    }
    if let Some(max) = &condition.max_item_count {
        if *max.get_ref() < 1 {
            diagnostics.error(max.span(), "`max_item_count` must be at least 1");
        }
        tests.push(Condition::MaxItemCount(*max.get_ref()));
    }
    if let Some(levels) = &condition.consistency_levels {
        tests.push(Condition::ConsistencyLevels(compile_consistency(
            levels,
            diagnostics,
        )));
    }

    compile_combinators(
        &mut tests,
        (&condition.any, &condition.all, &condition.not),
        |inner, diagnostics| compile_condition(inner, &zone, diagnostics),
        diagnostics,
    );

    // A test that failed to compile has its own error, and the table was not empty.
    if tests.is_empty() && diagnostics.errors.len() == errors_before {
        diagnostics.warning(file.span(), "empty `when` condition: it always holds");
    }
    Condition::All(tests.into())
}

/// Looks up a `time_zone`, and warns when nothing in its table reads the clock.
fn compile_zone(
    name: &Spanned<String>,
    condition: &ConditionFile,
    diagnostics: &mut Diagnostics<'_>,
) -> Zone {
    if !reads_clock(condition) {
        diagnostics.warning(
            name.span(),
            "`time_zone` has no effect: neither this table nor a table inside it has `days`, \
             `hours`, `not_before` or `not_after`",
        );
    }
    Zone::named(name.get_ref().trim()).unwrap_or_else(|| {
        diagnostics.error(
            name.span(),
            format!(
                "unknown time zone `{}`; expected an IANA name such as `Europe/Berlin`, \
                 `America/New_York` or `UTC`",
                name.get_ref()
            ),
        );
        Zone::default()
    })
}

/// Returns true when the table, or a table inside it that keeps its zone, reads the clock.
fn reads_clock(condition: &ConditionFile) -> bool {
    let own = condition.days.is_some()
        || condition.hours.is_some()
        || condition.not_before.is_some()
        || condition.not_after.is_some();
    let inner = |file: &Spanned<ConditionFile>| {
        let inner = file.get_ref();
        inner.time_zone.is_none() && reads_clock(inner)
    };
    own || condition.any.iter().flatten().any(inner)
        || condition.all.iter().flatten().any(inner)
        || condition.not.as_deref().is_some_and(inner)
}

fn compile_days(days: &[Spanned<String>], diagnostics: &mut Diagnostics<'_>) -> u8 {
    let mut mask = 0u8;
    for day in days {
        let lowered = day.get_ref().to_ascii_lowercase();
        let index = DAY_NAMES
            .iter()
            .position(|name| lowered == *name || lowered == full_day_name(name));
        match index {
            Some(index) => mask |= 1 << index,
            None => diagnostics.error(
                day.span(),
                format!(
                    "invalid day `{}`; expected mon, tue, wed, thu, fri, sat or sun",
                    day.get_ref()
                ),
            ),
        }
    }
    if days.is_empty() {
        diagnostics.warning(0..0, "empty `days` list: the condition never holds");
    }
    mask
}

fn full_day_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn compile_hours(
    hours: &Spanned<String>,
    zone: &Zone,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<Condition> {
    let parsed = hours.get_ref().split_once('-').and_then(|(start, end)| {
        Some((
            parse_clock(start.trim(), false)?,
            parse_clock(end.trim(), true)?,
        ))
    });
    match parsed {
        Some((start, end)) if start != end => Some(Condition::Hours {
            start,
            end,
            zone: zone.clone(),
        }),
        Some(_) => {
            diagnostics.error(
                hours.span(),
                "`hours` start and end are equal; remove `hours` to allow the whole day",
            );
            None
        }
        None => {
            diagnostics.error(
                hours.span(),
                format!(
                    "invalid `hours` `{}`; expected `HH:MM-HH:MM` in {zone} with two-digit hours \
                     00-23 and minutes 00-59, such as `08:00-18:00` (`24:00` may end the window)",
                    hours.get_ref()
                ),
            );
            None
        }
    }
}

/// Parses two-digit `HH:MM` on the 24-hour clock into minutes since midnight. `24:00`, the
/// end of the day, is accepted only when `end_of_day` is set.
fn parse_clock(text: &str, end_of_day: bool) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    match (two_digits(hours)?, two_digits(minutes)?) {
        (24, 0) if end_of_day => Some(24 * 60),
        (hours @ 0..=23, minutes @ 0..=59) => Some(hours * 60 + minutes),
        _ => None,
    }
}

/// Parses exactly two ASCII digits, so `8`, `+8` and `008` are rejected.
fn two_digits(text: &str) -> Option<u32> {
    let &[tens, ones] = text.as_bytes() else {
        return None;
    };
    (tens.is_ascii_digit() && ones.is_ascii_digit())
        .then(|| u32::from(tens - b'0') * 10 + u32::from(ones - b'0'))
}

fn compile_time(
    value: &Spanned<toml::Value>,
    zone: &Zone,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<i64> {
    let parsed = match value.get_ref() {
        toml::Value::Datetime(datetime) => time::unix_seconds(datetime, zone),
        toml::Value::String(text) => text
            .parse()
            .map_err(|_| TimeError::Malformed)
            .and_then(|datetime| time::unix_seconds(&datetime, zone)),
        _ => Err(TimeError::Malformed),
    };
    let error = match parsed {
        Ok(seconds) => return Some(seconds),
        Err(error) => error,
    };
    let written = match value.get_ref() {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let message = match error {
        TimeError::Malformed | TimeError::NoOffset => format!(
            "invalid time `{written}`; expected an RFC 3339 date-time with an offset, such as \
             `2026-01-31T18:00:00Z`, or a date such as `2026-01-31` (midnight in {zone}); \
             set `time_zone` to write local date-times without an offset"
        ),
        TimeError::Repeated => format!(
            "`{written}` happens twice in {zone}, when its clocks are set back; add the offset \
             you mean, such as `+01:00`"
        ),
        TimeError::Skipped => format!(
            "`{written}` does not happen in {zone}, when its clocks are set forward; pick a \
             time outside the change or add an offset"
        ),
    };
    diagnostics.error(value.span(), message);
    None
}

fn compile_networks(
    list: &[Spanned<String>],
    diagnostics: &mut Diagnostics<'_>,
) -> Box<[ipnet::IpNet]> {
    list.iter()
        .filter_map(|text| {
            let raw = text.get_ref().trim();
            let parsed = raw
                .parse::<ipnet::IpNet>()
                .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| diagnostics.error(text.span(), format!("invalid address range `{raw}`; expected CIDR such as `10.0.0.0/8` or `2001:db8::/32`, or one address")))
                .ok()
        })
        .collect()
}

const CONSISTENCY_LEVELS: [&str; 5] = [
    "Strong",
    "BoundedStaleness",
    "Session",
    "ConsistentPrefix",
    "Eventual",
];

fn compile_consistency(
    levels: &[Spanned<String>],
    diagnostics: &mut Diagnostics<'_>,
) -> Box<[Box<str>]> {
    levels
        .iter()
        .filter_map(|level| {
            let known = CONSISTENCY_LEVELS
                .iter()
                .find(|known| known.eq_ignore_ascii_case(level.get_ref()));
            if known.is_none() {
                diagnostics.error(
                    level.span(),
                    format!(
                        "unknown consistency level `{}`; expected one of {}",
                        level.get_ref(),
                        CONSISTENCY_LEVELS.join(", ")
                    ),
                );
            }
            known.map(|name| Box::from(*name))
        })
        .collect()
}
