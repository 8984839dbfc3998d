//! Criterion benchmarks of the per-packet flow path: `flow_hash`, a flow-table hit at 1M live
//! flows (with and without the one-ahead prefetch), inserts into a full table (each one an
//! LRU eviction), and a TCP SYN flood from random sources into a table full of established
//! flows (each packet hashed, missed and offered for insertion; the established flows kept
//! are printed and must be all of them). Figures are per packet (`Throughput::Elements`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use xlb::lb::flow::{FlowKey, FlowPacket, FlowTable, FlowTimeouts};
use xlb::lb::hash::flow_hash;

/// Packets per iteration.
const BATCH: usize = 1024;
/// Live flows for the hit benchmark.
const LIVE_FLOWS: usize = 1 << 20;

const TIMEOUTS: FlowTimeouts = FlowTimeouts {
    tcp_idle_ms: 300_000,
    udp_idle_ms: 30_000,
    sctp_idle_ms: 300_000,
    tcp_closing_ms: 10_000,
    tcp_syn_ms: 5_000,
    new_flows_per_sec: u64::MAX / 1_000_000,
};

/// A splitmix64 step, for shuffles without a random-number crate.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Flow `i`: distinct IPv4 clients in 198.18.0.0/15 talking to one VIP over TCP.
fn flow_key(i: usize) -> FlowKey {
    let i = i as u32;
    FlowKey {
        vip: IpAddr::V4(Ipv4Addr::new(198, 18, 100, 10)),
        client: IpAddr::V4(Ipv4Addr::from(0xc613_0000 | (i >> 6) & 0xffff)),
        vip_port: 443,
        client_port: 1024 + (i & 0x3f) as u16 + ((i >> 22) as u16) * 64,
        proto: 6,
    }
}

fn hash_of(key: &FlowKey) -> u64 {
    flow_hash(
        &key.client,
        &key.vip,
        key.client_port,
        key.vip_port,
        key.proto,
    )
}

/// `count` keys with their hashes, in a shuffled order.
fn shuffled_flows(count: usize) -> Vec<(FlowKey, u64)> {
    let mut flows: Vec<(FlowKey, u64)> = (0..count)
        .map(|i| {
            let key = flow_key(i);
            (key, hash_of(&key))
        })
        .collect();
    for i in (1..flows.len()).rev() {
        flows.swap(i, (mix(i as u64) % (i as u64 + 1)) as usize);
    }
    flows
}

fn bench_flow_hash(c: &mut Criterion) {
    let v4: Vec<FlowKey> = (0..BATCH).map(flow_key).collect();
    let v6: Vec<FlowKey> = v4
        .iter()
        .map(|key| FlowKey {
            vip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10)),
            client: IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x200,
                0,
                0,
                0,
                0,
                key.client_port,
            )),
            ..*key
        })
        .collect();
    let mut group = c.benchmark_group("flow_hash");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, keys) in [("ipv4", &v4), ("ipv6", &v6)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = 0u64;
                for key in keys.iter() {
                    let key = black_box(key);
                    acc ^= flow_hash(
                        &key.client,
                        &key.vip,
                        key.client_port,
                        key.vip_port,
                        key.proto,
                    );
                }
                acc
            })
        });
    }
    group.finish();
}

fn bench_lookup_hit(c: &mut Criterion) {
    // 1M flows offered to a 2M-flow table (half full, as a table sized for its peak runs); the
    // few that fell to a full bucket's eviction are left out so every lookup hits.
    let offered = shuffled_flows(LIVE_FLOWS);
    let mut table = FlowTable::new(2 * LIVE_FLOWS, TIMEOUTS);
    for (i, (key, hash)) in offered.iter().enumerate() {
        table.insert(key, *hash, i as u32, false, 0);
    }
    let mut flows: Vec<(FlowKey, u64)> = offered
        .into_iter()
        .filter(|(key, hash)| table.lookup(key, *hash, 0).is_some())
        .collect();
    let live = flows.len() - flows.len() % BATCH;
    flows.truncate(live);
    eprintln!(
        "flow_lookup_hit_1M: {live} live flows, {} evicted on insert",
        table.stats().evictions
    );

    let mut group = c.benchmark_group("flow_lookup_hit_1M");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut cursor = 0usize;
    group.bench_function("no_prefetch", |b| {
        b.iter(|| {
            let mut hits = 0u32;
            for (key, hash) in &flows[cursor..cursor + BATCH] {
                hits += table.lookup(key, *hash, 1).is_some() as u32;
            }
            cursor = (cursor + BATCH) % live;
            hits
        })
    });
    group.bench_function("prefetch_one_ahead", |b| {
        b.iter(|| {
            let mut hits = 0u32;
            let window = &flows[cursor..cursor + BATCH];
            for (i, (key, hash)) in window.iter().enumerate() {
                if let Some((_, next_hash)) = window.get(i + 1) {
                    table.prefetch(*next_hash);
                }
                hits += table.lookup(key, *hash, 1).is_some() as u32;
            }
            cursor = (cursor + BATCH) % live;
            hits
        })
    });
    group.bench_function("prefetch_batch_64", |b| {
        // The pipeline's pattern: hash and prefetch a whole 64-packet batch, then look it up.
        b.iter(|| {
            let mut hits = 0u32;
            for batch in flows[cursor..cursor + BATCH].chunks_exact(64) {
                for (_, hash) in batch {
                    table.prefetch(*hash);
                }
                for (key, hash) in batch {
                    hits += table.lookup(key, *hash, 1).is_some() as u32;
                }
            }
            cursor = (cursor + BATCH) % live;
            hits
        })
    });
    group.bench_function("prefetch_batch_64_two_stage", |b| {
        // As above, with a second pass touching each matching entry before the lookups.
        b.iter(|| {
            let mut hits = 0u32;
            for batch in flows[cursor..cursor + BATCH].chunks_exact(64) {
                for (_, hash) in batch {
                    table.prefetch(*hash);
                }
                for (_, hash) in batch {
                    table.prefetch_entry(*hash);
                }
                for (key, hash) in batch {
                    hits += table.lookup(key, *hash, 1).is_some() as u32;
                }
            }
            cursor = (cursor + BATCH) % live;
            hits
        })
    });
    group.finish();
}

