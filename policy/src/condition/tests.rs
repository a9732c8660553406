use serde_json::json;

use super::*;
use crate::OperationKind as K;
use crate::testing::*;

fn holds(
    condition: &Condition,
    principal: &Principal,
    request: &Request,
    context: &Context,
) -> bool {
    let on = Subject {
        principal,
        request,
        context,
        has_partition_key: request.partition_key.is_some(),
    };
    condition.holds(&on)
}

fn at(unix_time: i64) -> Context {
    Context {
        unix_time,
        ..context()
    }
}

fn query() -> Request {
    item(K::Query, "dbs/shop/colls/orders")
}

#[test]
fn weekday_counts_from_thursday_epoch() {
    assert_eq!(weekday(0), 3);
    assert_eq!(weekday(context().unix_time), 2);
    assert_eq!(weekday(-1), 2);
}

#[test]
fn hours_window_wraps_past_midnight() {
    let night = Condition::Hours {
        start: 22 * 60,
        end: 6 * 60,
    };
    let day = Condition::Hours {
        start: 8 * 60,
        end: 18 * 60,
    };
    let caller = principal("a");
    let midnight = 1_769_558_400;
    assert!(holds(&night, &caller, &query(), &at(midnight + 23 * 3600)));
    assert!(holds(&night, &caller, &query(), &at(midnight + 3600)));
    assert!(!holds(&night, &caller, &query(), &at(midnight + 12 * 3600)));
    assert!(holds(&day, &caller, &query(), &at(midnight + 8 * 3600)));
    assert!(!holds(&day, &caller, &query(), &at(midnight + 18 * 3600)));
}

#[test]
fn absolute_window_is_inclusive() {
    let window = Condition::All(vec![Condition::NotBefore(100), Condition::NotAfter(200)].into());
    let caller = principal("a");
    assert!(!holds(&window, &caller, &query(), &at(99)));
    assert!(holds(&window, &caller, &query(), &at(100)));
    assert!(holds(&window, &caller, &query(), &at(200)));
    assert!(!holds(&window, &caller, &query(), &at(201)));
}

#[test]
fn source_ranges_cover_ipv4_and_ipv6() {
    let ranges = Condition::SourceAddresses(
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]
        .into(),
    );
    let caller = principal("a");
    let from = |address: &str| Context {
        source_address: Some(address.parse().unwrap()),
        ..context()
    };
    assert!(holds(&ranges, &caller, &query(), &from("10.200.0.1")));
    assert!(holds(&ranges, &caller, &query(), &from("2001:db8::1")));
    assert!(!holds(&ranges, &caller, &query(), &from("192.0.2.1")));
    let unknown = Context {
        source_address: None,
        ..context()
    };
    assert!(!holds(&ranges, &caller, &query(), &unknown));
}

#[test]
fn claim_tests_cover_each_type() {
    let caller = with_claim(principal("a"), "level", json!(3));
    let caller = with_claim(caller, "verified", json!(true));
    let caller = with_claim(caller, "amr", json!(["pwd", "mfa"]));
    let check = |path: &str, test: ClaimTest| {
        holds(
            &Condition::Claim(ClaimPath::parse(path).unwrap(), test),
            &caller,
            &query(),
            &context(),
        )
    };

    assert!(check("level", ClaimTest::Number(3.0)));
    assert!(check(
        "level",
        ClaimTest::Range {
            gt: None,
            ge: Some(3.0),
            lt: Some(4.0),
            le: None
        }
    ));
    assert!(!check(
        "level",
        ClaimTest::Range {
            gt: Some(3.0),
            ge: None,
            lt: None,
            le: None
        }
    ));

    assert!(check("verified", ClaimTest::Bool(true)));
    assert!(!check("verified", ClaimTest::Bool(false)));
    assert!(check(
        "amr",
        ClaimTest::Text(Pattern::parse("mfa", false).unwrap())
    ));
    assert!(!check(
        "amr",
        ClaimTest::Text(Pattern::parse("otp", false).unwrap())
    ));

    assert!(check("missing", ClaimTest::Present(false)));
    assert!(check("amr", ClaimTest::Present(true)));
    assert!(!check("missing", ClaimTest::Number(3.0)));
}

#[test]
fn request_properties_are_tested() {
    let caller = principal("a");
    let mut request = with_key(query(), &[json!("p")]);
    request.properties.max_item_count = Some(50);
    request.properties.consistency_level = Some("Session".to_owned());

    assert!(holds(
        &Condition::SinglePartition(true),
        &caller,
        &request,
        &context()
    ));
    assert!(holds(
        &Condition::MaxItemCount(100),
        &caller,
        &request,
        &context()
    ));
    assert!(!holds(
        &Condition::MaxItemCount(10),
        &caller,
        &request,
        &context()
    ));
    let levels = Condition::ConsistencyLevels(vec![Box::from("Session")].into());
    assert!(holds(&levels, &caller, &request, &context()));

    request.properties.max_item_count = Some(-1);
    assert!(!holds(
        &Condition::MaxItemCount(100),
        &caller,
        &request,
        &context()
    ));

    request.properties.cross_partition = true;
    assert!(!holds(
        &Condition::SinglePartition(true),
        &caller,
        &request,
        &context()
    ));
    assert!(!holds(
        &Condition::SinglePartition(true),
        &caller,
        &query(),
        &context()
    ));
}

#[test]
fn combinators_nest() {
    let caller = principal("alice");
    let alice = Condition::Subject(Pattern::parse("alice", false).unwrap());
    let bob = Condition::Subject(Pattern::parse("bob", false).unwrap());
    let any = Condition::Any(vec![alice.clone(), bob.clone()].into());
    let all = Condition::All(vec![alice.clone(), bob.clone()].into());
    let not = Condition::Not(Box::new(bob));
    assert!(holds(&any, &caller, &query(), &context()));
    assert!(!holds(&all, &caller, &query(), &context()));
    assert!(holds(&not, &caller, &query(), &context()));
    assert!(holds(
        &Condition::All(Box::new([])),
        &caller,
        &query(),
        &context()
    ));
    assert!(!holds(
        &Condition::Any(Box::new([])),
        &caller,
        &query(),
        &context()
    ));
}

#[test]
fn explain_failure_names_first_false_test() {
    let caller = principal("alice");
    let condition = Condition::All(
        vec![
            Condition::Subject(Pattern::parse("alice", false).unwrap()),
            Condition::Groups(vec![Pattern::parse("admins", false).unwrap()].into()),
        ]
        .into(),
    );
    let on = Subject {
        principal: &caller,
        request: &query(),
        context: &context(),
        has_partition_key: false,
    };
    assert_eq!(
        condition.explain_failure(&on).as_deref(),
        Some("groups include one of [`admins`] is false")
    );
}
