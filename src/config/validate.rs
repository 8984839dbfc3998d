//! Semantic checks of a deserialized service table: what serde's types cannot
//! say. Each failure names the field path of the offending node; `parse` turns
//! that path into a file position.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::locate::FieldPath;
use super::model::is_prime;
use super::model::{
    AnnounceConfig, DataplaneConfig, Forwarding, HealthCheck, HealthCheckKind, HealthCheckVia,
    Protocol, Queues, SctpSyncConfig, Service, ServiceTable, Workers, MAGLEV_MAX_TABLE_SIZE,
    MAX_BACKENDS, MAX_STEERED_ADDRESSES, SCTP_MAX_ADDRESSES,
};

/// A semantic error: the node it is about and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Where the offending value is (or would be) written.
    pub(crate) path: FieldPath,
    /// What is wrong and, where useful, what to do.
    pub(crate) message: String,
}

type Checked = Result<(), Problem>;

fn problem(path: FieldPath, message: impl Into<String>) -> Checked {
    Err(Problem {
        path,
        message: message.into(),
    })
}

/// The Maglev table must have at least this many slots per backend, so that each
/// backend's share stays close to its weight (NSDI 2016 §3.4 uses M > 100·N).
pub(crate) const MAGLEV_SLOTS_PER_BACKEND_MIN: u32 = 10;
/// Frames per batch accepted.
const BATCH_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1..=256;
/// AF_XDP ring sizes accepted (each a power of two).
const RING_SIZE_RANGE: std::ops::RangeInclusive<u32> = 64..=16384;
/// Client addresses per SCTP association accepted: what an association record stores.
const SCTP_MAX_ADDRESSES_RANGE: std::ops::RangeInclusive<usize> = 1..=SCTP_MAX_ADDRESSES;
/// Longest interface name Linux accepts (IFNAMSIZ minus the NUL).
const INTERFACE_NAME_MAX: usize = 15;
/// Most peers one node replicates SCTP associations to: a full mesh beyond this is a
/// design question, not a setting.
const SYNC_PEERS_MAX: usize = 64;
/// Bounds of `sctp.sync.catch_up`.
const SYNC_CATCH_UP_MAX: Duration = Duration::from_secs(60);

/// Checks the table; the first problem found, in file order, is returned.
pub(crate) fn validate(table: &ServiceTable) -> Checked {
    let root = FieldPath::default();
    check_dataplane(&table.dataplane, &table.services, &root.key("dataplane"))?;
    let services = root.key("services");
    for (index, service) in table.services.iter().enumerate() {
        check_service(
            service,
            &table.services[..index],
            &table.dataplane,
            &services.index(index),
            &services,
        )?;
    }
    check_counts(table, &services)?;
    if let Some(announce) = &table.announce {
        check_announce(announce, &table.dataplane, &root.key("announce"))?;
    }
    Ok(())
}

/// Longest `announce.drain`: SIGTERM should end in minutes, as service managers expect.
const ANNOUNCE_DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(600);

/// The announcement device is a fresh interface name, not one the dataplane binds.
fn check_announce(
    announce: &AnnounceConfig,
    dataplane: &DataplaneConfig,
    at: &FieldPath,
) -> Checked {
    let device = &announce.device;
    if device.is_empty() || device.len() > INTERFACE_NAME_MAX || device.contains(['/', ' ', ':']) {
        return problem(
            at.key("device"),
            format!("{device:?} is not an interface name (1 to {INTERFACE_NAME_MAX} characters, no '/', ':' or space)"),
        );
    }
    if dataplane.interfaces.iter().any(|i| i.name == *device) {
        return problem(
            at.key("device"),
            format!("`{device}` is a dataplane interface; the announcement needs a device of its own (xlb creates it), e.g. xlb-announce"),
        );
    }
    if announce.drain > ANNOUNCE_DRAIN_MAX {
        return problem(
            at.key("drain"),
            format!(
                "{:?} is longer than the {}s a drain may take; routers move flows away within seconds",
                announce.drain,
                ANNOUNCE_DRAIN_MAX.as_secs()
            ),
        );
    }
    Ok(())
}

