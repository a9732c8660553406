//! Policy decision time for 10, 100 and 1,000 rules, against the same rules written in
//! Cedar (cedar-policy) and evaluated on the same requests. Both sides get their request
//! and entities built before timing; only the decision is timed.

use std::hint::black_box;
use std::str::FromStr;

use cedar_policy::{Authorizer, Entities, EntityUid, PolicySet};
use cosmoguard_bench::policy_gen::{self, BenchRequest};
use cosmoguard_policy::{Context, Policy, Principal, Request};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};

const SIZES: [usize; 3] = [10, 100, 1000];

struct CosmoguardCase {
    principal: Principal,
    request: Request,
    context: Context,
}

struct CedarCase {
    request: cedar_policy::Request,
    entities: Entities,
}

fn cosmoguard_case(bench: &BenchRequest) -> CosmoguardCase {
    let mut headers = HeaderMap::new();
    for (name, value) in &bench.headers {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    let classified = cosmoguard::classify::classify(&bench.method, &bench.path, &headers)
        .unwrap_or_else(|error| panic!("{}: {error}", bench.path));
    let principal = Principal {
        issuer: "http://127.0.0.1/bench".to_owned(),
        subject: bench.subject.clone(),
        groups: bench.groups.clone(),
        ..Principal::default()
    };
    CosmoguardCase {
        principal,
        request: classified.request,
        context: Context {
            source_address: Some(std::net::Ipv4Addr::LOCALHOST.into()),
            unix_time: 1_796_000_000,
        },
    }
}

fn entity_uid(text: &str) -> EntityUid {
    EntityUid::from_str(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn cedar_case(bench: &BenchRequest) -> CedarCase {
    let principal = entity_uid(&format!("Cosmoguard::User::{:?}", bench.subject));
    let action = entity_uid(&format!("Cosmoguard::Action::{:?}", bench.cedar_action));
    let (kind, id) = bench.cedar_resource();
    let resource = entity_uid(&format!("Cosmoguard::{kind}::{id:?}"));
    let request = cedar_policy::Request::new(
        principal,
        action,
        resource,
        cedar_policy::Context::empty(),
        None,
    )
    .unwrap_or_else(|error| panic!("Cedar request: {error}"));
    let entities = Entities::from_json_value(bench.cedar_entities(), None)
        .unwrap_or_else(|error| panic!("Cedar entities: {error}"));
    CedarCase { request, entities }
}

fn bench_policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_decision");
    let authorizer = Authorizer::new();
    for size in SIZES {
        let description = policy_gen::describe(size);
        let policy = Policy::parse(&policy_gen::to_toml(&description), "generated.toml")
            .unwrap_or_else(|errors| panic!("generated policy: {errors:?}"));
        let cedar: PolicySet = policy_gen::to_cedar(&description)
            .parse()
            .unwrap_or_else(|error| panic!("generated Cedar: {error}"));
        for bench in policy_gen::bench_requests(size) {
            let ours = cosmoguard_case(&bench);
            let theirs = cedar_case(&bench);
            // Both engines must reach the decision the description implies.
            let decision = policy.decide(&ours.principal, &ours.request, &ours.context);
            assert_eq!(
                decision.is_allowed(),
                bench.expect_allow,
                "Cosmoguard, {size} rules, {}",
                bench.name
            );
            let answer = authorizer.is_authorized(&theirs.request, &cedar, &theirs.entities);
            let cedar_allows = answer.decision() == cedar_policy::Decision::Allow;
            assert_eq!(
                cedar_allows, bench.expect_allow,
                "Cedar, {size} rules, {}",
                bench.name
            );
            assert!(
                answer.diagnostics().errors().next().is_none(),
                "Cedar evaluation errors, {size} rules, {}",
                bench.name
            );

            group.bench_with_input(
                BenchmarkId::new(format!("cosmoguard/{}", bench.name), size),
                &ours,
                |b, case| {
                    b.iter(|| {
                        policy.decide(
                            black_box(&case.principal),
                            black_box(&case.request),
                            &case.context,
                        )
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("cedar/{}", bench.name), size),
                &theirs,
                |b, case| {
                    b.iter(|| {
                        authorizer.is_authorized(
                            black_box(&case.request),
                            &cedar,
                            black_box(&case.entities),
                        )
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
