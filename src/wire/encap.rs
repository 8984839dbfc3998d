//! Encapsulation toward backends: IPv4-in-IPv4 (RFC 2003), IP-in-IPv6 (RFC 2473) and GUE
//! variant 0 over UDP (draft-ietf-intarea-gue). Each function shifts the IP packet of a
//! frame right in place and writes the outer headers in front of it, keeping the Ethernet
//! header (and VLAN tag) where they are; the caller rewrites MAC addresses.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{
    IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN, UDP_HEADER_LEN,
};

use super::headers::protocol;
use super::{checksum, Error, Result, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// A read/write view of a GUE header (draft-ietf-intarea-gue §3.2).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct GuePacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub type Field = core::ops::Range<usize>;
    //# draft-ietf-intarea-gue §3.2: | Ver | C |  Hlen  |  Proto/ctype  |  Flags  |
    pub const VER_C_HLEN: usize = 0;
    pub const PROTO_CTYPE: usize = 1;
    pub const FLAGS: Field = 2..4;
}

/// Length of a GUE header without optional fields.
pub const GUE_HEADER_LEN: usize = 4;

impl<T: AsRef<[u8]>> GuePacket<T> {
    /// Wrap a buffer without checking its length; accessors may panic until `check_len` passes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> GuePacket<T> {
        GuePacket { buffer }
    }

    /// Wrap a buffer after checking that it holds the header and its optional fields.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<GuePacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` unless the buffer holds the 4-byte header and `hlen` words of
    /// optional fields; afterwards no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < GUE_HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Give the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn first_byte(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    /// GUE variant (0: header present; 1: direct IP encapsulation).
    #[inline]
    pub fn version(&self) -> u8 {
        self.first_byte() >> 6
    }

    /// Control bit: set for control messages, clear for data.
    #[inline]
    pub fn control(&self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    /// Header length in bytes, optional fields included (`4 + 4 * Hlen`).
    #[inline]
    pub fn header_len(&self) -> usize {
        GUE_HEADER_LEN + 4 * usize::from(self.first_byte() & 0x1f)
    }

    /// IP protocol number of the payload (data) or control type (control messages).
    #[inline]
    pub fn proto_ctype(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO_CTYPE]
    }

    /// Flags announcing optional fields.
    #[inline]
    pub fn flags(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::FLAGS.start], data[field::FLAGS.start + 1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> GuePacket<&'a T> {
    /// The encapsulated packet after the header and its optional fields.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GuePacket<T> {
    /// Write variant 0, the control bit and no optional fields (Hlen 0).
    #[inline]
    pub fn set_version_control(&mut self, version: u8, control: bool) {
        self.buffer.as_mut()[field::VER_C_HLEN] = (version & 0x3) << 6 | u8::from(control) << 5;
    }

    /// Set the payload protocol or control type.
    #[inline]
    pub fn set_proto_ctype(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTO_CTYPE] = value;
    }

    /// Set the flags.
    #[inline]
    pub fn set_flags(&mut self, value: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&value.to_be_bytes());
    }
}

/// The inner IP packet found at `frame[l3_offset..len]`.
struct Inner {
    /// IP version, 4 or 6.
    version: u8,
    /// Length per the inner IP header: frame padding is not carried into the tunnel.
    len: usize,
    /// IPv4 type of service / IPv6 traffic class, copied to the outer header.
    traffic_class: u8,
}

