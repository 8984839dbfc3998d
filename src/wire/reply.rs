//! In-place answers the dataplane gives for its VIPs: ARP replies, ICMP echo replies,
//! NDP neighbour advertisements, and the ICMP errors telling a sender that its packet does
//! not fit the path to the backend (fragmentation needed, Packet Too Big). Pure frame transforms: the caller decides whether the
//! address asked about is a VIP and sends the result.
//!
//! `frame` is the frame buffer, which may be longer than the received frame (a whole UMEM
//! chunk); each function returns the length of the reply in it.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{ArpPacket, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN};

use super::headers::{parse, protocol, Headers, L3};
use super::{checksum, Error, Result, ETHERNET_MIN_FRAME_LEN};

const ARP_IPV4_LEN: usize = 28;
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;
const ICMPV4_ECHO_REQUEST: u8 = 8;
const ICMPV4_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const NDP_SOLICIT: u8 = 135;
const NDP_ADVERT: u8 = 136;
/// Neighbour solicitation/advertisement: type, code, checksum, flags/reserved, target.
const NDP_MESSAGE_LEN: usize = 24;
/// Target link-layer address option (RFC 4861 §4.6.1) for Ethernet: type, length, MAC.
const NDP_TLLA_OPTION_LEN: usize = 8;
const NDP_OPTION_TARGET_LL_ADDR: u8 = 2;
const NDP_FLAG_SOLICITED: u8 = 0x40;
const NDP_FLAG_OVERRIDE: u8 = 0x20;
/// Hop limit of NDP messages (RFC 4861 §7.1.1) and of the NDP replies.
const NDP_HOP_LIMIT: u8 = 255;
/// TTL / hop limit of echo replies and errors: a fresh packet from this host (RFC 1700
/// default).
const REPLY_TTL: u8 = 64;
const ICMPV4_DESTINATION_UNREACHABLE: u8 = 3;
const ICMPV4_FRAGMENTATION_NEEDED: u8 = 4;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// Type, code, checksum and the 4-byte field (unused + next-hop MTU, or MTU) of an ICMP
/// error, before the quoted packet.
const ICMP_ERROR_HEADER_LEN: usize = 8;
//# RFC 1812 §4.3.2.3: the ICMP datagram SHOULD contain as much of the original datagram
//# as possible without the length of the ICMP datagram exceeding 576 bytes.
const ICMPV4_ERROR_MAX_LEN: usize = 576;
//# RFC 4443 §2.4 (c): as much of invoking packet as possible without the ICMPv6 packet
//# exceeding the minimum IPv6 MTU.
const ICMPV6_ERROR_MAX_LEN: usize = 1280;
/// IPv4 flags/fragment-offset word: Don't Fragment.
const IPV4_DONT_FRAGMENT: u8 = 0x40;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Ethernet address of ff02::1 (RFC 2464 §7: 33:33 and the low 32 bits).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Zero-pad a reply of `len` bytes to the Ethernet minimum when the buffer has room, so no
/// stale bytes of the buffer go out as padding.
#[inline]
fn pad(frame: &mut [u8], len: usize) -> usize {
    match frame.get_mut(len..ETHERNET_MIN_FRAME_LEN) {
        Some(padding) => {
            padding.fill(0);
            ETHERNET_MIN_FRAME_LEN
        }
        None => len,
    }
}

/// Swap the Ethernet destination and source addresses.
#[inline]
fn swap_macs(frame: &mut [u8]) {
    let (dst, rest) = frame.split_at_mut(6);
    dst.swap_with_slice(&mut rest[..6]);
}

/// The ARP header of an Ethernet/IPv4 ARP frame parsed as `headers`.
#[inline]
fn arp_packet<'a>(frame: &'a [u8], headers: &Headers) -> Option<ArpPacket<&'a [u8]>> {
    if headers.l3 != L3::Arp {
        return None;
    }
    let start = usize::from(headers.l3_offset);
    let arp = ArpPacket::new_unchecked(frame.get(start..start + ARP_IPV4_LEN)?);
    // The accessors place fields by these lengths: check them here, not only in the parse
    // that produced `headers`, so headers of another frame cannot make them panic.
    (arp.hardware_len() == 6 && arp.protocol_len() == 4).then_some(arp)
}

