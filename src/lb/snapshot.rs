//! The immutable, per-generation view of the service table that workers read.
//!
//! Built off the packet path from a validated [`ServiceTable`], published with one
//! `ArcSwap::store`, loaded once per batch. Never mutated in place: a reload or a
//! health change builds a new one (STYLE: "one swap, not two").
//!
//! Backends carry a [`BackendId`] that stays the same across generations while the
//! backend (service name, backend name, address) stays in the table, so flow and
//! association records survive reloads and keep their backend.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::{
    AllDownPolicy, Backend, BackendState, Encapsulation, Forwarding, Protocol, SctpHash,
    ServiceTable,
};
use crate::lb::maglev::{self, MaglevBackend, MaglevError, MaglevTable};
use crate::lb::verdict::PortId;

/// Stable identity of a backend across config generations; indexes [`Snapshot`] backends.
pub type BackendId = u32;

/// Most backends (summed over services) one snapshot holds; ids stay below it, so
/// per-backend counters are flat arrays. The table is validated against it.
pub const MAX_BACKENDS: usize = crate::config::MAX_BACKENDS;

/// Index of a service in one snapshot (not stable across generations).
pub type ServiceIndex = u32;

/// Stable identity of a service across config generations: the same while a service of
/// that name stays in the table, wherever it is listed. State that outlives a generation
/// (SCTP associations) is keyed by it, never by a [`ServiceIndex`].
pub type ServiceId = u32;

/// Where frames for a backend leave: egress port and the two MAC addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port (interface index in the dataplane's `interfaces`).
    pub port: PortId,
    /// Our MAC on that port.
    pub src_mac: [u8; 6],
    /// The backend's (or its gateway's) MAC.
    pub dst_mac: [u8; 6],
}

/// Answers layer-2 questions the snapshot cannot answer from the YAML alone.
pub trait NextHopResolver {
    /// Next hop towards a backend, or `None` while it is unresolved.
    fn next_hop(&self, backend: &Backend) -> Option<NextHop>;
    /// Our MAC address on a port (used for ARP/NDP answers).
    fn port_mac(&self, port: PortId) -> [u8; 6];
    /// The MTU of a port: the largest IP packet it sends.
    fn port_mtu(&self, port: PortId) -> u32;
}

/// One backend as the fast path sees it.
#[derive(Clone, Debug)]
pub struct BackendEntry {
    /// Stable identity.
    pub id: BackendId,
    /// Index of its service in this snapshot.
    pub service: ServiceIndex,
    /// Name from the config.
    pub name: String,
    /// Address from the config.
    pub address: IpAddr,
    /// Resolved next hop, `None` while unresolved (packets are dropped and counted).
    pub next_hop: Option<NextHop>,
    /// Whether it receives new flows (active, weight > 0, healthy).
    pub takes_new_flows: bool,
    /// Whether flows already pinned to it stay (active or draining, and healthy).
    pub keeps_flows: bool,
    /// Whether its health check (if any) passes.
    pub healthy: bool,
    /// Whether it is draining (`state: drain`): keeps its flows, takes no new ones.
    pub draining: bool,
}

/// One service as the fast path sees it.
#[derive(Debug)]
pub struct ServiceEntry {
    /// Stable identity (by name) across generations.
    pub id: ServiceId,
    /// Name from the config.
    pub name: String,
    /// L4 protocol.
    pub protocol: Protocol,
    /// How frames reach backends.
    pub forwarding: Forwarding,
    /// Client source ranges allowed in.
    pub source_ranges: Vec<ipnet::IpNet>,
    /// Whether `source_ranges` hold both default routes: the ACL then costs nothing.
    pub admits_all: bool,
    /// Maglev ring over `backend_ids` (slot value = index into `backend_ids`); shared
    /// with the generations before when its inputs did not change.
    pub maglev: Arc<MaglevTable>,
    /// Backends in config order; Maglev indexes this list.
    pub backend_ids: Vec<BackendId>,
    /// SCTP services: how to place what the association table does not know.
    pub sctp_placement: SctpPlacement,
    /// What `maglev` was built from: each backend's name and the weight it had in the
    /// ring (0 when it takes no new flows), in config order.
    ring: Vec<(String, u32)>,
}

