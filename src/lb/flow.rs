//! The per-worker TCP/UDP flow table: 5-tuple -> an opaque backend id, with idle timeouts per
//! protocol, a short life for TCP flows that sent only SYNs and after a TCP RST, a new-flow rate
//! guard, and least-recently-used eviction when a bucket is full.
//!
//! Set-associative, as VPP's `lb` and Katran's per-CPU LRU maps are: a power-of-two number of
//! 8-way buckets, allocated once in [`FlowTable::new`] on transparent huge pages (by the pinned
//! worker, so the memory is NUMA-local) and never again. A bucket starts with its eight 32-bit
//! hash tags in one cache line; a lookup scans the tags and compares the full key only on a tag
//! match. LRU is per bucket (the oldest of the eight goes), an approximation of a global LRU,
//! and every eviction is counted. Buckets are chosen by [`IndexKey::index`], keyed per process,
//! so nobody outside can aim tuples at one bucket.
//!
//! Floods (docs/architecture.md §3, `flow_table`): a TCP flow created by a SYN is SYN-only until
//! its client sends a packet without SYN (the handshake's ACK). SYN-only flows live `tcp_syn`,
//! are the first evicted from a full bucket, and never evict an established flow: a SYN flood
//! from random sources churns through SYN-only ways and leaves established flows in place.
//! Above `new_flows_per_second` per worker, new flows are not stored at all; the caller still
//! forwards them by Maglev, which keeps them on one backend while the backend set holds
//! (Katran's way of riding out a flood).
//! Sans-IO: `now_ms` is passed in (read once per batch by the caller).

use std::net::IpAddr;

use crate::config::DataplaneConfig;
use crate::lb::hash::IndexKey;
use crate::sys::{prefetch, HugePageSlice};
use crate::wire::headers::protocol;

/// Ways per bucket: eight tags fill half a cache line, and eight candidates make a full bucket
/// (an eviction of a live flow) rare until the table is nearly full.
const WAYS: usize = 8;

/// The tag of an empty way; real tags always have their low bit set.
const EMPTY_TAG: u32 = 0;
/// Tag bit set on every flow except a SYN-only one. Kept in the tag, not the entry, so the
/// eviction choice reads the tags and deadlines only; lookups compare tags with it set.
const ESTABLISHED_BIT: u32 = 0b10;

/// TCP flags the table reads.
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// The largest capacity a table takes (2^32 flows, 240 GiB); larger requests are clamped.
pub const MAX_CAPACITY: usize = 1 << 32;

/// A flow as the balancer sees it: the VIP side and the client side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The virtual address the client connected to.
    pub vip: IpAddr,
    /// The client's address.
    pub client: IpAddr,
    /// The service port on the VIP.
    pub vip_port: u16,
    /// The client's source port.
    pub client_port: u16,
    /// The IP protocol number; it selects the idle timeout.
    pub proto: u8,
}

/// How long a flow lives without packets, per protocol and state, in the caller's `now_ms`
/// units, and how fast new flows may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// Idle life of a TCP flow.
    pub tcp_idle_ms: u64,
    /// Idle life of a UDP flow, and of any protocol other than TCP and SCTP.
    pub udp_idle_ms: u64,
    /// Idle life of an SCTP flow.
    pub sctp_idle_ms: u64,
    /// Idle life after a TCP RST, so reset connections free their entry early. A FIN does not
    /// shorten it: the other direction may keep sending for long (a half-closed connection).
    pub tcp_closing_ms: u64,
    /// Idle life of a TCP flow whose client sent only SYNs, so a SYN flood's entries go soon.
    pub tcp_syn_ms: u64,
    /// New flows stored per second (a token bucket holding a tenth of a second's worth);
    /// beyond it, new flows are forwarded untracked.
    pub new_flows_per_sec: u64,
}

impl FlowTimeouts {
    /// The timeouts of a service table's `dataplane.flow_table`, in milliseconds.
    pub fn from_table(dataplane: &DataplaneConfig) -> FlowTimeouts {
        let flows = &dataplane.flow_table;
        FlowTimeouts {
            tcp_idle_ms: flows.tcp_idle.as_millis() as u64,
            udp_idle_ms: flows.udp_idle.as_millis() as u64,
            sctp_idle_ms: flows.sctp_idle.as_millis() as u64,
            tcp_closing_ms: flows.tcp_closing.as_millis() as u64,
            tcp_syn_ms: flows.tcp_syn.as_millis() as u64,
            new_flows_per_sec: flows.new_flows_per_second,
        }
    }
}

