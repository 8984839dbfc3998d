//! SCTP across the cluster lab's nodes (docs/deployment.md, docs/architecture.md §5): a
//! multihomed association from a real usrsctp client, through the ECMP router and three
//! xlb nodes that replicate their association tables (`dataplane.sctp.sync`), to a real
//! usrsctp server, with its two paths (one per VIP) hashed to two different nodes (seen
//! in the router's frames; associations are started until ECMP does so). Every node
//! holds the association once its handshake crossed one of
//! them; the node that saw the INIT is killed with SIGKILL while the transfer runs, the
//! client moves to the association's second VIP, the killed node comes back (catching up
//! from its peers before it announces), and every message still arrives, once, at the
//! association's one backend.
//!
//! Needs root; fails (never skips) without it.

mod support;
#[path = "support/usrsctp.rs"]
mod usrsctp;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use usrsctp::{Peer, TSCTP_PORT};

/// The SCTP service's VIPs: the one the client connects to, and its second one.
const VIP: &str = "198.18.100.10";
const VIP2: &str = "198.18.101.10";
const BACKENDS: [&str; 3] = ["b1", "b2", "b3"];
const SYNC_PORT: u16 = 7600;
/// How long the client sends; the kill, the move and the return happen inside it.
const TRANSFER_SECONDS: u32 = 24;
const FINISH_GRACE: Duration = Duration::from_secs(25);
const MESSAGE_LENGTH: u32 = 1000;
/// Associations tried until one has its paths on two nodes (each does with about 2/3
/// odds).
const ATTEMPTS: u32 = 8;

/// Node `n`'s service table: the cluster's, an SCTP service on both VIPs, and SCTP sync
/// with the two other nodes.
fn node_config(n: usize, key: &Path) -> String {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.yaml"))
            .expect("config/cluster.yaml");
    let peers: Vec<String> = (1..=3)
        .filter(|&m| m != n)
        .map(|m| format!("198.18.1.2{m}:{SYNC_PORT}"))
        .collect();
    let sync = format!(
        "  sctp:\n    capacity: 1024\n    sync:\n      listen: 198.18.1.2{n}:{SYNC_PORT}\n      peers: [{}]\n      key_file: {}\n      full_resync: 2s\n",
        peers.join(", "),
        key.display()
    );
    assert!(base.contains("  sctp: { capacity: 1024 }\n"));
    let mut table = base.replace("  sctp: { capacity: 1024 }\n", &sync);
    table.push_str(&format!(
        "  - name: ngap\n    vips: [{VIP}, {VIP2}]\n    protocol: sctp\n    ports: [{TSCTP_PORT}]\n    forwarding: dsr\n    backends:\n      - {{ name: b1, address: 198.18.1.11 }}\n      - {{ name: b2, address: 198.18.1.12 }}\n      - {{ name: b3, address: 198.18.1.13 }}\n"
    ));
    table
}

