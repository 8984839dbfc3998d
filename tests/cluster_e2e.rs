//! Several xlb nodes behind an ECMP router (docs/deployment.md), in the cluster lab of
//! `scripts/cluster.sh`: each node's BIRD announces the VIPs xlb holds on its
//! announcement device, the router spreads flows over the nodes by their L4 hash, and
//! every node runs the same file, so a flow the router moves to another node reaches the
//! same backend. Long TCP transfers count the connections a node's death, drain or
//! return breaks.
//!
//! The lab tests need root and fail without it (never skipped); one runs at a time.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::cluster::{Cluster, Stream};

const VIP4: &str = "198.18.100.10";
const VIP6: &str = "2001:db8:100::10";
/// Node N's address on the cluster segment: the router's next hop towards it.
fn node_address(n: usize) -> String {
    format!("198.18.1.2{n}")
}

fn cluster_table() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.yaml"))
        .expect("config/cluster.yaml")
}

/// The backend `xlb explain` picks for a TCP flow under the table at `config`.
fn explain(config: &Path, source: &str, port: u16, dst: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xlb"))
        .args(["explain", "-c"])
        .arg(config)
        .args(["tcp", &format!("{source}:{port}"), dst])
        .output()
        .expect("run xlb explain");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "xlb explain: {text}");
    // "service web -> backend b2 (198.18.1.12) via dsr"
    text.split_whitespace()
        .nth(4)
        .unwrap_or_else(|| panic!("no backend in {text:?}"))
        .to_string()
}

fn broken(streams: &[Stream]) -> Vec<&Stream> {
    streams.iter().filter(|s| s.broken.is_some()).collect()
}

/// Starts all three nodes and waits until the router holds both VIPs over all three.
fn three_nodes(cluster: &mut Cluster) {
    for n in 1..=3 {
        cluster.start_node(n);
    }
    for vip in [VIP4, VIP6] {
        cluster.wait_next_hops(vip, 3, Duration::from_secs(15));
    }
}

/// The node (1..=3) each stream crosses now, in the streams' order; 0 for a stream the
/// capture did not see (a broken one).
fn nodes(cluster: &Cluster, endpoints: &[(String, u16)]) -> Vec<usize> {
    let seen = cluster.nodes_of_flows(VIP4);
    endpoints
        .iter()
        .map(|endpoint| seen.get(endpoint).copied().unwrap_or(0))
        .collect()
}

