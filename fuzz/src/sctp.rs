//! SCTP: a compact byte format for packets built with `PacketRepr` ([`SctpSpec`]), and the
//! association table driven by sequences of packets, expiry and clock steps
//! ([`table`], target `sctp_table`).
//!
//! Ports, tags and addresses are drawn from small pools so that the packets of one input
//! meet in the table (the INIT's source sends the COOKIE-ECHO, the tag taught is the tag
//! used); an escape byte lets any value through.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xlb::lb::sctp::{
    SctpAssociationState, SctpAssociationTable, SctpConfig, SctpDecision, SctpPath,
};
use xlb::wire::sctp::{AsconfRequest, AsconfRequestKind, ChunkRepr, PacketRepr};

use super::{pool_index, Input};

/// Ports the packets use; [`ESCAPE`] then two bytes for any other.
pub const PORTS: [u16; 4] = [38412, 5000, 5001, 36412];
/// Verification and initiate tags; [`ESCAPE`] then four bytes for any other.
pub const TAGS: [u32; 8] = [
    0,
    0x1111,
    0x2222,
    0xb0b0,
    0xc0c0,
    0xdead_beef,
    1,
    0xffff_ffff,
];
/// Client addresses, the wildcards included; [`ESCAPE`] then 4 bytes, or [`ESCAPE_V6`]
/// then 16 bytes, for any other.
pub const ADDRESSES: [IpAddr; 8] = [
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3)),
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 4)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
];
/// The VIPs a path goes to: any VIP of a multihomed service.
pub const VIPS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(198, 18, 100, 20)),
    IpAddr::V4(Ipv4Addr::new(198, 18, 101, 20)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x20)),
];
/// Pool byte: a raw value follows.
pub const ESCAPE: u8 = 0xff;
/// Address byte: a raw IPv6 address follows.
pub const ESCAPE_V6: u8 = 0xfe;

fn read_port(input: &mut Input<'_>) -> u16 {
    match input.u8() {
        ESCAPE => input.u16(),
        at => PORTS[usize::from(at) % PORTS.len()],
    }
}

fn put_port(out: &mut Vec<u8>, port: u16) {
    let at = pool_index(&PORTS, &port, ESCAPE);
    out.push(at);
    if at == ESCAPE {
        out.extend_from_slice(&port.to_be_bytes());
    }
}

fn read_tag(input: &mut Input<'_>) -> u32 {
    match input.u8() {
        ESCAPE => input.u32(),
        at => TAGS[usize::from(at) % TAGS.len()],
    }
}

fn put_tag(out: &mut Vec<u8>, tag: u32) {
    let at = pool_index(&TAGS, &tag, ESCAPE);
    out.push(at);
    if at == ESCAPE {
        out.extend_from_slice(&tag.to_be_bytes());
    }
}

fn read_address(input: &mut Input<'_>) -> IpAddr {
    match input.u8() {
        ESCAPE => IpAddr::V4(Ipv4Addr::from(input.u32())),
        ESCAPE_V6 => {
            let mut octets = [0u8; 16];
            for octet in &mut octets {
                *octet = input.u8();
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        at => ADDRESSES[usize::from(at) % ADDRESSES.len()],
    }
}

fn put_address(out: &mut Vec<u8>, address: IpAddr) {
    let at = pool_index(&ADDRESSES, &address, ESCAPE_V6);
    match (at, address) {
        (ESCAPE_V6, IpAddr::V4(v4)) => {
            out.push(ESCAPE);
            out.extend_from_slice(&v4.octets());
        }
        (ESCAPE_V6, IpAddr::V6(v6)) => {
            out.push(ESCAPE_V6);
            out.extend_from_slice(&v6.octets());
        }
        (at, _) => out.push(at),
    }
}

/// A byte string of at most `max` bytes: a length byte, then the bytes.
fn short_bytes(input: &mut Input<'_>, max: u8) -> Vec<u8> {
    let len = input.u8() % (max + 1);
    input.bytes(usize::from(len)).to_vec()
}

fn put_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).expect("short strings fit a byte"));
    out.extend_from_slice(bytes);
}

