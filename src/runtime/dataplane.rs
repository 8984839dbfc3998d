//! `xlb run`: start the dataplane (topology, plan, XDP programs, pinned workers),
//! reload it on SIGHUP, and stop it on SIGTERM/SIGINT.
//!
//! Start-up order matters: the snapshot exists before any worker runs; each worker
//! pins itself, then allocates its sockets, UMEM and flow table (so they land on its
//! NUMA node), then hands its socket fds back to be registered in the XSKMAP. A reload
//! builds the new snapshots off the packet path, puts new VIPs into the steering map,
//! swaps each node's snapshot with one store, and only then removes old VIPs.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::config::{self, ConfigError, Queues, ServiceTable};
use crate::control::diff;
use crate::control::health::{self, HealthMonitor};
use crate::control::metrics::{
    self, MetricsServer, MetricsSources, ReloadCounters, TableCapacities,
};
use crate::control::resolver::{KernelResolver, Unresolved};
use crate::lb::flow::FlowTimeouts;
use crate::lb::nat::{NatConfig, NatSessionTable};
use crate::lb::sctp::{SctpAssociationTable, SctpConfig};
use crate::lb::snapshot::{DownBackends, NextHopResolver, Snapshot, SnapshotError};
use crate::pipeline::loader::{self, PipelineError};
use crate::pipeline::stage::SharedTables;
use crate::runtime::capabilities;
use crate::runtime::plan::{self, PlanInterface, WorkerAssignment, WorkerChoice, WorkerPlan};
use crate::runtime::topology::Topology;
use crate::runtime::worker::{CounterSummary, WorkerJob, WorkerStats};
use crate::xsk::{self, SocketSpec, SteeringProgram, XskError};

/// How long a missing neighbour entry is probed for at start and on reload.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a missing neighbour entry is probed for by the periodic refresh.
const REFRESH_TIMEOUT: Duration = Duration::from_millis(100);
/// How often backends' next hops are re-resolved.
const REFRESH_PERIOD: Duration = Duration::from_secs(5);
/// How often lingering associations and idle NAT sessions are freed.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(250);
/// NAT session slots each shard's expiry sweep visits per housekeeping round: the
/// largest tables (64 shards) are swept about once a second, a lock hold at a time.
const NAT_SWEEP_SLOTS: usize = 4096;
/// UMEM frames per socket: enough for the fill ring plus a full TX ring in flight.
const FRAMES_PER_RING: u32 = 2;

