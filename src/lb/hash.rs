//! The hashes the balancer agrees on: a backend's Maglev permutation hashes and the per-packet
//! flow hash.
//!
//! Both are xxh3 with fixed seeds, so every xlb process on every machine computes the same values
//! and several instances behind one ECMP router pick the same backend for a flow.

use std::net::IpAddr;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the hash that gives a backend's Maglev offset.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
/// Seed of the hash that gives a backend's Maglev skip.
const SKIP_SEED: u64 = 0x6d61_676c_6576_736b; // "maglevsk"
/// Seed of the per-packet flow hash.
const FLOW_SEED: u64 = 0x786c_625f_666c_6f77; // "xlb_flow"

/// Longest flow-hash input: two IPv6 addresses, two ports, the protocol and the family byte.
const FLOW_INPUT_MAX: usize = 16 + 16 + 2 + 2 + 1;

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
/// Writes the tuple into a stack buffer and hashes it: no allocation. IPv4 and IPv6 tuples have
/// different lengths, so an IPv4 flow never hashes like its IPv4-mapped IPv6 twin by construction.
#[inline]
pub fn flow_hash(src: &IpAddr, dst: &IpAddr, src_port: u16, dst_port: u16, proto: u8) -> u64 {
    let mut input = [0u8; FLOW_INPUT_MAX];
    let len = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            input[0..4].copy_from_slice(&s.octets());
            input[4..8].copy_from_slice(&d.octets());
            input[8..10].copy_from_slice(&src_port.to_be_bytes());
            input[10..12].copy_from_slice(&dst_port.to_be_bytes());
            input[12] = proto;
            13
        }
        _ => {
            input[0..16].copy_from_slice(&ipv6_octets(src));
            input[16..32].copy_from_slice(&ipv6_octets(dst));
            input[32..34].copy_from_slice(&src_port.to_be_bytes());
            input[34..36].copy_from_slice(&dst_port.to_be_bytes());
            input[36] = proto;
            37
        }
    };
    xxh3_64_with_seed(&input[..len], FLOW_SEED)
}

/// An address as 16 bytes; IPv4 appears only when mixed with IPv6, which real packets never are.
#[inline]
fn ipv6_octets(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
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
            15_734_501_548_860_274_008
        );
        let client = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 7));
        let vip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10));
        assert_eq!(
            flow_hash(&client, &vip, 40_000, 443, 17),
            12_189_965_873_147_948_655
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