/// What a packet tells the table about its flow's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPacket {
    /// A TCP SYN (without RST): opens a SYN-only flow, or retransmits its opening.
    Syn,
    /// A TCP RST: the connection ends; a tracked flow lives `tcp_closing_ms` more.
    Rst,
    /// Anything else, of any protocol: a TCP flow that sends one is established.
    Other,
}

impl FlowPacket {
    /// The kind of a packet of IP protocol `proto` with TCP flags `tcp_flags` (0 unless TCP).
    #[inline]
    pub fn of(proto: u8, tcp_flags: u8) -> FlowPacket {
        if proto != protocol::TCP {
            FlowPacket::Other
        } else if tcp_flags & TCP_RST != 0 {
            FlowPacket::Rst
        } else if tcp_flags & TCP_SYN != 0 {
            FlowPacket::Syn
        } else {
            FlowPacket::Other
        }
    }
}

/// What [`FlowTable::insert`] did, so the caller can count new flows, evictions and flows
/// left untracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The flow took a free (or expired) way.
    New,
    /// The flow was already tracked; its value and life were reset.
    Replaced,
    /// The bucket was full of live flows; its oldest SYN-only flow was evicted for it.
    EvictedSynOnly,
    /// The bucket was full of established flows; the least recently seen one was evicted for
    /// an established newcomer.
    EvictedLru,
    /// Not stored: a SYN-only newcomer met a bucket full of established flows, which it may not
    /// evict.
    Full,
    /// Not stored: the new-flow rate guard had no token left.
    RateLimited,
}

/// Counters of a flow table, read by the worker's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Flows stored by `insert` (new or evicting; replacements are not counted).
    pub inserts: u64,
    /// Live established flows evicted because their bucket was full.
    pub evictions: u64,
    /// Live SYN-only flows evicted because their bucket was full.
    pub syn_only_evictions: u64,
    /// New flows not stored: their bucket was full of established flows and they were SYN-only.
    pub refused_full: u64,
    /// New flows not stored because of the rate guard.
    pub refused_rate: u64,
    /// Flows found past their idle timeout and freed.
    pub expirations: u64,
    /// Flows whose backend was re-selected by `update` (their backend left the table).
    pub reselections: u64,
}

/// A key packed for storage and comparison: IPv4 addresses as IPv4-mapped IPv6 plus a family
/// bit, so both families share one fixed layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Zeroable)]
#[repr(C)]
struct PackedKey {
    vip: [u8; 16],
    client: [u8; 16],
    vip_port: u16,
    client_port: u16,
    proto: u8,
    /// Bit 0: the VIP is IPv4; bit 1: the client is IPv4.
    ipv4_bits: u8,
}

impl PackedKey {
    #[inline]
    fn new(key: &FlowKey) -> Self {
        let (vip, vip_is_v4) = packed_address(&key.vip);
        let (client, client_is_v4) = packed_address(&key.client);
        PackedKey {
            vip,
            client,
            vip_port: key.vip_port,
            client_port: key.client_port,
            proto: key.proto,
            ipv4_bits: u8::from(vip_is_v4) | (u8::from(client_is_v4) << 1),
        }
    }
}

/// An address as 16 bytes; IPv4 as `::ffff:a.b.c.d`, built as one 128-bit word (building
/// it byte by byte made packing the key cost more than comparing it).
#[inline]
fn packed_address(addr: &IpAddr) -> ([u8; 16], bool) {
    match addr {
        IpAddr::V4(v4) => {
            let mapped = 0xffff_u128 << 32 | u128::from(u32::from(*v4));
            (mapped.to_be_bytes(), true)
        }
        IpAddr::V6(v6) => (v6.octets(), false),
    }
}

/// One tracked flow: 44 bytes.
#[derive(Debug, Clone, Copy, bytemuck::Zeroable)]
#[repr(C)]
struct FlowEntry {
    key: PackedKey,
    /// Set by a TCP RST: the entry then lives `tcp_closing_ms` after its last packet.
    closing: bool,
    value: u32,
}

/// Eight ways: tags and deadlines first (the first cache line and a half), then the
/// entries. Expiry and LRU choices read only the deadlines, so a full bucket's eviction
/// touches two lines, not nine. All zeroes is an empty bucket.
#[derive(Debug, Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u32; WAYS],
    /// When each way's flow expires (`now_ms` units); the smallest is the least recently
    /// used among flows of one protocol.
    deadlines: [u64; WAYS],
    entries: [FlowEntry; WAYS],
}

impl Bucket {
    /// The way holding `key`, if any (live or expired); `tag` has [`ESTABLISHED_BIT`] set.
    #[inline]
    fn find(&self, tag: u32, key: &PackedKey) -> Option<usize> {
        (0..WAYS).find(|&way| self.tag_matches(way, tag) && self.entries[way].key == *key)
    }

