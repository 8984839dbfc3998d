//! `rewrite`: carries out each packet's target with its service's forwarding mode —
//! DSR MAC rewrite, IPIP/IP6IP6/GUE encapsulation, or NAT — and picks the egress port.

use std::net::IpAddr;

use crate::config::Forwarding;
use crate::lb::snapshot::{BackendEntry, NextHop, Snapshot};
use crate::lb::verdict::{DropReason, PortId, Verdict};
use crate::pipeline::batch::PacketBuf;
use crate::pipeline::stage::{Batch, Context, Stage, Target};
use crate::pipeline::WorkerState;
use crate::wire::checksum;
use crate::wire::encap;
use crate::wire::headers::protocol;
use crate::wire::headers::{Headers, L3};
use crate::wire::reply;
use smoltcp::wire::{IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN};

/// Hop limit of the outer header we add when encapsulating.
const OUTER_TTL: u8 = 64;
/// GUE source ports vary per flow inside the ephemeral range so backends' RSS spreads.
const GUE_SOURCE_PORT_BASE: u16 = 0xC000;
/// The IPv6 minimum link MTU (RFC 8200 §5).
const IPV6_MIN_MTU: usize = 1280;

/// Rewrites frames towards their backend (or, for NAT replies, their client).
pub struct Rewrite;

impl Stage for Rewrite {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, worker: &mut WorkerState) {
        for i in 0..batch.packets.len() {
            if batch.verdicts[i] != Verdict::Pending {
                continue;
            }
            let meta = &batch.meta[i];
            let packet = &mut batch.packets[i];
            let outcome = match meta.target {
                Target::None => Err(DropReason::NoService),
                Target::Backend { service, backend } => {
                    let forwarding = ctx.snapshot.service(service).forwarding;
                    to_backend(ctx.snapshot, backend).and_then(|(b, hop)| {
                        let room = room(ctx.snapshot, hop, forwarding, b.address);
                        if ip_len(&meta.headers) > room {
                            return refuse_too_big(packet, &meta.headers, room, ctx.ingress);
                        }
                        forward(
                            ctx.snapshot,
                            packet,
                            &meta.headers,
                            meta.hash,
                            forwarding,
                            b,
                            hop,
                        )
                        .map(Egress::Forward)
                    })
                }
                Target::NatOut {
                    backend,
                    snat,
                    snat_port,
                } => to_backend(ctx.snapshot, backend).and_then(|(b, hop)| {
                    let h = &meta.headers;
                    let room = room(ctx.snapshot, hop, Forwarding::Nat, b.address);
                    if ip_len(h) > room {
                        return refuse_too_big(packet, h, room, ctx.ingress);
                    }
                    let (dst, dst_port) = (b.address, h.dst_port);
                    translate(packet.data_mut(), h, (snat, snat_port), (dst, dst_port))?;
                    set_macs(packet.data_mut(), hop.src_mac, hop.dst_mac);
                    Ok(Egress::Forward(hop.port))
                }),
                Target::NatBack {
                    vip,
                    vip_port,
                    client,
                    client_port,
                    reply_port,
                    reply_mac,
                } => translate(
                    packet.data_mut(),
                    &meta.headers,
                    (vip, vip_port),
                    (client, client_port),
                )
                .map(|()| {
                    set_macs(
                        packet.data_mut(),
                        ctx.snapshot.port_mac(reply_port),
                        reply_mac,
                    );
                    Egress::Forward(reply_port)
                }),
            };
            batch.verdicts[i] = match outcome {
                Ok(Egress::Forward(port)) => Verdict::Forward(port),
                Ok(Egress::Answer(port)) => {
                    // The frame is an error to the client now, not a packet for the backend.
                    batch.meta[i].target = Target::None;
                    worker.counters.icmp_too_big += 1;
                    Verdict::Forward(port)
                }
                Err(reason) => Verdict::Drop(reason),
            };
        }
    }
}

/// Where a rewritten frame goes.
enum Egress {
    /// Towards the backend (or, for NAT replies, the client).
    Forward(PortId),
    /// Back to the sender as an ICMP error that replaced the packet.
    Answer(PortId),
}

