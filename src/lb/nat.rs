//! The NAT session table of `forwarding: nat`: which backend and which xlb-owned
//! SNAT address and port a client's flow was given, and the reverse mapping that
//! turns a backend's reply back into the client's flow.
//!
//! Replies from a backend to the SNAT address arrive on whatever NIC queue RSS picks,
//! so the worker that sees a reply is often not the one that created the session: the
//! table is shared by all workers. It is split into shards, each behind its own
//! `parking_lot::RwLock`; lookups take a read lock, only session creation, rebinding
//! and expiry take a write lock.
//!
//! A session lives in exactly one shard, found from both directions without a second
//! lock: from the client side by the caller's flow hash, from the reply side by the
//! SNAT port, because the port range is dealt out to shards round-robin
//! (`port = first_port + shard + k * shard_count`) and a shard only hands out its own
//! ports. Both indexes of a session are therefore changed under one write lock, so
//! they cannot disagree, not even during expiry.
//!
//! Memory is allocated once in [`NatSessionTable::new`]: a slab of sessions per shard
//! and two open-addressing indexes (client key -> slot, reply key -> slot) at most
//! half full. Nothing is allocated per packet. Last-seen times are atomics, so a
//! lookup under the read lock can keep its session alive. Both indexes place sessions by
//! [`IndexKey::index`], keyed per process, so a client cannot aim its tuples at one probe
//! chain.
//!
//! TCP endings: a client RST ends a session only if its sequence number lies in the window
//! the backend last announced (RFC 5961 §3); a blind one is dropped and counted. One FIN
//! leaves the connection half-closed, and the session keeps its full idle time until the
//! other side's FIN too; a backend RST ends it at once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::utils::CachePadded;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use crate::config::DataplaneConfig;
use crate::lb::hash::IndexKey;
use crate::lb::verdict::DropReason;
use crate::wire::headers::protocol;

/// Upper bound on shards: enough that workers rarely meet on one lock.
const MAX_SHARDS: usize = 64;
/// A shard gets at least this many ports, so a small port range is not split into
/// slivers that run out while other shards still have room.
const MIN_PORTS_PER_SHARD: usize = 256;
/// A shard gets at least this many session slots, for the same reason.
const MIN_SESSIONS_PER_SHARD: usize = 1024;
/// Most (address, port) candidates tried for one new session, bounding the time a
/// worker spends when the port space towards a backend is nearly full. The shard's
/// allocation cursor moves past the tried candidates, so the next attempt looks further.
const MAX_PORT_PROBES: usize = 256;
/// Bit of a session's last-seen word set once the TCP connection ended: a RST, or a FIN
/// from each side.
const CLOSING: u64 = 1 << 63;
/// Bit of a session's last-seen word set once the backend answered. Below [`CLOSING`],
/// so closing still wins the `fetch_max`.
const ANSWERED: u64 = 1 << 62;
/// Bit of a session's last-seen word set by the client's FIN.
const CLIENT_FIN: u64 = 1 << 61;
/// Bit of a session's last-seen word set by the backend's FIN.
const BACKEND_FIN: u64 = 1 << 60;
/// The flag bits of a last-seen word; the rest is milliseconds.
const FLAGS: u64 = CLOSING | ANSWERED | CLIENT_FIN | BACKEND_FIN;

/// TCP flags the table reads.
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// A session's backend-window word: what the backend last acknowledged (bits 0-31) and the
/// window field it announced with it (32-47), the shift of its Window Scale option (48-51),
/// whether that window came on a SYN and so is unscaled (RFC 7323 §2.2), and whether an ACK
/// was seen at all.
const WINDOW_SHIFT_AT: u32 = 48;
const WINDOW_FROM_SYN: u64 = 1 << 52;
const ACK_SEEN: u64 = 1 << 53;
/// The scale shift before the backend's SYN-ACK was seen (the session began mid-connection):
/// unknown, so windows are taken at the largest scale RFC 7323 allows, 14.
const SHIFT_UNKNOWN: u64 = 15;
/// The largest Window Scale shift (RFC 7323 §2.3).
const MAX_WINDOW_SHIFT: u8 = 14;

/// How the NAT table is sized and how long sessions live, from the service table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// xlb-owned SNAT addresses; a session uses one of the backend's address family.
    pub addresses: Vec<IpAddr>,
    /// First and last SNAT port, inclusive.
    pub port_range: (u16, u16),
    /// Most sessions the table holds; allocated up front.
    pub capacity: usize,
    /// A TCP session unused this long is expired.
    pub tcp_idle_ms: u64,
    /// A UDP (or other non-TCP) session unused this long is expired.
    pub udp_idle_ms: u64,
    /// A TCP session lives this long after its last FIN or RST.
    pub tcp_closing_ms: u64,
    /// A session the backend never answered is expired after this long without a
    /// packet, if that is shorter than its protocol's idle time: a SYN flood then
    /// holds its SNAT ports for seconds, not for the TCP idle time.
    pub unanswered_idle_ms: u64,
}

impl NatConfig {
    /// The table's settings from a service table's `dataplane` section.
    pub fn from_table(dataplane: &DataplaneConfig) -> NatConfig {
        let (nat, flows) = (&dataplane.nat, &dataplane.flow_table);
        NatConfig {
            addresses: nat.addresses.clone(),
            port_range: nat.port_range,
            capacity: flows.capacity,
            tcp_idle_ms: flows.tcp_idle.as_millis() as u64,
            udp_idle_ms: flows.udp_idle.as_millis() as u64,
            tcp_closing_ms: flows.tcp_closing.as_millis() as u64,
            unanswered_idle_ms: nat.unanswered_idle.as_millis() as u64,
        }
    }
}

/// Client side of a session: what the client sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatKey {
    /// The client's address, restored as destination on replies.
    pub client: IpAddr,
    /// The client's port.
    pub client_port: u16,
    /// The VIP the client sent to, restored as source on replies.
    pub vip: IpAddr,
    /// The VIP port the client sent to.
    pub vip_port: u16,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
}

