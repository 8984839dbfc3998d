//! The per-worker TCP/UDP flow table: 5-tuple -> an opaque backend id, with idle timeouts per
//! protocol, a short life after TCP FIN/RST, and least-recently-used eviction when a bucket is full.
//!
//! Set-associative, as VPP's `lb` and Katran's per-CPU LRU maps are: a power-of-two number of
//! 8-way buckets, allocated once in [`FlowTable::new`] on transparent huge pages (by the pinned
//! worker, so the memory is NUMA-local) and never again. A bucket starts with its eight 32-bit
//! hash tags in one cache line; a lookup scans the tags and compares the full key only on a tag
//! match. LRU is per bucket (the oldest of the eight goes), an approximation of a global LRU,
//! and every eviction is counted.
//! Sans-IO: `now_ms` is passed in (read once per batch by the caller).

use std::net::IpAddr;

use crate::config::DataplaneConfig;
use crate::sys::{prefetch, HugePageSlice};
use crate::wire::headers::protocol;

/// Ways per bucket: eight tags fill half a cache line, and eight candidates make a full bucket
/// (an eviction of a live flow) rare until the table is nearly full.
const WAYS: usize = 8;

/// The tag of an empty way; real tags always have their low bit set.
const EMPTY_TAG: u32 = 0;

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

/// How long a flow lives without packets, per protocol, in the caller's `now_ms` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// Idle life of a TCP flow.
    pub tcp_idle_ms: u64,
    /// Idle life of a UDP flow, and of any protocol other than TCP and SCTP.
    pub udp_idle_ms: u64,
    /// Idle life of an SCTP flow.
    pub sctp_idle_ms: u64,
    /// Idle life after a TCP FIN or RST, so closed connections free their entry early.
    pub tcp_closing_ms: u64,
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
        }
    }
}

/// What [`FlowTable::insert`] did, so the caller can count new flows and evictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The flow took a free (or expired) way.
    New,
    /// The flow was already tracked; its value and life were reset.
    Replaced,
    /// The bucket was full of live flows; the least recently seen one was evicted for it.
    EvictedLru,
}

/// Counters of a flow table, read by the worker's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Flows stored by `insert` (new or evicting; replacements are not counted).
    pub inserts: u64,
    /// Live flows evicted because their bucket was full.
    pub evictions: u64,
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
    /// Set by a TCP FIN or RST: the entry then lives `tcp_closing_ms` after its last packet.
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
    /// The way holding `key`, if any (live or expired).
    #[inline]
    fn find(&self, tag: u32, key: &PackedKey) -> Option<usize> {
        (0..WAYS).find(|&way| self.tags[way] == tag && self.entries[way].key == *key)
    }
}

/// A fixed-capacity, per-worker flow table; see the module documentation for its design.
#[derive(Debug)]
pub struct FlowTable {
    buckets: HugePageSlice<Bucket>,
    bucket_mask: usize,
    len: usize,
    timeouts: FlowTimeouts,
    stats: FlowStats,
}