/// The sum of a metric's series whose labels contain `filter`.
fn metric(scrape: &str, name: &str, filter: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn evidence(cluster: &Cluster, peers: &[&Peer]) -> String {
    let mut out = String::new();
    for peer in peers {
        out.push_str(&format!("--- {}\n{}\n", peer.name, peer.output()));
    }
    for n in 1..=3 {
        let log = cluster.log(n);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out.push_str(&format!("--- n{n} log (last lines)\n"));
        for line in tail.iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Starts a tsctp client to VIP and waits for its association: the client, its port,
/// the backend (index) that accepted it, and the node each of its two paths crossed (the
/// INIT's path to VIP; the HEARTBEATs' to VIP2, if any was seen) from the router's
/// frames of the association's first seconds.
fn associate(
    cluster: &Cluster,
    servers: &[Peer],
    macs: &[String],
    attempt: u32,
) -> (Peer, u16, usize, [Option<usize>; 2]) {
    let capture = cluster
        .ns_command("rt", "timeout")
        .args([
            "4", "tcpdump", "-i", "eth0", "-Q", "out", "-e", "-n", "-l", "sctp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tcpdump");
    std::thread::sleep(Duration::from_millis(500));
    let seen: Vec<usize> = servers
        .iter()
        .map(|s| usrsctp::tsctp_accepted(&s.output()).len())
        .collect();
    let client = usrsctp::tsctp_client(
        cluster,
        &format!("client-{attempt}"),
        VIP,
        TRANSFER_SECONDS,
        MESSAGE_LENGTH,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let (backend, from) = loop {
        let new = servers.iter().enumerate().find_map(|(i, s)| {
            let accepted = usrsctp::tsctp_accepted(&s.output());
            accepted.get(seen[i]).map(|from| (i, from.clone()))
        });
        if let Some(found) = new {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no backend accepted the association\n{}",
            evidence(cluster, &[&client])
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let port: u16 = from
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("ADDR:PORT");
    let frames = capture.wait_with_output().expect("tcpdump");
    let mut nodes = [None, None];
    // "SRC > DSTMAC, ethertype IPv4 (0x0800), length N: 198.18.0.1x.PORT > VIP.5001: sctp"
    for line in String::from_utf8_lossy(&frames.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(node) = words
            .get(3)
            .and_then(|mac| macs.iter().position(|m| mac.trim_end_matches(',') == m))
        else {
            continue;
        };
        let to = |vip: &str| format!("{vip}.{TSCTP_PORT}:");
        if !words.iter().any(|w| w.ends_with(&format!(".{port}"))) {
            continue;
        }
        for (slot, vip) in [VIP, VIP2].iter().enumerate() {
            if words.contains(&to(vip).as_str()) && nodes[slot].is_none() {
                nodes[slot] = Some(node + 1);
            }
        }
    }
    (client, port, backend, nodes)
}

#[test]
fn a_multihomed_association_survives_the_death_and_return_of_its_init_node() {
    let key = std::env::temp_dir().join(format!("xlb-cluster-sync-{}.key", std::process::id()));
    std::fs::write(&key, b"the cluster lab's sync secret, 32").expect("key file");
    let mut cluster = Cluster::up("sctp", &node_config(1, &key));
    let configs: Vec<std::path::PathBuf> = (1..=3)
        .map(|n| {
            let path = cluster.work.join(format!("n{n}.yaml"));
            std::fs::write(&path, node_config(n, &key)).expect("node config");
            path
        })
        .collect();
    for n in 1..=3 {
        cluster.start_node_with(n, &configs[n - 1]);
    }
    for vip in [VIP, VIP2] {
        cluster.wait_next_hops(vip, 3, Duration::from_secs(20));
    }
    let servers: Vec<Peer> = BACKENDS
        .iter()
        .map(|b| usrsctp::tsctp_server(&cluster, b))
        .collect();
    // The backends' own addresses are paths too (their INIT-ACKs list them) and bypass
    // the nodes: close them, so every path of the association crosses the cluster.
    cluster.ns_output(
        "cl",
        "iptables",
        &[
            "-A",
            "OUTPUT",
            "-p",
            "sctp",
            "-d",
            "198.18.1.0/24",
            "-j",
            "DROP",
        ],
    );

    // ECMP hashes each path on its own: start associations (each from a new random
    // port) until one has its two paths on different nodes.
    let macs: Vec<String> = (1..=3)
        .map(|n| {
            cluster
                .ns_output(&format!("n{n}"), "cat", &["/sys/class/net/eth0/address"])
                .trim()
                .to_string()
        })
        .collect();
    let (mut client, client_port, backend, init_node) = (1..=ATTEMPTS)
        .find_map(|attempt| {
            let (mut client, port, backend, nodes) = associate(&cluster, &servers, &macs, attempt);
            eprintln!(
                "attempt {attempt}: port {port}, {VIP} via {:?}, {VIP2} via {:?}",
                nodes[0], nodes[1]
            );
            match nodes {
                [Some(init), Some(other)] if init != other => Some((client, port, backend, init)),
                _ => {
                    client.wait(Duration::ZERO);
                    None
                }
            }
        })
        .unwrap_or_else(|| panic!("no association of {ATTEMPTS} had its paths on two nodes"));

    // Every node holds the association: the one whose packets made it, the others by
    // adoption.
    cluster.wait_for(
        Duration::from_secs(5),
        "the association on every node",
        |c| (1..=3).all(|n| metric(&c.scrape(n), "xlb_sctp_associations", "") >= 1.0),
    );
    let adopted = metric(
        &cluster.scrape(init_node),
        "xlb_sctp_sync_adopted_created_total",
        "",
    );
    let others_adopted = (1..=3).filter(|&n| n != init_node).all(|n| {
        metric(
            &cluster.scrape(n),
            "xlb_sctp_sync_adopted_created_total",
            "",
        ) >= 1.0
    });
    assert!(
        others_adopted,
        "the other nodes did not adopt the association"
    );
    eprintln!(
        "n{init_node} saw the INIT and had adopted {adopted} association(s) from earlier attempts"
    );

    // usrsctp confirms the second VIP with a HEARTBEAT within ~2 s of COMM_UP.
    std::thread::sleep(Duration::from_secs(4));
    // The association's first packets on its other path (usrsctp's HEARTBEAT and
    // HEARTBEAT-ACKs, within a millisecond of the COOKIE-ECHO) may beat the replication
    // to that path's node: dropped, counted, and repeated by SCTP's path verification.
    // From here on the association is on every node, and no node may meet a packet of
    // it unknown.
    let unknown = |cluster: &Cluster, n: usize| {
        metric(
            &cluster.scrape(n),
            "xlb_drops_total",
            "reason=\"sctp_unknown_association\"",
        )
    };
    let before: Vec<f64> = (1..=3).map(|n| unknown(&cluster, n)).collect();
    cluster.kill_node(init_node);
    cluster.wait_next_hops(VIP, 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    // The INIT's VIP goes dark for the client: the association moves to its second VIP,
    // whichever node ECMP picks for it.
    cluster.ns_output(
        "cl",
        "iptables",
        &["-A", "OUTPUT", "-p", "sctp", "-d", VIP, "-j", "DROP"],
    );
    std::thread::sleep(Duration::from_secs(4));
    // The killed node returns: it takes its peers' tables before it serves and announces.
    cluster.start_node_with(init_node, &configs[init_node - 1]);
    let back = cluster.scrape(init_node);
    assert_eq!(metric(&back, "xlb_sctp_sync_caught_up", ""), 1.0);
    assert!(
        metric(&back, "xlb_sctp_associations", "") >= 1.0,
        "n{init_node} came back without the association:\n{}",
        evidence(&cluster, &[&client])
    );
    cluster.wait_next_hops(VIP2, 3, Duration::from_secs(10));

    let status = client.wait(Duration::from_secs(u64::from(TRANSFER_SECONDS)) + FINISH_GRACE);
    let all: Vec<&Peer> = std::iter::once(&client).chain(servers.iter()).collect();
    assert!(
        status.is_some_and(|s| s.success()),
        "the association did not complete ({status:?})\n{}",
        evidence(&cluster, &all)
    );
    let (sent, length) = usrsctp::tsctp_sent(&client.output())
        .unwrap_or_else(|| panic!("no summary from tsctp\n{}", evidence(&cluster, &all)));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let received = usrsctp::tsctp_received(&servers[backend].output());
        if let Some(r) = received.iter().find(|r| r.messages == sent) {
            assert_eq!(r.bytes, sent * length);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not receive all {sent} messages\n{}",
            BACKENDS[backend],
            evidence(&cluster, &all)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, server) in servers.iter().enumerate() {
        if i != backend {
            assert!(
                !usrsctp::tsctp_accepted(&server.output())
                    .iter()
                    .any(|from| from.ends_with(&format!(":{client_port}"))),
                "{} saw the association too\n{}",
                BACKENDS[i],
                evidence(&cluster, &all)
            );
        }
    }
    // After the kill, no node met a packet of the association it did not know (the
    // restarted node's counters start again from zero).
    let after: Vec<f64> = (1..=3).map(|n| unknown(&cluster, n)).collect();
    for n in 1..=3 {
        let since = if n == init_node {
            after[n - 1]
        } else {
            after[n - 1] - before[n - 1]
        };
        assert_eq!(
            since,
            0.0,
            "n{n} dropped packets of an association it did not know (before the kill: {before:?}, at the end: {after:?})\n{}",
            evidence(&cluster, &all)
        );
    }
    eprintln!(
        "association on {}: {sent} messages; INIT through n{init_node}, killed and restarted mid-transfer; unknown-tag drops before the kill {before:?}",
        BACKENDS[backend]
    );
}