/// Where a session's replies go back to the client: the port its packets came in on
/// and the MAC they came from (the client, or its router). Stored with the session
/// because a reply may reach any worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReplyPath {
    /// Ingress port of the client's packets.
    pub port: u8,
    /// Source MAC of the client's packets.
    pub mac: [u8; 6],
}

/// What a client packet is rewritten to: DNAT to the backend, SNAT to an xlb address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatBinding {
    /// Backend address: the new destination.
    pub backend: IpAddr,
    /// Backend port: the new destination port.
    pub backend_port: u16,
    /// xlb-owned address: the new source, where the backend sends its replies.
    pub snat: IpAddr,
    /// xlb-owned port: the new source port, unique per (snat, backend, backend port, proto).
    pub snat_port: u16,
}

/// The fields of a TCP header the session table follows, read once per packet that has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSegment {
    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with ACK).
    pub ack: u32,
    /// Window field, unscaled.
    pub window: u16,
    /// The Window Scale option's shift, on a SYN that carries one.
    pub window_shift: Option<u8>,
}

impl TcpSegment {
    /// Reads a TCP header (and, on a SYN, its options); `None` when the fixed header is
    /// cut short.
    pub fn parse(tcp: &[u8]) -> Option<TcpSegment> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(tcp.get(at..at + 4)?.try_into().ok()?))
        };
        let flags = *tcp.get(13)?;
        let header_len = usize::from(tcp[12] >> 4) * 4;
        Some(TcpSegment {
            flags,
            seq: word(4)?,
            ack: word(8)?,
            window: u16::from_be_bytes(tcp.get(14..16)?.try_into().ok()?),
            window_shift: if flags & TCP_SYN != 0 {
                tcp.get(20..header_len).and_then(window_shift)
            } else {
                None
            },
        })
    }
}

/// The Window Scale option's shift among a SYN's options; `None` without one, or when an
/// option's length is malformed before it.
fn window_shift(mut options: &[u8]) -> Option<u8> {
    //# RFC 9293 §3.1: kind 0 ends the list, kind 1 is one byte, others carry a length
    //# that counts kind and length.
    while let [kind, rest @ ..] = options {
        match kind {
            0 => return None,
            1 => options = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                //# RFC 7323 §2.2: Kind: 3 Length: 3 bytes, then the shift count.
                if *kind == 3 && len == 3 {
                    return rest.get(1).copied();
                }
                options = options.get(len.max(2)..)?;
            }
        }
    }
    None
}

/// Counters of the NAT table, summed over its shards, for the metrics endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Sessions currently in the table.
    pub sessions: usize,
    /// Sessions created.
    pub created: u64,
    /// Sessions moved to another backend because theirs left the service.
    pub rebound: u64,
    /// Sessions removed by [`NatSessionTable::expire`].
    pub expired: u64,
    /// Of those, sessions whose backend never answered (a SYN flood counts here).
    pub expired_unanswered: u64,
    /// New sessions (or rebinds) refused because no SNAT port was free.
    pub ports_exhausted: u64,
    /// New sessions refused because the session's shard had no free slot.
    pub table_full: u64,
}

/// Backend side of a session: what the backend's reply carries. Unique in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReplyKey {
    backend: IpAddr,
    backend_port: u16,
    snat: IpAddr,
    snat_port: u16,
    proto: u8,
}

impl ReplyKey {
    #[inline]
    fn of(key: &NatKey, binding: &NatBinding) -> Self {
        ReplyKey {
            backend: binding.backend,
            backend_port: binding.backend_port,
            snat: binding.snat,
            snat_port: binding.snat_port,
            proto: key.proto,
        }
    }

    /// Hash of the reply key; the table computes it itself because replies carry no
    /// flow hash the caller could reuse.
    #[inline]
    fn hash(&self, key: IndexKey) -> u64 {
        let mut bytes = [0u8; 37];
        bytes[..16].copy_from_slice(&ipv6_octets(&self.backend));
        bytes[16..18].copy_from_slice(&self.backend_port.to_be_bytes());
        bytes[18..34].copy_from_slice(&ipv6_octets(&self.snat));
        bytes[34..36].copy_from_slice(&self.snat_port.to_be_bytes());
        bytes[36] = self.proto;
        key.index(xxhash_rust::xxh3::xxh3_64(&bytes))
    }
}

/// The address as 16 bytes (IPv4 as IPv4-mapped IPv6), for hashing.
#[inline]
fn ipv6_octets(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Idle timeouts, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    tcp_idle: u64,
    udp_idle: u64,
    tcp_closing: u64,
    unanswered_idle: u64,
}

/// One NAT session, stored in its shard's slab.
#[derive(Debug)]
struct Session {
    key: NatKey,
    binding: NatBinding,
    reply_path: ReplyPath,
    client_hash: u64,
    reply_hash: u64,
    /// Milliseconds of the last packet, or of the last FIN/RST with [`CLOSING`] set;
    /// [`ANSWERED`] once a reply came back, a FIN bit per side. Only ever raised
    /// (`fetch_max`, or flags added by `fetch_update`), so workers with slightly different
    /// clocks cannot move it back, a closing session is not revived by late packets, and
    /// no flag is ever lost to a refresh.
    last_seen: AtomicU64,
    /// The backend's last ACK and window, for checking client RSTs (see [`ACK_SEEN`]).
    backend_window: AtomicU64,
}

impl Session {
    /// Moves the time to `now_ms` and adds `added` (ANSWERED or nothing), if that raises
    /// the word. Read first: most packets of a flow land in the same millisecond, and a
    /// plain load keeps the cache line shared between workers. The loaded flags but
    /// CLOSING are carried over, so a closing word, larger than anything written here,
    /// stays; flags are only ever added, so a concurrent writer's make the stored word
    /// larger and they win.
    #[inline]
    fn raise(&self, added: u64, now_ms: u64) {
        let word = self.last_seen.load(Ordering::Relaxed);
        let new = word & (FLAGS & !CLOSING) | added | now_ms & !FLAGS;
        if new > word {
            self.last_seen.fetch_max(new, Ordering::Relaxed);
        }
    }

