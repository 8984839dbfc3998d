//! Machine topology as the worker planner needs it: packages, NUMA nodes,
//! physical cores with their hardware threads, and for each dataplane
//! interface its NUMA node and queue count.
//!
//! Discovery goes through hwloc (hwlocality), so `HWLOC_SYNTHETIC` and
//! `HWLOC_XMLFILE` in the environment replace the real machine, which is how
//! the planner is tested on machines we do not have. Interface locality comes
//! from hwloc's PCI tree when it sees the interface, else from
//! `/sys/class/net/IF/device/numa_node`; virtual interfaces (veth) have none.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::{OSDeviceType, ObjectType};
use hwlocality::object::TopologyObject;
use hwlocality::topology::builder::TypeFilter;

/// Where sysfs publishes network interfaces; one directory per interface.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// The machine as seen by the planner: what cores exist, where memory is
/// local to them, and which node each NIC is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Number of CPU packages (sockets), shown to the operator.
    pub packages: usize,
    /// NUMA nodes in OS index order, each with the physical cores local to it.
    pub numa_nodes: Vec<NumaNode>,
    /// Locality of the interfaces asked for at discovery, in the order asked.
    pub interfaces: Vec<InterfaceLocality>,
}

/// One NUMA node: the unit of memory locality a worker should stay inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// The kernel's node number (as in `/sys/devices/system/node/nodeN`).
    pub os_index: u32,
    /// Physical cores whose memory is local to this node.
    pub cores: Vec<Core>,
}

/// One physical core: the planner places at most one worker per core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// The kernel's core id within its package.
    pub os_index: u32,
    /// OS CPU numbers of the core's hardware threads (usable with
    /// `core_affinity::CoreId`), ascending.
    pub cpus: Vec<usize>,
}

/// Where a dataplane interface sits and how many queues it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceLocality {
    /// Kernel interface name.
    pub name: String,
    /// NUMA node the device is attached to; `None` for virtual interfaces
    /// or when the platform does not report it.
    pub numa_node: Option<u32>,
    /// Number of RX queues the kernel exposes for the interface.
    pub queues: u32,
}

/// Why the topology could not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// hwloc itself failed to load a topology.
    #[error("hwloc could not discover the machine topology ({0}); check that libhwloc is installed and, if set, that HWLOC_SYNTHETIC / HWLOC_XMLFILE are valid")]
    Hwloc(String),
    /// hwloc found no usable CPU (all disallowed, or an empty synthetic description).
    #[error("the topology has no usable CPU; check the process CPU affinity / cgroup cpuset")]
    NoCpus,
    /// A dataplane interface does not exist in this network namespace.
    #[error(
        "interface {0} does not exist (no {SYS_CLASS_NET}/{0}); check the name with `ip link`"
    )]
    InterfaceMissing(String),
    /// The interface exists but its sysfs attributes could not be read.
    #[error("cannot read {path} for interface {interface}: {source}")]
    InterfaceSysfs {
        /// The interface being inspected.
        interface: String,
        /// The sysfs file or directory that failed.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl Topology {
    /// Discover the machine and the locality of `interface_names`.
    ///
    /// Honours `HWLOC_SYNTHETIC` / `HWLOC_XMLFILE`; interfaces that such a
    /// topology cannot show are read from `/sys` instead.
    pub fn discover(interface_names: &[&str]) -> Result<Self, TopologyError> {
        let hw = hwlocality::Topology::builder()
            .with_io_type_filter(TypeFilter::KeepImportant)
            .map_err(|e| TopologyError::Hwloc(e.to_string()))?
            .build()
            .map_err(|e| TopologyError::Hwloc(e.to_string()))?;

        let packages = hw.objects_with_type(ObjectType::Package).count();
        let numa_nodes = numa_nodes(&hw);
        if numa_nodes.iter().all(|node| node.cores.is_empty()) {
            return Err(TopologyError::NoCpus);
        }
        let interfaces = interface_names
            .iter()
            .map(|name| interface_locality(&hw, name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topology {
            packages,
            numa_nodes,
            interfaces,
        })
    }

    /// The (NUMA node, core) that owns OS CPU `cpu`, if the CPU exists.
    pub fn core_of_cpu(&self, cpu: usize) -> Option<(u32, &Core)> {
        self.numa_nodes.iter().find_map(|node| {
            node.cores
                .iter()
                .find(|core| core.cpus.contains(&cpu))
                .map(|core| (node.os_index, core))
        })
    }

    /// Human-readable summary for `xlb topology`.
    pub fn render(&self) -> String {
        let cores: usize = self.numa_nodes.iter().map(|n| n.cores.len()).sum();
        let cpus: usize = self
            .numa_nodes
            .iter()
            .flat_map(|n| &n.cores)
            .map(|c| c.cpus.len())
            .sum();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "machine: {} package(s), {} NUMA node(s), {} core(s), {} CPU(s)",
            self.packages,
            self.numa_nodes.len(),
            cores,
            cpus
        );
        for node in &self.numa_nodes {
            let _ = write!(
                out,
                "  node {}: {} core(s):",
                node.os_index,
                node.cores.len()
            );
            for core in &node.cores {
                let _ = write!(out, " [{}]", join_cpus(&core.cpus));
            }
            out.push('\n');
        }
        for interface in &self.interfaces {
            let locality = match interface.numa_node {
                Some(node) => format!("NUMA node {node}"),
                None => "no NUMA locality (virtual or unreported)".to_string(),
            };
            let _ = writeln!(
                out,
                "  interface {}: {}, {} queue(s)",
                interface.name, locality, interface.queues
            );
        }
        out
    }
}

