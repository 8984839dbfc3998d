//! Internet checksums (RFC 1071): full sums for fresh headers and verification, and
//! RFC 1624 incremental updates for NAT and reply rewrites, so a rewrite touches only the
//! changed words instead of re-reading the payload.

use core::net::IpAddr;

use smoltcp::wire::checksum as smol;

/// Fold a wide one's-complement accumulator to 16 bits with end-around carry.
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The stored checksum `sum` after one 16-bit word of the covered data changes from `old`
/// to `new`.
///
/// For UDP, a stored 0 means "no checksum" and must not be updated, and a result of 0 is
/// sent as 0xffff (RFC 768).
#[inline]
pub fn update_u16(sum: u16, old: u16, new: u16) -> u16 {
    //# RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m')
    !fold(u64::from(!sum) + u64::from(!old) + u64::from(new))
}

/// The stored checksum `sum` after the bytes `old` of the covered data become `new`.
///
/// `old` and `new` are the same field before and after (an address, a port pair) and start
/// at an even offset of the covered data; an odd last byte counts as the high byte of a
/// word. Bytes past the shorter of the two are ignored.
#[inline]
pub fn update_bytes(sum: u16, old: &[u8], new: &[u8]) -> u16 {
    //# RFC 1624 §3, eqn. 3, applied word by word: HC' = ~(~HC + ~m + m')
    let mut acc = u64::from(!sum);
    for (old_word, new_word) in old.chunks(2).zip(new.chunks(2)) {
        acc += u64::from(!word(old_word)) + u64::from(word(new_word));
    }
    !fold(acc)
}

/// A big-endian word from up to two bytes, a missing low byte being zero.
#[inline]
fn word(bytes: &[u8]) -> u16 {
    match *bytes {
        [high, low, ..] => u16::from_be_bytes([high, low]),
        [high] => u16::from_be_bytes([high, 0]),
        [] => 0,
    }
}

/// One's-complement sum of `data` (RFC 1071), not complemented: a building block for
/// checksums that cover several pieces.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    smol::data(data)
}

/// Offset of the checksum inside an IPv4 header.
const IPV4_CHECKSUM_AT: usize = 10;

/// The header checksum to store in the IPv4 header `header` (all of it, options included).
/// The current checksum field is skipped, so it need not be zeroed first.
#[inline]
pub fn ipv4_header(header: &[u8]) -> u16 {
    //# RFC 791 §3.1: the checksum field is the 16 bit one's complement of the one's
    //# complement sum of all 16 bit words in the header. For purposes of computing the
    //# checksum, the value of the checksum field is zero.
    let before = header.get(..IPV4_CHECKSUM_AT).unwrap_or(header);
    let after = header.get(IPV4_CHECKSUM_AT + 2..).unwrap_or(&[]);
    !fold(u64::from(sum(before)) + u64::from(sum(after)))
}

/// One's-complement sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793 §3.1, RFC 768,
/// RFC 8200 §8.1), not complemented.
#[inline]
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> u16 {
    let mut acc = u64::from(addr_sum(src)) + u64::from(addr_sum(dst)) + u64::from(protocol);
    acc += u64::from(length >> 16) + u64::from(length & 0xffff);
    fold(acc)
}

#[inline]
fn addr_sum(addr: IpAddr) -> u16 {
    match addr {
        IpAddr::V4(v4) => sum(&v4.octets()),
        IpAddr::V6(v6) => sum(&v6.octets()),
    }
}

