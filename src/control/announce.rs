//! VIP announcement through the node's routing daemon (docs/deployment.md): xlb holds
//! each VIP it can serve as a host address (/32, /128) on a TUN device of its own, and
//! the routing daemon (BIRD's `protocol direct`, FRR's `redistribute connected`) exports
//! those prefixes over BGP. No BGP speaker lives here.
//!
//! The device is the announcement's lifetime: a non-persistent TUN device disappears
//! when its descriptor closes, so SIGKILL or a crash withdraws every VIP without any
//! clean-up code, and the daemon withdraws as soon as the kernel tells it. A VIP is on
//! the device only while the dataplane runs and one of its services has a healthy,
//! resolved backend taking new flows; SIGTERM closes the device first, then keeps
//! forwarding for `announce.drain` so routers move the flows away before xlb stops.
//!
//! The kernel's local route for a VIP on the device does not change what xlb sees: the
//! XDP program takes packets to a VIP before the kernel's routing does, and xlb answers
//! ARP/NDP for VIPs itself. The host should still set `arp_ignore=1`, so its kernel never
//! answers ARP for a VIP from an address on another device.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use parking_lot::Mutex;
use tracing::info;

use crate::config::{AnnounceConfig, ServiceTable};
use crate::control::neighbor::{NeighborError, RouteSocket};
use crate::lb::snapshot::Snapshot;
use crate::sys::TunDevice;

