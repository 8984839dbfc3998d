//! Writes the seed corpora, `corpus/TARGET/NAME`, from xlb's fixtures: the frames of
//! `src/wire/fixtures.rs`, the frames `tests/pipeline_fixtures.rs` builds, SCTP packets built
//! with `PacketRepr`, `config/example.yaml`, `config/lab.yaml` and the YAML block of
//! `docs/architecture.md`. Deterministic: rerunning rewrites the same files.
//!
//! cargo run --manifest-path fuzz/Cargo.toml --example write_seeds

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use xlb::control::sync::message::{self, Kind, Record, SyncKey};
use xlb::wire::frames::{self, tcp_flags, FrameSpec, Transport};
use xlb::wire::sctp::{self, AsconfRequest, AsconfRequestKind};
use xlb_fuzz::fixtures;
use xlb_fuzz::pipeline::{self, flags, FrameRecord, CLIENT_MAC, XLB_MAC};
use xlb_fuzz::sctp::{
    encode_table, Checksum, ChunkSpec, PathSpec, SctpSpec, TableOp, TableSizes, VIPS,
};

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Seeds {
        corpus: fuzz_dir.join("corpus"),
        written: 0,
    };
    wire_seeds(&mut seeds);
    sctp_seeds(&mut seeds);
    config_seeds(&mut seeds, &fuzz_dir.join(".."));
    pipeline_seeds(&mut seeds);
    sync_seeds(&mut seeds);
    println!(
        "wrote {} seeds under {}",
        seeds.written,
        seeds.corpus.display()
    );
}

struct Seeds {
    corpus: PathBuf,
    written: usize,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.corpus.join(target);
        fs::create_dir_all(&dir).expect("create the corpus directory");
        fs::write(dir.join(name), bytes).expect("write a seed");
        self.written += 1;
    }
}

/// The fixture frames of `src/wire/fixtures.rs`, by name.
const FIXTURES: [(&str, &[u8]); 13] = [
    ("tcp4-vlan", &fixtures::TCP4_VLAN),
    ("udp4-options", &fixtures::UDP4_OPTIONS),
    ("udp6-ext", &fixtures::UDP6_EXT),
    ("udp6-frag-first", &fixtures::UDP6_FRAG_FIRST),
    ("udp6-frag-later", &fixtures::UDP6_FRAG_LATER),
    ("tcp4-frag-later", &fixtures::TCP4_FRAG_LATER),
    ("sctp4", &fixtures::SCTP4),
    ("arp-request", &fixtures::ARP_REQUEST),
    ("icmp4-echo", &fixtures::ICMP4_ECHO),
    ("icmp6-echo", &fixtures::ICMP6_ECHO),
    ("ndp-ns", &fixtures::NDP_NS),
    ("icmp4-frag-needed", &fixtures::ICMP4_FRAG_NEEDED),
    ("icmp6-ptb", &fixtures::ICMP6_PTB),
];

fn wire_seeds(seeds: &mut Seeds) {
    let mut frames: Vec<(String, Vec<u8>)> = FIXTURES
        .iter()
        .map(|(name, bytes)| (format!("fixture-{name}"), bytes.to_vec()))
        .collect();
    frames.extend(
        pipeline_frames()
            .into_iter()
            .map(|(name, bytes)| (format!("pipeline-{name}"), bytes)),
    );
    for (name, frame) in &frames {
        seeds.write("wire_headers", name, frame);
        // wire_encap: mode 0 (the frame's own offsets), room 80, ttl 64, GUE ports.
        let mut encap = vec![0, 80, 64, 0xc0, 0x01, 0x17, 0xc0];
        encap.extend_from_slice(frame);
        seeds.write("wire_encap", name, &encap);
        // wire_reply: room 32.
        let mut reply = vec![32];
        reply.extend_from_slice(frame);
        seeds.write("wire_reply", name, &reply);
    }
    // wire_encap mode 1: fuzz-chosen len and l3_offset (here the true ones, then a lie).
    for (name, len, l3) in [("tcp4-vlan", 58u16, 18u8), ("tcp4-vlan-lying", 300, 13)] {
        let mut encap = vec![1, 16, 64, 0xc0, 0x01, 0x17, 0xc0];
        encap.extend_from_slice(&len.to_be_bytes());
        encap.push(l3);
        encap.extend_from_slice(&fixtures::TCP4_VLAN);
        seeds.write("wire_encap", &format!("arbitrary-{name}"), &encap);
    }
    seeds.write("wire_vlan", "fixture-tcp4-vlan", &fixtures::TCP4_VLAN[14..]);
    seeds.write("wire_vlan", "tag-only", &[0xe0, 0x64, 0x86, 0xdd]);
    seeds.write(
        "wire_vlan",
        "stacked",
        &[0x00, 0x0a, 0x81, 0x00, 0x20, 0x14],
    );
}