/// What goes in the checksum field of a built packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// The CRC32c `PacketRepr` computed.
    Valid,
    /// Zero (RFC 9653 zero checksum).
    Zero,
    /// The CRC32c with one bit flipped.
    Corrupt,
}

/// One chunk `ChunkRepr` can build, owning what the repr borrows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkSpec {
    /// INIT with address parameters.
    Init {
        /// The client's tag.
        initiate_tag: u32,
        /// IPv4/IPv6 Address parameters (at most 5).
        addresses: Vec<IpAddr>,
    },
    /// COOKIE-ECHO (cookie of at most 48 bytes).
    CookieEcho {
        /// The state cookie.
        cookie: Vec<u8>,
    },
    /// DATA (payload of at most 32 bytes).
    Data {
        /// User data.
        payload: Vec<u8>,
    },
    /// HEARTBEAT (info of at most 32 bytes).
    Heartbeat {
        /// Heartbeat information.
        info: Vec<u8>,
    },
    /// ASCONF with at most 3 requests.
    Asconf {
        /// Serial number.
        serial: u32,
        /// The sender's address parameter.
        address: IpAddr,
        /// Add-IP, Delete-IP and Set-Primary requests.
        requests: Vec<AsconfRequest>,
    },
    /// ABORT.
    Abort {
        /// T bit.
        reflected: bool,
    },
    /// SHUTDOWN-COMPLETE.
    ShutdownComplete {
        /// T bit.
        reflected: bool,
    },
}

const REQUEST_KINDS: [AsconfRequestKind; 3] = [
    AsconfRequestKind::AddIp,
    AsconfRequestKind::DeleteIp,
    AsconfRequestKind::SetPrimary,
];

impl ChunkSpec {
    /// Reads a chunk: a kind byte, then its fields.
    pub fn decode(input: &mut Input<'_>) -> ChunkSpec {
        match input.u8() % 7 {
            0 => {
                let initiate_tag = read_tag(input);
                let count = input.u8() % 6;
                ChunkSpec::Init {
                    initiate_tag,
                    addresses: (0..count).map(|_| read_address(input)).collect(),
                }
            }
            1 => ChunkSpec::CookieEcho {
                cookie: short_bytes(input, 48),
            },
            2 => ChunkSpec::Data {
                payload: short_bytes(input, 32),
            },
            3 => ChunkSpec::Heartbeat {
                info: short_bytes(input, 32),
            },
            4 => {
                let serial = input.u32();
                let address = read_address(input);
                let count = input.u8() % 4;
                let requests = (0..count)
                    .map(|_| AsconfRequest {
                        kind: REQUEST_KINDS[usize::from(input.u8() % 3)],
                        correlation_id: input.u32(),
                        address: read_address(input),
                    })
                    .collect();
                ChunkSpec::Asconf {
                    serial,
                    address,
                    requests,
                }
            }
            5 => ChunkSpec::Abort {
                reflected: input.u8() & 1 != 0,
            },
            _ => ChunkSpec::ShutdownComplete {
                reflected: input.u8() & 1 != 0,
            },
        }
    }