impl ServiceEntry {
    /// The backend a new flow with this hash goes to.
    #[inline]
    pub fn select(&self, hash: u64) -> Option<BackendId> {
        self.maglev
            .lookup(hash)
            .and_then(|i| self.backend_ids.get(i as usize).copied())
    }

    /// Whether a client address passes the service's `source_ranges`.
    #[inline]
    pub fn admits(&self, client: &IpAddr) -> bool {
        self.admits_all || self.source_ranges.iter().any(|net| net.contains(client))
    }
}

/// Stateless placement of an SCTP service (config `sctp:`, docs/architecture.md §5).
#[derive(Clone, Debug, Default)]
pub struct SctpPlacement {
    /// Maglev hashes the ports alone, which every path of an association shares.
    pub hash_ports: bool,
    /// Cooperating backends: how many top bits of a tag name the backend, and which
    /// backend each name is.
    pub tag_ids: Option<(u8, FxHashMap<u32, BackendId>)>,
}

impl SctpPlacement {
    /// The backend a verification tag names, where backends encode themselves in tags.
    #[inline]
    pub fn backend_of_tag(&self, tag: u32) -> Option<BackendId> {
        let (bits, ids) = self.tag_ids.as_ref()?;
        ids.get(&(tag >> (32 - u32::from(*bits)))).copied()
    }
}

/// Whether a ring built from `old` inputs is the one `new` would build.
fn same_ring(old: &[(String, u32)], new: &[MaglevBackend<'_>]) -> bool {
    old.len() == new.len()
        && old
            .iter()
            .zip(new)
            .all(|((name, weight), b)| name == b.name && *weight == b.weight)
}

/// Key of the VIP:port:protocol -> service index, packed into three integers: hashing an
/// `IpAddr` field by field cost 8% of an established packet's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct VipKey {
    address_high: u64,
    address_low: u64,
    /// Port, protocol and address family (4 or 6, so an IPv4 VIP never matches its
    /// IPv4-mapped IPv6 twin).
    port_protocol_family: u32,
}

impl VipKey {
    #[inline]
    fn new(address: IpAddr, port: u16, protocol: u8) -> Self {
        let (bits, family) = match address {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 4),
            IpAddr::V6(v6) => (u128::from(v6), 6),
        };
        VipKey {
            address_high: (bits >> 64) as u64,
            address_low: bits as u64,
            port_protocol_family: u32::from(port) << 16 | u32::from(protocol) << 8 | family,
        }
    }
}

/// Why a snapshot could not be built (the config validated, so this is rare).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Maglev refused the table size.
    #[error("service {service}: {source}")]
    Maglev {
        /// Service name.
        service: String,
        /// What Maglev said.
        source: MaglevError,
    },
    /// More backends than [`MAX_BACKENDS`].
    #[error("more than {MAX_BACKENDS} backends in all services; split the table over more xlb instances")]
    TooManyBackends,
}

/// Backends taken out of rotation by health checks: (service name, backend name).
pub type DownBackends = HashSet<(String, String)>;

/// The read-mostly state of one config generation.
pub struct Snapshot {
    generation: u64,
    /// The last [`ServiceId`] handed out, carried from generation to generation.
    next_service_id: ServiceId,
    services: Vec<ServiceEntry>,
    by_vip: FxHashMap<VipKey, ServiceIndex>,
    backends: Vec<Option<BackendEntry>>,
    vips: FxHashSet<IpAddr>,
    port_macs: Vec<[u8; 6]>,
    port_mtus: Vec<u32>,
    encapsulation: Encapsulation,
    maglev_size: u32,
}

/// What carries over from the previous generation: backend and service ids, and the
/// Maglev tables whose inputs did not change.
struct Identities<'p> {
    old_backends: FxHashMap<(&'p str, &'p str, IpAddr), BackendId>,
    old_services: FxHashMap<&'p str, &'p ServiceEntry>,
    /// Ids free in the previous generation too, so a flow still pinned to a
    /// just-removed backend never lands on a newcomer.
    free: Box<dyn Iterator<Item = BackendId> + 'p>,
    used: FxHashSet<BackendId>,
    next_service_id: ServiceId,
}

