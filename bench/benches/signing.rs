//! Master-key signing: the HMAC-SHA256 `Authorization` value set on every forwarded request.

use cosmoguard::upstream::MasterKey;
use cosmoguard::upstream::signing::format_date;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::SystemTime;

// The Cosmos DB emulator's published key: a valid key that guards nothing.
const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

fn bench_signing(c: &mut Criterion) {
    let key = MasterKey::from_base64(EMULATOR_KEY)
        .unwrap_or_else(|error| panic!("emulator key: {error}"));
    let date = format_date(SystemTime::now());
    let mut group = c.benchmark_group("signing");
    group.bench_function("authorization_point_read", |b| {
        b.iter(|| {
            key.authorization(
                black_box("GET"),
                black_box("docs"),
                black_box("dbs/bench/colls/items/docs/doc1"),
                &date,
            )
        })
    });
    group.bench_function("format_date", |b| {
        b.iter(|| format_date(black_box(SystemTime::now())))
    });
    group.finish();
}

criterion_group!(benches, bench_signing);
criterion_main!(benches);