    #[inline]
    fn refresh(&self, now_ms: u64) {
        self.raise(0, now_ms);
    }

    /// A reply from the backend: refreshes the session and marks it answered (not a
    /// closing one, which nothing revives).
    #[inline]
    fn answer(&self, now_ms: u64) {
        self.raise(ANSWERED, now_ms);
    }

    /// Adds `flags` to the word and restarts its time at `now_ms` (never moving it back);
    /// once both FINs are in, the session is closing.
    fn mark(&self, flags: u64, now_ms: u64) {
        let _ = self
            .last_seen
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let mut marked = word & FLAGS | flags;
                if marked & (CLIENT_FIN | BACKEND_FIN) == CLIENT_FIN | BACKEND_FIN {
                    marked |= CLOSING;
                }
                Some(marked | (word & !FLAGS).max(now_ms & !FLAGS))
            });
    }

    /// Follows a backend segment's ACK and window (and, on its SYN-ACK, its window scale),
    /// so that client RSTs can be checked against them.
    #[inline]
    fn follow_backend(&self, segment: &TcpSegment) {
        if segment.flags & TCP_ACK == 0 {
            return;
        }
        let word = self.backend_window.load(Ordering::Relaxed);
        let (shift, from_syn) = if segment.flags & TCP_SYN != 0 {
            let shift = segment.window_shift.map_or(0, |s| s.min(MAX_WINDOW_SHIFT));
            (u64::from(shift), WINDOW_FROM_SYN)
        } else {
            ((word >> WINDOW_SHIFT_AT) & 0xf, 0)
        };
        let new = ACK_SEEN
            | from_syn
            | shift << WINDOW_SHIFT_AT
            | u64::from(segment.window) << 32
            | u64::from(segment.ack);
        if new != word {
            // One try: a concurrent writer has just stored a word as fresh as this one.
            let _ = self.backend_window.compare_exchange(
                word,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Whether a client RST at `seq` lies in the backend's receive window:
    /// `RCV.NXT <= SEG.SEQ < RCV.NXT + RCV.WND` (RFC 5961 §3.2, RFC 9293 §3.10.7.4), with
    /// RCV.NXT the backend's last ACK. Before any ACK there is no window to check against,
    /// and no established connection to protect: the RST is taken.
    fn rst_in_window(&self, seq: u32) -> bool {
        let word = self.backend_window.load(Ordering::Relaxed);
        if word & ACK_SEEN == 0 {
            return true;
        }
        let next = word as u32;
        let field = u64::from((word >> 32) as u16);
        let window = if word & WINDOW_FROM_SYN != 0 {
            field
        } else {
            let shift = ((word >> WINDOW_SHIFT_AT) & 0xf).min(u64::from(MAX_WINDOW_SHIFT));
            field << shift
        };
        // A zero window still accepts RCV.NXT itself (RFC 9293 §3.10.7.4).
        u64::from(seq.wrapping_sub(next)) < window.max(1)
    }

    #[inline]
    fn was_answered(&self) -> bool {
        self.last_seen.load(Ordering::Relaxed) & ANSWERED != 0
    }

    fn is_expired(&self, now_ms: u64, timeouts: &Timeouts) -> bool {
        let word = self.last_seen.load(Ordering::Relaxed);
        let idle = if self.key.proto == protocol::TCP {
            timeouts.tcp_idle
        } else {
            timeouts.udp_idle
        };
        // A half-closed connection (one FIN) keeps its idle time: the other side may
        // still send for long.
        let timeout = if word & CLOSING != 0 {
            timeouts.tcp_closing
        } else if word & ANSWERED == 0 {
            idle.min(timeouts.unanswered_idle)
        } else {
            idle
        };
        now_ms.saturating_sub(word & !FLAGS) >= timeout
    }

    #[inline]
    fn is_bound_to(&self, backend: IpAddr, backend_port: u16) -> bool {
        self.binding.backend == backend && self.binding.backend_port == backend_port
    }

    #[inline]
    fn answers(&self, reply: &ReplyKey) -> bool {
        ReplyKey::of(&self.key, &self.binding) == *reply
    }
}

/// Marks an empty index bucket.
const EMPTY_SLOT: u32 = u32::MAX;

/// One bucket of a [`SlotIndex`]: part of the hash, to skip most mismatches without
/// touching the session, and the session's slot in the shard's slab.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    tag: u32,
    slot: u32,
}

impl IndexEntry {
    const EMPTY: IndexEntry = IndexEntry {
        tag: 0,
        slot: EMPTY_SLOT,
    };
}

#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// Open-addressing hash index (linear probing, backward-shift deletion, no
/// tombstones) from a hash to a slab slot. Sized to at least twice the entries it
/// may hold, so a probe always ends at an empty bucket.
#[derive(Debug)]
struct SlotIndex {
    buckets: Box<[IndexEntry]>,
    mask: usize,
}

impl SlotIndex {
    fn with_room_for(entries: usize) -> Self {
        let size = entries.saturating_mul(2).max(2).next_power_of_two();
        SlotIndex {
            buckets: vec![IndexEntry::EMPTY; size].into_boxed_slice(),
            mask: size - 1,
        }
    }

    /// The slot whose session `is_match` accepts, among those filed under `hash`.
    #[inline]
    fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut bucket = hash as usize & self.mask;
        loop {
            let entry = self.buckets[bucket];
            if entry.slot == EMPTY_SLOT {
                return None;
            }
            if entry.tag == tag && is_match(entry.slot) {
                return Some(entry.slot);
            }
            bucket = (bucket + 1) & self.mask;
        }
    }

    fn insert(&mut self, hash: u64, slot: u32) {
        let mut bucket = hash as usize & self.mask;
        while self.buckets[bucket].slot != EMPTY_SLOT {
            bucket = (bucket + 1) & self.mask;
        }
        self.buckets[bucket] = IndexEntry {
            tag: tag_of(hash),
            slot,
        };
    }

    /// Removes `slot`, filed under `hash`; `hash_of` gives the hash of any other
    /// slot so the entries after it can shift back towards their home bucket.
    fn remove(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        let mut hole = hash as usize & self.mask;
        loop {
            let entry = self.buckets[hole];
            if entry.slot == slot {
                break;
            }
            if entry.slot == EMPTY_SLOT {
                return;
            }
            hole = (hole + 1) & self.mask;
        }
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask;
            let entry = self.buckets[next];
            if entry.slot == EMPTY_SLOT {
                break;
            }
            let home = hash_of(entry.slot) as usize & self.mask;
            // The entry may fill the hole only if the hole lies on its probe path,
            // i.e. its home is not strictly between the hole and its bucket.
            let distance_from_home = next.wrapping_sub(home) & self.mask;
            let distance_from_hole = next.wrapping_sub(hole) & self.mask;
            if distance_from_home >= distance_from_hole {
                self.buckets[hole] = entry;
                hole = next;
            }
        }
        self.buckets[hole] = IndexEntry::EMPTY;
    }
}

