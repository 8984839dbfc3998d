//! Next hops for backends from the kernel: the route and neighbour tables (with an
//! ARP/NDP probe when an entry is missing), overridden by a `mac:` in the config.
//! Runs off the packet path and off the control loop: [`ResolverThread`] resolves whole
//! rounds on a thread of its own, fed and drained by the supervisor, so reloads, health,
//! sweeps, metrics and SIGTERM never wait on an ARP or NDP answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};

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
    /// Resolves every backend of `backends` (each address once) leaving by the
    /// `interfaces` xlb serves, up to [`PARALLEL_RESOLUTIONS`] at a time, each waiting up
    /// to `timeout` for a missing neighbour entry.
    pub fn resolve(
        interfaces: &[String],
        backends: &[Backend],
        timeout: Duration,
    ) -> Result<(KernelResolver, Vec<Unresolved>), neighbor::NeighborError> {
        let mut resolver = KernelResolver::without_next_hops(interfaces)?;
        let names: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        let backends: Vec<&Backend> = backends.iter().filter(|b| seen.insert(b.address)).collect();
        let mut unresolved = Vec::new();
        for group in backends.chunks(PARALLEL_RESOLUTIONS) {
            let outcomes: Vec<Result<NextHop, String>> = std::thread::scope(|scope| {
                let running: Vec<_> = group
                    .iter()
                    .map(|backend| {
                        let (names, port_macs) = (&names, &resolver.port_macs);
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
                        resolver.hops.insert(backend.address, hop);
                    }
                    Err(reason) => unresolved.push(Unresolved {
                        backend: backend.name.clone(),
                        address: backend.address,
                        reason,
                    }),
                }
            }
        }
        Ok((resolver, unresolved))
    }

    /// The interfaces' MACs and MTUs and no next hop yet: what a snapshot is built with
    /// while the first round is still out (a quick rtnetlink read, no ARP/NDP).
    pub fn without_next_hops(
        interfaces: &[String],
    ) -> Result<KernelResolver, neighbor::NeighborError> {
        let (port_macs, port_mtus) = interfaces
            .iter()
            .map(|name| neighbor::interface_mac_mtu(name))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        Ok(KernelResolver {
            port_macs,
            port_mtus,
            hops: HashMap::new(),
        })
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

/// The outcome of one resolution round.
pub struct Round {
    /// The number [`ResolverThread::request`] returned for it.
    pub id: u64,
    /// Whether the requester wants its unresolved backends reported (start and reloads;
    /// a periodic refresh stays quiet).
    pub report: bool,
    /// The next hops found and the backends left unresolved, or why the round failed.
    pub outcome: Result<(KernelResolver, Vec<Unresolved>), neighbor::NeighborError>,
}

/// What one round resolves.
struct Request {
    id: u64,
    report: bool,
    interfaces: Vec<String>,
    backends: Vec<Backend>,
    timeout: Duration,
}

/// Resolves next hops on a thread of its own, one round at a time in the order asked.
/// The control loop asks without waiting and collects finished rounds when it looks;
/// only start-up waits for its first round, and never longer than it says.
pub struct ResolverThread {
    requests: Sender<Request>,
    results: Receiver<Round>,
    /// The last round asked for, and the last one collected.
    asked: u64,
    collected: u64,
    /// Not joined on drop: a round may be waiting on ARP, and stopping does not wait
    /// for it. The thread ends after that round, when it finds the channel closed.
    _thread: JoinHandle<()>,
}

impl ResolverThread {
    /// Starts the thread; `on_start` runs first on it (the capability drop).
    pub fn spawn(on_start: impl FnOnce() + Send + 'static) -> std::io::Result<ResolverThread> {
        let (requests, inbox) = channel::unbounded::<Request>();
        let (outbox, results) = channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("xlb-resolver".into())
            .spawn(move || {
                on_start();
                for request in inbox {
                    let outcome = KernelResolver::resolve(
                        &request.interfaces,
                        &request.backends,
                        request.timeout,
                    );
                    let round = Round {
                        id: request.id,
                        report: request.report,
                        outcome,
                    };
                    if outbox.send(round).is_err() {
                        return;
                    }
                }
            })?;
        Ok(ResolverThread {
            requests,
            results,
            asked: 0,
            collected: 0,
            _thread: thread,
        })
    }

    /// Asks for a round over every backend of `table`, each missing neighbour entry
    /// probed for up to `timeout`; returns the round's id at once.
    pub fn request(&mut self, table: &ServiceTable, timeout: Duration, report: bool) -> u64 {
        self.asked += 1;
        let request = Request {
            id: self.asked,
            report,
            interfaces: table
                .dataplane
                .interfaces
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            backends: table
                .services
                .iter()
                .flat_map(|s| s.backends.iter().cloned())
                .collect(),
            timeout,
        };
        // The thread only ends when this handle drops; a send cannot fail before.
        let _ = self.requests.send(request);
        self.asked
    }

    /// Whether a round asked for has not been collected yet.
    pub fn busy(&self) -> bool {
        self.collected < self.asked
    }

    /// The next finished round, waiting at most `wait` for one.
    pub fn next(&mut self, wait: Duration) -> Option<Round> {
        let round = match self.results.recv_timeout(wait) {
            Ok(round) => round,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        };
        self.collected = round.id;
        Some(round)
    }

    /// Round `id`, waiting at most `budget` for it (earlier rounds are passed over).
    pub fn wait_for(&mut self, id: u64, budget: Duration) -> Option<Round> {
        let deadline = Instant::now() + budget;
        loop {
            let round = self.next(deadline.saturating_duration_since(Instant::now()))?;
            if round.id == id {
                return Some(round);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(backends: &str) -> ServiceTable {
        let yaml = format!(
            "version: 1\ndataplane:\n  interfaces: [{{ name: xlb-absent0 }}]\nservices:\n  - name: web\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends:\n{backends}"
        );
        crate::config::parse(&yaml, "t.yaml").expect("valid")
    }

    #[test]
    fn rounds_come_back_in_order_without_blocking_the_asker() {
        let mut thread = ResolverThread::spawn(|| {}).expect("spawn");
        assert!(!thread.busy());
        let table = table("      - { name: b1, address: 198.18.1.11 }\n");
        let first = thread.request(&table, Duration::from_millis(10), true);
        let second = thread.request(&table, Duration::from_millis(10), false);
        assert!(thread.busy());
        let round = thread
            .wait_for(second, Duration::from_secs(10))
            .expect("round");
        assert_eq!((round.id, round.report), (second, false));
        assert!(first < second && !thread.busy());
        // The interface does not exist here: the round says so instead of hanging.
        let error = round.outcome.err().expect("no such interface").to_string();
        assert!(error.contains("xlb-absent0"), "{error}");
        assert!(thread.next(Duration::from_millis(10)).is_none());
    }
}
