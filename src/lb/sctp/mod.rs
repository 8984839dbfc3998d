//! The SCTP association table (docs/architecture.md, "SCTP multihoming"): which backend
//! owns each multihomed association, so that every path of the association reaches the
//! same backend.
//!
//! Sans-IO: `now_ms` is an argument, nothing here touches a socket or a clock.
//!
//! Identity. Records are keyed by the service's [`ServiceId`] (stable while the service's
//! name stays in the table) and hold the backend's stable [`BackendId`], so a reload that
//! keeps both keeps every association where it is, however the file was reordered.
//!
//! Trust. A DSR balancer sees only the client's half of each association, so it lets a
//! packet change state only as far as an off-path attacker could not have forged it: the
//! packet carries a tag the table knows (or legitimately creates one: INIT, COOKIE-ECHO),
//! comes from an address of that association, and passes CRC32c. A live tag is never
//! replaced: a restarted association is a new record pinned to the old one's backend, and
//! the old record keeps routing its own tag until it closes or idles out.
//!
//! Floods. Records whose INIT was seen but no COOKIE-ECHO yet ("embryonic") live on a
//! short timer of their own, are limited per client address, and are the only records
//! ever evicted: the oldest goes when the table is full. Established associations are
//! never evicted.
//!
//! Replication. Established associations are exported to the other nodes of a cluster
//! and adopted from them ([`replica`]), so a path that ECMP hashes to another node, an
//! ASCONF-added address, or a node failure still finds the association's backend.
//!
//! Concurrency. All workers share one table. The per-packet read path (DATA, SACK,
//! HEARTBEAT, ...) takes one read lock on one of 64 shards of the tag index and stores
//! a last-seen time in an atomic; it never allocates. Everything that changes an
//! association (INIT, COOKIE-ECHO, ASCONF, ABORT, SHUTDOWN-COMPLETE, expiry) is rare
//! and goes through one `control` mutex that owns the records and the other indexes, and
//! takes a tag shard's write lock briefly while holding it. Locks are always taken in
//! that order (control, then one tag shard), so there is no deadlock, and the indexes
//! change together under the same mutex, so they stay consistent.

use core::net::IpAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::{HashMap, VecDeque};

use arrayvec::ArrayVec;
use foldhash::fast::RandomState;
use parking_lot::{Mutex, RwLock};

use crate::config::DataplaneConfig;
use crate::lb::snapshot::{BackendId, ServiceId};
use crate::lb::verdict::DropReason;
use crate::wire::sctp::{AsconfChunk, AsconfRequestKind, ChunkType, InitChunk, Packet};
use crate::wire::Result as WireResult;

pub mod replica;

/// Most client addresses one association can have.
pub const MAX_ADDRESSES: usize = crate::config::SCTP_MAX_ADDRESSES;

/// Number of shards of the tag index (a power of two: the shard is the top bits of a
/// multiplicative hash).
const TAG_SHARDS: usize = 64;
const TAG_SHARD_BITS: u32 = TAG_SHARDS.trailing_zeros();

/// Records one [`SctpAssociationTable::expire`] call visits: expiry is incremental, so a
/// housekeeping round holds the mutex for a bounded time whatever the capacity.
const EXPIRE_SLICE: usize = 8192;

/// Sizes and timeouts of the association table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpConfig {
    /// Most associations tracked at once; all records are allocated up front.
    pub capacity: usize,
    /// Most client addresses per association, at most [`MAX_ADDRESSES`].
    pub max_addresses: usize,
    /// How long a record stays after a matching ABORT or SHUTDOWN-COMPLETE, so that
    /// retransmissions of the closing exchange still reach the backend.
    pub linger_ms: u64,
    /// How long an association may stay silent before it is forgotten.
    pub idle_ms: u64,
    /// How long an embryonic record (INIT seen, no COOKIE-ECHO) lives after its INIT.
    pub embryonic_ms: u64,
    /// Most embryonic records one client address may hold at once.
    pub embryonic_per_source: u32,
}

impl SctpConfig {
    /// The table's settings from a service table's `dataplane` section.
    pub fn from_table(dataplane: &DataplaneConfig) -> SctpConfig {
        let sctp = &dataplane.sctp;
        SctpConfig {
            capacity: sctp.capacity,
            max_addresses: sctp.max_addresses,
            linger_ms: sctp.linger.as_millis() as u64,
            idle_ms: dataplane.flow_table.sctp_idle.as_millis() as u64,
            embryonic_ms: sctp.embryonic_timeout.as_millis() as u64,
            embryonic_per_source: sctp.embryonic_per_source,
        }
    }
}

/// Where a client->server SCTP packet travels, as the pipeline parsed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpPath {
    /// The stable identity of the service the VIP:port belongs to.
    pub service: ServiceId,
    /// The client's address (IP source).
    pub src: IpAddr,
    /// The VIP the packet was sent to (any VIP of the service).
    pub dst: IpAddr,
    /// The client's port.
    pub src_port: u16,
    /// The service port.
    pub dst_port: u16,
}

/// What to do with one SCTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SctpDecision {
    /// Send to this backend; `new_association` when this packet created the record.
    Forward {
        /// The backend id.
        backend: BackendId,
        /// Whether this packet created the association record.
        new_association: bool,
    },
    /// Drop, counted under this reason.
    Drop(DropReason),
}