/// Why the dataplane could not start (or a reload was refused).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The service table is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    Topology(#[from] crate::runtime::topology::TopologyError),
    /// No worker plan fits the machine.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The pipeline could not be loaded.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The snapshot could not be built.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Interface MACs could not be read.
    #[error(transparent)]
    Neighbor(#[from] crate::control::neighbor::NeighborError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// XDP or AF_XDP refused.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
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

/// One NUMA node's copy of the current snapshot.
struct Replica {
    node: Option<u32>,
    cpu: usize,
    snapshot: Arc<ArcSwap<Snapshot>>,
}

/// A running dataplane.
pub struct Dataplane {
    config_path: PathBuf,
    table: ServiceTable,
    generation: u64,
    resolver: KernelResolver,
    down: DownBackends,
    /// The clock origin workers and housekeeping share: shared tables compare times.
    epoch: Instant,
    programs: Vec<SteeringProgram>,
    replicas: Vec<Replica>,
    shared: Arc<SharedTables>,
    workers: Vec<(Arc<WorkerStats>, JoinHandle<()>)>,
    stop: Arc<AtomicBool>,
    plan: WorkerPlan,
    reloads: Arc<ReloadCounters>,
    health: HealthMonitor,
    /// Down sets from the health monitor, applied by the control loop.
    health_changes: mpsc::Receiver<DownBackends>,
    /// Kept for its lifetime: the endpoint stops when it drops.
    metrics: Option<MetricsServer>,
}

impl Dataplane {
    /// Validates the table, plans workers, attaches XDP and starts the workers.
    pub fn start(config_path: &Path) -> Result<Dataplane, RunError> {
        let table = config::load(config_path)?;
        let missing = capabilities::missing();
        if !missing.is_empty() {
            return Err(RunError::Capabilities(missing));
        }
        loader::load(&table.dataplane.pipeline)?;
        let names: Vec<&str> = table
            .dataplane
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        for name in &names {
            if !Path::new("/sys/class/net").join(name).exists() {
                return Err(RunError::Interface {
                    interface: name.to_string(),
                    message: "no such interface; check `dataplane.interfaces` and `ip link`".into(),
                });
            }
        }
        let topology = Topology::discover(&names)?;
        let plan = plan::plan(
            &topology,
            &plan_interfaces(&table, &topology)?,
            &worker_choice(&table),
        )?;
        info!("topology:\n{}", topology.render());
        info!("worker plan:\n{}", plan.render());

        let (resolver, unresolved) = KernelResolver::resolve(&table, RESOLVE_TIMEOUT)?;
        report_unresolved(&unresolved);
        let down = DownBackends::new();
        let mut replicas = Vec::new();
        for node in plan.workers.iter().map(|w| (w.numa_node, w.cpu)) {
            if replicas.iter().all(|r: &Replica| r.node != node.0) {
                let snapshot = build_on(node.1, || {
                    Snapshot::build(&table, 1, None, &resolver, &down)
                })?;
                replicas.push(Replica {
                    node: node.0,
                    cpu: node.1,
                    snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
                });
            }
        }

        let mut programs = Vec::new();
        let steered = steered_addresses(&table);
        for interface in &table.dataplane.interfaces {
            let mut program =
                SteeringProgram::attach(&interface.name, xdp_mode(interface.xdp_mode))?;
            program.set_vips(&steered)?;
            programs.push(program);
        }

        let d = &table.dataplane;
        let shared = Arc::new(SharedTables {
            sctp: SctpAssociationTable::new(SctpConfig::from_table(d)),
            nat: NatSessionTable::new(NatConfig {
                addresses: d.nat.addresses.clone(),
                port_range: d.nat.port_range,
                capacity: d.flow_table.capacity,
                tcp_idle_ms: d.flow_table.tcp_idle.as_millis() as u64,
                udp_idle_ms: d.flow_table.udp_idle.as_millis() as u64,
                tcp_closing_ms: d.flow_table.tcp_closing.as_millis() as u64,
                unanswered_idle_ms: d.nat.unanswered_idle.as_millis() as u64,
            }),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (health_tx, health_changes) = mpsc::channel();
        let health = HealthMonitor::start(health::targets(&table), move |down: &DownBackends| {
            let _ = health_tx.send(down.clone());
        });
        let mut dataplane = Dataplane {
            config_path: config_path.to_path_buf(),
            table,
            generation: 1,
            resolver,
            down,
            epoch: Instant::now(),
            programs,
            replicas,
            shared,
            workers: Vec::new(),
            stop,
            plan,
            reloads: Arc::new(ReloadCounters::new(1)),
            health,
            health_changes,
            metrics: None,
        };
        if let Err(e) = dataplane.spawn_workers() {
            dataplane.stop_workers();
            return Err(e);
        }
        dataplane.metrics = Some(dataplane.serve_metrics()?);
        Ok(dataplane)
    }

    /// Starts the Prometheus endpoint at `metrics_listen`.
    fn serve_metrics(&self) -> Result<MetricsServer, RunError> {
        let d = &self.table.dataplane;
        let workers = self
            .plan
            .workers
            .iter()
            .zip(&self.workers)
            .map(|(assignment, (stats, _))| {
                let queues = assignment
                    .queues
                    .iter()
                    .map(|(i, _, q)| (i.clone(), *q))
                    .collect();
                (assignment.id, queues, stats.clone())
            })
            .collect();
        let sources = MetricsSources {
            workers,
            snapshot: self.replicas[0].snapshot.clone(),
            shared: self.shared.clone(),
            reloads: self.reloads.clone(),
            capacities: TableCapacities {
                flows_per_worker: flows_per_worker(&self.table, self.plan.workers.len()) as u64,
                sctp_associations: d.sctp.capacity as u64,
                nat_sessions: d.flow_table.capacity as u64,
            },
        };
        let server = metrics::serve(d.metrics_listen, sources)?;
        info!(listen = %server.local_addr(), "metrics endpoint serving /metrics");
        Ok(server)
    }

    fn spawn_workers(&mut self) -> Result<(), RunError> {
        let epoch = self.epoch;
        let d = &self.table.dataplane;
        let flows_per_worker = flows_per_worker(&self.table, self.plan.workers.len());
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
                specs: socket_specs(&self.table, &assignment),
                frames: d.ring_size * FRAMES_PER_RING * 2,
                flows: flows_per_worker,
                timeouts: FlowTimeouts {
                    tcp_idle_ms: d.flow_table.tcp_idle.as_millis() as u64,
                    udp_idle_ms: d.flow_table.udp_idle.as_millis() as u64,
                    sctp_idle_ms: d.flow_table.sctp_idle.as_millis() as u64,
                    tcp_closing_ms: d.flow_table.tcp_closing.as_millis() as u64,
                },
                pipeline: d.pipeline.clone(),
                batch_size: d.batch_size,
                idle: d.idle,
                snapshot: replica,
                shared: self.shared.clone(),
                stop: self.stop.clone(),
                stats: stats.clone(),
                epoch,
            };
            let handle = std::thread::Builder::new()
                .name(format!("xlb-worker-{}", assignment.id))
                .spawn(move || job.run(ready_tx))
                .map_err(|e| RunError::Worker {
                    worker: assignment.id,
                    cpu: assignment.cpu,
                    message: e.to_string(),
                })?;
            self.workers.push((stats, handle));
            let sockets = ready_rx.recv().map_err(|_| RunError::Worker {
                worker: assignment.id,
                cpu: assignment.cpu,
                message: "exited before opening its sockets".into(),
            })?;
            let sockets = sockets.map_err(|message| RunError::Worker {
                worker: assignment.id,
                cpu: assignment.cpu,
                message,
            })?;
            for (ifname, queue, fd) in sockets {
                let port = self
                    .table
                    .dataplane
                    .interfaces
                    .iter()
                    .position(|i| i.name == ifname)
                    .expect("sockets are opened only on configured interfaces");
                self.programs[port].register_socket(queue, fd)?;
            }
        }
        Ok(())
    }

    /// Re-reads the config file and applies it; on any error the running table stays.
    pub fn reload(&mut self) -> Result<Vec<diff::ServiceDiff>, RunError> {
        let outcome = self.try_reload();
        match &outcome {
            Ok(_) => self.reloads.record_ok(self.generation),
            Err(_) => self.reloads.record_failed(),
        }
        outcome
    }

    fn try_reload(&mut self) -> Result<Vec<diff::ServiceDiff>, RunError> {
        let table = config::load(&self.config_path)?;
        if table.dataplane != self.table.dataplane {
            warn!("reload: changes under `dataplane` (interfaces, workers, sizes) apply at the next restart; services are reloaded now");
        }
        let changes = diff::diff(&self.table, &table, Some(&self.live_associations()))?;
        let (resolver, unresolved) = KernelResolver::resolve(&table, RESOLVE_TIMEOUT)?;
        report_unresolved(&unresolved);
        let generation = self.generation + 1;
        self.resolver = resolver;
        self.publish(&table, generation)?;
        self.health.update(health::targets(&table));
        self.table = table;
        self.generation = generation;
        for change in changes.iter().filter(|c| c.is_change()) {
            info!(generation, "reload: {change}");
        }
        Ok(changes)
    }

    /// Live SCTP associations per (service, backend) name, for the reload's diff.
    fn live_associations(&self) -> diff::LiveAssociations {
        let snapshot = self.replicas[0].snapshot.load();
        self.shared
            .sctp
            .associations_by_backend()
            .into_iter()
            .filter_map(|(id, count)| {
                let backend = snapshot.backend(id)?;
                let service = &snapshot.service(backend.service).name;
                Some(((service.clone(), backend.name.clone()), u64::from(count)))
            })
            .collect()
    }

    /// Re-resolves backends' next hops; republishes when one appeared or changed (a
    /// backend that came up, a replaced host with a new MAC).
    pub fn refresh_next_hops(&mut self) -> Result<(), RunError> {
        let (resolver, unresolved) = KernelResolver::resolve(&self.table, REFRESH_TIMEOUT)?;
        let current = self.replicas[0].snapshot.load_full();
        let changed = self
            .table
            .services
            .iter()
            .flat_map(|s| &s.backends)
            .any(|b| {
                let now = current
                    .backends()
                    .find(|e| e.address == b.address)
                    .and_then(|e| e.next_hop);
                now != resolver.next_hop(b)
            });
        if changed {
            info!(
                unresolved = unresolved.len(),
                "next hops changed; republishing"
            );
            self.resolver = resolver;
            let table = self.table.clone();
            self.publish(&table, self.generation)?;
        }
        Ok(())
    }

    /// Applies the latest down set from the health monitor, if it changed: backends
    /// that went down leave the Maglev rings (the same rebuild as a reload).
    pub fn apply_health(&mut self) -> Result<(), RunError> {
        let Some(down) = self.health_changes.try_iter().last() else {
            return Ok(());
        };
        if down == self.down {
            return Ok(());
        }
        self.down = down;
        let table = self.table.clone();
        self.publish(&table, self.generation)?;
        info!(down = self.down.len(), "health changed; republished");
        Ok(())
    }

    /// Builds every node's snapshot of `table` off the packet path, then publishes:
    /// new VIPs into the steering map, one store per node, stale VIPs out.
    fn publish(&mut self, table: &ServiceTable, generation: u64) -> Result<(), RunError> {
        let mut fresh = Vec::with_capacity(self.replicas.len());
        for replica in &self.replicas {
            let previous = replica.snapshot.load_full();
            let (down, resolver) = (&self.down, &self.resolver);
            fresh.push(build_on(replica.cpu, || {
                Snapshot::build(table, generation, Some(&previous), resolver, down)
            })?);
        }
        let old_vips = steered_addresses(&self.table);
        let new_vips = steered_addresses(table);
        let union: Vec<IpAddr> = old_vips
            .iter()
            .chain(&new_vips)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for program in &mut self.programs {
            program.set_vips(&union)?;
        }
        for (replica, snapshot) in self.replicas.iter().zip(fresh) {
            replica.snapshot.store(Arc::new(snapshot));
        }
        for program in &mut self.programs {
            program.set_vips(&new_vips)?;
        }
        Ok(())
    }

    /// The running generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Each worker's counters.
    pub fn worker_stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers.iter().map(|(s, _)| s.clone()).collect()
    }

    /// The shared SCTP and NAT tables.
    pub fn shared(&self) -> &SharedTables {
        &self.shared
    }

    /// Frees lingering associations and idle NAT sessions (off the packet path).
    pub fn housekeeping(&self) {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        self.shared.sctp.expire(now_ms);
        self.shared.nat.sweep(now_ms, NAT_SWEEP_SLOTS);
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
        let stats = self.worker_stats();
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

/// Runs the dataplane until SIGTERM or SIGINT; SIGHUP reloads the config file.
pub fn run(config_path: &Path) -> Result<(), RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Registered before start-up so a SIGHUP or SIGTERM during it is queued, not fatal.
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .map_err(RunError::Signals)?;
    let mut dataplane = Dataplane::start(config_path)?;
    info!(
        generation = dataplane.generation(),
        "xlb running; SIGHUP reloads, SIGTERM stops"
    );
    let mut refreshed = Instant::now();
    'serve: loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => match dataplane.reload() {
                    Ok(_) => info!(generation = dataplane.generation(), "reload applied"),
                    Err(e) => error!("reload failed, running table kept: {e}"),
                },
                _ => break 'serve,
            }
        }
        dataplane.housekeeping();
        if let Err(e) = dataplane.apply_health() {
            error!("applying health changes failed: {e}");
        }
        if refreshed.elapsed() >= REFRESH_PERIOD {
            refreshed = Instant::now();
            if let Err(e) = dataplane.refresh_next_hops() {
                warn!("next-hop refresh failed: {e}");
            }
        }
        std::thread::sleep(HOUSEKEEPING_PERIOD);
    }
    info!("stopping");
    dataplane.shutdown();
    Ok(())
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

