//! The hashes the balancer agrees on, a backend's Maglev permutation hashes and the per-packet
//! flow hash, and the per-process key that places entries in the balancer's own tables.
//!
//! The shared hashes are xxh3 with fixed seeds, so every xlb process on every machine computes
//! the same values and several instances behind one ECMP router pick the same backend for a
//! flow. Anyone can compute them too, so they never choose a table bucket directly: the flow and
//! NAT tables index by [`IndexKey::index`], a mix of the flow hash with a key drawn once per
//! process, so an attacker cannot aim a flood of tuples at one bucket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the hash that gives a backend's Maglev offset.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
/// Seed of the hash that gives a backend's Maglev skip.
const SKIP_SEED: u64 = 0x6d61_676c_6576_736b; // "maglevsk"
/// Seed of the per-packet flow hash.
const FLOW_SEED: u64 = 0x786c_625f_666c_6f77; // "xlb_flow"

/// The two independent hashes of a backend's name from which Maglev derives its permutation
/// (`offset = h1 % M`, `skip = h2 % (M - 1) + 1`).
///
/// Keyed by name, not by position, so a backend keeps its permutation when others come and go.
pub fn backend_hashes(name: &str) -> (u64, u64) {
    (
        xxh3_64_with_seed(name.as_bytes(), OFFSET_SEED),
        xxh3_64_with_seed(name.as_bytes(), SKIP_SEED),
    )
}

/// The hash of a packet's 5-tuple, computed once per packet and used for both the flow-table
/// bucket (low bits) and the Maglev slot (high bits).
///
/// The tuple is packed into whole 64-bit words (16 bytes for IPv4, 40 for IPv6) before xxh3
/// reads it back, so every read is served by a store of the same width (byte-wise packing made
/// the CPU stall on store forwarding and cost 3x). No allocation. IPv4 and IPv6 tuples differ in
/// length, so an IPv4 flow never hashes like its IPv4-mapped IPv6 twin.
#[inline]
pub fn flow_hash(src: &IpAddr, dst: &IpAddr, src_port: u16, dst_port: u16, proto: u8) -> u64 {
    let ports_and_proto = u64::from(src_port) | u64::from(dst_port) << 16 | u64::from(proto) << 32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let addresses = u64::from(u32::from(*s)) | u64::from(u32::from(*d)) << 32;
            let packed = u128::from(addresses) | u128::from(ports_and_proto) << 64;
            xxh3_64_with_seed(&packed.to_le_bytes(), FLOW_SEED)
        }
        _ => {
            let (s, d) = (ipv6_bits(src), ipv6_bits(dst));
            let words = [
                s as u64,
                (s >> 64) as u64,
                d as u64,
                (d >> 64) as u64,
                ports_and_proto,
            ];
            let mut packed = [0u8; 40];
            for (chunk, word) in packed.chunks_exact_mut(8).zip(words) {
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            xxh3_64_with_seed(&packed, FLOW_SEED)
        }
    }
}

/// A secret of this process that turns a public hash into a table index (see the module
/// documentation). Copied into each table when it is built, so the per-packet path reads no
/// global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexKey([u64; 2]);

impl IndexKey {
    /// This process's key, drawn from the OS on first use: std's `RandomState` seeds its
    /// SipHash keys from `getrandom(2)`, which saves a dependency for two words.
    pub fn process() -> IndexKey {
        static KEY: OnceLock<IndexKey> = OnceLock::new();
        *KEY.get_or_init(|| {
            let random = RandomState::new();
            IndexKey([random.hash_one(0u64), random.hash_one(1u64)])
        })
    }

    /// The table index of a public hash: both halves of the hash, each masked by a key word,
    /// multiplied and the 128-bit product folded (wyhash's mix). Without the key, which tuples
    /// share a bucket cannot be told; with it, the same hash always gives the same index.
    #[inline]
    pub fn index(self, hash: u64) -> u64 {
        let a = hash ^ self.0[0];
        let b = hash.rotate_left(32) ^ self.0[1];
        let product = u128::from(a) * u128::from(b);
        (product as u64) ^ ((product >> 64) as u64)
    }
}

/// An address as a 128-bit number; IPv4 appears only when mixed with IPv6, which real packets
/// never are.
#[inline]
fn ipv6_bits(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn backend_hashes_are_pinned() {
        // Pinned values: if these change, every deployed xlb would disagree with the new build.
        assert_eq!(
            backend_hashes("node-a"),
            (5_231_891_414_158_319_368, 651_365_780_881_372_723)
        );
    }

    #[test]
    fn flow_hash_is_pinned() {
        // Pinned values: instances behind one router must hash a flow alike, across builds too.
        let client = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 7));
        let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 100, 10));
        assert_eq!(
            flow_hash(&client, &vip, 40_000, 80, 6),
            4_871_469_890_698_331_080
        );
        let client = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 7));
        let vip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10));
        assert_eq!(
            flow_hash(&client, &vip, 40_000, 443, 17),
            17_496_137_899_740_304_081
        );
    }

    #[test]
    fn flow_hash_depends_on_every_field() {
        let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let base = flow_hash(&a, &b, 1000, 80, 6);
        assert_ne!(base, flow_hash(&b, &a, 1000, 80, 6));
        assert_ne!(base, flow_hash(&a, &b, 1001, 80, 6));
        assert_ne!(base, flow_hash(&a, &b, 1000, 81, 6));
        assert_ne!(base, flow_hash(&a, &b, 1000, 80, 17));
        assert_eq!(base, flow_hash(&a, &b, 1000, 80, 6));
    }

    #[test]
    fn the_index_key_is_drawn_once_and_mixes_every_bit() {
        let key = IndexKey::process();
        assert_eq!(key, IndexKey::process(), "one key per process");
        assert_ne!(key.0, [0, 0]);
        assert_eq!(key.index(42), key.index(42));
        // Hashes one bit apart land far apart: the low bits pick buckets, the high ones tags.
        // A fixed key keeps the check deterministic.
        let key = IndexKey([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]);
        let spread: u32 = (0..64)
            .map(|bit| (key.index(7) ^ key.index(7 ^ (1 << bit))).count_ones())
            .min()
            .unwrap_or(0);
        assert!(spread > 8, "a one-bit change moved only {spread} bits");
    }

    #[test]
    fn flow_hash_separates_ipv4_from_mapped_ipv6() {
        let a4 = Ipv4Addr::new(198, 18, 0, 1);
        let b4 = Ipv4Addr::new(198, 18, 0, 2);
        let v4 = flow_hash(&IpAddr::V4(a4), &IpAddr::V4(b4), 1, 2, 17);
        let mapped = flow_hash(
            &IpAddr::V6(a4.to_ipv6_mapped()),
            &IpAddr::V6(b4.to_ipv6_mapped()),
            1,
            2,
            17,
        );
        assert_ne!(v4, mapped);
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_ne!(flow_hash(&v6, &v6, 1, 2, 17), flow_hash(&v6, &v6, 2, 1, 17));
    }
}