/// Where an association is in its life, as far as a balancer that sees only the
/// client's half of the conversation can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SctpAssociationState {
    /// INIT seen; the backend's tag is not known until COOKIE-ECHO (embryonic).
    CookieWait,
    /// The backend's tag is known: packets are routed by it.
    Established,
    /// A matching ABORT or SHUTDOWN-COMPLETE was seen; freed at `until_ms`.
    Closing {
        /// When [`SctpAssociationTable::expire`] frees the record.
        until_ms: u64,
    },
}

/// A copy of one association record, for `xlb explain`, metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpAssociationInfo {
    /// The backend that owns the association.
    pub backend: BackendId,
    /// The client's verification tag (from its INIT), if seen.
    pub client_tag: Option<u32>,
    /// The backend's verification tag (from COOKIE-ECHO), if seen.
    pub backend_tag: Option<u32>,
    /// The client's addresses known to the balancer.
    pub addresses: ArrayVec<IpAddr, MAX_ADDRESSES>,
    /// The address the client asked to be its primary (ASCONF Set-Primary), if any.
    pub primary: Option<IpAddr>,
    /// Life-cycle state.
    pub state: SctpAssociationState,
    /// When a packet of the association was last seen.
    pub last_seen_ms: u64,
}

/// Counters of the table, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SctpStats {
    /// Associations currently tracked, embryonic ones included.
    pub associations: usize,
    /// Embryonic records currently tracked (INIT seen, no COOKIE-ECHO yet).
    pub embryonic: usize,
    /// Associations created since start.
    pub created: u64,
    /// Associations freed since start (closed, idle, evicted, or backend gone).
    pub freed: u64,
    /// Client addresses added or removed by INIT and ASCONF after creation.
    pub address_updates: u64,
    /// Client addresses not recorded because the association had `max_addresses`.
    pub addresses_refused: u64,
    /// New associations refused because the table was full of established ones.
    pub table_full: u64,
    /// Embryonic records evicted, oldest first, to make room for a new association.
    pub embryonic_evicted: u64,
    /// Embryonic records freed because no COOKIE-ECHO followed their INIT in time.
    pub embryonic_expired: u64,
    /// Associations ended because their backend left the service.
    pub backend_gone: u64,
}

/// Key of the tag indexes: the ports and one side's verification tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TagKey {
    service: ServiceId,
    client_port: u16,
    server_port: u16,
    tag: u32,
}

impl TagKey {
    fn new(path: &SctpPath, tag: u32) -> TagKey {
        TagKey {
            service: path.service,
            client_port: path.src_port,
            server_port: path.dst_port,
            tag,
        }
    }

    /// Shard by a multiplicative hash of the whole key (tags are random; ports and
    /// service spread the rest).
    #[inline]
    fn shard(&self) -> usize {
        let mixed = (u64::from(self.tag) << 32
            | u64::from(self.client_port) << 16
            | u64::from(self.server_port))
            ^ u64::from(self.service).rotate_left(17);
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TAG_SHARD_BITS)) as usize
    }
}

/// What the tag index holds: enough to forward without touching the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TagEntry {
    record: u32,
    backend: BackendId,
}

/// Key of the path indexes: one client transport address of an association.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PathKey {
    service: ServiceId,
    client: IpAddr,
    client_port: u16,
    server_port: u16,
}

impl PathKey {
    fn new(path: &SctpPath, client: IpAddr) -> PathKey {
        PathKey {
            service: path.service,
            client,
            client_port: path.src_port,
            server_port: path.dst_port,
        }
    }
}

/// One association record (a slot of the preallocated array).
#[derive(Clone, Debug)]
struct Association {
    in_use: bool,
    service: ServiceId,
    client_port: u16,
    server_port: u16,
    backend: BackendId,
    client_tag: Option<u32>,
    backend_tag: Option<u32>,
    /// Every address the association may use; the authority for address checks.
    addresses: ArrayVec<IpAddr, MAX_ADDRESSES>,
    primary: Option<IpAddr>,
    state: SctpAssociationState,
    /// The client's INIT announced RFC 9653 zero checksums.
    zero_checksum: bool,
    /// Which embryonic-queue entry is this record's (see [`Control::embryonic_queue`]).
    serial: u64,
    /// Waiting in [`Control::changed`] to be exported to the cluster.
    changed: bool,
}

impl Association {
    const FREE: Association = Association {
        in_use: false,
        service: 0,
        client_port: 0,
        server_port: 0,
        backend: 0,
        client_tag: None,
        backend_tag: None,
        addresses: ArrayVec::new_const(),
        primary: None,
        state: SctpAssociationState::CookieWait,
        zero_checksum: false,
        serial: 0,
        changed: false,
    };

    fn path_key(&self, client: IpAddr) -> PathKey {
        PathKey {
            service: self.service,
            client,
            client_port: self.client_port,
            server_port: self.server_port,
        }
    }

    fn tag_key(&self, tag: u32) -> TagKey {
        TagKey {
            service: self.service,
            client_port: self.client_port,
            server_port: self.server_port,
            tag,
        }
    }

    fn is_embryonic(&self) -> bool {
        self.in_use && self.state == SctpAssociationState::CookieWait
    }

    /// Whether a state-changing packet of this association passes its checksum.
    fn checksum_ok(&self, packet: &Packet<&[u8]>) -> bool {
        // RFC 9653 (paraphrased): an endpoint that announced the Zero Checksum
        // Acceptable parameter accepts a zero checksum as well as a correct one.
        // Only the client's announcement is visible here (the backend's is in its
        // INIT-ACK, which never crosses xlb); an association whose client announced
        // zero checksums uses an alternate error detection method both ways.
        (self.zero_checksum && packet.checksum() == 0) || packet.verify_checksum()
    }
}