const A1: &str = "198.18.0.1";
const A2: &str = "198.18.0.2";
const A3: &str = "198.18.0.3";
const A4: &str = "198.18.0.4";
const A6: &str = "2001:db8::1";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn init(tag: u32, addresses: &[&str]) -> SctpSpec {
    SctpSpec::new(
        0,
        vec![ChunkSpec::Init {
            initiate_tag: tag,
            addresses: addresses.iter().map(|a| ip(a)).collect(),
        }],
    )
}

fn cookie(tag: u32) -> SctpSpec {
    SctpSpec::new(
        tag,
        vec![ChunkSpec::CookieEcho {
            cookie: b"state cookie".to_vec(),
        }],
    )
}

fn data(tag: u32) -> SctpSpec {
    SctpSpec::new(
        tag,
        vec![ChunkSpec::Data {
            payload: b"ngap".to_vec(),
        }],
    )
}

fn asconf(tag: u32, from: &str, requests: &[(AsconfRequestKind, &str)]) -> SctpSpec {
    SctpSpec::new(
        tag,
        vec![ChunkSpec::Asconf {
            serial: 1,
            address: ip(from),
            requests: requests
                .iter()
                .zip(1..)
                .map(|((kind, address), correlation_id)| AsconfRequest {
                    kind: *kind,
                    correlation_id,
                    address: ip(address),
                })
                .collect(),
        }],
    )
}

fn abort(tag: u32, reflected: bool) -> SctpSpec {
    SctpSpec::new(tag, vec![ChunkSpec::Abort { reflected }])
}

fn on(src: &str, vip: usize) -> PathSpec {
    PathSpec::new(ip(src), VIPS[vip])
}