impl<'p> Identities<'p> {
    fn after(previous: Option<&'p Snapshot>) -> Identities<'p> {
        let mut identities = Identities {
            old_backends: FxHashMap::default(),
            old_services: FxHashMap::default(),
            free: Box::new(
                (0..MAX_BACKENDS as BackendId)
                    .filter(move |id| previous.is_none_or(|p| p.backend(*id).is_none())),
            ),
            used: FxHashSet::default(),
            next_service_id: 0,
        };
        if let Some(prev) = previous {
            for b in prev.backends.iter().flatten() {
                let service = prev.services[b.service as usize].name.as_str();
                identities
                    .old_backends
                    .insert((service, b.name.as_str(), b.address), b.id);
            }
            identities
                .old_services
                .extend(prev.services.iter().map(|s| (s.name.as_str(), s)));
            identities.next_service_id = prev.next_service_id;
        }
        identities
    }

    /// The backend's id: its old one while service name, name and address stay.
    fn backend(&mut self, service: &str, backend: &Backend) -> Result<BackendId, SnapshotError> {
        let key = (service, backend.name.as_str(), backend.address);
        let id = match self.old_backends.get(&key) {
            Some(id) if !self.used.contains(id) => *id,
            _ => self.free.next().ok_or(SnapshotError::TooManyBackends)?,
        };
        self.used.insert(id);
        Ok(id)
    }

    /// The service's id: its old one while its name stays; a new name never reuses
    /// one, so a removed service's associations can never match a newcomer.
    fn service(&mut self, name: &str) -> ServiceId {
        match self.old_services.get(name) {
            Some(old) => old.id,
            None => {
                self.next_service_id += 1;
                self.next_service_id
            }
        }
    }

    /// The previous generation's Maglev table when `ring` and `size` would build the
    /// same one: a reload or a health change usually touches few services, and the
    /// others keep their table instead of paying a build (about a millisecond) each.
    fn maglev(
        &self,
        service: &str,
        ring: &[MaglevBackend<'_>],
        size: u32,
    ) -> Result<Arc<MaglevTable>, SnapshotError> {
        let unchanged = self
            .old_services
            .get(service)
            .filter(|old| old.maglev.size() == size && same_ring(&old.ring, ring));
        match unchanged {
            Some(old) => Ok(old.maglev.clone()),
            None => Ok(Arc::new(maglev::build(ring, size).map_err(|source| {
                SnapshotError::Maglev {
                    service: service.to_owned(),
                    source,
                }
            })?)),
        }
    }
}

/// A backend's health as the snapshot applies it.
#[derive(Clone, Copy)]
struct Health {
    /// Its health check passes (or it has none).
    healthy: bool,
    /// Every backend of its service is down and the service serves all then
    /// (`when_all_down: serve_all`).
    panic: bool,
}

/// One backend as the fast path sees it, given its id and health.
fn backend_entry(
    id: BackendId,
    service: ServiceIndex,
    backend: &Backend,
    health: Health,
    resolver: &dyn NextHopResolver,
) -> BackendEntry {
    let active = backend.state == BackendState::Active;
    let serves = health.healthy || health.panic;
    BackendEntry {
        id,
        service,
        name: backend.name.clone(),
        address: backend.address,
        next_hop: resolver.next_hop(backend),
        takes_new_flows: serves && active && backend.weight > 0,
        keeps_flows: serves,
        healthy: health.healthy,
        draining: !active,
    }
}

/// Whether `source_ranges` hold both default routes: the ACL then costs nothing.
fn admits_all(source_ranges: &[ipnet::IpNet]) -> bool {
    [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])]
        .iter()
        .all(|any| {
            source_ranges
                .iter()
                .any(|net| net.prefix_len() == 0 && net.contains(any))
        })
}