/// Totals over the whole table that the dataplane's fixed-size structures bound.
fn check_counts(table: &ServiceTable, services: &FieldPath) -> Checked {
    let backends: usize = table.services.iter().map(|s| s.backends.len()).sum();
    if backends > MAX_BACKENDS {
        return problem(
            services.clone(),
            format!("{backends} backends in all services; one xlb serves at most {MAX_BACKENDS}: split the table over more xlb instances"),
        );
    }
    let steered: std::collections::HashSet<IpAddr> = table
        .services
        .iter()
        .flat_map(|s| s.vips.iter().copied())
        .chain(table.dataplane.nat.addresses.iter().copied())
        .collect();
    if steered.len() > MAX_STEERED_ADDRESSES {
        return problem(
            services.clone(),
            format!(
                "{} distinct VIPs and SNAT addresses; the steering map holds at most {MAX_STEERED_ADDRESSES}: split the table over more xlb instances",
                steered.len()
            ),
        );
    }
    Ok(())
}

fn check_dataplane(dataplane: &DataplaneConfig, services: &[Service], at: &FieldPath) -> Checked {
    let interfaces = at.key("interfaces");
    if dataplane.interfaces.is_empty() {
        return problem(
            interfaces,
            "at least one interface is needed for the dataplane to bind",
        );
    }
    for (index, interface) in dataplane.interfaces.iter().enumerate() {
        let here = interfaces.index(index);
        let name = &interface.name;
        if name.is_empty() || name.len() > INTERFACE_NAME_MAX || name.contains(['/', ' ']) {
            return problem(
                here.key("name"),
                format!("{name:?} is not an interface name (1 to {INTERFACE_NAME_MAX} characters, no '/' or space)"),
            );
        }
        if let Some(first) = dataplane.interfaces[..index]
            .iter()
            .position(|other| other.name == *name)
        {
            return problem(
                here.key("name"),
                format!(
                    "interface `{name}` is already listed at {}",
                    interfaces.index(first)
                ),
            );
        }
        if let Queues::List(queues) = &interface.queues {
            check_id_list(queues, &here.key("queues"), "queue")?;
        }
    }
    if let Workers::Cores(cores) = &dataplane.workers {
        check_id_list(cores, &at.key("workers"), "core")?;
    }
    if dataplane.pipeline.trim().is_empty() {
        return problem(
            at.key("pipeline"),
            "name a pipeline in pipelines/ (e.g. l4lb) or give a path",
        );
    }
    if !BATCH_SIZE_RANGE.contains(&dataplane.batch_size) {
        return problem(
            at.key("batch_size"),
            format!(
                "{} is out of range; a batch holds {} to {} frames",
                dataplane.batch_size,
                BATCH_SIZE_RANGE.start(),
                BATCH_SIZE_RANGE.end()
            ),
        );
    }
    if !RING_SIZE_RANGE.contains(&dataplane.ring_size) || !dataplane.ring_size.is_power_of_two() {
        return problem(
            at.key("ring_size"),
            format!(
                "{} is not a power of two from {} to {} (AF_XDP ring sizes are powers of two)",
                dataplane.ring_size,
                RING_SIZE_RANGE.start(),
                RING_SIZE_RANGE.end()
            ),
        );
    }
    let flow_table = at.key("flow_table");
    if dataplane.flow_table.capacity == 0 {
        return problem(
            flow_table.key("capacity"),
            "a flow table needs room for at least one flow",
        );
    }
    for (key, idle) in [
        ("tcp_idle", dataplane.flow_table.tcp_idle),
        ("udp_idle", dataplane.flow_table.udp_idle),
        ("sctp_idle", dataplane.flow_table.sctp_idle),
    ] {
        if idle.is_zero() {
            return problem(
                flow_table.key(key),
                "an idle timeout of 0 forgets every flow at once; give a duration like 30s",
            );
        }
    }
    if dataplane.flow_table.tcp_syn.is_zero() {
        return problem(
            flow_table.key("tcp_syn"),
            "0 forgets every new TCP flow before its handshake's ACK; give a duration like 5s",
        );
    }
    if dataplane.flow_table.new_flows_per_second == 0 {
        return problem(
            flow_table.key("new_flows_per_second"),
            "0 tracks no new flow at all; give a rate per worker (default 200000), \
             as high as you like to lift the guard",
        );
    }
    let sctp = at.key("sctp");
    if dataplane.sctp.capacity == 0 {
        return problem(
            sctp.key("capacity"),
            "the association table needs room for at least one association",
        );
    }
    if !SCTP_MAX_ADDRESSES_RANGE.contains(&dataplane.sctp.max_addresses) {
        return problem(
            sctp.key("max_addresses"),
            format!(
                "{} is out of range; an association keeps {} to {} client addresses",
                dataplane.sctp.max_addresses,
                SCTP_MAX_ADDRESSES_RANGE.start(),
                SCTP_MAX_ADDRESSES_RANGE.end()
            ),
        );
    }
    if dataplane.sctp.embryonic_timeout.is_zero() {
        return problem(
            sctp.key("embryonic_timeout"),
            "0 frees every association before its COOKIE-ECHO arrives; give a duration like 5s",
        );
    }
    if dataplane.sctp.embryonic_per_source == 0 {
        return problem(
            sctp.key("embryonic_per_source"),
            "0 refuses every new association; give at least 1 (default 256)",
        );
    }
    if let Some(sync) = &dataplane.sctp.sync {
        check_sync(sync, dataplane.flow_table.sctp_idle, &sctp.key("sync"))?;
    }
    check_maglev_table_size(
        dataplane.maglev_table_size,
        services,
        &at.key("maglev_table_size"),
    )?;
    if dataplane.encapsulation.gue_port == 0 {
        return problem(
            at.key("encapsulation").key("gue_port"),
            "port 0 cannot be a GUE destination port; the usual one is 6080",
        );
    }
    let (first, last) = dataplane.nat.port_range;
    if first == 0 || first > last {
        return problem(
            at.key("nat").key("port_range"),
            format!(
                "[{first}, {last}] is not a port range; want [first, last] with 1 <= first <= last"
            ),
        );
    }
    if dataplane.nat.unanswered_idle.is_zero() {
        return problem(
            at.key("nat").key("unanswered_idle"),
            "0 frees every NAT session before its backend can answer; give a duration like 10s",
        );
    }
    Ok(())
}