/// Where a new record's backend comes from.
enum Placement {
    /// Maglev (`select`): nothing known about the client's addresses.
    Maglev,
    /// The backend of a live association that holds one of the packet's addresses
    /// (RFC 9260 §5.2: restarts and collisions go where the state is).
    PinnedTo(BackendId),
}

/// Everything the write path changes, behind the `control` mutex.
struct Control {
    records: Vec<Association>,
    free: Vec<u32>,
    /// Client transport address -> the newest established association holding it.
    paths: HashMap<PathKey, u32, RandomState>,
    /// INIT source -> the embryonic record that INIT made.
    embryonic_paths: HashMap<PathKey, u32, RandomState>,
    /// Client tag -> association: T-bit closes and quoted ICMP errors carry it.
    client_tags: HashMap<TagKey, u32, RandomState>,
    /// Embryonic records oldest first, as (record, serial, INIT time); an entry whose
    /// serial no longer matches its embryonic record is stale and skipped.
    embryonic_queue: VecDeque<(u32, u64, u64)>,
    embryonic_by_source: HashMap<IpAddr, u32, RandomState>,
    next_serial: u64,
    /// Associations per backend, for `xlb diff` and metrics.
    by_backend: HashMap<BackendId, u32, RandomState>,
    /// Where the next incremental expiry scan starts.
    expiry_cursor: usize,
    /// Established records changed since the last export, oldest first; an entry whose
    /// record no longer has `changed` set is stale and skipped.
    changed: Vec<u32>,
    stats: SctpStats,
}

/// The SCTP association table shared by all workers.
pub struct SctpAssociationTable {
    max_addresses: usize,
    linger_ms: u64,
    idle_ms: u64,
    embryonic_ms: u64,
    embryonic_per_source: u32,
    /// foldhash with a per-process seed: SipHash cost 13% of a DATA packet, and clients
    /// choose the tags (COOKIE-ECHO), so the hash must stay unpredictable to them.
    tag_shards: Box<[RwLock<HashMap<TagKey, TagEntry, RandomState>>]>,
    last_seen: Box<[AtomicU64]>,
    control: Mutex<Control>,
}

/// What a packet asks of the table, found in one walk over its chunks.
#[derive(Clone, Copy, Debug)]
enum PacketKind<'a> {
    Init(InitChunk<'a>),
    Close { reflected: bool },
    CookieEcho { asconf: bool },
    Asconf,
    Other,
}

/// Walks every chunk once, validating the ones the table reads.
fn classify<'a>(packet: &'a Packet<&'a [u8]>) -> WireResult<PacketKind<'a>> {
    let mut chunks = 0usize;
    let mut init = None;
    let mut close = None;
    let mut cookie = false;
    let mut asconf = false;
    for chunk in packet.chunks() {
        let chunk = chunk?;
        chunks += 1;
        match chunk.chunk_type() {
            ChunkType::Init => {
                let init_chunk = InitChunk::new_checked(chunk)?;
                for address in init_chunk.addresses() {
                    address?;
                }
                init = Some(init_chunk);
            }
            ChunkType::Asconf => {
                for request in AsconfChunk::new_checked(chunk)?.requests() {
                    request?;
                }
                asconf = true;
            }
            ChunkType::CookieEcho => cookie = true,
            ChunkType::Abort | ChunkType::ShutdownComplete => {
                close.get_or_insert(chunk.t_bit());
            }
            _ => {}
        }
    }
    if let Some(init) = init {
        //# RFC 9260 §6.10: INIT, INIT ACK, and SHUTDOWN COMPLETE chunks MUST NOT be
        //# bundled with any other chunk in a packet.
        // RFC 9260 §8.5.1 rule A (paraphrased): a packet carrying INIT has Verification
        // Tag 0.
        if chunks != 1 || packet.verification_tag() != 0 {
            return Err(crate::wire::Error::Malformed);
        }
        return Ok(PacketKind::Init(init));
    }
    if chunks == 0 {
        return Err(crate::wire::Error::Malformed);
    }
    Ok(match (close, cookie, asconf) {
        (Some(reflected), _, _) => PacketKind::Close { reflected },
        (None, true, asconf) => PacketKind::CookieEcho { asconf },
        (None, false, true) => PacketKind::Asconf,
        (None, false, false) => PacketKind::Other,
    })
}

impl SctpAssociationTable {
    /// Builds an empty table, allocating every record and index up front.
    pub fn new(config: SctpConfig) -> Self {
        let capacity = config.capacity.min(u32::MAX as usize);
        let per_shard = capacity / TAG_SHARDS + capacity / (TAG_SHARDS * 4) + 16;
        let tag_shards = (0..TAG_SHARDS)
            .map(|_| {
                RwLock::new(HashMap::with_capacity_and_hasher(
                    per_shard,
                    RandomState::default(),
                ))
            })
            .collect();
        let last_seen = (0..capacity).map(|_| AtomicU64::new(0)).collect();
        // Most associations have one or two client addresses; the path index grows
        // beyond that only on the write path (INIT, ASCONF), never per DATA packet.
        let control = Control {
            records: vec![Association::FREE; capacity],
            free: (0..capacity as u32).rev().collect(),
            paths: HashMap::with_capacity_and_hasher(
                capacity.saturating_mul(2),
                RandomState::default(),
            ),
            embryonic_paths: HashMap::default(),
            client_tags: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            embryonic_queue: VecDeque::new(),
            embryonic_by_source: HashMap::default(),
            next_serial: 0,
            by_backend: HashMap::default(),
            expiry_cursor: 0,
            changed: Vec::new(),
            stats: SctpStats::default(),
        };
        SctpAssociationTable {
            max_addresses: config.max_addresses.clamp(1, MAX_ADDRESSES),
            linger_ms: config.linger_ms,
            idle_ms: config.idle_ms,
            embryonic_ms: config.embryonic_ms,
            embryonic_per_source: config.embryonic_per_source.max(1),
            tag_shards,
            last_seen,
            control: Mutex::new(control),
        }
    }

