//! The one per-packet parse: Ethernet (plus one 802.1Q tag), then IPv4 (options honoured),
//! IPv6 (extension headers walked) or ARP, then the L4 ports of TCP, UDP and SCTP. Also
//! the flow quoted inside an ICMP error, so errors follow their flow to its backend.
//!
//! Hot path: no allocation, bounds checked once per header, every length field checked
//! against the frame before it is trusted.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet, ETHERNET_HEADER_LEN};

use super::{vlan, Error, Result, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN};

/// IANA protocol numbers the parse looks at.
pub mod protocol {
    /// IPv6 hop-by-hop options (RFC 8200 §4.3).
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP (RFC 2003).
    pub const IPV4: u8 = 4;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP (RFC 2473).
    pub const IPV6: u8 = 41;
    /// IPv6 routing header (RFC 8200 §4.4).
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header (RFC 8200 §4.5).
    pub const FRAGMENT: u8 = 44;
    /// IP authentication header (RFC 4302).
    pub const AUTH: u8 = 51;
    /// ICMP for IPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 destination options (RFC 8200 §4.6).
    pub const DEST_OPTS: u8 = 60;
    /// SCTP (RFC 9260).
    pub const SCTP: u8 = 132;
}

/// The network layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// ARP over Ethernet for IPv4.
    Arp,
}

/// What every stage needs to know about a frame, read once by [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// VLAN id of the 802.1Q tag, if the frame has one.
    pub vlan_id: Option<u16>,
    /// Start of the IP or ARP header: after Ethernet and the tag.
    pub l3_offset: u16,
    /// Which network layer follows.
    pub l3: L3,
    /// Source address (unspecified for ARP).
    pub src: IpAddr,
    /// Destination address (unspecified for ARP).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit (0 for ARP).
    pub ttl: u8,
    /// IANA protocol number after the IPv6 extension headers (0 for ARP).
    pub l4_proto: u8,
    /// Start of the TCP/UDP/SCTP/ICMP header (for ARP, `l3_offset`).
    pub l4_offset: u16,
    /// L4 bytes per the IP length fields, frame padding excluded (0 for ARP).
    pub l4_len: u16,
    /// IPv4 MF set or offset non-zero, or an IPv6 fragment header present.
    pub fragment: bool,
    /// TCP/UDP/SCTP source port; 0 for other protocols and for every fragment, so all
    /// fragments of one datagram carry the same flow key.
    pub src_port: u16,
    /// TCP/UDP/SCTP destination port; 0 as for `src_port`.
    pub dst_port: u16,
    /// TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN); 0 unless TCP.
    pub tcp_flags: u8,
}

impl Default for Headers {
    /// An empty IPv4 header set: the value batch metadata starts from before `parse`.
    fn default() -> Self {
        Headers {
            vlan_id: None,
            l3_offset: 0,
            l3: L3::Ipv4,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ttl: 0,
            l4_proto: 0,
            l4_offset: 0,
            l4_len: 0,
            fragment: false,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
        }
    }
}

/// Most IPv6 extension headers walked before giving up, so a crafted chain costs bounded work.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

const ARP_IPV4_LEN: usize = 28;
const TCP_FLAGS_AT: usize = 13;
const SCTP_COMMON_HEADER_LEN: usize = 12;
const ICMP_HEADER_LEN: usize = 8;

#[inline]
fn be16(bytes: &[u8], at: usize) -> Result<u16> {
    match bytes.get(at..at + 2) {
        Some(&[high, low]) => Ok(u16::from_be_bytes([high, low])),
        _ => Err(Error::Truncated),
    }
}

/// EtherType after the Ethernet header and at most one 802.1Q tag, with the tag's VLAN id
/// and the offset of the L3 header.
#[inline]
pub(crate) fn ethernet(frame: &[u8]) -> Result<(u16, Option<u16>, usize)> {
    let ethernet = EthernetFrame::new_checked(frame)?;
    let ethertype = u16::from(ethernet.ethertype());
    if ethertype != ETHERTYPE_VLAN {
        return Ok((ethertype, None, ETHERNET_HEADER_LEN));
    }
    let tag = vlan::Packet::new_checked(ethernet.payload())?;
    if tag.ethertype() == ETHERTYPE_VLAN {
        // Stacked tags are not ours to untangle; xlb serves one VLAN level.
        return Err(Error::Unsupported);
    }
    Ok((
        tag.ethertype(),
        Some(tag.vlan_id()),
        ETHERNET_HEADER_LEN + vlan::HEADER_LEN,
    ))
}