    #[inline]
    fn tag_matches(&self, way: usize, tag: u32) -> bool {
        self.tags[way] | ESTABLISHED_BIT == tag
    }

    #[inline]
    fn is_syn_only(&self, way: usize) -> bool {
        self.tags[way] & ESTABLISHED_BIT == 0
    }
}

/// The new-flow rate guard: a token bucket in thousandths of a flow, refilled from the batch's
/// `now_ms`, so it needs no clock of its own.
#[derive(Debug)]
struct NewFlowGuard {
    /// Thousandths of a flow added per millisecond: the rate per second.
    refill_per_ms: u64,
    /// Most thousandths held: a tenth of a second's worth, at least one flow.
    burst: u64,
    tokens: u64,
    last_ms: u64,
}

impl NewFlowGuard {
    fn new(per_second: u64) -> Self {
        let burst = per_second.saturating_mul(100).max(1000);
        NewFlowGuard {
            refill_per_ms: per_second,
            burst,
            tokens: burst,
            last_ms: 0,
        }
    }

    /// Takes one flow's token if there is one.
    #[inline]
    fn admit(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(self.refill_per_ms))
            .min(self.burst);
        if self.tokens < 1000 {
            return false;
        }
        self.tokens -= 1000;
        true
    }
}

/// A fixed-capacity, per-worker flow table; see the module documentation for its design.
#[derive(Debug)]
pub struct FlowTable {
    buckets: HugePageSlice<Bucket>,
    bucket_mask: usize,
    len: usize,
    timeouts: FlowTimeouts,
    guard: NewFlowGuard,
    key: IndexKey,
    stats: FlowStats,
}

/// The tag of an index hash as lookups compare it: the high half (the bucket index uses the
/// low bits) with [`ESTABLISHED_BIT`] and the low bit set, so never 0.
#[inline]
fn tag_of(index: u64) -> u32 {
    ((index >> 32) as u32) | ESTABLISHED_BIT | 1
}

impl FlowTable {
    /// Allocates a table for at least `capacity` flows (rounded up to a power-of-two number of
    /// 8-way buckets, at most [`MAX_CAPACITY`]). This is the only allocation the table makes.
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Self {
        let bucket_count = capacity
            .clamp(1, MAX_CAPACITY)
            .div_ceil(WAYS)
            .next_power_of_two();
        FlowTable {
            buckets: HugePageSlice::zeroed(bucket_count).expect("memory for the flow table"),
            bucket_mask: bucket_count - 1,
            len: 0,
            timeouts,
            guard: NewFlowGuard::new(timeouts.new_flows_per_sec),
            key: IndexKey::process(),
            stats: FlowStats::default(),
        }
    }

    /// The bucket and the lookup tag of a flow hash.
    #[inline]
    fn place(&self, hash: u64) -> (usize, u32) {
        let index = self.key.index(hash);
        ((index as usize) & self.bucket_mask, tag_of(index))
    }

    /// The idle life of way `way` of bucket `index`, by protocol and state.
    #[inline]
    fn idle_limit(&self, index: usize, way: usize) -> u64 {
        let bucket = &self.buckets[index];
        let entry = &bucket.entries[way];
        let idle = match entry.key.proto {
            protocol::TCP => self.timeouts.tcp_idle_ms,
            protocol::SCTP => self.timeouts.sctp_idle_ms,
            _ => self.timeouts.udp_idle_ms,
        };
        let mut limit = idle;
        if entry.closing {
            limit = limit.min(self.timeouts.tcp_closing_ms);
        }
        if bucket.is_syn_only(way) {
            limit = limit.min(self.timeouts.tcp_syn_ms);
        }
        limit
    }

    /// Marks way `way` of bucket `index` as seen at `now_ms`.
    #[inline]
    fn touch(&mut self, index: usize, way: usize, now_ms: u64) {
        let limit = self.idle_limit(index, way);
        self.buckets[index].deadlines[way] = now_ms.saturating_add(limit);
    }