/// Which SNAT (address, port) candidates each shard owns.
#[derive(Debug)]
struct PortPlan {
    v4_addresses: Vec<IpAddr>,
    v6_addresses: Vec<IpAddr>,
    first_port: u16,
    port_count: usize,
    shard_count: usize,
}

impl PortPlan {
    fn addresses_for(&self, backend: &IpAddr) -> &[IpAddr] {
        match backend {
            IpAddr::V4(_) => &self.v4_addresses,
            IpAddr::V6(_) => &self.v6_addresses,
        }
    }

    /// Number of ports shard `shard` owns: `first_port + shard + k * shard_count`.
    fn ports_in_shard(&self, shard: usize) -> usize {
        if self.port_count > shard {
            (self.port_count - shard).div_ceil(self.shard_count)
        } else {
            0
        }
    }

    /// The shard owning `port`, or `None` for a port outside the range.
    #[inline]
    fn shard_of_port(&self, port: u16) -> Option<usize> {
        let offset = usize::from(port.checked_sub(self.first_port)?);
        (offset < self.port_count).then_some(offset % self.shard_count)
    }

    /// The `k`th port of shard `shard`; `k < ports_in_shard(shard)`.
    fn port(&self, shard: usize, k: usize) -> u16 {
        let offset = shard + k * self.shard_count;
        // `offset < port_count <= 65536 - first_port`, so this fits.
        (usize::from(self.first_port) + offset) as u16
    }
}

/// Per-shard counters, changed only under the shard's write lock.
#[derive(Clone, Copy, Debug, Default)]
struct ShardCounters {
    created: u64,
    rebound: u64,
    expired: u64,
    expired_unanswered: u64,
    ports_exhausted: u64,
    table_full: u64,
}

/// One shard: a slab of sessions and its two indexes, always changed together.
#[derive(Debug)]
struct Shard {
    /// Position in the table: which ports this shard owns.
    index: usize,
    sessions: Box<[Option<Session>]>,
    free_slots: Vec<u32>,
    live: usize,
    by_client: SlotIndex,
    by_reply: SlotIndex,
    /// Next-fit allocation cursor over (address, port) candidates, per family
    /// (0: IPv4, 1: IPv6). Next-fit reuses a port as late as possible.
    cursors: [usize; 2],
    /// Where the next expiry sweep resumes.
    sweep_cursor: usize,
    /// Live sessions per port pool: a full pool refuses a new session at once, so a flood
    /// of new flows towards it costs a lookup each, not up to [`MAX_PORT_PROBES`] probes
    /// under the shard's lock.
    pool_sessions: FxHashMap<PoolKey, u32>,
    counters: ShardCounters,
}

/// One pool of SNAT ports: ports are unique per backend transport address and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    backend: IpAddr,
    backend_port: u16,
    proto: u8,
}

impl PoolKey {
    fn of(session: &Session) -> Self {
        PoolKey {
            backend: session.binding.backend,
            backend_port: session.binding.backend_port,
            proto: session.key.proto,
        }
    }
}

fn client_hash_of(sessions: &[Option<Session>], slot: u32) -> u64 {
    sessions
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map_or(0, |session| session.client_hash)
}

fn reply_hash_of(sessions: &[Option<Session>], slot: u32) -> u64 {
    sessions
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map_or(0, |session| session.reply_hash)
}

impl Shard {
    fn new(index: usize, capacity: usize) -> Self {
        Shard {
            index,
            sessions: (0..capacity).map(|_| None).collect(),
            free_slots: (0..capacity as u32).rev().collect(),
            live: 0,
            by_client: SlotIndex::with_room_for(capacity),
            by_reply: SlotIndex::with_room_for(capacity),
            cursors: [0; 2],
            sweep_cursor: 0,
            pool_sessions: FxHashMap::default(),
            counters: ShardCounters::default(),
        }
    }

    #[inline]
    fn session(&self, slot: u32) -> Option<&Session> {
        self.sessions.get(slot as usize).and_then(Option::as_ref)
    }

    #[inline]
    fn find_client(&self, key: &NatKey, hash: u64) -> Option<u32> {
        self.by_client.find(hash, |slot| {
            self.session(slot)
                .is_some_and(|session| session.key == *key)
        })
    }

    #[inline]
    fn find_reply(&self, reply: &ReplyKey, hash: u64) -> Option<u32> {
        self.by_reply.find(hash, |slot| {
            self.session(slot)
                .is_some_and(|session| session.answers(reply))
        })
    }

