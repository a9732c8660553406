use super::*;

fn report(text: &str) -> CheckReport {
    check(text, "policy.toml")
}

fn messages(errors: &[PolicyError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

const HEADER: &str = "version = 1\n";

#[test]
fn syntax_error_has_line_and_column() {
    let report = report("version = 1\n[[rules]\n");
    assert_eq!(report.errors.len(), 1, "{:?}", messages(&report.errors));
    assert_eq!(report.errors[0].line, 2);
    assert!(report.policy.is_none());
}

#[test]
fn every_rule_error_is_reported() {
    let text = format!(
        "{HEADER}
[[rules]]
id = \"a\"
roles = [\"missing-role\"]
scopes = [\"/dbs/shop\"]

[[rules]]
id = \"a\"
actions = [\"items/reed\"]
scopes = [\"shop\"]

[[rules]]
id = \"c\"
actions = [\"items/read\"]
scopes = [\"/\"]
colour = \"blue\"

[[rules]]
id = \"d\"
actions = [\"items/read\"]
scopes = [\"/dbs/{{claims.tid\"]
when = {{ source_addresses = [\"10.0.0.0/33\"] }}
"
    );
    let report = report(&text);
    let found = messages(&report.errors);
    assert_eq!(found.len(), 7, "{found:#?}");
    assert!(
        found[0].starts_with("policy.toml:5:10: unknown role `missing-role`"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("policy.toml:9:6: duplicate rule id `a`"),
        "{found:#?}"
    );
    assert!(found[2].contains("did you mean `items/read`"), "{found:#?}");
    assert!(found[3].contains("invalid scope `shop`"), "{found:#?}");
    assert!(found[4].contains("unknown field `colour`"), "{found:#?}");
    assert!(found[5].contains("is not closed"), "{found:#?}");
    assert!(
        found[6].contains("invalid address range `10.0.0.0/33`"),
        "{found:#?}"
    );
}

#[test]
fn missing_version_is_an_error() {
    let report = report("[[rules]]\nid = \"a\"\nactions = [\"items/read\"]\nscopes = [\"/\"]\n");
    assert!(messages(&report.errors)[0].contains("missing `version = 1`"));
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let report = report("version = 1\nrule = []\n");
    assert!(messages(&report.errors)[0].contains("unknown top-level key `rule`"));
}

#[test]
fn rule_without_actions_or_scopes_is_an_error() {
    let report = report("version = 1\n[[rules]]\nid = \"a\"\n");
    let found = messages(&report.errors);
    assert!(
        found
            .iter()
            .any(|m| m.contains("needs `roles` or `actions`")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|m| m.contains("needs `scopes`")),
        "{found:#?}"
    );
}

#[test]
fn condition_errors_are_reported() {
    let text = format!(
        "{HEADER}
[[rules]]
id = \"a\"
actions = [\"items/read\"]
scopes = [\"/\"]
principal = {{ subject = \"x\" }}
[rules.when]
days = [\"someday\"]
hours = \"8-18\"
not_before = \"yesterday\"
consistency_levels = [\"Strongest\"]
claims = {{ level = {{ over = 3 }} }}
"
    );
    let found = messages(&report(&text).errors);
    assert_eq!(found.len(), 5, "{found:#?}");
}

fn when_table(body: &str) -> String {
    format!(
        "{HEADER}[[rules]]\nid = \"a\"\nactions = [\"items/read\"]\nscopes = [\"/\"]\nprincipal = {{ subject = \"x\" }}\n[rules.when]\n{body}"
    )
}

#[test]
fn unknown_time_zone_is_error() {
    let report = report(&when_table(
        "time_zone = \"Europe/Berln\"\nhours = \"08:00-18:00\"\n",
    ));
    let found = messages(&report.errors);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("unknown time zone `Europe/Berln`"),
        "{found:#?}"
    );
    assert_eq!(report.errors[0].line, 8);
}

#[test]
fn unused_time_zone_warns() {
    let unused = report(&when_table(
        "time_zone = \"Europe/Berlin\"\nsource_addresses = [\"10.0.0.0/8\"]\n",
    ));
    assert!(unused.errors.is_empty(), "{:?}", unused.errors);
    assert_eq!(unused.warnings.len(), 1, "{:?}", unused.warnings);
    assert!(
        unused.warnings[0]
            .message
            .contains("`time_zone` has no effect")
    );

    let nested = report(&when_table(
        "time_zone = \"Europe/Berlin\"\n[[rules.when.any]]\nhours = \"08:00-18:00\"\n",
    ));
    assert!(nested.warnings.is_empty(), "{:?}", nested.warnings);
}

#[test]
fn hours_need_two_digit_clock_times() {
    for hours in [
        "8:0-17:00",
        "8:00-17:00",
        "08:0-17:00",
        "08:00-7:00",
        "+8:00-17:00",
        "008:00-17:00",
        "08:00-17:00-19:00",
        "0800-1700",
        "24:00-06:00",
        "25:00-06:00",
        "08:60-17:00",
        "08:00-24:01",
        "08:00-24:30",
    ] {
        let found = messages(&report(&when_table(&format!("hours = \"{hours}\"\n"))).errors);
        assert_eq!(found.len(), 1, "{hours}: {found:#?}");
        assert!(
            found[0].contains(&format!("invalid `hours` `{hours}`")),
            "{found:#?}"
        );
        assert!(found[0].contains("expected `HH:MM-HH:MM`"), "{found:#?}");
    }
}

#[test]
fn hours_accept_full_clock_range() {
    for hours in ["00:00-23:59", "22:00-06:00", "08:30-24:00", "00:00-24:00"] {
        let report = report(&when_table(&format!("hours = \"{hours}\"\n")));
        assert!(report.errors.is_empty(), "{hours}: {:?}", report.errors);
        assert!(report.warnings.is_empty(), "{hours}: {:?}", report.warnings);
    }
}

#[test]
fn failed_when_test_is_not_empty_table() {
    for body in [
        "hours = \"8-18\"\n",
        "not_before = \"yesterday\"\n",
        "claims = { level = { over = 3 } }\n",
        "[[rules.when.any]]\nhours = \"8-18\"\n",
    ] {
        let report = report(&when_table(body));
        let found = messages(&report.errors);
        assert_eq!(found.len(), 1, "{body}: {found:#?}");
        assert!(report.warnings.is_empty(), "{body}: {:?}", report.warnings);
    }
}

#[test]
fn empty_when_table_warns() {
    for body in ["", "claims = {}\n", "[[rules.when.any]]\n"] {
        let report = report(&when_table(body));
        assert!(report.errors.is_empty(), "{body}: {:?}", report.errors);
        assert!(
            report
                .warnings
                .iter()
                .any(|warning| warning.message.contains("empty `when` condition")),
            "{body}: {:?}",
            report.warnings
        );
    }
}

#[test]
fn zone_error_keeps_empty_when_warning() {
    let report = report(&when_table("time_zone = \"Europe/Berln\"\n"));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report
            .warnings
            .iter()
            .any(|warning| warning.message.contains("empty `when` condition")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn failed_principal_test_is_not_empty_matcher() {
    let text = format!(
        "{HEADER}[[rules]]\nid = \"a\"\nactions = [\"items/read\"]\nscopes = [\"/\"]\nprincipal = {{ subject = \"{{claims.tid\" }}\n"
    );
    let report = report(&text);
    let found = messages(&report.errors);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("invalid pattern `{claims.tid`"),
        "{found:#?}"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn local_times_at_a_clock_change_are_errors() {
    let report = report(&when_table(
        "time_zone = \"Europe/Berlin\"\nnot_before = 2026-10-25T02:30:00\nnot_after = 2026-03-29T02:30:00\n",
    ));
    let found = messages(&report.errors);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains("happens twice in Europe/Berlin"),
        "{found:#?}"
    );
    assert!(
        found[1].contains("does not happen in Europe/Berlin"),
        "{found:#?}"
    );
}

#[test]
fn local_time_needs_offset_without_zone() {
    let found = messages(&report(&when_table("not_before = 2026-01-31T18:00:00\n")).errors);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("set `time_zone`"), "{found:#?}");
}

#[test]
fn case_difference_is_a_warning() {
    let text = format!(
        "{HEADER}[[rules]]\nid = \"a\"\nactions = [\"Items/Read\"]\nscopes = [\"/\"]\nprincipal = {{ subject = \"x\" }}\n"
    );
    let report = report(&text);
    assert!(report.errors.is_empty());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].message.contains("differs in case"));
}

#[test]
fn allow_shadowed_by_deny_is_a_warning() {
    let text = format!(
        "{HEADER}
[[rules]]
id = \"no-writes\"
effect = \"deny\"
actions = [\"items/*\"]
scopes = [\"/dbs/shop\"]

[[rules]]
id = \"writer\"
actions = [\"items/create\"]
scopes = [\"/dbs/shop/colls/orders\"]
principal = {{ subject = \"x\" }}
"
    );
    let report = report(&text);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0]
            .message
            .contains("earlier deny rule `no-writes`")
    );
}

#[test]
fn partially_shadowed_allow_is_not_flagged() {
    let text = format!(
        "{HEADER}
[[rules]]
id = \"no-deletes\"
effect = \"deny\"
actions = [\"items/delete\"]
scopes = [\"/\"]

[[rules]]
id = \"writer\"
actions = [\"items/*\"]
scopes = [\"/\"]
principal = {{ subject = \"x\" }}
"
    );
    assert!(report(&text).warnings.is_empty());
}

#[test]
fn rules_that_never_apply_are_warnings() {
    let text = format!(
        "{HEADER}
[[rules]]
id = \"pk-on-metadata\"
actions = [\"readMetadata\"]
scopes = [\"/\"]
principal = {{ subject = \"x\" }}
partition_key = [\"a\"]

[[rules]]
id = \"database-delete-in-container\"
actions = [\"databases/delete\"]
scopes = [\"/dbs/shop/colls/orders\"]
principal = {{ subject = \"x\" }}

[[rules]]
id = \"items-on-query\"
actions = [\"executeQuery\"]
scopes = [\"/\"]
principal = {{ subject = \"x\" }}
items = [\"a\"]

[[rules]]
id = \"everyone\"
actions = [\"readMetadata\"]
scopes = [\"/\"]
"
    );
    let report = report(&text);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let warnings: Vec<&str> = report.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert!(warnings[0].contains("requires a partition key"));
    assert!(warnings[1].contains("never matches its actions"));
    assert!(warnings[2].contains("names `items`"));
    assert!(warnings[3].contains("every authenticated caller"));
}

#[test]
fn throughput_below_account_scope_passes() {
    let text = format!(
        "{HEADER}
[[rules]]
id = \"orders-throughput\"
actions = [\"throughput/read\", \"throughput/replace\"]
scopes = [\"/dbs/shop/colls/orders\", \"/dbs/hr\"]
principal = {{ subject = \"x\" }}
"
    );
    let report = report(&text);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn empty_role_grants_nothing() {
    let text = format!(
        "{HEADER}[roles.none]\nactions = []\n[[rules]]\nid = \"a\"\nroles = [\"none\"]\nscopes = [\"/\"]\nprincipal = {{ subject = \"x\" }}\n"
    );
    let report = report(&text);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.message.contains("grants nothing")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn role_named_like_built_in_is_an_error() {
    let text =
        format!("{HEADER}[roles.\"Cosmos DB Built-in Data Reader\"]\nactions = [\"items/read\"]\n");
    assert!(messages(&report(&text).errors)[0].contains("built-in role"));
}

#[test]
fn column_counts_characters() {
    let text = "version = 1\n[[rules]]\nid = \"é\"\nactions = [\"é\"]\nscopes = [\"/\"]\n";
    let report = report(text);
    assert_eq!(report.errors[0].line, 4);
    assert_eq!(report.errors[0].column, 12);
}

#[test]
fn policy_without_allow_rules_is_a_warning() {
    let report = report("version = 1\n");
    assert!(report.errors.is_empty());
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].message.contains("denies every request"));
}
