//! The Prometheus metrics endpoint: renders the workers' published counters, the
//! current snapshot's backends and health, the shared SCTP and NAT tables and the
//! reload counters as OpenMetrics text (through `prometheus-client`), and serves it
//! as `GET /metrics` from one plain `std` listener thread.
//!
//! Everything here runs off the packet path: a scrape reads atomics the workers
//! store once per publish period, loads the snapshot once, and takes the SCTP and
//! NAT tables' statistics locks (their rarely-written control locks) once each.
//!
//! Counters are monotonic within one process. Per-backend counters are kept per
//! [`BackendId`](crate::lb::snapshot::BackendId): a backend keeps its id, and so its
//! series, across reloads while its service name, backend name and address stay. A
//! backend that leaves and comes back later may get another id; its series then
//! restarts from that id's count (Prometheus sees a counter reset, which `rate()`
//! handles), and an id freed by one backend and later taken by another carries the
//! old owner's count into the newcomer's first sample.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tracing::{debug, warn};

use crate::control::announce::AnnounceStatus;
use crate::control::sync::SyncStats;
use crate::lb::snapshot::{BackendId, Snapshot};
use crate::lb::verdict::DropReason;
use crate::pipeline::stage::SharedTables;
use crate::runtime::worker::WorkerStats;

/// Content type of the exposition: `prometheus-client` writes OpenMetrics text
/// (counters carry `_total`, the body ends with `# EOF`), which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How often the idle listener thread looks at its stop flag; bounds how long
/// dropping a [`MetricsServer`] waits.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// How long one scrape connection may take to send its request or read the answer,
/// so a stuck client cannot hold a scrape thread.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Scrapes answered at once: Prometheus, an operator's `xlb stats` and a few more.
pub const MAX_CONCURRENT_SCRAPES: usize = 8;

/// Longest request head read; scrapers send a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Outcomes of configuration reloads, written by the reload path and read by the
/// endpoint (`xlb_reloads_total`, `xlb_config_generation`).
#[derive(Debug, Default)]
pub struct ReloadCounters {
    /// Reloads that validated and were published.
    pub ok: AtomicU64,
    /// Reloads refused (the file did not validate or the snapshot could not be built).
    pub failed: AtomicU64,
    /// Config generation in force.
    pub generation: AtomicU64,
}

impl ReloadCounters {
    /// Counters of a dataplane that started with `generation`.
    pub fn new(generation: u64) -> Self {
        ReloadCounters {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            generation: AtomicU64::new(generation),
        }
    }

    /// Counts a published reload and records the generation it put in force.
    pub fn record_ok(&self, generation: u64) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// Counts a refused reload; the running generation stays.
    pub fn record_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sizes of the tables whose occupancy is exported, so alerts can compare the
/// occupancy with the room there is (`xlb_flows / xlb_flow_table_capacity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCapacities {
    /// Flows one worker's flow table holds.
    pub flows_per_worker: u64,
    /// Associations the shared SCTP table holds.
    pub sctp_associations: u64,
    /// Sessions the shared NAT table holds.
    pub nat_sessions: u64,
}

pub use crate::runtime::dataplane::WorkerSource;

/// Everything the endpoint reads; the supervisor builds it once at start.
#[derive(Clone)]
pub struct MetricsSources {
    /// Every worker: id, (interface, queue) pairs served, counters.
    pub workers: Vec<WorkerSource>,
    /// The current generation: service and backend names, ids and health.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The SCTP association and NAT session tables shared by all workers.
    pub shared: Arc<SharedTables>,
    /// Reload outcomes and the generation in force.
    pub reloads: Arc<ReloadCounters>,
    /// Table sizes, for occupancy ratios.
    pub capacities: TableCapacities,
    /// SCTP sync with the cluster's other nodes, when configured.
    pub sync: Option<Arc<SyncStats>>,
    /// Which VIPs the node's routing daemon is given to announce.
    pub announce: Arc<AnnounceStatus>,
}

