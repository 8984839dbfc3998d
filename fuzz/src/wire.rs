//! The frame-taking functions of `xlb::wire`: any bytes give a value or an error, never a
//! panic (the contract in `src/wire/mod.rs`), and what they return stays inside the buffer
//! and means what their docs say.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xlb::wire::headers::{self, protocol, Headers, L3};
use xlb::wire::sctp::{AsconfChunk, ChunkType, InitChunk, Packet};
use xlb::wire::{checksum, encap, reply, vlan, Ipv4Packet};

use super::fixtures;
use super::sctp::{ChunkSpec, SctpSpec};
use super::Input;

/// xlb's MAC in the replies.
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Every fixture frame of `src/wire/fixtures.rs`: valid headers to pair with foreign frames.
pub const FIXTURES: [&[u8]; 13] = [
    &fixtures::TCP4_VLAN,
    &fixtures::UDP4_OPTIONS,
    &fixtures::UDP6_EXT,
    &fixtures::UDP6_FRAG_FIRST,
    &fixtures::UDP6_FRAG_LATER,
    &fixtures::TCP4_FRAG_LATER,
    &fixtures::SCTP4,
    &fixtures::ARP_REQUEST,
    &fixtures::ICMP4_ECHO,
    &fixtures::ICMP6_ECHO,
    &fixtures::NDP_NS,
    &fixtures::ICMP4_FRAG_NEEDED,
    &fixtures::ICMP6_PTB,
];

/// Target `wire_headers`: `headers::parse` over the whole input, then the ICMP error quote
/// and the neighbour lookups on what it parsed.
pub fn headers(frame: &[u8]) {
    let Ok(parsed) = headers::parse(frame) else {
        return;
    };
    check_headers(frame, &parsed);
    if let Ok(quoted) = headers::parse_icmp_error(frame, &parsed) {
        if !matches!(
            quoted.l4_proto,
            protocol::TCP | protocol::UDP | protocol::SCTP
        ) {
            assert_eq!((quoted.src_port, quoted.dst_port), (0, 0), "{quoted:?}");
        }
        if quoted.sctp_tag.is_some() {
            assert_eq!(quoted.l4_proto, protocol::SCTP, "{quoted:?}");
        }
        assert_eq!(quoted.src.is_ipv4(), parsed.l3 == L3::Ipv4, "{quoted:?}");
        assert_eq!(quoted.src.is_ipv4(), quoted.dst.is_ipv4(), "{quoted:?}");
    }
    let _ = reply::arp_request_target(frame, &parsed);
    let _ = reply::ndp_solicit_target(frame, &parsed);
}

/// What `Headers` documents about its fields, checked against the frame it came from.
fn check_headers(frame: &[u8], parsed: &Headers) {
    let l3 = usize::from(parsed.l3_offset);
    let l4 = usize::from(parsed.l4_offset);
    let l4_end = l4 + usize::from(parsed.l4_len);
    let expected_l3 = if parsed.vlan_id.is_some() { 18 } else { 14 };
    assert_eq!(l3, expected_l3, "{parsed:?}");
    assert!(l3 <= l4 && l4_end <= frame.len(), "{parsed:?}");
    match parsed.l3 {
        L3::Arp => {
            assert_eq!((l4, parsed.l4_len), (l3, 0), "{parsed:?}");
            assert!(parsed.src.is_unspecified() && parsed.dst.is_unspecified());
        }
        L3::Ipv4 => assert!(parsed.src.is_ipv4() && parsed.dst.is_ipv4(), "{parsed:?}"),
        L3::Ipv6 => assert!(parsed.src.is_ipv6() && parsed.dst.is_ipv6(), "{parsed:?}"),
    }
    let has_ports = matches!(
        parsed.l4_proto,
        protocol::TCP | protocol::UDP | protocol::SCTP
    );
    if parsed.fragment || !has_ports || parsed.l3 == L3::Arp {
        assert_eq!((parsed.src_port, parsed.dst_port), (0, 0), "{parsed:?}");
    }
    if parsed.l4_proto != protocol::TCP || parsed.l3 == L3::Arp {
        assert_eq!(parsed.tcp_flags, 0, "{parsed:?}");
    }
}

