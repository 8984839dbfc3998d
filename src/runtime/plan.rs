//! The worker plan: which CPU each worker pins to and which (interface,
//! queue) pairs it serves. A pure function of the topology and the config,
//! so it is tested on hand-made and synthetic machines.
//!
//! Rules, in order:
//! - queue index `i` of every interface goes to the same worker, so a worker
//!   owns queue `i` everywhere and a frame can cross interfaces without
//!   leaving its worker;
//! - with `workers: auto`, workers go on cores of the NUMA node(s) the
//!   interfaces are attached to; interfaces with no locality (veth) spread
//!   workers over all nodes;
//! - one worker per physical core, never two on one core (hyperthread
//!   siblings share the core's caches and ports);
//! - more queue indexes than usable cores: a worker serves several indexes;
//! - core 0 is left to the host when the other cores are enough;
//! - `workers: [cpu, ..]` overrides the placement, checked against the topology.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::topology::{Core, Topology};

/// The placement of every worker; the runtime starts one thread per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Workers in id order.
    pub workers: Vec<WorkerAssignment>,
}

/// One worker: where it runs and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerAssignment {
    /// Worker id, `0..workers.len()`, used in logs and metrics.
    pub id: usize,
    /// OS CPU number the worker pins itself to (`core_affinity::CoreId`).
    pub cpu: usize,
    /// NUMA node of `cpu`, where the worker allocates its memory.
    pub numa_node: Option<u32>,
    /// (interface name, port index, queue id) pairs this worker owns one
    /// AF_XDP socket for, ordered by queue then by interface.
    pub queues: Vec<(String, u8, u32)>,
}

/// An interface as the planner needs it, after the config resolved `queues: all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInterface {
    /// Kernel interface name; must appear in `Topology::interfaces`.
    pub name: String,
    /// Port index the pipeline uses for this interface.
    pub port: u8,
    /// Queue ids to serve.
    pub queues: Vec<u32>,
}

/// How the operator chose worker placement (`dataplane.workers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerChoice {
    /// Place workers on NIC-local cores.
    Auto,
    /// Exactly these OS CPUs, one worker each, in this order.
    Cores(Vec<usize>),
}

/// Why no plan could be made; each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No interface to serve.
    #[error("no dataplane interface configured; list at least one under dataplane.interfaces")]
    NoInterfaces,
    /// An interface has an empty queue list.
    #[error(
        "interface {interface} has no queue to serve; set its queues to `all` or a non-empty list"
    )]
    NoQueues {
        /// The interface.
        interface: String,
    },
    /// The planner was given an interface the topology was not discovered with.
    #[error("interface {interface} is not in the discovered topology; discover the topology with every dataplane interface")]
    InterfaceNotInTopology {
        /// The interface.
        interface: String,
    },
    /// A configured queue id is beyond what the interface has.
    #[error("interface {interface} has {available} queue(s) but queue {queue} was asked; use queue ids below {available} or raise the channel count (`ethtool -L {interface} combined N`)")]
    QueueOutOfRange {
        /// The interface.
        interface: String,
        /// The queue id asked for.
        queue: u32,
        /// How many queues the interface has.
        available: u32,
    },
    /// The topology has no core at all.
    #[error("the topology has no usable core; check the process CPU affinity / cgroup cpuset")]
    NoCores,
    /// `workers: []`.
    #[error("dataplane.workers is an empty list; list CPUs (e.g. [2, 3]) or use `auto`")]
    EmptyWorkerList,
    /// A listed CPU is not in the topology.
    #[error("dataplane.workers lists CPU {cpu}, which this machine does not have (usable CPUs: {available}); pick from those")]
    UnknownCpu {
        /// The CPU listed.
        cpu: usize,
        /// The usable CPUs, for the message.
        available: String,
    },
    /// A CPU listed twice.
    #[error("dataplane.workers lists CPU {cpu} twice; list each CPU once")]
    DuplicateCpu {
        /// The CPU listed twice.
        cpu: usize,
    },
    /// Two listed CPUs are hardware threads of one physical core.
    #[error("dataplane.workers lists CPUs {first} and {second}, which are hardware threads of the same core; list one CPU per core")]
    SharedCore {
        /// The CPU listed first.
        first: usize,
        /// Its sibling listed later.
        second: usize,
    },
    /// More workers than queue indexes: some would have nothing to do.
    #[error("dataplane.workers lists {workers} CPUs but the interfaces have only {queue_indexes} queue index(es) to share; list at most {queue_indexes} CPUs or serve more queues")]
    TooManyWorkers {
        /// Workers asked for.
        workers: usize,
        /// Distinct queue ids across the interfaces.
        queue_indexes: usize,
    },
}

