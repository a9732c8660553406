//! Measures the latency of `Policy::decide` over a generated policy of 1,000 rules.
//!
//! Run with `cargo run --release -p cosmoguard-policy --example decide_latency`. It prints
//! the median and 99th percentile of single decisions, each timed on its own.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use cosmoguard_policy::{
    Context, Operation, OperationKind, PartitionKey, Policy, Principal, Request, RequestProperties,
    ResourceType,
};
use serde_json::json;

const RULES: usize = 1_000;
const SAMPLES: usize = 200_000;

/// Builds 1,000 rules: per-application container grants (some partition-scoped by `tid`),
/// group grants on databases, glob-scoped readers, and deny rules.
fn policy_text() -> String {
    let mut text = String::from("version = 1\n");
    for i in 0..RULES {
        let database = i % 100;
        let container = i % 10;
        let _ = match i % 10 {
            0 => writeln!(
                text,
                "[[rules]]\nid = \"deny-{i}\"\neffect = \"deny\"\nactions = [\"items/delete\"]\nscopes = [\"/dbs/db{database}\"]\nprincipal = {{ groups = [\"contractors-{i}\"] }}"
            ),
            1 => writeln!(
                text,
                "[[rules]]\nid = \"group-{i}\"\nroles = [\"Cosmos DB Built-in Data Reader\"]\nscopes = [\"/dbs/db{database}\"]\nprincipal = {{ groups = [\"readers-{i}\"] }}"
            ),
            2 => writeln!(
                text,
                "[[rules]]\nid = \"glob-{i}\"\nactions = [\"items/read\", \"executeQuery\"]\nscopes = [\"/dbs/db{database}-*/colls/c*\"]\nprincipal = {{ subject = \"app{i}\" }}"
            ),
            3 => writeln!(
                text,
                "[[rules]]\nid = \"tenant-{i}\"\nactions = [\"items/*\", \"executeQuery\"]\nscopes = [\"/dbs/db{database}/colls/c{container}\"]\nprincipal = {{ subject = \"app{i}\" }}\npartition_key = [\"{{claims.tid}}\"]"
            ),
            _ => writeln!(
                text,
                "[[rules]]\nid = \"app-{i}\"\nactions = [\"readMetadata\", \"items/*\", \"executeQuery\", \"readChangeFeed\"]\nscopes = [\"/dbs/db{database}/colls/c{container}\"]\nprincipal = {{ issuer = \"https://issuer.example\", subject = \"app{i}\" }}"
            ),
        };
    }
    text
}

fn request(i: usize) -> (Principal, Request) {
    let database = i % 100;
    let container = i % 10;
    let principal = Principal {
        issuer: "https://issuer.example".to_owned(),
        subject: format!("app{i}"),
        groups: vec![format!("readers-{}", i + 1), "staff".to_owned()],
        claims: serde_json::Map::from_iter([("tid".to_owned(), json!("tenant-7"))]),
        ..Principal::default()
    };
    let request = Request {
        operation: Operation::new(OperationKind::Read, ResourceType::Document),
        resource_link: format!("dbs/db{database}/colls/c{container}/docs/item-{i}"),
        database: Some(format!("db{database}")),
        container: Some(format!("c{container}")),
        resource_id: Some(format!("item-{i}")),
        partition_key: Some(PartitionKey {
            raw: "[\"tenant-7\"]".to_owned(),
            components: vec![json!("tenant-7")],
        }),
        batch: Vec::new(),
        properties: RequestProperties::default(),
    };
    (principal, request)
}

fn main() {
    let policy = match Policy::parse(&policy_text(), "generated") {
        Ok(policy) => policy,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            std::process::exit(1);
        }
    };
    let context = Context {
        source_address: None,
        unix_time: 1_769_601_600,
    };
    let inputs: Vec<(Principal, Request)> = (0..RULES).map(request).collect();
    let mut allowed = 0usize;
    let mut samples = Vec::with_capacity(SAMPLES);
    for sample in 0..SAMPLES {
        let (principal, request) = &inputs[sample % inputs.len()];
        let start = Instant::now();
        let decision = black_box(policy.decide(principal, request, &context));
        samples.push(start.elapsed().as_nanos());
        allowed += usize::from(decision.is_allowed());
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "rules: {}, decisions: {SAMPLES}, allowed: {allowed}",
        policy.rule_count()
    );
    println!("median: {median} ns, p99: {p99} ns (each timing includes one Instant::now pair)");
}
