//! End to end: `xlb run` on a veth in the namespace lab, with real kernel TCP/UDP
//! stacks as clients and backends, scapy-made SCTP, and tcpdump captures at the
//! backends. Needs root; fails (never skips) without it.

mod support;

use std::net::IpAddr;

use support::lab::{client_sources, Lab};
use xlb::wire::headers::{self, L3};

/// The lab's service table with `extra` services appended; the dataplane section
/// lets each test pick workers and queues.
fn config(workers: &str, extra: &str) -> String {
    format!(
        r#"version: 1
dataplane:
  interfaces:
    - {{ name: eth0, queues: all, xdp_mode: auto, zero_copy: auto }}
  workers: {workers}
  flow_table: {{ capacity: 65536 }}
  sctp: {{ capacity: 1024, linger: 500ms }}
  encapsulation: {{ source_v4: 198.18.0.2, source_v6: "2001:db8::2", gue_port: 6080 }}
  nat: {{ addresses: [198.18.0.3], port_range: [20000, 40000] }}
services:
  - name: web
    vips: [198.18.100.10, "2001:db8:100::10"]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - {{ name: b1, address: 198.18.1.11, weight: 100 }}
      - {{ name: b2, address: 198.18.1.12, weight: 100 }}
      - {{ name: b3, address: 198.18.1.13, weight: 200 }}
  - name: ngap
    vips: [198.18.100.20, 198.18.101.20]
    protocol: sctp
    ports: [38412]
    forwarding: dsr
    backends:
      - {{ name: b1, address: 198.18.1.11 }}
      - {{ name: b2, address: 198.18.1.12 }}
      - {{ name: b3, address: 198.18.1.13 }}
{extra}"#
    )
}

const NAT_SERVICES: &str = r#"  - name: web-nat
    vips: [198.18.100.30]
    protocol: tcp
    ports: [8080]
    forwarding: nat
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
  - name: dns-nat
    vips: [198.18.100.30]
    protocol: udp
    ports: [5353]
    forwarding: nat
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
"#;

const TUNNEL_SERVICES: &str = r#"  - name: tunnel-ipip
    vips: [198.18.100.40]
    protocol: udp
    ports: [9000]
    forwarding: ipip
    backends:
      - { name: b1, address: 198.18.1.11 }
  - name: tunnel-gue
    vips: [198.18.100.41]
    protocol: udp
    ports: [9000]
    forwarding: gue
    backends:
      - { name: b2, address: 198.18.1.12 }
"#;

fn assert_no_xdp(lab: &Lab) {
    let link = lab.ns_output("lb", "ip", &["link", "show", "eth0"]);
    assert!(!link.contains("xdp"), "XDP program still attached: {link}");
}

#[test]
fn tcp_dsr_spreads_ipv4_and_ipv6_connections_by_weight() {
    let mut lab = Lab::up("dsr", 1);
    lab.start_xlb(&config("auto", ""));
    for ipv6 in [false, true] {
        let vip = if ipv6 {
            "2001:db8:100::10"
        } else {
            "198.18.100.10"
        };
        let summary = lab.client("tcp", vip, 80, 400, &client_sources(ipv6));
        // A connection whose packets reached two backends would be reset: every
        // connection completing shows each stayed on one backend.
        assert_eq!(summary.failed, 0, "{vip}: {summary:?}\n{}", lab.log());
        assert_eq!(summary.answered(), 400);
        let (b1, b2, b3) = (
            summary.share("b1"),
            summary.share("b2"),
            summary.share("b3"),
        );
        assert!(
            b1 > 0.12 && b2 > 0.12,
            "{vip}: light backends starved: {summary:?}"
        );
        assert!(
            (0.35..0.65).contains(&b3),
            "{vip}: weight 200 of 400 got {b3}: {summary:?}"
        );
    }
    assert!(lab.stop_xlb().success(), "{}", lab.log());
    assert_no_xdp(&lab);
}