/// Target `wire_sctp`: every SCTP view over the input read as an SCTP packet; then the
/// same input read as a [`SctpSpec`], built with `PacketRepr` and read back field by field.
pub fn sctp(data: &[u8]) {
    read_sctp(data);
    let spec = SctpSpec::decode(&mut Input::new(data));
    let bytes = spec.to_bytes();
    check_sctp_roundtrip(&spec, &bytes);
}

/// Reads every field of every view over `bytes`.
fn read_sctp(bytes: &[u8]) {
    let Ok(packet) = Packet::new_checked(bytes) else {
        assert!(bytes.len() < xlb::wire::sctp::HEADER_LEN);
        return;
    };
    let _ = (
        packet.src_port(),
        packet.dst_port(),
        packet.verification_tag(),
    );
    assert_eq!(
        packet.verify_checksum(),
        packet.checksum() == packet.compute_checksum()
    );
    let mut walked = 0;
    for chunk in packet.chunks() {
        let Ok(chunk) = chunk else { break };
        assert!(chunk.len() >= 4 && walked + chunk.len() <= packet.chunk_bytes().len());
        walked += (chunk.len() + 3) & !3;
        let _ = (chunk.flags(), chunk.t_bit(), chunk.is_empty());
        assert_eq!(chunk.value().len() + 4, chunk.as_bytes().len());
        match chunk.chunk_type() {
            ChunkType::Init | ChunkType::InitAck => {
                let Ok(init) = InitChunk::new_checked(chunk) else {
                    continue;
                };
                let _ = (init.initiate_tag(), init.a_rwnd(), init.initial_tsn());
                let _ = (init.outbound_streams(), init.inbound_streams());
                let _ = init.accepts_zero_checksum();
                for param in init.params() {
                    let Ok(param) = param else { break };
                    let _ = xlb::wire::sctp::address_param(&param);
                }
                init.addresses().for_each(drop);
            }
            ChunkType::Asconf => {
                let Ok(asconf) = AsconfChunk::new_checked(chunk) else {
                    continue;
                };
                let _ = (asconf.serial(), asconf.address());
                for request in asconf.requests() {
                    let Ok(request) = request else { break };
                    let _ = request.is_wildcard();
                }
            }
            _ => {}
        }
    }
}

/// What `SctpSpec::to_bytes` built reads back as the spec says.
pub fn check_sctp_roundtrip(spec: &SctpSpec, bytes: &[u8]) {
    let packet = Packet::new_checked(bytes).expect("a built packet has its header");
    assert_eq!(packet.src_port(), spec.src_port);
    assert_eq!(packet.dst_port(), spec.dst_port);
    assert_eq!(packet.verification_tag(), spec.verification_tag);
    match spec.checksum {
        super::sctp::Checksum::Valid => assert!(packet.verify_checksum()),
        super::sctp::Checksum::Zero => assert_eq!(packet.checksum(), 0),
        super::sctp::Checksum::Corrupt => assert!(!packet.verify_checksum()),
    }
    let chunks: Vec<_> = packet
        .chunks()
        .collect::<Result<_, _>>()
        .expect("built chunks read back");
    assert_eq!(chunks.len(), spec.chunks.len());
    for (chunk, expected) in chunks.into_iter().zip(&spec.chunks) {
        assert_eq!(chunk.chunk_type(), expected.repr().chunk_type());
        match expected {
            ChunkSpec::Init {
                initiate_tag,
                addresses,
            } => {
                let init = InitChunk::new_checked(chunk).expect("a built INIT reads back");
                assert_eq!(init.initiate_tag(), *initiate_tag);
                let read: Vec<IpAddr> = init
                    .addresses()
                    .collect::<Result<_, _>>()
                    .expect("built addresses read back");
                assert_eq!(&read, addresses);
                assert!(!init.accepts_zero_checksum());
            }
            ChunkSpec::CookieEcho { cookie } => assert_eq!(chunk.value(), &cookie[..]),
            ChunkSpec::Data { payload } => assert_eq!(&chunk.value()[12..], &payload[..]),
            ChunkSpec::Heartbeat { info } => assert_eq!(&chunk.value()[4..], &info[..]),
            ChunkSpec::Asconf {
                serial,
                address,
                requests,
            } => {
                let asconf = AsconfChunk::new_checked(chunk).expect("a built ASCONF reads back");
                assert_eq!(asconf.serial(), *serial);
                assert_eq!(asconf.address(), *address);
                let read: Vec<_> = asconf
                    .requests()
                    .collect::<Result<_, _>>()
                    .expect("built requests read back");
                assert_eq!(&read, requests);
            }
            ChunkSpec::Abort { reflected } | ChunkSpec::ShutdownComplete { reflected } => {
                assert_eq!(chunk.t_bit(), *reflected);
                assert!(chunk.is_empty());
            }
        }
    }
}

