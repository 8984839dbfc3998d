//! The running dataplane: the XDP steering programs, the pinned workers and the per-node
//! snapshot replicas they read. It starts and stops the workers and publishes snapshots;
//! what a snapshot holds, and when a new one is due, is the supervisor's business
//! (`control::supervisor`), so nothing here knows about reloads, health or metrics.
//!
//! Start-up order matters: the snapshot exists before any worker runs; each worker
//! pins itself, then allocates its sockets, UMEM and flow table (so they land on its
//! NUMA node), then hands its socket fds back to be registered in the XSKMAP. A publish
//! builds the new snapshots off the packet path, puts new VIPs into the steering map,
//! swaps each node's snapshot with one store, and only then removes old VIPs.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::config::{self, ConfigError, Queues, ServiceTable};
use crate::lb::flow::FlowTimeouts;
use crate::lb::snapshot::{Snapshot, SnapshotError};
use crate::pipeline::loader::{self, PipelineError};
use crate::pipeline::stage::SharedTables;
use crate::runtime::capabilities;
use crate::runtime::plan::{self, PlanInterface, WorkerAssignment, WorkerChoice, WorkerPlan};
use crate::runtime::topology::{Topology, TopologyError};
use crate::runtime::worker::{CounterSummary, WorkerJob, WorkerStats};
use crate::xsk::{SocketSpec, SteeringProgram, XskError};

/// UMEM frames per socket: enough for the fill ring plus a full TX ring in flight.
const FRAMES_PER_RING: u32 = 2;

/// Why the dataplane could not start, or a snapshot could not be published.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Missing privileges.
    #[error("xlb run needs {missing}; run as root or grant them (e.g. setcap {missing}+ep)", missing = .0.join(","))]
    Capabilities(Vec<&'static str>),
    /// An interface is missing or has fewer queues than asked.
    #[error("interface {interface}: {message}")]
    Interface {
        /// Interface name.
        interface: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Topology discovery failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// No worker plan fits the machine.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The pipeline could not be loaded.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A snapshot could not be built.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// XDP or AF_XDP refused.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// A worker thread failed before it started serving.
    #[error("worker {worker} on CPU {cpu}: {message}")]
    Worker {
        /// Worker id.
        worker: usize,
        /// Its CPU.
        cpu: usize,
        /// What happened.
        message: String,
    },
}

/// Why `xlb topology` could not describe the machine.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// The service table is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Topology discovery or the plan failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
}

impl From<TopologyError> for DescribeError {
    fn from(error: TopologyError) -> Self {
        DescribeError::Dataplane(error.into())
    }
}

impl From<plan::PlanError> for DescribeError {
    fn from(error: plan::PlanError) -> Self {
        DescribeError::Dataplane(error.into())
    }
}

/// Builds one NUMA node's snapshot, given the one it replaces (none at start). It runs on
/// a thread pinned to that node, so the tables land in the node's memory.
pub type BuildSnapshot<'a> =
    dyn Fn(Option<&Snapshot>) -> Result<Snapshot, SnapshotError> + Sync + 'a;

/// One worker as the metrics endpoint sees it: id, (interface, queue) pairs, counters.
pub type WorkerSource = (usize, Vec<(String, u32)>, Arc<WorkerStats>);

/// One NUMA node's copy of the current snapshot.
struct Replica {
    node: Option<u32>,
    cpu: usize,
    snapshot: Arc<ArcSwap<Snapshot>>,
}

/// A running dataplane: XDP programs, pinned workers, the snapshots they read.
pub struct Dataplane {
    /// The clock origin workers and the supervisor's sweeps share: the shared tables
    /// compare times.
    epoch: Instant,
    /// Interface names by port index, to register each worker's sockets.
    interfaces: Vec<String>,
    programs: Vec<SteeringProgram>,
    replicas: Vec<Replica>,
    /// The addresses the steering maps hold now.
    steered: Vec<IpAddr>,
    shared: Arc<SharedTables>,
    workers: Vec<(Arc<WorkerStats>, JoinHandle<()>)>,
    stop: Arc<AtomicBool>,
    plan: WorkerPlan,
    flows_per_worker: usize,
}

