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
        zone: Zone::default(),
    };
    let day = Condition::Hours {
        start: 8 * 60,
        end: 18 * 60,
        zone: Zone::default(),
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
fn zoned_hours_follow_daylight_saving() {
    let office = Condition::Hours {
        start: 8 * 60,
        end: 18 * 60,
        zone: Zone::named("Europe/Berlin").unwrap(),
    };
    let caller = principal("a");
    // 2026-01-28 and 2026-07-01 at 00:00 UTC. Berlin is UTC+1 in winter and UTC+2 in
    // summer, so 08:00 there is 07:00 UTC in winter and 06:00 UTC in summer.
    let winter = 1_769_558_400;
    let summer = 1_782_864_000;
    assert!(!holds(
        &office,
        &caller,
        &query(),
        &at(winter + 6 * 3600 + 59 * 60)
    ));
    assert!(holds(&office, &caller, &query(), &at(winter + 7 * 3600)));
    assert!(!holds(&office, &caller, &query(), &at(winter + 17 * 3600)));
    assert!(holds(&office, &caller, &query(), &at(summer + 6 * 3600)));
    assert!(!holds(
        &office,
        &caller,
        &query(),
        &at(summer + 5 * 3600 + 59 * 60)
    ));
    assert!(!holds(&office, &caller, &query(), &at(summer + 16 * 3600)));
}

#[test]
fn zoned_days_change_at_local_midnight() {
    // 2026-01-28 was a Wednesday. At 23:30 UTC it is already Thursday in Tokyo (UTC+9)
    // and still Wednesday in New York (UTC-5).
    let wednesday_late = 1_769_558_400 + 23 * 3600 + 30 * 60;
    let thursday = 1 << 3;
    let in_zone = |name: &str| Condition::Days {
        days: thursday,
        zone: Zone::named(name).unwrap(),
    };
    let caller = principal("a");
    let moment = at(wednesday_late);
    assert!(holds(&in_zone("Asia/Tokyo"), &caller, &query(), &moment));
    assert!(!holds(
        &in_zone("America/New_York"),
        &caller,
        &query(),
        &moment
    ));
    assert!(!holds(&in_zone("UTC"), &caller, &query(), &moment));
}

#[test]
fn zoned_conditions_name_their_zone() {
    let zone = Zone::named("america/new_york").unwrap();
    let hours = Condition::Hours {
        start: 9 * 60,
        end: 17 * 60,
        zone: zone.clone(),
    };
    assert_eq!(
        hours.to_string(),
        "America/New_York time is within 09:00-17:00"
    );
    let days = Condition::Days { days: 0b1, zone };
    assert_eq!(days.to_string(), "America/New_York day is one of mon");
    let after = Condition::NotBefore(1_769_882_400);
    assert_eq!(
        after.to_string(),
        "time is at or after 2026-01-31T18:00:00Z"
    );
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

fn pattern(text: &str) -> Pattern {
    Pattern::parse(text, false).unwrap()
}

fn groups(names: &[&str]) -> Condition {
    Condition::Groups(names.iter().map(|name| pattern(name)).collect())
}

#[test]
fn required_values_of_exact_tests() {
    use IndexedField as F;
    let subject = Condition::Subject(pattern("alice"));
    assert_eq!(subject.required_values(), Some(vec![(F::Subject, "alice")]));
    let app = Condition::AppId(pattern("app-1"));
    assert_eq!(app.required_values(), Some(vec![(F::AppId, "app-1")]));
    assert_eq!(
        groups(&["b", "a", "b"]).required_values(),
        Some(vec![(F::Group, "a"), (F::Group, "b")])
    );
    let roles = Condition::Roles(Box::new([pattern("Reader")]));
    assert_eq!(roles.required_values(), Some(vec![(F::Role, "Reader")]));
    let scopes = Condition::Scopes(Box::new([pattern("cosmos.read")]));
    assert_eq!(
        scopes.required_values(),
        Some(vec![(F::Scope, "cosmos.read")])
    );
}

#[test]
fn required_values_absent_for_globs_and_negation() {
    assert_eq!(groups(&["admins", "auditors-*"]).required_values(), None);
    assert_eq!(groups(&[]).required_values(), None);
    assert_eq!(Condition::Subject(pattern("svc-*")).required_values(), None);
    assert_eq!(
        Condition::Not(Box::new(groups(&["guests"]))).required_values(),
        None
    );
    let claim = Condition::Claim(
        ClaimPath::parse("tid").unwrap(),
        ClaimTest::Text(pattern("t1")),
    );
    assert_eq!(claim.required_values(), None);
    assert_eq!(Condition::All(Box::new([])).required_values(), None);
    assert_eq!(Condition::Any(Box::new([])).required_values(), None);
}

#[test]
fn required_values_of_all_take_shortest_test() {
    use IndexedField as F;
    let all = Condition::All(
        vec![
            groups(&["a", "b"]),
            Condition::Not(Box::new(groups(&["guests"]))),
            Condition::Roles(Box::new([pattern("Reader")])),
        ]
        .into(),
    );
    assert_eq!(all.required_values(), Some(vec![(F::Role, "Reader")]));
    let nested = Condition::All(Box::new([Condition::All(Box::new([groups(&["a"])]))]));
    assert_eq!(nested.required_values(), Some(vec![(F::Group, "a")]));
}

#[test]
fn required_values_of_any_join_every_branch() {
    use IndexedField as F;
    let any = Condition::Any(
        vec![
            groups(&["b"]),
            Condition::All(Box::new([Condition::Subject(pattern("alice"))])),
            groups(&["a", "b"]),
        ]
        .into(),
    );
    assert_eq!(
        any.required_values(),
        Some(vec![
            (F::Subject, "alice"),
            (F::Group, "a"),
            (F::Group, "b")
        ])
    );
    let with_claim = Condition::Any(
        vec![
            groups(&["a"]),
            Condition::Claim(ClaimPath::parse("level").unwrap(), ClaimTest::Number(2.0)),
        ]
        .into(),
    );
    assert_eq!(with_claim.required_values(), None);
    let with_always = Condition::Any(vec![groups(&["a"]), Condition::All(Box::new([]))].into());
    assert_eq!(with_always.required_values(), None);
}

#[test]
fn indexed_values_list_every_caller_field() {
    use IndexedField as F;
    let mut caller = principal("alice");
    caller.app_id = Some("app-1".to_owned());
    caller.groups = vec!["g1".to_owned(), "g2".to_owned()];
    caller.roles = vec!["Reader".to_owned()];
    caller.scopes = vec!["cosmos.read".to_owned()];
    let values: Vec<(IndexedField, &str)> = indexed_values(&caller).collect();
    assert_eq!(
        values,
        vec![
            (F::Subject, "alice"),
            (F::AppId, "app-1"),
            (F::Group, "g1"),
            (F::Group, "g2"),
            (F::Role, "Reader"),
            (F::Scope, "cosmos.read"),
        ]
    );
}