/// The address an ARP request asks for, `None` for anything else.
#[inline]
pub fn arp_request_target(frame: &[u8], headers: &Headers) -> Option<Ipv4Addr> {
    let arp = arp_packet(frame, headers)?;
    if u16::from(arp.operation()) != ARP_OP_REQUEST {
        return None;
    }
    let target: [u8; 4] = arp.target_protocol_addr().try_into().ok()?;
    Some(Ipv4Addr::from(target))
}

/// Turn an ARP request into the reply saying `our_mac` has the asked-for address.
/// `Unsupported` if the frame is not an Ethernet/IPv4 ARP request.
pub fn arp_reply(frame: &mut [u8], our_mac: [u8; 6]) -> Result<usize> {
    let headers = parse(frame)?;
    if arp_request_target(frame, &headers).is_none() {
        return Err(Error::Unsupported);
    }
    let start = usize::from(headers.l3_offset);
    let end = start + ARP_IPV4_LEN;
    swap_macs(frame);
    frame[6..12].copy_from_slice(&our_mac);
    let mut arp = ArpPacket::new_unchecked(&mut frame[start..end]);
    let (asker_mac, asker_ip, target_ip) = {
        let mut asker_mac = [0u8; 6];
        asker_mac.copy_from_slice(arp.source_hardware_addr());
        let mut asker_ip = [0u8; 4];
        asker_ip.copy_from_slice(arp.source_protocol_addr());
        let mut target_ip = [0u8; 4];
        target_ip.copy_from_slice(arp.target_protocol_addr());
        (asker_mac, asker_ip, target_ip)
    };
    //# RFC 826: swap hardware and protocol fields, putting the local hardware and protocol
    //# addresses in the sender fields. Set the ar$op field to ares_op$REPLY.
    arp.set_operation(ARP_OP_REPLY.into());
    arp.set_source_hardware_addr(&our_mac);
    arp.set_source_protocol_addr(&target_ip);
    arp.set_target_hardware_addr(&asker_mac);
    arp.set_target_protocol_addr(&asker_ip);
    Ok(pad(frame, end))
}

/// The L4 bytes of an unfragmented ICMP message of family `l3` parsed as `headers`, with
/// its type checked to be `request`.
#[inline]
fn icmp_request<'a>(
    frame: &'a mut [u8],
    headers: &Headers,
    l3: L3,
    icmp_proto: u8,
    request: u8,
) -> Result<&'a mut [u8]> {
    if headers.l3 != l3 || headers.l4_proto != icmp_proto || headers.fragment {
        return Err(Error::Unsupported);
    }
    if usize::from(headers.l3_offset) < ETHERNET_HEADER_LEN {
        return Err(Error::Malformed);
    }
    let start = usize::from(headers.l4_offset);
    let icmp = frame
        .get_mut(start..start + usize::from(headers.l4_len))
        .ok_or(Error::Truncated)?;
    match icmp.get(..4) {
        Some(&[icmp_type, 0, _, _]) if icmp_type == request => Ok(icmp),
        Some(_) => Err(Error::Unsupported),
        None => Err(Error::Truncated),
    }
}