/// Parse Ethernet, VLAN, IP/ARP and L4 ports of `frame`.
///
/// `Truncated` when a header or a length field runs past the frame, `Malformed` when a
/// field is impossible (IHL below 5, a version that contradicts the EtherType, a TCP data
/// offset below 5), `Unsupported` for other EtherTypes, stacked VLAN tags, non-IPv4 ARP or
/// more than [`MAX_IPV6_EXT_HEADERS`] IPv6 extension headers.
///
/// Always inlined: returned through memory, the `Headers` cost the parse stage a
/// store-forwarding stall per packet.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<Headers> {
    let (ethertype, vlan_id, l3_offset) = ethernet(frame)?;
    let l3 = frame.get(l3_offset..).ok_or(Error::Truncated)?;
    let mut headers = match ethertype {
        ETHERTYPE_IPV4 => ipv4(l3, l3_offset)?,
        ETHERTYPE_IPV6 => ipv6(l3, l3_offset)?,
        ETHERTYPE_ARP => arp(l3, l3_offset)?,
        _ => return Err(Error::Unsupported),
    };
    headers.vlan_id = vlan_id;
    if headers.l3 != L3::Arp && !headers.fragment {
        let start = usize::from(headers.l4_offset);
        let l4 = frame
            .get(start..start + usize::from(headers.l4_len))
            .ok_or(Error::Truncated)?;
        read_l4(&mut headers, l4)?;
    }
    Ok(headers)
}

/// The IPv4 header checks shared by the parse and the quoted packet of an ICMP error:
/// header length and version; returns the header length.
#[inline]
fn ipv4_header_len(l3: &[u8]) -> Result<usize> {
    if l3.len() < smoltcp::wire::IPV4_HEADER_LEN {
        return Err(Error::Truncated);
    }
    let packet = Ipv4Packet::new_unchecked(l3);
    if packet.version() != 4 {
        return Err(Error::Malformed);
    }
    //# RFC 791 §3.1: Internet Header Length ... the minimum value for a correct header is 5.
    let header_len = usize::from(packet.header_len());
    if header_len < smoltcp::wire::IPV4_HEADER_LEN {
        return Err(Error::Malformed);
    }
    if header_len > l3.len() {
        return Err(Error::Truncated);
    }
    Ok(header_len)
}

#[inline]
fn ipv4(l3: &[u8], l3_offset: usize) -> Result<Headers> {
    let header_len = ipv4_header_len(l3)?;
    let packet = Ipv4Packet::new_unchecked(l3);
    let total_len = usize::from(packet.total_len());
    if total_len < header_len {
        return Err(Error::Malformed);
    }
    if total_len > l3.len() {
        return Err(Error::Truncated);
    }
    Ok(Headers {
        vlan_id: None,
        l3_offset: l3_offset as u16,
        l3: L3::Ipv4,
        src: IpAddr::V4(packet.src_addr()),
        dst: IpAddr::V4(packet.dst_addr()),
        ttl: packet.hop_limit(),
        l4_proto: packet.next_header().into(),
        // l3_offset is at most 18 and header_len at most 60.
        l4_offset: (l3_offset + header_len) as u16,
        // total_len came from a 16-bit field.
        l4_len: (total_len - header_len) as u16,
        fragment: packet.more_frags() || packet.frag_offset() != 0,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
    })
}

/// Where an IPv6 extension-header chain ends.
struct Ipv6Chain {
    l4_proto: u8,
    /// Offset of the L4 header inside the buffer walked.
    l4_at: usize,
    fragment: bool,
    /// A fragment other than the first: no L4 header follows.
    later_fragment: bool,
}

