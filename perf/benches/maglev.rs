//! Criterion benchmarks of `lb::maglev`: table build for N = 10/100/1000 backends at M = 65537
//! (target ≤ 1 ms for N = 1000; the paper's figure is 1.8 ms), the paper's own loop on the same
//! input (so the speed-up is measured in one run, whatever the host's load), per-packet lookup,
//! and the snapshot rebuild of a reload that changes one service of 100.

use std::fmt::Write;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xlb::config::{self, ServiceTable};
use xlb::lb::maglev::{build, MaglevBackend, DEFAULT_SIZE};
use xlb::lb::snapshot::{DownBackends, Snapshot, StaticResolver};

#[path = "../../tests/support/papers_loop.rs"]
mod papers_loop;

/// Services in the reload benchmark, each with 10 backends.
/// The allocator `xlb` runs with (src/main.rs): builds reuse freed table pages instead of
/// faulting them back in, which is what the figures are meant to show.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVICES: usize = 100;

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
        if count == 1000 {
            group.bench_with_input(
                BenchmarkId::new("papers_loop_M65537_N", count),
                &backends,
                |b, backends| {
                    b.iter(|| papers_loop::plain_loop_build(black_box(backends), DEFAULT_SIZE))
                },
            );
        }
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

/// `SERVICES` TCP services of 10 backends each; `weight` is the first backend's weight.
fn service_table(weight: u32) -> ServiceTable {
    let mut yaml =
        String::from("version: 1\ndataplane:\n  interfaces: [{ name: eth0 }]\nservices:\n");
    for service in 0..SERVICES {
        let _ = write!(
            yaml,
            "  - name: s{service}\n    vips: [198.18.{}.{}]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends:\n",
            100 + service / 200,
            1 + service % 200
        );
        for backend in 0..10 {
            let weight = if service == 0 && backend == 0 {
                weight
            } else {
                100
            };
            let _ = writeln!(
                yaml,
                "      - {{ name: b{backend}, address: 198.18.1.{}, weight: {weight} }}",
                10 + backend
            );
        }
    }
    config::parse(&yaml, "bench.yaml").expect("valid table")
}

/// A reload that changes one backend's weight in one service of 100: only that ring is
/// rebuilt; "from scratch" is the same table with no previous generation.
fn snapshot_rebuild(c: &mut Criterion) {
    let resolver = StaticResolver {
        port_macs: vec![[0; 6]],
        egress: 0,
    };
    let down = DownBackends::new();
    let before = service_table(100);
    let after = service_table(300);
    let previous = Snapshot::build(&before, 1, None, &resolver, &down).expect("snapshot");
    let mut group = c.benchmark_group("snapshot_rebuild");
    group.sample_size(20);
    group.bench_function("100_services_one_changed", |b| {
        b.iter(|| Snapshot::build(black_box(&after), 2, Some(&previous), &resolver, &down))
    });
    group.bench_function("100_services_from_scratch", |b| {
        b.iter(|| Snapshot::build(black_box(&after), 2, None, &resolver, &down))
    });
    group.finish();
}

criterion_group!(benches, maglev_build, maglev_lookup, snapshot_rebuild);
criterion_main!(benches);
