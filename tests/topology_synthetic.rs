//! Topology discovery and worker planning on machines we do not have:
//! hwloc builds them from `HWLOC_SYNTHETIC`. hwloc reads that variable when
//! a topology is loaded, and tests in one binary share a process, so each
//! case re-runs this test binary on itself with the variable set and checks
//! the child passed.

use std::collections::BTreeSet;
use std::process::Command;

use xlb::runtime::plan::{plan, PlanError, PlanInterface, WorkerChoice, WorkerPlan};
use xlb::runtime::topology::{InterfaceLocality, Topology};

/// Set in the child to the name of the one case it runs.
const CHILD_CASE: &str = "XLB_SYNTHETIC_CASE";

/// In the parent: run `case` in a child with `HWLOC_SYNTHETIC=description`,
/// assert it passed, and return `None`. In that child: return the topology
/// hwloc discovered (with `lo`, which only sysfs knows, as its interface).
fn synthetic(case: &str, description: &str) -> Option<Topology> {
    if std::env::var(CHILD_CASE).as_deref() == Ok(case) {
        return Some(Topology::discover(&["lo"]).expect("discover a synthetic topology"));
    }
    let exe = std::env::current_exe().expect("path of this test binary");
    let output = Command::new(exe)
        .args(["--exact", case, "--test-threads", "1", "--nocapture"])
        .env(CHILD_CASE, case)
        .env("HWLOC_SYNTHETIC", description)
        .output()
        .expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "case {case} on HWLOC_SYNTHETIC={description:?} failed:\n{stdout}\n{stderr}"
    );
    None
}

/// A NIC called `name` on `node` with `queues` queues, added to `topology`
/// as discovery would report a real PCI NIC.
fn with_nic(mut topology: Topology, name: &str, node: Option<u32>, queues: u32) -> Topology {
    topology.interfaces.push(InterfaceLocality {
        name: name.to_string(),
        numa_node: node,
        queues,
    });
    topology
}

fn nic(name: &str, queues: &[u32]) -> PlanInterface {
    PlanInterface {
        name: name.to_string(),
        port: 0,
        queues: queues.to_vec(),
    }
}

/// The CPUs of `node`, flattened.
fn node_cpus(topology: &Topology, node: u32) -> BTreeSet<usize> {
    topology
        .numa_nodes
        .iter()
        .filter(|n| n.os_index == node)
        .flat_map(|n| &n.cores)
        .flat_map(|c| c.cpus.iter().copied())
        .collect()
}

/// Asserts no two workers share a physical core.
fn assert_one_worker_per_core(topology: &Topology, plan: &WorkerPlan) {
    let mut cores = BTreeSet::new();
    for worker in &plan.workers {
        let (node, core) = topology.core_of_cpu(worker.cpu).expect("worker CPU exists");
        assert!(
            cores.insert((node, core.os_index, core.cpus.clone())),
            "two workers on core {core:?}"
        );
    }
}

#[test]
fn synthetic_machine_is_discovered_as_described() {
    let Some(topology) = synthetic(
        "synthetic_machine_is_discovered_as_described",
        "pack:2 numa:2 core:4 pu:2",
    ) else {
        return;
    };
    assert_eq!(topology.packages, 2);
    assert_eq!(topology.numa_nodes.len(), 4);
    for node in &topology.numa_nodes {
        assert_eq!(node.cores.len(), 4, "node {}", node.os_index);
        assert!(node.cores.iter().all(|c| c.cpus.len() == 2));
    }
    let all: BTreeSet<usize> = (0..4).flat_map(|n| node_cpus(&topology, n)).collect();
    assert_eq!(all, (0..32).collect());
    // lo is invisible to a synthetic hwloc topology: sysfs supplies it.
    assert_eq!(
        topology.interfaces,
        vec![InterfaceLocality {
            name: "lo".to_string(),
            numa_node: None,
            queues: 1
        }]
    );
}

#[test]
fn nic_on_node_1_gets_only_node_1_cores() {
    let Some(topology) = synthetic(
        "nic_on_node_1_gets_only_node_1_cores",
        "pack:2 numa:2 core:4 pu:2",
    ) else {
        return;
    };
    let topology = with_nic(topology, "eth0", Some(1), 8);
    let local = node_cpus(&topology, 1);

    let four = plan(
        &topology,
        &[nic("eth0", &[0, 1, 2, 3])],
        &WorkerChoice::Auto,
    )
    .unwrap();
    assert_eq!(four.workers.len(), 4);
    assert!(four.workers.iter().all(|w| local.contains(&w.cpu)));
    assert!(four.workers.iter().all(|w| w.numa_node == Some(1)));
    assert_one_worker_per_core(&topology, &four);

    // Eight queues on four local cores: four workers, two queue indexes each.
    let eight = plan(
        &topology,
        &[nic("eth0", &(0..8).collect::<Vec<_>>())],
        &WorkerChoice::Auto,
    )
    .unwrap();
    assert_eq!(eight.workers.len(), 4);
    assert!(eight.workers.iter().all(|w| local.contains(&w.cpu)));
    assert!(eight.workers.iter().all(|w| w.queues.len() == 2));
    assert_one_worker_per_core(&topology, &eight);
    let served: BTreeSet<u32> = eight
        .workers
        .iter()
        .flat_map(|w| w.queues.iter().map(|q| q.2))
        .collect();
    assert_eq!(served, (0..8).collect());
}

