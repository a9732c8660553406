use serde_json::json;

use super::*;
use crate::testing::{principal, with_claim};

fn pattern(source: &str) -> Pattern {
    Pattern::parse(source, true).unwrap()
}

#[test]
fn exact_pattern_compares_whole_value() {
    let exact = pattern("orders");
    assert_eq!(exact.exact(), Some("orders"));
    assert!(exact.matches_plain("orders"));
    assert!(!exact.matches_plain("orders-2"));
    assert!(!exact.matches_plain("Orders"));
}

#[test]
fn star_matches_any_run() {
    let glob = pattern("orders-*");
    assert!(glob.matches_plain("orders-"));
    assert!(glob.matches_plain("orders-eu"));
    assert!(!glob.matches_plain("order"));
    let middle = pattern("a*b*c");
    assert!(middle.matches_plain("abc"));
    assert!(middle.matches_plain("a--b--c"));
    assert!(middle.matches_plain("abcbc"));
    assert!(!middle.matches_plain("acb"));
    assert!(pattern("*").matches_everything());
    assert!(pattern("*").matches_plain(""));
}

#[test]
fn question_mark_matches_one_character() {
    let glob = pattern("v?");
    assert!(glob.matches_plain("v1"));
    assert!(glob.matches_plain("vé"));
    assert!(!glob.matches_plain("v"));
    assert!(!glob.matches_plain("v12"));
}

#[test]
fn backslash_escapes_glob_characters() {
    let escaped = pattern("a\\*b");
    assert_eq!(escaped.exact(), Some("a*b"));
    assert!(!escaped.matches_plain("axb"));
    assert!(Pattern::parse("trailing\\", true).is_err());
}

#[test]
fn template_fills_claims() {
    let caller = with_claim(principal("alice"), "tid", json!("t1"));
    let own = pattern("{claims.tid}");
    assert!(own.matches("t1", &caller));
    assert!(!own.matches("t2", &caller));
    let prefixed = pattern("{subject}-*");
    assert!(prefixed.matches("alice-1", &caller));
    assert!(!prefixed.matches("bob-1", &caller));
    assert!(pattern("{issuer}").matches("http://127.0.0.1:8080", &caller));
}

#[test]
fn template_reads_nested_and_dotted_claims() {
    let caller = with_claim(principal("alice"), "ext", json!({ "team": { "id": 42 } }));
    let caller = with_claim(caller, "http://example.com/tenant", json!("t9"));
    assert!(pattern("{claims.ext.team.id}").matches("42", &caller));
    assert!(pattern("{claims.http://example.com/tenant}").matches("t9", &caller));
}

#[test]
fn missing_or_empty_claim_never_matches() {
    let caller = with_claim(principal("alice"), "empty", json!(""));
    let caller = with_claim(caller, "list", json!(["a"]));
    assert!(!pattern("{claims.tid}").matches("", &caller));
    assert!(!pattern("{claims.tid}*").matches("anything", &caller));
    assert!(!pattern("{claims.empty}*").matches("anything", &caller));
    assert!(!pattern("{claims.list}").matches("[\"a\"]", &caller));
    assert!(!pattern("{app_id}").matches("", &caller));
}

#[test]
fn invalid_templates_are_rejected() {
    assert!(Pattern::parse("{claims.tid", true).is_err());
    assert!(Pattern::parse("{tenant}", true).is_err());
    assert!(Pattern::parse("{claims.}", true).is_err());
    assert!(Pattern::parse("tid}", true).is_err());
    assert!(Pattern::parse("{subject}", false).is_err());
}

#[test]
fn number_claims_format_without_allocation() {
    let caller = with_claim(principal("alice"), "n", json!(-12.5));
    assert!(pattern("{claims.n}").matches("-12.5", &caller));
    let huge = with_claim(principal("alice"), "n", json!(1e300));
    assert!(!pattern("{claims.n}*").matches(&"1".repeat(301), &huge));
}