/// Queue and core lists: not empty, no id twice.
fn check_id_list<T: PartialEq + std::fmt::Display>(
    ids: &[T],
    at: &FieldPath,
    what: &str,
) -> Checked {
    if ids.is_empty() {
        return problem(at.clone(), format!("list at least one {what} id"));
    }
    for (index, id) in ids.iter().enumerate() {
        if ids[..index].contains(id) {
            return problem(at.index(index), format!("{what} {id} is listed twice"));
        }
    }
    Ok(())
}

fn check_maglev_table_size(size: u32, services: &[Service], at: &FieldPath) -> Checked {
    if size > MAGLEV_MAX_TABLE_SIZE || !is_prime(size) {
        return problem(
            at.clone(),
            format!(
                "{size} is not a prime up to {}; Maglev needs a prime table size (e.g. 65537)",
                MAGLEV_MAX_TABLE_SIZE
            ),
        );
    }
    let largest = services.iter().max_by_key(|service| service.backends.len());
    if let Some(service) = largest {
        let needed = u64::try_from(service.backends.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(MAGLEV_SLOTS_PER_BACKEND_MIN));
        if u64::from(size) < needed {
            return problem(
                at.clone(),
                format!(
                    "{size} is too small: service `{}` has {} backends and Maglev needs at least {MAGLEV_SLOTS_PER_BACKEND_MIN} slots per backend ({needed}; 100 per backend spreads evenly); use a larger prime such as 65537",
                    service.name,
                    service.backends.len()
                ),
            );
        }
    }
    Ok(())
}