    /// Writes the chunk as [`ChunkSpec::decode`] reads it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ChunkSpec::Init {
                initiate_tag,
                addresses,
            } => {
                out.push(0);
                put_tag(out, *initiate_tag);
                out.push(u8::try_from(addresses.len()).expect("at most 5 addresses"));
                for address in addresses {
                    put_address(out, *address);
                }
            }
            ChunkSpec::CookieEcho { cookie } => {
                out.push(1);
                put_short_bytes(out, cookie);
            }
            ChunkSpec::Data { payload } => {
                out.push(2);
                put_short_bytes(out, payload);
            }
            ChunkSpec::Heartbeat { info } => {
                out.push(3);
                put_short_bytes(out, info);
            }
            ChunkSpec::Asconf {
                serial,
                address,
                requests,
            } => {
                out.push(4);
                out.extend_from_slice(&serial.to_be_bytes());
                put_address(out, *address);
                out.push(u8::try_from(requests.len()).expect("at most 3 requests"));
                for request in requests {
                    let kind = REQUEST_KINDS.iter().position(|k| *k == request.kind);
                    out.push(kind.expect("every kind is listed") as u8);
                    out.extend_from_slice(&request.correlation_id.to_be_bytes());
                    put_address(out, request.address);
                }
            }
            ChunkSpec::Abort { reflected } => out.extend_from_slice(&[5, u8::from(*reflected)]),
            ChunkSpec::ShutdownComplete { reflected } => {
                out.extend_from_slice(&[6, u8::from(*reflected)])
            }
        }
    }

    /// The `ChunkRepr` that builds this chunk.
    pub fn repr(&self) -> ChunkRepr<'_> {
        match self {
            ChunkSpec::Init {
                initiate_tag,
                addresses,
            } => ChunkRepr::Init {
                initiate_tag: *initiate_tag,
                a_rwnd: 65535,
                outbound_streams: 2,
                inbound_streams: 2,
                initial_tsn: 1,
                addresses,
            },
            ChunkSpec::CookieEcho { cookie } => ChunkRepr::CookieEcho { cookie },
            ChunkSpec::Data { payload } => ChunkRepr::Data {
                tsn: 1,
                stream_id: 0,
                stream_seq: 0,
                ppid: 60,
                payload,
            },
            ChunkSpec::Heartbeat { info } => ChunkRepr::Heartbeat { info },
            ChunkSpec::Asconf {
                serial,
                address,
                requests,
            } => ChunkRepr::Asconf {
                serial: *serial,
                address: *address,
                requests,
            },
            ChunkSpec::Abort { reflected } => ChunkRepr::Abort {
                reflected: *reflected,
            },
            ChunkSpec::ShutdownComplete { reflected } => ChunkRepr::ShutdownComplete {
                reflected: *reflected,
            },
        }
    }
}

/// An SCTP packet (common header and up to 3 chunks) to build with `PacketRepr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpSpec {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Verification tag.
    pub verification_tag: u32,
    /// What the checksum field holds.
    pub checksum: Checksum,
    /// The chunks, in order.
    pub chunks: Vec<ChunkSpec>,
}

impl SctpSpec {
    /// A packet from 5000 to 38412 with a valid checksum.
    pub fn new(verification_tag: u32, chunks: Vec<ChunkSpec>) -> SctpSpec {
        SctpSpec {
            src_port: 5000,
            dst_port: 38412,
            verification_tag,
            checksum: Checksum::Valid,
            chunks,
        }
    }

    /// Reads a packet: ports, tag, checksum kind, chunk count, chunks.
    pub fn decode(input: &mut Input<'_>) -> SctpSpec {
        let src_port = read_port(input);
        let dst_port = read_port(input);
        let verification_tag = read_tag(input);
        let checksum = match input.u8() % 3 {
            0 => Checksum::Valid,
            1 => Checksum::Zero,
            _ => Checksum::Corrupt,
        };
        let count = input.u8() % 4;
        SctpSpec {
            src_port,
            dst_port,
            verification_tag,
            checksum,
            chunks: (0..count).map(|_| ChunkSpec::decode(input)).collect(),
        }
    }

    /// Writes the packet as [`SctpSpec::decode`] reads it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_port(out, self.src_port);
        put_port(out, self.dst_port);
        put_tag(out, self.verification_tag);
        out.push(self.checksum as u8);
        out.push(u8::try_from(self.chunks.len()).expect("at most 3 chunks"));
        for chunk in &self.chunks {
            chunk.encode(out);
        }
    }

    /// The packet's bytes, built by `PacketRepr`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let chunks: Vec<ChunkRepr<'_>> = self.chunks.iter().map(ChunkSpec::repr).collect();
        let mut bytes = PacketRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            verification_tag: self.verification_tag,
            chunks: &chunks,
        }
        .to_vec();
        match self.checksum {
            Checksum::Valid => {}
            Checksum::Zero => bytes[8..12].fill(0),
            Checksum::Corrupt => bytes[8] ^= 1,
        }
        bytes
    }
}

