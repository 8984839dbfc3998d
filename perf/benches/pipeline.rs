//! The `l4lb` pipeline over in-memory buffers, batch 64, one core: ns/packet for the
//! cases issue 2 sets targets for (Katran's `testPerfFromFixture` in spirit).
//!
//! - `tcp_established`: ACKs of 64 tracked flows (flow-table hits).
//! - `tcp_syn`: a new flow every packet (Maglev + insert, evicting when full).
//! - `udp_1m_flows`: UDP cycling over 1M client flows (cache-missing flow table).
//! - `sctp_data_10k`: DATA over 10k associations (shared association table reads).
//! - `sctp_init_flood`: an INIT from a new source every packet into a full table (each
//!   creates an embryonic record and evicts the oldest).

use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xlb::config;
use xlb::lb::snapshot::StaticResolver;
use xlb::lb::verdict::Verdict;
use xlb::pipeline::batch::PacketBuf;
use xlb::pipeline::offline::OfflinePipeline;
use xlb::wire::frames::{self, tcp_flags, FrameSpec, Transport};
use xlb::wire::sctp::{ChunkRepr, PacketRepr};

const BATCH: usize = 64;
/// Associations (and NAT sessions) the shared tables hold.
const SCTP_TABLE_CAPACITY: usize = 16_384;
const ETH_IP4: usize = 14 + 20;

const TABLE: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }]
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends: &backends
      - { name: b1, address: 198.18.1.11, mac: "02:00:00:00:01:11" }
      - { name: b2, address: 198.18.1.12, mac: "02:00:00:00:01:12" }
      - { name: b3, address: 198.18.1.13, mac: "02:00:00:00:01:13" }
      - { name: b4, address: 198.18.1.14, mac: "02:00:00:00:01:14" }
  - { name: dns, vips: [198.18.100.10], protocol: udp, ports: [53], forwarding: dsr, backends: *backends }
  - { name: ngap, vips: [198.18.100.20], protocol: sctp, ports: [38412], forwarding: dsr, backends: *backends }
"#;

struct Bench(OfflinePipeline);

impl Bench {
    fn new(flows: usize) -> Self {
        let table = config::parse(TABLE, "bench.yaml").expect("bench table is valid");
        let resolver = StaticResolver {
            port_macs: vec![[2, 0, 0, 0, 0, 2]],
            egress: 0,
        };
        Bench(
            OfflinePipeline::new(&table, &resolver, flows, SCTP_TABLE_CAPACITY)
                .expect("bench pipeline"),
        )
    }

    fn run(&mut self, buffers: &mut [Vec<u8>], len: usize) {
        let mut packets: arrayvec::ArrayVec<PacketBuf<'_>, BATCH> =
            buffers.iter_mut().map(|b| PacketBuf::new(b, len)).collect();
        let mut verdicts = [Verdict::Pending; BATCH];
        self.0.run(&mut packets, &mut verdicts, 1);
        debug_assert!(verdicts.iter().all(|v| matches!(v, Verdict::Forward(_))));
    }
}

fn frame(src: SocketAddr, dst: &str, transport: Transport<'_>) -> Vec<u8> {
    let mut f = frames::build(&FrameSpec {
        src_mac: [2, 0, 0, 0, 0, 0x10],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src,
        dst: dst.parse().unwrap(),
        transport,
    })
    .unwrap();
    f.resize(2048, 0);
    f
}

/// Client `i`'s address and port: 256 ports on each of many addresses in 198.18.0.0/15.
fn client(i: u32) -> SocketAddr {
    let host = 0xC612_0000u32 | (i >> 8);
    SocketAddr::from(((host).to_be_bytes(), 1024 + (i & 0xff) as u16))
}

/// Rewrites the IPv4 source address and L4 source port in place (checksums are not
/// verified on the fast path, so they may go stale here).
fn set_client(buf: &mut [u8], i: u32) {
    let c = client(i);
    if let SocketAddr::V4(v4) = c {
        buf[26..30].copy_from_slice(&v4.ip().octets());
    }
    buf[ETH_IP4..ETH_IP4 + 2].copy_from_slice(&c.port().to_be_bytes());
}