fn report_unresolved(unresolved: &[Unresolved]) {
    for u in unresolved {
        warn!(backend = %u.backend, address = %u.address, "backend unresolved, its packets are dropped and counted until it resolves: {}", u.reason);
    }
}

fn plan_interfaces(
    table: &ServiceTable,
    topology: &Topology,
) -> Result<Vec<PlanInterface>, RunError> {
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
                return Err(RunError::Interface {
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
                zero_copy: match interface.zero_copy {
                    config::ZeroCopy::Auto => xsk::ZeroCopy::Auto,
                    config::ZeroCopy::Required => xsk::ZeroCopy::Required,
                    config::ZeroCopy::Off => xsk::ZeroCopy::Off,
                },
                ring_size: table.dataplane.ring_size,
            }
        })
        .collect()
}

fn xdp_mode(mode: config::XdpMode) -> xsk::XdpMode {
    match mode {
        config::XdpMode::Auto => xsk::XdpMode::Auto,
        config::XdpMode::Native => xsk::XdpMode::Native,
        config::XdpMode::Skb => xsk::XdpMode::Skb,
    }
}

/// Each worker's share of the configured flow-table capacity.
fn flows_per_worker(table: &ServiceTable, workers: usize) -> usize {
    (table.dataplane.flow_table.capacity / workers.max(1)).max(1024)
}

/// `xlb topology`: the machine's topology and, with a config, the worker plan.
pub fn describe(config_path: Option<&Path>) -> Result<String, RunError> {
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