/// The IP packet's length: headers and payload, frame padding excluded.
#[inline]
fn ip_len(h: &Headers) -> usize {
    usize::from(h.l4_offset.saturating_sub(h.l3_offset)) + usize::from(h.l4_len)
}

/// The largest client packet that still fits the egress link once `forwarding` added its
/// outer headers for `backend`.
#[inline]
fn room(snapshot: &Snapshot, hop: NextHop, forwarding: Forwarding, backend: IpAddr) -> usize {
    let outer_ip = match backend {
        IpAddr::V4(_) => IPV4_HEADER_LEN,
        IpAddr::V6(_) => IPV6_HEADER_LEN,
    };
    let overhead = match forwarding {
        Forwarding::Dsr | Forwarding::Nat => 0,
        Forwarding::Ipip => outer_ip,
        Forwarding::Gue => outer_ip + UDP_HEADER_LEN + encap::GUE_HEADER_LEN,
    };
    (snapshot.port_mtu(hop.port) as usize).saturating_sub(overhead)
}

/// Turns a packet too big for the egress link into the ICMP error a router on the path
/// would send (RFC 1191 §4, RFC 8201 §4), announcing `room`, so the sender's path MTU
/// discovery shrinks its packets; drops what no error may be sent for. This is how a TCP
/// flow through an encapsulating service learns the tunnel's smaller MTU (Katran does the
/// same).
fn refuse_too_big(
    packet: &mut PacketBuf<'_>,
    h: &Headers,
    room: usize,
    ingress: PortId,
) -> Result<Egress, DropReason> {
    let answered = match h.l3 {
        L3::Ipv4 if reply::ipv4_dont_fragment(packet.data(), h) => {
            let mtu = u16::try_from(room).unwrap_or(u16::MAX);
            reply::icmpv4_fragmentation_needed(packet.buf, packet.len, h, mtu)
        }
        //# RFC 8201 §4: a node MUST NOT reduce its estimate of the Path MTU below the
        //# IPv6 minimum link MTU.
        L3::Ipv6 if room >= IPV6_MIN_MTU => {
            let mtu = u32::try_from(room).unwrap_or(u32::MAX);
            reply::icmpv6_packet_too_big(packet.buf, packet.len, h, mtu)
        }
        _ => return Err(DropReason::MtuExceeded),
    };
    packet.len = answered.map_err(|_| DropReason::MtuExceeded)?;
    Ok(Egress::Answer(ingress))
}

fn to_backend(snapshot: &Snapshot, id: u32) -> Result<(&BackendEntry, NextHop), DropReason> {
    let backend = snapshot.backend(id).ok_or(DropReason::NoBackend)?;
    let hop = backend.next_hop.ok_or(DropReason::BackendUnresolved)?;
    Ok((backend, hop))
}

/// DSR or encapsulation towards a backend; returns the egress port.
fn forward(
    snapshot: &Snapshot,
    packet: &mut PacketBuf<'_>,
    h: &Headers,
    hash: u64,
    forwarding: Forwarding,
    backend: &BackendEntry,
    hop: NextHop,
) -> Result<PortId, DropReason> {
    let l3 = h.l3_offset as usize;
    let outer = snapshot.encapsulation();
    let encapsulated = match (forwarding, backend.address) {
        (Forwarding::Dsr, _) => Ok(packet.len),
        (Forwarding::Ipip, IpAddr::V4(dst)) => {
            let src = outer.source_v4.ok_or(DropReason::NoBackend)?;
            encap::ipip(packet.buf, packet.len, l3, src, dst, OUTER_TTL)
        }
        (Forwarding::Ipip, IpAddr::V6(dst)) => {
            let src = outer.source_v6.ok_or(DropReason::NoBackend)?;
            encap::ip6ip(packet.buf, packet.len, l3, src, dst, OUTER_TTL)
        }
        (Forwarding::Gue, dst) => {
            let src = match dst {
                IpAddr::V4(_) => outer.source_v4.map(IpAddr::V4),
                IpAddr::V6(_) => outer.source_v6.map(IpAddr::V6),
            }
            .ok_or(DropReason::NoBackend)?;
            let source_port = GUE_SOURCE_PORT_BASE | (hash as u16 & 0x3fff);
            encap::gue(
                packet.buf,
                packet.len,
                l3,
                src,
                dst,
                source_port,
                outer.gue_port,
                OUTER_TTL,
            )
        }
        // ICMP errors quoting a NAT flow: the backend does not hold the VIP.
        (Forwarding::Nat, _) => return Err(DropReason::IcmpUnmatched),
    };
    packet.len = encapsulated.map_err(|_| DropReason::TooBig)?;
    set_macs(packet.data_mut(), hop.src_mac, hop.dst_mac);
    Ok(hop.port)
}