/// The tag stored for a hash: its high half (the bucket index uses the low bits), never 0.
#[inline]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
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
            stats: FlowStats::default(),
        }
    }

    #[inline]
    fn bucket_index(&self, hash: u64) -> usize {
        (hash as usize) & self.bucket_mask
    }

    /// The idle life of an entry, by protocol and closing state.
    #[inline]
    fn idle_limit(&self, entry: &FlowEntry) -> u64 {
        let idle = match entry.key.proto {
            protocol::TCP => self.timeouts.tcp_idle_ms,
            protocol::SCTP => self.timeouts.sctp_idle_ms,
            _ => self.timeouts.udp_idle_ms,
        };
        if entry.closing {
            idle.min(self.timeouts.tcp_closing_ms)
        } else {
            idle
        }
    }

    /// Marks way `way` of bucket `index` as seen at `now_ms`.
    #[inline]
    fn touch(&mut self, index: usize, way: usize, now_ms: u64) {
        let limit = self.idle_limit(&self.buckets[index].entries[way]);
        self.buckets[index].deadlines[way] = now_ms.saturating_add(limit);
    }

    /// Starts loading the bucket of `hash` (its tags and deadlines) without waiting, a few
    /// packets ahead of its lookup (VPP's lb node, DPDK l3fwd).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(bucket) = self.buckets.get(self.bucket_index(hash)) {
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
        if let Some(bucket) = self.buckets.get(self.bucket_index(hash)) {
            let tag = tag_of(hash);
            let way = bucket.tags.iter().position(|&t| t == tag);
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
        let index = self.bucket_index(hash);
        let way = self.buckets[index].find(tag_of(hash), &PackedKey::new(key))?;
        if now_ms >= self.buckets[index].deadlines[way] {
            self.buckets[index].tags[way] = EMPTY_TAG;
            self.len -= 1;
            self.stats.expirations += 1;
            return None;
        }
        Some((index, way))
    }

    /// The value stored for a live flow, refreshing its last-seen time; an expired flow is a miss
    /// (and is freed).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, now_ms: u64) -> Option<u32> {
        let (index, way) = self.find_live(key, hash, now_ms)?;
        self.touch(index, way, now_ms);
        Some(self.buckets[index].entries[way].value)
    }

    /// Records `key -> value` seen at `now_ms`. Takes, in order: the flow's own way, a free way,
    /// an expired way, or the bucket's least recently seen flow (evicted and counted).
    pub fn insert(&mut self, key: &FlowKey, hash: u64, value: u32, now_ms: u64) -> Insert {
        let index = self.bucket_index(hash);
        let tag = tag_of(hash);
        let packed = PackedKey::new(key);
        let fresh = FlowEntry {
            key: packed,
            closing: false,
            value,
        };
        if let Some(way) = self.buckets[index].find(tag, &packed) {
            let expired = now_ms >= self.buckets[index].deadlines[way];
            self.buckets[index].entries[way] = fresh;
            self.touch(index, way, now_ms);
            if !expired {
                return Insert::Replaced;
            }
            self.stats.expirations += 1;
            self.stats.inserts += 1;
            return Insert::New;
        }

        let bucket = &self.buckets[index];
        let free = bucket.tags.iter().position(|&t| t == EMPTY_TAG);
        let expired = || (0..WAYS).find(|&way| now_ms >= bucket.deadlines[way]);
        let (way, outcome) = if let Some(way) = free {
            self.len += 1;
            (way, Insert::New)
        } else if let Some(way) = expired() {
            self.stats.expirations += 1;
            (way, Insert::New)
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

    /// On a TCP FIN or RST: the flow now lives `tcp_closing_ms` after its last packet (if that
    /// is shorter than its idle life), so late segments still reach the backend but the entry
    /// frees early. Returns whether the flow was tracked.
    pub fn close(&mut self, key: &FlowKey, hash: u64, now_ms: u64) -> bool {
        let Some((index, way)) = self.find_live(key, hash, now_ms) else {
            return false;
        };
        self.buckets[index].entries[way].closing = true;
        self.touch(index, way, now_ms);
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
        assert_eq!(table.insert(&key, hash, 7, 0), Insert::New);
        assert_eq!(table.lookup(&key, hash, 1), Some(7));
        assert_eq!(table.insert(&key, hash, 9, 2), Insert::Replaced);
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
            table.insert(&key, hash, 1, 0);
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
    fn close_shortens_life() {
        let mut table = FlowTable::new(1024, TIMEOUTS);
        let key = key_v4(5555, 6);
        let hash = hash_of(&key);
        table.insert(&key, hash, 3, 0);
        assert!(table.close(&key, hash, 1_000));
        assert_eq!(table.lookup(&key, hash, 1_000 + 9_999), Some(3));
        assert_eq!(table.lookup(&key, hash, 1_000 + 9_999 + 10_000), None);
        // Closing an untracked flow does nothing.
        assert!(!table.close(&key, hash, 30_000));
        // A new connection on the same tuple is a fresh, non-closing flow.
        assert_eq!(table.insert(&key, hash, 4, 40_000), Insert::New);
        assert_eq!(table.lookup(&key, hash, 40_000 + 20_000), Some(4));
    }

    #[test]
    fn update_reselects_live_flows_only() {
        let mut table = FlowTable::new(64, TIMEOUTS);
        let key = key_v4(6000, 17);
        let hash = hash_of(&key);
        assert!(!table.update(&key, hash, 2, 0));
        table.insert(&key, hash, 1, 0);
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
                table.insert(key, hash_of(key), now as u32, now as u64),
                Insert::New
            );
        }
        // Touch flow 0 so flow 1 becomes the oldest.
        assert_eq!(table.lookup(&keys[0], hash_of(&keys[0]), 100), Some(0));
        let newcomer = &keys[WAYS];
        assert_eq!(
            table.insert(newcomer, hash_of(newcomer), 99, 101),
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
        table.insert(&udp, hash_of(&udp), 0, 0);
        for port in 2..=WAYS as u16 {
            let key = key_v4(port, 6);
            table.insert(&key, hash_of(&key), 0, 20_000);
        }
        let newcomer = key_v4(100, 6);
        assert_eq!(
            table.insert(&newcomer, hash_of(&newcomer), 5, 30_000),
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
        table.insert(&v6, hash_of(&v6), 11, 0);
        assert_eq!(table.lookup(&v6, hash_of(&v6), 1), Some(11));

        let v4 = key_v4(50_000, 6);
        let mapped = FlowKey {
            vip: IpAddr::V6(Ipv4Addr::new(198, 18, 100, 10).to_ipv6_mapped()),
            client: IpAddr::V6(Ipv4Addr::new(198, 19, 0, 7).to_ipv6_mapped()),
            ..v4
        };
        // Same hash on purpose: only the family bits tell them apart.
        table.insert(&v4, 42, 1, 0);
        assert_eq!(table.lookup(&mapped, 42, 1), None);
        assert_eq!(table.lookup(&v4, 42, 1), Some(1));
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let mut table = FlowTable::new(100, TIMEOUTS);
        assert_eq!(table.capacity(), 128);
        for port in 0..2_000u16 {
            let key = key_v4(port, 17);
            table.insert(&key, hash_of(&key), u32::from(port), 0);
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
        table.insert(&key, hash, 5, 0);
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
