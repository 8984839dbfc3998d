//! The pinned worker loop: per batch, load the snapshot, read the clock, pull frames
//! from each of the worker's queues, run the pipeline, and let the ports transmit and
//! recycle. Counters are published once per batch for the metrics endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::config::IdlePolicy;
use crate::lb::snapshot::{Snapshot, MAX_BACKENDS};
use crate::pipeline::stage::{Context, SharedTables};
use crate::pipeline::verdict::DropReason;
use crate::pipeline::{Pipeline, WorkerState};
use crate::xsk::{BatchPorts, BatchStats};

/// Empty rounds in a row before an adaptive worker sleeps in `poll()`.
const SPINS_BEFORE_SLEEP: u32 = 256;

/// How often a busy worker publishes its counters.
const PUBLISH_PERIOD_MS: u64 = 50;

/// A worker's counters, published by the worker every [`PUBLISH_PERIOD_MS`], when it
/// goes idle and when it stops (single writer, relaxed stores), and read by the
/// metrics endpoint and the exit log.
#[derive(Debug)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: AtomicU64,
    /// Bytes received.
    pub rx_bytes: AtomicU64,
    /// Frames transmitted.
    pub tx_packets: AtomicU64,
    /// Bytes transmitted.
    pub tx_bytes: AtomicU64,
    /// Drops by [`DropReason`] index.
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Forwarded frames that found their TX ring full.
    pub tx_ring_full: AtomicU64,
    /// Batches after which the fill ring was empty.
    pub fill_ring_empty: AtomicU64,
    /// Syscalls made to wake the kernel.
    pub wakeups: AtomicU64,
    /// Times the worker slept waiting for frames (adaptive idle).
    pub idle_sleeps: AtomicU64,
    /// New flows and associations.
    pub new_flows: AtomicU64,
    /// Flows re-selected because their backend left.
    pub reselected: AtomicU64,
    /// Live flows evicted from a full bucket.
    pub evictions: AtomicU64,
    /// Flows tracked now.
    pub flows: AtomicU64,
    /// Packets forwarded per backend id.
    pub backend_packets: Box<[AtomicU64]>,
    /// Bytes forwarded per backend id.
    pub backend_bytes: Box<[AtomicU64]>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        let zeros = || (0..MAX_BACKENDS).map(|_| AtomicU64::new(0)).collect();
        WorkerStats {
            rx_packets: AtomicU64::default(),
            rx_bytes: AtomicU64::default(),
            tx_packets: AtomicU64::default(),
            tx_bytes: AtomicU64::default(),
            drops: Default::default(),
            tx_ring_full: AtomicU64::default(),
            fill_ring_empty: AtomicU64::default(),
            wakeups: AtomicU64::default(),
            idle_sleeps: AtomicU64::default(),
            new_flows: AtomicU64::default(),
            reselected: AtomicU64::default(),
            evictions: AtomicU64::default(),
            flows: AtomicU64::default(),
            backend_packets: zeros(),
            backend_bytes: zeros(),
        }
    }
}

impl WorkerStats {
    /// Drops under one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    fn publish(&self, state: &WorkerState, ring: &RingCounters) {
        let c = &state.counters;
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.rx_packets, c.rx_packets);
        set(&self.rx_bytes, c.rx_bytes);
        set(&self.tx_packets, c.tx_packets);
        set(&self.tx_bytes, c.tx_bytes);
        for (slot, value) in self.drops.iter().zip(c.drops.iter()) {
            set(slot, *value);
        }
        for (slot, value) in self.backend_packets.iter().zip(c.backend_packets.iter()) {
            set(slot, *value);
        }
        for (slot, value) in self.backend_bytes.iter().zip(c.backend_bytes.iter()) {
            set(slot, *value);
        }
        // Frames lost on a full TX ring are drops too, counted by the ports.
        set(&self.tx_ring_full, ring.tx_ring_full);
        set(&self.fill_ring_empty, ring.fill_ring_empty);
        set(&self.wakeups, ring.wakeups);
        set(&self.idle_sleeps, ring.idle_sleeps);
        let b = state.balancer.stats();
        set(&self.new_flows, b.new_flows);
        set(&self.reselected, b.reselected);
        set(&self.evictions, b.evictions);
        set(&self.flows, state.balancer.tracked_flows() as u64);
    }
}

#[derive(Default)]
struct RingCounters {
    tx_ring_full: u64,
    fill_ring_empty: u64,
    wakeups: u64,
    idle_sleeps: u64,
}

impl RingCounters {
    fn add(&mut self, s: &BatchStats) {
        self.tx_ring_full += u64::from(s.tx_ring_full);
        self.fill_ring_empty += u64::from(s.fill_ring_empty);
        self.wakeups += u64::from(s.wakeups);
    }
}

/// Everything a worker loop reads but does not own.
pub struct LoopInputs<'a> {
    /// The current snapshot of this worker's NUMA node.
    pub snapshots: &'a ArcSwap<Snapshot>,
    /// SCTP and NAT tables shared by all workers.
    pub shared: &'a SharedTables,
    /// Set to stop the loop.
    pub stop: &'a AtomicBool,
    /// Common clock origin of all workers (shared tables compare their times).
    pub epoch: Instant,
    /// Frames per batch.
    pub batch_size: usize,
    /// Spin or sleep when idle.
    pub idle: IdlePolicy,
}

/// Runs until `inputs.stop` is set: every round serves each of the `queues` receive
/// queues once. `sleep` is called when an adaptive worker has seen nothing for a while
/// (the AF_XDP ports `poll()` their sockets there).
pub fn run_loop<P: BatchPorts>(
    ports: &mut P,
    queues: usize,
    pipeline: &mut Pipeline,
    state: &mut WorkerState,
    inputs: &LoopInputs<'_>,
    stats: &WorkerStats,
    mut sleep: impl FnMut(&mut P),
) {
    let mut ring = RingCounters::default();
    let mut empty_rounds = 0u32;
    let mut published_ms = 0u64;
    while !inputs.stop.load(Ordering::Relaxed) {
        let snapshot = inputs.snapshots.load();
        let now_ms = inputs.epoch.elapsed().as_millis() as u64;
        let mut received = 0;
        for index in 0..queues {
            let batch =
                ports.process_batch(index, inputs.batch_size, |ingress, packets, verdicts| {
                    let ctx = Context {
                        snapshot: &snapshot,
                        shared: inputs.shared,
                        ingress,
                        now_ms,
                    };
                    pipeline.run(packets, verdicts, &ctx, state);
                });
            received += batch.rx;
            ring.add(&batch);
        }
        if received > 0 {
            empty_rounds = 0;
            if now_ms >= published_ms + PUBLISH_PERIOD_MS {
                stats.publish(state, &ring);
                published_ms = now_ms;
            }
            continue;
        }
        empty_rounds = empty_rounds.saturating_add(1);
        if now_ms >= published_ms + PUBLISH_PERIOD_MS {
            stats.publish(state, &ring);
            published_ms = now_ms;
        }
        match inputs.idle {
            IdlePolicy::Poll => std::hint::spin_loop(),
            IdlePolicy::Adaptive if empty_rounds < SPINS_BEFORE_SLEEP => std::hint::spin_loop(),
            IdlePolicy::Adaptive => {
                ring.idle_sleeps += 1;
                sleep(ports);
            }
        }
    }
    stats.publish(state, &ring);
}