fn l4lb(c: &mut Criterion) {
    let mut group = c.benchmark_group("l4lb");
    group.throughput(Throughput::Elements(BATCH as u64));

    let ack = frame(
        client(0),
        "198.18.100.10:80",
        Transport::Tcp {
            flags: tcp_flags::ACK,
            payload: b"",
        },
    );
    let ack_len = 14 + 20 + 20;
    let mut bench = Bench::new(1 << 20);
    let mut buffers: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|i| {
            let mut b = ack.clone();
            set_client(&mut b, i);
            b
        })
        .collect();
    bench.run(&mut buffers, ack_len);
    group.bench_function("tcp_established", |b| {
        b.iter(|| bench.run(&mut buffers, ack_len))
    });

    let syn = frame(
        client(0),
        "198.18.100.10:80",
        Transport::Tcp {
            flags: tcp_flags::SYN,
            payload: b"",
        },
    );
    let mut bench = Bench::new(1 << 20);
    let mut buffers = vec![syn; BATCH];
    let mut next = 0u32;
    group.bench_function("tcp_syn", |b| {
        b.iter(|| {
            for buf in buffers.iter_mut() {
                set_client(buf, next);
                next = next.wrapping_add(1);
            }
            bench.run(&mut buffers, ack_len)
        })
    });

    const UDP_FLOWS: u32 = 1 << 20;
    let udp = frame(
        client(0),
        "198.18.100.10:53",
        Transport::Udp {
            payload: &[0u8; 18],
        },
    );
    let udp_len = 14 + 20 + 8 + 18;
    let mut bench = Bench::new(2 << 20);
    let mut buffers = vec![udp; BATCH];
    let mut next = 0u32;
    for _ in 0..UDP_FLOWS / BATCH as u32 {
        for buf in buffers.iter_mut() {
            set_client(buf, next);
            next += 1;
        }
        bench.run(&mut buffers, udp_len);
    }
    group.bench_function("udp_1m_flows", |b| {
        b.iter(|| {
            for buf in buffers.iter_mut() {
                set_client(buf, next % UDP_FLOWS);
                next = next.wrapping_add(7919);
            }
            bench.run(&mut buffers, udp_len)
        })
    });

    const ASSOCIATIONS: u32 = 10_000;
    let mut bench = Bench::new(1 << 16);
    for i in 0..ASSOCIATIONS {
        let init = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0,
            chunks: &[ChunkRepr::Init {
                initiate_tag: i + 1,
                a_rwnd: 65535,
                outbound_streams: 2,
                inbound_streams: 2,
                initial_tsn: 1,
                addresses: &[],
            }],
        }
        .to_vec();
        let cookie = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0x8000_0000 | i,
            chunks: &[ChunkRepr::CookieEcho { cookie: b"cookie" }],
        }
        .to_vec();
        let src = client(i * 256);
        for bytes in [&init, &cookie] {
            let mut buf = frame(
                src,
                "198.18.100.20:38412",
                Transport::Raw {
                    protocol: xlb::wire::headers::protocol::SCTP,
                    bytes,
                },
            );
            buf.truncate(ETH_IP4 + bytes.len());
            bench.0.run_frame(&buf, 1);
        }
    }
    let data = PacketRepr {
        src_port: 5000,
        dst_port: 38412,
        verification_tag: 0x8000_0000,
        chunks: &[ChunkRepr::Data {
            tsn: 1,
            stream_id: 0,
            stream_seq: 0,
            ppid: 60,
            payload: &[0u8; 16],
        }],
    }
    .to_vec();
    let data_len = ETH_IP4 + data.len();
    let data_frame = frame(
        client(0),
        "198.18.100.20:38412",
        Transport::Raw {
            protocol: 132,
            bytes: &data,
        },
    );
    let mut buffers = vec![data_frame; BATCH];
    let mut next = 0u32;
    group.bench_function("sctp_data_10k", |b| {
        b.iter(|| {
            for buf in buffers.iter_mut() {
                let i = next % ASSOCIATIONS;
                if let SocketAddr::V4(v4) = client(i * 256) {
                    buf[26..30].copy_from_slice(&v4.ip().octets());
                }
                buf[ETH_IP4 + 4..ETH_IP4 + 8].copy_from_slice(&(0x8000_0000 | i).to_be_bytes());
                next = next.wrapping_add(1);
            }
            bench.run(&mut buffers, data_len)
        })
    });

    // A spoofed INIT flood: a new source (198.19.0.0/16) every packet into a table kept
    // full of embryonic records, so every INIT also evicts the oldest one.
    let init = PacketRepr {
        src_port: 5000,
        dst_port: 38412,
        verification_tag: 0,
        chunks: &[ChunkRepr::Init {
            initiate_tag: 0x5eed,
            a_rwnd: 65535,
            outbound_streams: 1,
            inbound_streams: 1,
            initial_tsn: 1,
            addresses: &[],
        }],
    }
    .to_vec();
    let init_len = ETH_IP4 + init.len();
    let init_frame = frame(
        client(0),
        "198.18.100.20:38412",
        Transport::Raw {
            protocol: xlb::wire::headers::protocol::SCTP,
            bytes: &init,
        },
    );
    let mut bench = Bench::new(1 << 10);
    let mut buffers = vec![init_frame; BATCH];
    let mut source = 0u32;
    // The CRC32c does not cover IP addresses: a new source keeps the INIT valid.
    let mut flood = |bench: &mut Bench, buffers: &mut [Vec<u8>]| {
        for buf in buffers.iter_mut() {
            buf[26..30].copy_from_slice(&(0xC613_0000 | (source & 0xffff)).to_be_bytes());
            source = source.wrapping_add(1);
        }
        bench.run(buffers, init_len)
    };
    for _ in 0..=SCTP_TABLE_CAPACITY / BATCH {
        flood(&mut bench, &mut buffers);
    }
    group.bench_function("sctp_init_flood", |b| {
        b.iter(|| flood(&mut bench, &mut buffers))
    });
    group.finish();
}

criterion_group!(benches, l4lb);
criterion_main!(benches);
