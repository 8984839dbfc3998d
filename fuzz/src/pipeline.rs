//! The `l4lb` pipeline with its state (target `pipeline`): sequences of frames through
//! `MemoryPorts` into the `OfflinePipeline` of `tests/pipeline_fixtures.rs`'s table (its
//! snapshot, the shared SCTP and NAT tables, a worker's flow table), with clock steps,
//! table sweeps and reloads between batches.

use std::sync::OnceLock;

use xlb::config::{self, ServiceTable};
use xlb::lb::balancer::Balancer;
use xlb::lb::flow::FlowTimeouts;
use xlb::lb::snapshot::{DownBackends, Snapshot, StaticResolver};
use xlb::lb::verdict::Verdict;
use xlb::pipeline::offline::OfflinePipeline;
use xlb::pipeline::stage::SharedTables;
use xlb::pipeline::{loader, WorkerCounters, WorkerState};
use xlb::wire::headers;
use xlb::xsk::MemoryPorts;

use super::Input;

/// The MAC of xlb's one port.
pub const XLB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// The MAC clients send from.
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

/// The table of `tests/pipeline_fixtures.rs` (tests/fixtures/pipeline.yaml): every
/// protocol and forwarding mode, one backend per service.
pub const TABLE: &str = include_str!("../../tests/fixtures/pipeline.yaml");

/// [`TABLE`] after a reload: services reordered, the SCTP and NAT backends replaced (their
/// associations and sessions lose their backend), `udp-nat6` removed, `udp-dsr` gaining a
/// backend without a MAC (no next hop).
pub const TABLE_RELOADED: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }]
  maglev_table_size: 251
  encapsulation: { source_v4: 198.18.0.2, source_v6: "2001:db8::2", gue_port: 6080 }
  nat: { addresses: [198.18.0.3, "2001:db8::3"], port_range: [20000, 20099] }
services:
  - { name: sctp-dsr, vips: [198.18.100.20, 198.18.101.20, "2001:db8:100::20"], protocol: sctp, ports: [38412], forwarding: dsr,
      backends: [{ name: b4, address: 198.18.1.14, mac: "02:00:00:00:01:14" }] }
  - { name: udp-dsr, vips: [198.18.100.10, "2001:db8:100::10"], protocol: udp, ports: [53], forwarding: dsr,
      backends: [{ name: b1, address: 198.18.1.11, mac: "02:00:00:00:01:11" }, { name: b5, address: 198.18.1.15 }] }
  - { name: tcp-dsr, vips: [198.18.100.10, "2001:db8:100::10"], protocol: tcp, ports: [80], forwarding: dsr,
      source_ranges: [198.18.0.0/16, "2001:db8::/32"],
      backends: [{ name: b1, address: 198.18.1.11, mac: "02:00:00:00:01:11" }] }
  - { name: tcp-ipip, vips: [198.18.100.11], protocol: tcp, ports: [80], forwarding: ipip,
      backends: [{ name: b2, address: 198.18.1.12, mac: "02:00:00:00:01:12" }] }
  - { name: tcp-ip6ip6, vips: ["2001:db8:100::11"], protocol: tcp, ports: [80], forwarding: ipip,
      backends: [{ name: b2, address: "2001:db8::1:12", mac: "02:00:00:00:01:12" }] }
  - { name: udp-gue, vips: [198.18.100.12, "2001:db8:100::12"], protocol: udp, ports: [9000], forwarding: gue,
      backends: [{ name: b3, address: "2001:db8::1:13", mac: "02:00:00:00:01:13" }] }
  - { name: tcp-nat, vips: [198.18.100.13], protocol: tcp, ports: [8080], forwarding: nat,
      backends: [{ name: b6, address: 198.18.1.16, mac: "02:00:00:00:01:16" }] }
  - { name: sctp-ipip, vips: [198.18.100.21], protocol: sctp, ports: [38412], forwarding: ipip,
      backends: [{ name: b2, address: 198.18.1.12, mac: "02:00:00:00:01:12" }] }
  - { name: sctp-gue, vips: [198.18.100.22], protocol: sctp, ports: [38412], forwarding: gue,
      backends: [{ name: b3, address: 198.18.1.13, mac: "02:00:00:00:01:13" }] }
"#;

/// Bytes of room each frame has (an AF_XDP frame's, as `MemoryPorts` gives); longer
/// input frames are cut to it.
pub const FRAME_CAPACITY: usize = 3840;
/// Most frames in one batch.
pub const MAX_FRAMES_PER_BATCH: usize = 64;
/// Entries of the SCTP and NAT tables: small, so that inputs fill them.
const SHARED_CAPACITY: usize = 16;
/// Flows of the worker's flow table.
const FLOW_CAPACITY: usize = 64;
/// NAT slots one sweep visits per shard (the supervisor's housekeeping visits 4096).
const NAT_SWEEP_SLOTS: usize = 4096;

/// Flag bits of a [`FrameRecord`].
pub mod flags {
    /// The batch ends after this frame; the clock step, sweep and reload below apply.
    pub const END_BATCH: u8 = 0x01;
    /// Sweep the SCTP and NAT tables after the batch, as the supervisor's housekeeping does.
    pub const EXPIRE: u8 = 0x10;
    /// Reload after the batch: [`super::TABLE`] and [`super::TABLE_RELOADED`] take turns,
    /// each snapshot built from the previous one.
    pub const RELOAD: u8 = 0x20;

    /// The clock step after the batch, an index into `ADVANCE_MS`.
    pub const fn advance(step: u8) -> u8 {
        (step & 7) << 1
    }
}