/// Target `wire_vlan`: the 802.1Q view and `Repr` over the input; what `Repr` emits
/// reads back the same, and the setters change only their field.
pub fn vlan(data: &[u8]) {
    let Ok(tag) = vlan::Packet::new_checked(data) else {
        assert!(data.len() < vlan::HEADER_LEN);
        return;
    };
    let (pcp, dei, id, ethertype) = (tag.pcp(), tag.dei(), tag.vlan_id(), tag.ethertype());
    assert!(pcp < 8 && id < 4096);
    assert_eq!(tag.payload().len(), data.len() - vlan::HEADER_LEN);
    let repr = vlan::Repr::parse(&tag).expect("a checked tag parses");
    let mut emitted = vec![0u8; repr.buffer_len()];
    repr.emit(&mut vlan::Packet::new_unchecked(&mut emitted[..]));
    let again = vlan::Packet::new_checked(&emitted[..]).expect("an emitted tag reads back");
    assert_eq!(vlan::Repr::parse(&again), Ok(repr));

    let mut copy = data.to_vec();
    let mut tag = vlan::Packet::new_unchecked(&mut copy[..]);
    tag.set_vlan_id(id ^ 0x0fff);
    tag.set_pcp(pcp ^ 0x7);
    tag.set_dei(!dei);
    tag.set_ethertype(!ethertype);
    let tag = vlan::Packet::new_unchecked(&copy[..]);
    assert_eq!(
        (tag.pcp(), tag.dei(), tag.vlan_id(), tag.ethertype()),
        (pcp ^ 0x7, !dei, id ^ 0x0fff, !ethertype)
    );
    assert_eq!(&copy[vlan::HEADER_LEN..], &data[vlan::HEADER_LEN..]);
}

/// Outer addresses the encapsulation target picks from.
const V4: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 1, 11)];
const V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0x13),
];

