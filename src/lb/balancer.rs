//! Packet metadata -> backend: the balancing decision, sans-IO.
//!
//! TCP and UDP go through the worker's own flow table (sticky while the backend stays),
//! SCTP through the shared association table (docs/architecture.md §5), and new flows through the
//! service's Maglev ring. `now` is an argument; nothing here touches a socket.

use std::net::IpAddr;

use crate::lb::flow::{FlowKey, FlowPacket, FlowTable, FlowTimeouts, Insert};
use crate::lb::hash::flow_hash;
use crate::lb::sctp::{SctpAssociationTable, SctpDecision, SctpPath};
use crate::lb::snapshot::{BackendId, ServiceIndex, Snapshot, MAX_BACKENDS};
use crate::lb::verdict::DropReason;
use crate::wire::headers::protocol;

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
    /// Live established flows evicted because their bucket was full.
    pub evictions: u64,
    /// New flows forwarded by Maglev but not tracked: the new-flow rate guard was out of tokens.
    pub untracked_rate_limited: u64,
    /// New SYN-only flows forwarded by Maglev but not tracked: their bucket was full of
    /// established flows, which a SYN never evicts.
    pub untracked_table_full: u64,
}

/// One worker's balancing state: its flow table and counters.
pub struct Balancer {
    flows: FlowTable,
    stats: BalancerStats,
    /// New flows and associations placed on each backend, by backend id.
    new_flows_by_backend: Box<[u64]>,
}

impl Balancer {
    /// A balancer whose flow table holds `capacity` flows, allocated now (call it on the
    /// worker's own, pinned thread so the memory lands on its NUMA node).
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Self {
        Balancer {
            flows: FlowTable::new(capacity, timeouts),
            stats: BalancerStats::default(),
            new_flows_by_backend: vec![0; MAX_BACKENDS].into_boxed_slice(),
        }
    }

