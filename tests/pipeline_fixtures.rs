//! Table-driven pipeline fixtures (Katran `testing/fixtures`): each is a description,
//! an input frame, the expected verdict and the expected output frame, run through
//! the `l4lb` pipeline over in-memory buffers. TCP/UDP/SCTP × dsr/ipip/gue/nat,
//! IPv4 and IPv6, plus the drops and the answers xlb gives itself.
//!
//! Expected frames are built independently of the code under test: with smoltcp's
//! emitters and full checksum computation, so incremental updates are checked too.

#[allow(dead_code)]
#[path = "../src/wire/fixtures.rs"]
mod fixtures;

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::{
    Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket,
};
use xlb::config;
use xlb::lb::hash::flow_hash;
use xlb::lb::snapshot::StaticResolver;
use xlb::lb::verdict::{DropReason, Verdict};
use xlb::pipeline::batch::PacketBuf;
use xlb::pipeline::offline::OfflinePipeline;
use xlb::wire::frames::{self, tcp_flags, FrameSpec, Transport};
use xlb::wire::sctp::{self, ChunkRepr, PacketRepr};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const XLB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const B1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x11];
const B2_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x12];
const B3_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x13];
const GUE_PORT: u16 = 6080;

/// One backend per service so every expected frame is fully determined.
const TABLE: &str = include_str!("fixtures/pipeline.yaml");

/// The fixture table's l4lb pipeline; flows and sessions idle out after a minute.
fn harness() -> OfflinePipeline {
    let table = config::parse(TABLE, "fixtures.yaml").expect("fixture table is valid");
    let resolver = StaticResolver {
        port_macs: vec![XLB_MAC],
        egress: 0,
    };
    OfflinePipeline::new(&table, &resolver, 4096, 1024).expect("the fixture pipeline sets up")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn frame(src: &str, dst: &str, transport: Transport<'_>) -> Vec<u8> {
    frames::build(&FrameSpec {
        src_mac: CLIENT_MAC,
        dst_mac: XLB_MAC,
        src: addr(src),
        dst: addr(dst),
        transport,
    })
    .unwrap()
}

fn syn(src: &str, dst: &str) -> Vec<u8> {
    frame(
        src,
        dst,
        Transport::Tcp {
            flags: tcp_flags::SYN,
            payload: b"",
        },
    )
}

fn udp(src: &str, dst: &str) -> Vec<u8> {
    frame(
        src,
        dst,
        Transport::Udp {
            payload: b"fixture",
        },
    )
}

fn sctp_init(src: &str, dst: &str, tag: u32, extra: &[IpAddr]) -> Vec<u8> {
    let (s, d) = (addr(src), addr(dst));
    let bytes = PacketRepr {
        src_port: s.port(),
        dst_port: d.port(),
        verification_tag: 0,
        chunks: &[ChunkRepr::Init {
            initiate_tag: tag,
            a_rwnd: 65535,
            outbound_streams: 2,
            inbound_streams: 2,
            initial_tsn: 1,
            addresses: extra,
        }],
    }
    .to_vec();
    frame(
        src,
        dst,
        Transport::Raw {
            protocol: 132,
            bytes: &bytes,
        },
    )
}

/// What a client sends back to a backend that opened an association from a VIP: an
/// INIT-ACK under the Initiate Tag of the backend's INIT, which never crossed xlb.
fn sctp_init_ack(src: &str, dst: &str, vtag: u32) -> Vec<u8> {
    let mut frame = sctp_init(src, dst, 0x5eed, &[]);
    let sctp_at = frame.len() - (sctp::HEADER_LEN + sctp::INIT_FIXED_LEN);
    let mut packet = sctp::Packet::new_unchecked(&mut frame[sctp_at..]);
    packet.set_verification_tag(vtag);
    packet.chunk_bytes_mut()[0] = u8::from(sctp::ChunkType::InitAck);
    packet.fill_checksum();
    frame
}

fn sctp_data(src: &str, dst: &str, vtag: u32) -> Vec<u8> {
    let (s, d) = (addr(src), addr(dst));
    let bytes = PacketRepr {
        src_port: s.port(),
        dst_port: d.port(),
        verification_tag: vtag,
        chunks: &[ChunkRepr::Data {
            tsn: 1,
            stream_id: 0,
            stream_seq: 0,
            ppid: 60,
            payload: b"ngap",
        }],
    }
    .to_vec();
    frame(
        src,
        dst,
        Transport::Raw {
            protocol: 132,
            bytes: &bytes,
        },
    )
}

/// The input with only the Ethernet addresses rewritten (DSR).
fn with_macs(input: &[u8], dst: [u8; 6]) -> Vec<u8> {
    let mut out = input.to_vec();
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&XLB_MAC);
    out
}