    /// A free SNAT (address, port) of this shard towards `backend`, with the reply
    /// key's hash, or `None` when the probes found none.
    fn allocate_port(
        &mut self,
        plan: &PortPlan,
        key: IndexKey,
        backend: IpAddr,
        backend_port: u16,
        proto: u8,
    ) -> Option<(IpAddr, u16, u64)> {
        let shard = self.index;
        let addresses = plan.addresses_for(&backend);
        let candidates = addresses.len() * plan.ports_in_shard(shard);
        let pool = PoolKey {
            backend,
            backend_port,
            proto,
        };
        let in_use = self.pool_sessions.get(&pool).map_or(0, |&n| n as usize);
        if in_use >= candidates {
            return None;
        }
        let family = usize::from(backend.is_ipv6());
        for _ in 0..candidates.min(MAX_PORT_PROBES) {
            let candidate = self.cursors[family] % candidates;
            self.cursors[family] = (candidate + 1) % candidates;
            // Consecutive candidates alternate addresses, spreading load over them.
            let snat = addresses[candidate % addresses.len()];
            let snat_port = plan.port(shard, candidate / addresses.len());
            let reply = ReplyKey {
                backend,
                backend_port,
                snat,
                snat_port,
                proto,
            };
            let hash = reply.hash(key);
            if self.find_reply(&reply, hash).is_none() {
                return Some((snat, snat_port, hash));
            }
        }
        None
    }

    fn insert(&mut self, session: Session) -> Option<u32> {
        let slot = self.free_slots.pop()?;
        let (client_hash, reply_hash) = (session.client_hash, session.reply_hash);
        *self.pool_sessions.entry(PoolKey::of(&session)).or_insert(0) += 1;
        *self.sessions.get_mut(slot as usize)? = Some(session);
        self.by_client.insert(client_hash, slot);
        self.by_reply.insert(reply_hash, slot);
        self.live += 1;
        Some(slot)
    }

    fn remove(&mut self, slot: u32) {
        let Some(session) = self.session(slot) else {
            return;
        };
        let (client_hash, reply_hash) = (session.client_hash, session.reply_hash);
        let pool = PoolKey::of(session);
        if let Some(count) = self.pool_sessions.get_mut(&pool) {
            *count -= 1;
            if *count == 0 {
                self.pool_sessions.remove(&pool);
            }
        }
        let sessions = &self.sessions;
        self.by_client
            .remove(client_hash, slot, |other| client_hash_of(sessions, other));
        self.by_reply
            .remove(reply_hash, slot, |other| reply_hash_of(sessions, other));
        if let Some(entry) = self.sessions.get_mut(slot as usize) {
            *entry = None;
        }
        self.free_slots.push(slot);
        self.live -= 1;
    }

    /// Creates a session for `key` towards `backend`; counts a refusal, not a success.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        key: &NatKey,
        client_hash: u64,
        plan: &PortPlan,
        index_key: IndexKey,
        backend: IpAddr,
        backend_port: u16,
        reply_path: ReplyPath,
        now_ms: u64,
    ) -> Result<NatBinding, DropReason> {
        if self.free_slots.is_empty() {
            self.counters.table_full += 1;
            return Err(DropReason::NatPortsExhausted);
        }
        let Some((snat, snat_port, reply_hash)) =
            self.allocate_port(plan, index_key, backend, backend_port, key.proto)
        else {
            self.counters.ports_exhausted += 1;
            return Err(DropReason::NatPortsExhausted);
        };
        let binding = NatBinding {
            backend,
            backend_port,
            snat,
            snat_port,
        };
        let session = Session {
            key: *key,
            binding,
            reply_path,
            client_hash,
            reply_hash,
            last_seen: AtomicU64::new(now_ms & !FLAGS),
            backend_window: AtomicU64::new(SHIFT_UNKNOWN << WINDOW_SHIFT_AT),
        };
        if self.insert(session).is_none() {
            self.counters.table_full += 1;
            return Err(DropReason::NatPortsExhausted);
        }
        Ok(binding)
    }

    /// Frees the expired sessions among the next `budget` slots, resuming where the last
    /// sweep stopped.
    fn expire(&mut self, now_ms: u64, timeouts: &Timeouts, budget: usize) -> usize {
        if self.live == 0 {
            return 0;
        }
        let slots = self.sessions.len();
        let mut expired = 0;
        for _ in 0..budget.min(slots) {
            let slot = self.sweep_cursor as u32;
            self.sweep_cursor = (self.sweep_cursor + 1) % slots;
            let Some(answered) = self
                .session(slot)
                .filter(|session| session.is_expired(now_ms, timeouts))
                .map(Session::was_answered)
            else {
                continue;
            };
            self.remove(slot);
            expired += 1;
            self.counters.expired_unanswered += u64::from(!answered);
        }
        self.counters.expired += expired as u64;
        expired
    }
}

/// The NAT session table shared by all workers: client key -> binding for client
/// packets, reply key -> client key for backend replies.
#[derive(Debug)]
pub struct NatSessionTable {
    /// Padded so that one shard's lock word never shares a cache line with another's.
    shards: Box<[CachePadded<RwLock<Shard>>]>,
    plan: PortPlan,
    timeouts: Timeouts,
    /// Turns callers' flow hashes and reply hashes into index positions.
    key: IndexKey,
}

impl NatSessionTable {
    /// Builds the table and allocates all of its memory: `capacity` sessions and two
    /// indexes. A reversed port range or an address family without SNAT address
    /// leaves no port, so every new session towards it is refused.
    pub fn new(config: NatConfig) -> Self {
        let (first_port, last_port) = config.port_range;
        let port_count = if last_port >= first_port {
            usize::from(last_port - first_port) + 1
        } else {
            0
        };
        let shard_count = MAX_SHARDS
            .min(port_count / MIN_PORTS_PER_SHARD)
            .min(config.capacity / MIN_SESSIONS_PER_SHARD)
            .max(1);
        let shards = (0..shard_count)
            .map(|shard| {
                let extra = usize::from(shard < config.capacity % shard_count);
                CachePadded::new(RwLock::new(Shard::new(
                    shard,
                    config.capacity / shard_count + extra,
                )))
            })
            .collect();
        let (v4_addresses, v6_addresses) = config.addresses.iter().partition(|a| a.is_ipv4());
        NatSessionTable {
            shards,
            plan: PortPlan {
                v4_addresses,
                v6_addresses,
                first_port,
                port_count,
                shard_count,
            },
            timeouts: Timeouts {
                tcp_idle: config.tcp_idle_ms,
                udp_idle: config.udp_idle_ms,
                tcp_closing: config.tcp_closing_ms,
                unanswered_idle: config.unanswered_idle_ms,
            },
            key: IndexKey::process(),
        }
    }