/// Clock steps, milliseconds: across the SCTP linger (2 s), embryonic timeout (5 s), UDP
/// idle (30 s) and TCP/SCTP idle (300 s) of the table's defaults.
const ADVANCE_MS: [u64; 8] = [0, 1, 100, 1_000, 2_500, 6_000, 40_000, 400_000];

/// One frame of a [`run`] input and what happens after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    /// [`flags`].
    pub flags: u8,
    /// The frame.
    pub frame: Vec<u8>,
}

/// Encodes a [`run`] input: per frame, its flags byte and the frame behind a 16-bit length.
pub fn encode(records: &[FrameRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        out.push(record.flags);
        super::put_prefixed(&mut out, &record.frame);
    }
    out
}

/// [`TABLE`] and [`TABLE_RELOADED`], parsed once per process, and a snapshot of
/// [`TABLE`] whose Maglev tables every input's first snapshot shares (`Snapshot::build`
/// keeps the previous generation's table of a service whose ring did not change, and its
/// ids): ten Maglev builds per input cost more than running the input's frames.
struct Fixture {
    tables: [ServiceTable; 2],
    base: Snapshot,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tables = [
            config::parse(TABLE, "pipeline-fixtures.yaml").expect("the fixture table is valid"),
            config::parse(TABLE_RELOADED, "pipeline-reloaded.yaml")
                .expect("the reloaded table is valid"),
        ];
        let base = Snapshot::build(&tables[0], 1, None, &resolver(), &DownBackends::new())
            .expect("the fixture table builds");
        Fixture { tables, base }
    })
}

fn resolver() -> StaticResolver {
    StaticResolver {
        port_macs: vec![XLB_MAC],
        egress: 0,
    }
}

/// Target `pipeline`: [`FrameRecord`]s until the input ends, in batches of up to
/// [`MAX_FRAMES_PER_BATCH`], through an `OfflinePipeline` of [`TABLE`] fed by
/// `MemoryPorts`. Every packet gets a verdict other than `Pending`, a forwarded one leaves
/// on the one port as a frame that parses, and the counters add up.
pub fn run(data: &[u8]) {
    let fixture = fixture();
    let (table, resolver) = (&fixture.tables[0], resolver());
    // What `OfflinePipeline::new` builds, but with the shared Maglev tables.
    let mut offline = OfflinePipeline {
        snapshot: Snapshot::build(
            table,
            1,
            Some(&fixture.base),
            &resolver,
            &DownBackends::new(),
        )
        .expect("the fixture table builds"),
        shared: SharedTables::with_capacity(&table.dataplane, SHARED_CAPACITY),
        worker: WorkerState {
            balancer: Balancer::new(FLOW_CAPACITY, FlowTimeouts::from_table(&table.dataplane)),
            counters: WorkerCounters::default(),
        },
        pipeline: loader::load(&table.dataplane.pipeline).expect("the pipeline loads"),
    };
    let mut ports = MemoryPorts::new(1, FRAME_CAPACITY);
    let mut generation = 1;
    let mut now_ms = 1;
    let mut input = Input::new(data);
    while !input.is_empty() {
        let flags = input.u8();
        let frame = input.prefixed();
        ports.push_rx(0, &frame[..frame.len().min(FRAME_CAPACITY)]);
        let end = flags & flags::END_BATCH != 0
            || ports.rx_pending(0) >= MAX_FRAMES_PER_BATCH
            || input.is_empty();
        if !end {
            continue;
        }
        let queued = ports.rx_pending(0);
        let stats = ports.process_batch(0, MAX_FRAMES_PER_BATCH, |_, packets, verdicts| {
            offline.run(packets, verdicts, now_ms);
            for (packet, verdict) in packets.iter().zip(verdicts.iter()) {
                assert_ne!(*verdict, Verdict::Pending, "a packet left undecided");
                assert!(packet.len <= packet.buf.len(), "packet past its buffer");
                if let Verdict::Forward(port) = *verdict {
                    assert_eq!(port, 0, "forwarded to a port that does not exist");
                    if let Err(error) = headers::parse(packet.data()) {
                        panic!(
                            "forwarded frame does not parse ({error}): {:02x?}",
                            packet.data()
                        );
                    }
                }
            }
        });
        assert_eq!(stats.rx as usize, queued);
        assert_eq!(stats.tx + stats.dropped, stats.rx);
        ports.take_tx(0);
        now_ms += ADVANCE_MS[usize::from(flags >> 1 & 7)];
        if flags & flags::EXPIRE != 0 {
            offline.shared.sctp.expire(now_ms);
            offline.shared.nat.sweep(now_ms, NAT_SWEEP_SLOTS);
        }
        if flags & flags::RELOAD != 0 {
            generation += 1;
            let table = &fixture.tables[(generation as usize - 1) % 2];
            offline.snapshot = Snapshot::build(
                table,
                generation,
                Some(&offline.snapshot),
                &resolver,
                &DownBackends::new(),
            )
            .expect("the fixture tables build");
        }
    }
    let counters = &offline.worker.counters;
    assert_eq!(
        counters.rx_packets,
        counters.tx_packets + counters.drops.iter().sum::<u64>(),
        "every packet is sent or counted under a drop reason"
    );
    let sctp = offline.shared.sctp.stats();
    assert!(sctp.associations <= SHARED_CAPACITY, "{sctp:?}");
    assert!(sctp.embryonic <= sctp.associations, "{sctp:?}");
    assert!(offline.shared.nat.len() <= SHARED_CAPACITY);
}
