//! A pipeline over one service table in memory, with no sockets: the worker's own
//! stages, snapshot, shared tables and balancer, fed with frames a caller built. `xlb
//! explain` runs a flow's first packet through it; the fixture tests, the fuzz targets
//! and the benches run theirs, so all of them exercise the real stages the same way.

use crate::config::ServiceTable;
use crate::lb::balancer::Balancer;
use crate::lb::flow::FlowTimeouts;
use crate::lb::snapshot::{DownBackends, NextHopResolver, Snapshot, SnapshotError};
use crate::lb::verdict::Verdict;
use crate::pipeline::batch::PacketBuf;
use crate::pipeline::loader::{self, PipelineError};
use crate::pipeline::stage::{Context, SharedTables};
use crate::pipeline::{Pipeline, WorkerCounters, WorkerState};

/// Why an offline pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The table's snapshot could not be built.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The table's pipeline could not be loaded.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// One worker's pipeline and state over one table.
pub struct OfflinePipeline {
    /// The table's snapshot (generation 1).
    pub snapshot: Snapshot,
    /// The SCTP and NAT tables.
    pub shared: SharedTables,
    /// The worker's balancer and counters.
    pub worker: WorkerState,
    /// The stages of the table's `dataplane.pipeline`.
    pub pipeline: Pipeline,
}

impl OfflinePipeline {
    /// Sets up `table`'s pipeline with next hops from `resolver`, `flows` entries in the
    /// worker's flow table and `capacity` entries in each shared table; timeouts and
    /// limits are the table's.
    pub fn new(
        table: &ServiceTable,
        resolver: &dyn NextHopResolver,
        flows: usize,
        capacity: usize,
    ) -> Result<OfflinePipeline, OfflineError> {
        Ok(OfflinePipeline {
            snapshot: Snapshot::build(table, 1, None, resolver, &DownBackends::new())?,
            shared: SharedTables::with_capacity(&table.dataplane, capacity),
            worker: WorkerState {
                balancer: Balancer::new(flows, FlowTimeouts::from_table(&table.dataplane)),
                counters: WorkerCounters::default(),
            },
            pipeline: loader::load(&table.dataplane.pipeline)?,
        })
    }

    /// Runs one batch received on port 0 at `now_ms`; `verdicts` come back decided.
    pub fn run(&mut self, packets: &mut [PacketBuf<'_>], verdicts: &mut [Verdict], now_ms: u64) {
        let ctx = Context {
            snapshot: &self.snapshot,
            shared: &self.shared,
            ingress: 0,
            now_ms,
        };
        self.pipeline.run(packets, verdicts, &ctx, &mut self.worker);
    }

    /// Runs one frame alone; returns its verdict and the frame as it would leave.
    pub fn run_frame(&mut self, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        // Room for the largest encapsulation header the rewrite stage may add.
        let mut buffer = frame.to_vec();
        buffer.resize(frame.len() + 128, 0);
        let mut packets = [PacketBuf::new(&mut buffer, frame.len())];
        let mut verdicts = [Verdict::Pending];
        self.run(&mut packets, &mut verdicts, now_ms);
        let len = packets[0].len;
        buffer.truncate(len);
        (verdicts[0], buffer)
    }
}