#[inline]
fn set_macs(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    if let Some(header) = frame.get_mut(..12) {
        header[..6].copy_from_slice(&dst);
        header[6..].copy_from_slice(&src);
    }
}

/// Rewrites source and destination address and port in place, updating the IPv4
/// header checksum and the TCP/UDP checksum incrementally (RFC 1624).
fn translate(
    frame: &mut [u8],
    h: &Headers,
    (src, src_port): (IpAddr, u16),
    (dst, dst_port): (IpAddr, u16),
) -> Result<(), DropReason> {
    let l3 = h.l3_offset as usize;
    let l4 = h.l4_offset as usize;
    let (src_at, dst_at, width) = match h.l3 {
        L3::Ipv4 => (l3 + 12, l3 + 16, 4),
        L3::Ipv6 => (l3 + 8, l3 + 24, 16),
        L3::Arp => return Err(DropReason::Malformed),
    };
    let (new_src, new_dst) = (address_bytes(&src), address_bytes(&dst));
    if new_src.len() != width || new_dst.len() != width {
        // Families were checked at validation; a mismatch here is a bad packet.
        return Err(DropReason::Malformed);
    }
    let l4_checksum_at = match h.l4_proto {
        protocol::TCP => l4 + 16,
        protocol::UDP => l4 + 6,
        _ => return Err(DropReason::Malformed),
    };
    if frame.len() < l4_checksum_at + 2 || frame.len() < dst_at + width {
        return Err(DropReason::Malformed);
    }
    let old_src: [u8; 16] = copy16(&frame[src_at..src_at + width]);
    let old_dst: [u8; 16] = copy16(&frame[dst_at..dst_at + width]);
    let old_ports = [read16(frame, l4), read16(frame, l4 + 2)];

    let mut l4_sum = read16(frame, l4_checksum_at);
    let udp_without_checksum = h.l4_proto == protocol::UDP && l4_sum == 0 && h.l3 == L3::Ipv4;
    l4_sum = checksum::update_bytes(l4_sum, &old_src[..width], &new_src);
    l4_sum = checksum::update_bytes(l4_sum, &old_dst[..width], &new_dst);
    l4_sum = checksum::update_u16(l4_sum, old_ports[0], src_port);
    l4_sum = checksum::update_u16(l4_sum, old_ports[1], dst_port);
    if h.l4_proto == protocol::UDP && l4_sum == 0 {
        //# RFC 768: an all-zero computed checksum is transmitted as all ones.
        l4_sum = 0xffff;
    }
    if !udp_without_checksum {
        write16(frame, l4_checksum_at, l4_sum);
    }
    if h.l3 == L3::Ipv4 {
        let mut ip_sum = read16(frame, l3 + 10);
        ip_sum = checksum::update_bytes(ip_sum, &old_src[..4], &new_src);
        ip_sum = checksum::update_bytes(ip_sum, &old_dst[..4], &new_dst);
        write16(frame, l3 + 10, ip_sum);
    }
    frame[src_at..src_at + width].copy_from_slice(&new_src);
    frame[dst_at..dst_at + width].copy_from_slice(&new_dst);
    write16(frame, l4, src_port);
    write16(frame, l4 + 2, dst_port);
    Ok(())
}

/// An address's bytes: 4 for IPv4, 16 for IPv6.
fn address_bytes(addr: &IpAddr) -> arrayvec::ArrayVec<u8, 16> {
    match addr {
        IpAddr::V4(a) => a.octets().into_iter().collect(),
        IpAddr::V6(a) => a.octets().into_iter().collect(),
    }
}

fn copy16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out[..bytes.len()].copy_from_slice(bytes);
    out
}

#[inline]
fn read16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

#[inline]
fn write16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
}