/// Target `wire_encap`: `ipip`, `ip6ip` and `gue`. Input: mode, room, ttl, ports, then the
/// frame. Mode bit 0 clear: `len` and `l3_offset` are the frame's own, as the pipeline
/// passes them, and each encapsulated frame must parse back to its outer header and
/// carry the inner packet unchanged. Set: `len` and `l3_offset` are fuzz-chosen too.
pub fn encap(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let room = usize::from(input.u8() % 96);
    let ttl = input.u8();
    let (src_port, dst_port) = (input.u16(), input.u16());
    let arbitrary = mode & 1 != 0;
    let (len, l3) = if arbitrary {
        (usize::from(input.u16() % 512), usize::from(input.u8() % 64))
    } else {
        (0, 0)
    };
    let frame = input.rest();
    let mut buffer = frame.to_vec();
    buffer.resize(frame.len() + room, 0);

    if arbitrary {
        let results = [
            encap::ipip(&mut buffer.clone(), len, l3, V4[0], V4[1], ttl),
            encap::ip6ip(&mut buffer.clone(), len, l3, V6[0], V6[1], ttl),
            encap::gue(
                &mut buffer.clone(),
                len,
                l3,
                V4[0].into(),
                V6[1].into(),
                src_port,
                dst_port,
                ttl,
            ),
            encap::gue(
                &mut buffer.clone(),
                len,
                l3,
                V4[0].into(),
                V4[1].into(),
                src_port,
                dst_port,
                ttl,
            ),
            encap::gue(
                &mut buffer.clone(),
                len,
                l3,
                V6[0].into(),
                V6[1].into(),
                src_port,
                dst_port,
                ttl,
            ),
        ];
        assert!(
            results[2].is_err(),
            "gue with mixed outer families: {results:?}"
        );
        for new_len in results.into_iter().flatten() {
            assert!(new_len <= buffer.len());
        }
        return;
    }

    let Ok(parsed) = headers::parse(frame) else {
        return;
    };
    let l3 = usize::from(parsed.l3_offset);
    let len = frame.len();
    let mut out = buffer.clone();
    if let Ok(new_len) = encap::ipip(&mut out, len, l3, V4[0], V4[1], ttl) {
        check_encapsulated(frame, l3, &out[..new_len], (L3::Ipv4, 20), protocol::IPV4);
    }
    let mut out = buffer.clone();
    if let Ok(new_len) = encap::ip6ip(&mut out, len, l3, V6[0], V6[1], ttl) {
        let inner = if parsed.l3 == L3::Ipv4 {
            protocol::IPV4
        } else {
            protocol::IPV6
        };
        check_encapsulated(frame, l3, &out[..new_len], (L3::Ipv6, 40), inner);
    }
    for (src, dst) in [
        (IpAddr::from(V4[0]), IpAddr::from(V4[1])),
        (IpAddr::from(V6[0]), IpAddr::from(V6[1])),
    ] {
        let mut out = buffer.clone();
        let Ok(new_len) = encap::gue(&mut out, len, l3, src, dst, src_port, dst_port, ttl) else {
            continue;
        };
        let (family, ip_len) = if src.is_ipv4() {
            (L3::Ipv4, 20)
        } else {
            (L3::Ipv6, 40)
        };
        let outer = check_encapsulated(
            frame,
            l3,
            &out[..new_len],
            (family, ip_len + 12),
            protocol::UDP,
        );
        assert_eq!((outer.src_port, outer.dst_port), (src_port, dst_port));
        let udp = &out[l3 + ip_len..new_len];
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        let gue_proto = if parsed.l3 == L3::Ipv4 {
            protocol::IPV4
        } else {
            protocol::IPV6
        };
        assert_eq!(&udp[8..12], &[0, gue_proto, 0, 0], "GUE header");
        if src.is_ipv6() {
            assert_eq!(
                checksum::l4(src, dst, protocol::UDP, udp),
                0,
                "UDP checksum"
            );
        } else {
            assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum over IPv4");
        }
    }
}

/// An encapsulated frame parses to its outer headers (`outer` is their family and length
/// from `l3`; the IP header names `protocol`) and then carries the inner packet of `frame`
/// byte for byte.
fn check_encapsulated(
    frame: &[u8],
    l3: usize,
    out: &[u8],
    (family, outer_len): (L3, usize),
    protocol: u8,
) -> Headers {
    let outer = headers::parse(out)
        .unwrap_or_else(|error| panic!("encapsulated frame does not parse: {error}"));
    assert_eq!(usize::from(outer.l3_offset), l3);
    assert_eq!(outer.l3, family);
    assert_eq!(outer.l4_proto, protocol);
    assert_eq!(&out[..l3 - 2], &frame[..l3 - 2], "Ethernet header kept");
    let inner = &out[l3 + outer_len..];
    assert_eq!(
        inner,
        &frame[l3..l3 + inner.len()],
        "inner packet unchanged"
    );
    if outer.l3 == L3::Ipv4 {
        let ip = Ipv4Packet::new_checked(&out[l3..]).expect("outer IPv4 header");
        assert!(ip.verify_checksum(), "outer IPv4 checksum");
        assert_eq!(usize::from(ip.total_len()), out.len() - l3);
    }
    outer
}

