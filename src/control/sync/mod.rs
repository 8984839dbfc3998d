//! SCTP association sync between the nodes behind one ECMP group (docs/deployment.md):
//! each node sends the established associations its packets changed to every peer at
//! once, walks its whole table to them every `full_resync`, and adopts what they send.
//! A node that starts asks its peers for their tables and waits (at most `catch_up`)
//! before it serves, so a path ECMP moves to it, or a node's failure, finds the
//! association's backend on any node.
//!
//! Like IPVS's sync daemon and conntrackd: plain UDP between the nodes, every datagram
//! authenticated with the cluster's key, bounded batches, no acknowledgements: a lost
//! datagram is repaired by the next walk, a repeated or reordered one is harmless (a
//! record is the whole association) and a replayed one is refused by its sequence number.

pub mod message;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tracing::{info, warn};

use crate::config::SctpSyncConfig;
use crate::lb::sctp::replica::{Adopted, SctpReplica};
use crate::lb::snapshot::{BackendId, ServiceId, Snapshot};
use crate::pipeline::stage::SharedTables;
use crate::runtime::capabilities;
use message::{Kind, MessageError, Record, SyncKey};

/// How often the sync thread sends what changed and the next slice of a walk: the window
/// in which a new association's other paths may reach a peer before its record does.
const TICK: Duration = Duration::from_millis(10);
/// Records exported per tick: a burst of new associations is spread over ticks.
const CHANGES_PER_TICK: usize = 4096;
/// Records of a whole-table walk per tick and per destination (100k a second).
const WALK_SLICE: usize = 1024;
/// How often a starting node repeats its resync request to peers that have not answered.
const RESYNC_REQUEST_EVERY: Duration = Duration::from_millis(500);
/// The smallest secret accepted: 128 bits.
const KEY_MIN_LEN: usize = 16;
/// Datagrams a sender may be behind its newest before a late one counts as a replay.
const REPLAY_WINDOW: u64 = 64;

