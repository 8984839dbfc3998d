//! The stage trait and what stages share: the batch's arrays and the batch context.

use std::net::IpAddr;

use crate::config::DataplaneConfig;
use crate::lb::nat::{NatConfig, NatSessionTable};
use crate::lb::sctp::{SctpAssociationTable, SctpConfig};
use crate::lb::snapshot::{BackendId, ServiceIndex, Snapshot};
use crate::lb::verdict::{PortId, Verdict};
use crate::pipeline::batch::PacketBuf;
use crate::pipeline::WorkerState;
use crate::wire::headers::Headers;

/// Tables shared by every worker (docs/architecture.md §1: the only mutable state on the packet path
/// that workers share).
pub struct SharedTables {
    /// SCTP associations: one association's paths may arrive on any queue.
    pub sctp: SctpAssociationTable,
    /// NAT sessions: replies arrive on whatever queue RSS picks.
    pub nat: NatSessionTable,
}

impl SharedTables {
    /// Empty tables sized and timed as a service table's `dataplane` section says.
    pub fn for_table(dataplane: &DataplaneConfig) -> SharedTables {
        SharedTables {
            sctp: SctpAssociationTable::new(SctpConfig::from_table(dataplane)),
            nat: NatSessionTable::new(NatConfig::from_table(dataplane)),
        }
    }

    /// Empty tables of `capacity` entries each, otherwise as `dataplane` says: for
    /// `xlb explain`, tests and benches.
    pub fn with_capacity(dataplane: &DataplaneConfig, capacity: usize) -> SharedTables {
        SharedTables {
            sctp: SctpAssociationTable::new(SctpConfig {
                capacity,
                ..SctpConfig::from_table(dataplane)
            }),
            nat: NatSessionTable::new(NatConfig {
                capacity,
                ..NatConfig::from_table(dataplane)
            }),
        }
    }
}

/// Read-only inputs of one batch, loaded once per batch.
pub struct Context<'a> {
    /// The config generation in force for this batch.
    pub snapshot: &'a Snapshot,
    /// Shared SCTP and NAT tables.
    pub shared: &'a SharedTables,
    /// Port the batch was received on.
    pub ingress: PortId,
    /// Monotonic milliseconds, read once per batch.
    pub now_ms: u64,
}

/// What the balancer decided for a packet, carried to the rewrite stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// Not decided yet.
    #[default]
    None,
    /// Forward to a backend of a service with the service's forwarding mode.
    Backend {
        /// The service.
        service: ServiceIndex,
        /// The backend.
        backend: BackendId,
    },
    /// Client -> VIP packet of a `nat` service: rewrite both ends.
    NatOut {
        /// The backend.
        backend: BackendId,
        /// xlb's source address towards the backend.
        snat: IpAddr,
        /// xlb's source port towards the backend.
        snat_port: u16,
    },
    /// Backend -> SNAT reply: restore the VIP as source and the client as destination.
    NatBack {
        /// The VIP the client talked to.
        vip: IpAddr,
        /// The VIP's port.
        vip_port: u16,
        /// The client.
        client: IpAddr,
        /// The client's port.
        client_port: u16,
        /// Where the client's frames came from: port and MAC to send the reply to.
        reply_port: PortId,
        /// The MAC the client's frames came from (client or its router).
        reply_mac: [u8; 6],
    },
}

/// Per-packet metadata the stages fill in.
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketMeta {
    /// Parsed header offsets and fields.
    pub headers: Headers,
    /// Flow hash (client-to-VIP direction) for Maglev and the flow table.
    pub hash: u64,
    /// The service the destination belongs to, once classified.
    pub service: Option<ServiceIndex>,
    /// The decision the rewrite stage carries out.
    pub target: Target,
}

/// A batch as stages see it: parallel arrays of equal length.
pub struct Batch<'p, 'b> {
    /// Frames.
    pub packets: &'p mut [PacketBuf<'b>],
    /// Verdicts; stages only look at `Pending` packets.
    pub verdicts: &'p mut [Verdict],
    /// Metadata filled by earlier stages.
    pub meta: &'p mut [PacketMeta],
}

/// One step of a pipeline. Loops over the whole batch; never returns early per packet.
pub trait Stage: Send {
    /// Name used in `pipelines/*.yaml`.
    fn name(&self) -> &'static str;
    /// Processes every still-pending packet of the batch.
    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, worker: &mut WorkerState);
}
