//! `xlb explain`: which service and backend a flow maps to, found by running a probe
//! frame (TCP SYN, UDP datagram or SCTP INIT) through the same `l4lb` pipeline the
//! dataplane runs, so the answer cannot drift from what the dataplane does.

use std::fmt;
use std::net::SocketAddr;

use crate::config::{Backend, Forwarding, Protocol, ServiceTable};
use crate::lb::snapshot::{NextHop, NextHopResolver, ETHERNET_MTU};
use crate::lb::verdict::{PortId, Verdict};
use crate::pipeline::offline::{OfflineError, OfflinePipeline};
use crate::pipeline::stage::Target;
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
    /// The table's snapshot or pipeline could not be set up.
    #[error(transparent)]
    Offline(#[from] OfflineError),
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

    /// A flow's first packet is small: the MTU never decides its fate.
    fn port_mtu(&self, _port: PortId) -> u32 {
        ETHERNET_MTU
    }
}

/// Explains the first packet of a flow `src -> dst` of `protocol`.
pub fn explain(
    table: &ServiceTable,
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
) -> Result<Explanation, ExplainError> {
    let frame = first_packet(protocol, src, dst)?;
    // Explain answers what the balancer does, whatever pipeline the table runs.
    let mut balancing = table.clone();
    balancing.dataplane.pipeline = "l4lb".into();
    let mut offline = OfflinePipeline::new(&balancing, &ExplainResolver, 64, 16)?;
    let (verdict, _) = offline.run_frame(&frame, 0);
    let snapshot = &offline.snapshot;
    let meta = offline.pipeline.metadata()[0];
    let service_name = meta.service.map(|s| snapshot.service(s).name.clone());
    Ok(match (verdict, meta.target) {
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

/// The frame a client would send first: a SYN, a datagram, or an INIT.
fn first_packet(
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
) -> Result<Vec<u8>, frames::FrameError> {
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
                protocol: crate::wire::headers::protocol::SCTP,
                bytes: &init,
            }
        }
    };
    frames::build(&FrameSpec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src,
        dst,
        transport,
    })
}