    /// Starts loading a flow's bucket, a few packets ahead of its lookup.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.flows.prefetch(hash);
    }

    /// Starts loading the flow's entry once its bucket is in cache (see
    /// [`FlowTable::prefetch_entry`]).
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        self.flows.prefetch_entry(hash);
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
        let packet = FlowPacket::of(key.proto, tcp_flags);
        let tracked = self.flows.lookup_packet(key, hash, packet, now_ms);
        match tracked {
            Some(id) if snapshot.keeps_flow(service, id) => Decision::Backend(id),
            _ => match snapshot.service(service).select(hash) {
                None => Decision::Drop(DropReason::NoBackend),
                Some(id) => {
                    if tracked.is_some() {
                        self.flows.update(key, hash, id, now_ms);
                        self.stats.reselected += 1;
                    } else if packet != FlowPacket::Rst {
                        // A RST of an untracked flow ends it: nothing to remember.
                        let syn_only = packet == FlowPacket::Syn;
                        match self.flows.insert(key, hash, id, syn_only, now_ms) {
                            Insert::RateLimited => self.stats.untracked_rate_limited += 1,
                            Insert::Full => self.stats.untracked_table_full += 1,
                            outcome => {
                                if outcome == Insert::EvictedLru {
                                    self.stats.evictions += 1;
                                }
                                self.count_new_flow(id);
                            }
                        }
                    }
                    Decision::Backend(id)
                }
            },
        }
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
        let entry = snapshot.service(service);
        let placement = &entry.sctp_placement;
        let path = SctpPath {
            service: entry.id,
            src,
            dst,
            src_port: ports.0,
            dst_port: ports.1,
        };
        let hash = if placement.hash_ports {
            // Family-blind too: one association may mix IPv4 and IPv6 paths.
            let any = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);
            flow_hash(&any, &any, ports.0, ports.1, protocol::SCTP)
        } else {
            hash
        };
        let keeps = |id| snapshot.keeps_flow(service, id);
        match associations.decide(&path, sctp, now_ms, || entry.select(hash), keeps) {
            SctpDecision::Forward {
                backend,
                new_association,
            } => {
                if new_association {
                    self.count_new_flow(backend);
                }
                Decision::Backend(backend)
            }
            // Another node saw this association's handshake: where the service can
            // place it without shared state, it does.
            SctpDecision::Drop(DropReason::SctpUnknownAssociation) => {
                let by_tag = || {
                    let tag = u32::from_be_bytes(sctp.get(4..8)?.try_into().ok()?);
                    placement.backend_of_tag(tag).filter(|id| keeps(*id))
                };
                let by_ports = || placement.hash_ports.then(|| entry.select(hash)).flatten();
                match by_tag().or_else(by_ports) {
                    Some(backend) => Decision::Backend(backend),
                    None => Decision::Drop(DropReason::SctpUnknownAssociation),
                }
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

    #[inline]
    fn count_new_flow(&mut self, backend: BackendId) {
        self.stats.new_flows += 1;
        if let Some(slot) = self.new_flows_by_backend.get_mut(backend as usize) {
            *slot += 1;
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> BalancerStats {
        self.stats
    }

    /// New flows placed on each backend so far, by backend id.
    pub fn new_flows_by_backend(&self) -> &[u64] {
        &self.new_flows_by_backend
    }

    /// Flows currently tracked.
    pub fn tracked_flows(&self) -> usize {
        self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::lb::hash::flow_hash;
    use crate::lb::snapshot::{DownBackends, StaticResolver};

    fn table(backends: &[&str]) -> crate::config::ServiceTable {
        // bN lives at 198.18.1.1N, whatever its position in the list.
        let list: String = backends
            .iter()
            .map(|name| {
                format!(
                    "      - {{ name: {name}, address: 198.18.1.1{} }}\n",
                    &name[1..]
                )
            })
            .collect();
        let yaml = format!(
            "version: 1\ndataplane:\n  interfaces: [{{ name: eth0 }}]\n  maglev_table_size: 1009\n\
             services:\n  - name: web\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n\
             \x20   forwarding: dsr\n    backends:\n{list}"
        );
        config::parse(&yaml, "t.yaml").expect("valid")
    }

    fn build(backends: &[&str], generation: u64, previous: Option<&Snapshot>) -> Snapshot {
        let resolver = StaticResolver {
            port_macs: vec![[0; 6]],
            egress: 0,
        };
        Snapshot::build(
            &table(backends),
            generation,
            previous,
            &resolver,
            &DownBackends::new(),
        )
        .expect("snapshot")
    }

    fn flows() -> Vec<(FlowKey, u64)> {
        (0..2000u16)
            .map(|port| {
                let key = FlowKey {
                    vip: "198.18.100.10".parse().unwrap(),
                    client: "198.18.0.10".parse().unwrap(),
                    vip_port: 80,
                    client_port: 10000 + port,
                    proto: 6,
                };
                let hash = flow_hash(&key.client, &key.vip, key.client_port, 80, 6);
                (key, hash)
            })
            .collect()
    }

    fn backend_name(snapshot: &Snapshot, decision: Decision) -> String {
        match decision {
            Decision::Backend(id) => snapshot.backend(id).expect("live").name.clone(),
            Decision::Drop(reason) => panic!("dropped: {reason:?}"),
        }
    }

    #[test]
    fn tracked_flows_keep_their_backend_across_reloads_until_it_leaves() {
        let timeouts = FlowTimeouts {
            tcp_idle_ms: 60_000,
            udp_idle_ms: 60_000,
            sctp_idle_ms: 60_000,
            tcp_closing_ms: 1_000,
            tcp_syn_ms: 1_000,
            new_flows_per_sec: 1_000_000,
        };
        // Room enough that no bucket overflows, wherever the process key places the flows.
        let mut balancer = Balancer::new(1 << 16, timeouts);
        let gen1 = build(&["b1", "b2", "b3"], 1, None);
        let first: Vec<String> = flows()
            .iter()
            .map(|(key, hash)| {
                backend_name(&gen1, balancer.decide_flow(&gen1, 0, key, *hash, 0, 1))
            })
            .collect();
        assert_eq!(balancer.stats().new_flows, 2000);

        // b4 joins: Maglev moves slots, but tracked flows stay where they are.
        let gen2 = build(&["b1", "b2", "b3", "b4"], 2, Some(&gen1));
        let second: Vec<String> = flows()
            .iter()
            .map(|(key, hash)| {
                backend_name(&gen2, balancer.decide_flow(&gen2, 0, key, *hash, 0, 2))
            })
            .collect();
        assert_eq!(
            first, second,
            "a reload adding a backend moved tracked flows"
        );
        assert_eq!(balancer.stats().reselected, 0);

        // b2 leaves: exactly its flows are re-selected and counted; others stay.
        let gen3 = build(&["b1", "b3", "b4"], 3, Some(&gen2));
        let third: Vec<String> = flows()
            .iter()
            .map(|(key, hash)| {
                backend_name(&gen3, balancer.decide_flow(&gen3, 0, key, *hash, 0, 3))
            })
            .collect();
        let on_b2 = first.iter().filter(|b| *b == "b2").count() as u64;
        assert!(on_b2 > 0);
        assert_eq!(balancer.stats().reselected, on_b2);
        for (before, after) in first.iter().zip(&third) {
            if before == "b2" {
                assert_ne!(after, "b2");
            } else {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn a_draining_backend_keeps_its_flows_and_gets_no_new_ones() {
        let timeouts = FlowTimeouts {
            tcp_idle_ms: 60_000,
            udp_idle_ms: 60_000,
            sctp_idle_ms: 60_000,
            tcp_closing_ms: 1_000,
            tcp_syn_ms: 1_000,
            new_flows_per_sec: 1_000_000,
        };
        // Room enough that no bucket overflows, wherever the process key places the flows.
        let mut balancer = Balancer::new(1 << 16, timeouts);
        let gen1 = build(&["b1", "b2", "b3"], 1, None);
        let all = flows();
        let (tracked, fresh) = all.split_at(1000);
        let first: Vec<String> = tracked
            .iter()
            .map(|(key, hash)| {
                backend_name(&gen1, balancer.decide_flow(&gen1, 0, key, *hash, 0, 1))
            })
            .collect();
        let mut drained = table(&["b1", "b2", "b3"]);
        drained.services[0].backends[1].state = config::BackendState::Drain;
        let resolver = StaticResolver {
            port_macs: vec![[0; 6]],
            egress: 0,
        };
        let gen2 =
            Snapshot::build(&drained, 2, Some(&gen1), &resolver, &DownBackends::new()).unwrap();
        for ((key, hash), before) in tracked.iter().zip(&first) {
            let now = backend_name(&gen2, balancer.decide_flow(&gen2, 0, key, *hash, 0, 2));
            assert_eq!(&now, before, "a tracked flow left its (draining) backend");
        }
        for (key, hash) in fresh {
            let now = backend_name(&gen2, balancer.decide_flow(&gen2, 0, key, *hash, 0, 2));
            assert_ne!(now, "b2", "a new flow went to the draining backend");
        }
        assert!(first.iter().any(|b| b == "b2"));
    }

    #[test]
    fn backend_ids_survive_reloads_and_are_not_reused_at_once() {
        let gen1 = build(&["b1", "b2", "b3"], 1, None);
        let gen2 = build(&["b1", "b3", "b4"], 2, Some(&gen1));
        let id = |s: &Snapshot, name: &str| s.backends().find(|b| b.name == name).map(|b| b.id);
        assert_eq!(id(&gen1, "b1"), id(&gen2, "b1"));
        assert_eq!(id(&gen1, "b3"), id(&gen2, "b3"));
        assert_ne!(
            id(&gen2, "b4"),
            id(&gen1, "b2"),
            "a newcomer took a just-freed id"
        );
    }
}