fn bench_insert_evicting(c: &mut Criterion) {
    // A full 64k-flow table fed new flows: every insert evicts the bucket's oldest.
    let flows = shuffled_flows(LIVE_FLOWS);
    let mut table = FlowTable::new(1 << 16, TIMEOUTS);
    let mut now = 0u64;
    for (key, hash) in &flows[..1 << 18] {
        table.insert(key, *hash, 0, false, now);
    }
    let mut group = c.benchmark_group("flow_insert_evicting");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut cursor = 1 << 18;
    group.bench_function("capacity_64k", |b| {
        b.iter(|| {
            now += 1;
            for (key, hash) in &flows[cursor..cursor + BATCH] {
                black_box(table.insert(key, *hash, 1, false, now));
            }
            cursor = (cursor + BATCH) % LIVE_FLOWS;
        })
    });
    group.finish();
    let stats = table.stats();
    assert!(
        stats.evictions > 0,
        "the table must be full for this benchmark"
    );
}

/// Established flows in the flood benchmark's table (its capacity).
const FLOOD_TABLE: usize = 1 << 16;

/// A SYN from a random source (client address and port from `mix`) to the VIP.
fn flood_syn(i: u64) -> FlowKey {
    let random = mix(i ^ 0xf100d);
    FlowKey {
        client: IpAddr::V4(Ipv4Addr::from((random >> 32) as u32)),
        client_port: random as u16,
        ..flow_key(0)
    }
}

fn bench_syn_flood(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_syn_flood_random_sources");
    group.throughput(Throughput::Elements(BATCH as u64));
    // With the guard: the default 200k new flows/s per worker against a simulated 1 Mpps
    // flood (1 ms per 1024 packets). Without it, every SYN reaches the full buckets.
    for (name, rate) in [("guard_200k", 200_000), ("no_guard", u64::MAX / 1_000_000)] {
        // An hour of idle life, so established flows outlive however long criterion runs.
        let mut table = FlowTable::new(
            FLOOD_TABLE,
            FlowTimeouts {
                tcp_idle_ms: 3_600_000,
                new_flows_per_sec: rate,
                ..TIMEOUTS
            },
        );
        // Fill the table with established flows (SYN, then the handshake's ACK), at the
        // guard's pace (100 a millisecond); those a full bucket turned away are left out.
        let offered = shuffled_flows(FLOOD_TABLE);
        let mut now = 0u64;
        for (i, (key, hash)) in offered.iter().enumerate() {
            now = i as u64 / 100;
            table.insert(key, *hash, i as u32, true, now);
            table.lookup_packet(key, *hash, FlowPacket::Other, now);
        }
        let established: Vec<(FlowKey, u64, u32)> = offered
            .iter()
            .filter_map(|(key, hash)| Some((*key, *hash, table.lookup(key, *hash, now)?)))
            .collect();
        let mut packet = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                now += 1;
                for _ in 0..BATCH {
                    let key = flood_syn(packet);
                    packet += 1;
                    let hash = hash_of(black_box(&key));
                    if table
                        .lookup_packet(&key, hash, FlowPacket::Syn, now)
                        .is_none()
                    {
                        black_box(table.insert(&key, hash, 1, true, now));
                    }
                }
            })
        });
        let kept = established
            .iter()
            .filter(|(key, hash, value)| table.lookup(key, *hash, now) == Some(*value))
            .count();
        let stats = table.stats();
        eprintln!(
            "tcp_syn_flood_random_sources/{name}: {packet} SYNs, {kept} of {} established \
             flows kept ({:.2}%); SYN-only evicted {}, refused (bucket of established) {}, \
             refused (rate) {}",
            established.len(),
            100.0 * kept as f64 / established.len() as f64,
            stats.syn_only_evictions,
            stats.refused_full,
            stats.refused_rate,
        );
        assert_eq!(
            kept,
            established.len(),
            "a SYN flood evicted established flows"
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_flow_hash,
    bench_lookup_hit,
    bench_insert_evicting,
    bench_syn_flood
);
criterion_main!(benches);