/// Where a packet of [`table`] travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathSpec {
    /// Service id, 0 or 1.
    pub service: u32,
    /// Client address.
    pub src: IpAddr,
    /// One of [`VIPS`].
    pub dst: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Service port.
    pub dst_port: u16,
}

impl PathSpec {
    /// Client 5000 to service 38412 of service 0.
    pub fn new(src: IpAddr, dst: IpAddr) -> PathSpec {
        PathSpec {
            service: 0,
            src,
            dst,
            src_port: 5000,
            dst_port: 38412,
        }
    }

    fn decode(input: &mut Input<'_>) -> PathSpec {
        PathSpec {
            service: u32::from(input.u8() % 2),
            src: read_address(input),
            dst: VIPS[usize::from(input.u8()) % VIPS.len()],
            src_port: read_port(input),
            dst_port: read_port(input),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::try_from(self.service).expect("service 0 or 1"));
        put_address(out, self.src);
        let vip = VIPS.iter().position(|vip| *vip == self.dst);
        out.push(vip.expect("the destination is one of VIPS") as u8);
        put_port(out, self.src_port);
        put_port(out, self.dst_port);
    }

    fn path(&self) -> SctpPath {
        SctpPath {
            service: self.service,
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
    }
}

/// One step of [`table`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableOp {
    /// `decide` on arbitrary bytes.
    Raw(PathSpec, Vec<u8>),
    /// `decide` on a built packet.
    Packet(PathSpec, SctpSpec),
    /// `expire` at the current time.
    Expire,
    /// The clock moves this many milliseconds.
    Advance(u8),
    /// Bit `b` set: backend `b` (0..8) has left its service.
    Gone(u8),
    /// What Maglev picks for a new association: backend 0..4, or `None` (no backend).
    Select(Option<u8>),
}

impl TableOp {
    fn decode(input: &mut Input<'_>) -> TableOp {
        match input.u8() % 6 {
            0 => {
                let path = PathSpec::decode(input);
                TableOp::Raw(path, input.prefixed().to_vec())
            }
            1 => {
                let path = PathSpec::decode(input);
                TableOp::Packet(path, SctpSpec::decode(input))
            }
            2 => TableOp::Expire,
            3 => TableOp::Advance(input.u8()),
            4 => TableOp::Gone(input.u8()),
            _ => {
                let pick = input.u8();
                TableOp::Select((pick & 0x80 == 0).then_some(pick % 4))
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TableOp::Raw(path, bytes) => {
                out.push(0);
                path.encode(out);
                super::put_prefixed(out, bytes);
            }
            TableOp::Packet(path, spec) => {
                out.push(1);
                path.encode(out);
                spec.encode(out);
            }
            TableOp::Expire => out.push(2),
            TableOp::Advance(ms) => out.extend_from_slice(&[3, *ms]),
            TableOp::Gone(mask) => out.extend_from_slice(&[4, *mask]),
            TableOp::Select(pick) => out.extend_from_slice(&[5, pick.map_or(0x80, |b| b % 4)]),
        }
    }
}

/// The table's sizes, the first three bytes of a [`table`] input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSizes {
    /// Capacity, 1..=8.
    pub capacity: u8,
    /// Addresses per association, 1..=8.
    pub max_addresses: u8,
    /// Embryonic records per client address, 1..=4.
    pub embryonic_per_source: u8,
}

/// Encodes a [`table`] input.
pub fn encode_table(sizes: TableSizes, ops: &[TableOp]) -> Vec<u8> {
    let mut out = vec![
        sizes.capacity - 1,
        sizes.max_addresses - 1,
        sizes.embryonic_per_source - 1,
    ];
    for op in ops {
        op.encode(&mut out);
    }
    out
}

/// Linger, idle and embryonic timeouts of the fuzzed table: short, so that a few clock
/// steps cross them.
const LINGER_MS: u64 = 5;
const IDLE_MS: u64 = 200;
const EMBRYONIC_MS: u64 = 20;

