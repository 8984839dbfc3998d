//! `xlb run`'s control loop: the one supervisor above the workers. It loads the service
//! table, starts the dataplane, and then, until SIGTERM or SIGINT, reloads on SIGHUP,
//! applies health changes, refreshes backends' next hops, sweeps the shared tables and
//! serves metrics. Everything workers read changes in one place, [`Supervisor::publish`]:
//! a new snapshot from the table, the resolver and the health monitor's down set.
//!
//! The loop never waits on the network: next hops are resolved on the resolver thread
//! (a reload is applied when its round lands, or after [`RELOAD_BUDGET`] with the next
//! hops known so far), and the workers' progress is checked every second.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::{self, ConfigError, DataplaneConfig, ServiceTable};
use crate::control::announce::{self, AnnounceStatus, Announcer};
use crate::control::diff;
use crate::control::health::{self, HealthMonitor};
use crate::control::metrics::{
    self, MetricsServer, MetricsSources, ReloadCounters, TableCapacities,
};
use crate::control::neighbor::NeighborError;
use crate::control::notify::{Notifier, NotifyError};
use crate::control::resolver::{KernelResolver, ResolverThread, Round, Unresolved};
use crate::control::stall::WorkerWatch;
use crate::control::sync::{ClusterSync, SyncError, SyncStats};
use crate::lb::snapshot::{DownBackends, NextHopResolver, Snapshot};
use crate::lb::verdict::PortId;
use crate::runtime::capabilities;
use crate::runtime::dataplane::{Dataplane, DataplaneError};

/// How long a missing neighbour entry is probed for at start and on reload.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long start-up waits for its first resolution round; past it the dataplane starts
/// with the backends unresolved, and they are published as the round lands.
const START_BUDGET: Duration = Duration::from_secs(5);
/// How long a reload waits for its round before it is applied with the next hops known
/// so far (new backends unresolved until the round lands).
const RELOAD_BUDGET: Duration = Duration::from_secs(5);
/// How long a missing neighbour entry is probed for by the periodic refresh.
const REFRESH_TIMEOUT: Duration = Duration::from_millis(100);
/// How often backends' next hops are re-resolved.
const REFRESH_PERIOD: Duration = Duration::from_secs(5);
/// How often lingering associations and idle NAT sessions are freed.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(250);
/// NAT session slots each shard's expiry sweep visits per housekeeping round: the
/// largest tables (64 shards) are swept about once a second, a lock hold at a time.
const NAT_SWEEP_SLOTS: usize = 4096;