/// Why sync could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The key file could not be read.
    #[error("cannot read the SCTP sync key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The key file is too short to be a secret.
    #[error("the SCTP sync key file {path} holds {len} bytes; use at least {KEY_MIN_LEN} random bytes (e.g. `head -c 32 /dev/urandom > {path}`)")]
    KeyTooShort {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The listen address could not be bound.
    #[error("cannot bind the SCTP sync socket to {listen}: {source}")]
    Bind {
        /// The address.
        listen: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Counters of the sync, for metrics and the log.
#[derive(Debug)]
pub struct SyncStats {
    /// When the sync started: the origin of the peers' last-heard times.
    started: Instant,
    /// Each peer, and when an authentic datagram last came from it (ms after `started`,
    /// plus one; 0: never). Every peer sends at least once per `full_resync` (a walk
    /// ends with a marker even over an empty table), so silence longer than that is lag.
    peers: Vec<(SocketAddr, AtomicU64)>,
    /// Datagrams sent.
    pub datagrams_sent: AtomicU64,
    /// Datagrams that could not be sent (the peer's host unreachable, buffers full).
    pub send_errors: AtomicU64,
    /// Records sent (each destination counts).
    pub records_sent: AtomicU64,
    /// Authentic datagrams received from peers.
    pub datagrams_received: AtomicU64,
    /// Records that created an association here.
    pub adopted_created: AtomicU64,
    /// Records that refreshed one.
    pub adopted_refreshed: AtomicU64,
    /// Records naming another backend than the record here (kept).
    pub conflicts: AtomicU64,
    /// Records not adopted: table full of established associations.
    pub table_full: AtomicU64,
    /// Records for a service or backend this node's table does not have.
    pub unknown: AtomicU64,
    /// Datagrams refused: bad MAC, not a peer, malformed, or replayed.
    pub rejected_authentication: AtomicU64,
    /// Datagrams from an address that is not a configured peer.
    pub rejected_foreign: AtomicU64,
    /// Authentic datagrams that do not parse.
    pub rejected_malformed: AtomicU64,
    /// Datagrams older than the replay window, or seen before.
    pub rejected_replay: AtomicU64,
    /// Whole-table walks completed (periodic and requested).
    pub walks: AtomicU64,
    /// 1 once the starting node has every peer's table or stopped waiting.
    pub caught_up: AtomicU64,
}

impl SyncStats {
    fn new(peers: &[SocketAddr]) -> SyncStats {
        let zero = AtomicU64::default;
        SyncStats {
            started: Instant::now(),
            peers: peers.iter().map(|p| (*p, AtomicU64::new(0))).collect(),
            datagrams_sent: zero(),
            send_errors: zero(),
            records_sent: zero(),
            datagrams_received: zero(),
            adopted_created: zero(),
            adopted_refreshed: zero(),
            conflicts: zero(),
            table_full: zero(),
            unknown: zero(),
            rejected_authentication: zero(),
            rejected_foreign: zero(),
            rejected_malformed: zero(),
            rejected_replay: zero(),
            walks: zero(),
            caught_up: zero(),
        }
    }

    /// Each peer and how long it has been silent (since the sync started, if it never
    /// spoke), for the metrics endpoint.
    pub fn peer_silence(&self) -> Vec<(SocketAddr, Duration)> {
        let now = self.started.elapsed();
        self.peers
            .iter()
            .map(|(peer, heard)| {
                let heard = Duration::from_millis(heard.load(Ordering::Relaxed).saturating_sub(1));
                (*peer, now.saturating_sub(heard))
            })
            .collect()
    }

    fn heard(&self, from: SocketAddr) {
        if let Some((_, heard)) = self.peers.iter().find(|(peer, _)| *peer == from) {
            heard.store(
                self.started.elapsed().as_millis() as u64 + 1,
                Ordering::Relaxed,
            );
        }
    }

    /// Every counter with its metric name suffix and help, for the metrics endpoint.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 14] {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "datagrams_sent",
                "Sync datagrams sent.",
                read(&self.datagrams_sent),
            ),
            (
                "send_errors",
                "Sync datagrams that could not be sent.",
                read(&self.send_errors),
            ),
            (
                "records_sent",
                "Association records sent, per destination.",
                read(&self.records_sent),
            ),
            (
                "datagrams_received",
                "Authentic sync datagrams received.",
                read(&self.datagrams_received),
            ),
            (
                "adopted_created",
                "Peers' records that created an association here.",
                read(&self.adopted_created),
            ),
            (
                "adopted_refreshed",
                "Peers' records that refreshed an association here.",
                read(&self.adopted_refreshed),
            ),
            (
                "conflicts",
                "Peers' records naming another backend than the record here, which was kept.",
                read(&self.conflicts),
            ),
            (
                "table_full",
                "Peers' records not adopted: the table is full of established associations.",
                read(&self.table_full),
            ),
            (
                "unknown",
                "Peers' records for a service or backend this node does not have.",
                read(&self.unknown),
            ),
            (
                "rejected_authentication",
                "Sync datagrams with a bad MAC.",
                read(&self.rejected_authentication),
            ),
            (
                "rejected_foreign",
                "Sync datagrams from an address that is not a peer.",
                read(&self.rejected_foreign),
            ),
            (
                "rejected_malformed",
                "Authentic sync datagrams that do not parse.",
                read(&self.rejected_malformed),
            ),
            (
                "rejected_replay",
                "Sync datagrams seen before or older than the replay window.",
                read(&self.rejected_replay),
            ),
            (
                "walks",
                "Whole-table walks sent to peers.",
                read(&self.walks),
            ),
        ]
    }
}

/// The running sync: a thread that owns the socket.
pub struct ClusterSync {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<SyncStats>,
}