impl Dataplane {
    /// Checks what `xlb run` needs before it touches anything (capabilities, the
    /// pipeline, the interfaces and their queues) and plans the workers on this machine.
    pub fn plan(table: &ServiceTable) -> Result<WorkerPlan, DataplaneError> {
        let missing = capabilities::missing();
        if !missing.is_empty() {
            return Err(DataplaneError::Capabilities(missing));
        }
        loader::load(&table.dataplane.pipeline)?;
        let interfaces = interface_names(table);
        for name in &interfaces {
            if !Path::new("/sys/class/net").join(name).exists() {
                return Err(DataplaneError::Interface {
                    interface: name.clone(),
                    message: "no such interface; check `dataplane.interfaces` and `ip link`".into(),
                });
            }
        }
        let names: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        let topology = Topology::discover(&names)?;
        let plan = plan::plan(
            &topology,
            &plan_interfaces(table, &topology)?,
            &worker_choice(table),
        )?;
        info!("topology:\n{}", topology.render());
        info!("worker plan:\n{}", plan.render());
        Ok(plan)
    }

    /// Builds each node's first snapshot of `table` with `build`, attaches the XDP
    /// programs and starts the workers `plan` places.
    pub fn start(
        table: &ServiceTable,
        plan: WorkerPlan,
        build: &BuildSnapshot<'_>,
    ) -> Result<Dataplane, DataplaneError> {
        let interfaces = interface_names(table);

        let mut replicas: Vec<Replica> = Vec::new();
        for (node, cpu) in plan.workers.iter().map(|w| (w.numa_node, w.cpu)) {
            if replicas.iter().all(|r| r.node != node) {
                let snapshot = build_on(cpu, || build(None))?;
                replicas.push(Replica {
                    node,
                    cpu,
                    snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
                });
            }
        }

        let steered = steered_addresses(table);
        let mut programs = Vec::new();
        for interface in &table.dataplane.interfaces {
            let mut program = SteeringProgram::attach(&interface.name, interface.xdp_mode)?;
            program.set_vips(&steered)?;
            programs.push(program);
        }

        let flows_per_worker = flows_per_worker(table, plan.workers.len());
        let mut dataplane = Dataplane {
            epoch: Instant::now(),
            interfaces,
            programs,
            replicas,
            steered,
            shared: Arc::new(SharedTables::for_table(&table.dataplane)),
            workers: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            plan,
            flows_per_worker,
        };
        if let Err(e) = dataplane.spawn_workers(table) {
            dataplane.stop_workers();
            return Err(e);
        }
        Ok(dataplane)
    }

    fn spawn_workers(&mut self, table: &ServiceTable) -> Result<(), DataplaneError> {
        let d = &table.dataplane;
        for assignment in self.plan.workers.clone() {
            let replica = self
                .replicas
                .iter()
                .find(|r| r.node == assignment.numa_node)
                .map(|r| r.snapshot.clone())
                .expect("a replica exists for every planned node");
            let stats = Arc::new(WorkerStats::default());
            let (ready_tx, ready_rx) = mpsc::channel();
            let job = WorkerJob {
                assignment: assignment.clone(),
                specs: socket_specs(table, &assignment),
                frames: d.ring_size * FRAMES_PER_RING * 2,
                flows: self.flows_per_worker,
                timeouts: FlowTimeouts::from_table(d),
                pipeline: d.pipeline.clone(),
                batch_size: d.batch_size,
                idle: d.idle,
                snapshot: replica,
                shared: self.shared.clone(),
                stop: self.stop.clone(),
                stats: stats.clone(),
                epoch: self.epoch,
            };
            let failed = |message: String| DataplaneError::Worker {
                worker: assignment.id,
                cpu: assignment.cpu,
                message,
            };
            let handle = std::thread::Builder::new()
                .name(format!("xlb-worker-{}", assignment.id))
                .spawn(move || job.run(ready_tx))
                .map_err(|e| failed(e.to_string()))?;
            self.workers.push((stats, handle));
            let sockets = ready_rx
                .recv()
                .map_err(|_| failed("exited before opening its sockets".into()))?
                .map_err(failed)?;
            for (ifname, queue, fd) in sockets {
                let port = self
                    .interfaces
                    .iter()
                    .position(|name| *name == ifname)
                    .expect("sockets are opened only on configured interfaces");
                self.programs[port].register_socket(queue, fd)?;
            }
        }
        Ok(())
    }

