//! The SCTP association table (DESIGN §5): which backend owns each multihomed
//! association, so that every path of the association reaches the same backend.
//!
//! Sans-IO: `now_ms` is an argument, nothing here touches a socket or a clock.
//!
//! Concurrency. All workers share one table. The per-packet read path (DATA, SACK,
//! HEARTBEAT, ...) takes one read lock on one of 64 shards of the tag index and stores
//! a last-seen time in an atomic; it never allocates. Everything that changes an
//! association (INIT, COOKIE-ECHO, ASCONF, ABORT, SHUTDOWN-COMPLETE, expiry) is rare
//! and goes through one `control` mutex that owns the records and the path index, and
//! takes a tag shard's write lock briefly while holding it. Locks are always taken in
//! that order (control, then one tag shard), so there is no deadlock, and the two
//! indexes change together under the same mutex, so they stay consistent.

use core::net::IpAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;

use arrayvec::ArrayVec;
use foldhash::fast::RandomState;
use parking_lot::{Mutex, RwLock};

use crate::pipeline::verdict::DropReason;
use crate::wire::sctp::{AsconfChunk, AsconfRequestKind, ChunkType, InitChunk, Packet};
use crate::wire::Result as WireResult;

/// Most client addresses one association can have, whatever the configuration says.
pub const MAX_ADDRESSES: usize = 8;

/// Number of shards of the tag index (a power of two: the shard is the top bits of a
/// multiplicative hash).
const TAG_SHARDS: usize = 64;
const TAG_SHARD_BITS: u32 = TAG_SHARDS.trailing_zeros();

/// Sizes and timeouts of the association table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpConfig {
    /// Most associations tracked at once; all records are allocated up front.
    pub capacity: usize,
    /// Most client addresses per association, capped at [`MAX_ADDRESSES`].
    pub max_addresses: usize,
    /// How long a record stays after a matching ABORT or SHUTDOWN-COMPLETE, so that
    /// retransmissions of the closing exchange still reach the backend.
    pub linger_ms: u64,
    /// How long an association may stay silent before it is forgotten.
    pub idle_ms: u64,
}

/// Where a client->server SCTP packet travels, as the pipeline parsed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpPath {
    /// The service the VIP:port belongs to.
    pub service: u32,
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
        backend: u32,
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
    /// INIT seen; the backend's tag is not known until COOKIE-ECHO.
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
    pub backend: u32,
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
    /// Associations currently tracked.
    pub associations: usize,
    /// Associations created since start.
    pub created: u64,
    /// Associations freed since start (closed, idle, or backend gone).
    pub freed: u64,
    /// Client addresses added or removed by INIT and ASCONF after creation.
    pub address_updates: u64,
    /// Client addresses not recorded because the association had `max_addresses`.
    pub addresses_refused: u64,
    /// New associations refused because the table was full.
    pub table_full: u64,
    /// Backend tags that collided with another association on the same ports; the
    /// newer association took the tag.
    pub tag_collisions: u64,
}

/// Key of the tag index: what a non-INIT packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TagKey {
    service: u32,
    client_port: u16,
    server_port: u16,
    backend_tag: u32,
}

impl TagKey {
    /// Shard by a multiplicative hash of the whole key (tags are random; ports and
    /// service spread the rest).
    #[inline]
    fn shard(&self) -> usize {
        let mixed = (u64::from(self.backend_tag) << 32
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
    backend: u32,
}

/// Key of the path index: one client transport address of an association.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PathKey {
    service: u32,
    client: IpAddr,
    client_port: u16,
    server_port: u16,
}

/// One association record (a slot of the preallocated array).
#[derive(Clone, Debug)]
struct Association {
    in_use: bool,
    service: u32,
    client_port: u16,
    server_port: u16,
    backend: u32,
    client_tag: Option<u32>,
    backend_tag: Option<u32>,
    addresses: ArrayVec<IpAddr, MAX_ADDRESSES>,
    primary: Option<IpAddr>,
    state: SctpAssociationState,
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
    };