impl ClusterSync {
    /// Reads the key, binds `listen`, asks the peers for their tables and starts
    /// syncing `shared.sctp`. `epoch` is the clock origin the workers stamp the table
    /// with; `snapshot` names services and backends.
    pub fn start(
        config: &SctpSyncConfig,
        shared: Arc<SharedTables>,
        snapshot: Arc<ArcSwap<Snapshot>>,
        epoch: Instant,
    ) -> Result<ClusterSync, SyncError> {
        let secret = std::fs::read(&config.key_file).map_err(|source| SyncError::KeyFile {
            path: config.key_file.clone(),
            source,
        })?;
        if secret.len() < KEY_MIN_LEN {
            return Err(SyncError::KeyTooShort {
                path: config.key_file.clone(),
                len: secret.len(),
            });
        }
        let socket = UdpSocket::bind(config.listen).map_err(|source| SyncError::Bind {
            listen: config.listen,
            source,
        })?;
        socket
            .set_read_timeout(Some(TICK))
            .map_err(|source| SyncError::Bind {
                listen: config.listen,
                source,
            })?;
        let stats = Arc::new(SyncStats::new(&config.peers));
        let stop = Arc::new(AtomicBool::new(false));
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut node = SyncNode {
            socket,
            key: SyncKey::derive(&secret),
            peers: config.peers.clone(),
            sender: message::name_key(&config.listen.to_string()),
            boot,
            sequence: 0,
            shared,
            snapshot,
            names: None,
            epoch,
            stats: stats.clone(),
            replay: HashMap::new(),
            walk: Walk::Idle {
                next: Instant::now() + config.full_resync,
            },
            full_resync: config.full_resync,
            dumps: HashMap::new(),
            waiting_for: config.peers.iter().copied().collect(),
            catch_up_until: Instant::now() + config.catch_up,
            last_request: None,
        };
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("xlb-sctp-sync".into())
            .spawn(move || node.run(&thread_stop))
            .map_err(|source| SyncError::Bind {
                listen: config.listen,
                source,
            })?;
        info!(listen = %config.listen, peers = config.peers.len(), "SCTP sync started");
        Ok(ClusterSync {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    /// Waits until every peer sent its table or the catch-up time ran out.
    pub fn wait_caught_up(&self) {
        while self.stats.caught_up.load(Ordering::Acquire) == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The sync's counters.
    pub fn stats(&self) -> Arc<SyncStats> {
        self.stats.clone()
    }
}

impl Drop for ClusterSync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the periodic whole-table walk is.
enum Walk {
    /// Not walking; the next walk starts at `next`.
    Idle { next: Instant },
    /// Walking; the next slice starts at record `from`.
    At { from: usize },
}

/// The accepted part of one sender's datagram stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReplayWindow {
    boot: u64,
    highest: u64,
    /// Bit i: `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    fn new(boot: u64, sequence: u64) -> ReplayWindow {
        ReplayWindow {
            boot,
            highest: sequence,
            seen: 1,
        }
    }

    /// Whether (boot, sequence) is new; records it if so. A sender that restarted has a
    /// larger boot; one from an earlier boot is a replay.
    fn accept(&mut self, boot: u64, sequence: u64) -> bool {
        if boot != self.boot {
            if boot < self.boot {
                return false;
            }
            *self = ReplayWindow::new(boot, sequence);
            return true;
        }
        if sequence > self.highest {
            let shift = sequence - self.highest;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = sequence;
            return true;
        }
        let behind = self.highest - sequence;
        if behind >= REPLAY_WINDOW || self.seen & (1 << behind) != 0 {
            return false;
        }
        self.seen |= 1 << behind;
        true
    }
}

/// This node's names for the ids of one snapshot, both ways.
struct Names {
    snapshot: Arc<Snapshot>,
    service_keys: HashMap<ServiceId, u64>,
    backend_keys: HashMap<BackendId, u64>,
    /// Backend key -> (service, backend) here.
    backends: HashMap<u64, (ServiceId, BackendId)>,
}

impl Names {
    fn of(snapshot: Arc<Snapshot>) -> Names {
        let service_keys = snapshot
            .services()
            .iter()
            .map(|s| (s.id, message::name_key(&s.name)))
            .collect();
        let mut backend_keys = HashMap::new();
        let mut backends = HashMap::new();
        for backend in snapshot.backends() {
            let service = snapshot.service(backend.service);
            let key = message::backend_key(&service.name, &backend.name, backend.address);
            backend_keys.insert(backend.id, key);
            backends.insert(key, (service.id, backend.id));
        }
        Names {
            snapshot,
            service_keys,
            backend_keys,
            backends,
        }
    }

    fn record(&self, replica: &SctpReplica) -> Option<Record> {
        Some(Record {
            service: *self.service_keys.get(&replica.service)?,
            backend: *self.backend_keys.get(&replica.backend)?,
            client_port: replica.client_port,
            server_port: replica.server_port,
            client_tag: replica.client_tag,
            backend_tag: replica.backend_tag,
            closing: replica.closing,
            addresses: replica.addresses.clone(),
        })
    }

    fn replica(&self, record: &Record) -> Option<SctpReplica> {
        let &(service, backend) = self.backends.get(&record.backend)?;
        if self.service_keys.get(&service) != Some(&record.service) {
            return None;
        }
        Some(SctpReplica {
            service,
            backend,
            client_port: record.client_port,
            server_port: record.server_port,
            client_tag: record.client_tag,
            backend_tag: record.backend_tag,
            addresses: record.addresses.clone(),
            closing: record.closing,
        })
    }
}

/// The sync thread's state.
struct SyncNode {
    socket: UdpSocket,
    key: SyncKey,
    peers: Vec<SocketAddr>,
    sender: u64,
    boot: u64,
    sequence: u64,
    shared: Arc<SharedTables>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    names: Option<Names>,
    epoch: Instant,
    stats: Arc<SyncStats>,
    replay: HashMap<u64, ReplayWindow>,
    walk: Walk,
    full_resync: Duration,
    /// Walks requested by starting peers: where each peer's walk is.
    dumps: HashMap<SocketAddr, usize>,
    /// Peers whose table this node still waits for while starting.
    waiting_for: HashSet<SocketAddr>,
    catch_up_until: Instant,
    last_request: Option<Instant>,
}

impl SyncNode {
    fn run(&mut self, stop: &AtomicBool) {
        // Its socket is bound: nothing here needs a privilege.
        if let Err(e) = capabilities::drop_all_in_this_thread() {
            warn!("dropping the SCTP sync thread's capabilities failed: {e}");
        }
        let mut buffer = vec![0u8; 65536];
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match self.socket.recv_from(&mut buffer) {
                Ok((len, from)) => self.receive(&buffer[..len], from),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    warn!(error = %e, "SCTP sync receive failed");
                    std::thread::sleep(TICK);
                }
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick();
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The names of the snapshot in force, rebuilt when it changed.
    fn names(&mut self) -> &Names {
        let current = self.snapshot.load_full();
        let stale = self
            .names
            .as_ref()
            .is_none_or(|names| !Arc::ptr_eq(&names.snapshot, &current));
        if stale {
            self.names = Some(Names::of(current));
        }
        self.names.as_ref().expect("just set")
    }

    fn receive(&mut self, datagram: &[u8], from: SocketAddr) {
        if !self.peers.contains(&from) {
            self.stats.rejected_foreign.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (header, records) = match message::decode(&self.key, datagram) {
            Ok(decoded) => decoded,
            Err(MessageError::Authentication | MessageError::Foreign) => {
                self.stats
                    .rejected_authentication
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(MessageError::Truncated | MessageError::Malformed) => {
                self.stats
                    .rejected_malformed
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let fresh = match self.replay.get_mut(&header.sender) {
            Some(window) => window.accept(header.boot, header.sequence),
            None => {
                self.replay.insert(
                    header.sender,
                    ReplayWindow::new(header.boot, header.sequence),
                );
                true
            }
        };
        if !fresh {
            self.stats.rejected_replay.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.stats
            .datagrams_received
            .fetch_add(1, Ordering::Relaxed);
        self.stats.heard(from);
        match header.kind {
            Kind::Records => self.adopt(&records),
            Kind::ResyncRequest => {
                self.dumps.entry(from).or_insert(0);
            }
            Kind::ResyncDone => {
                if self.waiting_for.remove(&from) {
                    info!(peer = %from, "SCTP sync: peer's table received");
                }
            }
        }
    }

    fn adopt(&mut self, records: &[Record]) {
        let now_ms = self.now_ms();
        let replicas: Vec<Option<SctpReplica>> = {
            let names = self.names();
            records.iter().map(|r| names.replica(r)).collect()
        };
        for replica in replicas {
            let Some(replica) = replica else {
                self.stats.unknown.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let counter = match self.shared.sctp.adopt(&replica, now_ms) {
                Adopted::Created => &self.stats.adopted_created,
                Adopted::Refreshed => &self.stats.adopted_refreshed,
                Adopted::Conflict => &self.stats.conflicts,
                Adopted::TableFull => &self.stats.table_full,
                Adopted::Invalid => &self.stats.rejected_malformed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn tick(&mut self) {
        self.catch_up();
        let mut changed = Vec::new();
        self.shared
            .sctp
            .export_changed(&mut changed, CHANGES_PER_TICK);
        let peers = self.peers.clone();
        self.send_replicas(&changed, &peers);
        self.walk_step(&peers);
        let dumps: Vec<(SocketAddr, usize)> = self.dumps.iter().map(|(p, f)| (*p, *f)).collect();
        for (peer, from) in dumps {
            let mut slice = Vec::new();
            let next = self.shared.sctp.export_slice(from, WALK_SLICE, &mut slice);
            self.send_replicas(&slice, &[peer]);
            if next == 0 {
                self.dumps.remove(&peer);
                self.send(Kind::ResyncDone, &[], &[peer]);
                self.stats.walks.fetch_add(1, Ordering::Relaxed);
            } else {
                self.dumps.insert(peer, next);
            }
        }
    }

    /// While starting: asks silent peers for their tables, and declares the node caught
    /// up once all answered or the time ran out.
    fn catch_up(&mut self) {
        if self.stats.caught_up.load(Ordering::Relaxed) == 1 {
            return;
        }
        let now = Instant::now();
        if self.waiting_for.is_empty() || now >= self.catch_up_until {
            if !self.waiting_for.is_empty() {
                let silent: Vec<String> = self.waiting_for.iter().map(|p| p.to_string()).collect();
                warn!(silent = ?silent, "SCTP sync: serving without these peers' tables");
            }
            self.stats.caught_up.store(1, Ordering::Release);
            return;
        }
        if self
            .last_request
            .is_none_or(|at| now.duration_since(at) >= RESYNC_REQUEST_EVERY)
        {
            self.last_request = Some(now);
            let waiting: Vec<SocketAddr> = self.waiting_for.iter().copied().collect();
            self.send(Kind::ResyncRequest, &[], &waiting);
        }
    }

    /// The periodic walk: one slice per tick to every peer.
    fn walk_step(&mut self, peers: &[SocketAddr]) {
        let from = match self.walk {
            Walk::Idle { next } if Instant::now() >= next => 0,
            Walk::Idle { .. } => return,
            Walk::At { from } => from,
        };
        let mut slice = Vec::new();
        let next = self.shared.sctp.export_slice(from, WALK_SLICE, &mut slice);
        self.send_replicas(&slice, peers);
        self.walk = if next == 0 {
            // The walk's end says so, which also tells the peers this node is alive.
            self.send(Kind::ResyncDone, &[], peers);
            self.stats.walks.fetch_add(1, Ordering::Relaxed);
            Walk::Idle {
                next: Instant::now() + self.full_resync,
            }
        } else {
            Walk::At { from: next }
        };
    }

    fn send_replicas(&mut self, replicas: &[SctpReplica], to: &[SocketAddr]) {
        if replicas.is_empty() {
            return;
        }
        let records: Vec<Record> = {
            let names = self.names();
            replicas.iter().filter_map(|r| names.record(r)).collect()
        };
        self.send(Kind::Records, &records, to);
    }

    /// Encodes `records` once (one MAC and sequence number per datagram, whatever the
    /// number of destinations) and sends the datagrams to each of `to`.
    fn send(&mut self, kind: Kind, records: &[Record], to: &[SocketAddr]) {
        let datagrams = message::encode(
            &self.key,
            kind,
            self.sender,
            self.boot,
            &mut self.sequence,
            records,
        );
        for peer in to {
            for datagram in &datagrams {
                let counter = match self.socket.send_to(datagram, peer) {
                    Ok(_) => &self.stats.datagrams_sent,
                    Err(_) => &self.stats.send_errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            self.stats
                .records_sent
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayWindow;

    #[test]
    fn the_replay_window_takes_late_and_reordered_datagrams_once() {
        let mut window = ReplayWindow::new(10, 100);
        assert!(!window.accept(10, 100), "a duplicate");
        assert!(window.accept(10, 102));
        assert!(window.accept(10, 101), "late but new");
        assert!(!window.accept(10, 101));
        assert!(window.accept(10, 300));
        assert!(!window.accept(10, 200), "older than the window");
        assert!(window.accept(10, 300 - 63));
        assert!(!window.accept(9, 1_000), "an earlier boot");
        assert!(window.accept(11, 0), "the sender restarted");
        assert!(!window.accept(10, 301), "its old boot is over");
    }
}