/// Target `wire_reply`: ARP, echo and NDP replies. Input: room, then the frame. Each reply
/// runs on the frame with the headers parsed from it, and with the headers of every
/// fixture frame (headers from another frame must not make a reply panic either).
pub fn reply(data: &[u8]) {
    let mut input = Input::new(data);
    let room = usize::from(input.u8() % 64);
    let frame = input.rest();
    let mut buffer = frame.to_vec();
    buffer.resize(frame.len() + room, 0);

    let mut out = buffer.clone();
    if let Ok(len) = reply::arp_reply(&mut out, OUR_MAC) {
        let answer = headers::parse(&out[..len]).expect("an ARP reply parses");
        let at = usize::from(answer.l3_offset);
        assert_eq!(answer.l3, L3::Arp);
        assert_eq!(&out[at + 6..at + 8], &[0, 2], "ARP operation reply");
        assert_eq!(&out[at + 8..at + 14], &OUR_MAC, "sender hardware address");
        assert_eq!(&out[6..12], &OUR_MAC, "Ethernet source");
    }

    if let Ok(parsed) = headers::parse(frame) {
        own_headers_replies(frame, &buffer, &parsed);
    }
    for fixture in FIXTURES {
        let parsed = headers::parse(fixture).expect("fixtures parse");
        let _ = reply::arp_request_target(frame, &parsed);
        let _ = reply::ndp_solicit_target(frame, &parsed);
        let answers = [
            reply::icmpv4_echo_reply(&mut buffer.clone(), &parsed),
            reply::icmpv6_echo_reply(&mut buffer.clone(), &parsed),
            reply::ndp_advert(&mut buffer.clone(), &parsed, OUR_MAC),
        ];
        for len in answers.into_iter().flatten() {
            assert!(len <= buffer.len());
        }
    }
}

/// Replies to `frame` given its own headers: each one parses, goes back where the request
/// came from, and has valid checksums where the request had them.
fn own_headers_replies(frame: &[u8], buffer: &[u8], parsed: &Headers) {
    let icmp_of = |bytes: &[u8], h: &Headers| {
        let at = usize::from(h.l4_offset);
        bytes[at..at + usize::from(h.l4_len)].to_vec()
    };
    let request_icmp = icmp_of(frame, parsed);

    let mut out = buffer.to_vec();
    if let Ok(len) = reply::icmpv4_echo_reply(&mut out, parsed) {
        assert!(len <= out.len());
        let answer = headers::parse(&out[..len]).expect("an echo reply parses");
        assert_eq!((answer.src, answer.dst), (parsed.dst, parsed.src));
        let icmp = icmp_of(&out, &answer);
        assert_eq!(icmp[0], 0, "echo reply type");
        let ip = Ipv4Packet::new_checked(&out[usize::from(answer.l3_offset)..len]).unwrap();
        assert!(
            ip.verify_checksum(),
            "IPv4 header checksum of the echo reply"
        );
        if checksum::sum(&request_icmp) == 0xffff {
            assert_eq!(
                checksum::sum(&icmp),
                0xffff,
                "ICMP checksum of the echo reply"
            );
        }
    }

    let mut out = buffer.to_vec();
    if let Ok(len) = reply::icmpv6_echo_reply(&mut out, parsed) {
        assert!(len <= out.len());
        let answer = headers::parse(&out[..len]).expect("an echo reply parses");
        assert_eq!((answer.src, answer.dst), (parsed.dst, parsed.src));
        let icmp = icmp_of(&out, &answer);
        assert_eq!(icmp[0], 129, "echo reply type");
        let valid = |h: &Headers, icmp: &[u8]| checksum::l4(h.src, h.dst, 58, icmp) == 0;
        if valid(parsed, &request_icmp) {
            assert!(valid(&answer, &icmp), "ICMPv6 checksum of the echo reply");
        }
    }

    let mut out = buffer.to_vec();
    if let Ok(len) = reply::ndp_advert(&mut out, parsed, OUR_MAC) {
        assert!(len <= out.len());
        let answer = headers::parse(&out[..len]).expect("a neighbour advertisement parses");
        let icmp = icmp_of(&out, &answer);
        assert_eq!(icmp[0], 136, "neighbour advertisement type");
        assert_eq!(answer.ttl, 255, "NDP hop limit");
        assert_eq!(
            checksum::l4(answer.src, answer.dst, 58, &icmp),
            0,
            "ICMPv6 checksum of the advertisement"
        );
    }
}