/// A label value written with the escapes the text format requires (`\\`, `\"`,
/// `\n`): service and backend names come from the YAML and may hold any character.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        use fmt::Write as _;
        let mut rest = self.0;
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..at])?;
            encoder.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[at + 1..];
        }
        encoder.write_str(rest)
    }
}

/// A label set of one series: (name, value) pairs, values escaped.
type Labels<'a> = Vec<(&'static str, Escaped<'a>)>;

/// Writes one counter family: `name` (without `_total`, which the encoder adds).
fn counters<S: EncodeLabelSet, V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// Writes one gauge family.
fn gauges<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// Writes one unlabelled counter.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// Writes one unlabelled gauge.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// The labels that name a worker: its id, and the interfaces and queue numbers it
/// serves, each listed once in serving order and joined with commas (a worker that
/// serves one queue of one interface reads `interface="eth1",queue="0"`).
struct WorkerLabels {
    worker: String,
    interfaces: String,
    queues: String,
}

impl WorkerLabels {
    fn of(id: usize, served: &[(String, u32)]) -> Self {
        let mut interfaces: Vec<&str> = Vec::new();
        let mut queues: Vec<u32> = Vec::new();
        for (interface, queue) in served {
            if !interfaces.contains(&interface.as_str()) {
                interfaces.push(interface);
            }
            if !queues.contains(queue) {
                queues.push(*queue);
            }
        }
        let queues: Vec<String> = queues.iter().map(u32::to_string).collect();
        WorkerLabels {
            worker: id.to_string(),
            interfaces: interfaces.join(","),
            queues: queues.join(","),
        }
    }

    fn labels(&self) -> Labels<'_> {
        vec![
            ("worker", Escaped(&self.worker)),
            ("interface", Escaped(&self.interfaces)),
            ("queue", Escaped(&self.queues)),
        ]
    }
}

/// The collector `render` registers: reads every source on each encode.
struct SourcesCollector(MetricsSources);

impl fmt::Debug for SourcesCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourcesCollector")
            .field("workers", &self.0.workers.len())
            .finish()
    }
}

/// Reads one atomic counter.
#[inline]
fn read(value: &AtomicU64) -> u64 {
    value.load(Ordering::Relaxed)
}