/// Why the announcement could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The TUN device could not be created.
    #[error("announce.device `{device}`: cannot create the TUN device: {source}; xlb needs CAP_NET_ADMIN and /dev/net/tun, and no other process may hold a device of that name")]
    Device {
        /// The device name asked for.
        device: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// An rtnetlink request on the device failed.
    #[error("announce.device `{device}`: {what} failed: {source}")]
    Netlink {
        /// The device.
        device: String,
        /// The request, e.g. "adding 198.18.100.10".
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// The rtnetlink socket could not be opened or the device's index read.
    #[error(transparent)]
    Neighbor(#[from] NeighborError),
}

/// Which VIPs are announced, for the metrics endpoint (`xlb_vip_announced`): every VIP of
/// the table with whether it is on the device now. Empty when announcement is off.
#[derive(Debug, Default)]
pub struct AnnounceStatus {
    vips: Mutex<BTreeMap<IpAddr, bool>>,
}

impl AnnounceStatus {
    /// Every VIP of the table in force and whether it is announced, in address order.
    pub fn vips(&self) -> Vec<(IpAddr, bool)> {
        self.vips.lock().iter().map(|(v, a)| (*v, *a)).collect()
    }
}

/// The VIPs of `table` this node can serve now: those of services with at least one
/// backend that is healthy, takes new flows and has a resolved next hop in `snapshot`. A
/// VIP shared by several services (TCP and UDP on one address) is servable when any of
/// them is: routing cannot tell them apart.
pub fn servable_vips(table: &ServiceTable, snapshot: &Snapshot) -> BTreeSet<IpAddr> {
    let servable: BTreeSet<&str> = snapshot
        .services()
        .iter()
        .filter(|service| {
            service.backend_ids.iter().any(|id| {
                snapshot
                    .backend(*id)
                    .is_some_and(|b| b.healthy && b.takes_new_flows && b.next_hop.is_some())
            })
        })
        .map(|service| service.name.as_str())
        .collect();
    table
        .services
        .iter()
        .filter(|service| servable.contains(service.name.as_str()))
        .flat_map(|service| service.vips.iter().copied())
        .collect()
}

/// The announcement device while announcement is on, and what is on it.
struct Held {
    tun: TunDevice,
    index: u32,
    announced: BTreeSet<IpAddr>,
}

/// Keeps the announcement device in step with the table and the dataplane's snapshot.
pub struct Announcer {
    held: Option<Held>,
    status: Arc<AnnounceStatus>,
}

impl Default for Announcer {
    fn default() -> Self {
        Announcer::new()
    }
}

impl Announcer {
    /// An announcer holding nothing yet: the first [`Announcer::sync`] creates the device.
    pub fn new() -> Announcer {
        Announcer {
            held: None,
            status: Arc::new(AnnounceStatus::default()),
        }
    }

    /// What the metrics endpoint reads.
    pub fn status(&self) -> Arc<AnnounceStatus> {
        Arc::clone(&self.status)
    }

    /// Puts on the device exactly the VIPs of `table` that `snapshot` can serve; creates
    /// the device when announcement is on and it is missing (or renamed), and closes it
    /// (withdrawing everything) when announcement is off. Cheap when nothing changed.
    pub fn sync(&mut self, table: &ServiceTable, snapshot: &Snapshot) -> Result<(), AnnounceError> {
        let all: BTreeSet<IpAddr> = table
            .services
            .iter()
            .flat_map(|s| s.vips.iter().copied())
            .collect();
        let config = table.announce.as_ref();
        let config = match config {
            Some(config) if config.enabled => config,
            _ => {
                if let Some(held) = self.held.take() {
                    info!(
                        device = held.tun.name(),
                        "announcement off: every VIP withdrawn"
                    );
                }
                self.publish_status(config.map(|_| &all), &BTreeSet::new());
                return Ok(());
            }
        };
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.tun.name() != config.device)
        {
            self.held = None;
        }
        let held = match &mut self.held {
            Some(held) => held,
            None => self.held.insert(open(&config.device)?),
        };
        let want = servable_vips(table, snapshot);
        if want == held.announced {
            let announced = held.announced.clone();
            self.publish_status(Some(&all), &announced);
            return Ok(());
        }
        let socket = RouteSocket::open()?;
        let device = held.tun.name().to_owned();
        for vip in held
            .announced
            .difference(&want)
            .copied()
            .collect::<Vec<_>>()
        {
            address(&socket, held.index, vip, false).map_err(|source| AnnounceError::Netlink {
                device: device.clone(),
                what: format!("withdrawing {vip}"),
                source,
            })?;
            held.announced.remove(&vip);
            info!(%vip, device, "VIP withdrawn: no healthy backend");
        }
        for vip in want
            .difference(&held.announced)
            .copied()
            .collect::<Vec<_>>()
        {
            address(&socket, held.index, vip, true).map_err(|source| AnnounceError::Netlink {
                device: device.clone(),
                what: format!("announcing {vip}"),
                source,
            })?;
            held.announced.insert(vip);
            info!(%vip, device, "VIP announced");
        }
        let announced = held.announced.clone();
        self.publish_status(Some(&all), &announced);
        Ok(())
    }

    /// Withdraws every VIP by closing the device, then waits `drain` while the workers
    /// keep forwarding, so routers move the flows to other nodes before this one stops.
    pub fn withdraw_and_drain(&mut self, config: Option<&AnnounceConfig>) {
        let Some(held) = self.held.take() else {
            return;
        };
        let drain = config.map_or(Duration::ZERO, |c| c.drain);
        info!(
            device = held.tun.name(),
            vips = held.announced.len(),
            ?drain,
            "every VIP withdrawn; draining before the dataplane stops"
        );
        drop(held);
        self.publish_status(None, &BTreeSet::new());
        std::thread::sleep(drain);
    }

    fn publish_status(&self, all: Option<&BTreeSet<IpAddr>>, announced: &BTreeSet<IpAddr>) {
        *self.status.vips.lock() = all
            .into_iter()
            .flatten()
            .map(|vip| (*vip, announced.contains(vip)))
            .collect();
    }
}

/// Creates the device, brings it up and finds its index.
fn open(device: &str) -> Result<Held, AnnounceError> {
    let tun = TunDevice::create(device).map_err(|source| AnnounceError::Device {
        device: device.to_owned(),
        source,
    })?;
    let socket = RouteSocket::open()?;
    let index = socket.link_index_by_name(tun.name())?;
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    socket
        .request(
            "link up",
            RouteNetlinkMessage::SetLink(link),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map_err(|source| AnnounceError::Netlink {
            device: device.to_owned(),
            what: "bringing it up".into(),
            source,
        })?;
    info!(device, "announcement device up");
    Ok(Held {
        tun,
        index,
        announced: BTreeSet::new(),
    })
}

/// Adds (or, with `add` false, deletes) `vip` as a host address on interface `index`.
/// IPv6 addresses skip duplicate address detection, so the daemon sees them at once.
fn address(socket: &RouteSocket, index: u32, vip: IpAddr, add: bool) -> io::Result<()> {
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.scope = AddressScope::Universe;
    let (family, prefix_len) = match vip {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    message.header.family = family;
    message.header.prefix_len = prefix_len;
    message.attributes.push(AddressAttribute::Local(vip));
    message.attributes.push(AddressAttribute::Address(vip));
    if vip.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    let outcome = if add {
        socket.request(
            "address add",
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        socket.request(
            "address delete",
            RouteNetlinkMessage::DelAddress(message),
            NLM_F_REQUEST | NLM_F_ACK,
        )
    };
    match outcome {
        // Deleting an address that is already gone is what was wanted.
        Err(e) if !add && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        other => other.map(drop),
    }
}

/// One line for `xlb explain`: how `vip` is announced under `table`.
pub fn describe(table: &ServiceTable, vip: IpAddr) -> String {
    match &table.announce {
        None => format!("announce: off (no `announce` section); route {vip} to this node yourself"),
        Some(a) if !a.enabled => format!(
            "announce: disabled (announce.enabled: false); {vip} is withdrawn on device {}",
            a.device
        ),
        Some(a) => format!(
            "announce: {vip}/{} on device {} while a service on it has a healthy backend; SIGTERM withdraws, then drains {:?}",
            if vip.is_ipv4() { 32 } else { 128 },
            a.device,
            a.drain
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::snapshot::{DownBackends, StaticResolver};

    const TABLE: &str = "version: 1\ndataplane:\n  interfaces: [{ name: eth0 }]\n  maglev_table_size: 1009\n\
        services:\n\
        - { name: web, vips: [198.18.100.10, \"2001:db8:100::10\"], protocol: tcp, ports: [80], forwarding: dsr,\n\
            backends: [{ name: a, address: 198.18.1.11, mac: \"02:00:00:00:01:11\" }, { name: b, address: 198.18.1.12, mac: \"02:00:00:00:01:12\" }] }\n\
        - { name: dns, vips: [198.18.100.10], protocol: udp, ports: [53], forwarding: dsr,\n\
            backends: [{ name: a, address: 198.18.1.11, mac: \"02:00:00:00:01:11\" }] }\n\
        - { name: api, vips: [198.18.100.20], protocol: tcp, ports: [443], forwarding: dsr,\n\
            backends: [{ name: c, address: 198.18.1.13 }] }\n";

    fn servable(table: &ServiceTable, down: &[(&str, &str)]) -> Vec<String> {
        let down: DownBackends = down
            .iter()
            .map(|(s, b)| ((*s).to_owned(), (*b).to_owned()))
            .collect();
        // Backends with a `mac` resolve; api's `c` has none, so it never resolves.
        let resolver = StaticResolver {
            port_macs: vec![[2, 0, 0, 0, 0, 2]],
            egress: 0,
        };
        let snapshot = Snapshot::build(table, 1, None, &resolver, &down).expect("snapshot");
        servable_vips(table, &snapshot)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_vip_is_servable_while_one_of_its_services_has_a_healthy_backend() {
        let table = crate::config::parse(TABLE, "t.yaml").expect("valid");
        // api's only backend is unresolved: its VIP is never announced.
        let web = ["198.18.100.10", "2001:db8:100::10"];
        assert_eq!(servable(&table, &[]), web);
        // web keeps b while dns is down: web's VIPs stay.
        assert_eq!(servable(&table, &[("web", "a"), ("dns", "a")]), web);
        // web is down but dns serves 198.18.100.10: routing cannot split by protocol.
        assert_eq!(
            servable(&table, &[("web", "a"), ("web", "b")]),
            ["198.18.100.10"]
        );
        assert!(servable(&table, &[("web", "a"), ("web", "b"), ("dns", "a")]).is_empty());
    }

    #[test]
    fn explain_says_how_a_vip_is_announced() {
        let mut table = crate::config::parse(TABLE, "t.yaml").expect("valid");
        let vip: IpAddr = "2001:db8:100::10".parse().expect("address");
        assert!(describe(&table, vip).starts_with("announce: off"));
        table.announce = Some(AnnounceConfig::default());
        assert_eq!(
            describe(&table, vip),
            "announce: 2001:db8:100::10/128 on device xlb-announce while a service on it has \
             a healthy backend; SIGTERM withdraws, then drains 2s"
        );
    }
}
