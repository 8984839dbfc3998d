//! Batched packet pipeline: the batch type, the stage trait, the stages and the loader
//! for `pipelines/*.yaml`.
//!
//! A [`Pipeline`] is a list of stages run in order over a whole batch. Each stage skips
//! packets whose verdict is already decided, so a drop is a verdict with a reason, not
//! an early return, and the per-worker counters see every packet exactly once.

pub mod batch;
pub mod loader;
pub mod offline;
pub mod stage;
pub mod stages;

use crate::lb::balancer::Balancer;
use crate::lb::snapshot::MAX_BACKENDS;
use crate::lb::verdict::{DropReason, Verdict};
use batch::{PacketBuf, MAX_BATCH};
use stage::{Batch, Context, PacketMeta, Stage, Target};

/// Per-worker packet counters, indexed without branches on the hot path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Packets that entered the pipeline.
    pub rx_packets: u64,
    /// Bytes that entered the pipeline.
    pub rx_bytes: u64,
    /// Packets with a `Forward` verdict.
    pub tx_packets: u64,
    /// Bytes of those packets, as rewritten.
    pub tx_bytes: u64,
    /// Drops by [`DropReason`] index.
    pub drops: [u64; DropReason::COUNT],
    /// Packets too big for their egress link, answered with ICMP "fragmentation needed"
    /// or Packet Too Big (counted in `tx_packets` as the error they became).
    pub icmp_too_big: u64,
    /// Packets forwarded to each backend, by [`crate::lb::snapshot::BackendId`].
    pub backend_packets: Box<[u64]>,
    /// Bytes forwarded to each backend (as rewritten), by backend id.
    pub backend_bytes: Box<[u64]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
            icmp_too_big: 0,
            backend_packets: vec![0; MAX_BACKENDS].into_boxed_slice(),
            backend_bytes: vec![0; MAX_BACKENDS].into_boxed_slice(),
        }
    }
}

impl WorkerCounters {
    /// Drops counted under one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
}

/// What a worker owns and mutates while running a pipeline.
pub struct WorkerState {
    /// Flow table and balancing counters.
    pub balancer: Balancer,
    /// Packet and drop counters.
    pub counters: WorkerCounters,
}

/// A loaded pipeline: its stages and the metadata arrays they share.
pub struct Pipeline {
    name: String,
    stages: Vec<Box<dyn Stage>>,
    meta: Vec<PacketMeta>,
}

impl Pipeline {
    /// A pipeline from already-built stages.
    pub fn new(name: impl Into<String>, stages: Vec<Box<dyn Stage>>) -> Self {
        Pipeline {
            name: name.into(),
            stages,
            meta: vec![PacketMeta::default(); MAX_BATCH],
        }
    }

    /// The pipeline's name (`l4lb`, `macswap`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Metadata the stages left for the last batch (for `explain` and tests).
    pub fn metadata(&self) -> &[PacketMeta] {
        &self.meta
    }

    /// Names of the stages in order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Runs every stage over the batch and counts the outcome. `verdicts` must be as
    /// long as `packets` and all `Pending`; a packet no stage decided is dropped as
    /// `Malformed` (a pipeline must decide everything).
    pub fn run(
        &mut self,
        packets: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
        ctx: &Context<'_>,
        worker: &mut WorkerState,
    ) {
        let n = packets.len().min(verdicts.len()).min(MAX_BATCH);
        let counters = &mut worker.counters;
        counters.rx_packets += n as u64;
        counters.rx_bytes += packets[..n].iter().map(|p| p.len as u64).sum::<u64>();
        let mut batch = Batch {
            packets: &mut packets[..n],
            verdicts: &mut verdicts[..n],
            meta: &mut self.meta[..n],
        };
        for stage in &mut self.stages {
            stage.process(&mut batch, ctx, worker);
        }
        let counters = &mut worker.counters;
        let outcomes = batch.packets.iter().zip(batch.verdicts.iter_mut());
        for ((packet, verdict), meta) in outcomes.zip(batch.meta.iter()) {
            match *verdict {
                Verdict::Forward(_) => {
                    let bytes = packet.len as u64;
                    counters.tx_packets += 1;
                    counters.tx_bytes += bytes;
                    if let Target::Backend { backend, .. } | Target::NatOut { backend, .. } =
                        meta.target
                    {
                        if let Some(slot) = counters.backend_packets.get_mut(backend as usize) {
                            *slot += 1;
                            counters.backend_bytes[backend as usize] += bytes;
                        }
                    }
                }
                Verdict::Drop(reason) => counters.drops[reason as usize] += 1,
                Verdict::Pending => {
                    *verdict = Verdict::Drop(DropReason::Malformed);
                    counters.drops[DropReason::Malformed as usize] += 1;
                }
            }
        }
    }
}