/// Ethernet to `dst` + outer IPv4 (DF, id 0, TTL 64) + `payload` (everything after the input's
/// Ethernet header, optionally behind a UDP+GUE header).
fn outer_ipv4(dst_mac: [u8; 6], dst: &str, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 14 + 20];
    out[..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&XLB_MAC);
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(payload);
    let mut ip = Ipv4Packet::new_unchecked(&mut out[14..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + payload.len()) as u16);
    ip.set_dont_frag(true);
    ip.set_hop_limit(64);
    ip.set_next_header(IpProtocol::from(protocol));
    ip.set_src_addr("198.18.0.2".parse().unwrap());
    ip.set_dst_addr(dst.parse().unwrap());
    ip.fill_checksum();
    out
}

fn outer_ipv6(dst_mac: [u8; 6], dst: &str, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 14 + 40];
    out[..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&XLB_MAC);
    out[12..14].copy_from_slice(&[0x86, 0xdd]);
    out.extend_from_slice(payload);
    let mut ip = Ipv6Packet::new_unchecked(&mut out[14..]);
    ip.set_version(6);
    ip.set_payload_len(payload.len() as u16);
    ip.set_next_header(IpProtocol::from(next_header));
    ip.set_hop_limit(64);
    ip.set_src_addr("2001:db8::2".parse().unwrap());
    ip.set_dst_addr(dst.parse().unwrap());
    out
}

/// UDP (source port from the flow hash) + GUE variant 0 header + the inner packet.
fn gue_payload(outer_src: &str, outer_dst: &str, inner: &[u8], hash: u64) -> Vec<u8> {
    let inner_proto = if inner[0] >> 4 == 4 { 4 } else { 41 };
    let mut udp = vec![0u8; 8];
    udp.extend_from_slice(&[0, inner_proto, 0, 0]);
    udp.extend_from_slice(inner);
    let len = udp.len() as u16;
    let mut packet = UdpPacket::new_unchecked(&mut udp[..]);
    packet.set_src_port(0xC000 | (hash as u16 & 0x3fff));
    packet.set_dst_port(GUE_PORT);
    packet.set_len(len);
    let (s, d): (IpAddr, IpAddr) = (outer_src.parse().unwrap(), outer_dst.parse().unwrap());
    if s.is_ipv6() {
        packet.fill_checksum(&IpAddress::from(s), &IpAddress::from(d));
    } else {
        packet.set_checksum(0);
    }
    udp
}

fn hash_of(src: &str, dst: &str, proto: u8) -> u64 {
    let (s, d) = (addr(src), addr(dst));
    flow_hash(&s.ip(), &d.ip(), s.port(), d.port(), proto)
}

struct Fixture {
    description: &'static str,
    input: Vec<u8>,
    verdict: Verdict,
    output: Option<Vec<u8>>,
}