    fn path_key(&self, client: IpAddr) -> PathKey {
        PathKey {
            service: self.service,
            client,
            client_port: self.client_port,
            server_port: self.server_port,
        }
    }

    fn tag_key(&self, backend_tag: u32) -> TagKey {
        TagKey {
            service: self.service,
            client_port: self.client_port,
            server_port: self.server_port,
            backend_tag,
        }
    }
}

/// Everything the write path changes, behind the `control` mutex.
struct Control {
    records: Vec<Association>,
    free: Vec<u32>,
    path_index: HashMap<PathKey, u32, RandomState>,
    stats: SctpStats,
}

/// The SCTP association table shared by all workers (DESIGN §5).
pub struct SctpAssociationTable {
    max_addresses: usize,
    linger_ms: u64,
    idle_ms: u64,
    /// foldhash with a per-process seed: SipHash cost 13% of a DATA packet, and clients
    /// choose the tags (COOKIE-ECHO), so the hash must stay unpredictable to them.
    tag_shards: Box<[RwLock<HashMap<TagKey, TagEntry, RandomState>>]>,
    last_seen: Box<[AtomicU64]>,
    control: Mutex<Control>,
}

/// What a packet asks of the table, found in one walk over its chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PacketKind {
    Init,
    Close { reflected: bool },
    CookieEcho { asconf: bool },
    Asconf,
    Other,
}