fn family(address: &IpAddr) -> &'static str {
    if address.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn check_service(
    service: &Service,
    earlier: &[Service],
    dataplane: &DataplaneConfig,
    at: &FieldPath,
    services: &FieldPath,
) -> Checked {
    let name = &service.name;
    if name.trim().is_empty() {
        return problem(at.key("name"), "a service needs a name");
    }
    if let Some(first) = earlier.iter().position(|other| other.name == *name) {
        return problem(
            at.key("name"),
            format!(
                "service `{name}` is already defined at {}",
                services.index(first)
            ),
        );
    }
    check_frontend(service, earlier, at, services)?;
    if service.protocol == Protocol::Sctp && service.forwarding == Forwarding::Nat {
        return problem(
            at.key("forwarding"),
            "nat is refused for sctp: ASCONF is authenticated and multihoming needs every path unmodified; use dsr, ipip or gue",
        );
    }
    check_backends(service, at)?;
    check_sctp_placement(service, at)?;
    check_families(service, dataplane, at)?;
    if let Some(health_check) = &service.health_check {
        check_health_check(health_check, &at.key("health_check"))?;
        check_health_via(service, health_check, &at.key("health_check").key("via"))?;
    }
    Ok(())
}

/// Most bits of an Initiate Tag a backend identity may take: the rest stays random, as
/// RFC 9260 §5.3.1 wants tags to be hard to guess.
const BACKEND_TAG_BITS_MAX: u8 = 16;