    /// Builds every node's snapshot of `table` with `build`, off the packet path, then
    /// publishes: new VIPs into the steering maps, one store per node, stale VIPs out.
    pub fn publish(
        &mut self,
        table: &ServiceTable,
        build: &BuildSnapshot<'_>,
    ) -> Result<(), DataplaneError> {
        let mut fresh = Vec::with_capacity(self.replicas.len());
        for replica in &self.replicas {
            let previous = replica.snapshot.load_full();
            fresh.push(build_on(replica.cpu, || build(Some(&previous)))?);
        }
        let new_vips = steered_addresses(table);
        let union: Vec<IpAddr> = self
            .steered
            .iter()
            .chain(&new_vips)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Err(error) = self.steer(&union) {
            // Nothing was published: put the maps back as the running snapshot wants.
            let running = self.steered.clone();
            if let Err(undo) = self.steer(&running) {
                error!("restoring the steering maps failed too: {undo}");
            }
            return Err(error.into());
        }
        for (replica, snapshot) in self.replicas.iter().zip(fresh) {
            replica.snapshot.store(Arc::new(snapshot));
        }
        // The new snapshot is in force from here on: a stale VIP left in the maps only
        // steers its packets to xlb, which drops them as no_service.
        self.steered = match self.steer(&new_vips) {
            Ok(()) => new_vips,
            Err(error) => {
                warn!("removing stale VIPs from the steering maps failed: {error}");
                union
            }
        };
        Ok(())
    }

    /// Makes every interface's steering map hold exactly `addresses`.
    fn steer(&mut self, addresses: &[IpAddr]) -> Result<(), XskError> {
        self.programs
            .iter_mut()
            .try_for_each(|program| program.set_vips(addresses))
    }

    /// The snapshot in force (the first node's; every node's holds the same table).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.replicas[0].snapshot.load_full()
    }

    /// The first node's snapshot handle, for readers that follow every publish.
    pub fn snapshot_handle(&self) -> Arc<ArcSwap<Snapshot>> {
        self.replicas[0].snapshot.clone()
    }

    /// The SCTP and NAT tables every worker shares.
    pub fn shared(&self) -> &Arc<SharedTables> {
        &self.shared
    }

    /// The origin of the clock the workers stamp the shared tables with.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Milliseconds on the clock the workers stamp the shared tables with.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Flows each worker's table holds.
    pub fn flows_per_worker(&self) -> usize {
        self.flows_per_worker
    }

    /// Every worker: id, the (interface, queue) pairs it serves, its counters.
    pub fn workers(&self) -> Vec<WorkerSource> {
        self.plan
            .workers
            .iter()
            .zip(&self.workers)
            .map(|(assignment, (stats, _))| {
                let queues = assignment
                    .queues
                    .iter()
                    .map(|(interface, _, queue)| (interface.clone(), *queue))
                    .collect();
                (assignment.id, queues, stats.clone())
            })
            .collect()
    }

    /// Each worker's place in the plan (id, core, queues), in [`Dataplane::workers`] order.
    pub fn assignments(&self) -> &[WorkerAssignment] {
        &self.plan.workers
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, handle) in self.workers.drain(..) {
            if handle.join().is_err() {
                error!("a worker thread panicked");
            }
        }
    }

    /// Stops the workers, logs their final counters, then detaches the XDP programs.
    pub fn shutdown(mut self) {
        let stats: Vec<Arc<WorkerStats>> = self.workers.iter().map(|(s, _)| s.clone()).collect();
        self.stop_workers();
        let mut total = CounterSummary::default();
        for (worker, s) in stats.iter().enumerate() {
            let summary = CounterSummary::of(s);
            info!(worker, "worker counters: {summary}");
            total.add(&summary);
        }
        info!("total counters: {total}");
        self.programs.clear();
        info!("dataplane stopped; XDP programs detached");
    }
}