/// Walks every chunk once, validating the ones the table reads.
fn classify(packet: &Packet<&[u8]>) -> WireResult<PacketKind> {
    let mut chunks = 0usize;
    let mut init = false;
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
                init = true;
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
    if init {
        //# RFC 9260 §6.10: INIT, INIT ACK, and SHUTDOWN COMPLETE chunks MUST NOT be
        //# bundled with any other chunk in a packet.
        // RFC 9260 §8.5.1 rule A (paraphrased): a packet carrying INIT has Verification
        // Tag 0.
        if chunks != 1 || packet.verification_tag() != 0 {
            return Err(crate::wire::Error::Malformed);
        }
        return Ok(PacketKind::Init);
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
            path_index: HashMap::with_capacity_and_hasher(
                capacity.saturating_mul(2),
                RandomState::default(),
            ),
            stats: SctpStats::default(),
        };
        SctpAssociationTable {
            max_addresses: config.max_addresses.clamp(1, MAX_ADDRESSES),
            linger_ms: config.linger_ms,
            idle_ms: config.idle_ms,
            tag_shards,
            last_seen,
            control: Mutex::new(control),
        }
    }

    /// Decides one client->server packet; `sctp` is the SCTP header and chunks (the
    /// IP payload). `select` runs Maglev for a new association; `backend_present(id)`
    /// says whether that backend is still in the service. Never panics on any bytes,
    /// and never looks at the checksum (RFC 9653: zero is allowed, and a bad one is
    /// the backend's to discard).
    pub fn decide(
        &self,
        path: &SctpPath,
        sctp: &[u8],
        now_ms: u64,
        select: impl FnOnce() -> Option<u32>,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        let Ok(packet) = Packet::new_checked(sctp) else {
            return SctpDecision::Drop(DropReason::SctpMalformed);
        };
        let Ok(kind) = classify(&packet) else {
            return SctpDecision::Drop(DropReason::SctpMalformed);
        };
        match kind {
            PacketKind::Init => self.on_init(path, &packet, now_ms, select, backend_present),
            PacketKind::Close { reflected } => {
                self.on_close(path, &packet, reflected, now_ms, backend_present)
            }
            PacketKind::CookieEcho { asconf } => {
                self.on_cookie_echo(path, &packet, asconf, now_ms, select, backend_present)
            }
            PacketKind::Asconf => self.on_asconf(path, &packet, now_ms, backend_present),
            PacketKind::Other => {
                self.on_tagged(path, packet.verification_tag(), now_ms, backend_present)
            }
        }
    }

    /// Frees records whose linger ended or that stayed idle too long; returns how
    /// many. Housekeeping off the fast path: it scans every record under the mutex.
    pub fn expire(&self, now_ms: u64) -> usize {
        let mut control = self.control.lock();
        let mut freed = 0;
        for id in 0..control.records.len() {
            let record = &control.records[id];
            if !record.in_use {
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

    /// The association a client transport address belongs to, if any (off the fast
    /// path: for `xlb explain`, metrics and tests).
    pub fn association(
        &self,
        service: u32,
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
        let id = *control.path_index.get(&key)?;
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

    /// The read path: any packet without INIT, COOKIE-ECHO, ASCONF, ABORT or
    /// SHUTDOWN-COMPLETE is routed by its verification tag alone.
    #[inline]
    fn on_tagged(
        &self,
        path: &SctpPath,
        backend_tag: u32,
        now_ms: u64,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        let key = tag_key(path, backend_tag);
        let entry = self.tag_shards[key.shard()].read().get(&key).copied();
        let Some(entry) = entry else {
            // A miss is never hashed: the wrong backend would ABORT the association.
            return SctpDecision::Drop(DropReason::SctpUnknownAssociation);
        };
        if !backend_present(entry.backend) {
            let mut control = self.control.lock();
            if control.records[entry.record as usize].in_use && self.tag_lookup(&key) == Some(entry)
            {
                self.free(&mut control, entry.record);
            }
            return SctpDecision::Drop(DropReason::SctpBackendGone);
        }
        self.last_seen[entry.record as usize].store(now_ms, Ordering::Relaxed);
        SctpDecision::Forward {
            backend: entry.backend,
            new_association: false,
        }
    }

    fn on_init(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        now_ms: u64,
        select: impl FnOnce() -> Option<u32>,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        let Some(init) = packet
            .chunks()
            .next()
            .and_then(|chunk| chunk.ok())
            .and_then(|chunk| InitChunk::new_checked(chunk).ok())
        else {
            return SctpDecision::Drop(DropReason::SctpMalformed);
        };
        let mut control = self.control.lock();
        let path_key = path_key(path, path.src);
        if let Some(&id) = control.path_index.get(&path_key) {
            let backend = control.records[id as usize].backend;
            if backend_present(backend) {
                // An INIT on a known path (retransmission, restart or a new
                // association after close) stays with the backend that has the state.
                let record = &mut control.records[id as usize];
                record.client_tag = Some(init.initiate_tag());
                if matches!(record.state, SctpAssociationState::Closing { .. }) {
                    record.state = SctpAssociationState::CookieWait;
                }
                for address in init.addresses().flatten() {
                    if self.add_address(&mut control, id, address) {
                        control.stats.address_updates += 1;
                    }
                }
                self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
                return SctpDecision::Forward {
                    backend,
                    new_association: false,
                };
            }
            // The backend left: this INIT starts a new association elsewhere.
            self.free(&mut control, id);
        }
        let id = match self.create(&mut control, path, now_ms, select) {
            Ok(id) => id,
            Err(reason) => return SctpDecision::Drop(reason),
        };
        control.records[id as usize].client_tag = Some(init.initiate_tag());
        // RFC 9260 §5.1.2 (paraphrased): the peer's transport addresses are the
        // packet's source address plus every address parameter of the INIT.
        for address in init.addresses().flatten() {
            self.add_address(&mut control, id, address);
        }
        SctpDecision::Forward {
            backend: control.records[id as usize].backend,
            new_association: true,
        }
    }

    fn on_cookie_echo(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        asconf: bool,
        now_ms: u64,
        select: impl FnOnce() -> Option<u32>,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        // RFC 9260 §5.1 and §8.5 (paraphrased): COOKIE ECHO carries the Initiate Tag of
        // the INIT ACK, i.e. the backend's tag, which a DSR balancer never sees otherwise.
        let backend_tag = packet.verification_tag();
        let mut control = self.control.lock();
        let known = self
            .tag_lookup(&tag_key(path, backend_tag))
            .map(|entry| entry.record)
            .or_else(|| control.path_index.get(&path_key(path, path.src)).copied());
        let (id, new_association) = match known {
            Some(id) => {
                if !backend_present(control.records[id as usize].backend) {
                    self.free(&mut control, id);
                    return SctpDecision::Drop(DropReason::SctpBackendGone);
                }
                (id, false)
            }
            None => match self.create(&mut control, path, now_ms, select) {
                Ok(id) => (id, true),
                Err(reason) => return SctpDecision::Drop(reason),
            },
        };
        self.learn_backend_tag(&mut control, id, backend_tag);
        if asconf {
            self.apply_asconf(&mut control, id, path, packet);
        }
        self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
        SctpDecision::Forward {
            backend: control.records[id as usize].backend,
            new_association,
        }
    }

    fn on_asconf(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        now_ms: u64,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        let mut control = self.control.lock();
        let Some(entry) = self.tag_lookup(&tag_key(path, packet.verification_tag())) else {
            return SctpDecision::Drop(DropReason::SctpUnknownAssociation);
        };
        if !backend_present(entry.backend) {
            self.free(&mut control, entry.record);
            return SctpDecision::Drop(DropReason::SctpBackendGone);
        }
        self.apply_asconf(&mut control, entry.record, path, packet);
        self.last_seen[entry.record as usize].store(now_ms, Ordering::Relaxed);
        SctpDecision::Forward {
            backend: entry.backend,
            new_association: false,
        }
    }

    fn on_close(
        &self,
        path: &SctpPath,
        packet: &Packet<&[u8]>,
        reflected: bool,
        now_ms: u64,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        let tag = packet.verification_tag();
        let mut control = self.control.lock();
        // RFC 9260 §8.5.1 rules B and C (paraphrased): ABORT and SHUTDOWN COMPLETE are
        // accepted when the tag is the receiver's own with T=0, or the receiver's peer's
        // tag (here: the client's) with T=1.
        let id = if reflected {
            // The tag is the client's own: find the association by path, then compare.
            let Some(&id) = control.path_index.get(&path_key(path, path.src)) else {
                return SctpDecision::Drop(DropReason::SctpUnknownAssociation);
            };
            match control.records[id as usize].client_tag {
                Some(client_tag) if client_tag == tag => id,
                Some(_) => return SctpDecision::Drop(DropReason::SctpUnknownAssociation),
                None => {
                    // Learned from COOKIE-ECHO alone: the client's tag is unknown, so the
                    // backend checks it and the record is left to idle out.
                    let backend = control.records[id as usize].backend;
                    return SctpDecision::Forward {
                        backend,
                        new_association: false,
                    };
                }
            }
        } else {
            match self.tag_lookup(&tag_key(path, tag)) {
                Some(entry) => entry.record,
                None => return SctpDecision::Drop(DropReason::SctpUnknownAssociation),
            }
        };
        let backend = control.records[id as usize].backend;
        if !backend_present(backend) {
            self.free(&mut control, id);
            return SctpDecision::Drop(DropReason::SctpBackendGone);
        }
        let record = &mut control.records[id as usize];
        let until_ms = now_ms.saturating_add(self.linger_ms);
        record.state = match record.state {
            SctpAssociationState::Closing { until_ms: earlier } => SctpAssociationState::Closing {
                until_ms: earlier.min(until_ms),
            },
            _ => SctpAssociationState::Closing { until_ms },
        };
        self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
        SctpDecision::Forward {
            backend,
            new_association: false,
        }
    }

    /// Takes a free record for a new association on `path`, owned by `select()`.
    fn create(
        &self,
        control: &mut Control,
        path: &SctpPath,
        now_ms: u64,
        select: impl FnOnce() -> Option<u32>,
    ) -> Result<u32, DropReason> {
        if control.free.is_empty() {
            control.stats.table_full += 1;
            return Err(DropReason::SctpTableFull);
        }
        let backend = select().ok_or(DropReason::NoBackend)?;
        let id = control.free.pop().ok_or(DropReason::SctpTableFull)?;
        control.records[id as usize] = Association {
            in_use: true,
            service: path.service,
            client_port: path.src_port,
            server_port: path.dst_port,
            backend,
            ..Association::FREE
        };
        self.last_seen[id as usize].store(now_ms, Ordering::Relaxed);
        control.stats.created += 1;
        control.stats.associations += 1;
        self.add_address(control, id, path.src);
        Ok(id)
    }

    /// Adds a client address to a record and the path index; false if it was
    /// already there or the record is full. An address another association of the
    /// same ports held moves to this one (the newer association owns the path).
    fn add_address(&self, control: &mut Control, id: u32, address: IpAddr) -> bool {
        let record = &control.records[id as usize];
        if record.addresses.contains(&address) {
            return false;
        }
        if record.addresses.len() >= self.max_addresses {
            control.stats.addresses_refused += 1;
            return false;
        }
        let key = record.path_key(address);
        if let Some(previous) = control.path_index.insert(key, id) {
            if previous != id {
                control.records[previous as usize]
                    .addresses
                    .retain(|held| *held != address);
            }
        }
        control.records[id as usize].addresses.push(address);
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
        if control.path_index.get(&key) == Some(&id) {
            control.path_index.remove(&key);
        }
        true
    }

    /// Records the backend's tag of an association and indexes it.
    fn learn_backend_tag(&self, control: &mut Control, id: u32, backend_tag: u32) {
        let record = &control.records[id as usize];
        if record.backend_tag == Some(backend_tag) {
            return;
        }
        if let Some(old) = record.backend_tag {
            self.tag_remove(&record.tag_key(old), id);
        }
        let key = record.tag_key(backend_tag);
        let entry = TagEntry {
            record: id,
            backend: record.backend,
        };
        let previous = self.tag_shards[key.shard()].write().insert(key, entry);
        if let Some(previous) = previous {
            if previous.record != id {
                control.records[previous.record as usize].backend_tag = None;
                control.stats.tag_collisions += 1;
            }
        }
        let record = &mut control.records[id as usize];
        record.backend_tag = Some(backend_tag);
        if record.state == SctpAssociationState::CookieWait {
            record.state = SctpAssociationState::Established;
        }
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
        let chunks = packet
            .chunks()
            .map_while(|chunk| chunk.ok())
            .filter(|chunk| chunk.chunk_type() == ChunkType::Asconf);
        for chunk in chunks {
            let Ok(asconf) = AsconfChunk::new_checked(chunk) else {
                continue;
            };
            for request in asconf.requests().map_while(|request| request.ok()) {
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
                        if address == source || record.addresses.len() <= 1 {
                            false
                        } else {
                            self.remove_address(control, id, address)
                        }
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
    }

    /// Frees a record: out of both indexes, back on the free list.
    fn free(&self, control: &mut Control, id: u32) {
        let record = core::mem::replace(&mut control.records[id as usize], Association::FREE);
        if !record.in_use {
            return;
        }
        if let Some(tag) = record.backend_tag {
            self.tag_remove(&record.tag_key(tag), id);
        }
        for address in &record.addresses {
            let key = record.path_key(*address);
            if control.path_index.get(&key) == Some(&id) {
                control.path_index.remove(&key);
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

    fn tag_remove(&self, key: &TagKey, id: u32) {
        let mut shard = self.tag_shards[key.shard()].write();
        if shard.get(key).map(|entry| entry.record) == Some(id) {
            shard.remove(key);
        }
    }
}

#[inline]
fn tag_key(path: &SctpPath, backend_tag: u32) -> TagKey {
    TagKey {
        service: path.service,
        client_port: path.src_port,
        server_port: path.dst_port,
        backend_tag,
    }
}

#[inline]
fn path_key(path: &SctpPath, client: IpAddr) -> PathKey {
    PathKey {
        service: path.service,
        client,
        client_port: path.src_port,
        server_port: path.dst_port,
    }
}
