//! Builds complete Ethernet frames (IPv4 or IPv6, then TCP, UDP or raw L4 bytes such
//! as SCTP) with correct lengths and checksums, through smoltcp's wire views.

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};

/// Ethernet header length.
const ETHERNET_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const TCP_LEN: usize = 20;
const UDP_LEN: usize = 8;

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The transport part of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment with these flags and payload.
    Tcp {
        /// Flag bits (see [`tcp_flags`]).
        flags: u8,
        /// Payload bytes.
        payload: &'a [u8],
    },
    /// A UDP datagram.
    Udp {
        /// Payload bytes.
        payload: &'a [u8],
    },
    /// Ready-made L4 bytes (e.g. an SCTP packet with its CRC32c) under this protocol.
    Raw {
        /// IANA protocol number.
        protocol: u8,
        /// The L4 header and payload.
        bytes: &'a [u8],
    },
}

/// Everything needed to build one frame.
#[derive(Clone, Debug)]
pub struct FrameSpec<'a> {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address and port (the port is ignored for `Raw`).
    pub src: SocketAddr,
    /// Destination address and port (the port is ignored for `Raw`).
    pub dst: SocketAddr,
    /// Transport header and payload.
    pub transport: Transport<'a>,
}

/// Why a frame could not be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Source and destination are of different IP families.
    #[error("source {0} and destination {1} are of different IP families")]
    MixedFamilies(IpAddr, IpAddr),
    /// The payload does not fit an IP packet.
    #[error("payload of {0} bytes is too large")]
    TooLarge(usize),
}

/// Builds the frame described by `spec`.
pub fn build(spec: &FrameSpec<'_>) -> Result<Vec<u8>, FrameError> {
    let (protocol, l4_len) = match spec.transport {
        Transport::Tcp { payload, .. } => (IpProtocol::Tcp, TCP_LEN + payload.len()),
        Transport::Udp { payload } => (IpProtocol::Udp, UDP_LEN + payload.len()),
        Transport::Raw { protocol, bytes } => (IpProtocol::from(protocol), bytes.len()),
    };
    if l4_len > 9000 {
        return Err(FrameError::TooLarge(l4_len));
    }
    let l3_len = match (spec.src.ip(), spec.dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => IPV4_LEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => IPV6_LEN,
        (a, b) => return Err(FrameError::MixedFamilies(a, b)),
    };
    let mut frame = vec![0u8; ETHERNET_LEN + l3_len + l4_len];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_src_addr(EthernetAddress(spec.src_mac));
    eth.set_dst_addr(EthernetAddress(spec.dst_mac));
    eth.set_ethertype(if l3_len == IPV4_LEN {
        EthernetProtocol::Ipv4
    } else {
        EthernetProtocol::Ipv6
    });
    let l3 = &mut frame[ETHERNET_LEN..];
    let (src, dst): (IpAddress, IpAddress) = match (spec.src.ip(), spec.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut l3[..]);
            ip.set_version(4);
            ip.set_header_len(IPV4_LEN as u8);
            ip.set_total_len((IPV4_LEN + l4_len) as u16);
            ip.set_dont_frag(true);
            ip.set_hop_limit(64);
            ip.set_next_header(protocol);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            (s.into(), d.into())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = Ipv6Packet::new_unchecked(&mut l3[..]);
            ip.set_version(6);
            ip.set_payload_len(l4_len as u16);
            ip.set_hop_limit(64);
            ip.set_next_header(protocol);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            (s.into(), d.into())
        }
        (a, b) => return Err(FrameError::MixedFamilies(a, b)),
    };
    let l4 = &mut frame[ETHERNET_LEN + l3_len..];
    match spec.transport {
        Transport::Tcp { flags, payload } => {
            l4[TCP_LEN..].copy_from_slice(payload);
            let mut tcp = TcpPacket::new_unchecked(&mut l4[..]);
            tcp.set_src_port(spec.src.port());
            tcp.set_dst_port(spec.dst.port());
            tcp.set_header_len(TCP_LEN as u8);
            tcp.set_window_len(65535);
            tcp.set_seq_number(smoltcp::wire::TcpSeqNumber(1));
            let raw = tcp.into_inner();
            raw[13] = flags;
            let mut tcp = TcpPacket::new_unchecked(&mut raw[..]);
            tcp.fill_checksum(&src, &dst);
        }
        Transport::Udp { payload } => {
            l4[UDP_LEN..].copy_from_slice(payload);
            let mut udp = UdpPacket::new_unchecked(&mut l4[..]);
            udp.set_src_port(spec.src.port());
            udp.set_dst_port(spec.dst.port());
            udp.set_len(l4_len as u16);
            udp.fill_checksum(&src, &dst);
        }
        Transport::Raw { bytes, .. } => l4.copy_from_slice(bytes),
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_syn_over_ipv4_has_valid_checksums() {
        let frame = build(&FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.18.0.1:40000".parse().unwrap(),
            dst: "198.18.100.10:80".parse().unwrap(),
            transport: Transport::Tcp {
                flags: tcp_flags::SYN,
                payload: b"",
            },
        })
        .unwrap();
        let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.syn() && !tcp.ack());
        assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
    }

    #[test]
    fn udp_over_ipv6_has_valid_checksum() {
        let frame = build(&FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "[2001:db8::1]:5000".parse().unwrap(),
            dst: "[2001:db8:100::10]:53".parse().unwrap(),
            transport: Transport::Udp { payload: b"hello" },
        })
        .unwrap();
        let ip = Ipv6Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.payload(), b"hello");
        assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
    }

    #[test]
    fn mixed_families_are_refused() {
        let err = build(&FrameSpec {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src: "198.18.0.1:1".parse().unwrap(),
            dst: "[2001:db8::1]:1".parse().unwrap(),
            transport: Transport::Udp { payload: b"" },
        });
        assert!(matches!(err, Err(FrameError::MixedFamilies(..))));
    }
}