#[test]
fn nodes_with_the_same_file_build_the_same_tables() {
    // Another node's copy of the file, with services and backends listed in another
    // order: Maglev hashes backends by name, so the order must not matter either.
    let scratch = std::env::temp_dir().join(format!("xlb-cluster-tables-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let same = scratch.join("same.yaml");
    std::fs::write(&same, cluster_table()).expect("write");
    let reordered = scratch.join("reordered.yaml");
    let table = cluster_table()
        .replace("      - { name: b1, address: 198.18.1.11 }\n", "")
        .replace(
            "      - { name: b3, address: 198.18.1.13 }\n",
            "      - { name: b3, address: 198.18.1.13 }\n      - { name: b1, address: 198.18.1.11 }\n",
        );
    assert_ne!(table, cluster_table(), "the reordering applies");
    std::fs::write(&reordered, table).expect("write");
    let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.yaml");
    let mut seen = BTreeSet::new();
    for port in 0..64u16 {
        let source = format!("198.18.0.1{}", port % 10);
        let port = 40000 + port * 7;
        // Each answer comes from a process of its own, as on separate nodes.
        let answers: Vec<String> = [&original, &same, &reordered]
            .iter()
            .map(|config| explain(config, &source, port, "198.18.100.10:80"))
            .collect();
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{source}:{port} maps to {answers:?} in separate processes"
        );
        seen.insert(answers[0].clone());
    }
    assert_eq!(seen.len(), 3, "flows reach every backend: {seen:?}");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn the_router_holds_each_vip_over_every_node_that_can_serve_it() {
    let mut cluster = Cluster::up("hops", &cluster_table());
    three_nodes(&mut cluster);
    let hops: Vec<String> = (1..=3).map(node_address).collect();
    assert_eq!(cluster.next_hops(VIP4), hops);
    assert_eq!(cluster.next_hops(VIP6).len(), 3);
    let metrics = cluster.scrape(1);
    assert!(
        metrics.contains("xlb_vip_announced{vip=\"198.18.100.10\"} 1"),
        "{metrics}"
    );

    // Health loss: with every backend down no node can serve, and every node withdraws.
    for n in 1..=3 {
        cluster.stop_backend(n);
    }
    let took = cluster.wait_next_hops(VIP4, 0, Duration::from_secs(10));
    eprintln!("every backend down: VIP withdrawn by all nodes after {took:?}");
    assert!(cluster
        .scrape(2)
        .contains("xlb_vip_announced{vip=\"198.18.100.10\"} 0"));
    for n in 1..=3 {
        cluster.start_backend(n);
    }
    cluster.wait_next_hops(VIP4, 3, Duration::from_secs(10));

    // Drain by reload: `announce.enabled: false` withdraws while xlb keeps running.
    std::fs::write(
        cluster.config_path(),
        cluster_table().replace("  enabled: true", "  enabled: false"),
    )
    .expect("rewrite");
    cluster.signal_node(3, "-HUP");
    cluster.wait_next_hops(VIP4, 2, Duration::from_secs(5));
    assert!(!cluster.next_hops(VIP4).contains(&node_address(3)));
    assert!(
        cluster.log(3).contains("announcement off"),
        "{}",
        cluster.log(3)
    );
}

#[test]
fn sigkill_of_a_node_breaks_no_connection() {
    let mut cluster = Cluster::up("kill", &cluster_table());
    three_nodes(&mut cluster);
    let streams = cluster.streams(VIP4, 80, 32, 16);
    std::thread::sleep(Duration::from_secs(3));
    let before = nodes(&cluster, &streams.endpoints);
    let on_killed = before.iter().filter(|n| **n == 2).count();
    assert!(
        on_killed > 0,
        "no stream crossed n2, so its death tests nothing: {before:?}"
    );
    cluster.kill_node(2);
    let took = cluster.wait_next_hops(VIP4, 2, Duration::from_secs(5));
    let after = nodes(&cluster, &streams.endpoints);
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    eprintln!(
        "SIGKILL: withdrawn after {took:?}; {moved} of 32 streams moved node ({on_killed} from n2)"
    );
    let ended = streams.finish();
    assert_eq!(
        broken(&ended),
        Vec::<&Stream>::new(),
        "no connection breaks"
    );
}

#[test]
fn sigterm_drains_a_node_without_breaking_connections() {
    let mut cluster = Cluster::up("drain", &cluster_table());
    three_nodes(&mut cluster);
    let streams = cluster.streams(VIP4, 80, 32, 12);
    std::thread::sleep(Duration::from_secs(2));
    let before = nodes(&cluster, &streams.endpoints);
    assert!(before.contains(&1), "no stream crossed n1: {before:?}");
    cluster.signal_node(1, "-TERM");
    let took = cluster.wait_next_hops(VIP4, 2, Duration::from_secs(2));
    eprintln!("SIGTERM: withdrawn after {took:?}, before the 2s drain ends");
    let status = cluster.stop_node(1, Duration::from_secs(6));
    assert!(status.success(), "xlb exits 0 after draining: {status}");
    assert!(
        cluster.log(1).contains("every VIP withdrawn; draining"),
        "{}",
        cluster.log(1)
    );
    let ended = streams.finish();
    assert_eq!(
        broken(&ended),
        Vec::<&Stream>::new(),
        "no connection breaks"
    );
}

#[test]
fn a_restarted_node_rejoins_without_breaking_connections() {
    let mut cluster = Cluster::up("join", &cluster_table());
    cluster.start_node(1);
    cluster.start_node(2);
    cluster.wait_next_hops(VIP4, 2, Duration::from_secs(15));
    let streams = cluster.streams(VIP4, 80, 32, 14);
    std::thread::sleep(Duration::from_secs(2));
    cluster.start_node(3);
    let took = cluster.wait_next_hops(VIP4, 3, Duration::from_secs(10));
    let after = nodes(&cluster, &streams.endpoints);
    let joined = after.iter().filter(|n| **n == 3).count();
    eprintln!("n3 announced {took:?} after it started; {joined} of 32 streams moved to it");
    assert!(
        joined > 0,
        "no stream moved to n3, so its return tests nothing: {after:?}"
    );
    let ended = streams.finish();
    assert_eq!(
        broken(&ended),
        Vec::<&Stream>::new(),
        "no connection breaks"
    );
}

/// What the issue asks to measure, not a pass/fail on a ratio: when the backend set
/// changes (b3 joins on every node) and ECMP then moves flows (a node dies), a moved
/// flow lands on a node with no record of it, whose Maglev now picks by the new table;
/// it breaks exactly when the new table gives its tuple another backend. Flows that
/// stay on their node keep their tracked backend. The test checks that mechanism flow
/// by flow and prints the figure (docs/deployment.md quotes it).
#[test]
fn moved_flows_after_a_backend_set_change_break_where_maglev_moved_them() {
    let two = cluster_table().replace("      - { name: b3, address: 198.18.1.13 }\n", "");
    let mut cluster = Cluster::up("moved", &two);
    three_nodes(&mut cluster);
    let streams = cluster.streams(VIP4, 80, 48, 18);
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(cluster.config_path(), cluster_table()).expect("rewrite");
    for n in 1..=3 {
        cluster.signal_node(n, "-HUP");
    }
    cluster.wait_for(Duration::from_secs(10), "every node's reload", |c| {
        (1..=3).all(|n| c.log(n).contains("reload applied"))
    });
    let before = nodes(&cluster, &streams.endpoints);
    cluster.kill_node(1);
    cluster.wait_next_hops(VIP4, 2, Duration::from_secs(5));
    // Moved flows that break stop sending: give the rest time to retransmit first.
    std::thread::sleep(Duration::from_secs(1));
    let after = nodes(&cluster, &streams.endpoints);
    let ended = streams.finish();

    let (mut moved, mut moved_broken, mut predicted) = (0, 0, 0);
    for ((stream, b), a) in ended.iter().zip(&before).zip(&after) {
        assert_ne!(*b, 0, "every stream was seen before the kill: {stream:?}");
        if b == a {
            assert_eq!(
                stream.broken, None,
                "a flow that stayed on its node keeps its backend"
            );
            continue;
        }
        // Moved, or broken and silent since (0): either way it left its node.
        moved += 1;
        let now = explain(
            &cluster.config_path(),
            &stream.source,
            stream.port,
            "198.18.100.10:80",
        );
        let breaks = now != stream.backend;
        predicted += usize::from(breaks);
        moved_broken += usize::from(stream.broken.is_some());
        assert_eq!(
            stream.broken.is_some(),
            breaks,
            "{}:{} moved n{b} -> n{a}; it was on {} and the new table says {now}: {:?}",
            stream.source,
            stream.port,
            stream.backend,
            stream.broken
        );
    }
    assert!(moved > 0, "no stream moved node: {before:?} -> {after:?}");
    eprintln!(
        "backend set 2 -> 3, then a node killed: {moved} of {} streams moved node, \
         {moved_broken} of them broke ({predicted} predicted by the new Maglev table)",
        ended.len()
    );
}