/// Why `xlb run` could not start, or a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The service table is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The dataplane could not start, or a snapshot could not be published.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// Interface MACs could not be read.
    #[error(transparent)]
    Neighbor(#[from] NeighborError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// A reload's diff could not be computed.
    #[error(transparent)]
    Snapshot(#[from] crate::lb::snapshot::SnapshotError),
    /// SCTP sync could not start.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The announcement device could not be set up.
    #[error(transparent)]
    Announce(#[from] announce::AnnounceError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// The resolver thread could not start.
    #[error("starting the next-hop resolver thread: {0}")]
    Resolver(std::io::Error),
    /// A reload changed `dataplane` settings that only a restart applies.
    #[error("{} changed: {} only applied at start; restart xlb to apply them, or undo the change (the running table is kept)", .0.iter().map(|f| format!("dataplane.{f}")).collect::<Vec<_>>().join(", "), if .0.len() == 1 { "it is" } else { "they are" })]
    NeedsRestart(Vec<&'static str>),
}

/// The `dataplane` fields a reload may change: they only shape the next snapshot.
/// Every other field sizes or configures something made at start (interfaces, workers,
/// rings, the flow, SCTP and NAT tables, the metrics listener).
const LIVE_FIELDS: [&str; 2] = ["maglev_table_size", "encapsulation"];

/// The `dataplane` fields that differ between `old` and `new` and need a restart.
pub fn fields_needing_restart(old: &DataplaneConfig, new: &DataplaneConfig) -> Vec<&'static str> {
    // Destructured, so a field added to the section must be placed here.
    let DataplaneConfig {
        interfaces,
        workers,
        idle,
        pipeline,
        batch_size,
        ring_size,
        flow_table,
        sctp,
        maglev_table_size,
        metrics_listen,
        encapsulation,
        nat,
    } = old;
    let changed = [
        ("interfaces", *interfaces != new.interfaces),
        ("workers", *workers != new.workers),
        ("idle", *idle != new.idle),
        ("pipeline", *pipeline != new.pipeline),
        ("batch_size", *batch_size != new.batch_size),
        ("ring_size", *ring_size != new.ring_size),
        ("flow_table", *flow_table != new.flow_table),
        ("sctp", *sctp != new.sctp),
        (
            "maglev_table_size",
            *maglev_table_size != new.maglev_table_size,
        ),
        ("metrics_listen", *metrics_listen != new.metrics_listen),
        ("encapsulation", *encapsulation != new.encapsulation),
        ("nat", *nat != new.nat),
    ];
    changed
        .into_iter()
        .filter(|(field, changed)| *changed && !LIVE_FIELDS.contains(field))
        .map(|(field, _)| field)
        .collect()
}

/// The running `xlb run`: the table in force, what decides its snapshots, the workers.
pub struct Supervisor {
    config_path: PathBuf,
    table: ServiceTable,
    generation: u64,
    resolver: KernelResolver,
    /// Resolves next hops off this thread.
    resolution: ResolverThread,
    /// A reload waiting for its next hops.
    pending: Option<PendingReload>,
    down: DownBackends,
    dataplane: Dataplane,
    reloads: Arc<ReloadCounters>,
    health: HealthMonitor,
    /// Down sets from the health monitor, applied by the control loop.
    health_changes: mpsc::Receiver<DownBackends>,
    /// Which workers stopped making progress.
    watch: WorkerWatch,
    /// Kept for its lifetime: the endpoint stops when it drops.
    metrics: MetricsServer,
    /// SCTP association sync with the other nodes, when configured.
    sync: Option<ClusterSync>,
    /// The VIPs the node's routing daemon announces.
    announcer: Announcer,
}

/// A validated table whose next hops are being resolved; applied when they are.
struct PendingReload {
    table: ServiceTable,
    changes: Vec<diff::ServiceDiff>,
    round: u64,
    asked: Instant,
}

impl Supervisor {
    /// Loads the table, resolves backends (waiting at most [`START_BUDGET`]), starts the
    /// dataplane, health checks and the metrics endpoint.
    pub fn start(config_path: &Path) -> Result<Supervisor, RunError> {
        let table = config::load(config_path)?;
        let plan = Dataplane::plan(&table)?;
        let mut resolution =
            ResolverThread::spawn(drop_thread_capabilities).map_err(RunError::Resolver)?;
        let first = resolution.request(&table, RESOLVE_TIMEOUT, true);
        let resolver = match resolution.wait_for(first, START_BUDGET) {
            Some(round) => {
                let (resolver, unresolved) = round.outcome?;
                report_unresolved(&unresolved);
                resolver
            }
            None => {
                warn!(budget = ?START_BUDGET, "next hops still resolving; starting without them, backends are published as they resolve");
                let interfaces: Vec<String> = table
                    .dataplane
                    .interfaces
                    .iter()
                    .map(|i| i.name.clone())
                    .collect();
                KernelResolver::without_next_hops(&interfaces)?
            }
        };
        let down = DownBackends::new();
        let dataplane = Dataplane::start(&table, plan, &|previous: Option<&Snapshot>| {
            Snapshot::build(&table, 1, previous, &resolver, &down)
        })?;
        // A node that joins takes its peers' associations before it serves (and
        // announces) a packet they may route here.
        let sync = table
            .dataplane
            .sctp
            .sync
            .as_ref()
            .map(|config| {
                ClusterSync::start(
                    config,
                    dataplane.shared().clone(),
                    dataplane.snapshot_handle(),
                    dataplane.epoch(),
                )
            })
            .transpose()?;
        if let Some(sync) = &sync {
            sync.wait_caught_up();
        }
        let reloads = Arc::new(ReloadCounters::new(1));
        let announcer = Announcer::new();
        let observed = Observed {
            sync: sync.as_ref().map(ClusterSync::stats),
            announce: announcer.status(),
        };
        // Bound with every capability (a port below 1024 needs one); its thread drops them.
        let metrics = serve_metrics(&table, &dataplane, &reloads, observed)?;
        // Before the health checks start: their threads inherit what is kept.
        drop_capabilities(table.announce.is_some());
        let (health_tx, health_changes) = mpsc::channel();
        let health = HealthMonitor::start(health::targets(&table), move |down: &DownBackends| {
            let _ = health_tx.send(down.clone());
        });
        let watch = WorkerWatch::new(&dataplane, Instant::now());
        let mut supervisor = Supervisor {
            config_path: config_path.to_path_buf(),
            table,
            generation: 1,
            resolver,
            resolution,
            pending: None,
            down,
            dataplane,
            reloads,
            health,
            health_changes,
            watch,
            metrics,
            sync,
            announcer,
        };
        supervisor.announce()?;
        Ok(supervisor)
    }

    /// Re-reads and validates the config file, and asks for its next hops; the reload is
    /// applied by [`Supervisor::next_hops`] when they land. On an error here the running
    /// table stays. A reload still waiting is superseded.
    pub fn begin_reload(&mut self) -> Result<(), RunError> {
        let outcome = self.validate_reload();
        match outcome {
            Ok((table, changes)) => {
                if self.pending.take().is_some() {
                    info!("a newer SIGHUP supersedes the reload waiting for its next hops");
                }
                let round = self.resolution.request(&table, RESOLVE_TIMEOUT, true);
                self.pending = Some(PendingReload {
                    table,
                    changes,
                    round,
                    asked: Instant::now(),
                });
                Ok(())
            }
            Err(e) => {
                self.reloads.record_failed();
                Err(e)
            }
        }
    }

    fn validate_reload(&self) -> Result<(ServiceTable, Vec<diff::ServiceDiff>), RunError> {
        let table = config::load(&self.config_path)?;
        let restart = fields_needing_restart(&self.table.dataplane, &table.dataplane);
        if !restart.is_empty() {
            return Err(RunError::NeedsRestart(restart));
        }
        let changes = diff::diff(&self.table, &table, Some(&self.live_associations()))?;
        Ok((table, changes))
    }

    /// Puts a validated table in force with the next hops resolved so far.
    fn finish_reload(
        &mut self,
        pending: PendingReload,
    ) -> Result<Vec<diff::ServiceDiff>, RunError> {
        let PendingReload { table, changes, .. } = pending;
        let generation = self.generation + 1;
        let outcome = self.publish(&table, generation);
        if outcome.is_err() {
            self.reloads.record_failed();
        }
        outcome?;
        self.health.update(health::targets(&table));
        self.table = table;
        self.generation = generation;
        self.reloads.record_ok(generation);
        for change in changes.iter().filter(|c| c.is_change()) {
            info!(generation, "reload: {change}");
        }
        Ok(changes)
    }

    /// Live SCTP associations per (service, backend) name, for the reload's diff.
    fn live_associations(&self) -> diff::LiveAssociations {
        let snapshot = self.dataplane.snapshot();
        self.dataplane
            .shared()
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

    /// Asks for the periodic re-resolution of the table in force, unless a round is
    /// already out (a slow round is not queued behind itself).
    pub fn request_refresh(&mut self) {
        if !self.resolution.busy() {
            self.resolution.request(&self.table, REFRESH_TIMEOUT, false);
        }
    }

    /// Waits at most `wait` for a resolution round and applies what landed: a pending
    /// reload whose round it is (or whose budget ran out) is put in force, and its
    /// outcome returned; any other round republishes when a next hop appeared or
    /// changed (a backend that came up, a replaced host with a new MAC).
    pub fn next_hops(
        &mut self,
        wait: Duration,
    ) -> Option<Result<Vec<diff::ServiceDiff>, RunError>> {
        let wait = match &self.pending {
            Some(p) => wait.min(RELOAD_BUDGET.saturating_sub(p.asked.elapsed())),
            None => wait,
        };
        match self.resolution.next(wait) {
            Some(round) => self.apply_round(round),
            None => {
                if self.pending.as_ref()?.asked.elapsed() < RELOAD_BUDGET {
                    return None;
                }
                let pending = self.pending.take()?;
                warn!(budget = ?RELOAD_BUDGET, "the reload's next hops are still resolving; applying it with those known so far");
                Some(self.finish_reload(pending))
            }
        }
    }

    fn apply_round(&mut self, round: Round) -> Option<Result<Vec<diff::ServiceDiff>, RunError>> {
        let reload = self.pending.as_ref().is_some_and(|p| p.round == round.id);
        let (resolver, unresolved) = match round.outcome {
            Ok(resolved) => resolved,
            Err(e) if reload => {
                self.pending = None;
                self.reloads.record_failed();
                return Some(Err(e.into()));
            }
            Err(e) => {
                warn!("next-hop refresh failed: {e}");
                return None;
            }
        };
        if round.report {
            report_unresolved(&unresolved);
        }
        if reload {
            self.resolver = resolver;
            let pending = self.pending.take()?;
            return Some(self.finish_reload(pending));
        }
        let current = self.dataplane.snapshot();
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
        let mtus: Vec<u32> = (0..current.port_mtus().len())
            .map(|port| resolver.port_mtu(port as PortId))
            .collect();
        let mtu_changed = mtus != current.port_mtus();
        if changed || mtu_changed {
            info!(
                unresolved = unresolved.len(),
                ?mtus,
                "next hops or MTUs changed; republishing"
            );
            self.resolver = resolver;
            if let Err(e) = self.republish() {
                error!("republishing new next hops failed: {e}");
            }
        }
        None
    }

    /// Samples the workers' progress (once per check period); true while any is stalled.
    pub fn check_workers(&mut self) -> bool {
        self.watch.check(Instant::now())
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
        self.republish()?;
        info!(down = self.down.len(), "health changed; republished");
        Ok(())
    }

    /// Publishes the table in force again, with the current next hops and down set.
    fn republish(&mut self) -> Result<(), RunError> {
        let table = self.table.clone();
        self.publish(&table, self.generation)
    }

    /// Builds generation `generation` of `table` on every node and swaps it in.
    fn publish(&mut self, table: &ServiceTable, generation: u64) -> Result<(), RunError> {
        let (resolver, down) = (&self.resolver, &self.down);
        self.dataplane
            .publish(table, &|previous: Option<&Snapshot>| {
                Snapshot::build(table, generation, previous, resolver, down)
            })?;
        Ok(())
    }

    /// Frees lingering associations and idle NAT sessions (off the packet path).
    pub fn housekeeping(&self) {
        let now_ms = self.dataplane.now_ms();
        let shared = self.dataplane.shared();
        shared.sctp.expire(now_ms);
        shared.nat.sweep(now_ms, NAT_SWEEP_SLOTS);
    }

    /// The generation in force.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Announces the VIPs the running snapshot can serve and withdraws the others.
    pub fn announce(&mut self) -> Result<(), announce::AnnounceError> {
        self.announcer.sync(&self.table, &self.dataplane.snapshot())
    }

    /// Withdraws every VIP and drains, then stops the SCTP sync, the metrics endpoint and
    /// health checks, then the dataplane.
    pub fn shutdown(mut self) {
        self.announcer
            .withdraw_and_drain(self.table.announce.as_ref());
        drop(self.sync);
        drop(self.metrics);
        drop(self.health);
        self.dataplane.shutdown();
    }
}

/// Runs `xlb run` until SIGTERM or SIGINT; SIGHUP reloads the config file. Under
/// systemd (`Type=notify`), it says when it is ready, reloading and stopping, and pets
/// the watchdog from this loop, so a stalled control loop gets xlb restarted.
pub fn run(config_path: &Path) -> Result<(), RunError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Registered before start-up so a SIGHUP or SIGTERM during it is queued, not fatal.
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .map_err(RunError::Signals)?;
    let mut systemd = Systemd::from_env();
    let mut supervisor = Supervisor::start(config_path)?;
    info!(
        generation = supervisor.generation(),
        "xlb running; SIGHUP reloads, SIGTERM stops"
    );
    systemd.ready(supervisor.generation());
    let mut refreshed = Instant::now();
    'serve: loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    systemd.send(Notifier::reloading);
                    if let Err(e) = supervisor.begin_reload() {
                        error!("reload failed, running table kept: {e}");
                        systemd.ready(supervisor.generation());
                    }
                }
                _ => {
                    systemd.send(Notifier::stopping);
                    break 'serve;
                }
            }
        }
        // Also the loop's pause: a round that lands wakes it at once.
        if let Some(reload) = supervisor.next_hops(HOUSEKEEPING_PERIOD) {
            match reload {
                Ok(_) => info!(generation = supervisor.generation(), "reload applied"),
                Err(e) => error!("reload failed, running table kept: {e}"),
            }
            systemd.ready(supervisor.generation());
        }
        // A stalled worker withholds the ping: systemd restarts what no longer serves.
        if !supervisor.check_workers() {
            systemd.pet_watchdog();
        }
        supervisor.housekeeping();
        if let Err(e) = supervisor.apply_health() {
            error!("applying health changes failed: {e}");
        }
        if let Err(e) = supervisor.announce() {
            error!("announcement failed: {e}");
        }
        if refreshed.elapsed() >= REFRESH_PERIOD {
            refreshed = Instant::now();
            supervisor.request_refresh();
        }
    }
    info!("stopping");
    supervisor.shutdown();
    Ok(())
}

