//! Request classification: path, method and headers to a Cosmos operation.

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use std::hint::black_box;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map.insert("x-ms-version", HeaderValue::from_static("2020-07-15"));
    map
}

fn bench_classify(c: &mut Criterion) {
    let point_read = headers(&[("x-ms-documentdb-partitionkey", "[\"p1\"]")]);
    let query = headers(&[
        ("x-ms-documentdb-isquery", "True"),
        ("content-type", "application/query+json"),
        ("x-ms-documentdb-partitionkey", "[\"p1\"]"),
    ]);
    let none = headers(&[]);
    let mut group = c.benchmark_group("classify");
    group.bench_function("point_read", |b| {
        b.iter(|| {
            cosmoguard::classify::classify(
                &Method::GET,
                black_box("/dbs/bench/colls/items/docs/doc1"),
                &point_read,
            )
        })
    });
    group.bench_function("query", |b| {
        b.iter(|| {
            cosmoguard::classify::classify(
                &Method::POST,
                black_box("/dbs/bench/colls/items/docs"),
                &query,
            )
        })
    });
    group.bench_function("percent_encoded_id", |b| {
        b.iter(|| {
            cosmoguard::classify::classify(
                &Method::GET,
                black_box("/dbs/bench/colls/items/docs/order%20%3D%3D%2042"),
                &point_read,
            )
        })
    });
    group.bench_function("account_read", |b| {
        b.iter(|| cosmoguard::classify::classify(&Method::GET, black_box("/"), &none))
    });
    group.finish();
}

criterion_group!(benches, bench_classify);
criterion_main!(benches);
