//! Next hops for backends from the kernel: the route and neighbour tables (with an
//! ARP/NDP probe when an entry is missing), overridden by a `mac:` in the config.
//! Runs off the packet path, before each snapshot is built.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::{Backend, ServiceTable};
use crate::control::neighbor;
use crate::lb::snapshot::{NextHop, NextHopResolver, ETHERNET_MTU};
use crate::lb::verdict::PortId;

/// A backend whose next hop could not be found; reported, and its packets are counted
/// as `backend_unresolved` until a later resolution succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// Backend name.
    pub backend: String,
    /// Backend address.
    pub address: IpAddr,
    /// Why.
    pub reason: String,
}

/// Backends resolved at once: each waits on its own neighbour entry, so a table with
/// many dead backends takes about one `timeout` per this many, not one per backend.
const PARALLEL_RESOLUTIONS: usize = 32;

/// Next hops resolved for every backend of a table.
pub struct KernelResolver {
    port_macs: Vec<[u8; 6]>,
    port_mtus: Vec<u32>,
    hops: HashMap<IpAddr, NextHop>,
}

impl KernelResolver {
    /// Resolves every backend of `table` (each address once), up to
    /// [`PARALLEL_RESOLUTIONS`] at a time, each waiting up to `timeout` for a missing
    /// neighbour entry.
    pub fn resolve(
        table: &ServiceTable,
        timeout: Duration,
    ) -> Result<(KernelResolver, Vec<Unresolved>), neighbor::NeighborError> {
        let names: Vec<&str> = table
            .dataplane
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        let port_macs = names
            .iter()
            .map(|name| neighbor::interface_mac(name))
            .collect::<Result<Vec<_>, _>>()?;
        let port_mtus = names
            .iter()
            .map(|name| neighbor::interface_mtu(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::new();
        let backends: Vec<&Backend> = table
            .services
            .iter()
            .flat_map(|s| &s.backends)
            .filter(|b| seen.insert(b.address))
            .collect();
        let mut hops = HashMap::new();
        let mut unresolved = Vec::new();
        for group in backends.chunks(PARALLEL_RESOLUTIONS) {
            let outcomes: Vec<Result<NextHop, String>> = std::thread::scope(|scope| {
                let running: Vec<_> = group
                    .iter()
                    .map(|backend| {
                        let (names, port_macs) = (&names, &port_macs);
                        scope.spawn(move || next_hop(backend, names, port_macs, timeout))
                    })
                    .collect();
                running
                    .into_iter()
                    .map(|thread| {
                        thread
                            .join()
                            .unwrap_or_else(|_| Err("the resolution thread panicked".into()))
                    })
                    .collect()
            });
            for (backend, outcome) in group.iter().zip(outcomes) {
                match outcome {
                    Ok(hop) => {
                        hops.insert(backend.address, hop);
                    }
                    Err(reason) => unresolved.push(Unresolved {
                        backend: backend.name.clone(),
                        address: backend.address,
                        reason,
                    }),
                }
            }
        }
        Ok((
            KernelResolver {
                port_macs,
                port_mtus,
                hops,
            },
            unresolved,
        ))
    }
}

fn next_hop(
    backend: &Backend,
    ports: &[&str],
    port_macs: &[[u8; 6]],
    timeout: Duration,
) -> Result<NextHop, String> {
    let port_of = |ifname: &str| ports.iter().position(|p| *p == ifname);
    match neighbor::resolve(backend.address, timeout) {
        Ok(hop) => {
            let port = port_of(&hop.ifname).ok_or_else(|| {
                format!(
                    "the kernel routes {} via {}, which xlb does not serve (interfaces: {})",
                    backend.address,
                    hop.ifname,
                    ports.join(", ")
                )
            })?;
            Ok(NextHop {
                port: port as PortId,
                src_mac: port_macs[port],
                dst_mac: backend.mac.unwrap_or(hop.dst_mac),
            })
        }
        // A configured MAC needs no neighbour entry; the first interface carries it.
        Err(_) if backend.mac.is_some() && !port_macs.is_empty() => Ok(NextHop {
            port: 0,
            src_mac: port_macs[0],
            dst_mac: backend.mac.unwrap_or_default(),
        }),
        Err(e) => Err(e.to_string()),
    }
}

impl NextHopResolver for KernelResolver {
    fn next_hop(&self, backend: &Backend) -> Option<NextHop> {
        self.hops.get(&backend.address).copied()
    }

    fn port_mac(&self, port: PortId) -> [u8; 6] {
        self.port_macs
            .get(port as usize)
            .copied()
            .unwrap_or_default()
    }

    fn port_mtu(&self, port: PortId) -> u32 {
        self.port_mtus
            .get(port as usize)
            .copied()
            .unwrap_or(ETHERNET_MTU)
    }
}