/// Builds a snapshot on a thread pinned to `cpu`, so its tables land on that node.
fn build_on<T: Send>(cpu: usize, build: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            build()
        })
        .join()
        .expect("snapshot builder does not panic")
    })
}

/// VIPs and SNAT addresses: what the XDP program steers to the sockets.
fn steered_addresses(table: &ServiceTable) -> Vec<IpAddr> {
    let set: BTreeSet<IpAddr> = table
        .services
        .iter()
        .flat_map(|s| s.vips.iter().copied())
        .chain(table.dataplane.nat.addresses.iter().copied())
        .collect();
    set.into_iter().collect()
}

fn plan_interfaces(
    table: &ServiceTable,
    topology: &Topology,
) -> Result<Vec<PlanInterface>, DataplaneError> {
    table
        .dataplane
        .interfaces
        .iter()
        .enumerate()
        .map(|(port, interface)| {
            let available = topology
                .interfaces
                .iter()
                .find(|l| l.name == interface.name)
                .map_or(1, |l| l.queues);
            let queues = match &interface.queues {
                Queues::All => (0..available).collect(),
                Queues::List(list) => list.clone(),
            };
            if let Some(q) = queues.iter().find(|q| **q >= available) {
                return Err(DataplaneError::Interface {
                    interface: interface.name.clone(),
                    message: format!(
                        "has {available} queue(s) but the config asks for queue {q}; use `queues: all` or raise the channel count (ethtool -L)"
                    ),
                });
            }
            Ok(PlanInterface { name: interface.name.clone(), port: port as u8, queues })
        })
        .collect()
}

fn worker_choice(table: &ServiceTable) -> WorkerChoice {
    match &table.dataplane.workers {
        config::Workers::Auto => WorkerChoice::Auto,
        config::Workers::Cores(cores) => WorkerChoice::Cores(cores.clone()),
    }
}

fn socket_specs(table: &ServiceTable, assignment: &WorkerAssignment) -> Vec<SocketSpec> {
    assignment
        .queues
        .iter()
        .map(|(ifname, port, queue)| {
            let interface = &table.dataplane.interfaces[*port as usize];
            SocketSpec {
                ifname: ifname.clone(),
                port: *port,
                queue: *queue,
                zero_copy: interface.zero_copy,
                ring_size: table.dataplane.ring_size,
            }
        })
        .collect()
}

/// The names of the dataplane's interfaces, by port index.
fn interface_names(table: &ServiceTable) -> Vec<String> {
    let interfaces = &table.dataplane.interfaces;
    interfaces.iter().map(|i| i.name.clone()).collect()
}

/// Each worker's share of the configured flow-table capacity.
fn flows_per_worker(table: &ServiceTable, workers: usize) -> usize {
    (table.dataplane.flow_table.capacity / workers.max(1)).max(1024)
}

/// `xlb topology`: the machine's topology and, with a config, the worker plan.
pub fn describe(config_path: Option<&Path>) -> Result<String, DescribeError> {
    let table = config_path.map(config::load).transpose()?;
    let names: Vec<&str> = table
        .iter()
        .flat_map(|t| t.dataplane.interfaces.iter().map(|i| i.name.as_str()))
        .collect();
    let topology = Topology::discover(&names)?;
    let mut out = topology.render();
    if let Some(table) = &table {
        let plan = plan::plan(
            &topology,
            &plan_interfaces(table, &topology)?,
            &worker_choice(table),
        )?;
        out.push('\n');
        out.push_str(&plan.render());
    }
    Ok(out)
}