fn sctp_seeds(seeds: &mut Seeds) {
    use AsconfRequestKind::{AddIp, DeleteIp, SetPrimary};
    let packets = [
        ("init", init(0x1111, &[A2, A6])),
        ("cookie-echo", cookie(0xb0b0)),
        ("data", data(0xb0b0)),
        (
            "heartbeat",
            SctpSpec::new(
                0xb0b0,
                vec![ChunkSpec::Heartbeat {
                    info: b"beat".to_vec(),
                }],
            ),
        ),
        (
            "asconf",
            asconf(0xb0b0, A2, &[(AddIp, A3), (SetPrimary, A3), (DeleteIp, A1)]),
        ),
        ("asconf-wildcard", asconf(0xb0b0, A2, &[(AddIp, "0.0.0.0")])),
        ("abort", abort(0xb0b0, false)),
        ("abort-reflected", abort(0x1111, true)),
        (
            "shutdown-complete",
            SctpSpec::new(
                0x1111,
                vec![ChunkSpec::ShutdownComplete { reflected: true }],
            ),
        ),
        (
            "cookie-data-bundle",
            SctpSpec::new(
                0xb0b0,
                vec![
                    ChunkSpec::CookieEcho {
                        cookie: b"cookie".to_vec(),
                    },
                    ChunkSpec::Data {
                        payload: b"first".to_vec(),
                    },
                ],
            ),
        ),
        (
            "zero-checksum",
            SctpSpec {
                checksum: Checksum::Zero,
                ..data(0xb0b0)
            },
        ),
    ];
    for (name, spec) in &packets {
        seeds.write("wire_sctp", &format!("packet-{name}"), &spec.to_bytes());
        let mut encoded = Vec::new();
        spec.encode(&mut encoded);
        seeds.write("wire_sctp", &format!("spec-{name}"), &encoded);
    }
    seeds.write("wire_sctp", "fixture-sctp4", &fixtures::SCTP4[34..]);

    use TableOp::{Advance, Expire, Gone, Packet, Raw, Select};
    let roomy = TableSizes {
        capacity: 8,
        max_addresses: 8,
        embryonic_per_source: 4,
    };
    let scenarios = [
        (
            "multihoming",
            roomy,
            vec![
                Select(Some(1)),
                Packet(on(A1, 0), init(0x1111, &[A2])),
                Packet(on(A1, 0), cookie(0xb0b0)),
                Packet(on(A2, 1), data(0xb0b0)),
                Packet(
                    on(A2, 1),
                    asconf(0xb0b0, A2, &[(AddIp, A3), (SetPrimary, A3), (DeleteIp, A1)]),
                ),
                Packet(on(A3, 2), data(0xb0b0)),
                Packet(on(A1, 0), data(0xb0b0)),
                Packet(on(A3, 0), abort(0xb0b0, false)),
                Advance(10),
                Expire,
                Packet(on(A3, 0), data(0xb0b0)),
            ],
        ),
        (
            "flood",
            TableSizes {
                capacity: 2,
                max_addresses: 2,
                embryonic_per_source: 1,
            },
            vec![
                Packet(on(A1, 0), init(0x1111, &[])),
                Packet(on(A1, 0), init(0x2222, &[])),
                Packet(on(A2, 0), init(0xc0c0, &[])),
                Packet(on(A3, 0), init(0xdead_beef, &[A4, A6])),
                Packet(on(A3, 0), cookie(0xb0b0)),
                Packet(on(A4, 0), init(1, &[])),
                Advance(30),
                Expire,
                Packet(on(A4, 0), init(1, &[])),
            ],
        ),
        (
            "restart",
            roomy,
            vec![
                Packet(on(A1, 0), init(0x1111, &[A2])),
                Packet(on(A1, 0), cookie(0xb0b0)),
                Select(Some(2)),
                Packet(on(A2, 0), init(0x2222, &[A1])),
                Packet(on(A2, 0), cookie(0xc0c0)),
                Packet(on(A1, 0), data(0xb0b0)),
                Packet(on(A1, 0), data(0xc0c0)),
                Packet(
                    on(A1, 0),
                    SctpSpec::new(
                        0x1111,
                        vec![ChunkSpec::ShutdownComplete { reflected: true }],
                    ),
                ),
                Advance(6),
                Expire,
            ],
        ),
        (
            "backend-gone",
            roomy,
            vec![
                Select(Some(1)),
                Packet(on(A1, 0), init(0x1111, &[])),
                Packet(on(A1, 0), cookie(0xb0b0)),
                Gone(0b10),
                Packet(on(A1, 0), data(0xb0b0)),
                Gone(0),
                Select(None),
                Packet(on(A2, 0), init(0x2222, &[])),
            ],
        ),
        (
            "checksums",
            roomy,
            vec![
                Packet(
                    on(A1, 0),
                    SctpSpec {
                        checksum: Checksum::Zero,
                        ..init(0x1111, &[])
                    },
                ),
                Packet(
                    on(A1, 0),
                    SctpSpec {
                        checksum: Checksum::Corrupt,
                        ..cookie(0xb0b0)
                    },
                ),
                Packet(
                    on(A1, 0),
                    SctpSpec {
                        checksum: Checksum::Zero,
                        ..cookie(0xb0b0)
                    },
                ),
            ],
        ),
        (
            "idle",
            roomy,
            vec![
                Packet(on(A1, 0), init(0x1111, &[])),
                Packet(on(A1, 0), cookie(0xb0b0)),
                Advance(255),
                Expire,
                Packet(on(A1, 0), data(0xb0b0)),
            ],
        ),
        (
            "raw-fixture",
            roomy,
            vec![
                Raw(on(A1, 0), fixtures::SCTP4[34..].to_vec()),
                Raw(on(A1, 0), cookie(0xb0b0).to_bytes()),
            ],
        ),
    ];
    for (name, sizes, ops) in &scenarios {
        seeds.write("sctp_table", name, &encode_table(*sizes, ops));
    }
}

