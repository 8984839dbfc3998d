//! The pinned worker: it pins itself, allocates its sockets, UMEM and flow table (so
//! they land on its NUMA node), then loops: per batch, load the snapshot, read the
//! clock, pull frames from each of its queues, run the pipeline, and let the ports
//! transmit and recycle. Counters are published for the metrics endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

use std::os::fd::RawFd;
use std::sync::{mpsc, Arc};

use crate::config::{self, IdlePolicy};
use crate::lb::balancer::Balancer;
use crate::lb::flow::FlowTimeouts;
use crate::lb::snapshot::{Snapshot, MAX_BACKENDS};
use crate::lb::verdict::DropReason;
use crate::pipeline::loader;
use crate::pipeline::stage::{Context, SharedTables};
use crate::pipeline::WorkerCounters;
use crate::pipeline::{Pipeline, WorkerState};
use crate::runtime::capabilities;
use crate::runtime::plan::WorkerAssignment;
use crate::xsk::{BatchPorts, BatchStats};
use crate::xsk::{SocketSpec, XskPorts};
use tracing::warn;

/// Empty rounds in a row before an adaptive worker sleeps in `poll()`.
const SPINS_BEFORE_SLEEP: u32 = 256;

/// How long a stopping worker waits for its TX rings to drain.
const TX_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// How often a busy worker publishes its counters.
const PUBLISH_PERIOD_MS: u64 = 50;

/// A worker's counters, published by the worker every `PUBLISH_PERIOD_MS` while busy, when it
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
    /// Packets too big for their egress link, answered with an ICMP error.
    pub icmp_too_big: AtomicU64,
    /// Forwarded frames that found their TX ring full.
    pub tx_ring_full: AtomicU64,
    /// Batches after which the fill ring was empty.
    pub fill_ring_empty: AtomicU64,
    /// Syscalls made to wake the kernel.
    pub wakeups: AtomicU64,
    /// Times the worker slept waiting for frames (adaptive idle).
    pub idle_sleeps: AtomicU64,
    /// Nanoseconds spent in loop passes that received frames: the worker's work, where
    /// its CPU time (always all of a core when it polls) also counts the empty passes.
    /// Busy time over wall time is how loaded a polling worker is.
    pub busy_ns: AtomicU64,
    /// New flows and associations.
    pub new_flows: AtomicU64,
    /// Flows re-selected because their backend left.
    pub reselected: AtomicU64,
    /// Live flows evicted from a full bucket.
    pub evictions: AtomicU64,
    /// New flows forwarded by Maglev untracked: the new-flow rate guard was out of tokens.
    pub untracked_rate_limited: AtomicU64,
    /// New SYN-only flows forwarded by Maglev untracked: their bucket held only
    /// established flows.
    pub untracked_table_full: AtomicU64,
    /// Flows tracked now.
    pub flows: AtomicU64,
    /// Packets forwarded per backend id.
    pub backend_packets: Box<[AtomicU64]>,
    /// Bytes forwarded per backend id.
    pub backend_bytes: Box<[AtomicU64]>,
    /// New flows and associations placed per backend id.
    pub backend_new_flows: Box<[AtomicU64]>,
    /// Loop passes made: stored once per pass (idle passes included, so an idle worker
    /// still moves it at least every poll timeout), never per packet. The supervisor's
    /// stall check reads it; a value that stops moving means a stuck worker.
    pub progress: AtomicU64,
    /// What the supervisor's stall check concluded about this worker (it writes, the
    /// metrics endpoint reads): the worker itself never touches it.
    pub liveness: WorkerLiveness,
}

/// The supervisor's verdict on one worker's progress, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct WorkerLiveness {
    /// 1 while the worker has made no progress for longer than the stall threshold.
    pub stalled: AtomicU64,
    /// Whole seconds since the worker's progress counter last moved, as of the last check.
    pub seconds_since_progress: AtomicU64,
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
            icmp_too_big: AtomicU64::default(),
            tx_ring_full: AtomicU64::default(),
            fill_ring_empty: AtomicU64::default(),
            wakeups: AtomicU64::default(),
            idle_sleeps: AtomicU64::default(),
            busy_ns: AtomicU64::default(),
            new_flows: AtomicU64::default(),
            reselected: AtomicU64::default(),
            evictions: AtomicU64::default(),
            untracked_rate_limited: AtomicU64::default(),
            untracked_table_full: AtomicU64::default(),
            flows: AtomicU64::default(),
            backend_packets: zeros(),
            backend_bytes: zeros(),
            backend_new_flows: zeros(),
            progress: AtomicU64::default(),
            liveness: WorkerLiveness::default(),
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
        set(&self.icmp_too_big, c.icmp_too_big);
        for (slot, value) in self.drops.iter().zip(c.drops.iter()) {
            set(slot, *value);
        }
        for (slot, value) in self.backend_packets.iter().zip(c.backend_packets.iter()) {
            set(slot, *value);
        }
        for (slot, value) in self.backend_bytes.iter().zip(c.backend_bytes.iter()) {
            set(slot, *value);
        }
        let new_flows = state.balancer.new_flows_by_backend();
        for (slot, value) in self.backend_new_flows.iter().zip(new_flows) {
            set(slot, *value);
        }
        // Frames lost on a full TX ring are drops too, counted by the ports.
        set(&self.tx_ring_full, ring.tx_ring_full);
        set(&self.fill_ring_empty, ring.fill_ring_empty);
        set(&self.wakeups, ring.wakeups);
        set(&self.idle_sleeps, ring.idle_sleeps);
        set(&self.busy_ns, ring.busy_ns);
        let b = state.balancer.stats();
        set(&self.new_flows, b.new_flows);
        set(&self.reselected, b.reselected);
        set(&self.evictions, b.evictions);
        set(&self.untracked_rate_limited, b.untracked_rate_limited);
        set(&self.untracked_table_full, b.untracked_table_full);
        set(&self.flows, state.balancer.tracked_flows() as u64);
    }
}