impl Snapshot {
    /// Builds generation `generation` of the table. Backends that were in `previous`
    /// under the same service name, backend name and address keep their ids; services
    /// keep theirs by name.
    pub fn build(
        table: &ServiceTable,
        generation: u64,
        previous: Option<&Snapshot>,
        resolver: &dyn NextHopResolver,
        down: &DownBackends,
    ) -> Result<Snapshot, SnapshotError> {
        let mut identities = Identities::after(previous);
        let mut backends: Vec<Option<BackendEntry>> = Vec::new();
        let mut services = Vec::with_capacity(table.services.len());
        let mut by_vip = FxHashMap::default();
        let mut vips = FxHashSet::default();

        for (index, service) in table.services.iter().enumerate() {
            let service_index = index as ServiceIndex;
            let mut ids = Vec::with_capacity(service.backends.len());
            let mut ring = Vec::with_capacity(service.backends.len());
            let mut tag_ids = FxHashMap::default();
            let is_down =
                |backend: &Backend| down.contains(&(service.name.clone(), backend.name.clone()));
            let panic = service.when_all_down == AllDownPolicy::ServeAll
                && !service.backends.is_empty()
                && service.backends.iter().all(is_down);
            for backend in &service.backends {
                let id = identities.backend(&service.name, backend)?;
                let health = Health {
                    healthy: !is_down(backend),
                    panic,
                };
                let entry = backend_entry(id, service_index, backend, health, resolver);
                ring.push(MaglevBackend {
                    name: &backend.name,
                    weight: if entry.takes_new_flows {
                        backend.weight
                    } else {
                        0
                    },
                });
                if backends.len() <= id as usize {
                    backends.resize(id as usize + 1, None);
                }
                backends[id as usize] = Some(entry);
                ids.push(id);
                if let Some(tag_id) = backend.tag_id {
                    tag_ids.insert(tag_id, id);
                }
            }
            let maglev =
                identities.maglev(&service.name, &ring, table.dataplane.maglev_table_size)?;
            for vip in &service.vips {
                vips.insert(*vip);
                for port in &service.ports {
                    by_vip.insert(
                        VipKey::new(*vip, *port, service.protocol.ip_number()),
                        service_index,
                    );
                }
            }
            services.push(ServiceEntry {
                id: identities.service(&service.name),
                name: service.name.clone(),
                protocol: service.protocol,
                forwarding: service.forwarding,
                source_ranges: service.source_ranges.clone(),
                admits_all: admits_all(&service.source_ranges),
                maglev,
                backend_ids: ids,
                sctp_placement: SctpPlacement {
                    hash_ports: service
                        .sctp
                        .as_ref()
                        .is_some_and(|sctp| sctp.hash == SctpHash::Ports),
                    tag_ids: service
                        .sctp
                        .as_ref()
                        .and_then(|sctp| sctp.backend_tag_bits)
                        .map(|bits| (bits, tag_ids)),
                },
                ring: ring.iter().map(|b| (b.name.to_owned(), b.weight)).collect(),
            });
        }
        // xlb owns its SNAT addresses too: it answers ARP/NDP and echo for them.
        vips.extend(table.dataplane.nat.addresses.iter().copied());
        let port_macs = (0..table.dataplane.interfaces.len())
            .map(|port| resolver.port_mac(port as PortId))
            .collect();
        let port_mtus = (0..table.dataplane.interfaces.len())
            .map(|port| resolver.port_mtu(port as PortId))
            .collect();
        Ok(Snapshot {
            generation,
            next_service_id: identities.next_service_id,
            services,
            by_vip,
            backends,
            vips,
            port_macs,
            port_mtus,
            encapsulation: table.dataplane.encapsulation.clone(),
            maglev_size: table.dataplane.maglev_table_size,
        })
    }

    /// Config generation this snapshot was built from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The service listening on VIP:port for an IP protocol number.
    #[inline]
    pub fn service_for(&self, vip: IpAddr, port: u16, protocol: u8) -> Option<ServiceIndex> {
        self.by_vip.get(&VipKey::new(vip, port, protocol)).copied()
    }

    /// A service by index.
    #[inline]
    pub fn service(&self, index: ServiceIndex) -> &ServiceEntry {
        &self.services[index as usize]
    }

    /// Every service, in config order.
    pub fn services(&self) -> &[ServiceEntry] {
        &self.services
    }