impl SourcesCollector {
    fn encode_workers(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let workers: Vec<(WorkerLabels, &WorkerStats)> = self
            .0
            .workers
            .iter()
            .map(|(id, served, stats)| (WorkerLabels::of(*id, served), stats.as_ref()))
            .collect();
        let each = |value: fn(&WorkerStats) -> u64| {
            workers
                .iter()
                .map(move |(labels, stats)| (labels.labels(), value(stats)))
        };
        // A gauge of 1 per pair (the `_info` idiom) rather than an OpenMetrics info
        // family, so the classic text parsers (promtool, older scrapers) read it too.
        let pairs = self.0.workers.iter().flat_map(|(id, served, _)| {
            served
                .iter()
                .map(move |(interface, queue)| (id.to_string(), interface, queue.to_string()))
        });
        let pairs: Vec<(String, &String, String)> = pairs.collect();
        gauges(
            encoder,
            "xlb_worker_queue_info",
            "1 for each AF_XDP receive queue a worker serves (one series per interface and queue).",
            pairs.iter().map(|(worker, interface, queue)| {
                let labels: Labels<'_> = vec![
                    ("worker", Escaped(worker)),
                    ("interface", Escaped(interface)),
                    ("queue", Escaped(queue)),
                ];
                (labels, 1)
            }),
        )?;
        counters(
            encoder,
            "xlb_rx_packets",
            "Frames received by the worker.",
            each(|s| read(&s.rx_packets)),
        )?;
        counters(
            encoder,
            "xlb_rx_bytes",
            "Bytes received by the worker.",
            each(|s| read(&s.rx_bytes)),
        )?;
        counters(
            encoder,
            "xlb_tx_packets",
            "Frames transmitted by the worker.",
            each(|s| read(&s.tx_packets)),
        )?;
        counters(
            encoder,
            "xlb_tx_bytes",
            "Bytes transmitted by the worker.",
            each(|s| read(&s.tx_bytes)),
        )?;
        counters(
            encoder,
            "xlb_icmp_too_big",
            "Packets too big for the egress link once forwarded, answered with ICMP \
             fragmentation needed or Packet Too Big.",
            each(|s| read(&s.icmp_too_big)),
        )?;
        let drops = workers.iter().flat_map(|(labels, stats)| {
            DropReason::ALL.iter().map(move |reason| {
                let mut series = labels.labels();
                series.push(("reason", Escaped(reason.name())));
                (series, stats.dropped(*reason))
            })
        });
        counters(
            encoder,
            "xlb_drops",
            "Frames dropped by the worker, by reason (every reason listed, zeros included).",
            drops,
        )?;
        counters(
            encoder,
            "xlb_tx_ring_full",
            "Forwarded frames that found their TX ring full (and were lost).",
            each(|s| read(&s.tx_ring_full)),
        )?;
        counters(
            encoder,
            "xlb_fill_ring_empty",
            "Batches after which the worker's fill ring was empty.",
            each(|s| read(&s.fill_ring_empty)),
        )?;
        counters(
            encoder,
            "xlb_wakeups",
            "Syscalls the worker made to wake the kernel (needs_wakeup).",
            each(|s| read(&s.wakeups)),
        )?;
        counters(
            encoder,
            "xlb_idle_sleeps",
            "Times the worker slept waiting for frames (adaptive idle policy).",
            each(|s| read(&s.idle_sleeps)),
        )?;
        counters(
            encoder,
            "xlb_worker_busy_seconds",
            "Time the worker spent in loop passes that received frames; its rate is how loaded a polling worker is (its CPU time is a whole core either way).",
            workers
                .iter()
                .map(|(labels, stats)| (labels.labels(), read(&stats.busy_ns) as f64 / 1e9)),
        )?;
        counters(
            encoder,
            "xlb_new_flows",
            "Flows and SCTP associations the worker created.",
            each(|s| read(&s.new_flows)),
        )?;
        counters(
            encoder,
            "xlb_flows_reselected",
            "Tracked flows given a new backend because theirs left the service.",
            each(|s| read(&s.reselected)),
        )?;
        counters(
            encoder,
            "xlb_flow_evictions",
            "Live flows evicted from a full flow-table bucket.",
            each(|s| read(&s.evictions)),
        )?;
        let untracked = workers.iter().flat_map(|(labels, stats)| {
            [
                ("rate_limited", read(&stats.untracked_rate_limited)),
                ("table_full", read(&stats.untracked_table_full)),
            ]
            .into_iter()
            .map(move |(reason, value)| {
                let mut series = labels.labels();
                series.push(("reason", Escaped(reason)));
                (series, value)
            })
        });
        counters(
            encoder,
            "xlb_flows_untracked",
            "New flows forwarded by Maglev without a flow-table entry: the new-flow rate guard was out of tokens (rate_limited), or a SYN-only flow met a bucket of established flows (table_full).",
            untracked,
        )?;
        gauges(
            encoder,
            "xlb_flows",
            "Flows in the worker's flow table now.",
            each(|s| read(&s.flows)),
        )?;
        gauges(
            encoder,
            "xlb_worker_stalled",
            "1 while the worker has made no progress for longer than the stall threshold (the supervisor then stops petting systemd's watchdog).",
            each(|s| read(&s.liveness.stalled)),
        )?;
        gauges(
            encoder,
            "xlb_worker_seconds_since_progress",
            "Whole seconds since the worker's loop last made a pass, as of the supervisor's last check (about once a second).",
            each(|s| read(&s.liveness.seconds_since_progress)),
        )?;
        let capacity = self.0.capacities.flows_per_worker;
        gauges(
            encoder,
            "xlb_flow_table_capacity",
            "Flows one worker's flow table holds.",
            workers
                .iter()
                .map(|(labels, _)| (labels.labels(), capacity)),
        )
    }

    fn encode_backends(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let snapshot = self.0.snapshot.load();
        gauge(
            encoder,
            "xlb_config_generation",
            "Config generation in force.",
            read(&self.0.reloads.generation),
        )?;
        // (service, backend, id, up, draining), in config order.
        let backends: Vec<(&str, &str, usize, bool, bool)> = snapshot
            .services()
            .iter()
            .flat_map(|service| {
                service.backend_ids.iter().filter_map(|id| {
                    let backend = snapshot.backend(*id)?;
                    Some((
                        service.name.as_str(),
                        backend.name.as_str(),
                        *id as usize,
                        backend.healthy,
                        backend.draining,
                    ))
                })
            })
            .collect();
        let labelled = |value: &dyn Fn(usize, bool, bool) -> u64| -> Vec<(Labels<'_>, u64)> {
            backends
                .iter()
                .map(|(service, backend, id, up, draining)| {
                    (
                        vec![("service", Escaped(service)), ("backend", Escaped(backend))],
                        value(*id, *up, *draining),
                    )
                })
                .collect()
        };
        let summed = |column: fn(&WorkerStats) -> &[AtomicU64], id: usize| -> u64 {
            self.0
                .workers
                .iter()
                .filter_map(|(_, _, stats)| column(stats).get(id).map(read))
                .fold(0u64, u64::wrapping_add)
        };
        counters(
            encoder,
            "xlb_backend_packets",
            "Frames forwarded to the backend, summed over workers (per backend id; see the module docs for ids across reloads).",
            labelled(&|id, _, _| summed(|s| &s.backend_packets[..], id)),
        )?;
        counters(
            encoder,
            "xlb_backend_bytes",
            "Bytes forwarded to the backend, summed over workers.",
            labelled(&|id, _, _| summed(|s| &s.backend_bytes[..], id)),
        )?;
        counters(
            encoder,
            "xlb_backend_new_flows",
            "Flows and SCTP associations newly placed on the backend, summed over workers.",
            labelled(&|id, _, _| summed(|s| &s.backend_new_flows[..], id)),
        )?;
        let associations: HashMap<BackendId, u32> = self
            .0
            .shared
            .sctp
            .associations_by_backend()
            .into_iter()
            .collect();
        gauges(
            encoder,
            "xlb_backend_sctp_associations",
            "SCTP associations the backend owns now (xlb diff --url reads it).",
            labelled(&|id, _, _| {
                u64::from(associations.get(&(id as BackendId)).copied().unwrap_or(0))
            }),
        )?;
        gauges(
            encoder,
            "xlb_backend_up",
            "1 while the backend's health check passes (or it has none), 0 while it is down.",
            labelled(&|_, up, _| u64::from(up)),
        )?;
        gauges(
            encoder,
            "xlb_backend_draining",
            "1 while the backend is draining (state: drain): it keeps its flows and gets no new ones.",
            labelled(&|_, _, draining| u64::from(draining)),
        )
    }

    fn encode_sctp(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let sctp = self.0.shared.sctp.stats();
        gauge(
            encoder,
            "xlb_sctp_associations",
            "SCTP associations tracked now.",
            sctp.associations as u64,
        )?;
        gauge(
            encoder,
            "xlb_sctp_table_capacity",
            "SCTP associations the shared table holds.",
            self.0.capacities.sctp_associations,
        )?;
        counter(
            encoder,
            "xlb_sctp_associations_created",
            "SCTP associations created.",
            sctp.created,
        )?;
        counter(
            encoder,
            "xlb_sctp_associations_freed",
            "SCTP associations freed (closed, idle, or backend gone).",
            sctp.freed,
        )?;
        counter(
            encoder,
            "xlb_sctp_address_updates",
            "Client addresses added or removed by INIT and ASCONF after creation.",
            sctp.address_updates,
        )?;
        counter(
            encoder,
            "xlb_sctp_addresses_refused",
            "Client addresses not recorded because the association had its maximum.",
            sctp.addresses_refused,
        )?;
        counter(
            encoder,
            "xlb_sctp_table_full",
            "New SCTP associations refused because the table was full.",
            sctp.table_full,
        )?;
        gauge(
            encoder,
            "xlb_sctp_embryonic",
            "SCTP associations whose INIT was seen and whose COOKIE-ECHO is awaited.",
            sctp.embryonic as u64,
        )?;
        counter(
            encoder,
            "xlb_sctp_embryonic_evicted",
            "Embryonic SCTP records evicted, oldest first, to make room (an INIT flood).",
            sctp.embryonic_evicted,
        )?;
        counter(
            encoder,
            "xlb_sctp_embryonic_expired",
            "Embryonic SCTP records freed because no COOKIE-ECHO followed the INIT in time.",
            sctp.embryonic_expired,
        )?;
        counter(
            encoder,
            "xlb_sctp_associations_backend_gone",
            "SCTP associations ended because their backend left the service.",
            sctp.backend_gone,
        )?;
        Ok(())
    }

    fn encode_nat(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let nat = self.0.shared.nat.stats();
        gauge(
            encoder,
            "xlb_nat_sessions",
            "NAT sessions in the table now.",
            nat.sessions as u64,
        )?;
        gauge(
            encoder,
            "xlb_nat_table_capacity",
            "NAT sessions the shared table holds.",
            self.0.capacities.nat_sessions,
        )?;
        counter(
            encoder,
            "xlb_nat_sessions_created",
            "NAT sessions created.",
            nat.created,
        )?;
        counter(
            encoder,
            "xlb_nat_sessions_rebound",
            "NAT sessions moved to another backend because theirs left the service.",
            nat.rebound,
        )?;
        counter(
            encoder,
            "xlb_nat_sessions_expired",
            "NAT sessions removed after their idle or closing timeout.",
            nat.expired,
        )?;
        counter(
            encoder,
            "xlb_nat_sessions_expired_unanswered",
            "NAT sessions removed after nat.unanswered_idle because their backend never answered (a SYN flood shows here).",
            nat.expired_unanswered,
        )?;
        counter(
            encoder,
            "xlb_nat_ports_exhausted",
            "New NAT sessions or rebinds refused because no SNAT port was free.",
            nat.ports_exhausted,
        )?;
        counter(
            encoder,
            "xlb_nat_table_full",
            "New NAT sessions refused because their shard had no free slot.",
            nat.table_full,
        )
    }

    fn encode_sync(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let Some(sync) = &self.0.sync else {
            return Ok(());
        };
        for (name, help, value) in sync.counters() {
            counter(encoder, &format!("xlb_sctp_sync_{name}"), help, value)?;
        }
        gauge(
            encoder,
            "xlb_sctp_sync_caught_up",
            "1 once this node holds its peers' associations (or stopped waiting for them).",
            read(&sync.caught_up),
        )?;
        let silence: Vec<(String, u64)> = sync
            .peer_silence()
            .into_iter()
            .map(|(peer, silent)| (peer.to_string(), silent.as_secs()))
            .collect();
        gauges(
            encoder,
            "xlb_sctp_sync_peer_silence_seconds",
            "Seconds since the last authentic datagram from each peer; a live peer speaks at least every full_resync.",
            silence
                .iter()
                .map(|(peer, silent)| (vec![("peer", Escaped(peer))], *silent)),
        )
    }

    fn encode_reloads(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let reloads = &self.0.reloads;
        let series: [(Labels<'_>, u64); 2] = [
            (vec![("result", Escaped("ok"))], read(&reloads.ok)),
            (vec![("result", Escaped("failed"))], read(&reloads.failed)),
        ];
        counters(
            encoder,
            "xlb_reloads",
            "Configuration reloads by result (failed: the running table stayed).",
            series,
        )
    }

    fn encode_announce(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let vips = self.0.announce.vips();
        if vips.is_empty() {
            return Ok(());
        }
        let texts: Vec<(String, bool)> = vips.iter().map(|(v, a)| (v.to_string(), *a)).collect();
        gauges(
            encoder,
            "xlb_vip_announced",
            "1 while the VIP is on the announcement device (the routing daemon announces it), 0 while withdrawn.",
            texts
                .iter()
                .map(|(vip, on)| (vec![("vip", Escaped(vip))], u64::from(*on))),
        )
    }
}