/// Checksum over the pseudo-header and the whole L4 `segment` (header and payload).
///
/// With the segment's checksum field zeroed, this is the value to store (UDP stores a
/// result of 0 as 0xffff). With the stored checksum in place, a correct segment gives 0.
#[inline]
pub fn l4(src: IpAddr, dst: IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let length = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !fold(u64::from(pseudo_header(src, dst, protocol, length)) + u64::from(sum(segment)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // RFC 1071 §3 example words 0001 f203 f4f5 f6f7: sum ddf2, checksum 220d.
    static RFC1071_EXAMPLE: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    // IPv4 header (scapy: src 198.18.0.1 dst 198.18.100.10 ttl 64 id 5 proto 1), checksum
    // 0x68a8 at bytes 10..12.
    static IPV4_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x24, 0x00, 0x05, 0x00, 0x00, 0x40, 0x01, 0x68, 0xa8, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x12, 0x64, 0x0a,
    ];

    #[test]
    fn rfc1071_example() {
        assert_eq!(sum(&RFC1071_EXAMPLE), 0xddf2);
    }

    #[test]
    fn ipv4_header_matches_scapy_and_ignores_stored_field() {
        assert_eq!(ipv4_header(&IPV4_HEADER), 0x8aa4);
        let mut zeroed = IPV4_HEADER;
        zeroed[10..12].fill(0);
        assert_eq!(ipv4_header(&zeroed), 0x8aa4);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn l4_verifies_scapy_udp_over_ipv6() {
        use crate::wire::fixtures::UDP6_EXT;
        let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let dst = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10));
        assert_eq!(l4(src, dst, 17, &UDP6_EXT[70..]), 0);
        let mut corrupted = UDP6_EXT;
        corrupted[80] ^= 1;
        assert_ne!(l4(src, dst, 17, &corrupted[70..]), 0);
    }

    #[test]
    fn l4_verifies_to_zero() {
        let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let dst = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10));
        let mut segment = [
            0x03, 0xe8, 0x07, 0xd0, 0x00, 0x0b, 0x00, 0x00, b'a', b'b', b'c',
        ];
        let stored = l4(src, dst, 17, &segment);
        segment[6..8].copy_from_slice(&stored.to_be_bytes());
        assert_eq!(l4(src, dst, 17, &segment), 0);
    }

    /// Even-length data: the checksum in the first word, a fixed non-zero word (as an IPv4
    /// version/IHL byte is; eqn. 3 and a full sum differ only for all-zero data, where
    /// one's complement has two zeros), then random words.
    fn data_with_checksum() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 2..80).prop_map(|mut random| {
            random.truncate(random.len() & !1);
            let mut data = vec![0, 0, 0x45, 0x00];
            data.extend(random);
            data
        })
    }

    fn store_checksum(data: &mut [u8]) {
        data[0..2].fill(0);
        let checksum = !sum(data);
        data[0..2].copy_from_slice(&checksum.to_be_bytes());
    }

    proptest! {
        #[test]
        fn update_u16_equals_recompute(
            mut data in data_with_checksum(),
            at in 1usize..40,
            new in any::<u16>(),
        ) {
            store_checksum(&mut data);
            let word_at = 4 + 2 * (at % ((data.len() - 4) / 2));
            let old = u16::from_be_bytes([data[word_at], data[word_at + 1]]);
            let stored = u16::from_be_bytes([data[0], data[1]]);
            let updated = update_u16(stored, old, new);
            data[word_at..word_at + 2].copy_from_slice(&new.to_be_bytes());
            store_checksum(&mut data);
            prop_assert_eq!(updated, u16::from_be_bytes([data[0], data[1]]));
        }

        #[test]
        fn update_bytes_equals_recompute(
            mut data in data_with_checksum(),
            new in proptest::collection::vec(any::<u8>(), 16),
        ) {
            store_checksum(&mut data);
            let span = (data.len() - 4).min(new.len());
            let stored = u16::from_be_bytes([data[0], data[1]]);
            let updated = update_bytes(stored, &data[4..4 + span], &new[..span]);
            data[4..4 + span].copy_from_slice(&new[..span]);
            store_checksum(&mut data);
            prop_assert_eq!(updated, u16::from_be_bytes([data[0], data[1]]));
        }

        #[test]
        fn address_rewrite_keeps_l4_valid(
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            new_dst in any::<[u8; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 8..64),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let new_dst = Ipv4Addr::from(new_dst);
            let mut segment = payload;
            segment[6..8].fill(0);
            let stored = l4(src.into(), dst.into(), 17, &segment);
            let updated = update_bytes(stored, &dst.octets(), &new_dst.octets());
            segment[6..8].copy_from_slice(&updated.to_be_bytes());
            prop_assert_eq!(l4(src.into(), new_dst.into(), 17, &segment), 0);
        }
    }
}