    /// A backend by stable id, if it is in this generation.
    #[inline]
    pub fn backend(&self, id: BackendId) -> Option<&BackendEntry> {
        self.backends.get(id as usize).and_then(Option::as_ref)
    }

    /// Every backend in this generation.
    pub fn backends(&self) -> impl Iterator<Item = &BackendEntry> {
        self.backends.iter().flatten()
    }

    /// Whether `id` still serves `service` and keeps its existing flows.
    #[inline]
    pub fn keeps_flow(&self, service: ServiceIndex, id: BackendId) -> bool {
        self.backend(id)
            .is_some_and(|b| b.service == service && b.keeps_flows)
    }

    /// Whether an address is one of our VIPs or SNAT addresses (ARP/NDP/echo are
    /// answered for it).
    #[inline]
    pub fn is_vip(&self, addr: &IpAddr) -> bool {
        self.vips.contains(addr)
    }

    /// Every VIP, for the XDP steering map.
    pub fn vips(&self) -> impl Iterator<Item = &IpAddr> {
        self.vips.iter()
    }

    /// Our MAC on a port.
    #[inline]
    pub fn port_mac(&self, port: PortId) -> [u8; 6] {
        self.port_macs
            .get(port as usize)
            .copied()
            .unwrap_or_default()
    }

    /// The MTU of a port, as last read from the kernel.
    #[inline]
    pub fn port_mtu(&self, port: PortId) -> u32 {
        self.port_mtus
            .get(port as usize)
            .copied()
            .unwrap_or(ETHERNET_MTU)
    }

    /// The MTU of every port, by port index.
    pub fn port_mtus(&self) -> &[u32] {
        &self.port_mtus
    }

    /// Outer source addresses and GUE port for encapsulation.
    #[inline]
    pub fn encapsulation(&self) -> &Encapsulation {
        &self.encapsulation
    }

    /// Maglev table size of every service.
    pub fn maglev_size(&self) -> u32 {
        self.maglev_size
    }
}

/// The Ethernet MTU (RFC 894), assumed where the kernel was not asked.
pub const ETHERNET_MTU: u32 = 1500;

/// A resolver that uses only the config: backend MACs from `mac:`, port MACs given.
/// Used by `xlb explain`, tests and benches; the dataplane adds kernel neighbours.
pub struct StaticResolver {
    /// MAC of each port, by port index.
    pub port_macs: Vec<[u8; 6]>,
    /// Egress port for every backend.
    pub egress: PortId,
}

impl NextHopResolver for StaticResolver {
    fn next_hop(&self, backend: &Backend) -> Option<NextHop> {
        backend.mac.map(|dst_mac| NextHop {
            port: self.egress,
            src_mac: self.port_mac(self.egress),
            dst_mac,
        })
    }

    fn port_mac(&self, port: PortId) -> [u8; 6] {
        self.port_macs
            .get(port as usize)
            .copied()
            .unwrap_or_default()
    }