/// Target `sctp_table`: sizes, then [`TableOp`]s until the input ends. After every step
/// the counters must agree with each other and with the capacity; at the end every
/// record reachable by a client transport address must be consistent.
pub fn table(data: &[u8]) {
    let mut input = Input::new(data);
    let config = SctpConfig {
        capacity: 1 + usize::from(input.u8() % 8),
        max_addresses: 1 + usize::from(input.u8() % 8),
        linger_ms: LINGER_MS,
        idle_ms: IDLE_MS,
        embryonic_ms: EMBRYONIC_MS,
        embryonic_per_source: 1 + u32::from(input.u8() % 4),
    };
    let table = SctpAssociationTable::new(config);
    let mut now_ms = 0u64;
    let mut gone = 0u8;
    let mut select = Some(0u32);
    let present = |gone: u8, backend: u32| backend >= 8 || gone & (1 << backend) == 0;
    while !input.is_empty() {
        let (path, bytes) = match TableOp::decode(&mut input) {
            TableOp::Raw(path, bytes) => (path, bytes),
            TableOp::Packet(path, spec) => (path, spec.to_bytes()),
            TableOp::Expire => {
                table.expire(now_ms);
                check_counters(&table, &config);
                continue;
            }
            TableOp::Advance(ms) => {
                now_ms += u64::from(ms);
                continue;
            }
            TableOp::Gone(mask) => {
                gone = mask;
                continue;
            }
            TableOp::Select(pick) => {
                select = pick.map(u32::from);
                continue;
            }
        };
        let before = table.stats();
        let decision = table.decide(
            &path.path(),
            &bytes,
            now_ms,
            || select,
            |backend| present(gone, backend),
        );
        if let SctpDecision::Forward {
            backend,
            new_association,
        } = decision
        {
            assert!(
                present(gone, backend),
                "forwarded to backend {backend}, which has left"
            );
            if new_association {
                assert!(
                    table.stats().created > before.created,
                    "new_association without a record created"
                );
            }
        }
        check_counters(&table, &config);
    }
    check_records(&table, &config);
}

/// The counters agree with each other, the capacity and the per-backend counts.
fn check_counters(table: &SctpAssociationTable, config: &SctpConfig) {
    let stats = table.stats();
    assert!(
        stats.associations <= config.capacity,
        "{stats:?} over capacity {}",
        config.capacity
    );
    assert!(stats.embryonic <= stats.associations, "{stats:?}");
    assert_eq!(stats.associations, table.len(), "{stats:?}");
    assert_eq!(
        stats.created.checked_sub(stats.freed),
        Some(stats.associations as u64),
        "created - freed != associations: {stats:?}"
    );
    let owned: u64 = table
        .associations_by_backend()
        .iter()
        .map(|(_, count)| u64::from(*count))
        .sum();
    assert_eq!(
        owned, stats.associations as u64,
        "per-backend counts disagree with {stats:?}"
    );
}

/// Every record found by a client transport address lists that address, holds at most
/// `max_addresses` of them, and has the tags its state says it has.
fn check_records(table: &SctpAssociationTable, config: &SctpConfig) {
    for service in 0..2 {
        for client in ADDRESSES {
            for client_port in PORTS {
                for server_port in PORTS {
                    let Some(info) = table.association(service, client, client_port, server_port)
                    else {
                        continue;
                    };
                    assert!(
                        info.addresses.len() <= config.max_addresses,
                        "{info:?} holds more than {} addresses",
                        config.max_addresses
                    );
                    assert!(
                        info.addresses.contains(&client),
                        "found by {client} but does not list it: {info:?}"
                    );
                    match info.state {
                        SctpAssociationState::CookieWait => {
                            assert_eq!(info.backend_tag, None, "{info:?}")
                        }
                        SctpAssociationState::Established => {
                            assert!(info.backend_tag.is_some(), "{info:?}")
                        }
                        SctpAssociationState::Closing { .. } => {}
                    }
                }
            }
        }
    }
}