    /// Decides one client->server packet; `sctp` is the SCTP header and chunks (the
    /// IP payload). `select` runs Maglev for a new association; `backend_present(id)`
    /// says whether that backend still serves the service and keeps its associations.
    /// Never panics on any bytes. The CRC32c is checked only on packets that would
    /// change state, never on DATA.
    pub fn decide(
        &self,
        path: &SctpPath,
        sctp: &[u8],
        now_ms: u64,
        select: impl FnOnce() -> Option<BackendId>,
        backend_present: impl Fn(BackendId) -> bool,
    ) -> SctpDecision {
        let Ok(packet) = Packet::new_checked(sctp) else {
            return SctpDecision::Drop(DropReason::SctpMalformed);
        };
        let Ok(kind) = classify(&packet) else {
            return SctpDecision::Drop(DropReason::SctpMalformed);
        };
        let routed = match kind {
            PacketKind::Other => {
                return self.on_tagged(path, packet.verification_tag(), now_ms, backend_present)
            }
            PacketKind::Init(init) => {
                self.on_init(path, &packet, init, now_ms, select, &backend_present)
            }
            PacketKind::CookieEcho { asconf } => {
                self.on_cookie_echo(path, &packet, asconf, now_ms, select, &backend_present)
            }
            PacketKind::Asconf => self.on_asconf(path, &packet, now_ms),
            PacketKind::Close { reflected } => self.on_close(path, &packet, reflected, now_ms),
        };
        match routed {
            Ok(routed) if backend_present(routed.backend) => SctpDecision::Forward {
                backend: routed.backend,
                new_association: routed.new_association,
            },
            Ok(routed) => {
                if let Some(id) = routed.record {
                    let mut control = self.control.lock();
                    let record = &control.records[id as usize];
                    if record.in_use && record.backend == routed.backend {
                        self.end_backend_gone(&mut control, id);
                    }
                }
                SctpDecision::Drop(DropReason::SctpBackendGone)
            }
            Err(reason) => SctpDecision::Drop(reason),
        }
    }

    /// Frees records whose linger ended, that stayed idle too long, or whose INIT saw
    /// no COOKIE-ECHO in time; returns how many. Incremental: each call visits the
    /// oldest embryonic records and the next [`EXPIRE_SLICE`] records, so the mutex
    /// is held for a bounded time however large the table.
    pub fn expire(&self, now_ms: u64) -> usize {
        let mut control = self.control.lock();
        let mut freed = 0;
        while let Some(&(id, serial, born_ms)) = control.embryonic_queue.front() {
            let record = &control.records[id as usize];
            if record.is_embryonic() && record.serial == serial {
                if now_ms.saturating_sub(born_ms) < self.embryonic_ms {
                    break;
                }
                self.free(&mut control, id);
                control.stats.embryonic_expired += 1;
                freed += 1;
            }
            control.embryonic_queue.pop_front();
        }
        let len = control.records.len();
        for _ in 0..EXPIRE_SLICE.min(len) {
            let id = control.expiry_cursor;
            control.expiry_cursor = (id + 1) % len;
            let record = &control.records[id];
            if !record.in_use || record.state == SctpAssociationState::CookieWait {
                continue;
            }
            let last_seen = self.last_seen[id].load(Ordering::Relaxed);
            let due = match record.state {
                SctpAssociationState::Closing { until_ms } => now_ms >= until_ms,
                _ => now_ms.saturating_sub(last_seen) >= self.idle_ms,
            };
            if due {
                self.free(&mut control, id as u32);
                freed += 1;
            }
        }
        freed
    }

    /// Associations currently tracked.
    pub fn len(&self) -> usize {
        self.control.lock().stats.associations
    }

    /// Whether no association is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table's counters.
    pub fn stats(&self) -> SctpStats {
        self.control.lock().stats
    }

    /// Associations owned by each backend that has any.
    pub fn associations_by_backend(&self) -> Vec<(BackendId, u32)> {
        let control = self.control.lock();
        let mut owners: Vec<(BackendId, u32)> =
            control.by_backend.iter().map(|(b, n)| (*b, *n)).collect();
        owners.sort_unstable();
        owners
    }

    /// The association a client transport address belongs to, if any (off the fast
    /// path: for `xlb explain`, metrics and tests). An established association wins
    /// over an embryonic one on the same address.
    pub fn association(
        &self,
        service: ServiceId,
        client: IpAddr,
        client_port: u16,
        server_port: u16,
    ) -> Option<SctpAssociationInfo> {
        let control = self.control.lock();
        let key = PathKey {
            service,
            client,
            client_port,
            server_port,
        };
        let id = *control
            .paths
            .get(&key)
            .or_else(|| control.embryonic_paths.get(&key))?;
        let record = &control.records[id as usize];
        Some(SctpAssociationInfo {
            backend: record.backend,
            client_tag: record.client_tag,
            backend_tag: record.backend_tag,
            addresses: record.addresses.clone(),
            primary: record.primary,
            state: record.state,
            last_seen_ms: self.last_seen[id as usize].load(Ordering::Relaxed),
        })
    }