/// systemd's side of the loop, when xlb runs under it; every call is a no-op otherwise,
/// and a failed notification is logged, never fatal.
struct Systemd {
    notifier: Option<Notifier>,
    /// Half the watchdog timeout, and when the watchdog was last petted.
    watchdog: Option<(Duration, Instant)>,
}

impl Systemd {
    fn from_env() -> Systemd {
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            warn!("not notifying systemd: {e}");
            None
        });
        let watchdog = notifier
            .as_ref()
            .and_then(Notifier::watchdog_interval)
            .map(|timeout| (timeout / 2, Instant::now()));
        Systemd { notifier, watchdog }
    }

    fn send(&self, message: impl FnOnce(&Notifier) -> Result<(), NotifyError>) {
        if let Some(notifier) = &self.notifier {
            if let Err(e) = message(notifier) {
                warn!("notifying systemd: {e}");
            }
        }
    }

    fn ready(&self, generation: u64) {
        self.send(|n| n.status(&format!("serving generation {generation}")));
        self.send(Notifier::ready);
    }

    fn pet_watchdog(&mut self) {
        let Some((every, last)) = &mut self.watchdog else {
            return;
        };
        if last.elapsed() < *every {
            return;
        }
        *last = Instant::now();
        self.send(Notifier::watchdog);
    }
}