/// Walk the extension headers of an IPv6 packet in `packet[..end]`, starting with
/// `next_header` at `packet[40..]`.
#[inline]
fn ipv6_chain(packet: &[u8], end: usize, mut next_header: u8) -> Result<Ipv6Chain> {
    let mut at = smoltcp::wire::IPV6_HEADER_LEN;
    let mut fragment = false;
    for _ in 0..=MAX_IPV6_EXT_HEADERS {
        let header_len = match next_header {
            //# RFC 8200 §4.3, §4.4, §4.6: Hdr Ext Len: length of the header in 8-octet
            //# units, not including the first 8 octets.
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DEST_OPTS => {
                let len_field = packet.get(at + 1).ok_or(Error::Truncated)?;
                (usize::from(*len_field) + 1) * 8
            }
            //# RFC 4302 §2.2: Payload Len: the length of AH in 32-bit words (4-byte units),
            //# minus "2".
            protocol::AUTH => {
                let len_field = packet.get(at + 1).ok_or(Error::Truncated)?;
                (usize::from(*len_field) + 2) * 4
            }
            //# RFC 8200 §4.5: Fragment Offset: 13-bit unsigned integer ... M flag:
            //# 1 = more fragments; 0 = last fragment.
            protocol::FRAGMENT => {
                if at + 8 > end {
                    return Err(Error::Truncated);
                }
                let offset_and_m = be16(packet, at + 2)?;
                fragment = true;
                if offset_and_m >> 3 != 0 {
                    let next = *packet.get(at).ok_or(Error::Truncated)?;
                    return Ok(Ipv6Chain {
                        l4_proto: next,
                        l4_at: at + 8,
                        fragment,
                        later_fragment: true,
                    });
                }
                8
            }
            l4_proto => {
                return Ok(Ipv6Chain {
                    l4_proto,
                    l4_at: at,
                    fragment,
                    later_fragment: false,
                });
            }
        };
        if at + header_len > end {
            return Err(Error::Truncated);
        }
        next_header = *packet.get(at).ok_or(Error::Truncated)?;
        at += header_len;
    }
    Err(Error::Unsupported)
}

#[inline]
fn ipv6(l3: &[u8], l3_offset: usize) -> Result<Headers> {
    let packet = Ipv6Packet::new_checked(l3).map_err(|_| Error::Truncated)?;
    if packet.version() != 6 {
        return Err(Error::Malformed);
    }
    let end = packet.total_len();
    let chain = ipv6_chain(l3, end, packet.next_header().into())?;
    // The chain is at most 9 headers of at most 2 KiB each, far below 64 KiB.
    let l4_offset = u16::try_from(l3_offset + chain.l4_at).map_err(|_| Error::Unsupported)?;
    Ok(Headers {
        vlan_id: None,
        l3_offset: l3_offset as u16,
        l3: L3::Ipv6,
        src: IpAddr::V6(packet.src_addr()),
        dst: IpAddr::V6(packet.dst_addr()),
        ttl: packet.hop_limit(),
        l4_proto: chain.l4_proto,
        l4_offset,
        // end - l4_at <= payload length, a 16-bit field.
        l4_len: (end - chain.l4_at) as u16,
        fragment: chain.fragment,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
    })
}

#[inline]
fn arp(l3: &[u8], l3_offset: usize) -> Result<Headers> {
    if l3.len() < ARP_IPV4_LEN {
        return Err(Error::Truncated);
    }
    let packet = smoltcp::wire::ArpPacket::new_unchecked(l3);
    //# RFC 826: ar$hrd = Ethernet (1), ar$pro = IP (0x0800), ar$hln = 6, ar$pln = 4.
    if u16::from(packet.hardware_type()) != 1
        || u16::from(packet.protocol_type()) != ETHERTYPE_IPV4
        || packet.hardware_len() != 6
        || packet.protocol_len() != 4
    {
        return Err(Error::Unsupported);
    }
    Ok(Headers {
        vlan_id: None,
        l3_offset: l3_offset as u16,
        l3: L3::Arp,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ttl: 0,
        l4_proto: 0,
        l4_offset: l3_offset as u16,
        l4_len: 0,
        fragment: false,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
    })
}