    /// The backend of the association an ICMP error is about, from the packet it
    /// quotes (sent by the backend from the VIP to `client`, under the client's tag).
    /// `None` when no association of that client address carries that tag.
    pub fn backend_for_error(
        &self,
        service: ServiceId,
        client: IpAddr,
        client_port: u16,
        server_port: u16,
        quoted_tag: u32,
    ) -> Option<BackendId> {
        // RFC 9260 §10 (paraphrased): an ICMP error is matched to its association by
        // the quoted packet's Verification Tag.
        let control = self.control.lock();
        let by_tag = TagKey {
            service,
            client_port,
            server_port,
            tag: quoted_tag,
        };
        let by_path = PathKey {
            service,
            client,
            client_port,
            server_port,
        };
        let id = control.client_tags.get(&by_tag).copied().or_else(|| {
            // Learned from COOKIE-ECHO alone, the client's tag is unknown: the
            // address must then be the association's.
            control
                .paths
                .get(&by_path)
                .copied()
                .filter(|id| control.records[*id as usize].client_tag.is_none())
        })?;
        let record = &control.records[id as usize];
        record.addresses.contains(&client).then_some(record.backend)
    }

    /// The read path: any packet without INIT, COOKIE-ECHO, ASCONF, ABORT or
    /// SHUTDOWN-COMPLETE is routed by its verification tag alone.
    #[inline]
    fn on_tagged(
        &self,
        path: &SctpPath,
        backend_tag: u32,
        now_ms: u64,
        backend_present: impl Fn(BackendId) -> bool,
    ) -> SctpDecision {
        let key = TagKey::new(path, backend_tag);
        let entry = self.tag_shards[key.shard()].read().get(&key).copied();
        let Some(entry) = entry else {
            // A miss is never hashed: the wrong backend would ABORT the association.
            return SctpDecision::Drop(DropReason::SctpUnknownAssociation);
        };
        if !backend_present(entry.backend) {
            let mut control = self.control.lock();
            if self.tag_lookup(&key) == Some(entry) {
                self.end_backend_gone(&mut control, entry.record);
            }
            return SctpDecision::Drop(DropReason::SctpBackendGone);
        }
        self.last_seen[entry.record as usize].store(now_ms, Ordering::Relaxed);
        SctpDecision::Forward {
            backend: entry.backend,
            new_association: false,
        }
    }

    /// INIT: a retransmission stays with its embryonic record; an INIT from an address
    /// a live association holds (a restart or a collision, RFC 9260 §5.2) is pinned to
    /// that association's backend; anything else goes to Maglev. Either way a new
    /// embryonic record waits for the COOKIE-ECHO.
    fn on_init(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        init: InitChunk<'_>,
        now_ms: u64,
        select: impl FnOnce() -> Option<BackendId>,
        backend_present: &impl Fn(BackendId) -> bool,
    ) -> Result<Routed, DropReason> {
        // RFC 9653 (paraphrased): a zero checksum is sent only to a peer that announced
        // it accepts one, which the sender of an INIT cannot know yet.
        if !packet.verify_checksum() {
            return Err(DropReason::SctpBadChecksum);
        }
        let mut control = self.control.lock();
        let source = PathKey::new(path, path.src);
        if let Some(id) = control.embryonic_paths.get(&source).copied() {
            if backend_present(control.records[id as usize].backend) {
                // RFC 9260 §5.2.1 (paraphrased): an INIT repeated in COOKIE-WAIT,
                // possibly with a new Initiate Tag when the client started over.
                self.set_client_tag(&mut control, id, init.initiate_tag());
                for address in init.addresses().flatten() {
                    if self.add_address(&mut control, id, address) {
                        control.stats.address_updates += 1;
                    }
                }
                self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
                return Ok(control.routed(id, false));
            }
            self.end_backend_gone(&mut control, id);
        }
        let owner = core::iter::once(path.src)
            .chain(init.addresses().flatten())
            .find_map(|address| control.paths.get(&PathKey::new(path, address)).copied());
        let placement = match owner {
            Some(id) if backend_present(control.records[id as usize].backend) => {
                Placement::PinnedTo(control.records[id as usize].backend)
            }
            Some(id) => {
                self.end_backend_gone(&mut control, id);
                Placement::Maglev
            }
            None => Placement::Maglev,
        };
        let per_source = control
            .embryonic_by_source
            .get(&path.src)
            .copied()
            .unwrap_or(0);
        if per_source >= self.embryonic_per_source {
            return Err(DropReason::SctpInitLimit);
        }
        let id = self.create(
            &mut control,
            path,
            placement,
            SctpAssociationState::CookieWait,
            select,
            now_ms,
        )?;
        let serial = control.next_serial;
        control.next_serial += 1;
        let record = &mut control.records[id as usize];
        record.serial = serial;
        record.zero_checksum = init.accepts_zero_checksum();
        control.embryonic_queue.push_back((id, serial, now_ms));
        *control.embryonic_by_source.entry(path.src).or_insert(0) += 1;
        control.embryonic_paths.insert(source, id);
        control.stats.embryonic += 1;
        self.set_client_tag(&mut control, id, init.initiate_tag());
        // RFC 9260 §5.1.2 (paraphrased): the peer's transport addresses are the
        // packet's source address plus every address parameter of the INIT.
        for address in init.addresses().flatten() {
            self.add_address(&mut control, id, address);
        }
        self.compact_embryonic_queue(&mut control);
        Ok(control.routed(id, true))
    }