/// What the metrics endpoint shows beside the dataplane: the cluster's view of this node.
struct Observed {
    sync: Option<Arc<SyncStats>>,
    announce: Arc<AnnounceStatus>,
}

/// Starts the Prometheus endpoint at `metrics_listen`.
fn serve_metrics(
    table: &ServiceTable,
    dataplane: &Dataplane,
    reloads: &Arc<ReloadCounters>,
    observed: Observed,
) -> Result<MetricsServer, RunError> {
    let d = &table.dataplane;
    let sources = MetricsSources {
        workers: dataplane.workers(),
        snapshot: dataplane.snapshot_handle(),
        shared: dataplane.shared().clone(),
        reloads: reloads.clone(),
        capacities: TableCapacities {
            flows_per_worker: dataplane.flows_per_worker() as u64,
            sctp_associations: d.sctp.capacity as u64,
            nat_sessions: d.flow_table.capacity as u64,
        },
        sync: observed.sync,
        announce: observed.announce,
    };
    let server = metrics::serve(d.metrics_listen, sources)?;
    info!(listen = %server.local_addr(), "metrics endpoint serving /metrics");
    Ok(server)
}

/// Drops what the control thread no longer needs once the dataplane serves, and says
/// what it kept and why.
fn drop_capabilities(announces: bool) {
    match capabilities::drop_after_start(announces) {
        Ok(kept) => {
            let kept: Vec<String> = kept
                .iter()
                .map(|k| format!("{} ({})", k.name, k.why))
                .collect();
            info!(
                "capabilities dropped from the effective and permitted sets; kept: {}",
                kept.join("; ")
            );
        }
        Err(e) => warn!("dropping capabilities after start failed, all kept: {e}"),
    }
}