#[test]
fn nat_replies_return_through_xlb_to_the_client() {
    let mut lab = Lab::up("nat", 1);
    lab.start_xlb(&config("auto", NAT_SERVICES));
    let tcp = lab.client("tcp", "198.18.100.30", 8080, 150, &client_sources(false));
    assert_eq!(tcp.failed, 0, "{tcp:?}\n{}", lab.log());
    assert!(
        tcp.answers.len() >= 2,
        "NAT connections all went to one backend: {tcp:?}"
    );
    let udp = lab.client("udp", "198.18.100.30", 5353, 150, &client_sources(false));
    assert_eq!(udp.failed, 0, "{udp:?}\n{}", lab.log());
    assert!(lab.stop_xlb().success());
}

#[test]
fn ipip_and_gue_frames_carry_outer_and_inner_headers() {
    let mut lab = Lab::up("tun", 1);
    lab.start_xlb(&config("auto", TUNNEL_SERVICES));
    lab.capture("b1", "ip proto 4");
    lab.capture("b2", "udp port 6080");
    // Datagrams into the tunnels; the backends have no tunnel devices, so nothing
    // answers: the captures are the evidence.
    let sources = vec!["198.18.0.10".to_string()];
    lab.client("udp", "198.18.100.40", 9000, 3, &sources);
    lab.client("udp", "198.18.100.41", 9000, 3, &sources);
    let captures = lab.finish_captures();
    let b1 = &captures
        .iter()
        .find(|(b, _)| b == "b1")
        .expect("b1 captured")
        .1;
    let b2 = &captures
        .iter()
        .find(|(b, _)| b == "b2")
        .expect("b2 captured")
        .1;
    assert!(
        !b1.is_empty() && !b2.is_empty(),
        "no encapsulated frames: {}",
        lab.log()
    );
    let client: IpAddr = "198.18.0.10".parse().unwrap();
    for frame in b1 {
        let outer = headers::parse(frame).expect("outer parses");
        assert_eq!((outer.l3, outer.l4_proto), (L3::Ipv4, 4), "IPIP outer");
        assert_eq!(outer.src, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(outer.dst, "198.18.1.11".parse::<IpAddr>().unwrap());
        let inner = inner_ip(frame, outer.l4_offset as usize);
        assert_eq!(inner.src, client);
        assert_eq!(inner.dst, "198.18.100.40".parse::<IpAddr>().unwrap());
        assert_eq!(inner.dst_port, 9000);
    }
    for frame in b2 {
        let outer = headers::parse(frame).expect("outer parses");
        assert_eq!(
            (outer.l4_proto, outer.dst_port),
            (17, 6080),
            "GUE outer UDP"
        );
        assert_eq!(outer.dst, "198.18.1.12".parse::<IpAddr>().unwrap());
        assert!(
            outer.src_port >= 0xC000,
            "GUE source port from the flow hash"
        );
        // GUE variant 0 header: 4 bytes, proto 4 (IPv4 inside).
        let gue = outer.l4_offset as usize + 8;
        assert_eq!(frame[gue] >> 6, 0, "GUE version 0");
        assert_eq!(frame[gue + 1], 4, "GUE carries IPv4");
        let inner = inner_ip(frame, gue + 4);
        assert_eq!(inner.src, client);
        assert_eq!(inner.dst, "198.18.100.41".parse::<IpAddr>().unwrap());
    }
    assert!(lab.stop_xlb().success());
}

/// Parses the IP packet at `offset` of a frame by giving it a fake Ethernet header.
fn inner_ip(frame: &[u8], offset: usize) -> headers::Headers {
    let mut fake = vec![0u8; 12];
    let ethertype: [u8; 2] = if frame[offset] >> 4 == 6 {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    };
    fake.extend_from_slice(&ethertype);
    fake.extend_from_slice(&frame[offset..]);
    headers::parse(&fake).expect("inner packet parses")
}

/// SCTP packets (vtag, source, destination) each backend received.
fn sctp_seen(captures: &[(String, Vec<Vec<u8>>)]) -> Vec<(String, u32, IpAddr, IpAddr)> {
    let mut seen = Vec::new();
    for (backend, frames) in captures {
        for frame in frames {
            let Ok(h) = headers::parse(frame) else {
                continue;
            };
            if h.l4_proto != 132 {
                continue;
            }
            let at = h.l4_offset as usize + 4;
            let vtag = u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
            seen.push((backend.clone(), vtag, h.src, h.dst));
        }
    }
    seen
}

#[test]
fn sctp_multihomed_association_stays_on_one_backend() {
    let mut lab = Lab::up("sctp", 2);
    lab.start_xlb(&config("auto", ""));
    for b in ["b1", "b2", "b3"] {
        lab.capture(b, "sctp");
    }
    lab.sctp(&[
        "init,198.18.0.10,5000,198.18.100.20,38412,0x11111111,198.18.0.11",
        "cookie,198.18.0.10,5000,198.18.100.20,38412,0xb0b0b0b0",
        "data,198.18.0.10,5000,198.18.100.20,38412,0xb0b0b0b0,first-path",
        "heartbeat,198.18.0.11,5000,198.18.101.20,38412,0xb0b0b0b0",
        "data,198.18.0.11,5000,198.18.101.20,38412,0xb0b0b0b0,second-path",
    ]);
    let mut others = Vec::new();
    for port in 6001..6013u32 {
        let tag = format!("0x{:08x}", 0xc000_0000u32 + port);
        others.push(format!(
            "init,198.18.0.12,{port},198.18.100.20,38412,0x{port:08x}"
        ));
        others.push(format!(
            "cookie,198.18.0.12,{port},198.18.100.20,38412,{tag}"
        ));
    }
    lab.sctp(&others.iter().map(String::as_str).collect::<Vec<_>>());
    // ABORT under the backend's tag frees the association after the linger; later
    // packets under that tag are dropped, never re-hashed.
    lab.sctp(&["abort,198.18.0.10,5000,198.18.100.20,38412,0xb0b0b0b0"]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    lab.sctp(&["data,198.18.0.11,5000,198.18.101.20,38412,0xb0b0b0b0,after-abort"]);
    let seen = sctp_seen(&lab.finish_captures());

    let (a1, a2, others_src): (IpAddr, IpAddr, IpAddr) = (
        "198.18.0.10".parse().unwrap(),
        "198.18.0.11".parse().unwrap(),
        "198.18.0.12".parse().unwrap(),
    );
    let first: Vec<_> = seen.iter().filter(|s| s.2 == a1 || s.2 == a2).collect();
    let backends: std::collections::BTreeSet<_> = first.iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        backends.len(),
        1,
        "association 1 split across backends: {first:?}"
    );
    let via_second_path = first.iter().filter(|s| s.2 == a2).count();
    assert_eq!(
        via_second_path, 2,
        "HEARTBEAT and DATA from the second address: {first:?}"
    );
    assert_eq!(
        first.len(),
        6,
        "INIT, COOKIE-ECHO, DATA, HEARTBEAT, DATA, ABORT and nothing after: {first:?}"
    );

    let spread: std::collections::BTreeSet<_> = seen
        .iter()
        .filter(|s| s.2 == others_src)
        .map(|s| s.0.clone())
        .collect();
    assert!(
        spread.len() >= 2,
        "12 associations all on one backend: {spread:?}"
    );
    assert!(lab.stop_xlb().success());
    let log = lab.log();
    let totals = log
        .lines()
        .find(|l| l.contains("total counters"))
        .expect("totals logged at exit");
    assert!(
        totals.contains("drop_sctp_unknown_association=1"),
        "post-abort DATA not counted: {totals}"
    );
}

#[test]
fn host_traffic_on_the_same_interface_still_reaches_the_kernel() {
    let mut lab = Lab::up("host", 1);
    lab.start_xlb(&config("auto", ""));
    let ping = lab
        .ns_command("cl", "ping")
        .args(["-c", "3", "-i", "0.2", "-W", "1", "198.18.0.2"])
        .status()
        .unwrap();
    assert!(ping.success(), "ping to the xlb host's own address failed");
    let ping6 = lab
        .ns_command("cl", "ping")
        .args(["-6", "-c", "3", "-i", "0.2", "-W", "1", "2001:db8::2"])
        .status()
        .unwrap();
    assert!(
        ping6.success(),
        "IPv6 ping to the xlb host's own address failed"
    );
    let mut server = lab
        .ns_command("lb", support::lab::PYTHON)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/backend.py"
        ))
        .args(["xlb-host", "7000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tcp = lab.client("tcp", "198.18.0.2", 7000, 5, &["198.18.0.10".to_string()]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        tcp.answers.get("xlb-host"),
        Some(&5),
        "TCP to the host: {tcp:?}"
    );
    // The VIP answers ping through xlb itself (ICMP echo for VIPs).
    let vip = lab
        .ns_command("cl", "ping")
        .args(["-c", "2", "-i", "0.2", "-W", "1", "198.18.100.10"])
        .status()
        .unwrap();
    assert!(vip.success(), "ping to the VIP is answered by xlb");
    assert!(lab.stop_xlb().success());
}