/// Check the frame and the inner packet, and that `outer_len` more bytes fit.
fn inner_packet(frame: &[u8], len: usize, l3_offset: usize, outer_len: usize) -> Result<Inner> {
    if len > frame.len() {
        return Err(Error::Truncated);
    }
    if l3_offset < ETHERNET_HEADER_LEN || l3_offset > len {
        return Err(Error::Malformed);
    }
    let packet = &frame[l3_offset..len];
    let first = *packet.first().ok_or(Error::Truncated)?;
    let inner = match first >> 4 {
        4 => {
            if packet.len() < IPV4_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let ipv4 = Ipv4Packet::new_unchecked(packet);
            let total_len = usize::from(ipv4.total_len());
            if total_len < IPV4_HEADER_LEN {
                return Err(Error::Malformed);
            }
            Inner {
                version: 4,
                len: total_len,
                traffic_class: ipv4.dscp() << 2 | ipv4.ecn(),
            }
        }
        6 => {
            if packet.len() < IPV6_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let ipv6 = Ipv6Packet::new_unchecked(packet);
            Inner {
                version: 6,
                len: ipv6.total_len(),
                traffic_class: ipv6.traffic_class(),
            }
        }
        _ => return Err(Error::Malformed),
    };
    if inner.len > packet.len() || l3_offset + outer_len + inner.len > frame.len() {
        return Err(Error::Truncated);
    }
    // Every outer length field (IPv4 total length, IPv6 payload length, UDP length) is
    // 16 bits and at most `outer_len + inner.len`.
    if outer_len + inner.len > usize::from(u16::MAX) {
        return Err(Error::Unsupported);
    }
    Ok(inner)
}

/// Move the inner packet right by `outer_len` bytes and set the EtherType in front of the
/// outer header; returns the new frame length.
fn make_room(
    frame: &mut [u8],
    l3_offset: usize,
    outer_len: usize,
    inner: &Inner,
    ethertype: u16,
) -> usize {
    frame.copy_within(l3_offset..l3_offset + inner.len, l3_offset + outer_len);
    frame[l3_offset - 2..l3_offset].copy_from_slice(&ethertype.to_be_bytes());
    l3_offset + outer_len + inner.len
}

/// Write a 20-byte IPv4 header (DF set, id 0) into `header`; the caller bounds
/// `payload_len` (for encapsulation, `inner_packet` did).
pub(super) fn emit_ipv4(
    header: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    protocol: u8,
    traffic_class: u8,
    payload_len: usize,
) {
    let total_len = (IPV4_HEADER_LEN + payload_len) as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut header[..IPV4_HEADER_LEN]);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN as u8);
    //# RFC 6040 §4.1 (normal mode): the outer header's ECN field is copied from the
    //# inner; RFC 2983 §3 (uniform model): the DSCP is copied too.
    ip.set_dscp(traffic_class >> 2);
    ip.set_ecn(traffic_class & 0x3);
    ip.set_total_len(total_len);
    //# RFC 6864 §4.1: The IPv4 ID field MUST NOT be used for purposes other than
    //# fragmentation and reassembly. ... atomic datagrams (DF=1, MF=0, offset 0) may use any ID.
    ip.set_ident(0);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_frag_offset(0);
    ip.set_hop_limit(ttl);
    ip.set_next_header(IpProtocol::from(protocol));
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    let sum = checksum::ipv4_header(&header[..IPV4_HEADER_LEN]);
    Ipv4Packet::new_unchecked(&mut header[..IPV4_HEADER_LEN]).set_checksum(sum);
}