fn forwarding_fixtures() -> Vec<Fixture> {
    let tcp4 = syn("198.18.0.10:40000", "198.18.100.10:80");
    let tcp6 = syn("[2001:db8::10]:40000", "[2001:db8:100::10]:80");
    let udp4 = udp("198.18.0.10:5000", "198.18.100.10:53");
    let ipip4 = syn("198.18.0.10:40001", "198.18.100.11:80");
    let ip6ip6 = syn("[2001:db8::10]:40001", "[2001:db8:100::11]:80");
    let gue4 = udp("198.18.0.10:5001", "198.18.100.12:9000");
    let gue6 = udp("[2001:db8::10]:5001", "[2001:db8:100::12]:9000");
    let sctp4 = sctp_init("198.18.0.10:5000", "198.18.100.20:38412", 0x1111, &[]);
    let sctp6 = sctp_init(
        "[2001:db8::10]:5000",
        "[2001:db8:100::20]:38412",
        0x2222,
        &[],
    );
    let sctp_ipip = sctp_init("198.18.0.10:5001", "198.18.100.21:38412", 0x3333, &[]);
    let sctp_gue = sctp_init("198.18.0.10:5002", "198.18.100.22:38412", 0x4444, &[]);
    vec![
        Fixture {
            description: "TCP SYN to an IPv4 VIP, dsr: only the MACs change",
            output: Some(with_macs(&tcp4, B1_MAC)),
            input: tcp4,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "TCP SYN to an IPv6 VIP, dsr",
            output: Some(with_macs(&tcp6, B1_MAC)),
            input: tcp6,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "UDP to an IPv4 VIP, dsr",
            output: Some(with_macs(&udp4, B1_MAC)),
            input: udp4,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "TCP to an IPv4 VIP, ipip: IPv4 in IPv4, protocol 4",
            output: Some(outer_ipv4(B2_MAC, "198.18.1.12", 4, &ipip4[14..])),
            input: ipip4,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description:
                "TCP to an IPv6 VIP, ipip to an IPv6 backend: IPv6 in IPv6, next header 41",
            output: Some(outer_ipv6(B2_MAC, "2001:db8::1:12", 41, &ip6ip6[14..])),
            input: ip6ip6,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "UDP to an IPv4 VIP, gue to an IPv6 backend: IPv4 in GUE over IPv6",
            output: Some(outer_ipv6(
                B3_MAC,
                "2001:db8::1:13",
                17,
                &gue_payload(
                    "2001:db8::2",
                    "2001:db8::1:13",
                    &gue4[14..],
                    hash_of("198.18.0.10:5001", "198.18.100.12:9000", 17),
                ),
            )),
            input: gue4,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "UDP to an IPv6 VIP, gue: IPv6 in GUE over IPv6, UDP checksum set",
            output: Some(outer_ipv6(
                B3_MAC,
                "2001:db8::1:13",
                17,
                &gue_payload(
                    "2001:db8::2",
                    "2001:db8::1:13",
                    &gue6[14..],
                    hash_of("[2001:db8::10]:5001", "[2001:db8:100::12]:9000", 17),
                ),
            )),
            input: gue6,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "SCTP INIT to an IPv4 VIP, dsr: the CRC32c is untouched",
            output: Some(with_macs(&sctp4, B1_MAC)),
            input: sctp4,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "SCTP INIT to an IPv6 VIP, dsr",
            output: Some(with_macs(&sctp6, B1_MAC)),
            input: sctp6,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "SCTP INIT, ipip",
            output: Some(outer_ipv4(B2_MAC, "198.18.1.12", 4, &sctp_ipip[14..])),
            input: sctp_ipip,
            verdict: Verdict::Forward(0),
        },
        Fixture {
            description: "SCTP INIT, gue over IPv4 (UDP checksum 0)",
            output: Some(outer_ipv4(
                B3_MAC,
                "198.18.1.13",
                17,
                &gue_payload(
                    "198.18.0.2",
                    "198.18.1.13",
                    &sctp_gue[14..],
                    hash_of("198.18.0.10:5002", "198.18.100.22:38412", 132),
                ),
            )),
            input: sctp_gue,
            verdict: Verdict::Forward(0),
        },
    ]
}