#[derive(Default)]
struct RingCounters {
    tx_ring_full: u64,
    fill_ring_empty: u64,
    wakeups: u64,
    idle_sleeps: u64,
    busy_ns: u64,
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
    let mut passes = 0u64;
    while !inputs.stop.load(Ordering::Relaxed) {
        passes += 1;
        stats.progress.store(passes, Ordering::Relaxed);
        let snapshot = inputs.snapshots.load();
        let pass_start = inputs.epoch.elapsed();
        let now_ms = pass_start.as_millis() as u64;
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
            ring.busy_ns += (inputs.epoch.elapsed() - pass_start).as_nanos() as u64;
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

/// A worker's counters as plain numbers, for the exit log.
#[derive(Default)]
pub struct CounterSummary {
    rx_packets: u64,
    tx_packets: u64,
    new_flows: u64,
    drops: [u64; DropReason::COUNT],
}

impl CounterSummary {
    /// Reads a worker's published counters.
    pub fn of(stats: &WorkerStats) -> Self {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        CounterSummary {
            rx_packets: get(&stats.rx_packets),
            tx_packets: get(&stats.tx_packets),
            new_flows: get(&stats.new_flows),
            drops: std::array::from_fn(|i| get(&stats.drops[i])),
        }
    }

    /// Adds another worker's counters (for the total).
    pub fn add(&mut self, other: &Self) {
        self.rx_packets += other.rx_packets;
        self.tx_packets += other.tx_packets;
        self.new_flows += other.new_flows;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
    }
}

impl std::fmt::Display for CounterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rx_packets={} tx_packets={} new_flows={}",
            self.rx_packets, self.tx_packets, self.new_flows
        )?;
        for (reason, count) in DropReason::ALL.iter().zip(self.drops) {
            if count > 0 {
                write!(f, " drop_{}={count}", reason.name())?;
            }
        }
        Ok(())
    }
}

/// One worker's start-up parameters, moved into its thread.
pub(crate) struct WorkerJob {
    pub(crate) assignment: WorkerAssignment,
    pub(crate) specs: Vec<SocketSpec>,
    pub(crate) frames: u32,
    pub(crate) flows: usize,
    pub(crate) timeouts: FlowTimeouts,
    pub(crate) pipeline: String,
    pub(crate) batch_size: usize,
    pub(crate) idle: config::IdlePolicy,
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) shared: Arc<SharedTables>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) epoch: Instant,
}

/// What a worker reports once its sockets are open: (interface, queue, fd).
pub(crate) type OpenedSockets = Result<Vec<(String, u32, RawFd)>, String>;

impl WorkerJob {
    /// Pins, allocates, reports its sockets on `ready`, then serves until stopped.
    pub(crate) fn run(self, ready: mpsc::Sender<OpenedSockets>) {
        if !core_affinity::set_for_current(core_affinity::CoreId {
            id: self.assignment.cpu,
        }) {
            warn!(
                cpu = self.assignment.cpu,
                "could not pin worker; running unpinned"
            );
        }
        // Allocated after pinning, so first touch puts them on this worker's node.
        let mut ports = match XskPorts::open(&self.specs, self.frames) {
            Ok(ports) => ports,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let mut pipeline = match loader::load(&self.pipeline) {
            Ok(p) => p,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let mut state = WorkerState {
            balancer: Balancer::new(self.flows, self.timeouts),
            counters: WorkerCounters::default(),
        };
        // Sockets open and bound, UMEM registered: nothing left here needs privileges.
        if let Err(e) = capabilities::drop_all_in_this_thread() {
            warn!(
                worker = self.assignment.id,
                "dropping the worker's capabilities failed: {e}"
            );
        }
        if ready.send(Ok(ports.socket_fds())).is_err() {
            return;
        }
        let inputs = LoopInputs {
            snapshots: &self.snapshot,
            shared: &self.shared,
            stop: &self.stop,
            epoch: self.epoch,
            batch_size: self.batch_size,
            idle: self.idle,
        };
        let queues = self.specs.len();
        run_loop(
            &mut ports,
            queues,
            &mut pipeline,
            &mut state,
            &inputs,
            &self.stats,
            |p| p.poll_wait(1),
        );
        // The loop has stopped taking frames; let what is already queued leave.
        let stranded = ports.drain_tx(TX_DRAIN_TIMEOUT);
        if stranded > 0 {
            warn!(
                worker = self.assignment.id,
                stranded, "TX frames still in flight at exit"
            );
        }
    }
}
