//! Backend next-hop resolution for the control plane: which interface a
//! backend address leaves by, and the MAC addresses to write into frames
//! sent to it.
//!
//! Everything comes from the kernel over rtnetlink: a route lookup
//! (`RTM_GETROUTE`) gives the egress interface and gateway, the neighbour
//! table (`RTM_GETNEIGH`) gives the next hop's MAC. When the table has no
//! usable entry, a datagram sent to the backend makes the kernel run its own
//! ARP / NDP resolution, and the table is read again until the deadline.
//! Not on the per-packet path: called at start and on reload.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr as NetlinkAddr};

use crate::lb::snapshot::ETHERNET_MTU;

/// How often the neighbour table is re-read while waiting for resolution.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often the probe datagram is re-sent while the entry stays unresolved.
const REPROBE_INTERVAL: Duration = Duration::from_secs(1);
/// UDP port of the probe datagram: discard (RFC 863), so a backend that
/// does receive it has nothing to do with it.
const PROBE_PORT: u16 = 9;

/// Where frames to one backend go: the egress interface and both MACs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Egress interface name.
    pub ifname: String,
    /// Egress interface index.
    pub ifindex: u32,
    /// MAC of the egress interface (Ethernet source).
    pub src_mac: [u8; 6],
    /// MAC of the next hop: the backend itself or its gateway (Ethernet destination).
    pub dst_mac: [u8; 6],
}

/// Why a backend or interface could not be resolved; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum NeighborError {
    /// Talking to the kernel over rtnetlink failed.
    #[error("rtnetlink {request} failed: {source}")]
    Netlink {
        /// The request that failed (e.g. "route lookup").
        request: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The kernel answered something we could not decode.
    #[error("rtnetlink {request}: undecodable answer: {detail}")]
    Decode {
        /// The request being answered.
        request: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The kernel has no route to the address.
    #[error("no route to {addr}: {reason}; add a route to the backend network or fix the backend address")]
    NoRoute {
        /// The address looked up.
        addr: IpAddr,
        /// Why, as the kernel put it.
        reason: String,
    },
    /// The address belongs to this host.
    #[error("{addr} is an address of this host, not a backend on a link; use the backend host's address")]
    LocalAddress {
        /// The address looked up.
        addr: IpAddr,
    },
    /// The named interface does not exist.
    #[error("interface {ifname} does not exist; check the name with `ip link`")]
    InterfaceMissing {
        /// The interface asked for.
        ifname: String,
    },
    /// The egress interface has no Ethernet address (loopback, tun, ...).
    #[error("interface {ifname} has no Ethernet MAC address; xlb forwards over Ethernet interfaces only")]
    NotEthernet {
        /// The interface.
        ifname: String,
    },
    /// Sending the ARP/NDP-triggering probe failed.
    #[error("could not send the resolution probe to {addr}: {source}")]
    Probe {
        /// The backend address probed.
        addr: IpAddr,
        /// The socket error.
        source: io::Error,
    },
    /// No ARP / NDP answer before the deadline.
    #[error("unresolved: no ARP/NDP answer for next hop {next_hop} of {addr} on {ifname} within {timeout:?} (neighbour state {state}); check that the backend is up and on that link, or set its `mac` in the config")]
    Unresolved {
        /// The backend address.
        addr: IpAddr,
        /// The address whose MAC is needed (the backend or its gateway).
        next_hop: IpAddr,
        /// The egress interface.
        ifname: String,
        /// How long we waited.
        timeout: Duration,
        /// The last neighbour-table state seen.
        state: String,
    },
}

/// Resolve `addr` to its egress interface and MACs, probing the link when
/// the kernel has no usable neighbour entry, for at most `timeout`.
pub fn resolve(addr: IpAddr, timeout: Duration) -> Result<Resolution, NeighborError> {
    let started = Instant::now();
    let deadline = started
        .checked_add(timeout)
        .unwrap_or(started + Duration::from_secs(3600));
    let netlink = RouteSocket::open()?;
    let route = netlink.route_to(addr)?;
    let link = netlink.link_by_index(route.ifindex)?;
    let mut last_probe: Option<Instant> = None;
    loop {
        let entry = netlink.neighbour(route.ifindex, route.next_hop)?;
        if let Some(dst_mac) = entry.as_ref().and_then(NeighbourEntry::usable_mac) {
            return Ok(Resolution {
                ifname: link.name,
                ifindex: route.ifindex,
                src_mac: link.mac,
                dst_mac,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            let state = entry.map_or_else(|| "none".to_string(), |e| format!("{:?}", e.state));
            return Err(NeighborError::Unresolved {
                addr,
                next_hop: route.next_hop,
                ifname: link.name,
                timeout,
                state,
            });
        }
        if last_probe.is_none_or(|at| now.duration_since(at) >= REPROBE_INTERVAL) {
            probe(addr)?;
            last_probe = Some(now);
        }
        thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(now)));
    }
}

/// The Ethernet MAC of interface `ifname`.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6], NeighborError> {
    Ok(RouteSocket::open()?.link_by_name(ifname)?.mac)
}

