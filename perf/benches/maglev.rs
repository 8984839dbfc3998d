//! Criterion benchmarks of `lb::maglev`: table build for N = 10/100/1000 backends at M = 65537
//! (target ≤ 1 ms for N = 1000; the paper's figure is 1.8 ms) and per-packet lookup.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xlb::lb::maglev::{build, MaglevBackend, DEFAULT_SIZE};

/// Hashes looked up per iteration, so the figure reads as ns per lookup.
const LOOKUPS: usize = 1024;

fn backend_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("backend-{i}.example")).collect()
}

fn maglev_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("maglev_build");
    for count in [10usize, 100, 1000] {
        let names = backend_names(count);
        let backends: Vec<MaglevBackend<'_>> = names
            .iter()
            .map(|name| MaglevBackend { name, weight: 1 })
            .collect();
        // One element per slot filled: time per iteration is the build time.
        group.throughput(Throughput::Elements(u64::from(DEFAULT_SIZE)));
        group.bench_with_input(
            BenchmarkId::new("M65537_N", count),
            &backends,
            |b, backends| b.iter(|| build(black_box(backends), DEFAULT_SIZE).unwrap()),
        );
    }
    group.finish();
}

fn maglev_lookup(c: &mut Criterion) {
    let names = backend_names(100);
    let backends: Vec<MaglevBackend<'_>> = names
        .iter()
        .map(|name| MaglevBackend { name, weight: 1 })
        .collect();
    let table = build(&backends, DEFAULT_SIZE).unwrap();
    // splitmix64 steps: well-spread hashes without a random-number crate.
    let hashes: Vec<u64> = (1..=LOOKUPS as u64)
        .map(|i| {
            let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect();
    let mut group = c.benchmark_group("maglev_lookup");
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("M65537_N100", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for &hash in &hashes {
                sum = sum.wrapping_add(table.lookup(black_box(hash)).unwrap_or(0));
            }
            sum
        })
    });
    group.finish();
}

criterion_group!(benches, maglev_build, maglev_lookup);
criterion_main!(benches);