/// `sctp:` on an SCTP service only; with `backend_tag_bits`, every backend names the
/// identity its tags carry, each a different one that fits the bits.
fn check_sctp_placement(service: &Service, at: &FieldPath) -> Checked {
    let bits = service.sctp.as_ref().and_then(|sctp| sctp.backend_tag_bits);
    if service.sctp.is_some() && service.protocol != Protocol::Sctp {
        return problem(
            at.key("sctp"),
            "`sctp` settings apply to sctp services only",
        );
    }
    if let Some(bits) = bits {
        if !(1..=BACKEND_TAG_BITS_MAX).contains(&bits) {
            return problem(
                at.key("sctp").key("backend_tag_bits"),
                format!("{bits} is out of range: 1 to {BACKEND_TAG_BITS_MAX} bits of the tag name the backend"),
            );
        }
    }
    for (index, backend) in service.backends.iter().enumerate() {
        let here = at.key("backends").index(index).key("tag_id");
        match (bits, backend.tag_id) {
            (None, Some(_)) => {
                return problem(here, "`tag_id` needs the service's `sctp.backend_tag_bits`")
            }
            (Some(_), None) => {
                return problem(
                    here,
                    format!(
                        "backend `{}` needs a `tag_id`: the service decodes backends from tags",
                        backend.name
                    ),
                )
            }
            (Some(bits), Some(id)) => {
                if u64::from(id) >= 1u64 << bits {
                    return problem(here, format!("{id} does not fit in {bits} bits"));
                }
                if let Some(other) = service.backends[..index]
                    .iter()
                    .find(|b| b.tag_id == Some(id))
                {
                    return problem(
                        here,
                        format!("{id} is also backend `{}`'s tag_id", other.name),
                    );
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// VIPs, ports and source ranges, and VIP:port:protocol unique across services.
fn check_frontend(
    service: &Service,
    earlier: &[Service],
    at: &FieldPath,
    services: &FieldPath,
) -> Checked {
    let vips = at.key("vips");
    if service.vips.is_empty() {
        return problem(vips, "list at least one VIP");
    }
    for (index, vip) in service.vips.iter().enumerate() {
        if service.vips[..index].contains(vip) {
            return problem(vips.index(index), format!("VIP {vip} is listed twice"));
        }
    }
    let ports = at.key("ports");
    if service.ports.is_empty() {
        return problem(ports, "list at least one port");
    }
    for (index, port) in service.ports.iter().enumerate() {
        if *port == 0 {
            return problem(
                ports.index(index),
                "port 0 cannot be served; give 1 to 65535",
            );
        }
        if service.ports[..index].contains(port) {
            return problem(ports.index(index), format!("port {port} is listed twice"));
        }
    }
    if service.source_ranges.is_empty() {
        return problem(
            at.key("source_ranges"),
            "an empty list admits no client; leave the field out to admit everyone",
        );
    }
    let mut served: HashMap<(IpAddr, u16, Protocol), usize> = HashMap::new();
    for (owner, other) in earlier.iter().enumerate() {
        for vip in &other.vips {
            for port in &other.ports {
                served.entry((*vip, *port, other.protocol)).or_insert(owner);
            }
        }
    }
    for (index, vip) in service.vips.iter().enumerate() {
        for port in &service.ports {
            if let Some(owner) = served.get(&(*vip, *port, service.protocol)) {
                let owner_name = earlier.get(*owner).map_or("", |other| other.name.as_str());
                return problem(
                    vips.index(index),
                    format!(
                        "{vip} port {port}/{} of service `{}` is already served by service `{owner_name}` ({}); a VIP:port:protocol belongs to one service",
                        service.protocol,
                        service.name,
                        services.index(*owner)
                    ),
                );
            }
        }
    }
    Ok(())
}

fn check_backends(service: &Service, at: &FieldPath) -> Checked {
    let backends = at.key("backends");
    for (index, backend) in service.backends.iter().enumerate() {
        let here = backends.index(index);
        if backend.name.trim().is_empty() {
            return problem(
                here.key("name"),
                "a backend needs a name (Maglev hashes it)",
            );
        }
        if let Some(first) = service.backends[..index]
            .iter()
            .position(|other| other.name == backend.name)
        {
            return problem(
                here.key("name"),
                format!(
                    "backend `{}` is already defined at {}",
                    backend.name,
                    backends.index(first)
                ),
            );
        }
        if backend.address.is_unspecified() || backend.address.is_multicast() {
            return problem(
                here.key("address"),
                format!("{} cannot be a backend address", backend.address),
            );
        }
    }
    if !service.backends.iter().any(|backend| backend.weight > 0) {
        return problem(
            backends,
            format!(
                "service `{}` has no backend with weight > 0, so no flow could be placed; give one a weight",
                service.name
            ),
        );
    }
    Ok(())
}

/// Whether the forwarding mode can carry each VIP's family to each backend's,
/// and whether the dataplane has the source addresses the mode needs.
fn check_families(service: &Service, dataplane: &DataplaneConfig, at: &FieldPath) -> Checked {
    let forwarding = service.forwarding;
    for (index, vip) in service.vips.iter().enumerate() {
        let unreachable = service.backends.iter().find(|backend| match forwarding {
            Forwarding::Dsr | Forwarding::Gue => false,
            Forwarding::Ipip => vip.is_ipv6() && backend.address.is_ipv4(),
            Forwarding::Nat => vip.is_ipv4() != backend.address.is_ipv4(),
        });
        if let Some(backend) = unreachable {
            let why = if forwarding == Forwarding::Nat {
                "nat keeps the address family (no NAT64): give this VIP its own service with backends of its family"
            } else {
                "ipip has no IPv6-in-IPv4 encapsulation: use IPv6 backends, or gue or dsr"
            };
            return problem(
                at.key("vips").index(index),
                format!(
                    "{forwarding} cannot carry {} VIP {vip} to {} backend `{}` ({}); {why}",
                    family(vip),
                    family(&backend.address),
                    backend.name,
                    backend.address
                ),
            );
        }
    }
    let needs_source = |v4: bool| -> Option<(&'static str, bool)> {
        match forwarding {
            Forwarding::Dsr => None,
            Forwarding::Ipip | Forwarding::Gue => Some(if v4 {
                (
                    "dataplane.encapsulation.source_v4",
                    dataplane.encapsulation.source_v4.is_some(),
                )
            } else {
                (
                    "dataplane.encapsulation.source_v6",
                    dataplane.encapsulation.source_v6.is_some(),
                )
            }),
            Forwarding::Nat => Some((
                "dataplane.nat.addresses",
                dataplane
                    .nat
                    .addresses
                    .iter()
                    .any(|address| address.is_ipv4() == v4),
            )),
        }
    };
    for backend in &service.backends {
        if let Some((field, present)) = needs_source(backend.address.is_ipv4()) {
            if !present {
                return problem(
                    at.key("forwarding"),
                    format!(
                        "{forwarding} to {} backend `{}` needs an {} source address of this host in {field}; add one",
                        family(&backend.address),
                        backend.name,
                        family(&backend.address)
                    ),
                );
            }
        }
    }
    Ok(())
}

/// `via: vip` sends one crafted SYN or INIT through the forwarding path: it needs a
/// kind that a single packet answers, and a forwarding mode where the backend holds
/// the VIP.
fn check_health_via(service: &Service, check: &HealthCheck, at: &FieldPath) -> Checked {
    if check.via != HealthCheckVia::Vip {
        return Ok(());
    }
    if service.forwarding == Forwarding::Nat {
        return problem(
            at.clone(),
            "via: vip probes the VIP on the backend, and a nat backend never holds the VIP (xlb translates it); use via: backend",
        );
    }
    if matches!(check.kind, HealthCheckKind::Http { .. }) {
        return problem(
            at.clone(),
            "via: vip sends one SYN and needs no connection; an http check needs a whole connection: use kind tcp, or via: backend",
        );
    }
    Ok(())
}

fn check_health_check(check: &HealthCheck, at: &FieldPath) -> Checked {
    if check.port == Some(0) {
        return problem(
            at.key("port"),
            "port 0 cannot be probed; give 1 to 65535 or leave it out",
        );
    }
    if check.rise == 0 {
        return problem(at.key("rise"), "rise must be at least 1");
    }
    if check.fall == 0 {
        return problem(at.key("fall"), "fall must be at least 1");
    }
    if check.interval.is_zero() {
        return problem(at.key("interval"), "interval must be longer than 0");
    }
    if check.timeout.is_zero() || check.timeout >= check.interval {
        return problem(
            at.key("timeout"),
            format!(
                "timeout {:?} must be above 0 and shorter than interval {:?}, so probes do not overlap",
                check.timeout, check.interval
            ),
        );
    }
    if let HealthCheckKind::Http {
        path,
        expect_status,
    } = &check.kind
    {
        if !path.starts_with('/') {
            return problem(
                at.key("path"),
                format!("{path:?} is not a request path; it starts with '/'"),
            );
        }
        if !(100..=599).contains(expect_status) {
            return problem(
                at.key("expect_status"),
                format!("{expect_status} is not an HTTP status code (100 to 599)"),
            );
        }
    }
    Ok(())
}

/// `dataplane.sctp.sync`: a real group of peers, and walks frequent enough that no copy
/// idles out between two of them.
fn check_sync(sync: &SctpSyncConfig, sctp_idle: Duration, at: &FieldPath) -> Checked {
    let peers = at.key("peers");
    if sync.peers.is_empty() {
        return problem(
            peers,
            "a sync group needs at least one peer; leave `sync` out on a single node",
        );
    }
    if sync.peers.len() > SYNC_PEERS_MAX {
        return problem(
            peers,
            format!(
                "{} peers; a node syncs with at most {SYNC_PEERS_MAX}",
                sync.peers.len()
            ),
        );
    }
    for (i, peer) in sync.peers.iter().enumerate() {
        if *peer == sync.listen {
            return problem(
                peers.index(i),
                format!("{peer} is this node's own `listen` address; list only the other nodes"),
            );
        }
        if sync.peers[..i].contains(peer) {
            return problem(peers.index(i), format!("{peer} is listed twice"));
        }
    }
    if sync.full_resync < Duration::from_secs(1) || sync.full_resync * 2 > sctp_idle {
        return problem(
            at.key("full_resync"),
            format!(
                "{:?} is out of range: at least 1s and at most half of flow_table.sctp_idle \
                 ({:?}), or peers' copies idle out between two walks",
                sync.full_resync, sctp_idle
            ),
        );
    }
    if sync.catch_up > SYNC_CATCH_UP_MAX {
        return problem(
            at.key("catch_up"),
            format!("{:?} is longer than {SYNC_CATCH_UP_MAX:?}; a starting node would wait that long for a silent peer", sync.catch_up),
        );
    }
    Ok(())
}