    /// COOKIE-ECHO carries the backend's tag (RFC 9260 §5.1), which a DSR balancer
    /// never sees otherwise: a known tag is a retransmission, an embryonic record on
    /// the source address is completed, and with no INIT seen here (it went to another
    /// node) a new record is placed on the path's live association or by Maglev.
    fn on_cookie_echo(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        asconf: bool,
        now_ms: u64,
        select: impl FnOnce() -> Option<BackendId>,
        backend_present: &impl Fn(BackendId) -> bool,
    ) -> Result<Routed, DropReason> {
        let backend_tag = packet.verification_tag();
        let mut control = self.control.lock();
        let (id, new_association) =
            if let Some(entry) = self.tag_lookup(&TagKey::new(path, backend_tag)) {
                self.check_sender(&control.records[entry.record as usize], path, packet, false)?;
                (entry.record, false)
            } else if let Some(&id) = control.embryonic_paths.get(&PathKey::new(path, path.src)) {
                self.check_sender(&control.records[id as usize], path, packet, false)?;
                self.establish(&mut control, id, backend_tag, true);
                (id, false)
            } else {
                if !packet.verify_checksum() {
                    return Err(DropReason::SctpBadChecksum);
                }
                let placement = match control.paths.get(&PathKey::new(path, path.src)).copied() {
                    Some(owner) if backend_present(control.records[owner as usize].backend) => {
                        Placement::PinnedTo(control.records[owner as usize].backend)
                    }
                    Some(owner) => {
                        self.end_backend_gone(&mut control, owner);
                        Placement::Maglev
                    }
                    None => Placement::Maglev,
                };
                let id = self.create(
                    &mut control,
                    path,
                    placement,
                    SctpAssociationState::Established,
                    select,
                    now_ms,
                )?;
                self.establish(&mut control, id, backend_tag, false);
                (id, true)
            };
        if asconf {
            self.apply_asconf(&mut control, id, path, packet);
        }
        self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
        Ok(control.routed(id, new_association))
    }

    /// ASCONF (RFC 5061) changes the address set of the association its tag names.
    fn on_asconf(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        now_ms: u64,
    ) -> Result<Routed, DropReason> {
        let mut control = self.control.lock();
        let entry = self
            .tag_lookup(&TagKey::new(path, packet.verification_tag()))
            .ok_or(DropReason::SctpUnknownAssociation)?;
        // RFC 5061 §4.1.1 (paraphrased): an endpoint may send ASCONF from the address
        // it is adding, so that address counts as the association's.
        let adds_source = asconf_adds(packet, path.src);
        self.check_sender(
            &control.records[entry.record as usize],
            path,
            packet,
            adds_source,
        )?;
        self.apply_asconf(&mut control, entry.record, path, packet);
        self.last_seen[entry.record as usize].store(now_ms, Ordering::Relaxed);
        Ok(control.routed(entry.record, false))
    }

    /// ABORT and SHUTDOWN-COMPLETE close the association their tag names, after a
    /// linger for retransmissions of the closing exchange.
    fn on_close(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        reflected: bool,
        now_ms: u64,
    ) -> Result<Routed, DropReason> {
        let tag = packet.verification_tag();
        let mut control = self.control.lock();
        //# RFC 9260 §8.5.1: B) [...] The receiver of an ABORT chunk MUST accept the
        //# packet if the Verification Tag field of the packet matches its own tag and
        //# the T bit is not set OR if it is set to its Peer's Tag and the T bit is set
        //# in the Chunk Flags.
        // Rule C says the same of SHUTDOWN COMPLETE. Here the receiver is the backend:
        // its own tag is the one COOKIE-ECHO taught, its peer's is the client's.
        let id = if reflected {
            match control.client_tags.get(&TagKey::new(path, tag)) {
                Some(&id) => id,
                None => {
                    // Learned from COOKIE-ECHO alone, the client's tag is unknown: the
                    // backend checks it, and the record is left to idle out.
                    let id = control
                        .paths
                        .get(&PathKey::new(path, path.src))
                        .copied()
                        .filter(|id| control.records[*id as usize].client_tag.is_none())
                        .ok_or(DropReason::SctpUnknownAssociation)?;
                    self.check_sender(&control.records[id as usize], path, packet, false)?;
                    return Ok(control.routed(id, false));
                }
            }
        } else {
            self.tag_lookup(&TagKey::new(path, tag))
                .ok_or(DropReason::SctpUnknownAssociation)?
                .record
        };
        self.check_sender(&control.records[id as usize], path, packet, false)?;
        self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
        let record = &mut control.records[id as usize];
        let until_ms = now_ms.saturating_add(self.linger_ms);
        record.state = match record.state {
            // The backend kept no state for an INIT whose cookie never came back.
            SctpAssociationState::CookieWait => {
                let backend = record.backend;
                self.free(&mut control, id);
                control.stats.embryonic_expired += 1;
                return Ok(Routed {
                    record: None,
                    backend,
                    new_association: false,
                });
            }
            SctpAssociationState::Closing { until_ms: earlier } => SctpAssociationState::Closing {
                until_ms: earlier.min(until_ms),
            },
            SctpAssociationState::Established => SctpAssociationState::Closing { until_ms },
        };
        control.mark_changed(id);
        Ok(control.routed(id, false))
    }

    /// A state-changing packet must come from an address of its association (or one
    /// it is adding right now) and pass CRC32c.
    fn check_sender(
        &self,
        record: &Association,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        adds_source: bool,
    ) -> Result<(), DropReason> {
        if !adds_source && !record.addresses.contains(&path.src) {
            return Err(DropReason::SctpForeignAddress);
        }
        if !record.checksum_ok(packet) {
            return Err(DropReason::SctpBadChecksum);
        }
        Ok(())
    }
}