/// Compute the worker plan; see the module doc for the rules.
pub fn plan(
    topology: &Topology,
    interfaces: &[PlanInterface],
    workers: &WorkerChoice,
) -> Result<WorkerPlan, PlanError> {
    let queue_indexes = queue_indexes(topology, interfaces)?;
    let cpus: Vec<(usize, Option<u32>)> = match workers {
        WorkerChoice::Auto => auto_cpus(topology, interfaces, queue_indexes.len())?,
        WorkerChoice::Cores(listed) => listed_cpus(topology, listed, queue_indexes.len())?,
    };

    let mut assignments: Vec<WorkerAssignment> = cpus
        .iter()
        .enumerate()
        .map(|(id, &(cpu, numa_node))| WorkerAssignment {
            id,
            cpu,
            numa_node,
            queues: Vec::new(),
        })
        .collect();
    let worker_count = assignments.len();
    if worker_count == 0 {
        return Err(PlanError::NoCores);
    }
    for (position, queue) in queue_indexes.iter().enumerate() {
        let Some(worker) = assignments.get_mut(position % worker_count) else {
            continue;
        };
        for interface in interfaces {
            if interface.queues.contains(queue) {
                worker
                    .queues
                    .push((interface.name.clone(), interface.port, *queue));
            }
        }
    }
    Ok(WorkerPlan {
        workers: assignments,
    })
}

impl WorkerPlan {
    /// Human-readable plan for `xlb topology` and the `xlb run` log.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "worker plan: {} worker(s)", self.workers.len());
        for worker in &self.workers {
            let node = match worker.numa_node {
                Some(node) => format!("node {node}"),
                None => "node ?".to_string(),
            };
            let queues = worker
                .queues
                .iter()
                .map(|(name, port, queue)| format!("{name}(port {port}) q{queue}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "  worker {}: cpu {} ({}) serves {}",
                worker.id, worker.cpu, node, queues
            );
        }
        out
    }
}

/// Distinct queue ids across all interfaces, ascending, after checking each
/// interface is known and has the queues asked for.
fn queue_indexes(
    topology: &Topology,
    interfaces: &[PlanInterface],
) -> Result<BTreeSet<u32>, PlanError> {
    if interfaces.is_empty() {
        return Err(PlanError::NoInterfaces);
    }
    let mut indexes = BTreeSet::new();
    for interface in interfaces {
        let locality = topology
            .interfaces
            .iter()
            .find(|l| l.name == interface.name)
            .ok_or_else(|| PlanError::InterfaceNotInTopology {
                interface: interface.name.clone(),
            })?;
        if interface.queues.is_empty() {
            return Err(PlanError::NoQueues {
                interface: interface.name.clone(),
            });
        }
        if let Some(&queue) = interface.queues.iter().find(|&&q| q >= locality.queues) {
            return Err(PlanError::QueueOutOfRange {
                interface: interface.name.clone(),
                queue,
                available: locality.queues,
            });
        }
        indexes.extend(interface.queues.iter().copied());
    }
    Ok(indexes)
}

/// `workers: auto`: first CPU of NIC-local cores, interleaved across the
/// chosen nodes, at most one per queue index.
fn auto_cpus(
    topology: &Topology,
    interfaces: &[PlanInterface],
    queue_index_count: usize,
) -> Result<Vec<(usize, Option<u32>)>, PlanError> {
    let local_nodes: BTreeSet<u32> = interfaces
        .iter()
        .filter_map(|interface| {
            topology
                .interfaces
                .iter()
                .find(|l| l.name == interface.name)
                .and_then(|l| l.numa_node)
        })
        .collect();
    let mut candidates = interleaved_cores(topology, |node| local_nodes.contains(&node));
    // Interfaces with no locality, or on a node without cores (memory-only
    // node, or a node hidden from this process): spread over every node.
    if candidates.is_empty() {
        candidates = interleaved_cores(topology, |_| true);
    }
    if candidates.is_empty() {
        return Err(PlanError::NoCores);
    }
    let hosts_cpu0 = |core: &Core| core.cpus.contains(&0);
    if candidates.len() > queue_index_count && candidates.iter().any(|(_, c)| hosts_cpu0(c)) {
        candidates.retain(|(_, core)| !hosts_cpu0(core));
    }
    Ok(candidates
        .into_iter()
        .take(queue_index_count)
        .filter_map(|(node, core)| core.cpus.first().map(|&cpu| (cpu, Some(node))))
        .collect())
}

/// Cores of the nodes `wanted` accepts, taking one core from each node in
/// turn so a multi-node choice spreads evenly.
fn interleaved_cores(topology: &Topology, wanted: impl Fn(u32) -> bool) -> Vec<(u32, &Core)> {
    let nodes: Vec<_> = topology
        .numa_nodes
        .iter()
        .filter(|node| wanted(node.os_index))
        .collect();
    let deepest = nodes.iter().map(|n| n.cores.len()).max().unwrap_or(0);
    let mut cores = Vec::new();
    for rank in 0..deepest {
        for node in &nodes {
            if let Some(core) = node.cores.get(rank) {
                if !core.cpus.is_empty() {
                    cores.push((node.os_index, core));
                }
            }
        }
    }
    cores
}