/// Replace the type of an ICMPv6 message whose code is 0, updating its checksum (the
/// pseudo-header's addresses keep the covered sum away from the ambiguous zero).
#[inline]
fn set_icmp_type(icmp: &mut [u8], old: u8, new: u8) {
    icmp[0] = new;
    let sum = u16::from_be_bytes([icmp[2], icmp[3]]);
    //# RFC 1624 §3 eqn. 3 on the type/code word.
    let sum = checksum::update_u16(sum, u16::from(old) << 8, u16::from(new) << 8);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Turn an ICMPv4 echo request (parsed as `headers`) into its reply: MACs and addresses
/// swapped, TTL 64, type 0, checksums updated. `Unsupported` for anything else.
pub fn icmpv4_echo_reply(frame: &mut [u8], headers: &Headers) -> Result<usize> {
    icmp_request(
        frame,
        headers,
        L3::Ipv4,
        protocol::ICMP,
        ICMPV4_ECHO_REQUEST,
    )?;
    let l3 = usize::from(headers.l3_offset);
    let l4 = usize::from(headers.l4_offset);
    let end = l4 + usize::from(headers.l4_len);
    let header = frame.get_mut(l3..l4).ok_or(Error::Truncated)?;
    if header.len() < IPV4_HEADER_LEN {
        return Err(Error::Malformed);
    }
    //# RFC 792, Echo Reply: the source and destination addresses are simply reversed, the
    //# type code changed to 0, and the checksum recomputed.
    let (src, dst) = header[12..20].split_at_mut(4);
    src.swap_with_slice(dst);
    header[8] = REPLY_TTL;
    let sum = checksum::ipv4_header(header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    // ICMPv4 has no pseudo-header: the checksum is computed afresh. An incremental
    // update cannot tell an all-zero message's checksum (0xffff) from 0x0000, which a
    // receiver rejects; the message is short and this is not the forwarding path.
    let icmp = &mut frame[l4..end];
    icmp[0] = ICMPV4_ECHO_REPLY;
    icmp[2..4].fill(0);
    let sum = !checksum::sum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    swap_macs(frame);
    Ok(pad(frame, end))
}

/// Turn an ICMPv6 echo request (parsed as `headers`, no extension headers) into its reply:
/// MACs and addresses swapped, hop limit 64, type 129, checksum updated. `Unsupported` for
/// anything else.
pub fn icmpv6_echo_reply(frame: &mut [u8], headers: &Headers) -> Result<usize> {
    icmp_request(
        frame,
        headers,
        L3::Ipv6,
        protocol::ICMPV6,
        ICMPV6_ECHO_REQUEST,
    )?;
    let l3 = usize::from(headers.l3_offset);
    let l4 = usize::from(headers.l4_offset);
    let end = l4 + usize::from(headers.l4_len);
    // A routing header would make the swapped destination wrong: answer plain packets only.
    if l4 != l3 + IPV6_HEADER_LEN {
        return Err(Error::Unsupported);
    }
    //# RFC 4443 §4.2: The data received in the ICMPv6 Echo Request message MUST be returned
    //# entirely and unmodified in the ICMPv6 Echo Reply message.
    let header = &mut frame[l3..l4];
    let (src, dst) = header[8..40].split_at_mut(16);
    src.swap_with_slice(dst);
    header[7] = REPLY_TTL;
    // The pseudo-header sum does not change when source and destination swap.
    set_icmp_type(&mut frame[l4..end], ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY);
    swap_macs(frame);
    Ok(pad(frame, end))
}

/// Whether the IPv4 packet parsed as `headers` has Don't Fragment set: only then may a
/// router answer a packet too big for the next link with "fragmentation needed".
#[inline]
pub fn ipv4_dont_fragment(frame: &[u8], headers: &Headers) -> bool {
    headers.l3 == L3::Ipv4
        && frame
            .get(usize::from(headers.l3_offset) + 6)
            .is_some_and(|flags| flags & IPV4_DONT_FRAGMENT != 0)
}

/// Turn the IPv4 packet `frame[..len]` (parsed as `headers`) into the ICMP error a router
/// returns when it is too big for the next link: "fragmentation needed and DF set" with
/// next-hop MTU `mtu` (RFC 792, RFC 1191 §4), from the packet's destination to its source,
/// quoting as much of the packet as a 576-byte datagram holds. The Ethernet header (and
/// VLAN tag) is kept with its MACs swapped, so the error goes back the way it came.
pub fn icmpv4_fragmentation_needed(
    frame: &mut [u8],
    len: usize,
    headers: &Headers,
    mtu: u16,
) -> Result<usize> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (headers.src, headers.dst) else {
        return Err(Error::Unsupported);
    };
    let ErrorLayout { l3, icmp_at, end } =
        quote_for_error(frame, len, headers, IPV4_HEADER_LEN, ICMPV4_ERROR_MAX_LEN)?;
    super::encap::emit_ipv4(
        &mut frame[l3..icmp_at],
        dst,
        src,
        REPLY_TTL,
        protocol::ICMP,
        0,
        end - icmp_at,
    );
    let icmp = &mut frame[icmp_at..end];
    //# RFC 1191 §4: the router MUST include the MTU of that next-hop network in the
    //# low-order 16 bits of the ICMP header field that is labelled "unused".
    icmp[..8].copy_from_slice(&[
        ICMPV4_DESTINATION_UNREACHABLE,
        ICMPV4_FRAGMENTATION_NEEDED,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    let sum = !checksum::sum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    swap_macs(frame);
    Ok(pad(frame, end))
}

/// Turn the IPv6 packet `frame[..len]` (parsed as `headers`) into the ICMPv6 Packet Too
/// Big error a router returns for it (RFC 4443 §3.2) with `mtu`, from the packet's
/// destination to its source, quoting as much as a 1280-byte packet holds. The Ethernet
/// header is kept with its MACs swapped.
pub fn icmpv6_packet_too_big(
    frame: &mut [u8],
    len: usize,
    headers: &Headers,
    mtu: u32,
) -> Result<usize> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (headers.src, headers.dst) else {
        return Err(Error::Unsupported);
    };
    let ErrorLayout { l3, icmp_at, end } =
        quote_for_error(frame, len, headers, IPV6_HEADER_LEN, ICMPV6_ERROR_MAX_LEN)?;
    super::encap::emit_ipv6(
        &mut frame[l3..icmp_at],
        dst,
        src,
        REPLY_TTL,
        protocol::ICMPV6,
        0,
        end - icmp_at,
    );
    let icmp = &mut frame[icmp_at..end];
    icmp[..4].copy_from_slice(&[ICMPV6_PACKET_TOO_BIG, 0, 0, 0]);
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    let sum = checksum::l4(IpAddr::V6(dst), IpAddr::V6(src), protocol::ICMPV6, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    swap_macs(frame);
    Ok(pad(frame, end))
}

/// Where an ICMP error's parts lie in the frame: its IP header at `l3`, its ICMP header at
/// `icmp_at`, the quoted packet after that up to `end`.
struct ErrorLayout {
    l3: usize,
    icmp_at: usize,
    end: usize,
}

/// Moves the start of the packet `frame[..len]` behind room for an error's IP header of
/// `ip_header_len` bytes and its ICMP header, keeping as much as an error of at most
/// `max_len` bytes may quote. Refused for packets no error may be sent about (see
/// [`error_l3_offset`]).
fn quote_for_error(
    frame: &mut [u8],
    len: usize,
    headers: &Headers,
    ip_header_len: usize,
    max_len: usize,
) -> Result<ErrorLayout> {
    let l3 = error_l3_offset(frame, len, headers, ip_header_len)?;
    let quote = (len - l3).min(max_len - ip_header_len - ICMP_ERROR_HEADER_LEN);
    let icmp_at = l3 + ip_header_len;
    let end = icmp_at + ICMP_ERROR_HEADER_LEN + quote;
    if end > frame.len() {
        return Err(Error::Truncated);
    }
    frame.copy_within(l3..l3 + quote, icmp_at + ICMP_ERROR_HEADER_LEN);
    Ok(ErrorLayout { l3, icmp_at, end })
}

/// Start of the IP header of a packet an ICMP error may be sent about: unfragmented, not
/// itself an ICMP error (RFC 1122 §3.2.2, RFC 4443 §2.4 (e)), with
/// at least `ip_header_len` bytes of IP header inside `len`.
fn error_l3_offset(
    frame: &[u8],
    len: usize,
    headers: &Headers,
    ip_header_len: usize,
) -> Result<usize> {
    let l3 = usize::from(headers.l3_offset);
    if l3 < ETHERNET_HEADER_LEN {
        return Err(Error::Malformed);
    }
    if len > frame.len() || len < l3 + ip_header_len {
        return Err(Error::Truncated);
    }
    // Fragments never reach a backend (counted as `ip_fragment` before balancing).
    if headers.fragment {
        return Err(Error::Unsupported);
    }
    let kind = frame.get(usize::from(headers.l4_offset)).copied();
    let is_error = match headers.l4_proto {
        // Destination unreachable, source quench, redirect, time exceeded, parameter problem.
        protocol::ICMP => kind.is_none_or(|kind| matches!(kind, 3 | 4 | 5 | 11 | 12)),
        // RFC 4443 §2.1: error messages have types 0 to 127.
        protocol::ICMPV6 => kind.is_none_or(|kind| kind < 128),
        _ => false,
    };
    if is_error {
        return Err(Error::Unsupported);
    }
    Ok(l3)
}

/// Is `addr` a solicited-node multicast address (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1)?
#[inline]
fn is_solicited_node(addr: Ipv6Addr) -> bool {
    let octets = addr.octets();
    octets[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The target of a valid neighbour solicitation (parsed as `headers`), `None` otherwise.
pub fn ndp_solicit_target(frame: &[u8], headers: &Headers) -> Option<Ipv6Addr> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (headers.src, headers.dst) else {
        return None;
    };
    if headers.l4_proto != protocol::ICMPV6 || headers.fragment {
        return None;
    }
    let start = usize::from(headers.l4_offset);
    let icmp = frame.get(start..start + usize::from(headers.l4_len))?;
    let target: [u8; 16] = icmp.get(8..NDP_MESSAGE_LEN)?.try_into().ok()?;
    let target = Ipv6Addr::from(target);
    //# RFC 4861 §7.1.1: A node MUST silently discard any received Neighbor Solicitation
    //# messages that do not satisfy all of the following validity checks:
    //# - The IP Hop Limit field has a value of 255 ...
    //# - ICMP Checksum is valid.
    //# - ICMP Code is 0.
    //# - ICMP length (derived from the IP length) is 24 or more octets.
    //# - Target Address is not a multicast address.
    //# - If the IP source address is the unspecified address, the IP destination address
    //#   is a solicited-node multicast address.
    let valid = icmp[0] == NDP_SOLICIT
        && icmp[1] == 0
        && headers.ttl == NDP_HOP_LIMIT
        && !target.is_multicast()
        && (!src.is_unspecified() || is_solicited_node(dst))
        && checksum::l4(headers.src, headers.dst, protocol::ICMPV6, icmp) == 0;
    valid.then_some(target)
}

/// Turn a neighbour solicitation (parsed as `headers`) into the advertisement saying
/// `our_mac` has the target: flags Solicited and Override, a target link-layer address
/// option, checksum. A solicitation from `::` (duplicate address detection) is answered to
/// all nodes with Solicited clear. `Unsupported` if the frame is not a valid solicitation,
/// `Truncated` if `frame` cannot hold the 32-byte advertisement.
pub fn ndp_advert(frame: &mut [u8], headers: &Headers, our_mac: [u8; 6]) -> Result<usize> {
    let target = ndp_solicit_target(frame, headers).ok_or(Error::Unsupported)?;
    let IpAddr::V6(asker) = headers.src else {
        return Err(Error::Unsupported);
    };
    let l3 = usize::from(headers.l3_offset);
    let l4 = l3 + IPV6_HEADER_LEN;
    let end = l4 + NDP_MESSAGE_LEN + NDP_TLLA_OPTION_LEN;
    if l3 < ETHERNET_HEADER_LEN {
        return Err(Error::Malformed);
    }
    if frame.len() < end {
        return Err(Error::Truncated);
    }
    //# RFC 4861 §7.2.4: If the source of the solicitation is the unspecified address, the
    //# node MUST set the Solicited flag to zero and multicast the advertisement to the
    //# all-nodes address. Otherwise, the node MUST set the Solicited flag to one and
    //# unicast the advertisement to the Source Address of the solicitation.
    let (dst, dst_mac, solicited) = if asker.is_unspecified() {
        (ALL_NODES, ALL_NODES_MAC, 0)
    } else {
        let mut asker_mac = [0u8; 6];
        asker_mac.copy_from_slice(&frame[6..12]);
        (asker, asker_mac, NDP_FLAG_SOLICITED)
    };
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&our_mac);

    let mut ip = smoltcp::wire::Ipv6Packet::new_unchecked(&mut frame[l3..l4]);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len((NDP_MESSAGE_LEN + NDP_TLLA_OPTION_LEN) as u16);
    ip.set_next_header(protocol::ICMPV6.into());
    //# RFC 4861 §7.1.2: The IP Hop Limit field has a value of 255.
    ip.set_hop_limit(NDP_HOP_LIMIT);
    ip.set_src_addr(target);
    ip.set_dst_addr(dst);

    let icmp = &mut frame[l4..end];
    icmp[..4].copy_from_slice(&[NDP_ADVERT, 0, 0, 0]);
    icmp[4..8].copy_from_slice(&[solicited | NDP_FLAG_OVERRIDE, 0, 0, 0]);
    icmp[8..24].copy_from_slice(&target.octets());
    //# RFC 4861 §4.6.1: Type 2 for Target Link-layer Address; Length in units of 8 octets.
    icmp[24] = NDP_OPTION_TARGET_LL_ADDR;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&our_mac);
    let sum = checksum::l4(IpAddr::V6(target), IpAddr::V6(dst), protocol::ICMPV6, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures::*;

    const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);

    // Expected replies, built with scapy.
    // Ether / ARP is at 02:00:00:00:00:02 says 198.18.100.10 / Raw
    #[rustfmt::skip]
    static ARP_REPLY: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x02, 0xc6, 0x12, 0x64, 0x0a, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01, 0xc6, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // Ether / IP / ICMP 198.18.100.10 > 198.18.0.1 echo-reply 0 / Raw
    #[rustfmt::skip]
    static ICMP4_ECHO_REPLY: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x08, 0x00, 0x45, 0x00, 0x00, 0x24, 0x00, 0x05, 0x00, 0x00, 0x40, 0x01,
        0x8a, 0xa4, 0xc6, 0x12, 0x64, 0x0a, 0xc6, 0x12, 0x00, 0x01, 0x00, 0x00,
        0x36, 0x37, 0x12, 0x34, 0x00, 0x01, 0x70, 0x69, 0x6e, 0x67, 0x64, 0x61,
        0x74, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // Ether / IPv6 / ICMPv6 Echo Reply (id: 0x1234 seq: 0x1)
    #[rustfmt::skip]
    static ICMP6_ECHO_REPLY: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0x40, 0x20, 0x01,
        0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0x58, 0x69, 0x12, 0x34,
        0x00, 0x01, 0x70, 0x69, 0x6e, 0x67, 0x64, 0x61, 0x74, 0x61,
    ];
    // Ether / IPv6 / ICMPv6ND_NA (S, O) / target link-layer address 02:00:00:00:00:02
    #[rustfmt::skip]
    static NDP_NA: [u8; 86] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01,
        0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0x00, 0x88, 0x55, 0x60, 0x00,
        0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x02,
    ];
    // Ether / IPv6 / ICMPv6 Neighbor Discovery - Neighbor Solicitation (tgt: 2001:db8:100::10)
    #[rustfmt::skip]
    static NDP_DAD_NS: [u8; 78] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0xff, 0x00, 0x00, 0x10, 0x87, 0x00, 0x4b, 0xcf, 0x00, 0x00,
        0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    ];
    // Ether / IPv6 to ff02::1 / ICMPv6ND_NA (O) / target link-layer address 02:00:00:00:00:02
    #[rustfmt::skip]
    static NDP_DAD_NA: [u8; 86] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01,
        0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0x00, 0xf7, 0x0b, 0x20, 0x00,
        0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x02,
    ];

    /// `fixture` in a 256-byte buffer whose tail is not zero, as a reused UMEM chunk is.
    fn chunk(fixture: &[u8]) -> [u8; 256] {
        let mut buffer = [0xa5u8; 256];
        buffer[..fixture.len()].copy_from_slice(fixture);
        buffer
    }

    #[test]
    fn test_arp_reply() {
        let headers = parse(&ARP_REQUEST).unwrap();
        assert_eq!(arp_request_target(&ARP_REQUEST, &headers), Some(VIP4));
        let mut frame = ARP_REQUEST;
        assert_eq!(arp_reply(&mut frame, OUR_MAC), Ok(60));
        assert_eq!(frame, ARP_REPLY);
        // A reply is not a request: no target, no answer.
        let headers = parse(&ARP_REPLY).unwrap();
        assert_eq!(arp_request_target(&ARP_REPLY, &headers), None);
        assert_eq!(arp_reply(&mut frame, OUR_MAC), Err(Error::Unsupported));
        let mut not_arp = ICMP4_ECHO;
        assert_eq!(arp_reply(&mut not_arp, OUR_MAC), Err(Error::Unsupported));
        // Headers of a valid request applied to a frame with other address lengths.
        let headers = parse(&ARP_REQUEST).unwrap();
        let mut odd_lengths = ARP_REQUEST;
        odd_lengths[14 + 4] = 7;
        assert_eq!(arp_request_target(&odd_lengths, &headers), None);
    }

    #[test]
    fn test_icmpv4_echo_reply() {
        let mut frame = chunk(&ICMP4_ECHO);
        let headers = parse(&frame).unwrap();
        assert_eq!(icmpv4_echo_reply(&mut frame, &headers), Ok(60));
        assert_eq!(frame[..60], ICMP4_ECHO_REPLY);
        // Unpadded when the buffer is the received frame.
        let mut exact = ICMP4_ECHO;
        assert_eq!(
            icmpv4_echo_reply(&mut exact, &headers),
            Ok(ICMP4_ECHO.len())
        );
        assert_eq!(exact, ICMP4_ECHO_REPLY[..ICMP4_ECHO.len()]);
        // The reply itself is not answered.
        let headers = parse(&ICMP4_ECHO_REPLY).unwrap();
        let mut reply = ICMP4_ECHO_REPLY;
        assert_eq!(
            icmpv4_echo_reply(&mut reply, &headers),
            Err(Error::Unsupported)
        );
        let mut tcp = TCP4_VLAN;
        let headers = parse(&tcp).unwrap();
        assert_eq!(
            icmpv4_echo_reply(&mut tcp, &headers),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn test_icmpv6_echo_reply() {
        let mut frame = chunk(&ICMP6_ECHO);
        let headers = parse(&frame).unwrap();
        assert_eq!(
            icmpv6_echo_reply(&mut frame, &headers),
            Ok(ICMP6_ECHO_REPLY.len())
        );
        assert_eq!(frame[..ICMP6_ECHO_REPLY.len()], ICMP6_ECHO_REPLY);
        let headers = parse(&ICMP6_ECHO_REPLY).unwrap();
        let mut reply = ICMP6_ECHO_REPLY;
        assert_eq!(
            icmpv6_echo_reply(&mut reply, &headers),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn test_ndp_advert() {
        let headers = parse(&NDP_NS).unwrap();
        assert_eq!(ndp_solicit_target(&NDP_NS, &headers), Some(VIP6));
        let mut frame = chunk(&NDP_NS);
        assert_eq!(ndp_advert(&mut frame, &headers, OUR_MAC), Ok(NDP_NA.len()));
        assert_eq!(frame[..NDP_NA.len()], NDP_NA);
    }

    #[test]
    fn test_ndp_advert_for_duplicate_address_detection() {
        let headers = parse(&NDP_DAD_NS).unwrap();
        assert_eq!(ndp_solicit_target(&NDP_DAD_NS, &headers), Some(VIP6));
        let mut frame = chunk(&NDP_DAD_NS);
        assert_eq!(
            ndp_advert(&mut frame, &headers, OUR_MAC),
            Ok(NDP_DAD_NA.len())
        );
        assert_eq!(frame[..NDP_DAD_NA.len()], NDP_DAD_NA);
        // The solicitation without options is 8 bytes shorter than the advertisement.
        let mut exact = NDP_DAD_NS;
        assert_eq!(
            ndp_advert(&mut exact, &headers, OUR_MAC),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn test_ndp_solicit_validity() {
        let headers = parse(&NDP_NS).unwrap();
        let check = |at: usize, value: u8| {
            let mut frame = NDP_NS;
            frame[at] = value;
            let headers = parse(&frame).unwrap();
            ndp_solicit_target(&frame, &headers)
        };
        assert_eq!(check(14 + 7, 64), None, "hop limit not 255");
        assert_eq!(check(14 + 40 + 1, 1), None, "code not 0");
        assert_eq!(check(14 + 40 + 4, 1), None, "bad checksum");
        assert_eq!(check(14 + 40, NDP_ADVERT), None, "an advertisement");
        let mut short = headers;
        short.l4_len = 20;
        assert_eq!(ndp_solicit_target(&NDP_NS, &short), None);
        assert_eq!(
            ndp_solicit_target(&ICMP6_ECHO, &parse(&ICMP6_ECHO).unwrap()),
            None
        );
        let mut echo = ICMP6_ECHO;
        assert_eq!(
            ndp_advert(&mut echo, &parse(&ICMP6_ECHO).unwrap(), OUR_MAC),
            Err(Error::Unsupported)
        );
    }
}
