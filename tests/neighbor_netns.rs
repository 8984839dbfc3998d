//! Neighbour resolution against real kernels: two network namespaces joined
//! by a veth pair on 198.18.7.0/24 and 2001:db8:7::/64. Each case builds its
//! own pair, then re-runs this test binary inside namespace A
//! (`ip netns exec`) so the netlink and probe traffic stay there.
//!
//! Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN for namespaces); without it
//! every case fails and says so.

use std::net::IpAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use xlb::control::neighbor::{interface_addrs, interface_mac, resolve, NeighborError};

/// Set in the child to the name of the one case it runs.
const CHILD_CASE: &str = "XLB_NEIGHBOR_CASE";
/// Passed to the child: MAC of its own veth end.
const LOCAL_MAC: &str = "XLB_NEIGHBOR_LOCAL_MAC";
/// Passed to the child: MAC of the peer's veth end.
const PEER_MAC: &str = "XLB_NEIGHBOR_PEER_MAC";
/// veth end in namespace A (the resolver's side).
const LOCAL_IF: &str = "xlb0";
/// veth end in namespace B (the peer).
const PEER_IF: &str = "xlb1";
const LOCAL_V4: &str = "198.18.7.1";
const PEER_V4: &str = "198.18.7.2";
const LOCAL_V6: &str = "2001:db8:7::1";
const PEER_V6: &str = "2001:db8:7::2";

/// Distinguishes the namespace pairs of cases running in parallel.
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Run a command, panicking with its output if it fails.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The effective UID, from /proc (no libc call needed).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A namespace pair, deleted (with its veth) on drop.
struct NamespacePair {
    /// Namespace the resolver runs in.
    local: String,
    /// Namespace holding the peer.
    peer: String,
}

impl NamespacePair {
    fn create() -> Self {
        assert_eq!(
            effective_uid(),
            Some(0),
            "tests/neighbor_netns.rs needs root to create network namespaces; \
             run it as root (e.g. `sudo -E cargo test --test neighbor_netns`)"
        );
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let pair = NamespacePair {
            local: format!("xlb-nbA-{id}"),
            peer: format!("xlb-nbB-{id}"),
        };
        run("ip", &["netns", "add", &pair.local]);
        run("ip", &["netns", "add", &pair.peer]);
        run(
            "ip",
            &[
                "link",
                "add",
                LOCAL_IF,
                "netns",
                &pair.local,
                "type",
                "veth",
                "peer",
                "name",
                PEER_IF,
                "netns",
                &pair.peer,
            ],
        );
        for (ns, ifname, v4, v6) in [
            (&pair.local, LOCAL_IF, LOCAL_V4, LOCAL_V6),
            (&pair.peer, PEER_IF, PEER_V4, PEER_V6),
        ] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname],
            );
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    ifname,
                    "nodad",
                ],
            );
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
        }
        pair
    }

    /// MAC of `ifname` in namespace `ns`, as `ip link` prints it.
    fn mac(ns: &str, ifname: &str) -> String {
        let output = run("ip", &["-n", ns, "-j", "link", "show", ifname]);
        let links: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("ip -j link prints JSON");
        links[0]["address"]
            .as_str()
            .expect("link has an address")
            .to_string()
    }
}