/// Ports and TCP flags from the whole L4 segment `l4`, checking the L4 header fits.
#[inline]
fn read_l4(headers: &mut Headers, l4: &[u8]) -> Result<()> {
    match headers.l4_proto {
        protocol::TCP => {
            if l4.len() < smoltcp::wire::TCP_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let tcp = smoltcp::wire::TcpPacket::new_unchecked(l4);
            //# RFC 9293 §3.1: Data Offset ... The TCP header (even one including options)
            //# is an integer multiple of 32 bits long.
            let header_len = usize::from(tcp.header_len());
            if header_len < smoltcp::wire::TCP_HEADER_LEN {
                return Err(Error::Malformed);
            }
            if header_len > l4.len() {
                return Err(Error::Truncated);
            }
            headers.src_port = tcp.src_port();
            headers.dst_port = tcp.dst_port();
            headers.tcp_flags = l4[TCP_FLAGS_AT];
        }
        protocol::UDP => {
            if l4.len() < smoltcp::wire::UDP_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let udp = smoltcp::wire::UdpPacket::new_unchecked(l4);
            //# RFC 768: Length is the length in octets of this user datagram including
            //# this header and the data. (This means the minimum value of the length is
            //# eight.)
            let udp_len = usize::from(udp.len());
            if udp_len < smoltcp::wire::UDP_HEADER_LEN {
                return Err(Error::Malformed);
            }
            if udp_len > l4.len() {
                return Err(Error::Truncated);
            }
            headers.src_port = udp.src_port();
            headers.dst_port = udp.dst_port();
        }
        protocol::SCTP => {
            //# RFC 9260 §3.1: Source Port Number: 16 bits ... Destination Port Number:
            //# 16 bits ... Verification Tag: 32 bits ... Checksum: 32 bits.
            if l4.len() < SCTP_COMMON_HEADER_LEN {
                return Err(Error::Truncated);
            }
            headers.src_port = be16(l4, 0)?;
            headers.dst_port = be16(l4, 2)?;
        }
        //# RFC 792, RFC 4443 §2.1: every message starts with type, code, checksum and a
        //# 32-bit field (identifier/sequence, MTU, pointer or unused).
        protocol::ICMP | protocol::ICMPV6 if l4.len() < ICMP_HEADER_LEN => {
            return Err(Error::Truncated);
        }
        _ => {}
    }
    Ok(())
}

/// The flow an ICMP error is about: the packet it quotes, as that packet was sent (so its
/// source is normally our side and its destination the far end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedFlow {
    /// Source address of the quoted packet.
    pub src: IpAddr,
    /// Destination address of the quoted packet.
    pub dst: IpAddr,
    /// IANA protocol of the quoted packet, after its IPv6 extension headers.
    pub l4_proto: u8,
    /// Quoted TCP/UDP/SCTP source port; 0 for other protocols or a later fragment.
    pub src_port: u16,
    /// Quoted TCP/UDP/SCTP destination port; 0 as for `src_port`.
    pub dst_port: u16,
    /// Quoted SCTP verification tag (the receiver's tag), when the quote holds it.
    //# RFC 792: Internet Header + 64 bits of Original Data Datagram
    // Those 64 bits are exactly SCTP's ports and verification tag.
    pub sctp_tag: Option<u32>,
}

/// Is this ICMP type an error that quotes the offending packet?
#[inline]
fn is_icmp_error(l3: L3, icmp_type: u8) -> bool {
    match l3 {
        //# RFC 792: Destination Unreachable (3), Time Exceeded (11), Parameter Problem (12):
        //# Internet Header + 64 bits of Original Data Datagram.
        L3::Ipv4 => matches!(icmp_type, 3 | 11 | 12),
        //# RFC 4443 §3: Destination Unreachable (1), Packet Too Big (2), Time Exceeded (3),
        //# Parameter Problem (4): As much of invoking packet as possible.
        L3::Ipv6 => matches!(icmp_type, 1..=4),
        L3::Arp => false,
    }
}