fn drop_fixtures() -> Vec<Fixture> {
    let mut truncated = syn("198.18.0.10:40000", "198.18.100.10:80");
    truncated.truncate(40);
    let mut fragment = udp("198.18.0.10:5000", "198.18.100.10:53");
    // MF set: a first fragment.
    fragment[14 + 6] |= 0x20;
    let mut ipv4 = Ipv4Packet::new_unchecked(&mut fragment[14..]);
    ipv4.fill_checksum();
    let drop = |reason| Verdict::Drop(reason);
    vec![
        Fixture {
            description: "TCP to a VIP on a port no service listens on",
            input: syn("198.18.0.10:40000", "198.18.100.10:81"),
            verdict: drop(DropReason::NoService),
            output: None,
        },
        Fixture {
            description: "TCP from outside the service's source_ranges",
            input: syn("198.19.0.10:40000", "198.18.100.10:80"),
            verdict: drop(DropReason::AclDenied),
            output: None,
        },
        Fixture {
            description: "a frame cut inside its IPv4 header",
            input: truncated,
            verdict: drop(DropReason::Malformed),
            output: None,
        },
        Fixture {
            description: "an IPv4 fragment cannot be matched by port",
            input: fragment,
            verdict: drop(DropReason::IpFragment),
            output: None,
        },
        Fixture {
            description: "SCTP DATA under a tag no association has: dropped, never hashed",
            input: sctp_data("198.18.0.10:5999", "198.18.100.20:38412", 0xdead_beef),
            verdict: drop(DropReason::SctpUnknownAssociation),
            output: None,
        },
        Fixture {
            description:
                "an INIT-ACK answering a backend-initiated association (dsr): dropped, never hashed",
            input: sctp_init_ack("198.18.0.10:38412", "198.18.100.20:38412", 0xba5e_0001),
            verdict: drop(DropReason::SctpUnknownAssociation),
            output: None,
        },
        Fixture {
            description: "the same over ipip",
            input: sctp_init_ack("198.18.0.10:38412", "198.18.100.21:38412", 0xba5e_0002),
            verdict: drop(DropReason::SctpUnknownAssociation),
            output: None,
        },
        Fixture {
            description: "the same over gue",
            input: sctp_init_ack("198.18.0.10:38412", "198.18.100.22:38412", 0xba5e_0003),
            verdict: drop(DropReason::SctpUnknownAssociation),
            output: None,
        },
        Fixture {
            description: "UDP to an SNAT address with no session",
            input: udp("198.18.1.11:8080", "198.18.0.3:20005"),
            verdict: drop(DropReason::NatNoSession),
            output: None,
        },
    ]
}

fn check(harness: &mut OfflinePipeline, fixture: &Fixture) {
    let (verdict, output) = harness.run_frame(&fixture.input, 1);
    assert_eq!(verdict, fixture.verdict, "{}", fixture.description);
    if let Some(expected) = &fixture.output {
        assert_eq!(
            &output, expected,
            "{}: output frame differs",
            fixture.description
        );
    }
}

#[test]
fn forwarding_fixtures_produce_the_expected_frames() {
    let mut harness = harness();
    for fixture in forwarding_fixtures() {
        check(&mut harness, &fixture);
    }
}

#[test]
fn drop_fixtures_are_counted_under_their_reason() {
    let mut harness = harness();
    for fixture in drop_fixtures() {
        let reason = match fixture.verdict {
            Verdict::Drop(reason) => reason,
            other => panic!("not a drop fixture: {other:?}"),
        };
        let before = harness.worker.counters.dropped(reason);
        check(&mut harness, &fixture);
        assert_eq!(
            harness.worker.counters.dropped(reason),
            before + 1,
            "{}",
            fixture.description
        );
    }
}