#[test]
fn two_queues_share_the_only_core() {
    let Some(topology) = synthetic("two_queues_share_the_only_core", "numa:1 core:1 pu:2") else {
        return;
    };
    let topology = with_nic(topology, "eth0", Some(0), 2);
    let plan = plan(&topology, &[nic("eth0", &[0, 1])], &WorkerChoice::Auto).unwrap();
    assert_eq!(plan.workers.len(), 1);
    assert_eq!(plan.workers[0].cpu, 0);
    assert_eq!(
        plan.workers[0].queues,
        vec![("eth0".to_string(), 0, 0), ("eth0".to_string(), 0, 1)]
    );
}

#[test]
fn override_list_is_checked_against_the_machine() {
    let Some(topology) = synthetic(
        "override_list_is_checked_against_the_machine",
        "pack:2 numa:2 core:4 pu:2",
    ) else {
        return;
    };
    let topology = with_nic(topology, "eth0", Some(1), 2);
    let eth0 = [nic("eth0", &[0, 1])];

    let listed = plan(&topology, &eth0, &WorkerChoice::Cores(vec![3, 17])).unwrap();
    let placed: Vec<_> = listed
        .workers
        .iter()
        .map(|w| (w.cpu, w.numa_node))
        .collect();
    assert_eq!(placed, vec![(3, Some(0)), (17, Some(2))]);

    let unknown = plan(&topology, &eth0, &WorkerChoice::Cores(vec![40])).unwrap_err();
    assert!(
        matches!(unknown, PlanError::UnknownCpu { cpu: 40, .. }),
        "{unknown}"
    );
    // CPUs 2 and 3 are the two hardware threads of one synthetic core.
    let siblings = plan(&topology, &eth0, &WorkerChoice::Cores(vec![2, 3])).unwrap_err();
    assert_eq!(
        siblings,
        PlanError::SharedCore {
            first: 2,
            second: 3
        }
    );
}

#[test]
fn more_workers_than_queues_is_refused() {
    let Some(topology) = synthetic(
        "more_workers_than_queues_is_refused",
        "pack:2 numa:2 core:4 pu:2",
    ) else {
        return;
    };
    let topology = with_nic(topology, "eth0", Some(1), 2);
    let error = plan(
        &topology,
        &[nic("eth0", &[0, 1])],
        &WorkerChoice::Cores(vec![8, 10, 12]),
    )
    .unwrap_err();
    assert_eq!(
        error,
        PlanError::TooManyWorkers {
            workers: 3,
            queue_indexes: 2
        }
    );
    assert!(error.to_string().contains("list at most 2 CPUs"));
}

#[test]
fn render_shows_machine_interfaces_and_plan() {
    let Some(topology) = synthetic(
        "render_shows_machine_interfaces_and_plan",
        "pack:2 numa:2 core:4 pu:2",
    ) else {
        return;
    };
    let topology = with_nic(topology, "eth0", Some(1), 2);
    let text = topology.render();
    assert!(
        text.contains("2 package(s), 4 NUMA node(s), 16 core(s), 32 CPU(s)"),
        "{text}"
    );
    assert!(
        text.contains("node 1: 4 core(s): [8,9] [10,11] [12,13] [14,15]"),
        "{text}"
    );
    assert!(text.contains("interface lo: no NUMA locality"), "{text}");
    assert!(
        text.contains("interface eth0: NUMA node 1, 2 queue(s)"),
        "{text}"
    );

    let plan_text = plan(&topology, &[nic("eth0", &[0, 1])], &WorkerChoice::Auto)
        .unwrap()
        .render();
    assert!(
        plan_text.starts_with("worker plan: 2 worker(s)\n"),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("worker 0: cpu 8 (node 1) serves eth0(port 0) q0"),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("worker 1: cpu 10 (node 1) serves eth0(port 0) q1"),
        "{plan_text}"
    );
}

#[test]
fn the_real_machine_has_cores_and_loopback() {
    let topology = Topology::discover(&["lo"]).expect("discover this machine");
    assert!(topology.numa_nodes.iter().any(|n| !n.cores.is_empty()));
    assert_eq!(topology.interfaces[0].name, "lo");
    let missing = Topology::discover(&["xlb-no-such0"]).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("interface xlb-no-such0 does not exist"),
        "{missing}"
    );
}