#[test]
fn two_workers_on_two_queues_both_carry_traffic() {
    let mut lab = Lab::up("twoq", 2);
    lab.start_xlb(&config("[0, 1]", ""));
    let summary = lab.client("tcp", "198.18.100.10", 80, 300, &client_sources(false));
    assert_eq!(summary.failed, 0, "{summary:?}");
    assert!(lab.stop_xlb().success());
    let log = lab.log();
    for worker in 0..2 {
        let line = log
            .lines()
            .find(|l| l.contains("worker counters") && l.contains(&format!("worker={worker}")))
            .unwrap_or_else(|| panic!("no counters for worker {worker}:\n{log}"));
        assert!(
            !line.contains("rx_packets=0 "),
            "worker {worker} carried nothing: {line}"
        );
    }
}

#[test]
fn xdp_program_is_detached_after_sigterm_and_after_sigkill() {
    let mut lab = Lab::up("detach", 1);
    lab.start_xlb(&config("auto", ""));
    assert!(lab
        .ns_output("lb", "ip", &["link", "show", "eth0"])
        .contains("xdp"));
    assert!(lab.stop_xlb().success());
    assert_no_xdp(&lab);
    lab.start_xlb(&config("auto", ""));
    lab.kill_xlb();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_no_xdp(&lab);
}

