//! `xlb explain`: which service and backend a flow maps to, found by running a probe
//! frame (TCP SYN, UDP datagram or SCTP INIT) through the same `l4lb` pipeline the
//! dataplane runs, so the answer cannot drift from what the dataplane does.

use std::fmt;
use std::net::SocketAddr;

use crate::config::{Backend, Forwarding, Protocol, ServiceTable};
use crate::lb::balancer::Balancer;
use crate::lb::flow::FlowTimeouts;
use crate::lb::nat::{NatConfig, NatSessionTable};
use crate::lb::sctp::{SctpAssociationTable, SctpConfig};
use crate::lb::snapshot::{DownBackends, NextHop, NextHopResolver, Snapshot, SnapshotError};
use crate::lb::verdict::{PortId, Verdict};
use crate::pipeline::batch::PacketBuf;
use crate::pipeline::loader;
use crate::pipeline::stage::{Context, SharedTables, Target};
use crate::pipeline::{WorkerCounters, WorkerState};
use crate::wire::frames::{self, tcp_flags, FrameSpec, Transport};
use crate::wire::sctp;

/// Where a flow goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Explanation {
    /// Balanced to a backend.
    Backend {
        /// Service name.
        service: String,
        /// Backend name.
        backend: String,
        /// Backend address.
        address: std::net::IpAddr,
        /// How frames reach it.
        forwarding: Forwarding,
    },
    /// Dropped by the pipeline, with the counter it would be counted under.
    Dropped {
        /// Service name, if the flow matched one.
        service: Option<String>,
        /// Drop reason name.
        reason: &'static str,
    },
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Explanation::Backend {
                service,
                backend,
                address,
                forwarding,
            } => write!(
                f,
                "service {service} -> backend {backend} ({address}) via {}",
                format!("{forwarding:?}").to_lowercase()
            ),
            Explanation::Dropped {
                service: Some(s),
                reason,
            } => {
                write!(f, "service {s}: dropped ({reason})")
            }
            Explanation::Dropped {
                service: None,
                reason,
            } => write!(f, "dropped ({reason})"),
        }
    }
}

/// Why a flow could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The table's snapshot could not be built.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The probe frame could not be built.
    #[error(transparent)]
    Frame(#[from] frames::FrameError),
}

/// Every backend resolves to a placeholder next hop: explain answers "which backend",
/// not "is its MAC known".
struct ExplainResolver;

impl NextHopResolver for ExplainResolver {
    fn next_hop(&self, backend: &Backend) -> Option<NextHop> {
        Some(NextHop {
            port: 0,
            src_mac: [0; 6],
            dst_mac: backend.mac.unwrap_or_default(),
        })
    }

    fn port_mac(&self, _port: PortId) -> [u8; 6] {
        [0; 6]
    }
}

/// Explains the first packet of a flow `src -> dst` of `protocol`.
pub fn explain(
    table: &ServiceTable,
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
) -> Result<Explanation, ExplainError> {
    let snapshot = Snapshot::build(table, 0, None, &ExplainResolver, &DownBackends::new())?;
    let init;
    let transport = match protocol {
        Protocol::Tcp => Transport::Tcp {
            flags: tcp_flags::SYN,
            payload: b"",
        },
        Protocol::Udp => Transport::Udp {
            payload: b"xlb explain",
        },
        Protocol::Sctp => {
            init = sctp::PacketRepr {
                src_port: src.port(),
                dst_port: dst.port(),
                verification_tag: 0,
                chunks: &[sctp::ChunkRepr::Init {
                    initiate_tag: 0x5eed_f00d,
                    a_rwnd: 65535,
                    outbound_streams: 1,
                    inbound_streams: 1,
                    initial_tsn: 1,
                    addresses: &[],
                }],
            }
            .to_vec();
            Transport::Raw {
                protocol: 132,
                bytes: &init,
            }
        }
    };
    let mut frame = frames::build(&FrameSpec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src,
        dst,
        transport,
    })?;
    let len = frame.len();
    frame.resize(len + 128, 0);

    let d = &table.dataplane;
    let shared = SharedTables {
        sctp: SctpAssociationTable::new(SctpConfig {
            capacity: 16,
            ..SctpConfig::from_table(d)
        }),
        nat: NatSessionTable::new(NatConfig {
            addresses: d.nat.addresses.clone(),
            port_range: d.nat.port_range,
            capacity: 16,
            tcp_idle_ms: 1000,
            udp_idle_ms: 1000,
            tcp_closing_ms: 1000,
            unanswered_idle_ms: 1000,
        }),
    };
    let mut worker = WorkerState {
        balancer: Balancer::new(
            64,
            FlowTimeouts {
                tcp_idle_ms: 1000,
                udp_idle_ms: 1000,
                sctp_idle_ms: 1000,
                tcp_closing_ms: 1000,
            },
        ),
        counters: WorkerCounters::default(),
    };
    let mut pipeline = loader::load("l4lb").expect("the built-in l4lb pipeline is valid");
    let mut packets = [PacketBuf::new(&mut frame, len)];
    let mut verdicts = [Verdict::Pending];
    let ctx = Context {
        snapshot: &snapshot,
        shared: &shared,
        ingress: 0,
        now_ms: 0,
    };
    pipeline.run(&mut packets, &mut verdicts, &ctx, &mut worker);

    let meta = pipeline.metadata()[0];
    let service_name = meta.service.map(|s| snapshot.service(s).name.clone());
    Ok(match (verdicts[0], meta.target) {
        (Verdict::Forward(_), Target::Backend { service, backend }) => {
            let b = snapshot
                .backend(backend)
                .expect("the pipeline picked a live backend");
            Explanation::Backend {
                service: snapshot.service(service).name.clone(),
                backend: b.name.clone(),
                address: b.address,
                forwarding: snapshot.service(service).forwarding,
            }
        }
        (Verdict::Forward(_), Target::NatOut { backend, .. }) => {
            let b = snapshot
                .backend(backend)
                .expect("the pipeline picked a live backend");
            Explanation::Backend {
                service: service_name.unwrap_or_default(),
                backend: b.name.clone(),
                address: b.address,
                forwarding: Forwarding::Nat,
            }
        }
        (Verdict::Drop(reason), _) => Explanation::Dropped {
            service: service_name,
            reason: reason.name(),
        },
        _ => Explanation::Dropped {
            service: service_name,
            reason: "not balanced",
        },
    })
}