/// Drops every capability of a thread that needs none (the resolver's).
fn drop_thread_capabilities() {
    if let Err(e) = capabilities::drop_all_in_this_thread() {
        warn!("dropping the resolver thread's capabilities failed: {e}");
    }
}

fn report_unresolved(unresolved: &[Unresolved]) {
    for u in unresolved {
        warn!(backend = %u.backend, address = %u.address, "backend unresolved, its packets are dropped and counted until it resolves: {}", u.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataplane(extra: &str) -> DataplaneConfig {
        let yaml = format!(
            "version: 1\ndataplane:\n  interfaces: [{{ name: eth0 }}]\n{extra}services: []\n"
        );
        config::parse(&yaml, "t.yaml").expect("valid").dataplane
    }

    #[test]
    fn only_snapshot_settings_change_without_a_restart() {
        let old = dataplane("");
        assert!(fields_needing_restart(&old, &old).is_empty());
        let live =
            dataplane("  maglev_table_size: 1009\n  encapsulation: { source_v4: 198.18.0.2 }\n");
        assert!(fields_needing_restart(&old, &live).is_empty());
        let sized = dataplane(
            "  sctp: { capacity: 4096 }\n  nat: { addresses: [198.18.0.3] }\n  batch_size: 32\n",
        );
        assert_eq!(
            fields_needing_restart(&old, &sized),
            ["batch_size", "sctp", "nat"]
        );
        let error = RunError::NeedsRestart(fields_needing_restart(&old, &sized)).to_string();
        assert_eq!(
            error,
            "dataplane.batch_size, dataplane.sctp, dataplane.nat changed: they are only applied \
             at start; restart xlb to apply them, or undo the change (the running table is kept)"
        );
    }
}