#[test]
fn a_whole_batch_of_fixtures_gets_the_same_verdicts() {
    let mut harness = harness();
    let fixtures: Vec<Fixture> = forwarding_fixtures()
        .into_iter()
        .chain(drop_fixtures())
        .collect();
    let mut buffers: Vec<Vec<u8>> = fixtures
        .iter()
        .map(|f| {
            let mut b = f.input.clone();
            b.resize(f.input.len() + 128, 0);
            b
        })
        .collect();
    let mut packets: Vec<PacketBuf<'_>> = buffers
        .iter_mut()
        .zip(&fixtures)
        .map(|(b, f)| PacketBuf::new(b, f.input.len()))
        .collect();
    let mut verdicts = vec![Verdict::Pending; packets.len()];
    harness.run(&mut packets, &mut verdicts, 1);
    for ((fixture, verdict), packet) in fixtures.iter().zip(&verdicts).zip(&packets) {
        assert_eq!(
            *verdict, fixture.verdict,
            "{} (batched)",
            fixture.description
        );
        if let Some(expected) = &fixture.output {
            assert_eq!(
                packet.data(),
                &expected[..],
                "{} (batched)",
                fixture.description
            );
        }
    }
    let c = &harness.worker.counters;
    assert_eq!(c.rx_packets, fixtures.len() as u64);
    assert_eq!(c.tx_packets + c.drops.iter().sum::<u64>(), c.rx_packets);
}

#[test]
fn nat_rewrites_both_ways_with_valid_checksums() {
    let mut harness = harness();
    let request = syn("198.18.0.10:40000", "198.18.100.13:8080");
    let (verdict, out) = harness.run_frame(&request, 1);
    assert_eq!(verdict, Verdict::Forward(0));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), "198.18.1.11");
    assert_eq!(ip.src_addr().to_string(), "198.18.0.3");
    let snat_port = u16::from_be_bytes([out[34], out[35]]);
    assert!(
        (20000..=20099).contains(&snat_port),
        "SNAT port {snat_port} outside the range"
    );
    // Byte-exact against a frame built from scratch with full checksums.
    let mut expected = syn(&format!("198.18.0.3:{snat_port}"), "198.18.1.11:8080");
    expected[..6].copy_from_slice(&B1_MAC);
    expected[6..12].copy_from_slice(&XLB_MAC);
    assert_eq!(out, expected, "DNAT+SNAT with incremental checksums");

    // The backend's SYN-ACK to the SNAT address goes back to the client as from the VIP.
    let mut reply = frame(
        "198.18.1.11:8080",
        &format!("198.18.0.3:{snat_port}"),
        Transport::Tcp {
            flags: tcp_flags::SYN | tcp_flags::ACK,
            payload: b"",
        },
    );
    reply[6..12].copy_from_slice(&B1_MAC);
    let (verdict, back) = harness.run_frame(&reply, 1);
    assert_eq!(verdict, Verdict::Forward(0));
    let mut expected = frame(
        "198.18.100.13:8080",
        "198.18.0.10:40000",
        Transport::Tcp {
            flags: tcp_flags::SYN | tcp_flags::ACK,
            payload: b"",
        },
    );
    expected[..6].copy_from_slice(&CLIENT_MAC);
    expected[6..12].copy_from_slice(&XLB_MAC);
    assert_eq!(back, expected, "reverse translation");

    // IPv6 UDP through NAT.
    let (verdict, out6) =
        harness.run_frame(&udp("[2001:db8::10]:5000", "[2001:db8:100::13]:5353"), 1);
    assert_eq!(verdict, Verdict::Forward(0));
    let ip6 = Ipv6Packet::new_checked(&out6[14..]).unwrap();
    assert_eq!(ip6.src_addr().to_string(), "2001:db8::3");
    let udp6 = UdpPacket::new_checked(ip6.payload()).unwrap();
    assert!(udp6.verify_checksum(&ip6.src_addr().into(), &ip6.dst_addr().into()));
}