#[test]
fn two_interfaces_carry_nat_traffic_across_in_both_directions() {
    let mut lab = Lab::up_split("split", 1);
    lab.start_xlb(
        r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }, { name: eth1 }]
  nat: { addresses: [198.19.0.3], port_range: [20000, 40000] }
services:
  - name: web-nat
    vips: [198.18.100.30]
    protocol: tcp
    ports: [8080]
    forwarding: nat
    backends: &backends
      - { name: b1, address: 198.19.1.11 }
      - { name: b2, address: 198.19.1.12 }
      - { name: b3, address: 198.19.1.13 }
  - { name: dns-nat, vips: [198.18.100.30], protocol: udp, ports: [5353], forwarding: nat, backends: *backends }
"#,
    );
    // The backends have no route to the clients: every answer crosses xlb twice.
    let tcp = lab.client("tcp", "198.18.100.30", 8080, 150, &client_sources(false));
    assert_eq!(tcp.failed, 0, "{tcp:?}\n{}", lab.log());
    assert_eq!(tcp.answers.len(), 3, "{tcp:?}");
    let udp = lab.client("udp", "198.18.100.30", 5353, 100, &client_sources(false));
    assert_eq!(udp.failed, 0, "{udp:?}");
    assert!(lab.stop_xlb().success());
}