    /// Starts loading the bucket of `hash` (its tags and deadlines) without waiting, a few
    /// packets ahead of its lookup (VPP's lb node, DPDK l3fwd).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(bucket) = self.buckets.get(self.place(hash).0) {
            prefetch(&bucket.tags);
            prefetch(&bucket.deadlines[WAYS - 1]);
        }
    }

    /// Second prefetch stage, once [`FlowTable::prefetch`] has brought the bucket's tags
    /// in: starts loading the entry a lookup will compare (the way whose tag matches) or an
    /// insert will write (the first free way), so neither waits on a second memory access.
    /// An entry may straddle two cache lines; both are requested.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        let (index, tag) = self.place(hash);
        if let Some(bucket) = self.buckets.get(index) {
            let way = (0..WAYS).find(|&way| bucket.tag_matches(way, tag));
            if let Some(way) = way.or_else(|| bucket.tags.iter().position(|&t| t == EMPTY_TAG)) {
                let entry = &bucket.entries[way];
                prefetch(entry);
                prefetch(&entry.value);
            }
        }
    }

    /// The way of a live entry for `key`; frees it and counts an expiration if it has expired.
    #[inline]
    fn find_live(&mut self, key: &FlowKey, hash: u64, now_ms: u64) -> Option<(usize, usize)> {
        let (index, tag) = self.place(hash);
        let way = self.buckets[index].find(tag, &PackedKey::new(key))?;
        if now_ms >= self.buckets[index].deadlines[way] {
            self.buckets[index].tags[way] = EMPTY_TAG;
            self.len -= 1;
            self.stats.expirations += 1;
            return None;
        }
        Some((index, way))
    }

    /// The value stored for a live flow, refreshing its last-seen time but not its state (for a
    /// look that is not the flow's own packet, such as an ICMP error quoting it); an expired
    /// flow is a miss (and is freed).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, now_ms: u64) -> Option<u32> {
        let (index, way) = self.find_live(key, hash, now_ms)?;
        self.touch(index, way, now_ms);
        Some(self.buckets[index].entries[way].value)
    }

    /// As [`FlowTable::lookup`], for a packet of the flow itself: a TCP packet without SYN
    /// makes a SYN-only flow established, a RST starts its closing life. A SYN never turns an
    /// established flow back into a SYN-only one, so spoofed SYNs cannot make it evictable.
    #[inline]
    pub fn lookup_packet(
        &mut self,
        key: &FlowKey,
        hash: u64,
        packet: FlowPacket,
        now_ms: u64,
    ) -> Option<u32> {
        let (index, way) = self.find_live(key, hash, now_ms)?;
        let bucket = &mut self.buckets[index];
        match packet {
            FlowPacket::Syn => {}
            FlowPacket::Rst => bucket.entries[way].closing = true,
            FlowPacket::Other => bucket.tags[way] |= ESTABLISHED_BIT,
        }
        self.touch(index, way, now_ms);
        Some(self.buckets[index].entries[way].value)
    }

    /// Records `key -> value` seen at `now_ms`, SYN-only if `syn_only`. Takes, in order: the
    /// flow's own way, a free way, an expired way, the bucket's oldest SYN-only flow, or (for an
    /// established newcomer only) its least recently seen flow; every eviction is counted. A
    /// new flow first needs a token of the rate guard.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        hash: u64,
        value: u32,
        syn_only: bool,
        now_ms: u64,
    ) -> Insert {
        let (index, lookup_tag) = self.place(hash);
        let tag = if syn_only {
            lookup_tag & !ESTABLISHED_BIT
        } else {
            lookup_tag
        };
        let packed = PackedKey::new(key);
        let fresh = FlowEntry {
            key: packed,
            closing: false,
            value,
        };
        let own = self.buckets[index].find(lookup_tag, &packed);
        if let Some(way) = own.filter(|&way| now_ms < self.buckets[index].deadlines[way]) {
            self.buckets[index].tags[way] = tag;
            self.buckets[index].entries[way] = fresh;
            self.touch(index, way, now_ms);
            return Insert::Replaced;
        }
        if !self.guard.admit(now_ms) {
            self.stats.refused_rate += 1;
            return Insert::RateLimited;
        }

        let bucket = &self.buckets[index];
        let free = || bucket.tags.iter().position(|&t| t == EMPTY_TAG);
        let expired = || (0..WAYS).find(|&way| now_ms >= bucket.deadlines[way]);
        let oldest_syn_only = || {
            (0..WAYS)
                .filter(|&way| bucket.is_syn_only(way))
                .min_by_key(|&way| bucket.deadlines[way])
        };
        // The flow's own way, if found above, has expired: it goes first, so a key is never
        // stored twice.
        let (way, outcome) = if let Some(way) = own.or_else(free) {
            if own.is_some() {
                self.stats.expirations += 1;
            } else {
                self.len += 1;
            }
            (way, Insert::New)
        } else if let Some(way) = expired() {
            self.stats.expirations += 1;
            (way, Insert::New)
        } else if let Some(way) = oldest_syn_only() {
            self.stats.syn_only_evictions += 1;
            (way, Insert::EvictedSynOnly)
        } else if syn_only {
            self.stats.refused_full += 1;
            return Insert::Full;
        } else {
            let oldest = (0..WAYS)
                .min_by_key(|&way| bucket.deadlines[way])
                .unwrap_or(0);
            self.stats.evictions += 1;
            (oldest, Insert::EvictedLru)
        };
        self.stats.inserts += 1;
        let bucket = &mut self.buckets[index];
        bucket.tags[way] = tag;
        bucket.entries[way] = fresh;
        self.touch(index, way, now_ms);
        outcome
    }

    /// Points a live flow at a re-selected backend (its old one left the table); returns whether
    /// the flow was tracked. Counted as a reselection.
    pub fn update(&mut self, key: &FlowKey, hash: u64, value: u32, now_ms: u64) -> bool {
        let Some((index, way)) = self.find_live(key, hash, now_ms) else {
            return false;
        };
        self.buckets[index].entries[way].value = value;
        self.touch(index, way, now_ms);
        self.stats.reselections += 1;
        true
    }

    /// Flows stored, counting expired ones not yet found and freed.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no flow is stored.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most flows the table holds (the requested capacity rounded up to whole buckets).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The table's counters since it was created.
    #[inline]
    pub fn stats(&self) -> FlowStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::hash::flow_hash;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TIMEOUTS: FlowTimeouts = FlowTimeouts {
        tcp_idle_ms: 300_000,
        udp_idle_ms: 30_000,
        sctp_idle_ms: 200_000,
        tcp_closing_ms: 10_000,
        tcp_syn_ms: 3_000,
        new_flows_per_sec: 1_000_000,
    };

    fn key_v4(client_port: u16, proto: u8) -> FlowKey {
        FlowKey {
            vip: IpAddr::V4(Ipv4Addr::new(198, 18, 100, 10)),
            client: IpAddr::V4(Ipv4Addr::new(198, 19, 0, 7)),
            vip_port: 80,
            client_port,
            proto,
        }
    }

    fn hash_of(key: &FlowKey) -> u64 {
        flow_hash(
            &key.client,
            &key.vip,
            key.client_port,
            key.vip_port,
            key.proto,
        )
    }

    #[test]
    fn entry_fits_64_bytes_including_overhead() {
        assert_eq!(std::mem::size_of::<FlowEntry>(), 44);
        assert!(std::mem::size_of::<Bucket>() / WAYS <= 64);
        assert_eq!(std::mem::size_of::<Bucket>(), 448);
    }

    #[test]
    fn insert_then_lookup() {
        let mut table = FlowTable::new(1024, TIMEOUTS);
        let key = key_v4(40_000, 6);
        let hash = hash_of(&key);
        assert_eq!(table.lookup(&key, hash, 0), None);
        assert_eq!(table.insert(&key, hash, 7, false, 0), Insert::New);
        assert_eq!(table.lookup(&key, hash, 1), Some(7));
        assert_eq!(table.insert(&key, hash, 9, false, 2), Insert::Replaced);
        assert_eq!(table.lookup(&key, hash, 3), Some(9));
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.lookup(&key_v4(40_001, 6), hash_of(&key_v4(40_001, 6)), 3),
            None
        );
        // Same hash, different key: the exact compare refuses it.
        assert_eq!(table.lookup(&key_v4(40_001, 6), hash, 3), None);
        assert_eq!(table.stats().inserts, 1);
    }

    #[test]
    fn expiry_follows_protocol() {
        let mut table = FlowTable::new(1024, TIMEOUTS);
        for (proto, idle) in [(6u8, 300_000u64), (17, 30_000), (132, 200_000), (1, 30_000)] {
            let key = key_v4(1000 + u16::from(proto), proto);
            let hash = hash_of(&key);
            table.insert(&key, hash, 1, false, 0);
            assert_eq!(table.lookup(&key, hash, idle - 1), Some(1), "proto {proto}");
            // The lookup refreshed it: alive until idle after that.
            assert_eq!(
                table.lookup(&key, hash, 2 * idle - 2),
                Some(1),
                "proto {proto}"
            );
            assert_eq!(
                table.lookup(&key, hash, 3 * idle - 2),
                None,
                "proto {proto}"
            );
        }
        assert_eq!(table.stats().expirations, 4);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn rst_shortens_life() {
        let mut table = FlowTable::new(1024, TIMEOUTS);
        let key = key_v4(5555, 6);
        let hash = hash_of(&key);
        table.insert(&key, hash, 3, false, 0);
        assert_eq!(
            table.lookup_packet(&key, hash, FlowPacket::Rst, 1_000),
            Some(3)
        );
        assert_eq!(table.lookup(&key, hash, 1_000 + 9_999), Some(3));
        assert_eq!(table.lookup(&key, hash, 1_000 + 9_999 + 10_000), None);
        // A RST of an untracked flow finds nothing.
        assert_eq!(
            table.lookup_packet(&key, hash, FlowPacket::Rst, 30_000),
            None
        );
        // A new connection on the same tuple is a fresh, non-closing flow.
        assert_eq!(table.insert(&key, hash, 4, false, 40_000), Insert::New);
        assert_eq!(table.lookup(&key, hash, 40_000 + 20_000), Some(4));
    }

    #[test]
    fn half_closed_flow_keeps_its_established_life() {
        // A FIN is an ordinary packet here: the backend may send for long after it, and the
        // table never sees the backend's FIN (docs/architecture.md §3, `tcp_closing`).
        let mut table = FlowTable::new(1024, TIMEOUTS);
        let key = key_v4(5556, 6);
        let hash = hash_of(&key);
        table.insert(&key, hash, 3, false, 0);
        assert_eq!(FlowPacket::of(6, 0x11), FlowPacket::Other, "FIN+ACK");
        assert_eq!(
            table.lookup_packet(&key, hash, FlowPacket::of(6, 0x11), 1_000),
            Some(3)
        );
        assert_eq!(table.lookup(&key, hash, 1_000 + 11_000), Some(3));
        assert_eq!(table.lookup(&key, hash, 12_000 + 299_999), Some(3));
    }

    #[test]
    fn packet_kinds_follow_tcp_flags() {
        assert_eq!(FlowPacket::of(6, 0x02), FlowPacket::Syn);
        assert_eq!(FlowPacket::of(6, 0x12), FlowPacket::Syn, "SYN+ACK");
        assert_eq!(FlowPacket::of(6, 0x04), FlowPacket::Rst);
        assert_eq!(FlowPacket::of(6, 0x06), FlowPacket::Rst, "SYN+RST");
        assert_eq!(FlowPacket::of(6, 0x10), FlowPacket::Other);
        assert_eq!(
            FlowPacket::of(17, 0x02),
            FlowPacket::Other,
            "UDP has no flags"
        );
    }

    #[test]
    fn syn_only_flow_expires_on_the_short_timer_until_established() {
        let mut table = FlowTable::new(1024, TIMEOUTS);
        let lone = key_v4(7000, 6);
        let handshake = key_v4(7001, 6);
        for key in [&lone, &handshake] {
            assert_eq!(table.insert(key, hash_of(key), 1, true, 0), Insert::New);
        }
        // A retransmitted SYN keeps it SYN-only, on the short timer from the retransmission.
        assert_eq!(
            table.lookup_packet(&lone, hash_of(&lone), FlowPacket::Syn, 2_000),
            Some(1)
        );
        // The handshake's ACK establishes the other.
        assert_eq!(
            table.lookup_packet(&handshake, hash_of(&handshake), FlowPacket::Other, 2_000),
            Some(1)
        );
        // A later SYN (spoofed, or a retransmission) does not make it SYN-only again.
        assert_eq!(
            table.lookup_packet(&handshake, hash_of(&handshake), FlowPacket::Syn, 2_500),
            Some(1)
        );
        assert_eq!(table.lookup(&lone, hash_of(&lone), 2_000 + 2_999), Some(1));
        assert_eq!(table.lookup(&lone, hash_of(&lone), 4_999 + 3_000), None);
        assert_eq!(
            table.lookup(&handshake, hash_of(&handshake), 2_500 + 299_999),
            Some(1)
        );
        assert_eq!(table.stats().expirations, 1);
    }

    #[test]
    fn full_bucket_evicts_syn_only_flows_first() {
        let mut table = FlowTable::new(WAYS, TIMEOUTS);
        let keys: Vec<FlowKey> = (0..WAYS as u16 + 2).map(|p| key_v4(p, 6)).collect();
        // Seven established flows, all older than the one SYN-only flow.
        for (now, key) in keys.iter().take(WAYS - 1).enumerate() {
            table.insert(key, hash_of(key), 0, false, now as u64);
        }
        let syn = &keys[WAYS - 1];
        table.insert(syn, hash_of(syn), 0, true, 100);
        let newcomer = &keys[WAYS];
        assert_eq!(
            table.insert(newcomer, hash_of(newcomer), 1, false, 200),
            Insert::EvictedSynOnly
        );
        assert_eq!(table.lookup(syn, hash_of(syn), 201), None);
        for key in &keys[..WAYS - 1] {
            assert_eq!(table.lookup(key, hash_of(key), 201), Some(0));
        }
        let stats = table.stats();
        assert_eq!((stats.syn_only_evictions, stats.evictions), (1, 0));
    }

    #[test]
    fn syn_only_newcomer_never_evicts_an_established_flow() {
        let mut table = FlowTable::new(WAYS, TIMEOUTS);
        for port in 0..WAYS as u16 {
            let key = key_v4(port, 6);
            table.insert(&key, hash_of(&key), 0, false, 0);
        }
        let syn = key_v4(100, 6);
        assert_eq!(table.insert(&syn, hash_of(&syn), 1, true, 10), Insert::Full);
        assert_eq!(table.lookup(&syn, hash_of(&syn), 11), None);
        assert_eq!(table.len(), WAYS);
        let stats = table.stats();
        assert_eq!((stats.refused_full, stats.evictions), (1, 0));
        // An established newcomer (a flow picked up mid-connection) still takes the LRU way.
        assert_eq!(
            table.insert(&syn, hash_of(&syn), 1, false, 12),
            Insert::EvictedLru
        );
    }

    #[test]
    fn rate_guard_refuses_new_flows_beyond_the_rate_and_refills() {
        // 10 flows a second: a burst of one flow (a tenth of a second's worth), then one per
        // 100 ms.
        let mut table = FlowTable::new(
            1024,
            FlowTimeouts {
                new_flows_per_sec: 10,
                ..TIMEOUTS
            },
        );
        let key = |port| key_v4(port, 6);
        assert_eq!(
            table.insert(&key(1), hash_of(&key(1)), 1, true, 0),
            Insert::New
        );
        assert_eq!(
            table.insert(&key(2), hash_of(&key(2)), 1, true, 50),
            Insert::RateLimited
        );
        // A tracked flow's own packets need no token.
        assert_eq!(
            table.insert(&key(1), hash_of(&key(1)), 2, true, 60),
            Insert::Replaced
        );
        assert_eq!(
            table.insert(&key(2), hash_of(&key(2)), 1, true, 100),
            Insert::New
        );
        // A long pause refills no more than the burst.
        assert_eq!(
            table.insert(&key(3), hash_of(&key(3)), 1, true, 10_000),
            Insert::New
        );
        assert_eq!(
            table.insert(&key(4), hash_of(&key(4)), 1, true, 10_000),
            Insert::RateLimited
        );
        assert_eq!(table.stats().refused_rate, 2);
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn syn_flood_bigger_than_the_table_keeps_every_established_flow() {
        let mut table = FlowTable::new(1 << 12, TIMEOUTS);
        // Established flows offered up to the table's size; those a full bucket refused stay
        // out, so the check holds wherever the process key puts them.
        for port in 0..table.capacity() as u16 {
            let key = key_v4(port, 6);
            table.insert(&key, hash_of(&key), u32::from(port), false, 0);
        }
        let established: Vec<FlowKey> = (0..table.capacity() as u16)
            .map(|port| key_v4(port, 6))
            .filter(|key| table.lookup(key, hash_of(key), 0).is_some())
            .collect();
        assert!(established.len() > table.capacity() / 2);
        let evicted_while_filling = table.stats().evictions;
        // SYNs from random sources, four times the table, within the established idle time.
        let mut state = 0x5eed_u64;
        for i in 0..4 * table.capacity() as u64 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let key = FlowKey {
                client: IpAddr::V4(Ipv4Addr::from((state >> 32) as u32)),
                client_port: (state >> 16) as u16,
                ..key_v4(0, 6)
            };
            let hash = hash_of(&key);
            let now = 1 + i / 64;
            if table
                .lookup_packet(&key, hash, FlowPacket::Syn, now)
                .is_none()
            {
                table.insert(&key, hash, u32::MAX, true, now);
            }
        }
        for key in &established {
            assert_eq!(
                table.lookup(key, hash_of(key), 1_000),
                Some(u32::from(key.client_port)),
                "established flow {key:?} lost to the flood"
            );
        }
        assert_eq!(table.stats().evictions, evicted_while_filling);
        assert!(table.stats().refused_full + table.stats().syn_only_evictions > 0);
    }

    #[test]
    fn update_reselects_live_flows_only() {
        let mut table = FlowTable::new(64, TIMEOUTS);
        let key = key_v4(6000, 17);
        let hash = hash_of(&key);
        assert!(!table.update(&key, hash, 2, 0));
        table.insert(&key, hash, 1, false, 0);
        assert!(table.update(&key, hash, 2, 10));
        assert_eq!(table.lookup(&key, hash, 11), Some(2));
        assert!(!table.update(&key, hash, 3, 11 + 30_000));
        assert_eq!(table.stats().reselections, 1);
    }

    #[test]
    fn full_bucket_evicts_least_recently_seen() {
        // One bucket: every hash lands in it.
        let mut table = FlowTable::new(WAYS, TIMEOUTS);
        assert_eq!(table.capacity(), WAYS);
        let keys: Vec<FlowKey> = (0..WAYS as u16 + 1).map(|p| key_v4(p, 6)).collect();
        for (now, key) in keys.iter().take(WAYS).enumerate() {
            assert_eq!(
                table.insert(key, hash_of(key), now as u32, false, now as u64),
                Insert::New
            );
        }
        // Touch flow 0 so flow 1 becomes the oldest.
        assert_eq!(table.lookup(&keys[0], hash_of(&keys[0]), 100), Some(0));
        let newcomer = &keys[WAYS];
        assert_eq!(
            table.insert(newcomer, hash_of(newcomer), 99, false, 101),
            Insert::EvictedLru
        );
        assert_eq!(table.stats().evictions, 1);
        assert_eq!(table.len(), WAYS);
        assert_eq!(table.lookup(&keys[1], hash_of(&keys[1]), 102), None);
        assert_eq!(table.lookup(&keys[0], hash_of(&keys[0]), 102), Some(0));
        assert_eq!(table.lookup(newcomer, hash_of(newcomer), 102), Some(99));
    }

    #[test]
    fn full_bucket_reuses_expired_way_before_evicting() {
        let mut table = FlowTable::new(WAYS, TIMEOUTS);
        let udp = key_v4(1, 17);
        table.insert(&udp, hash_of(&udp), 0, false, 0);
        for port in 2..=WAYS as u16 {
            let key = key_v4(port, 6);
            table.insert(&key, hash_of(&key), 0, false, 20_000);
        }
        let newcomer = key_v4(100, 6);
        assert_eq!(
            table.insert(&newcomer, hash_of(&newcomer), 5, false, 30_000),
            Insert::New
        );
        assert_eq!(table.stats().evictions, 0);
        assert_eq!(table.stats().expirations, 1);
        assert_eq!(table.len(), WAYS);
    }

    #[test]
    fn ipv6_keys_are_distinct_from_mapped_ipv4() {
        let mut table = FlowTable::new(1024, TIMEOUTS);
        let v6 = FlowKey {
            vip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10)),
            client: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 7)),
            vip_port: 443,
            client_port: 50_000,
            proto: 6,
        };
        table.insert(&v6, hash_of(&v6), 11, false, 0);
        assert_eq!(table.lookup(&v6, hash_of(&v6), 1), Some(11));

        let v4 = key_v4(50_000, 6);
        let mapped = FlowKey {
            vip: IpAddr::V6(Ipv4Addr::new(198, 18, 100, 10).to_ipv6_mapped()),
            client: IpAddr::V6(Ipv4Addr::new(198, 19, 0, 7).to_ipv6_mapped()),
            ..v4
        };
        // Same hash on purpose: only the family bits tell them apart.
        table.insert(&v4, 42, 1, false, 0);
        assert_eq!(table.lookup(&mapped, 42, 1), None);
        assert_eq!(table.lookup(&v4, 42, 1), Some(1));
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let mut table = FlowTable::new(100, TIMEOUTS);
        assert_eq!(table.capacity(), 128);
        for port in 0..2_000u16 {
            let key = key_v4(port, 17);
            table.insert(&key, hash_of(&key), u32::from(port), false, 0);
            assert!(table.len() <= table.capacity());
        }
        assert_eq!(table.len(), table.capacity());
        let stats = table.stats();
        assert_eq!(stats.inserts, 2_000);
        assert_eq!(stats.evictions, 2_000 - 128);
    }

    #[test]
    fn prefetches_change_nothing() {
        let mut table = FlowTable::new(64, TIMEOUTS);
        let key = key_v4(7, 6);
        let hash = hash_of(&key);
        table.insert(&key, hash, 5, false, 0);
        for probe in [hash, !hash, 0, u64::MAX] {
            table.prefetch(probe);
            table.prefetch_entry(probe);
        }
        assert_eq!(table.len(), 1);
        assert_eq!(table.stats().inserts, 1);
        assert_eq!(table.lookup(&key, hash, 1), Some(5));
    }

    #[test]
    fn zero_capacity_still_holds_one_bucket() {
        let table = FlowTable::new(0, TIMEOUTS);
        assert_eq!(table.capacity(), WAYS);
        assert!(table.is_empty());
    }
}