#[test]
fn sctp_second_path_follows_the_association() {
    let mut harness = harness();
    let a2: IpAddr = "198.18.0.11".parse().unwrap();
    let (v, _) = harness.run_frame(
        &sctp_init("198.18.0.10:5000", "198.18.100.20:38412", 0x1111, &[a2]),
        1,
    );
    assert_eq!(v, Verdict::Forward(0));
    // COOKIE-ECHO teaches the backend's tag.
    let cookie = PacketRepr {
        src_port: 5000,
        dst_port: 38412,
        verification_tag: 0xb0b0,
        chunks: &[ChunkRepr::CookieEcho { cookie: b"cookie" }],
    }
    .to_vec();
    let (v, _) = harness.run_frame(
        &frame(
            "198.18.0.10:5000",
            "198.18.100.20:38412",
            Transport::Raw {
                protocol: 132,
                bytes: &cookie,
            },
        ),
        1,
    );
    assert_eq!(v, Verdict::Forward(0));
    let data = sctp_data("198.18.0.11:5000", "198.18.101.20:38412", 0xb0b0);
    let (v, out) = harness.run_frame(&data, 1);
    assert_eq!(
        v,
        Verdict::Forward(0),
        "DATA from the second address to the second VIP"
    );
    assert_eq!(out, with_macs(&data, B1_MAC));

    // An ICMP error about the second path (a router between the second VIP and the
    // second address) reaches the association's backend, found by the quoted client
    // tag; one quoting a tag of no association is dropped.
    for (quoted_tag, expected) in [
        (0x1111u32, Verdict::Forward(0)),
        (0x2222, Verdict::Drop(DropReason::IcmpUnmatched)),
    ] {
        let error =
            frag_needed_quoting_sctp("198.18.101.20", "198.18.0.11", 38412, 5000, quoted_tag);
        let (v, out) = harness.run_frame(&error, 1);
        assert_eq!(v, expected, "quoted tag {quoted_tag:#x}");
        if expected == Verdict::Forward(0) {
            assert_eq!(out, with_macs(&error, B1_MAC));
        }
    }
}

/// ICMP fragmentation needed from a router on the path, quoting the first 8 bytes (ports
/// and verification tag, RFC 792) of an SCTP packet the backend sent from `vip` to
/// `client`.
fn frag_needed_quoting_sctp(vip: &str, client: &str, sport: u16, dport: u16, tag: u32) -> Vec<u8> {
    let (vip, client): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (vip.parse().unwrap(), client.parse().unwrap());
    let mut quoted = vec![0x45, 0, 0, 48, 0, 0, 0x40, 0, 64, 132, 0, 0];
    quoted.extend_from_slice(&vip.octets());
    quoted.extend_from_slice(&client.octets());
    quoted.extend_from_slice(&sport.to_be_bytes());
    quoted.extend_from_slice(&dport.to_be_bytes());
    quoted.extend_from_slice(&tag.to_be_bytes());
    // RFC 1191 (paraphrased): the next-hop MTU is the low half of the second word.
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend_from_slice(&quoted);
    let sum = !xlb::wire::checksum::sum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    frame(
        "198.18.0.1:0",
        &format!("{vip}:0"),
        Transport::Raw {
            protocol: 1,
            bytes: &icmp,
        },
    )
}

/// The backend MAC a forwarded DSR frame was sent to.
fn sent_to(harness: &mut OfflinePipeline, frame: &[u8]) -> Option<[u8; 6]> {
    match harness.run_frame(frame, 1) {
        (Verdict::Forward(0), out) => Some(out[..6].try_into().unwrap()),
        _ => None,
    }
}

#[test]
fn a_port_hashed_sctp_service_places_every_path_alike_on_any_node() {
    // Node A sees the INIT; node B, which never did, sees another path's DATA.
    let (mut node_a, mut node_b) = (harness(), harness());
    let mut owners = std::collections::HashSet::new();
    for client_port in 40000..40032u16 {
        let init = sctp_init(
            &format!("198.18.0.10:{client_port}"),
            "198.18.100.23:2905",
            0x1000,
            &[],
        );
        let owner = sent_to(&mut node_a, &init).expect("the INIT is placed");
        owners.insert(owner);
        for (client, vip) in [
            (format!("198.18.0.11:{client_port}"), "198.18.100.23:2905"),
            (
                format!("[2001:db8::11]:{client_port}"),
                "[2001:db8:100::23]:2905",
            ),
        ] {
            let data = sctp_data(&client, vip, 0xbeef);
            assert_eq!(
                sent_to(&mut node_b, &data),
                Some(owner),
                "{client} -> {vip}"
            );
        }
    }
    assert!(owners.len() > 1, "ports spread associations over backends");
}