    /// The shard of a client key, from its index hash (upper half, so the lower half
    /// stays free for the index buckets).
    #[inline]
    fn shard_of_client(&self, index: u64) -> usize {
        (((index >> 32) * self.shards.len() as u64) >> 32) as usize
    }

    /// Client -> VIP packet: the existing session's binding, or a new one towards
    /// `backend` (SNAT address of the backend's family; SNAT port unique per (snat
    /// addr, backend addr, backend port, proto)). A session whose backend differs
    /// from `backend` (its backend left) is rebound. `hash` is the flow hash of
    /// `key`: the same key must always come with the same hash.
    /// Err(DropReason::NatPortsExhausted) when no port (or no session slot) is free.
    pub fn outbound(
        &self,
        key: &NatKey,
        backend: IpAddr,
        backend_port: u16,
        reply_path: ReplyPath,
        hash: u64,
        now_ms: u64,
    ) -> Result<NatBinding, DropReason> {
        let hash = self.key.index(hash);
        let shard = &self.shards[self.shard_of_client(hash)];
        {
            let shard = shard.read();
            if let Some(session) = shard
                .find_client(key, hash)
                .and_then(|slot| shard.session(slot))
                .filter(|session| session.is_bound_to(backend, backend_port))
            {
                session.refresh(now_ms);
                return Ok(session.binding);
            }
        }
        let mut shard = shard.write();
        // Another worker may have created or rebound the session since the read.
        let rebinding = match shard.find_client(key, hash) {
            Some(slot) => {
                if let Some(session) = shard
                    .session(slot)
                    .filter(|session| session.is_bound_to(backend, backend_port))
                {
                    session.refresh(now_ms);
                    return Ok(session.binding);
                }
                // Its backend left: the old reply key goes, a port towards the new
                // backend is taken. If none is free the session stays removed.
                shard.remove(slot);
                true
            }
            None => false,
        };
        let binding = shard.create(
            key,
            hash,
            &self.plan,
            self.key,
            backend,
            backend_port,
            reply_path,
            now_ms,
        )?;
        if rebinding {
            shard.counters.rebound += 1;
        } else {
            shard.counters.created += 1;
        }
        Ok(binding)
    }

    /// Backend -> SNAT packet: the client key to restore and the path back to the
    /// client, or None (caller drops as NatNoSession). Keeps the session alive and
    /// marks it answered. A TCP `segment` is followed: its ACK and window bound the
    /// client's RSTs, its FIN half-closes the connection (or closes a half-closed one),
    /// its RST closes it.
    #[allow(clippy::too_many_arguments)]
    pub fn inbound(
        &self,
        backend: IpAddr,
        backend_port: u16,
        snat: IpAddr,
        snat_port: u16,
        proto: u8,
        segment: Option<&TcpSegment>,
        now_ms: u64,
    ) -> Option<(NatKey, ReplyPath)> {
        let shard_index = self.plan.shard_of_port(snat_port)?;
        let reply = ReplyKey {
            backend,
            backend_port,
            snat,
            snat_port,
            proto,
        };
        let hash = reply.hash(self.key);
        let shard = self.shards.get(shard_index)?.read();
        let session = shard
            .find_reply(&reply, hash)
            .and_then(|slot| shard.session(slot))?;
        session.answer(now_ms);
        if let Some(segment) = segment.filter(|_| proto == protocol::TCP) {
            session.follow_backend(segment);
            if segment.flags & TCP_RST != 0 {
                session.mark(CLOSING, now_ms);
            } else if segment.flags & TCP_FIN != 0 {
                session.mark(BACKEND_FIN, now_ms);
            }
        }
        Some((session.key, session.reply_path))
    }

    /// A client's TCP FIN or RST, met by its session before the packet goes further
    /// (`hash` as for [`NatSessionTable::outbound`]). A RST in the backend's window closes
    /// the session: it lives
    /// `tcp_closing_ms` more and later packets no longer extend it. A RST out of the
    /// window is `Err(NatRstOutOfWindow)`, for the caller to drop: a blind reset must
    /// not end a live connection's session. A FIN half-closes the connection, or closes
    /// it if the backend's FIN came first. Anything else, or no session, changes nothing.
    pub fn client_segment(
        &self,
        key: &NatKey,
        hash: u64,
        segment: &TcpSegment,
        now_ms: u64,
    ) -> Result<(), DropReason> {
        let hash = self.key.index(hash);
        let shard = self.shards[self.shard_of_client(hash)].read();
        let Some(session) = shard
            .find_client(key, hash)
            .and_then(|slot| shard.session(slot))
        else {
            return Ok(());
        };
        if segment.flags & TCP_RST != 0 {
            if !session.rst_in_window(segment.seq) {
                return Err(DropReason::NatRstOutOfWindow);
            }
            session.mark(CLOSING, now_ms);
        } else if segment.flags & TCP_FIN != 0 {
            session.mark(CLIENT_FIN, now_ms);
        }
        Ok(())
    }

    /// Whether `addr` is one of xlb's SNAT addresses, i.e. a packet to it is a reply
    /// to look up with [`NatSessionTable::inbound`].
    #[inline]
    pub fn is_snat_address(&self, addr: &IpAddr) -> bool {
        self.plan.addresses_for(addr).contains(addr)
    }

    /// Removes sessions idle past their timeout and frees their ports; returns how
    /// many. Off the fast path: it scans every shard under its write lock.
    pub fn expire(&self, now_ms: u64) -> usize {
        self.sweep(now_ms, usize::MAX)
    }

