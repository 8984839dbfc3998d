//! What the generator sends: the protocol, flow and size mix, and `FrameWriter`, which
//! writes one stamped frame into a UMEM frame per call from prebuilt templates,
//! patching only the per-packet fields and updating checksums incrementally.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::stamp::{Stamp, STAMP_LEN};
use crate::wire::checksum;
use crate::wire::frames::{self, tcp_flags, FrameError, FrameSpec, Transport};
use crate::wire::headers::protocol;
use crate::wire::sctp::{self, ChunkRepr, PacketRepr};

const ETHERNET_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const TCP_LEN: usize = 20;
const SCTP_DATA_OFFSET: usize = sctp::HEADER_LEN + sctp::DATA_FIXED_LEN;
/// An INIT's stamp travels in a Padding parameter after the fixed fields.
const SCTP_INIT_STAMP_OFFSET: usize = sctp::HEADER_LEN + sctp::INIT_FIXED_LEN + 4;
/// Padding parameter type: the receiver ignores its value (RFC 4820 §3).
const PARAM_PADDING: u16 = 0x8005;

/// Smallest and largest `--size` (frame bytes without the FCS).
pub const MIN_FRAME: usize = 64;
/// Largest `--size`: a 1500-byte IP packet plus its Ethernet header.
pub const MAX_FRAME: usize = 1514;

/// Simple IMIX, 7:4:1 by packet count: frames of 64, 590 and 1514 bytes (IP packets of
/// 50, 576 and 1500), interleaved so every 12 packets hold the whole mix.
const IMIX: [usize; 12] = [64, 590, 64, 64, 590, 64, 1514, 64, 590, 64, 590, 64];

/// The kind of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// UDP datagrams over a fixed set of flows.
    Udp,
    /// TCP SYNs, a new flow (source address and port) every packet: a SYN flood.
    TcpSyn,
    /// TCP ACKs over a fixed set of flows: established connections.
    TcpEst,
    /// SCTP: INIT and COOKIE-ECHO per association, then DATA over the associations.
    Sctp,
    /// SCTP INITs, each from a new source (65536 addresses from --src up, then the
    /// next port): a spoofed INIT flood.
    SctpInit,
}

/// Frame sizes: one size, or the IMIX mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeMix {
    /// Every frame this many bytes (FCS excluded).
    Fixed(usize),
    /// Simple IMIX (64/590/1514 bytes, 7:4:1).
    Imix,
}

impl std::str::FromStr for SizeMix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("imix") {
            return Ok(SizeMix::Imix);
        }
        let size: usize = text
            .parse()
            .map_err(|_| format!("`{text}` is neither a frame size in bytes nor `imix`"))?;
        if !(MIN_FRAME..=MAX_FRAME).contains(&size) {
            return Err(format!(
                "frame size {size} is outside {MIN_FRAME}..={MAX_FRAME} bytes"
            ));
        }
        Ok(SizeMix::Fixed(size))
    }
}

impl std::fmt::Display for SizeMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeMix::Fixed(size) => write!(f, "{size}"),
            SizeMix::Imix => f.write_str("imix"),
        }
    }
}

/// Everything that decides the frames one sender thread writes.
#[derive(Clone, Debug)]
pub struct TrafficSpec {
    /// Kind of traffic.
    pub proto: Proto,
    /// Flows (SCTP: associations); flow `i` uses source port `src_port + i` and moves
    /// to the next source address when the ports run out.
    pub flows: u32,
    /// Frame sizes.
    pub sizes: SizeMix,
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// First source address.
    pub src: IpAddr,
    /// SCTP: a second client address, listed in each INIT; every other DATA comes from it.
    pub second_src: Option<IpAddr>,
    /// Destination address (the VIP).
    pub dst: IpAddr,
    /// First source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl TrafficSpec {
    /// Source address and port of flow `flow`.
    #[inline]
    fn flow_source(&self, flow: u64) -> (IpAddr, u16) {
        let span = u64::from(u16::MAX - self.src_port) + 1;
        let port = self.src_port + (flow % span) as u16;
        (offset_addr(self.src, flow / span), port)
    }

    /// Source address and port of flood packet `flow`: 65536 addresses from `src` up
    /// before the port moves, so per-source limits see a new source every packet.
    #[inline]
    fn flood_source(&self, flow: u64) -> (IpAddr, u16) {
        let span = u64::from(u16::MAX - self.src_port) + 1;
        let port = self.src_port + ((flow >> 16) % span) as u16;
        (offset_addr(self.src, flow & 0xffff), port)
    }