impl Collector for SourcesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.encode_workers(&mut encoder)?;
        self.encode_backends(&mut encoder)?;
        self.encode_sctp(&mut encoder)?;
        self.encode_nat(&mut encoder)?;
        self.encode_reloads(&mut encoder)?;
        self.encode_sync(&mut encoder)?;
        self.encode_announce(&mut encoder)
    }
}

/// Renders every metric family as OpenMetrics text, ending with `# EOF`.
pub fn render(sources: &MetricsSources) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SourcesCollector(sources.clone())));
    let mut text = String::with_capacity(32 * 1024);
    // The encoder only fails when its writer does, and writing to a String cannot.
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String never fails");
    text
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("metrics endpoint: cannot listen on {listen}: {source}; free the port or change `dataplane.metrics_listen`")]
    Listen {
        /// The address asked for.
        listen: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The listener thread could not be spawned.
    #[error("metrics endpoint: cannot start its thread: {0}")]
    Thread(io::Error),
}

/// The running endpoint; dropping it stops the listener thread and closes the port.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address the endpoint listens on (the actual port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the metrics endpoint thread panicked");
            }
        }
    }
}

/// Serves `GET /metrics` on `listen` until the returned server is dropped. Each
/// scrape gets a thread of its own (at most [`MAX_CONCURRENT_SCRAPES`] at once) and
/// [`CLIENT_TIMEOUT`] for the whole exchange, so a slow or silent client delays no one;
/// each connection is closed after its answer.
pub fn serve(listen: SocketAddr, sources: MetricsSources) -> Result<MetricsServer, MetricsError> {
    let listen_error = |source| MetricsError::Listen { listen, source };
    let listener = TcpListener::bind(listen).map_err(listen_error)?;
    // Non-blocking accept lets the thread notice `stop` without a wake-up connection.
    listener.set_nonblocking(true).map_err(listen_error)?;
    let local_addr = listener.local_addr().map_err(listen_error)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name("xlb-metrics".into())
        .spawn({
            let stop = stop.clone();
            move || accept_loop(&listener, &sources, &stop)
        })
        .map_err(MetricsError::Thread)?;
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &TcpListener, sources: &MetricsSources, stop: &AtomicBool) {
    // Bound already; serving scrapes needs no privilege, nor do the threads started here.
    if let Err(e) = crate::runtime::capabilities::drop_all_in_this_thread() {
        warn!("dropping the metrics thread's capabilities failed: {e}");
    }
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        // At the cap, further scrapers wait in the listen backlog.
        if active.load(Ordering::Acquire) >= MAX_CONCURRENT_SCRAPES {
            std::thread::sleep(ACCEPT_POLL);
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                active.fetch_add(1, Ordering::AcqRel);
                let (sources, done) = (sources.clone(), active.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("xlb-scrape".into())
                        .spawn(move || {
                            if let Err(e) = answer(stream, &sources) {
                                debug!(%peer, "metrics scrape failed: {e}");
                            }
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::AcqRel);
                    warn!("metrics endpoint: cannot start a scrape thread: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                warn!("metrics endpoint: accept failed: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Reads one request head and answers it: the exposition for `GET /metrics` (or
/// `GET /`), 404 for another path, 405 for another method.
fn answer(mut stream: TcpStream, sources: &MetricsSources) -> io::Result<()> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
        // The whole head must arrive by the deadline, however slowly it trickles in.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let request_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics" | "/") => respond(&mut stream, "200 OK", CONTENT_TYPE, &render(sources)),
        ("GET", _) => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "xlb serves its metrics at /metrics\n",
        ),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n",
        ),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