    /// Frees expired sessions among the next `slots_per_shard` slots of every shard,
    /// resuming where the last sweep stopped: the periodic housekeeping, which must hold
    /// each shard's lock only briefly (a full sweep of a million sessions under the
    /// locks stalled the workers' NAT lookups).
    pub fn sweep(&self, now_ms: u64, slots_per_shard: usize) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .write()
                    .expire(now_ms, &self.timeouts, slots_per_shard)
            })
            .sum()
    }

    /// Sessions currently in the table.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().live).sum()
    }

    /// Whether the table holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters summed over all shards.
    pub fn stats(&self) -> NatStats {
        self.shards
            .iter()
            .fold(NatStats::default(), |mut stats, shard| {
                let shard = shard.read();
                stats.sessions += shard.live;
                stats.created += shard.counters.created;
                stats.rebound += shard.counters.rebound;
                stats.expired += shard.counters.expired;
                stats.expired_unanswered += shard.counters.expired_unanswered;
                stats.ports_exhausted += shard.counters.ports_exhausted;
                stats.table_full += shard.counters.table_full;
                stats
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    impl NatSessionTable {
        /// Asserts that every shard's slab, free list and both indexes agree.
        fn assert_consistent(&self) {
            for (shard_index, shard) in self.shards.iter().enumerate() {
                let shard = shard.read();
                let stored: Vec<u32> = (0..shard.sessions.len() as u32)
                    .filter(|&slot| shard.session(slot).is_some())
                    .collect();
                assert_eq!(stored.len(), shard.live);
                assert_eq!(shard.live + shard.free_slots.len(), shard.sessions.len());
                let filed = |index: &SlotIndex| {
                    index
                        .buckets
                        .iter()
                        .filter(|entry| entry.slot != EMPTY_SLOT)
                        .count()
                };
                assert_eq!(filed(&shard.by_client), shard.live);
                assert_eq!(filed(&shard.by_reply), shard.live);
                for slot in stored {
                    let session = shard.session(slot).unwrap();
                    assert_eq!(
                        shard.find_client(&session.key, session.client_hash),
                        Some(slot)
                    );
                    let reply = ReplyKey::of(&session.key, &session.binding);
                    assert_eq!(reply.hash(self.key), session.reply_hash);
                    assert_eq!(shard.find_reply(&reply, session.reply_hash), Some(slot));
                    assert_eq!(
                        self.plan.shard_of_port(session.binding.snat_port),
                        Some(shard_index)
                    );
                }
            }
        }
    }

    fn config(capacity: usize, port_range: (u16, u16)) -> NatConfig {
        NatConfig {
            addresses: vec![
                IpAddr::V4(Ipv4Addr::new(198, 18, 200, 1)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 200, 2)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 1)),
            ],
            port_range,
            capacity,
            tcp_idle_ms: 1_000,
            udp_idle_ms: 300,
            tcp_closing_ms: 50,
            unanswered_idle_ms: 1_000,
        }
    }

    fn key(client: u8, proto: u8) -> NatKey {
        NatKey {
            client: IpAddr::V4(Ipv4Addr::new(198, 19, 0, client)),
            client_port: 40_000 + u16::from(client),
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 100, 10)),
            vip_port: 80,
            proto,
        }
    }

    fn hash_of(key: &NatKey) -> u64 {
        let mut bytes = [0u8; 37];
        bytes[..16].copy_from_slice(&ipv6_octets(&key.client));
        bytes[16..18].copy_from_slice(&key.client_port.to_be_bytes());
        bytes[18..34].copy_from_slice(&ipv6_octets(&key.vip));
        bytes[34..36].copy_from_slice(&key.vip_port.to_be_bytes());
        bytes[36] = key.proto;
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    fn backend(index: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 1, index))
    }

    #[test]
    fn shards_own_disjoint_ports_covering_the_range() {
        let plan = NatSessionTable::new(config(1 << 16, (1024, 65535))).plan;
        assert_eq!(plan.shard_count, MAX_SHARDS);
        let mut owner = vec![None; 65536];
        for shard in 0..plan.shard_count {
            for k in 0..plan.ports_in_shard(shard) {
                let port = plan.port(shard, k);
                assert_eq!(owner[usize::from(port)], None, "port {port} dealt twice");
                owner[usize::from(port)] = Some(shard);
                assert_eq!(plan.shard_of_port(port), Some(shard));
            }
        }
        assert!(owner[1024..].iter().all(Option::is_some));
        assert!(owner[..1024].iter().all(Option::is_none));
        assert_eq!(plan.shard_of_port(1023), None);
    }

    #[test]
    fn small_tables_use_one_shard_and_exact_capacity() {
        let table = NatSessionTable::new(config(10, (1024, 65535)));
        assert_eq!(table.shards.len(), 1);
        let table = NatSessionTable::new(config(100_000, (1024, 65535)));
        let slots: usize = table.shards.iter().map(|s| s.read().sessions.len()).sum();
        assert_eq!(slots, 100_000);
        let table = NatSessionTable::new(config(1 << 20, (5000, 5003)));
        assert_eq!(table.shards.len(), 1);
    }

    #[test]
    fn memory_per_session_stays_small() {
        // Slab record plus, in each of the two indexes, two buckets per slot (the
        // smallest size; capacities just above a power of two get up to four).
        let per_session =
            std::mem::size_of::<Option<Session>>() + 4 * std::mem::size_of::<IndexEntry>();
        eprintln!("bytes per session: {per_session}");
        assert!(per_session <= 160, "{per_session} bytes per session");
    }

    #[test]
    fn reversed_port_range_refuses_every_session() {
        let table = NatSessionTable::new(config(16, (2000, 1000)));
        let k = key(1, 6);
        assert_eq!(
            table.outbound(&k, backend(1), 80, ReplyPath::default(), hash_of(&k), 0),
            Err(DropReason::NatPortsExhausted)
        );
        assert_eq!(
            table
                .inbound(backend(1), 80, backend(1), 1500, 6, None, 0)
                .map(|(key, _)| key),
            None
        );
    }

    #[test]
    fn tcp_segment_parse_reads_fields_and_the_window_scale_of_a_syn() {
        // SYN-ACK, seq 0x01020304, ack 0x0a0b0c0d, window 0xfaf0, options MSS 1460,
        // SACK permitted, NOP, window scale 7 (data offset 8 words).
        let mut syn_ack = [0u8; 32];
        syn_ack[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        syn_ack[8..12].copy_from_slice(&0x0a0b_0c0du32.to_be_bytes());
        syn_ack[12] = 8 << 4;
        syn_ack[13] = TCP_SYN | TCP_ACK;
        syn_ack[14..16].copy_from_slice(&0xfaf0u16.to_be_bytes());
        syn_ack[20..32].copy_from_slice(&[2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7, 0, 0]);
        assert_eq!(
            TcpSegment::parse(&syn_ack),
            Some(TcpSegment {
                flags: TCP_SYN | TCP_ACK,
                seq: 0x0102_0304,
                ack: 0x0a0b_0c0d,
                window: 0xfaf0,
                window_shift: Some(7),
            })
        );
        // Options count only on a SYN; a cut header is no segment; a malformed option
        // list reads no shift.
        let mut ack = syn_ack;
        ack[13] = TCP_ACK;
        assert_eq!(TcpSegment::parse(&ack).map(|s| s.window_shift), Some(None));
        assert_eq!(TcpSegment::parse(&syn_ack[..15]), None);
        let mut too_long = syn_ack;
        too_long[20..24].copy_from_slice(&[8, 40, 3, 3]);
        assert_eq!(
            TcpSegment::parse(&too_long).map(|s| s.window_shift),
            Some(None)
        );
        let mut cut = syn_ack;
        cut[12] = 15 << 4;
        assert_eq!(
            TcpSegment::parse(&cut).map(|s| s.window_shift),
            Some(None),
            "options past the segment are not read"
        );
    }

    #[test]
    fn index_removal_shifts_colliding_entries_back() {
        // Every hash homes in bucket 3 of 8 or wraps around: deletions in the middle
        // of a cluster must keep the rest findable.
        let mut index = SlotIndex::with_room_for(4);
        let hashes = [3u64, 3 | (1 << 40), 4, 7, 7 | (1 << 41), 0];
        let hash_of = |slot: u32| hashes[slot as usize];
        for (slot, &hash) in hashes.iter().enumerate().take(5) {
            index.insert(hash, slot as u32);
        }
        index.remove(hashes[0], 0, hash_of);
        index.remove(hashes[3], 3, hash_of);
        for slot in [1u32, 2, 4] {
            assert_eq!(index.find(hashes[slot as usize], |s| s == slot), Some(slot));
        }
        for slot in [0u32, 3] {
            assert_eq!(index.find(hashes[slot as usize], |s| s == slot), None);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Outbound { client: u8, proto: u8, backend: u8 },
        Inbound { client: u8, proto: u8 },
        Close { client: u8, proto: u8 },
        Tick(u64),
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        let proto = prop_oneof![Just(6u8), Just(17u8)];
        prop_oneof![
            4 => (0u8..40, proto.clone(), 1u8..4)
                .prop_map(|(client, proto, backend)| Op::Outbound { client, proto, backend }),
            2 => (0u8..40, proto.clone()).prop_map(|(client, proto)| Op::Inbound { client, proto }),
            1 => (0u8..40, proto).prop_map(|(client, proto)| Op::Close { client, proto }),
            1 => (1u64..400).prop_map(Op::Tick),
            1 => Just(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn any_operation_sequence_keeps_indexes_consistent(
            ops in proptest::collection::vec(op(), 1..200),
            capacity in 1usize..48,
        ) {
            // Eight ports and two IPv4 addresses: exhaustion, reuse and rebinding
            // all happen within a short sequence.
            let table = NatSessionTable::new(config(capacity, (7000, 7007)));
            let mut bindings: HashMap<NatKey, NatBinding> = HashMap::new();
            let mut now = 0;
            for op in ops {
                match op {
                    Op::Outbound { client, proto, backend: b } => {
                        let k = key(client, proto);
                        match table.outbound(&k, backend(b), 80, ReplyPath::default(), hash_of(&k), now) {
                            Ok(binding) => {
                                prop_assert_eq!(binding.backend, backend(b));
                                if let Some(old) = bindings.get(&k) {
                                    if old.backend == binding.backend {
                                        prop_assert_eq!(*old, binding);
                                    }
                                }
                                bindings.insert(k, binding);
                            }
                            Err(reason) => {
                                prop_assert_eq!(reason, DropReason::NatPortsExhausted);
                                bindings.remove(&k);
                            }
                        }
                    }
                    Op::Inbound { client, proto } => {
                        let k = key(client, proto);
                        if let Some(b) = bindings.get(&k) {
                            let found = table.inbound(b.backend, b.backend_port, b.snat, b.snat_port, proto, None, now).map(|(key, _)| key);
                            // Only `expire` removes sessions, and it prunes the model.
                            prop_assert_eq!(found, Some(k));
                        }
                    }
                    Op::Close { client, proto } => {
                        let k = key(client, proto);
                        let rst = TcpSegment { flags: TCP_RST, ..TcpSegment::default() };
                        prop_assert_eq!(table.client_segment(&k, hash_of(&k), &rst, now), Ok(()));
                    }
                    Op::Tick(ms) => now += ms,
                    Op::Expire => {
                        table.expire(now);
                        bindings.retain(|k, b| {
                            table.inbound(b.backend, b.backend_port, b.snat, b.snat_port, k.proto, None, now).map(|(key, _)| key)
                                == Some(*k)
                        });
                    }
                }
                table.assert_consistent();
                prop_assert!(table.len() <= capacity);
            }
        }
    }
}