    /// The association's verification tag as the (imagined) server chose it: xlb
    /// learns it from COOKIE-ECHO and routes DATA by it.
    #[inline]
    fn sctp_tag(flow: u64) -> u32 {
        0x5c00_0000 | (flow as u32 & 0x00ff_ffff)
    }
}

/// `base` plus `offset` in its low bits (the offset stays below 2^32 in practice).
#[inline]
fn offset_addr(base: IpAddr, offset: u64) -> IpAddr {
    match base {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(offset as u32))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6).wrapping_add(u128::from(offset)),
        )),
    }
}

/// Where the per-packet fields sit in a template.
#[derive(Clone, Debug)]
struct Template {
    bytes: Vec<u8>,
    /// Offset of the source address.
    src_at: usize,
    /// Offset of the IPv4 header checksum (IPv6 has none).
    ip_checksum_at: Option<usize>,
    /// Offset of the L4 header.
    l4_at: usize,
    /// Offset of the stamp.
    stamp_at: usize,
}

/// Writes the frames of one stream (sender thread).
pub struct FrameWriter {
    spec: TrafficSpec,
    stream: u16,
    templates: Vec<Template>,
    /// Index into `templates` for packet `seq % len`.
    cycle: Vec<u8>,
    /// Template values of the per-flow fields, which the checksums were computed over.
    template_src: IpAddr,
}

impl FrameWriter {
    /// Prebuilds the templates for `spec`, stamping frames with `stream`. Frames too
    /// small for the headers plus the 16-byte stamp are grown to fit.
    pub fn new(spec: &TrafficSpec, stream: u16) -> Result<Self, FrameError> {
        let sizes: Vec<usize> = match spec.sizes {
            SizeMix::Fixed(size) => vec![size],
            SizeMix::Imix => vec![64, 590, 1514],
        };
        let templates = sizes
            .iter()
            .map(|&size| template(spec, size))
            .collect::<Result<Vec<_>, _>>()?;
        let cycle = match spec.sizes {
            SizeMix::Fixed(_) => vec![0],
            SizeMix::Imix => IMIX
                .iter()
                .map(|size| sizes.iter().position(|s| s == size).unwrap_or(0) as u8)
                .collect(),
        };
        Ok(FrameWriter {
            spec: spec.clone(),
            stream,
            templates,
            cycle,
            template_src: spec.src,
        })
    }

    /// Frame lengths this writer produces, smallest first (after growing to fit).
    pub fn frame_lengths(&self) -> Vec<usize> {
        let mut lengths: Vec<usize> = self.templates.iter().map(|t| t.bytes.len()).collect();
        lengths.sort_unstable();
        lengths
    }