/// The flow quoted by the ICMPv4/ICMPv6 error in `frame` (parsed as `headers`).
///
/// `Unsupported` if the frame is not an ICMP error (echo, NDP, a later fragment, ...);
/// `Truncated`/`Malformed` if the quote is too short for the addresses and ports or is not
/// an IP packet of the same family.
#[inline]
pub fn parse_icmp_error(frame: &[u8], headers: &Headers) -> Result<QuotedFlow> {
    let icmp_proto = match headers.l3 {
        L3::Ipv4 => protocol::ICMP,
        L3::Ipv6 => protocol::ICMPV6,
        L3::Arp => return Err(Error::Unsupported),
    };
    if headers.l4_proto != icmp_proto || headers.fragment {
        return Err(Error::Unsupported);
    }
    let start = usize::from(headers.l4_offset);
    let icmp = frame
        .get(start..start + usize::from(headers.l4_len))
        .ok_or(Error::Truncated)?;
    let icmp_type = *icmp.first().ok_or(Error::Truncated)?;
    if !is_icmp_error(headers.l3, icmp_type) {
        return Err(Error::Unsupported);
    }
    let quote = icmp.get(ICMP_HEADER_LEN..).ok_or(Error::Truncated)?;
    let (src, dst, l4_proto, l4) = match headers.l3 {
        L3::Ipv4 => {
            let header_len = ipv4_header_len(quote)?;
            let packet = Ipv4Packet::new_unchecked(quote);
            let later_fragment = packet.frag_offset() != 0;
            let l4 = if later_fragment {
                None
            } else {
                Some(&quote[header_len..])
            };
            let (src, dst) = (packet.src_addr(), packet.dst_addr());
            (
                IpAddr::V4(src),
                IpAddr::V4(dst),
                packet.next_header().into(),
                l4,
            )
        }
        _ => {
            if quote.len() < smoltcp::wire::IPV6_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let packet = Ipv6Packet::new_unchecked(quote);
            if packet.version() != 6 {
                return Err(Error::Malformed);
            }
            // The quote may be cut anywhere: walk only what is there.
            let chain = ipv6_chain(quote, quote.len(), packet.next_header().into())?;
            let l4 = if chain.later_fragment {
                None
            } else {
                quote.get(chain.l4_at..)
            };
            let (src, dst): (Ipv6Addr, Ipv6Addr) = (packet.src_addr(), packet.dst_addr());
            (IpAddr::V6(src), IpAddr::V6(dst), chain.l4_proto, l4)
        }
    };
    let (src_port, dst_port) = match (l4_proto, l4) {
        (protocol::TCP | protocol::UDP | protocol::SCTP, Some(l4)) => (be16(l4, 0)?, be16(l4, 2)?),
        _ => (0, 0),
    };
    let sctp_tag = match (l4_proto, l4) {
        (protocol::SCTP, Some(l4)) => l4
            .get(4..8)
            .and_then(|tag| <[u8; 4]>::try_from(tag).ok())
            .map(u32::from_be_bytes),
        _ => None,
    };
    Ok(QuotedFlow {
        src,
        dst,
        l4_proto,
        src_port,
        dst_port,
        sctp_tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    #[test]
    fn test_parse_tcp_vlan() {
        assert_eq!(
            parse(&TCP4_VLAN),
            Ok(Headers {
                vlan_id: Some(100),
                l3_offset: 18,
                l3: L3::Ipv4,
                src: v4(198, 18, 0, 1),
                dst: v4(198, 18, 100, 10),
                ttl: 63,
                l4_proto: protocol::TCP,
                l4_offset: 38,
                l4_len: 20,
                fragment: false,
                src_port: 40000,
                dst_port: 80,
                tcp_flags: 0x02,
            })
        );
    }

    #[test]
    fn test_parse_ipv4_options() {
        let headers = parse(&UDP4_OPTIONS).unwrap();
        assert_eq!(headers.vlan_id, None);
        assert_eq!(headers.l3_offset, 14);
        assert_eq!((headers.l4_offset, headers.l4_len), (14 + 28, 10));
        assert_eq!((headers.src_port, headers.dst_port), (5353, 53));
        assert_eq!(headers.l4_proto, protocol::UDP);
        assert_eq!(headers.tcp_flags, 0);
    }

    #[test]
    fn test_parse_ipv6_ext_headers() {
        assert_eq!(
            parse(&UDP6_EXT),
            Ok(Headers {
                vlan_id: None,
                l3_offset: 14,
                l3: L3::Ipv6,
                src: v6("2001:db8::1"),
                dst: v6("2001:db8:100::10"),
                ttl: 64,
                l4_proto: protocol::UDP,
                l4_offset: 14 + 40 + 16,
                l4_len: 12,
                fragment: false,
                src_port: 1000,
                dst_port: 2000,
                tcp_flags: 0,
            })
        );
    }

    #[test]
    fn test_parse_fragments() {
        let first = parse(&UDP6_FRAG_FIRST).unwrap();
        assert!(first.fragment);
        assert_eq!((first.l4_proto, first.l4_offset), (protocol::UDP, 14 + 48));
        assert_eq!((first.src_port, first.dst_port), (0, 0));
        let later = parse(&UDP6_FRAG_LATER).unwrap();
        assert!(later.fragment);
        assert_eq!(
            (later.l4_proto, later.l4_offset, later.l4_len),
            (protocol::UDP, 62, 8)
        );
        assert_eq!((later.src_port, later.dst_port), (0, 0));
        let later4 = parse(&TCP4_FRAG_LATER).unwrap();
        assert!(later4.fragment);
        assert_eq!(
            (later4.l4_proto, later4.l4_offset, later4.l4_len),
            (protocol::TCP, 34, 16)
        );
        assert_eq!(
            (later4.src_port, later4.dst_port, later4.tcp_flags),
            (0, 0, 0)
        );
        // First IPv4 fragment: MF set, offset 0; the ports are there but not reported.
        let mut first4 = UDP4_OPTIONS;
        first4[14 + 6] = 0x20;
        let first4 = parse(&first4).unwrap();
        assert!(first4.fragment);
        assert_eq!(
            (first4.l4_offset, first4.src_port, first4.dst_port),
            (42, 0, 0)
        );
    }

    #[test]
    fn test_parse_sctp_and_arp() {
        let sctp = parse(&SCTP4).unwrap();
        assert_eq!(sctp.l4_proto, protocol::SCTP);
        assert_eq!((sctp.src_port, sctp.dst_port), (38412, 38412));
        let arp = parse(&ARP_REQUEST).unwrap();
        assert_eq!(arp.l3, L3::Arp);
        assert_eq!(arp.src, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!((arp.l3_offset, arp.l4_offset, arp.l4_len), (14, 14, 0));
    }

    #[test]
    fn test_parse_excludes_padding() {
        let mut padded = [0u8; 80];
        padded[..ICMP4_ECHO.len()].copy_from_slice(&ICMP4_ECHO);
        assert_eq!(parse(&padded), parse(&ICMP4_ECHO));
        assert_eq!(parse(&padded).unwrap().l4_len, 16);
    }

    #[test]
    fn test_malformed_ethernet_and_vlan() {
        assert_eq!(parse(&TCP4_VLAN[..13]), Err(Error::Truncated));
        assert_eq!(parse(&TCP4_VLAN[..16]), Err(Error::Truncated));
        let mut stacked = TCP4_VLAN;
        stacked[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse(&stacked), Err(Error::Unsupported));
        let mut other = UDP4_OPTIONS;
        other[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(parse(&other), Err(Error::Unsupported));
    }

    #[test]
    fn test_malformed_ipv4() {
        let with_byte = |at: usize, value: u8| {
            let mut frame = UDP4_OPTIONS;
            frame[at] = value;
            parse(&frame)
        };
        assert_eq!(with_byte(14, 0x44), Err(Error::Malformed), "IHL < 5");
        assert_eq!(with_byte(14, 0x4f), Err(Error::Truncated), "IHL past end");
        assert_eq!(
            with_byte(14, 0x65),
            Err(Error::Malformed),
            "version 6 in IPv4"
        );
        assert_eq!(
            with_byte(16, 0x01),
            Err(Error::Truncated),
            "total length past frame"
        );
        assert_eq!(
            with_byte(17, 0x14),
            Err(Error::Malformed),
            "total length < IHL"
        );
        assert_eq!(with_byte(47, 0x04), Err(Error::Malformed), "UDP length < 8");
        assert_eq!(
            with_byte(47, 0x0b),
            Err(Error::Truncated),
            "UDP length past IP"
        );
        assert_eq!(parse(&UDP4_OPTIONS[..14 + 19]), Err(Error::Truncated));
        let mut tcp = TCP4_VLAN;
        tcp[18 + 20 + 12] = 0x40;
        assert_eq!(parse(&tcp), Err(Error::Malformed), "TCP data offset < 5");
        tcp[18 + 20 + 12] = 0x60;
        assert_eq!(parse(&tcp), Err(Error::Truncated), "TCP options past IP");
        let mut arp = ARP_REQUEST;
        arp[14 + 5] = 16;
        assert_eq!(
            parse(&arp),
            Err(Error::Unsupported),
            "ARP for a 16-byte protocol"
        );
    }

    /// Ethernet + IPv6 + `count` destination-options headers + an 8-byte UDP header.
    fn ipv6_with_dest_opts(count: usize) -> Vec<u8> {
        let mut frame = UDP6_EXT[..14 + 40].to_vec();
        let payload_len = (count * 8 + 8) as u16;
        frame[14 + 4..14 + 6].copy_from_slice(&payload_len.to_be_bytes());
        frame[14 + 6] = if count == 0 {
            protocol::UDP
        } else {
            protocol::DEST_OPTS
        };
        for index in 0..count {
            let next = if index + 1 == count {
                protocol::UDP
            } else {
                protocol::DEST_OPTS
            };
            // PadN option of 4 bytes fills the header to 8.
            frame.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        frame.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0x00, 0x08, 0x00, 0x00]);
        frame
    }

    #[test]
    fn test_ipv6_ext_header_limits() {
        let eight = parse(&ipv6_with_dest_opts(MAX_IPV6_EXT_HEADERS)).unwrap();
        assert_eq!(eight.l4_offset as usize, 14 + 40 + 8 * MAX_IPV6_EXT_HEADERS);
        assert_eq!((eight.src_port, eight.dst_port), (1000, 2000));
        assert_eq!(
            parse(&ipv6_with_dest_opts(MAX_IPV6_EXT_HEADERS + 1)),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn test_malformed_ipv6() {
        // Payload length ends inside the destination-options header.
        let mut short = UDP6_EXT;
        short[14 + 5] = 12;
        assert_eq!(parse(&short), Err(Error::Truncated));
        // Payload length past the frame.
        assert_eq!(
            parse(&UDP6_EXT[..UDP6_EXT.len() - 1]),
            Err(Error::Truncated)
        );
        // Hop-by-hop header claiming 16 bytes more than there are.
        let mut long = UDP6_EXT;
        long[14 + 40 + 1] = 4;
        assert_eq!(parse(&long), Err(Error::Truncated));
        let mut version = UDP6_EXT;
        version[14] = 0x40;
        assert_eq!(parse(&version), Err(Error::Malformed));
        assert_eq!(parse(&UDP6_EXT[..14 + 39]), Err(Error::Truncated));
        // Fragment header cut by the payload length.
        let mut frag = UDP6_FRAG_LATER;
        frag[14 + 5] = 4;
        assert_eq!(parse(&frag[..14 + 44]), Err(Error::Truncated));
    }

    #[test]
    fn test_parse_icmp_error() {
        let headers = parse(&ICMP4_FRAG_NEEDED).unwrap();
        assert_eq!(
            parse_icmp_error(&ICMP4_FRAG_NEEDED, &headers),
            Ok(QuotedFlow {
                src: v4(198, 18, 100, 10),
                dst: v4(198, 18, 0, 1),
                l4_proto: protocol::TCP,
                src_port: 80,
                dst_port: 40000,
                sctp_tag: None,
            })
        );
        let headers = parse(&ICMP6_PTB).unwrap();
        assert_eq!(
            parse_icmp_error(&ICMP6_PTB, &headers),
            Ok(QuotedFlow {
                src: v6("2001:db8:100::10"),
                dst: v6("2001:db8::1"),
                l4_proto: protocol::UDP,
                src_port: 53,
                dst_port: 5353,
                sctp_tag: None,
            })
        );
    }

    #[test]
    fn test_parse_icmp_error_rejects() {
        let echo = parse(&ICMP4_ECHO).unwrap();
        assert_eq!(
            parse_icmp_error(&ICMP4_ECHO, &echo),
            Err(Error::Unsupported)
        );
        let echo6 = parse(&ICMP6_ECHO).unwrap();
        assert_eq!(
            parse_icmp_error(&ICMP6_ECHO, &echo6),
            Err(Error::Unsupported)
        );
        let tcp = parse(&TCP4_VLAN).unwrap();
        assert_eq!(parse_icmp_error(&TCP4_VLAN, &tcp), Err(Error::Unsupported));
        // A quote cut before the ports.
        let mut short = parse(&ICMP4_FRAG_NEEDED).unwrap();
        short.l4_len = 8 + 20 + 2;
        assert_eq!(
            parse_icmp_error(&ICMP4_FRAG_NEEDED, &short),
            Err(Error::Truncated)
        );
        // A quote that is not IPv4.
        let mut not_ip = ICMP4_FRAG_NEEDED;
        not_ip[14 + 20 + 8] = 0x65;
        let headers = parse(&not_ip).unwrap();
        assert_eq!(parse_icmp_error(&not_ip, &headers), Err(Error::Malformed));
        // Headers from another, longer frame.
        let headers = parse(&ICMP6_PTB).unwrap();
        assert_eq!(
            parse_icmp_error(&ICMP6_PTB[..60], &headers),
            Err(Error::Truncated)
        );
    }
}
