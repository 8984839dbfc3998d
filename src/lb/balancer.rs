//! Packet metadata -> backend: the balancing decision, sans-IO.
//!
//! TCP and UDP go through the worker's own flow table (sticky while the backend stays),
//! SCTP through the shared association table (DESIGN §5), and new flows through the
//! service's Maglev ring. `now` is an argument; nothing here touches a socket.

use std::net::IpAddr;

use crate::lb::flow::{FlowKey, FlowTable, FlowTimeouts, Insert};
use crate::lb::sctp::{SctpAssociationTable, SctpDecision, SctpPath};
use crate::lb::snapshot::{BackendId, ServiceIndex, Snapshot};
use crate::pipeline::verdict::DropReason;

/// TCP FIN and RST flags: the flow is ending.
const TCP_FIN_OR_RST: u8 = 0x01 | 0x04;

/// What the balancer decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send to this backend.
    Backend(BackendId),
    /// Drop, counted under the reason.
    Drop(DropReason),
}

/// Per-worker decision counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalancerStats {
    /// Flows or associations placed by Maglev.
    pub new_flows: u64,
    /// Tracked flows whose backend left and were placed again.
    pub reselected: u64,
    /// Live flows evicted because their bucket was full.
    pub evictions: u64,
}

/// One worker's balancing state: its flow table and counters.
pub struct Balancer {
    flows: FlowTable,
    stats: BalancerStats,
}

impl Balancer {
    /// A balancer whose flow table holds `capacity` flows, allocated now (call it on the
    /// worker's own, pinned thread so the memory lands on its NUMA node).
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Self {
        Balancer {
            flows: FlowTable::new(capacity, timeouts),
            stats: BalancerStats::default(),
        }
    }

    /// Prefetches the flow bucket of the next packet.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.flows.prefetch(hash);
    }

    /// Decides a TCP or UDP packet of `service`.
    #[inline]
    pub fn decide_flow(
        &mut self,
        snapshot: &Snapshot,
        service: ServiceIndex,
        key: &FlowKey,
        hash: u64,
        tcp_flags: u8,
        now_ms: u64,
    ) -> Decision {
        let tracked = self.flows.lookup(key, hash, now_ms);
        let decision = match tracked {
            Some(id) if snapshot.keeps_flow(service, id) => Decision::Backend(id),
            _ => match snapshot.service(service).select(hash) {
                None => Decision::Drop(DropReason::NoBackend),
                Some(id) => {
                    if tracked.is_some() {
                        self.flows.update(key, hash, id, now_ms);
                        self.stats.reselected += 1;
                    } else {
                        if self.flows.insert(key, hash, id, now_ms) == Insert::EvictedLru {
                            self.stats.evictions += 1;
                        }
                        self.stats.new_flows += 1;
                    }
                    Decision::Backend(id)
                }
            },
        };
        if tcp_flags & TCP_FIN_OR_RST != 0 && matches!(decision, Decision::Backend(_)) {
            self.flows.close(key, hash, now_ms);
        }
        decision
    }

    /// Decides an SCTP packet of `service`; `sctp` is the SCTP header and chunks.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn decide_sctp(
        &mut self,
        snapshot: &Snapshot,
        associations: &SctpAssociationTable,
        service: ServiceIndex,
        src: IpAddr,
        dst: IpAddr,
        ports: (u16, u16),
        sctp: &[u8],
        hash: u64,
        now_ms: u64,
    ) -> Decision {
        let path = SctpPath {
            service,
            src,
            dst,
            src_port: ports.0,
            dst_port: ports.1,
        };
        let entry = snapshot.service(service);
        match associations.decide(
            &path,
            sctp,
            now_ms,
            || entry.select(hash),
            |id| snapshot.keeps_flow(service, id),
        ) {
            SctpDecision::Forward {
                backend,
                new_association,
            } => {
                if new_association {
                    self.stats.new_flows += 1;
                }
                Decision::Backend(backend)
            }
            SctpDecision::Drop(reason) => Decision::Drop(reason),
        }
    }

    /// The backend a packet about a flow would go to without creating state: the tracked
    /// backend if any, else Maglev. Used for ICMP errors about a flow.
    pub fn peek_flow(
        &mut self,
        snapshot: &Snapshot,
        service: ServiceIndex,
        key: &FlowKey,
        hash: u64,
        now_ms: u64,
    ) -> Option<BackendId> {
        match self.flows.lookup(key, hash, now_ms) {
            Some(id) if snapshot.keeps_flow(service, id) => Some(id),
            _ => snapshot.service(service).select(hash),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> BalancerStats {
        self.stats
    }

    /// Flows currently tracked.
    pub fn tracked_flows(&self) -> usize {
        self.flows.len()
    }
}