/// MAC and MTU (the largest IP packet it sends) of interface `ifname`, in one query.
pub fn interface_mac_mtu(ifname: &str) -> Result<([u8; 6], u32), NeighborError> {
    let link = RouteSocket::open()?.link_by_name(ifname)?;
    Ok((link.mac, link.mtu))
}

/// Every IPv4 and IPv6 address configured on interface `ifname`.
pub fn interface_addrs(ifname: &str) -> Result<Vec<IpAddr>, NeighborError> {
    let netlink = RouteSocket::open()?;
    let index = netlink.link_index_by_name(ifname)?;
    let mut addrs = Vec::new();
    for message in netlink.dump(
        "address dump",
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )? {
        let RouteNetlinkMessage::NewAddress(address) = message else {
            continue;
        };
        if address.header.index != index {
            continue;
        }
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer
        // on point-to-point links, and the only one given for IPv6.
        let local = address.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let any = address.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = local.or(any) {
            addrs.push(ip);
        }
    }
    Ok(addrs)
}

/// Make the kernel resolve the next hop towards `addr` with its own ARP /
/// NDP machinery: a connected UDP send queues on the neighbour entry and
/// starts resolution.
fn probe(addr: IpAddr) -> Result<(), NeighborError> {
    let bind: SocketAddr = match addr {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let probe_error = |source| NeighborError::Probe { addr, source };
    let socket = UdpSocket::bind(bind).map_err(probe_error)?;
    socket
        .connect(SocketAddr::new(addr, PROBE_PORT))
        .map_err(probe_error)?;
    match socket.send(&[]) {
        Ok(_) => Ok(()),
        // A previous probe already failed resolution and the kernel reports
        // it on this send; the neighbour table says the rest.
        Err(e) if e.raw_os_error() == Some(libc::EHOSTUNREACH) => Ok(()),
        Err(e) => Err(probe_error(e)),
    }
}

/// What a route lookup says about reaching one address.
struct Route {
    /// Egress interface index.
    ifindex: u32,
    /// The gateway, or the address itself when it is on-link.
    next_hop: IpAddr,
}

/// One link's name and MAC.
struct Link {
    /// Interface name.
    name: String,
    /// Interface MAC.
    mac: [u8; 6],
    /// Interface MTU.
    mtu: u32,
}

/// One neighbour-table entry for the next hop.
struct NeighbourEntry {
    /// NUD state.
    state: NeighbourState,
    /// Link-layer address, when the kernel has one.
    lladdr: Option<Vec<u8>>,
}

impl NeighbourEntry {
    /// The MAC, when the entry is in a state the kernel itself would send with.
    fn usable_mac(&self) -> Option<[u8; 6]> {
        let usable = matches!(
            self.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        if !usable {
            return None;
        }
        self.lladdr
            .as_deref()
            .and_then(|b| <[u8; 6]>::try_from(b).ok())
    }
}

/// A NETLINK_ROUTE socket with request/response helpers (also `announce`'s).
pub(crate) struct RouteSocket {
    /// The connected netlink socket.
    socket: Socket,
}

impl RouteSocket {
    /// Open and connect a NETLINK_ROUTE socket to the kernel.
    pub(crate) fn open() -> Result<Self, NeighborError> {
        let netlink_error = |source| NeighborError::Netlink {
            request: "socket",
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(netlink_error)?;
        socket.bind_auto().map_err(netlink_error)?;
        socket
            .connect(&NetlinkAddr::new(0, 0))
            .map_err(netlink_error)?;
        Ok(RouteSocket { socket })
    }

    /// Send one request and collect the answers up to DONE, an error, or
    /// the end of a single (non-multipart) answer.
    pub(crate) fn request(
        &self,
        request: &'static str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, io::Error> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.header.length as usize];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let mut answers = Vec::new();
        loop {
            let (datagram, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while let Some(bytes) = datagram.get(offset..).filter(|b| !b.is_empty()) {
                let answer =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{request}: {e}"))
                    })?;
                let length = answer.header.length as usize;
                let multipart = answer.header.flags & NLM_F_MULTIPART != 0;
                match answer.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            Some(_) => Err(error.to_io()),
                            None => Ok(answers),
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        answers.push(inner);
                        if !multipart {
                            return Ok(answers);
                        }
                    }
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }

    /// A dump request, mapping errors to `NeighborError::Netlink`.
    fn dump(
        &self,
        request: &'static str,
        message: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NeighborError> {
        self.request(request, message, NLM_F_REQUEST | NLM_F_DUMP)
            .map_err(|source| NeighborError::Netlink { request, source })
    }

    /// `ip route get ADDR`: egress interface and next hop.
    fn route_to(&self, addr: IpAddr) -> Result<Route, NeighborError> {
        let mut query = RouteMessage::default();
        query.header.address_family = family_of(addr);
        query.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        query
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::from(addr)));
        let answers = self
            .request(
                "route lookup",
                RouteNetlinkMessage::GetRoute(query),
                NLM_F_REQUEST,
            )
            .map_err(|source| match source.raw_os_error() {
                // ENETUNREACH: no route at all; EHOSTUNREACH / EACCES: an
                // `unreachable` or `prohibit` route.
                Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EACCES) => {
                    NeighborError::NoRoute {
                        addr,
                        reason: source.to_string(),
                    }
                }
                _ => NeighborError::Netlink {
                    request: "route lookup",
                    source,
                },
            })?;
        let route = answers
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(route) => Some(route),
                _ => None,
            })
            .ok_or(NeighborError::Decode {
                request: "route lookup",
                detail: "no route message in the answer".to_string(),
            })?;
        match route.header.kind {
            RouteType::Unicast => {}
            RouteType::Local => return Err(NeighborError::LocalAddress { addr }),
            other => {
                return Err(NeighborError::NoRoute {
                    addr,
                    reason: format!("the route is of type {other:?}"),
                })
            }
        }
        let mut ifindex = None;
        let mut next_hop = addr;
        for attribute in &route.attributes {
            match attribute {
                RouteAttribute::Oif(index) => ifindex = Some(*index),
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => next_hop = IpAddr::V4(*ip),
                RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => next_hop = IpAddr::V6(*ip),
                RouteAttribute::Via(RouteVia::Inet(ip)) => next_hop = IpAddr::V4(*ip),
                RouteAttribute::Via(RouteVia::Inet6(ip)) => next_hop = IpAddr::V6(*ip),
                _ => {}
            }
        }
        let ifindex = ifindex.ok_or(NeighborError::Decode {
            request: "route lookup",
            detail: format!("the route to {addr} names no output interface"),
        })?;
        Ok(Route { ifindex, next_hop })
    }

    /// The neighbour-table entry for `next_hop` on interface `ifindex`.
    fn neighbour(
        &self,
        ifindex: u32,
        next_hop: IpAddr,
    ) -> Result<Option<NeighbourEntry>, NeighborError> {
        let mut query = NeighbourMessage::default();
        query.header.family = family_of(next_hop);
        let answers = self.dump("neighbour dump", RouteNetlinkMessage::GetNeighbour(query))?;
        Ok(answers.into_iter().find_map(|message| {
            let RouteNetlinkMessage::NewNeighbour(entry) = message else {
                return None;
            };
            if entry.header.ifindex != ifindex {
                return None;
            }
            let destination = entry.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                    Some(IpAddr::V4(*ip))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                    Some(IpAddr::V6(*ip))
                }
                _ => None,
            })?;
            if destination != next_hop {
                return None;
            }
            let lladdr = entry.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(bytes) => Some(bytes.clone()),
                _ => None,
            });
            Some(NeighbourEntry {
                state: entry.header.state,
                lladdr,
            })
        }))
    }

    /// Name and MAC of the interface with index `index`.
    fn link_by_index(&self, index: u32) -> Result<Link, NeighborError> {
        let mut query = LinkMessage::default();
        query.header.index = index;
        self.link(query, &format!("index {index}"))
    }

    /// Name and MAC of the interface called `ifname`.
    fn link_by_name(&self, ifname: &str) -> Result<Link, NeighborError> {
        let mut query = LinkMessage::default();
        query
            .attributes
            .push(LinkAttribute::IfName(ifname.to_string()));
        self.link(query, ifname)
    }

    /// Index of the interface called `ifname`.
    pub(crate) fn link_index_by_name(&self, ifname: &str) -> Result<u32, NeighborError> {
        let mut query = LinkMessage::default();
        query
            .attributes
            .push(LinkAttribute::IfName(ifname.to_string()));
        Ok(self.link_message(query, ifname)?.header.index)
    }

    /// One `RTM_GETLINK` answer, decoded into name and MAC.
    fn link(&self, query: LinkMessage, described: &str) -> Result<Link, NeighborError> {
        let link = self.link_message(query, described)?;
        let name = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| described.to_string());
        let mac = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .filter(|mac| mac != &[0; 6])
            .ok_or(NeighborError::NotEthernet {
                ifname: name.clone(),
            })?;
        let mtu = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(*mtu),
                _ => None,
            })
            .unwrap_or(ETHERNET_MTU);
        Ok(Link { name, mac, mtu })
    }

    /// One `RTM_GETLINK` answer.
    fn link_message(
        &self,
        query: LinkMessage,
        described: &str,
    ) -> Result<LinkMessage, NeighborError> {
        let answers = self
            .request(
                "link lookup",
                RouteNetlinkMessage::GetLink(query),
                NLM_F_REQUEST,
            )
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENODEV) => NeighborError::InterfaceMissing {
                    ifname: described.to_string(),
                },
                _ => NeighborError::Netlink {
                    request: "link lookup",
                    source,
                },
            })?;
        answers
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .ok_or(NeighborError::Decode {
                request: "link lookup",
                detail: format!("no link message for {described}"),
            })
    }
}

/// The rtnetlink address family of an IP address.
fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}