#[test]
fn cooperating_backends_are_found_by_the_identity_in_their_tags() {
    // A node that holds no association places by the tag's top 8 bits.
    let mut node = harness();
    let to = "198.18.100.24:3868";
    assert_eq!(
        sent_to(&mut node, &sctp_data("198.18.0.10:5000", to, 0x0212_3456)),
        Some(B2_MAC)
    );
    assert_eq!(
        sent_to(&mut node, &sctp_data("198.18.0.12:5000", to, 0x01ab_cdef)),
        Some(B1_MAC)
    );
    assert_eq!(
        node.run_frame(&sctp_data("198.18.0.10:5000", to, 0x0700_0001), 1)
            .0,
        Verdict::Drop(DropReason::SctpUnknownAssociation),
        "no backend has tag id 7"
    );
}

/// A TCP segment of `ip_len` bytes of IP packet from `src` to `dst`.
fn full_size(src: &str, dst: &str, ip_len: usize) -> Vec<u8> {
    let header = if addr(src).is_ipv4() {
        20 + 20
    } else {
        40 + 20
    };
    frame(
        src,
        dst,
        Transport::Tcp {
            flags: tcp_flags::ACK,
            payload: &vec![0x5a; ip_len - header],
        },
    )
}

/// The fixture ports' MTU (the static resolver's Ethernet default).
const MTU: usize = 1500;

#[test]
fn packets_too_big_for_the_tunnel_are_answered_with_icmp_errors() {
    let mut harness = harness();
    // IPv4 with DF (the frame builder sets it), ipip adds 20 bytes: 1480 fit, 1481 do not.
    let fits = full_size("198.18.0.10:40002", "198.18.100.11:80", MTU - 20);
    let (v, out) = harness.run_frame(&fits, 1);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(out.len(), 14 + MTU, "encapsulated to exactly the MTU");

    let big = full_size("198.18.0.10:40002", "198.18.100.11:80", MTU - 19);
    let (v, out) = harness.run_frame(&big, 1);
    assert_eq!(
        v,
        Verdict::Forward(0),
        "the error leaves by the ingress port"
    );
    assert_eq!(&out[..6], &CLIENT_MAC, "back to the sender");
    assert_eq!(&out[6..12], &XLB_MAC);
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr().to_string(), "198.18.100.11", "from the VIP");
    assert_eq!(ip.dst_addr().to_string(), "198.18.0.10");
    assert_eq!(ip.next_header(), IpProtocol::Icmp);
    assert_eq!(ip.total_len(), 576, "RFC 1812: at most 576 bytes");
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((u8::from(icmp.msg_type()), icmp.msg_code()), (3, 4));
    assert_eq!(&ip.payload()[6..8], &1480u16.to_be_bytes(), "next-hop MTU");
    assert_eq!(
        &ip.payload()[8..],
        &big[14..14 + 576 - 28],
        "the packet, quoted"
    );

    // Without DF no error may be sent: dropped and counted.
    let mut no_df = big.clone();
    let mut ipv4 = Ipv4Packet::new_unchecked(&mut no_df[14..]);
    ipv4.set_dont_frag(false);
    ipv4.fill_checksum();
    assert_eq!(
        harness.run_frame(&no_df, 1).0,
        Verdict::Drop(DropReason::MtuExceeded)
    );

    // IPv6 in IPv6 adds 40 bytes: Packet Too Big with 1460.
    let big6 = full_size("[2001:db8::10]:40002", "[2001:db8:100::11]:80", MTU);
    let (v, out) = harness.run_frame(&big6, 1);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(&out[..6], &CLIENT_MAC);
    let ip6 = Ipv6Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip6.src_addr().to_string(), "2001:db8:100::11");
    assert_eq!(ip6.dst_addr().to_string(), "2001:db8::10");
    assert_eq!(ip6.next_header(), IpProtocol::Icmpv6);
    assert_eq!(
        40 + ip6.payload_len() as usize,
        1280,
        "RFC 4443: at most 1280 bytes"
    );
    let icmp6 = Icmpv6Packet::new_checked(ip6.payload()).unwrap();
    assert!(icmp6.verify_checksum(&ip6.src_addr(), &ip6.dst_addr()));
    assert_eq!(u8::from(icmp6.msg_type()), 2);
    assert_eq!(&ip6.payload()[4..8], &1460u32.to_be_bytes(), "MTU");
    assert_eq!(&ip6.payload()[8..], &big6[14..14 + 1280 - 48]);

    // GUE over IPv6 adds 40 + 8 + 4 bytes in front of an IPv4 client's packet.
    let (v, out) = harness.run_frame(
        &frame(
            "198.18.0.10:5003",
            "198.18.100.12:9000",
            Transport::Udp {
                payload: &[0; MTU - 28],
            },
        ),
        1,
    );
    assert_eq!(v, Verdict::Forward(0));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(&ip.payload()[6..8], &(MTU as u16 - 52).to_be_bytes());

    // DSR and NAT add nothing: a full-size packet goes through.
    let dsr = full_size("198.18.0.10:40003", "198.18.100.10:80", MTU);
    assert_eq!(harness.run_frame(&dsr, 1).0, Verdict::Forward(0));
    assert_eq!(harness.worker.counters.icmp_too_big, 3);
}