/// `workers: [..]`: check every CPU exists, appears once, and does not share
/// a core with another listed CPU.
fn listed_cpus(
    topology: &Topology,
    listed: &[usize],
    queue_index_count: usize,
) -> Result<Vec<(usize, Option<u32>)>, PlanError> {
    if listed.is_empty() {
        return Err(PlanError::EmptyWorkerList);
    }
    if listed.len() > queue_index_count {
        return Err(PlanError::TooManyWorkers {
            workers: listed.len(),
            queue_indexes: queue_index_count,
        });
    }
    let mut chosen: Vec<(usize, Option<u32>, &Core)> = Vec::with_capacity(listed.len());
    for &cpu in listed {
        let (node, core) = topology
            .core_of_cpu(cpu)
            .ok_or_else(|| PlanError::UnknownCpu {
                cpu,
                available: usable_cpus(topology),
            })?;
        for &(earlier, _, earlier_core) in &chosen {
            if earlier == cpu {
                return Err(PlanError::DuplicateCpu { cpu });
            }
            if std::ptr::eq(earlier_core, core) {
                return Err(PlanError::SharedCore {
                    first: earlier,
                    second: cpu,
                });
            }
        }
        chosen.push((cpu, Some(node), core));
    }
    Ok(chosen
        .into_iter()
        .map(|(cpu, node, _)| (cpu, node))
        .collect())
}