    /// The config names no MTUs: every port is plain Ethernet.
    fn port_mtu(&self, _port: PortId) -> u32 {
        ETHERNET_MTU
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    /// Services `web` (b1..b3) and `dns` (d1, d2); `edit` changes the YAML text.
    fn table(edit: impl Fn(String) -> String) -> ServiceTable {
        let yaml = r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }]
  maglev_table_size: 1009
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
  - name: dns
    vips: [198.18.100.53]
    protocol: udp
    ports: [53]
    forwarding: dsr
    backends:
      - { name: d1, address: 198.18.1.21 }
      - { name: d2, address: 198.18.1.22 }
"#;
        config::parse(&edit(yaml.to_owned()), "t.yaml").expect("valid")
    }

    fn build(table: &ServiceTable, previous: Option<&Snapshot>, down: &DownBackends) -> Snapshot {
        let resolver = StaticResolver {
            port_macs: vec![[0; 6]],
            egress: 0,
        };
        let generation = previous.map_or(1, |p| p.generation() + 1);
        Snapshot::build(table, generation, previous, &resolver, down).expect("snapshot")
    }

    /// Whether service `index` of `new` shares its Maglev table with `old`'s.
    fn shares_table(old: &Snapshot, new: &Snapshot, index: usize) -> bool {
        Arc::ptr_eq(&old.services()[index].maglev, &new.services()[index].maglev)
    }

    #[test]
    fn a_reload_rebuilds_only_the_rings_whose_inputs_changed() {
        let none = DownBackends::new();
        let gen1 = build(&table(|y| y), None, &none);
        let same = build(&table(|y| y), Some(&gen1), &none);
        assert!(shares_table(&gen1, &same, 0) && shares_table(&gen1, &same, 1));

        let weighted = build(
            &table(|y| {
                y.replace(
                    "name: b2, address: 198.18.1.12",
                    "name: b2, address: 198.18.1.12, weight: 300",
                )
            }),
            Some(&same),
            &none,
        );
        assert!(!shares_table(&same, &weighted, 0), "a weight changed");
        assert!(shares_table(&same, &weighted, 1), "dns did not change");

        let draining = build(
            &table(|y| {
                y.replace(
                    "name: d2, address: 198.18.1.22",
                    "name: d2, address: 198.18.1.22, state: drain",
                )
            }),
            Some(&gen1),
            &none,
        );
        assert!(
            !shares_table(&gen1, &draining, 1),
            "a drained backend leaves the ring"
        );

        let down = DownBackends::from([("web".to_owned(), "b3".to_owned())]);
        let b3_down = build(&table(|y| y), Some(&gen1), &down);
        assert!(!shares_table(&gen1, &b3_down, 0), "a backend went down");
        assert!(shares_table(&gen1, &b3_down, 1));
    }

    #[test]
    fn a_reordered_backend_list_gets_a_ring_indexing_the_new_order() {
        let none = DownBackends::new();
        let gen1 = build(&table(|y| y), None, &none);
        // b1 and b3 swap places in the list.
        let reordered = build(
            &table(|y| {
                y.replace(
                    "name: b1, address: 198.18.1.11",
                    "name: b9, address: 198.18.1.19",
                )
                .replace(
                    "name: b3, address: 198.18.1.13",
                    "name: b1, address: 198.18.1.11",
                )
                .replace(
                    "name: b9, address: 198.18.1.19",
                    "name: b3, address: 198.18.1.13",
                )
            }),
            Some(&gen1),
            &none,
        );
        assert!(!shares_table(&gen1, &reordered, 0));
        // Slots index the list, so the same hash still reaches the same backend by name.
        let name = |s: &Snapshot, hash: u64| {
            let id = s.services()[0].select(hash).expect("a backend");
            s.backend(id).expect("known").name.clone()
        };
        for hash in (0..64u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) {
            assert_eq!(name(&gen1, hash), name(&reordered, hash));
        }
    }

    #[test]
    fn a_service_that_serves_all_when_all_are_down_keeps_its_ring() {
        let all_down = DownBackends::from([
            ("web".to_owned(), "b1".to_owned()),
            ("web".to_owned(), "b2".to_owned()),
            ("web".to_owned(), "b3".to_owned()),
        ]);
        let dropping = build(&table(|y| y), None, &all_down);
        assert_eq!(dropping.services()[0].select(7), None, "the default drops");
        let serving = build(
            &table(|y| {
                y.replacen(
                    "    forwarding: dsr\n",
                    "    forwarding: dsr\n    when_all_down: serve_all\n",
                    1,
                )
            }),
            None,
            &all_down,
        );
        let id = serving.services()[0].select(7).expect("a backend");
        let backend = serving.backend(id).unwrap();
        assert!(backend.takes_new_flows && !backend.healthy);
        // One backend up again: only it takes new flows.
        let one_up = DownBackends::from([
            ("web".to_owned(), "b1".to_owned()),
            ("web".to_owned(), "b2".to_owned()),
        ]);
        let recovering = build(
            &table(|y| {
                y.replacen(
                    "    forwarding: dsr\n",
                    "    forwarding: dsr\n    when_all_down: serve_all\n",
                    1,
                )
            }),
            None,
            &one_up,
        );
        let names: std::collections::BTreeSet<String> = (0..200u64)
            .filter_map(|h| recovering.services()[0].select(h.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .map(|id| recovering.backend(id).unwrap().name.clone())
            .collect();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["b3"]);
    }
}