/// Where a state-changing packet goes: its record (unless it was just freed) and the
/// record's backend.
struct Routed {
    record: Option<u32>,
    backend: BackendId,
    new_association: bool,
}

impl Control {
    fn routed(&self, id: u32, new_association: bool) -> Routed {
        Routed {
            record: Some(id),
            backend: self.records[id as usize].backend,
            new_association,
        }
    }

    /// Queues an established record for export to the cluster (once until exported).
    fn mark_changed(&mut self, id: u32) {
        let record = &mut self.records[id as usize];
        if record.backend_tag.is_some() && !record.changed {
            record.changed = true;
            self.changed.push(id);
        }
    }
}

/// The record-keeping behind the handlers, all under the `control` mutex.
impl SctpAssociationTable {
    /// Takes a free record for a new association on `path` (its INIT's or
    /// COOKIE-ECHO's source the first address), evicting the oldest embryonic record
    /// if the table is full.
    fn create(
        &self,
        control: &mut Control,
        path: &SctpPath,
        placement: Placement,
        state: SctpAssociationState,
        select: impl FnOnce() -> Option<BackendId>,
        now_ms: u64,
    ) -> Result<u32, DropReason> {
        if control.free.is_empty() && !self.evict_oldest_embryonic(control) {
            control.stats.table_full += 1;
            return Err(DropReason::SctpTableFull);
        }
        let backend = match placement {
            Placement::PinnedTo(backend) => backend,
            Placement::Maglev => select().ok_or(DropReason::NoBackend)?,
        };
        let id = control.free.pop().ok_or(DropReason::SctpTableFull)?;
        control.records[id as usize] = Association {
            in_use: true,
            service: path.service,
            client_port: path.src_port,
            server_port: path.dst_port,
            backend,
            addresses: [path.src].into_iter().collect(),
            state,
            ..Association::FREE
        };
        self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
        *control.by_backend.entry(backend).or_insert(0) += 1;
        control.stats.created += 1;
        control.stats.associations += 1;
        Ok(id)
    }

    /// Frees the oldest embryonic record; false if there is none.
    fn evict_oldest_embryonic(&self, control: &mut Control) -> bool {
        while let Some((id, serial, _)) = control.embryonic_queue.pop_front() {
            let record = &control.records[id as usize];
            if record.is_embryonic() && record.serial == serial {
                self.free(control, id);
                control.stats.embryonic_evicted += 1;
                return true;
            }
        }
        false
    }

    /// Drops stale queue entries once they outnumber the records, so a steady stream
    /// of completed handshakes cannot grow the queue behind one long-lived entry.
    fn compact_embryonic_queue(&self, control: &mut Control) {
        if control.embryonic_queue.len() <= 2 * control.records.len() {
            return;
        }
        let Control {
            embryonic_queue,
            records,
            ..
        } = control;
        embryonic_queue.retain(|&(id, serial, _)| {
            let record = &records[id as usize];
            record.is_embryonic() && record.serial == serial
        });
    }

    /// The backend's tag is now known: index it, leave the embryonic bookkeeping, and
    /// index the client's addresses. `take_paths`: the association started with an INIT
    /// seen here, so it is the newest on its addresses and takes them over from older
    /// associations; otherwise it claims only addresses nobody holds.
    fn establish(&self, control: &mut Control, id: u32, backend_tag: u32, take_paths: bool) {
        let record = &control.records[id as usize];
        let key = record.tag_key(backend_tag);
        let entry = TagEntry {
            record: id,
            backend: record.backend,
        };
        // The caller looked the tag up under this same mutex and found nothing.
        self.tag_shards[key.shard()].write().insert(key, entry);
        if record.state == SctpAssociationState::CookieWait {
            self.leave_embryonic(control, id);
        }
        let record = &mut control.records[id as usize];
        record.backend_tag = Some(backend_tag);
        record.state = SctpAssociationState::Established;
        let keys: ArrayVec<PathKey, MAX_ADDRESSES> = record
            .addresses
            .iter()
            .map(|address| record.path_key(*address))
            .collect();
        for key in keys {
            if take_paths {
                control.paths.insert(key, id);
            } else {
                control.paths.entry(key).or_insert(id);
            }
        }
        control.mark_changed(id);
    }