impl Drop for NamespacePair {
    fn drop(&mut self) {
        for ns in [&self.local, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// In the parent: build a namespace pair, run `case` inside its local side,
/// assert it passed, return `false`. In that child: return `true`.
fn in_namespace(case: &str) -> bool {
    if std::env::var(CHILD_CASE).as_deref() == Ok(case) {
        return true;
    }
    let pair = NamespacePair::create();
    let exe = std::env::current_exe().expect("path of this test binary");
    let exe = exe.to_str().expect("UTF-8 path");
    let output = Command::new("ip")
        .args(["netns", "exec", &pair.local, exe])
        .args(["--exact", case, "--test-threads", "1", "--nocapture"])
        .env(CHILD_CASE, case)
        .env(LOCAL_MAC, NamespacePair::mac(&pair.local, LOCAL_IF))
        .env(PEER_MAC, NamespacePair::mac(&pair.peer, PEER_IF))
        .output()
        .expect("spawn the test binary in the namespace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "case {case} failed inside namespace {}:\n{stdout}\n{stderr}",
        pair.local
    );
    false
}

/// `aa:bb:..` as printed by `ip link`.
fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn env_mac(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"))
}

/// `ip neigh show ADDR dev LOCAL_IF` in the current namespace.
fn neighbour_entry(addr: &str) -> String {
    let output = run("ip", &["neigh", "show", addr, "dev", LOCAL_IF]);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Resolve a peer address that has no neighbour entry yet: the probe must
/// fill it, and the answer must carry both veth MACs.
fn assert_resolves_peer(peer: &str) {
    assert_eq!(
        neighbour_entry(peer),
        "",
        "the entry should be missing before resolve"
    );
    let addr: IpAddr = peer.parse().unwrap();
    let next_hop = resolve(addr, Duration::from_secs(5)).expect("peer resolves");
    assert_eq!(next_hop.ifname, LOCAL_IF);
    assert_eq!(mac_text(next_hop.src_mac), env_mac(LOCAL_MAC));
    assert_eq!(mac_text(next_hop.dst_mac), env_mac(PEER_MAC));
    assert!(next_hop.ifindex > 0);
    assert!(
        neighbour_entry(peer).contains(&env_mac(PEER_MAC)),
        "the kernel's table now holds the peer"
    );
    // Second call: the entry is there, no probe needed.
    assert_eq!(resolve(addr, Duration::from_millis(100)).unwrap(), next_hop);
}

#[test]
fn resolves_ipv4_peer_after_probing() {
    if in_namespace("resolves_ipv4_peer_after_probing") {
        assert_resolves_peer(PEER_V4);
    }
}

#[test]
fn resolves_ipv6_peer_after_probing() {
    if in_namespace("resolves_ipv6_peer_after_probing") {
        assert_resolves_peer(PEER_V6);
    }
}

#[test]
fn interface_mac_and_addrs_match_ip_link() {
    if in_namespace("interface_mac_and_addrs_match_ip_link") {
        assert_eq!(
            mac_text(interface_mac(LOCAL_IF).unwrap()),
            env_mac(LOCAL_MAC)
        );
        let addrs = interface_addrs(LOCAL_IF).unwrap();
        for expected in [LOCAL_V4, LOCAL_V6] {
            let expected: IpAddr = expected.parse().unwrap();
            assert!(
                addrs.contains(&expected),
                "{expected} missing from {addrs:?}"
            );
        }
        assert!(matches!(
            interface_mac("xlb-missing0"),
            Err(NeighborError::InterfaceMissing { .. })
        ));
        assert!(matches!(
            interface_mac("lo"),
            Err(NeighborError::NotEthernet { .. })
        ));
        // The AF_XDP layer's own lookup (the generator's source MAC) agrees.
        assert_eq!(
            mac_text(xlb::xsk::interface_mac(LOCAL_IF).unwrap()),
            env_mac(LOCAL_MAC)
        );
        assert!(xlb::xsk::interface_mac("xlb-missing0").is_err());
        let lo = xlb::xsk::interface_mac("lo").unwrap_err();
        assert!(lo.to_string().contains("not an Ethernet interface"), "{lo}");
    }
}

#[test]
fn unreachable_addresses_are_clear_errors() {
    if in_namespace("unreachable_addresses_are_clear_errors") {
        let off_link: IpAddr = "198.18.9.9".parse().unwrap();
        let error = resolve(off_link, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(error, NeighborError::NoRoute { .. }), "{error}");
        assert!(
            error.to_string().starts_with("no route to 198.18.9.9"),
            "{error}"
        );

        let off_link_v6: IpAddr = "2001:db8:9::9".parse().unwrap();
        let error = resolve(off_link_v6, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(error, NeighborError::NoRoute { .. }), "{error}");

        // On the link's subnet, but nobody answers ARP.
        let silent: IpAddr = "198.18.7.99".parse().unwrap();
        let error = resolve(silent, Duration::from_millis(1500)).unwrap_err();
        assert!(matches!(error, NeighborError::Unresolved { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.starts_with("unresolved: no ARP/NDP answer for next hop 198.18.7.99"),
            "{message}"
        );
        assert!(message.contains(&format!("on {LOCAL_IF}")), "{message}");

        let own: IpAddr = LOCAL_V4.parse().unwrap();
        let error = resolve(own, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(error, NeighborError::LocalAddress { .. }),
            "{error}"
        );
    }
}