#[test]
fn xlb_answers_arp_ndp_and_echo_for_its_vips() {
    let mut harness = harness();
    // ARP who-has 198.18.100.10 tell 198.18.0.10.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 198, 18, 100, 10]);
    let (v, out) = harness.run_frame(&arp, 1);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(&out[..6], &CLIENT_MAC, "reply to the asker");
    assert_eq!(&out[20..22], &[0, 2], "ARP reply");
    assert_eq!(&out[22..28], &XLB_MAC, "the VIP is at xlb's MAC");

    // ARP for an address that is not ours is ignored.
    let mut other = arp.clone();
    other[41] = 99;
    assert_eq!(
        harness.run_frame(&other, 1).0,
        Verdict::Drop(DropReason::ControlIgnored)
    );

    // ICMP echo to the VIP.
    let mut echo = vec![0u8; 8];
    echo[0] = 8;
    echo[4..8].copy_from_slice(&[0, 1, 0, 1]);
    let sum = !xlb::wire::checksum::sum(&echo);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    let (v, out) = harness.run_frame(
        &frame(
            "198.18.0.10:0",
            "198.18.100.10:0",
            Transport::Raw {
                protocol: 1,
                bytes: &echo,
            },
        ),
        1,
    );
    assert_eq!(v, Verdict::Forward(0));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip.src_addr().to_string(), "198.18.100.10");
    assert_eq!(ip.payload()[0], 0, "echo reply");
}

#[test]
fn icmp_errors_about_a_vip_flow_go_to_its_backend() {
    use fixtures::{ICMP4_FRAG_NEEDED, ICMP6_PTB};
    let mut harness = harness();
    for (description, input) in [
        (
            "fragmentation needed quoting TCP from the VIP",
            &ICMP4_FRAG_NEEDED[..],
        ),
        (
            "packet too big quoting UDP from the IPv6 VIP",
            &ICMP6_PTB[..],
        ),
    ] {
        let (verdict, out) = harness.run_frame(input, 1);
        assert_eq!(verdict, Verdict::Forward(0), "{description}");
        assert_eq!(
            out,
            with_macs(input, B1_MAC),
            "{description}: DSR to the flow's backend"
        );
    }
}

#[test]
fn neighbor_solicitation_for_a_vip_is_answered() {
    use fixtures::NDP_NS;
    let mut harness = harness();
    let (verdict, out) = harness.run_frame(&NDP_NS, 1);
    assert_eq!(verdict, Verdict::Forward(0));
    let ip = Ipv6Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip.src_addr().to_string(), "2001:db8:100::10");
    assert_eq!(ip.payload()[0], 136, "neighbor advertisement");
    assert_eq!(
        &ip.payload()[8..24],
        &"2001:db8:100::10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(&out[6..12], &XLB_MAC);
}