/// Every CPU of the topology, ascending, comma-separated (for error messages).
fn usable_cpus(topology: &Topology) -> String {
    let cpus: BTreeSet<usize> = topology
        .numa_nodes
        .iter()
        .flat_map(|node| &node.cores)
        .flat_map(|core| core.cpus.iter().copied())
        .collect();
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::topology::{InterfaceLocality, NumaNode};

    /// `nodes` NUMA nodes of `cores_per_node` cores with 2 threads each,
    /// Linux-style numbering (sibling thread = cpu + total cores).
    fn machine(
        nodes: u32,
        cores_per_node: u32,
        interfaces: &[(&str, Option<u32>, u32)],
    ) -> Topology {
        let total = (nodes * cores_per_node) as usize;
        Topology {
            packages: nodes as usize,
            numa_nodes: (0..nodes)
                .map(|node| NumaNode {
                    os_index: node,
                    cores: (0..cores_per_node)
                        .map(|c| {
                            let cpu = (node * cores_per_node + c) as usize;
                            Core {
                                os_index: c,
                                cpus: vec![cpu, cpu + total],
                            }
                        })
                        .collect(),
                })
                .collect(),
            interfaces: interfaces
                .iter()
                .map(|&(name, numa_node, queues)| InterfaceLocality {
                    name: name.to_string(),
                    numa_node,
                    queues,
                })
                .collect(),
        }
    }

    fn interface(name: &str, port: u8, queues: &[u32]) -> PlanInterface {
        PlanInterface {
            name: name.to_string(),
            port,
            queues: queues.to_vec(),
        }
    }

    fn cpus(plan: &WorkerPlan) -> Vec<usize> {
        plan.workers.iter().map(|w| w.cpu).collect()
    }

    #[test]
    fn workers_go_on_the_nic_node() {
        let topo = machine(2, 4, &[("eth0", Some(1), 4)]);
        let plan = plan(
            &topo,
            &[interface("eth0", 0, &[0, 1, 2, 3])],
            &WorkerChoice::Auto,
        )
        .unwrap();
        assert_eq!(cpus(&plan), vec![4, 5, 6, 7]);
        assert!(plan.workers.iter().all(|w| w.numa_node == Some(1)));
        assert_eq!(plan.workers[2].queues, vec![("eth0".to_string(), 0, 2)]);
    }

    #[test]
    fn core_zero_is_left_to_the_host_when_enough_cores() {
        let topo = machine(1, 4, &[("eth0", Some(0), 2)]);
        let plan = plan(&topo, &[interface("eth0", 0, &[0, 1])], &WorkerChoice::Auto).unwrap();
        assert_eq!(cpus(&plan), vec![1, 2]);
    }

    #[test]
    fn core_zero_is_used_when_needed() {
        let topo = machine(1, 2, &[("eth0", Some(0), 2)]);
        let plan = plan(&topo, &[interface("eth0", 0, &[0, 1])], &WorkerChoice::Auto).unwrap();
        assert_eq!(cpus(&plan), vec![0, 1]);
    }

    #[test]
    fn more_queues_than_cores_share_workers_never_cores() {
        let topo = machine(2, 2, &[("eth0", Some(0), 5)]);
        let plan = plan(
            &topo,
            &[interface("eth0", 0, &[0, 1, 2, 3, 4])],
            &WorkerChoice::Auto,
        )
        .unwrap();
        assert_eq!(cpus(&plan), vec![0, 1]);
        let served: Vec<Vec<u32>> = plan
            .workers
            .iter()
            .map(|w| w.queues.iter().map(|q| q.2).collect())
            .collect();
        assert_eq!(served, vec![vec![0, 2, 4], vec![1, 3]]);
    }

    #[test]
    fn queue_i_of_every_interface_shares_a_worker() {
        let topo = machine(1, 4, &[("in0", Some(0), 2), ("out0", Some(0), 2)]);
        let plan = plan(
            &topo,
            &[interface("in0", 0, &[0, 1]), interface("out0", 1, &[0, 1])],
            &WorkerChoice::Auto,
        )
        .unwrap();
        assert_eq!(plan.workers.len(), 2);
        assert_eq!(
            plan.workers[1].queues,
            vec![("in0".to_string(), 0, 1), ("out0".to_string(), 1, 1)]
        );
    }

    #[test]
    fn virtual_interfaces_spread_over_all_nodes() {
        let topo = machine(2, 3, &[("veth0", None, 4)]);
        let plan = plan(
            &topo,
            &[interface("veth0", 0, &[0, 1, 2, 3])],
            &WorkerChoice::Auto,
        )
        .unwrap();
        // Core 0 skipped (5 other cores), then node 1 / node 0 alternate.
        assert_eq!(cpus(&plan), vec![3, 1, 4, 2]);
        let nodes: Vec<_> = plan.workers.iter().map(|w| w.numa_node).collect();
        assert_eq!(nodes, vec![Some(1), Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn override_is_taken_as_listed() {
        let topo = machine(2, 2, &[("eth0", Some(0), 2)]);
        let plan = plan(
            &topo,
            &[interface("eth0", 0, &[0, 1])],
            &WorkerChoice::Cores(vec![3, 1]),
        )
        .unwrap();
        assert_eq!(cpus(&plan), vec![3, 1]);
        assert_eq!(plan.workers[0].numa_node, Some(1));
    }

    #[test]
    fn override_errors_name_the_problem() {
        let topo = machine(1, 2, &[("eth0", Some(0), 2)]);
        let eth0 = [interface("eth0", 0, &[0, 1])];
        let err = |cpus: Vec<usize>| plan(&topo, &eth0, &WorkerChoice::Cores(cpus)).unwrap_err();
        assert_eq!(
            err(vec![9]),
            PlanError::UnknownCpu {
                cpu: 9,
                available: "0,1,2,3".to_string()
            }
        );
        assert_eq!(err(vec![1, 1]), PlanError::DuplicateCpu { cpu: 1 });
        assert_eq!(
            err(vec![1, 3]),
            PlanError::SharedCore {
                first: 1,
                second: 3
            }
        );
        assert_eq!(
            err(vec![0, 1, 2]),
            PlanError::TooManyWorkers {
                workers: 3,
                queue_indexes: 2
            }
        );
        assert_eq!(err(vec![]), PlanError::EmptyWorkerList);
        assert!(err(vec![9]).to_string().contains("usable CPUs: 0,1,2,3"));
    }

    #[test]
    fn interface_errors() {
        let topo = machine(1, 2, &[("eth0", Some(0), 2)]);
        assert_eq!(
            plan(&topo, &[], &WorkerChoice::Auto),
            Err(PlanError::NoInterfaces)
        );
        assert_eq!(
            plan(&topo, &[interface("eth9", 0, &[0])], &WorkerChoice::Auto),
            Err(PlanError::InterfaceNotInTopology {
                interface: "eth9".to_string()
            })
        );
        assert_eq!(
            plan(&topo, &[interface("eth0", 0, &[])], &WorkerChoice::Auto),
            Err(PlanError::NoQueues {
                interface: "eth0".to_string()
            })
        );
        assert_eq!(
            plan(&topo, &[interface("eth0", 0, &[0, 2])], &WorkerChoice::Auto),
            Err(PlanError::QueueOutOfRange {
                interface: "eth0".to_string(),
                queue: 2,
                available: 2
            })
        );
    }

    #[test]
    fn render_lists_every_worker() {
        let topo = machine(2, 2, &[("eth0", Some(1), 1)]);
        let text = plan(&topo, &[interface("eth0", 3, &[0])], &WorkerChoice::Auto)
            .unwrap()
            .render();
        assert_eq!(
            text,
            "worker plan: 1 worker(s)\n  worker 0: cpu 2 (node 1) serves eth0(port 3) q0\n"
        );
    }
}