/// Write a 40-byte IPv6 header into `header`; the caller bounds `payload_len` (for
/// encapsulation, `inner_packet` did).
pub(super) fn emit_ipv6(
    header: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    next_header: u8,
    traffic_class: u8,
    payload_len: usize,
) {
    let payload_len = payload_len as u16;
    let mut ip = Ipv6Packet::new_unchecked(&mut header[..IPV6_HEADER_LEN]);
    ip.set_version(6);
    //# RFC 2473 §6.5: the tunnel entry-point node may set the Traffic Class of the tunnel
    //# header from the original packet; RFC 6040 §4.1 copies ECN.
    ip.set_traffic_class(traffic_class);
    ip.set_flow_label(0);
    ip.set_payload_len(payload_len);
    ip.set_next_header(IpProtocol::from(next_header));
    ip.set_hop_limit(hop_limit);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

/// Outer addresses of one family.
#[derive(Clone, Copy)]
enum OuterAddrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// IP protocol number naming an inner packet of version `version`.
#[inline]
fn inner_protocol(version: u8) -> u8 {
    if version == 4 {
        protocol::IPV4
    } else {
        protocol::IPV6
    }
}

/// Encapsulate the IPv4 packet at `frame[l3_offset..len]` in an outer IPv4 header (RFC 2003,
/// protocol 4, DF set, id 0, TOS copied). `Unsupported` for an IPv6 inner packet (use
/// [`ip6ip`] or [`gue`]); `Truncated` if `frame` has no room. Returns the new frame length.
pub fn ipip(
    frame: &mut [u8],
    len: usize,
    l3_offset: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
) -> Result<usize> {
    let outer_len = IPV4_HEADER_LEN;
    let inner = inner_packet(frame, len, l3_offset, outer_len)?;
    if inner.version != 4 {
        return Err(Error::Unsupported);
    }
    let new_len = make_room(frame, l3_offset, outer_len, &inner, ETHERTYPE_IPV4);
    //# RFC 2003 §3.1: Protocol 4. ... Time To Live: set to a value appropriate for
    //# delivery of the encapsulated datagram to the tunnel exit point.
    emit_ipv4(
        &mut frame[l3_offset..],
        src,
        dst,
        ttl,
        protocol::IPV4,
        inner.traffic_class,
        inner.len,
    );
    Ok(new_len)
}

/// Encapsulate the IPv4 or IPv6 packet at `frame[l3_offset..len]` in an outer IPv6 header
/// (RFC 2473; next header 4 or 41). `Truncated` if `frame` has no room. Returns the new
/// frame length.
pub fn ip6ip(
    frame: &mut [u8],
    len: usize,
    l3_offset: usize,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
) -> Result<usize> {
    let outer_len = IPV6_HEADER_LEN;
    let inner = inner_packet(frame, len, l3_offset, outer_len)?;
    let new_len = make_room(frame, l3_offset, outer_len, &inner, ETHERTYPE_IPV6);
    let next_header = inner_protocol(inner.version);
    emit_ipv6(
        &mut frame[l3_offset..],
        src,
        dst,
        hop_limit,
        next_header,
        inner.traffic_class,
        inner.len,
    );
    Ok(new_len)
}

/// Encapsulate the IPv4 or IPv6 packet at `frame[l3_offset..len]` in IP/UDP/GUE: GUE
/// variant 0, a 4-byte header, proto 4 or 41, no flags. The outer family follows `src` and
/// `dst`, which must match (`Malformed` otherwise). Over IPv4 the UDP checksum is 0 and DF
/// is set with id 0; over IPv6 the UDP checksum is computed. `src_port` carries the flow
/// entropy. `Truncated` if `frame` has no room. Returns the new frame length.
#[allow(clippy::too_many_arguments)]
pub fn gue(
    frame: &mut [u8],
    len: usize,
    l3_offset: usize,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    ttl: u8,
) -> Result<usize> {
    let outer = match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => OuterAddrs::V4(src, dst),
        (IpAddr::V6(src), IpAddr::V6(dst)) => OuterAddrs::V6(src, dst),
        _ => return Err(Error::Malformed),
    };
    let (ip_len, ethertype) = match outer {
        OuterAddrs::V4(..) => (IPV4_HEADER_LEN, ETHERTYPE_IPV4),
        OuterAddrs::V6(..) => (IPV6_HEADER_LEN, ETHERTYPE_IPV6),
    };
    let outer_len = ip_len + UDP_HEADER_LEN + GUE_HEADER_LEN;
    let inner = inner_packet(frame, len, l3_offset, outer_len)?;
    let udp_len = UDP_HEADER_LEN + GUE_HEADER_LEN + inner.len;
    let new_len = make_room(frame, l3_offset, outer_len, &inner, ethertype);
    let udp_at = l3_offset + ip_len;
    let gue_at = udp_at + UDP_HEADER_LEN;

    let mut gue = GuePacket::new_unchecked(&mut frame[gue_at..gue_at + GUE_HEADER_LEN]);
    //# draft-ietf-intarea-gue §3.2: Ver 0; C 0 for data; Hlen 0 without optional fields;
    //# Proto/ctype: the IP protocol number of the encapsulated packet.
    gue.set_version_control(0, false);
    gue.set_proto_ctype(inner_protocol(inner.version));
    gue.set_flags(0);

    let mut udp = UdpPacket::new_unchecked(&mut frame[udp_at..gue_at]);
    udp.set_src_port(src_port);
    udp.set_dst_port(dst_port);
    // inner_packet bounded outer_len + inner.len, which exceeds udp_len.
    udp.set_len(udp_len as u16);
    udp.set_checksum(0);

    let traffic_class = inner.traffic_class;
    match outer {
        OuterAddrs::V6(src6, dst6) => {
            emit_ipv6(
                &mut frame[l3_offset..],
                src6,
                dst6,
                ttl,
                protocol::UDP,
                traffic_class,
                udp_len,
            );
            //# RFC 8200 §8.1: Unlike IPv4, the default behavior when UDP packets are
            //# originated by an IPv6 node is that the UDP checksum is not optional.
            //# RFC 768: If the computed checksum is zero, it is transmitted as all ones.
            let sum = checksum::l4(src, dst, protocol::UDP, &frame[udp_at..new_len]);
            let sum = if sum == 0 { 0xffff } else { sum };
            UdpPacket::new_unchecked(&mut frame[udp_at..gue_at]).set_checksum(sum);
        }
        OuterAddrs::V4(src4, dst4) => {
            //# RFC 768: An all zero transmitted checksum value means that the transmitter
            //# generated no checksum.
            emit_ipv4(
                &mut frame[l3_offset..],
                src4,
                dst4,
                ttl,
                protocol::UDP,
                traffic_class,
                udp_len,
            );
        }
    }
    Ok(new_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures::*;
    use crate::wire::headers::{parse, Headers, L3};

    // GUE variant 0, data, Hlen 0, proto 4, no flags, then the start of an IPv4 header.
    static GUE_BYTES: [u8; 6] = [0x00, 0x04, 0x00, 0x00, 0x45, 0x00];

    const OUTER_SRC4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const OUTER_DST4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
    const OUTER_SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const OUTER_DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11);

    // scapy: ICMP4_ECHO in IPv6 [2001:db8:1::1]:49152 -> [2001:db8:1::11]:6080 / GUE proto 4
    #[rustfmt::skip]
    static GUE6_ICMP4_ECHO: [u8; 102] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x30, 0x11, 0x40, 0x20, 0x01,
        0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0xc0, 0x00, 0x17, 0xc0, 0x00, 0x30,
        0xcc, 0x43, 0x00, 0x04, 0x00, 0x00, 0x45, 0x00, 0x00, 0x24, 0x00, 0x05,
        0x00, 0x00, 0x40, 0x01, 0x8a, 0xa4, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
        0x64, 0x0a, 0x08, 0x00, 0x2e, 0x37, 0x12, 0x34, 0x00, 0x01, 0x70, 0x69,
        0x6e, 0x67, 0x64, 0x61, 0x74, 0x61,
    ];
    // scapy: ICMP4_ECHO in IPv4 198.18.1.1 -> 198.18.1.11, protocol 4, DF, id 0
    #[rustfmt::skip]
    static IPIP_ICMP4_ECHO: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x08, 0x00, 0x45, 0x00, 0x00, 0x38, 0x00, 0x00, 0x40, 0x00, 0x40, 0x04,
        0xac, 0x91, 0xc6, 0x12, 0x01, 0x01, 0xc6, 0x12, 0x01, 0x0b, 0x45, 0x00,
        0x00, 0x24, 0x00, 0x05, 0x00, 0x00, 0x40, 0x01, 0x8a, 0xa4, 0xc6, 0x12,
        0x00, 0x01, 0xc6, 0x12, 0x64, 0x0a, 0x08, 0x00, 0x2e, 0x37, 0x12, 0x34,
        0x00, 0x01, 0x70, 0x69, 0x6e, 0x67, 0x64, 0x61, 0x74, 0x61,
    ];

    #[test]
    fn test_emit_matches_scapy() {
        let mut frame = chunk(&ICMP4_ECHO);
        let len = ipip(&mut frame, ICMP4_ECHO.len(), 14, OUTER_SRC4, OUTER_DST4, 64).unwrap();
        assert_eq!(frame[..len], IPIP_ICMP4_ECHO);
        let mut frame = chunk(&ICMP4_ECHO);
        let (src, dst) = (IpAddr::V6(OUTER_SRC6), IpAddr::V6(OUTER_DST6));
        let len = gue(&mut frame, ICMP4_ECHO.len(), 14, src, dst, 49152, 6080, 64).unwrap();
        assert_eq!(frame[..len], GUE6_ICMP4_ECHO);
    }

    #[test]
    fn test_deconstruct() {
        let gue = GuePacket::new_checked(&GUE_BYTES[..]).unwrap();
        assert_eq!(gue.version(), 0);
        assert!(!gue.control());
        assert_eq!(gue.header_len(), 4);
        assert_eq!(gue.proto_ctype(), 4);
        assert_eq!(gue.flags(), 0);
        assert_eq!(gue.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xffu8; 6];
        let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
        gue.set_version_control(0, false);
        gue.set_proto_ctype(4);
        gue.set_flags(0);
        bytes[4..].copy_from_slice(&[0x45, 0x00]);
        assert_eq!(bytes, GUE_BYTES);
    }

    #[test]
    fn test_gue_check_len() {
        assert_eq!(
            GuePacket::new_checked(&GUE_BYTES[..3]),
            Err(Error::Truncated)
        );
        // Hlen 2 announces 8 bytes of optional fields that are not there.
        let with_options = [0x02, 0x04, 0x00, 0x00, 0x45, 0x00];
        assert_eq!(
            GuePacket::new_checked(&with_options[..]),
            Err(Error::Truncated)
        );
        let control = [0x20, 0x00, 0x00, 0x00];
        assert!(GuePacket::new_checked(&control[..]).unwrap().control());
    }

    /// `fixture` copied into a 256-byte buffer, as in a UMEM chunk.
    fn chunk(fixture: &[u8]) -> [u8; 256] {
        let mut buffer = [0u8; 256];
        buffer[..fixture.len()].copy_from_slice(fixture);
        buffer
    }

    /// Parse the packet at `frame[at..len]` behind the Ethernet header of `frame`.
    fn parse_inner(frame: &[u8], at: usize, len: usize, ethertype: u16) -> Headers {
        let mut inner = frame[..14].to_vec();
        inner[12..14].copy_from_slice(&ethertype.to_be_bytes());
        inner.extend_from_slice(&frame[at..len]);
        parse(&inner).unwrap()
    }

    fn assert_ipv4_outer(outer: &[u8], protocol: u8, total_len: usize) {
        let ip = Ipv4Packet::new_checked(outer).unwrap();
        assert_eq!(usize::from(ip.total_len()), total_len);
        assert!(ip.dont_frag());
        assert_eq!(ip.ident(), 0);
        assert_eq!(u8::from(ip.next_header()), protocol);
        assert_eq!(checksum::ipv4_header(&outer[..20]), ip.checksum());
        assert!(ip.verify_checksum());
    }

    #[test]
    fn test_ipip() {
        let mut frame = chunk(&ICMP4_ECHO);
        let len = ipip(&mut frame, ICMP4_ECHO.len(), 14, OUTER_SRC4, OUTER_DST4, 64).unwrap();
        assert_eq!(len, ICMP4_ECHO.len() + 20);
        assert_eq!(frame[..14], ICMP4_ECHO[..14]);
        assert_ipv4_outer(&frame[14..len], protocol::IPV4, 56);
        let outer = parse(&frame[..len]).unwrap();
        assert_eq!(outer.src, IpAddr::V4(OUTER_SRC4));
        assert_eq!(outer.dst, IpAddr::V4(OUTER_DST4));
        assert_eq!(
            (outer.ttl, outer.l4_proto, outer.l4_offset, outer.l4_len),
            (64, 4, 34, 36)
        );
        assert_eq!(frame[34..len], ICMP4_ECHO[14..]);
        let inner = parse_inner(&frame, 34, len, ETHERTYPE_IPV4);
        assert_eq!(inner.l4_proto, protocol::ICMP);
        assert_eq!(inner.dst, IpAddr::V4(Ipv4Addr::new(198, 18, 100, 10)));
    }

    #[test]
    fn test_ipip_vlan_tos_and_padding() {
        let mut fixture = TCP4_VLAN;
        fixture[18 + 1] = 0xb9; // DSCP 46 (EF), ECN 01
                                // Received with 20 bytes of padding: not carried into the tunnel.
        let mut frame = chunk(&fixture);
        let len = ipip(
            &mut frame,
            fixture.len() + 20,
            18,
            OUTER_SRC4,
            OUTER_DST4,
            9,
        )
        .unwrap();
        assert_eq!(len, fixture.len() + 20);
        assert_eq!(
            frame[12..18],
            fixture[12..18],
            "VLAN tag and EtherType kept"
        );
        let outer = Ipv4Packet::new_checked(&frame[18..len]).unwrap();
        assert_eq!((outer.dscp(), outer.ecn(), outer.hop_limit()), (46, 1, 9));
        assert_eq!(frame[38..len], fixture[18..]);
        let parsed = parse(&frame[..len]).unwrap();
        assert_eq!(
            (parsed.vlan_id, parsed.l4_proto),
            (Some(100), protocol::IPV4)
        );
    }

    #[test]
    fn test_ipip_refuses_ipv6_inner() {
        let mut frame = chunk(&UDP6_EXT);
        assert_eq!(
            ipip(&mut frame, UDP6_EXT.len(), 14, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn test_ip6ip() {
        for (fixture, next_header, ethertype) in [
            (&ICMP4_ECHO[..], protocol::IPV4, ETHERTYPE_IPV4),
            (&UDP6_EXT[..], protocol::IPV6, ETHERTYPE_IPV6),
        ] {
            let mut frame = chunk(fixture);
            let len = ip6ip(&mut frame, fixture.len(), 14, OUTER_SRC6, OUTER_DST6, 33).unwrap();
            assert_eq!(len, fixture.len() + 40);
            assert_eq!(frame[12..14], ETHERTYPE_IPV6.to_be_bytes());
            let outer = parse(&frame[..len]).unwrap();
            assert_eq!(outer.l3, L3::Ipv6);
            assert_eq!(
                (outer.src, outer.dst),
                (IpAddr::V6(OUTER_SRC6), IpAddr::V6(OUTER_DST6))
            );
            assert_eq!((outer.ttl, outer.l4_proto), (33, next_header));
            assert_eq!(usize::from(outer.l4_len), fixture.len() - 14);
            assert_eq!(frame[54..len], fixture[14..]);
            let inner = parse_inner(&frame, 54, len, ethertype);
            assert_eq!(inner, parse(fixture).unwrap());
        }
    }

    #[test]
    fn test_gue_over_ipv6() {
        let mut frame = chunk(&ICMP4_ECHO);
        let (src, dst) = (IpAddr::V6(OUTER_SRC6), IpAddr::V6(OUTER_DST6));
        let len = gue(&mut frame, ICMP4_ECHO.len(), 14, src, dst, 49152, 6080, 64).unwrap();
        assert_eq!(len, ICMP4_ECHO.len() + 40 + 8 + 4);
        let outer = parse(&frame[..len]).unwrap();
        assert_eq!(
            (outer.l4_proto, outer.src_port, outer.dst_port),
            (protocol::UDP, 49152, 6080)
        );
        let udp = &frame[54..len];
        assert_eq!(usize::from(outer.l4_len), udp.len());
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, udp.len());
        assert_ne!(u16::from_be_bytes([udp[6], udp[7]]), 0);
        assert_eq!(
            checksum::l4(src, dst, protocol::UDP, udp),
            0,
            "UDP checksum verifies"
        );
        let gue = GuePacket::new_checked(&udp[8..]).unwrap();
        assert_eq!(
            (gue.version(), gue.control(), gue.proto_ctype()),
            (0, false, protocol::IPV4)
        );
        assert_eq!(gue.payload(), &ICMP4_ECHO[14..]);
    }

    #[test]
    fn test_gue_over_ipv4_carries_ipv6() {
        let mut frame = chunk(&UDP6_EXT);
        let (src, dst) = (IpAddr::V4(OUTER_SRC4), IpAddr::V4(OUTER_DST4));
        let len = gue(&mut frame, UDP6_EXT.len(), 14, src, dst, 50000, 6080, 64).unwrap();
        assert_eq!(len, UDP6_EXT.len() + 20 + 8 + 4);
        assert_eq!(frame[12..14], ETHERTYPE_IPV4.to_be_bytes());
        assert_ipv4_outer(&frame[14..len], protocol::UDP, len - 14);
        let udp = &frame[34..len];
        assert_eq!(udp[6..8], [0, 0], "no UDP checksum over IPv4");
        let gue = GuePacket::new_checked(&udp[8..]).unwrap();
        assert_eq!(gue.proto_ctype(), protocol::IPV6);
        let inner = parse_inner(&frame, 34 + 12, len, ETHERTYPE_IPV6);
        assert_eq!(inner, parse(&UDP6_EXT).unwrap());
    }

    #[test]
    fn test_encap_errors_leave_frame_alone() {
        let src6 = IpAddr::V6(OUTER_SRC6);
        let dst4 = IpAddr::V4(OUTER_DST4);
        let mut exact = ICMP4_ECHO;
        let len = exact.len();
        assert_eq!(
            ipip(&mut exact, len, 14, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Truncated)
        );
        assert_eq!(
            ip6ip(&mut exact, len, 14, OUTER_SRC6, OUTER_DST6, 64),
            Err(Error::Truncated)
        );
        let (v4, v4d) = (IpAddr::V4(OUTER_SRC4), dst4);
        assert_eq!(
            gue(&mut exact, len, 14, v4, v4d, 1, 2, 64),
            Err(Error::Truncated)
        );
        assert_eq!(
            gue(&mut exact, len, 14, src6, dst4, 1, 2, 64),
            Err(Error::Malformed)
        );
        assert_eq!(exact, ICMP4_ECHO);
        let mut frame = chunk(&ICMP4_ECHO);
        assert_eq!(
            ipip(&mut frame, 300, 14, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Truncated)
        );
        assert_eq!(
            ipip(&mut frame, len, 60, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Malformed)
        );
        assert_eq!(
            ipip(&mut frame, len, 4, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Malformed)
        );
        assert_eq!(
            ipip(&mut frame, 30, 14, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Truncated)
        );
        frame[14] = 0x15;
        assert_eq!(
            ipip(&mut frame, len, 14, OUTER_SRC4, OUTER_DST4, 64),
            Err(Error::Malformed)
        );
    }
}