    /// Writes packet `seq` of this stream, sent at `now_ns`, into `buf`; returns its
    /// length (0 if `buf` is too small, which a UMEM frame never is).
    #[inline]
    pub fn write(&self, buf: &mut [u8], seq: u64, now_ns: u64) -> usize {
        let slot = self.cycle[(seq % self.cycle.len() as u64) as usize];
        let template = &self.templates[slot as usize];
        let len = template.bytes.len();
        let Some(out) = buf.get_mut(..len) else {
            return 0;
        };
        out.copy_from_slice(&template.bytes);
        let flow = match self.spec.proto {
            // A new flow every packet: the stream and sequence number make it unique.
            Proto::TcpSyn | Proto::SctpInit => (seq << 4) | u64::from(self.stream & 0xf),
            _ => seq % u64::from(self.spec.flows.max(1)),
        };
        let (mut src, port) = match self.spec.proto {
            Proto::SctpInit => self.spec.flood_source(flow),
            _ => self.spec.flow_source(flow),
        };
        if let (Proto::Sctp, Some(second)) = (self.spec.proto, self.spec.second_src) {
            if seq % 2 == 1 {
                src = offset_addr(
                    second,
                    flow / (u64::from(u16::MAX - self.spec.src_port) + 1),
                );
            }
        }
        let stamp = Stamp {
            stream: self.stream,
            seq: seq as u32,
            sent_ns: now_ns,
        }
        .to_bytes();
        match self.spec.proto {
            // DATA under the association's tag, its TSN following the sequence number.
            Proto::Sctp => {
                let tag = TrafficSpec::sctp_tag(flow);
                self.patch_sctp(template, out, src, port, tag, seq as u32, &stamp)
            }
            //# RFC 9260 §3.3.2: The Initiate Tag is allowed to have any value except 0.
            Proto::SctpInit => {
                let initiate_tag = (flow.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32 | 1;
                self.patch_sctp(template, out, src, port, 0, initiate_tag, &stamp)
            }
            _ => self.patch_tcp_udp(template, out, src, port, &stamp),
        }
        len
    }

    #[inline]
    fn patch_ip(&self, template: &Template, out: &mut [u8], src: IpAddr) {
        let (old, new) = (addr_bytes(&self.template_src), addr_bytes(&src));
        let (old, new) = (&old[..], &new[..]);
        let n = old.len().min(new.len());
        out[template.src_at..template.src_at + n].copy_from_slice(&new[..n]);
        if let Some(at) = template.ip_checksum_at {
            let sum = u16::from_be_bytes([out[at], out[at + 1]]);
            let sum = checksum::update_bytes(sum, &old[..n], &new[..n]);
            out[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
    }

    #[inline]
    fn patch_tcp_udp(
        &self,
        template: &Template,
        out: &mut [u8],
        src: IpAddr,
        port: u16,
        stamp: &[u8; STAMP_LEN],
    ) {
        self.patch_ip(template, out, src);
        let l4 = template.l4_at;
        let checksum_at = match self.spec.proto {
            Proto::Udp => l4 + 6,
            _ => l4 + 16,
        };
        let mut sum = u16::from_be_bytes([out[checksum_at], out[checksum_at + 1]]);
        let (old_src, new_src) = (addr_bytes(&self.template_src), addr_bytes(&src));
        sum = checksum::update_bytes(sum, &old_src, &new_src);
        sum = checksum::update_u16(sum, self.spec.src_port, port);
        sum = checksum::update_bytes(sum, &[0u8; STAMP_LEN], stamp);
        if self.spec.proto == Proto::Udp && sum == 0 {
            //# RFC 768: If the computed checksum is zero, it is transmitted as all ones.
            sum = 0xffff;
        }
        out[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
        out[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
        out[template.stamp_at..template.stamp_at + STAMP_LEN].copy_from_slice(stamp);
    }

    /// Patches an SCTP template: source, port, verification tag and the chunk's first
    /// 32-bit field (a DATA chunk's TSN, an INIT's Initiate Tag), then the CRC32c.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn patch_sctp(
        &self,
        template: &Template,
        out: &mut [u8],
        src: IpAddr,
        port: u16,
        verification_tag: u32,
        chunk_word: u32,
        stamp: &[u8; STAMP_LEN],
    ) {
        self.patch_ip(template, out, src);
        out[template.stamp_at..template.stamp_at + STAMP_LEN].copy_from_slice(stamp);
        let mut packet = sctp::Packet::new_unchecked(&mut out[template.l4_at..]);
        packet.set_src_port(port);
        packet.set_verification_tag(verification_tag);
        packet.chunk_bytes_mut()[4..8].copy_from_slice(&chunk_word.to_be_bytes());
        //# RFC 9260 §6.8: the CRC32c covers the whole SCTP packet, common header with
        //# the checksum field zeroed and all chunks.
        packet.fill_checksum();
    }

    /// The INIT and COOKIE-ECHO frames that set up the associations this stream
    /// serves: every flow `f` with `f % streams == stream`. Built once, before sending.
    pub fn sctp_setup_frames(&self, streams: u16) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        let streams = u64::from(streams.max(1));
        for flow in (u64::from(self.stream)..u64::from(self.spec.flows)).step_by(streams as usize) {
            let (src, port) = self.spec.flow_source(flow);
            let span = u64::from(u16::MAX - self.spec.src_port) + 1;
            let mut addresses = vec![src];
            if let Some(second) = self.spec.second_src {
                addresses.push(offset_addr(second, flow / span));
            }
            //# RFC 9260 §8.5.1: INIT is sent with a Verification Tag of 0.
            let init = [ChunkRepr::Init {
                initiate_tag: 0x1c00_0000 | (flow as u32 & 0x00ff_ffff),
                a_rwnd: 65535,
                outbound_streams: 1,
                inbound_streams: 1,
                initial_tsn: 0,
                addresses: &addresses,
            }];
            let cookie_bytes = flow.to_be_bytes();
            let cookie = [ChunkRepr::CookieEcho {
                cookie: &cookie_bytes,
            }];
            for (tag, chunks) in [(0, &init[..]), (TrafficSpec::sctp_tag(flow), &cookie[..])] {
                let bytes = PacketRepr {
                    src_port: port,
                    dst_port: self.spec.dst_port,
                    verification_tag: tag,
                    chunks,
                }
                .to_vec();
                out.push(frames::build(&FrameSpec {
                    src_mac: self.spec.src_mac,
                    dst_mac: self.spec.dst_mac,
                    src: SocketAddr::new(src, 0),
                    dst: SocketAddr::new(self.spec.dst, 0),
                    transport: Transport::Raw {
                        protocol: protocol::SCTP,
                        bytes: &bytes,
                    },
                })?);
            }
        }
        Ok(out)
    }
}

/// An address's bytes in a fixed buffer (IPv4 in the first 4).
#[inline]
fn addr_bytes(addr: &IpAddr) -> ArrayAddr {
    match addr {
        IpAddr::V4(v4) => ArrayAddr::V4(v4.octets()),
        IpAddr::V6(v6) => ArrayAddr::V6(v6.octets()),
    }
}

/// An address's bytes without allocating.
enum ArrayAddr {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl std::ops::Deref for ArrayAddr {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            ArrayAddr::V4(bytes) => bytes,
            ArrayAddr::V6(bytes) => bytes,
        }
    }
}

/// The template frame of `size` bytes for `spec`: per-flow fields at flow 0's values,
/// stamp zeroed, checksums valid.
fn template(spec: &TrafficSpec, size: usize) -> Result<Template, FrameError> {
    let l3_len = if spec.src.is_ipv4() {
        IPV4_LEN
    } else {
        IPV6_LEN
    };
    let l4_at = ETHERNET_LEN + l3_len;
    let header_len = match spec.proto {
        Proto::Udp => UDP_LEN,
        Proto::TcpSyn | Proto::TcpEst => TCP_LEN,
        Proto::Sctp => SCTP_DATA_OFFSET,
        Proto::SctpInit => SCTP_INIT_STAMP_OFFSET,
    };
    let mut payload_len = size.saturating_sub(l4_at + header_len).max(STAMP_LEN);
    if matches!(spec.proto, Proto::Sctp | Proto::SctpInit) {
        // Chunks and parameters are padded to 4 bytes; keep the frame exactly their end.
        payload_len = payload_len.next_multiple_of(4);
    }
    let payload = vec![0u8; payload_len];
    let src = SocketAddr::new(spec.src, spec.src_port);
    let dst = SocketAddr::new(spec.dst, spec.dst_port);
    let sctp_bytes;
    let transport = match spec.proto {
        Proto::Udp => Transport::Udp { payload: &payload },
        Proto::TcpSyn => Transport::Tcp {
            flags: tcp_flags::SYN,
            payload: &payload,
        },
        Proto::TcpEst => Transport::Tcp {
            flags: tcp_flags::ACK,
            payload: &payload,
        },
        Proto::Sctp => {
            let data = [ChunkRepr::Data {
                tsn: 0,
                stream_id: 0,
                stream_seq: 0,
                ppid: 0,
                payload: &payload,
            }];
            sctp_bytes = PacketRepr {
                src_port: spec.src_port,
                dst_port: spec.dst_port,
                verification_tag: 0,
                chunks: &data,
            }
            .to_vec();
            Transport::Raw {
                protocol: protocol::SCTP,
                bytes: &sctp_bytes,
            }
        }
        Proto::SctpInit => {
            sctp_bytes = init_with_padding(spec, &payload);
            Transport::Raw {
                protocol: protocol::SCTP,
                bytes: &sctp_bytes,
            }
        }
    };
    let bytes = frames::build(&FrameSpec {
        src_mac: spec.src_mac,
        dst_mac: spec.dst_mac,
        src,
        dst,
        transport,
    })?;
    Ok(Template {
        bytes,
        src_at: ETHERNET_LEN + if spec.src.is_ipv4() { 12 } else { 8 },
        ip_checksum_at: spec.src.is_ipv4().then_some(ETHERNET_LEN + 10),
        l4_at,
        stamp_at: l4_at + header_len,
    })
}

/// An INIT (no address parameters) whose Padding parameter carries `padding`: the
/// stamp and whatever makes up the frame size.
fn init_with_padding(spec: &TrafficSpec, padding: &[u8]) -> Vec<u8> {
    //# RFC 9260 §8.5.1: INIT is sent with a Verification Tag of 0.
    let mut bytes = PacketRepr {
        src_port: spec.src_port,
        dst_port: spec.dst_port,
        verification_tag: 0,
        chunks: &[ChunkRepr::Init {
            initiate_tag: 1,
            a_rwnd: 65535,
            outbound_streams: 1,
            inbound_streams: 1,
            initial_tsn: 0,
            addresses: &[],
        }],
    }
    .to_vec();
    let param_len = 4 + padding.len();
    bytes.extend_from_slice(&PARAM_PADDING.to_be_bytes());
    bytes.extend_from_slice(&(param_len as u16).to_be_bytes());
    bytes.extend_from_slice(padding);
    let chunk_len = (sctp::INIT_FIXED_LEN + param_len) as u16;
    bytes[sctp::HEADER_LEN + 2..sctp::HEADER_LEN + 4].copy_from_slice(&chunk_len.to_be_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktgen::stamp;
    use smoltcp::wire::{Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

    fn spec(proto: Proto, src: &str, dst: &str) -> TrafficSpec {
        TrafficSpec {
            proto,
            flows: 100_000,
            sizes: SizeMix::Fixed(64),
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: src.parse().unwrap(),
            second_src: None,
            dst: dst.parse().unwrap(),
            src_port: 1024,
            dst_port: 53,
        }
    }

    fn write(writer: &FrameWriter, seq: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let len = writer.write(&mut buf, seq, 1_000 + seq);
        buf.truncate(len);
        buf
    }

    #[test]
    fn udp_frames_have_valid_checksums_across_flows_and_stamps() {
        let writer = FrameWriter::new(&spec(Proto::Udp, "198.18.0.1", "198.18.100.10"), 2).unwrap();
        assert_eq!(writer.frame_lengths(), vec![64]);
        let mut sources = std::collections::HashSet::new();
        for seq in [0, 1, 64_511, 64_512, 99_999, 100_000, 123_456_789] {
            let frame = write(&writer, seq);
            assert_eq!(frame.len(), 64);
            let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
            assert!(ip.verify_checksum(), "seq {seq}");
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
            sources.insert((ip.src_addr(), udp.src_port()));
            let found = stamp::find(&frame).unwrap();
            assert_eq!(
                (found.stream, found.seq, found.sent_ns),
                (2, seq as u32, 1_000 + seq)
            );
        }
        // Flow 100000 wraps to flow 0; the others are distinct.
        assert_eq!(sources.len(), 6);
    }

    #[test]
    fn tcp_syn_opens_a_new_flow_every_packet_over_ipv6() {
        let mut s = spec(Proto::TcpSyn, "2001:db8::1", "2001:db8:100::10");
        s.dst_port = 80;
        let writer = FrameWriter::new(&s, 0).unwrap();
        // IPv6 + TCP + stamp do not fit 64 bytes: the frame grows.
        assert_eq!(
            writer.frame_lengths(),
            vec![ETHERNET_LEN + IPV6_LEN + TCP_LEN + STAMP_LEN]
        );
        let mut flows = std::collections::HashSet::new();
        for seq in 0..1000 {
            let frame = write(&writer, seq);
            let ip = Ipv6Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.syn() && !tcp.ack());
            assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
            flows.insert((ip.src_addr(), tcp.src_port()));
        }
        assert_eq!(flows.len(), 1000);
    }

    #[test]
    fn tcp_est_sends_acks_over_a_fixed_flow_set() {
        let mut s = spec(Proto::TcpEst, "198.18.0.1", "198.18.100.10");
        s.flows = 3;
        let writer = FrameWriter::new(&s, 0).unwrap();
        let mut flows = std::collections::HashSet::new();
        for seq in 0..30 {
            let frame = write(&writer, seq);
            let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.ack() && !tcp.syn());
            assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
            flows.insert(tcp.src_port());
        }
        assert_eq!(flows.len(), 3);
    }

    #[test]
    fn imix_cycles_through_three_sizes_seven_four_one() {
        let mut s = spec(Proto::Udp, "198.18.0.1", "198.18.100.10");
        s.sizes = "imix".parse().unwrap();
        let writer = FrameWriter::new(&s, 0).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for seq in 0..12 {
            let frame = write(&writer, seq);
            let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
            assert!(ip.verify_checksum());
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
            *counts.entry(frame.len()).or_insert(0) += 1;
        }
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![(64, 7), (590, 4), (1514, 1)]
        );
    }

    #[test]
    fn sizes_parse_and_refuse_out_of_range() {
        assert_eq!("64".parse::<SizeMix>(), Ok(SizeMix::Fixed(64)));
        assert_eq!("IMIX".parse::<SizeMix>(), Ok(SizeMix::Imix));
        assert!("63".parse::<SizeMix>().is_err());
        assert!("1515".parse::<SizeMix>().is_err());
        assert!("big".parse::<SizeMix>().is_err());
    }

    #[test]
    fn sctp_sets_up_associations_then_sends_data_under_their_tags() {
        use crate::wire::sctp::{ChunkType, InitChunk, Packet};
        let mut s = spec(Proto::Sctp, "198.18.0.10", "198.18.100.20");
        s.flows = 4;
        s.dst_port = 38412;
        s.second_src = Some("198.18.0.11".parse().unwrap());
        let writer = FrameWriter::new(&s, 1).unwrap();
        let setup = writer.sctp_setup_frames(2).unwrap();
        // Stream 1 of 2 serves flows 1 and 3: INIT and COOKIE-ECHO each.
        assert_eq!(setup.len(), 4);
        let init = Ipv4Packet::new_checked(&setup[0][ETHERNET_LEN..]).unwrap();
        let init = Packet::new_checked(init.payload()).unwrap();
        assert_eq!(init.verification_tag(), 0);
        assert!(init.verify_checksum());
        let chunk = init.chunks().next().unwrap().unwrap();
        let addresses: Vec<IpAddr> = InitChunk::new_checked(chunk)
            .unwrap()
            .addresses()
            .map(|a| a.unwrap())
            .collect();
        assert_eq!(addresses, vec![s.src, s.second_src.unwrap()]);
        let cookie = Ipv4Packet::new_checked(&setup[1][ETHERNET_LEN..]).unwrap();
        let cookie = Packet::new_checked(cookie.payload()).unwrap();
        assert_eq!(cookie.verification_tag(), TrafficSpec::sctp_tag(1));
        assert_eq!(
            cookie.chunks().next().unwrap().unwrap().chunk_type(),
            ChunkType::CookieEcho
        );

        for seq in 0..8u64 {
            let frame = write(&writer, seq);
            let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
            assert!(ip.verify_checksum());
            let expected_src: IpAddr = if seq % 2 == 1 {
                "198.18.0.11"
            } else {
                "198.18.0.10"
            }
            .parse()
            .unwrap();
            assert_eq!(IpAddr::V4(ip.src_addr()), expected_src);
            let packet = Packet::new_checked(ip.payload()).unwrap();
            assert!(packet.verify_checksum(), "seq {seq}");
            assert_eq!(packet.verification_tag(), TrafficSpec::sctp_tag(seq % 4));
            assert_eq!(stamp::find(&frame).unwrap().seq, seq as u32);
        }
    }

    #[test]
    fn sctp_init_floods_valid_inits_from_a_new_source_every_packet() {
        use crate::lb::sctp::{SctpAssociationTable, SctpConfig, SctpDecision, SctpPath};
        use crate::wire::sctp::{ChunkType, InitChunk, Packet};
        let mut s = spec(Proto::SctpInit, "198.18.128.0", "198.18.100.20");
        s.dst_port = 38412;
        let writer = FrameWriter::new(&s, 0).unwrap();
        let table = SctpAssociationTable::new(SctpConfig {
            capacity: 64,
            max_addresses: 8,
            linger_ms: 1_000,
            idle_ms: 60_000,
            embryonic_ms: 5_000,
            embryonic_per_source: 1,
        });
        let mut sources = std::collections::HashSet::new();
        for seq in 0..1000u64 {
            let frame = write(&writer, seq);
            let ip = Ipv4Packet::new_checked(&frame[ETHERNET_LEN..]).unwrap();
            assert!(ip.verify_checksum());
            let packet = Packet::new_checked(ip.payload()).unwrap();
            assert!(packet.verify_checksum(), "seq {seq}");
            assert_eq!(packet.verification_tag(), 0);
            let chunk = packet.chunks().next().unwrap().unwrap();
            assert_eq!(chunk.chunk_type(), ChunkType::Init);
            assert_ne!(InitChunk::new_checked(chunk).unwrap().initiate_tag(), 0);
            sources.insert(ip.src_addr());
            // xlb takes each as a new association from a new source.
            let path = SctpPath {
                service: 1,
                src: IpAddr::V4(ip.src_addr()),
                dst: IpAddr::V4(ip.dst_addr()),
                src_port: packet.src_port(),
                dst_port: packet.dst_port(),
            };
            let decision = table.decide(&path, ip.payload(), 0, || Some(1), |_| true);
            assert!(
                matches!(decision, SctpDecision::Forward { .. }),
                "{decision:?}"
            );
        }
        assert_eq!(sources.len(), 1000);
    }
}