/// CPU numbers joined with commas, for one core in `render`.
fn join_cpus(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// OS CPU numbers of an object's cpuset, ascending.
fn cpus_of(object: &TopologyObject) -> Vec<usize> {
    object
        .cpuset()
        .map(|set| set.iter_set().map(usize::from).collect())
        .unwrap_or_default()
}

/// NUMA nodes with the physical cores inside each. Where hwloc shows no core
/// objects (some synthetic or virtual machines), each PU counts as a core.
fn numa_nodes(hw: &hwlocality::Topology) -> Vec<NumaNode> {
    let core_type = if hw.objects_with_type(ObjectType::Core).count() > 0 {
        ObjectType::Core
    } else {
        ObjectType::PU
    };
    hw.objects_with_type(ObjectType::NUMANode)
        .map(|node| {
            let node_cpus = cpus_of(node);
            let cores = hw
                .objects_with_type(core_type)
                .filter_map(|core| {
                    let cpus = cpus_of(core);
                    let local = !cpus.is_empty() && cpus.iter().all(|c| node_cpus.contains(c));
                    local.then(|| Core {
                        os_index: object_os_index(core),
                        cpus,
                    })
                })
                .collect();
            NumaNode {
                os_index: object_os_index(node),
                cores,
            }
        })
        .collect()
}

/// An object's OS index, or its logical index when the OS gives none.
fn object_os_index(object: &TopologyObject) -> u32 {
    let index = object.os_index().unwrap_or(object.logical_index());
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Locality of one interface: hwloc's PCI tree first, then sysfs.
fn interface_locality(
    hw: &hwlocality::Topology,
    name: &str,
) -> Result<InterfaceLocality, TopologyError> {
    let sys_dir = Path::new(SYS_CLASS_NET).join(name);
    if !sys_dir.exists() {
        return Err(TopologyError::InterfaceMissing(name.to_string()));
    }
    let numa_node = match hwloc_numa_node(hw, name) {
        Some(node) => Some(node),
        None => sysfs_numa_node(&sys_dir),
    };
    let queues = sysfs_rx_queue_count(name, &sys_dir)?;
    Ok(InterfaceLocality {
        name: name.to_string(),
        numa_node,
        queues,
    })
}

/// The NUMA node of a network OS device that hwloc placed under a PCI
/// device: the single node of its first non-I/O ancestor, if it has one.
fn hwloc_numa_node(hw: &hwlocality::Topology, name: &str) -> Option<u32> {
    let device = hw.os_devices().find(|object| {
        matches!(
            object.attributes(),
            Some(ObjectAttributes::OSDevice(attr)) if attr.device_type() == OSDeviceType::Network
        ) && object
            .name()
            .is_some_and(|n| n.to_bytes() == name.as_bytes())
    })?;
    let ancestor = device.first_non_io_ancestor()?;
    let nodeset = ancestor.nodeset()?;
    if nodeset.weight() != Some(1) {
        return None;
    }
    let node = usize::from(nodeset.first_set()?);
    u32::try_from(node).ok()
}

/// `/sys/class/net/IF/device/numa_node`; absent (virtual device) or `-1`
/// (platform does not say) both mean no locality.
fn sysfs_numa_node(sys_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(sys_dir.join("device/numa_node")).ok()?;
    text.trim().parse::<u32>().ok()
}

/// Count of `rx-N` directories under `/sys/class/net/IF/queues`.
fn sysfs_rx_queue_count(name: &str, sys_dir: &Path) -> Result<u32, TopologyError> {
    let queues_dir = sys_dir.join("queues");
    let sysfs_error = |source| TopologyError::InterfaceSysfs {
        interface: name.to_string(),
        path: queues_dir.display().to_string(),
        source,
    };
    let mut count = 0u32;
    for entry in fs::read_dir(&queues_dir).map_err(sysfs_error)? {
        let entry = entry.map_err(sysfs_error)?;
        if entry.file_name().to_string_lossy().starts_with("rx-") {
            count = count.saturating_add(1);
        }
    }
    Ok(count)
}