    /// Removes an embryonic record from the embryonic indexes and counts.
    fn leave_embryonic(&self, control: &mut Control, id: u32) {
        let record = &control.records[id as usize];
        let source = record.addresses[0];
        let key = record.path_key(source);
        if control.embryonic_paths.get(&key) == Some(&id) {
            control.embryonic_paths.remove(&key);
        }
        if let Some(count) = control.embryonic_by_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                control.embryonic_by_source.remove(&source);
            }
        }
        control.stats.embryonic -= 1;
    }

    /// Records the client's tag of an association and indexes it; the newest
    /// association with a tag on these ports owns it.
    fn set_client_tag(&self, control: &mut Control, id: u32, client_tag: u32) {
        let record = &control.records[id as usize];
        if let Some(old) = record.client_tag {
            let key = record.tag_key(old);
            if control.client_tags.get(&key) == Some(&id) {
                control.client_tags.remove(&key);
            }
        }
        let key = record.tag_key(client_tag);
        control.client_tags.insert(key, id);
        control.records[id as usize].client_tag = Some(client_tag);
    }

    /// Adds a client address to a record (and, for an established record, to the path
    /// index where the address is free); false if it was already there or the record
    /// is full.
    fn add_address(&self, control: &mut Control, id: u32, address: IpAddr) -> bool {
        let record = &mut control.records[id as usize];
        if record.addresses.contains(&address) {
            return false;
        }
        if record.addresses.len() >= self.max_addresses {
            control.stats.addresses_refused += 1;
            return false;
        }
        record.addresses.push(address);
        if record.state != SctpAssociationState::CookieWait {
            let key = record.path_key(address);
            control.paths.insert(key, id);
            control.mark_changed(id);
        }
        true
    }

    /// Removes a client address from a record and the path index.
    fn remove_address(&self, control: &mut Control, id: u32, address: IpAddr) -> bool {
        let record = &mut control.records[id as usize];
        let Some(at) = record.addresses.iter().position(|held| *held == address) else {
            return false;
        };
        record.addresses.remove(at);
        if record.primary == Some(address) {
            record.primary = None;
        }
        let key = record.path_key(address);
        if control.paths.get(&key) == Some(&id) {
            control.paths.remove(&key);
        }
        control.mark_changed(id);
        true
    }

    /// Applies the Add-IP, Delete-IP and Set-Primary requests of every ASCONF chunk
    /// in the packet to the record's address set. The packet is only read: RFC 5061
    /// sends ASCONF under an AUTH chunk, so it is never rewritten.
    fn apply_asconf(
        &self,
        control: &mut Control,
        id: u32,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
    ) {
        let source = path.src;
        for request in asconf_requests(packet) {
            let address = if request.is_wildcard() {
                source
            } else {
                request.address
            };
            let changed = match request.kind {
                // RFC 5061 §4.2.1 (paraphrased): the wildcard address adds the
                // packet's source address.
                AsconfRequestKind::AddIp => self.add_address(control, id, address),
                AsconfRequestKind::DeleteIp if request.is_wildcard() => {
                    // RFC 5061 §4.2.2 (paraphrased): the wildcard address deletes
                    // every address of the peer except the packet's source.
                    let others: ArrayVec<IpAddr, MAX_ADDRESSES> = control.records[id as usize]
                        .addresses
                        .iter()
                        .copied()
                        .filter(|held| *held != source)
                        .collect();
                    let mut changed = self.add_address(control, id, source);
                    for other in others {
                        changed |= self.remove_address(control, id, other);
                    }
                    changed
                }
                AsconfRequestKind::DeleteIp => {
                    // RFC 5061, receiver rules for Delete IP (paraphrased): the
                    // backend refuses to delete the packet's source address or the
                    // last remaining address, so the balancer keeps them too.
                    let record = &control.records[id as usize];
                    address != source
                        && record.addresses.len() > 1
                        && self.remove_address(control, id, address)
                }
                AsconfRequestKind::SetPrimary => {
                    // RFC 5061 §4.2.4 (paraphrased): the wildcard address makes the
                    // packet's source the primary.
                    let record = &mut control.records[id as usize];
                    if record.addresses.contains(&address) {
                        record.primary = Some(address);
                    }
                    false
                }
            };
            if changed {
                control.stats.address_updates += 1;
            }
        }
    }

    /// Ends an association whose backend left the service (counted).
    fn end_backend_gone(&self, control: &mut Control, id: u32) {
        if control.records[id as usize].in_use {
            self.free(control, id);
            control.stats.backend_gone += 1;
        }
    }

    /// Frees a record: out of every index, back on the free list.
    fn free(&self, control: &mut Control, id: u32) {
        if control.records[id as usize].is_embryonic() {
            self.leave_embryonic(control, id);
        }
        let record = core::mem::replace(&mut control.records[id as usize], Association::FREE);
        if !record.in_use {
            return;
        }
        if let Some(tag) = record.backend_tag {
            let key = record.tag_key(tag);
            let mut shard = self.tag_shards[key.shard()].write();
            if shard.get(&key).map(|entry| entry.record) == Some(id) {
                shard.remove(&key);
            }
        }
        if let Some(tag) = record.client_tag {
            let key = record.tag_key(tag);
            if control.client_tags.get(&key) == Some(&id) {
                control.client_tags.remove(&key);
            }
        }
        for address in &record.addresses {
            let key = record.path_key(*address);
            if control.paths.get(&key) == Some(&id) {
                control.paths.remove(&key);
            }
        }
        if let Some(count) = control.by_backend.get_mut(&record.backend) {
            *count -= 1;
            if *count == 0 {
                control.by_backend.remove(&record.backend);
            }
        }
        control.free.push(id);
        control.stats.associations -= 1;
        control.stats.freed += 1;
    }

    #[inline]
    fn tag_lookup(&self, key: &TagKey) -> Option<TagEntry> {
        self.tag_shards[key.shard()].read().get(key).copied()
    }
}

/// Every well-formed ASCONF request of every ASCONF chunk in the packet.
fn asconf_requests<'a>(
    packet: &'a Packet<&'a [u8]>,
) -> impl Iterator<Item = crate::wire::sctp::AsconfRequest> + 'a {
    packet
        .chunks()
        .map_while(|chunk| chunk.ok())
        .filter(|chunk| chunk.chunk_type() == ChunkType::Asconf)
        .filter_map(|chunk| AsconfChunk::new_checked(chunk).ok())
        .flat_map(|asconf| asconf.requests().map_while(|request| request.ok()))
}

/// Whether the packet's ASCONF adds its own source address (explicitly or by the
/// wildcard).
fn asconf_adds(packet: &Packet<&[u8]>, source: IpAddr) -> bool {
    asconf_requests(packet).any(|request| {
        request.kind == AsconfRequestKind::AddIp
            && (request.is_wildcard() || request.address == source)
    })
}