fn config_seeds(seeds: &mut Seeds, repo: &Path) {
    for name in ["example.yaml", "lab.yaml"] {
        let text = fs::read(repo.join("config").join(name)).expect("read a config example");
        seeds.write("config_yaml", name, &text);
    }
    let architecture =
        fs::read_to_string(repo.join("docs/architecture.md")).expect("read the architecture");
    let block = architecture
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a YAML block");
    seeds.write("config_yaml", "architecture.yaml", block.as_bytes());
    seeds.write(
        "config_yaml",
        "pipeline-fixtures.yaml",
        pipeline::TABLE.as_bytes(),
    );
    seeds.write(
        "config_yaml",
        "pipeline-reloaded.yaml",
        pipeline::TABLE_RELOADED.as_bytes(),
    );
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

fn frame(src: &str, dst: &str, transport: Transport<'_>) -> Vec<u8> {
    frames::build(&FrameSpec {
        src_mac: CLIENT_MAC,
        dst_mac: XLB_MAC,
        src: addr(src),
        dst: addr(dst),
        transport,
    })
    .expect("a fixture frame builds")
}

fn syn(src: &str, dst: &str) -> Vec<u8> {
    let transport = Transport::Tcp {
        flags: tcp_flags::SYN,
        payload: b"",
    };
    frame(src, dst, transport)
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

fn sctp_frame(src: &str, dst: &str, spec: &SctpSpec) -> Vec<u8> {
    let spec = SctpSpec {
        src_port: addr(src).port(),
        dst_port: addr(dst).port(),
        ..spec.clone()
    };
    frame(
        src,
        dst,
        Transport::Raw {
            protocol: 132,
            bytes: &spec.to_bytes(),
        },
    )
}

/// A client's INIT-ACK to a backend that opened an association from the VIP: its tag
/// never crossed xlb (dropped, never hashed).
fn sctp_init_ack(src: &str, dst: &str, vtag: u32) -> Vec<u8> {
    let mut frame = sctp_frame(src, dst, &init(0x5eed, &[]));
    let at = frame.len() - (sctp::HEADER_LEN + sctp::INIT_FIXED_LEN);
    let mut packet = sctp::Packet::new_unchecked(&mut frame[at..]);
    packet.set_verification_tag(vtag);
    packet.chunk_bytes_mut()[0] = u8::from(sctp::ChunkType::InitAck);
    packet.fill_checksum();
    frame
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[198, 18, 0, 10, 0, 0, 0, 0, 0, 0]);
    arp.extend_from_slice(&target);
    arp
}

fn echo4(dst: &str) -> Vec<u8> {
    let mut echo = vec![8, 0, 0, 0, 0, 1, 0, 1];
    let sum = !xlb::wire::checksum::sum(&echo);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    frame(
        "198.18.0.10:0",
        dst,
        Transport::Raw {
            protocol: 1,
            bytes: &echo,
        },
    )
}

/// The frames `tests/pipeline_fixtures.rs` runs, by name.
fn pipeline_frames() -> Vec<(String, Vec<u8>)> {
    let mut fragment = udp("198.18.0.10:5000", "198.18.100.10:53");
    fragment[14 + 6] |= 0x20;
    let sum = xlb::wire::checksum::ipv4_header(&fragment[14..34]);
    fragment[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut truncated = syn("198.18.0.10:40000", "198.18.100.10:80");
    truncated.truncate(40);
    let frames = [
        ("tcp4-dsr", syn("198.18.0.10:40000", "198.18.100.10:80")),
        (
            "tcp6-dsr",
            syn("[2001:db8::10]:40000", "[2001:db8:100::10]:80"),
        ),
        ("udp4-dsr", udp("198.18.0.10:5000", "198.18.100.10:53")),
        ("tcp4-ipip", syn("198.18.0.10:40001", "198.18.100.11:80")),
        (
            "tcp6-ip6ip6",
            syn("[2001:db8::10]:40001", "[2001:db8:100::11]:80"),
        ),
        ("udp4-gue", udp("198.18.0.10:5001", "198.18.100.12:9000")),
        (
            "udp6-gue",
            udp("[2001:db8::10]:5001", "[2001:db8:100::12]:9000"),
        ),
        (
            "sctp4-dsr",
            sctp_frame(
                "198.18.0.10:5000",
                "198.18.100.20:38412",
                &init(0x1111, &[]),
            ),
        ),
        (
            "sctp6-dsr",
            sctp_frame(
                "[2001:db8::10]:5000",
                "[2001:db8:100::20]:38412",
                &init(0x2222, &[]),
            ),
        ),
        (
            "sctp4-ipip",
            sctp_frame(
                "198.18.0.10:5001",
                "198.18.100.21:38412",
                &init(0x3333, &[]),
            ),
        ),
        (
            "sctp4-gue",
            sctp_frame(
                "198.18.0.10:5002",
                "198.18.100.22:38412",
                &init(0x4444, &[]),
            ),
        ),
        ("tcp4-nat", syn("198.18.0.10:40000", "198.18.100.13:8080")),
        (
            "udp6-nat",
            udp("[2001:db8::10]:5000", "[2001:db8:100::13]:5353"),
        ),
        ("no-service", syn("198.18.0.10:40000", "198.18.100.10:81")),
        ("acl-denied", syn("198.19.0.10:40000", "198.18.100.10:80")),
        ("truncated", truncated),
        ("ipv4-fragment", fragment),
        (
            "sctp-unknown-tag",
            sctp_frame(
                "198.18.0.10:5999",
                "198.18.100.20:38412",
                &data(0xdead_beef),
            ),
        ),
        (
            "nat-no-session",
            udp("198.18.1.11:8080", "198.18.0.3:20005"),
        ),
        (
            "sctp-init-ack-dsr",
            sctp_init_ack("198.18.0.10:38412", "198.18.100.20:38412", 0xba5e_0001),
        ),
        (
            "sctp-init-ack-gue",
            sctp_init_ack("198.18.0.10:38412", "198.18.100.22:38412", 0xba5e_0003),
        ),
        ("arp-vip", arp_request([198, 18, 100, 10])),
        ("arp-other", arp_request([198, 18, 100, 99])),
        ("echo4-vip", echo4("198.18.100.10:0")),
    ];
    frames
        .into_iter()
        .map(|(name, frame)| (name.to_string(), frame))
        .collect()
}

/// Records of `frames`, the last one ending the batch with `end_flags`.
fn batch(frames: Vec<Vec<u8>>, end_flags: u8) -> Vec<FrameRecord> {
    let count = frames.len();
    frames
        .into_iter()
        .enumerate()
        .map(|(at, frame)| FrameRecord {
            flags: if at + 1 == count {
                flags::END_BATCH | end_flags
            } else {
                0
            },
            frame,
        })
        .collect()
}

fn pipeline_seeds(seeds: &mut Seeds) {
    let all: Vec<Vec<u8>> = pipeline_frames().into_iter().map(|(_, f)| f).collect();
    let mut together = batch(all.clone(), 0);
    // Each frame again, one per batch, after the flows above exist.
    for frame in &all {
        together.extend(batch(vec![frame.clone()], flags::advance(1)));
    }
    let mut with_wire_fixtures = together.clone();
    with_wire_fixtures.extend(batch(
        FIXTURES.iter().map(|(_, bytes)| bytes.to_vec()).collect(),
        0,
    ));
    seeds.write(
        "pipeline",
        "all-fixtures",
        &pipeline::encode(&with_wire_fixtures),
    );

    let (c1, c2) = ("198.18.0.10:5000", "198.18.0.11:5000");
    let (vip1, vip2) = ("198.18.100.20:38412", "198.18.101.20:38412");
    let mut multihoming = batch(
        vec![sctp_frame(c1, vip1, &init(0x1111, &["198.18.0.11"]))],
        0,
    );
    multihoming.extend(batch(vec![sctp_frame(c1, vip1, &cookie(0xb0b0))], 0));
    multihoming.extend(batch(
        vec![sctp_frame(c2, vip2, &data(0xb0b0))],
        flags::RELOAD,
    ));
    multihoming.extend(batch(
        vec![
            sctp_frame(
                c2,
                vip2,
                &asconf(
                    0xb0b0,
                    "198.18.0.11",
                    &[(AsconfRequestKind::AddIp, "198.18.0.12")],
                ),
            ),
            sctp_frame("198.18.0.12:5000", vip1, &data(0xb0b0)),
            sctp_frame(c1, vip1, &abort(0xb0b0, false)),
        ],
        flags::advance(4) | flags::EXPIRE,
    ));
    multihoming.extend(batch(vec![sctp_frame(c1, vip1, &data(0xb0b0))], 0));
    seeds.write(
        "pipeline",
        "sctp-multihoming",
        &pipeline::encode(&multihoming),
    );

    // A NAT session, then the backend's answer to every port it could have been given.
    let mut nat = batch(vec![syn("198.18.0.10:40000", "198.18.100.13:8080")], 0);
    let answers = (20000..20100)
        .map(|port| {
            let mut reply = frame(
                "198.18.1.11:8080",
                &format!("198.18.0.3:{port}"),
                Transport::Tcp {
                    flags: tcp_flags::SYN | tcp_flags::ACK,
                    payload: b"",
                },
            );
            reply[6..12].copy_from_slice(&[2, 0, 0, 0, 1, 0x11]);
            reply
        })
        .collect();
    nat.extend(batch(answers, flags::advance(6) | flags::EXPIRE));
    nat.extend(batch(
        vec![syn("198.18.0.10:40000", "198.18.100.13:8080")],
        flags::RELOAD,
    ));
    nat.extend(batch(
        vec![syn("198.18.0.10:40000", "198.18.100.13:8080")],
        0,
    ));
    seeds.write("pipeline", "nat-both-ways", &pipeline::encode(&nat));

    // More SCTP clients than the 16-entry table holds, then time passing.
    let flood: Vec<Vec<u8>> = (1..=20u32)
        .map(|n| sctp_frame(&format!("198.18.0.{n}:5000"), vip1, &init(0x1000 + n, &[])))
        .collect();
    let mut flood = batch(flood, flags::advance(5) | flags::EXPIRE);
    flood.extend(batch(
        vec![sctp_frame("198.18.0.20:5000", vip1, &init(0x2000, &[]))],
        flags::advance(7) | flags::EXPIRE | flags::RELOAD,
    ));
    flood.extend(batch(vec![udp("198.18.0.10:5000", "198.18.100.10:53")], 0));
    seeds.write("pipeline", "sctp-flood", &pipeline::encode(&flood));
}

/// Records as the sync protocol carries them: a round trip of one and of enough to need
/// several datagrams, and a datagram as one node sends it (under the fuzz key).
fn sync_seeds(seeds: &mut Seeds) {
    let record = |n: u32, addresses: &[&str]| Record {
        service: message::name_key("ngap"),
        backend: message::backend_key("ngap", "amf-1", ip("198.18.1.11")),
        client_port: 5000,
        server_port: 38412,
        client_tag: Some(0x1000 + n),
        backend_tag: 0x2000 + n,
        closing: n % 3 == 0,
        addresses: addresses.iter().map(|a| ip(a)).collect(),
    };
    let one = [record(1, &["198.18.0.10", "2001:db8::10"])];
    seeds.write(
        "sync_message",
        "one-record",
        &xlb_fuzz::sync::encode_records(&one, 1),
    );
    let many: Vec<Record> = (0..60).map(|n| record(n, &["198.18.0.11"])).collect();
    seeds.write(
        "sync_message",
        "many-records",
        &xlb_fuzz::sync::encode_records(&many, 2),
    );
    let key = SyncKey::derive(xlb_fuzz::sync::SECRET);
    let mut sequence = 0;
    let datagram = message::encode(&key, Kind::Records, 1, 2, &mut sequence, &one).remove(0);
    let mut input = vec![0];
    input.extend_from_slice(&datagram);
    seeds.write("sync_message", "datagram", &input);
}
