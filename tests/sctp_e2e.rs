//! End to end with real SCTP stacks on both sides of `xlb run`: usrsctp (Debian's
//! `libusrsctp-examples`, raw SCTP over IP) is the client and every backend in the
//! namespace lab, and xlb forwards between them in DSR. The backends serve on every
//! address they have, so their INIT-ACKs list both VIPs of the service: the client
//! stack is free to use either VIP for any packet of the association.
//!
//! What it proves, one test each:
//! - a multihomed association that fails over to the second VIP mid-transfer keeps
//!   every packet on the backend its INIT chose, and completes;
//! - a reload that moves the SCTP service down the file keeps live associations;
//! - spoofed COOKIE-ECHO, ABORT (with and without the T bit) and INIT from the
//!   client's own address and port neither move nor end a live association;
//! - an INIT flood into a small association table stops neither a live association
//!   nor a new one;
//! - an IPv6 association through an IPv6 VIP carries data both ways;
//! - a packet answering a backend-initiated association (INIT-ACK under a tag xlb
//!   never saw) is dropped and counted, never hashed to a backend.
//!
//! The stacks run with scripts/usrsctp_shim.c preloaded (debug output off,
//! potentially-failed threshold 0: see tests/support/usrsctp.rs). Scapy
//! (tests/support/sctp_spoof.py) makes the packets no stack would send. Needs root;
//! fails (never skips) without it. No assertion depends on throughput; the flood test
//! orders two events (a 3 s association completes while a 10 s one still runs).

mod support;
#[path = "support/usrsctp.rs"]
mod usrsctp;

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::lab::{Lab, PYTHON, XLB_MAC};
use usrsctp::{Peer, TSCTP_PORT};

/// The service's VIPs: the one the client connects to, and the other one.
const VIP: &str = "198.18.100.20";
const VIP2: &str = "198.18.101.20";
/// The IPv6 VIP of the echo service.
const VIP6: &str = "2001:db8:100::20";
const BACKENDS: [&str; 3] = ["b1", "b2", "b3"];
/// How long each tsctp client sends, and how long it may take beyond that to finish
/// (shutdown, and usrsctp's one-second close loop).
const TRANSFER_SECONDS: u32 = 6;
const FINISH_GRACE: Duration = Duration::from_secs(25);
/// tsctp's message length: one DATA chunk per packet.
const MESSAGE_LENGTH: u32 = 1000;

/// The lab's service table: `above` (services listed before the SCTP ones), the
/// multihomed SCTP service `bulk` on both IPv4 VIPs and the IPv6 echo service.
fn config(capacity: usize, above: &str) -> String {
    format!(
        r#"version: 1
dataplane:
  interfaces: [{{ name: eth0 }}]
  flow_table: {{ capacity: 65536 }}
  sctp: {{ capacity: {capacity}, max_addresses: 8 }}
services:
{above}  - name: bulk
    vips: [{VIP}, {VIP2}]
    protocol: sctp
    ports: [{TSCTP_PORT}]
    forwarding: dsr
    backends:
      - {{ name: b1, address: 198.18.1.11 }}
      - {{ name: b2, address: 198.18.1.12 }}
      - {{ name: b3, address: 198.18.1.13 }}
  - name: echo6
    vips: ["{VIP6}"]
    protocol: sctp
    ports: [{echo}]
    forwarding: dsr
    backends:
      - {{ name: b1, address: "2001:db8::1:11" }}
      - {{ name: b2, address: "2001:db8::1:12" }}
      - {{ name: b3, address: "2001:db8::1:13" }}
"#,
        echo = usrsctp::ECHO_PORT,
    )
}

/// A TCP service for the reload test to put above the SCTP ones.
const WEB_SERVICE: &str = r#"  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
"#;

/// One read of xlb's metrics endpoint.
struct Scrape(String);

impl Scrape {
    fn of(lab: &Lab) -> Scrape {
        Scrape(lab.scrape())
    }

    /// Series of `name`: labels and value.
    fn series<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (Vec<(&'a str, &'a str)>, u64)> + 'a {
        self.0.lines().filter_map(move |line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => {
                    let (labels, value) = rest.split_once("} ")?;
                    (labels, value)
                }
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            Some((labels, value.trim().parse::<f64>().ok()? as u64))
        })
    }

    /// Sum of `name` over every series carrying all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.series(name)
            .filter(|(have, _)| labels.iter().all(|l| have.contains(l)))
            .map(|(_, v)| v)
            .sum()
    }

    /// Drops under `reason`, summed over workers.
    fn drops(&self, reason: &str) -> u64 {
        self.sum("xlb_drops_total", &[("reason", reason)])
    }

    /// Drops under every `sctp_*` reason, summed over workers.
    fn sctp_drops(&self) -> u64 {
        self.series("xlb_drops_total")
            .filter(|(labels, _)| {
                labels
                    .iter()
                    .any(|(k, v)| *k == "reason" && v.starts_with("sctp_"))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Per backend of `service`: the value of `name` (backends at 0 included).
    fn per_backend(&self, name: &str, service: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (labels, value) in self.series(name) {
            if !labels.contains(&("service", service)) {
                continue;
            }
            if let Some((_, backend)) = labels.iter().find(|(k, _)| *k == "backend") {
                *out.entry(backend.to_string()).or_default() += value;
            }
        }
        out
    }

    /// The lines worth showing when a test fails: SCTP, drops, per-backend counters,
    /// reloads; zeros left out.
    fn evidence(&self) -> String {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
            .filter(|l| {
                [
                    "xlb_sctp",
                    "xlb_drops",
                    "xlb_backend_packets",
                    "xlb_backend_new_flows",
                    "xlb_reloads",
                    "xlb_config_generation",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What to show when a test fails: each peer's output, xlb's metrics and log tail.
fn evidence(lab: &Lab, peers: &[&Peer]) -> String {
    let mut out = String::new();
    for peer in peers {
        let output = peer.output();
        let lines: Vec<&str> = output.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        out += &format!("--- {} ---\n{}\n", peer.name, tail.join("\n"));
    }
    out += &format!("--- metrics ---\n{}\n", Scrape::of(lab).evidence());
    let log = lab.log();
    let lines: Vec<&str> = log.lines().collect();
    out += &format!(
        "--- xlb log (tail) ---\n{}",
        lines[lines.len().saturating_sub(20)..].join("\n")
    );
    out
}

/// The lab with a tsctp server on each backend and xlb running `config`.
fn bulk_lab(name: &str, capacity: usize) -> (Lab, Vec<Peer>) {
    let mut lab = Lab::up(name, 1);
    let servers = BACKENDS
        .iter()
        .map(|b| usrsctp::tsctp_server(&lab, b))
        .collect();
    lab.start_xlb(&config(capacity, ""));
    (lab, servers)
}

/// Waits until a backend accepted an association (the test's first); returns the
/// backend's index and the client's `ADDR:PORT` (the INIT's source).
fn accepted(lab: &Lab, servers: &[Peer], peers: &[&Peer]) -> (usize, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for (i, server) in servers.iter().enumerate() {
            if let Some(client) = usrsctp::tsctp_accepted(&server.output()).into_iter().next() {
                return (i, client);
            }
        }
        let mut shown: Vec<&Peer> = servers.iter().collect();
        shown.extend_from_slice(peers);
        assert!(
            Instant::now() < deadline,
            "no backend accepted the association within 15 s\n{}",
            evidence(lab, &shown)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a tsctp client to finish; returns the messages it sent, after checking
/// that one backend received exactly those (every message of the association
/// arrived, none twice). Returns (messages, backend index).
fn transfer_completed(lab: &Lab, client: &mut Peer, servers: &[Peer]) -> (u64, usize) {
    let status = client.wait(Duration::from_secs(u64::from(TRANSFER_SECONDS)) + FINISH_GRACE);
    let mut shown: Vec<&Peer> = vec![client];
    shown.extend(servers.iter());
    assert!(
        status.is_some_and(|s| s.success()),
        "tsctp client {} did not complete ({status:?})\n{}",
        client.name,
        evidence(lab, &shown)
    );
    let (sent, length) = usrsctp::tsctp_sent(&client.output())
        .unwrap_or_else(|| panic!("no summary from tsctp\n{}", evidence(lab, &shown)));
    assert!(sent > 0, "tsctp sent nothing\n{}", evidence(lab, &shown));
    // The server reports when the association ends, before the client exits; allow
    // for the output to be flushed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<(usize, usrsctp::Received)> = servers
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                usrsctp::tsctp_received(&s.output())
                    .into_iter()
                    .map(move |r| (i, r))
            })
            .filter(|(_, r)| r.messages == sent)
            .collect();
        if let Some((backend, received)) = found.first() {
            assert_eq!(
                received.bytes,
                sent * length,
                "bytes received\n{}",
                evidence(lab, &shown)
            );
            return (sent, *backend);
        }
        assert!(
            Instant::now() < deadline,
            "no backend received all {sent} messages of {}\n{}",
            client.name,
            evidence(lab, &shown)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs iptables in the client namespace.
fn client_iptables(lab: &Lab, args: &[&str]) {
    lab.ns_output("cl", "iptables", args);
}

/// Runs tests/support/sctp_spoof.py in the client namespace and waits for it.
fn spoof(lab: &Lab, steps: &[String]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sctp_spoof.py");
    let mut args = vec![script, "eth0", XLB_MAC];
    args.extend(steps.iter().map(String::as_str));
    lab.ns_output("cl", PYTHON, &args);
}

/// A random, non-zero verification tag (each `RandomState` is keyed afresh).
fn random_tag() -> u32 {
    (RandomState::new().hash_one(std::process::id()) as u32) | 1
}

/// The SCTP header fields of one captured frame (Ethernet, no VLAN).
#[derive(Debug)]
struct SctpFrame {
    src_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    /// Type of the first chunk (0 DATA, 1 INIT, 2 INIT-ACK, ...).
    chunk: u8,
}

/// Parses the headers of a (possibly truncated) captured SCTP frame.
fn sctp_frame(frame: &[u8]) -> Option<SctpFrame> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src, dst, proto, l4): (IpAddr, IpAddr, u8, usize) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (src.into(), dst.into(), *ip.get(9)?, ihl)
        }
        0x86dd => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (src.into(), dst.into(), *ip.get(6)?, 40)
        }
        _ => return None,
    };
    if proto != 132 {
        return None;
    }
    let sctp = ip.get(l4..)?;
    Some(SctpFrame {
        src_mac: frame.get(6..12)?.try_into().ok()?,
        src,
        dst,
        src_port: u16::from_be_bytes([*sctp.first()?, *sctp.get(1)?]),
        dst_port: u16::from_be_bytes([*sctp.get(2)?, *sctp.get(3)?]),
        chunk: *sctp.get(12)?,
    })
}

/// xlb's MAC as bytes: the source MAC of every frame xlb forwards to a backend.
fn xlb_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (byte, hex) in mac.iter_mut().zip(XLB_MAC.split(':')) {
        *byte = u8::from_str_radix(hex, 16).expect("hex");
    }
    mac
}

/// Backends of `service` that xlb forwarded at least one packet to.
fn backends_used(scrape: &Scrape, service: &str) -> Vec<String> {
    scrape
        .per_backend("xlb_backend_packets_total", service)
        .into_iter()
        .filter(|(_, packets)| *packets > 0)
        .map(|(backend, _)| backend)
        .collect()
}

#[test]
fn multihomed_transfer_uses_a_path_other_than_the_inits() {
    let (mut lab, servers) = bulk_lab("mhom", 1024);
    // The backends' own addresses are paths too (their INIT-ACKs list them) and do
    // not cross xlb: close them, so the only way around the blocked VIP is the other
    // VIP, through xlb.
    client_iptables(
        &lab,
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
    for b in BACKENDS {
        lab.capture_inbound(b, "sctp and src net 198.18.0.0/24", 64);
    }

    let mut client =
        usrsctp::tsctp_client(&lab, "client", VIP, TRANSFER_SECONDS + 3, MESSAGE_LENGTH);
    let (backend, from) = accepted(&lab, &servers, &[&client]);
    // usrsctp confirms the other VIP with a HEARTBEAT within ~2 s of COMM_UP; only a
    // confirmed path can take over. Then the INIT's VIP goes dark for the client.
    std::thread::sleep(Duration::from_secs(4));
    client_iptables(
        &lab,
        &["-A", "OUTPUT", "-p", "sctp", "-d", VIP, "-j", "DROP"],
    );
    let (sent, received_by) = transfer_completed(&lab, &mut client, &servers);
    assert_eq!(
        received_by, backend,
        "the messages arrived at another backend than the INIT's"
    );

    let scrape = Scrape::of(&lab);
    let all = [&client, &servers[0], &servers[1], &servers[2]];
    let used = backends_used(&scrape, "bulk");
    assert_eq!(
        used,
        vec![BACKENDS[backend].to_string()],
        "xlb forwarded the association's packets to more than its backend\n{}",
        evidence(&lab, &all)
    );
    assert_eq!(
        scrape.drops("sctp_unknown_association"),
        0,
        "a packet of the live association was not recognised\n{}",
        evidence(&lab, &all)
    );

    let xlb = xlb_mac();
    let client_port: u16 = from
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("ADDR:PORT");
    let (vip, vip2): (IpAddr, IpAddr) = (VIP.parse().unwrap(), VIP2.parse().unwrap());
    let mut data_to = BTreeMap::<(String, IpAddr), usize>::new();
    let mut other_backends = Vec::new();
    for (name, frames) in lab.finish_captures() {
        for frame in frames.iter().filter_map(|f| sctp_frame(f)) {
            if name != BACKENDS[backend] {
                other_backends.push((name.clone(), frame));
                continue;
            }
            if frame.chunk == 0 && frame.src_mac == xlb && frame.src_port == client_port {
                *data_to
                    .entry((frame.src.to_string(), frame.dst))
                    .or_default() += 1;
            }
        }
    }
    assert!(
        other_backends.is_empty(),
        "other backends saw the client's SCTP: {:?}",
        &other_backends[..other_backends.len().min(5)]
    );
    let via = |dst: IpAddr| {
        data_to
            .iter()
            .filter(|((_, d), _)| *d == dst)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    eprintln!(
        "association from {from} on {}: {sent} messages; DATA frames through xlb by (source, VIP): {data_to:?}",
        BACKENDS[backend]
    );
    assert!(via(vip) > 0, "no DATA through the INIT's VIP: {data_to:?}");
    assert!(
        via(vip2) > 0,
        "the client never failed over to {VIP2} (DATA by path: {data_to:?})"
    );
    assert!(lab.stop_xlb().success());
}

#[test]
fn a_reload_that_reorders_services_keeps_live_associations() {
    let (mut lab, servers) = bulk_lab("reord", 1024);
    let mut client = usrsctp::tsctp_client(&lab, "client", VIP, TRANSFER_SECONDS, MESSAGE_LENGTH);
    let (backend, _) = accepted(&lab, &servers, &[&client]);
    std::thread::sleep(Duration::from_millis(1500));

    // `xlb diff --url` asks the running xlb: the reordered table ends nothing, a table
    // without the association's backend ends its one association.
    let owner = BACKENDS[backend];
    let without_owner = config(1024, WEB_SERVICE).replace(
        &format!(
            "      - {{ name: {owner}, address: 198.18.1.1{} }}\n",
            backend + 1
        ),
        "",
    );
    for (name, table, ended) in [
        ("reordered.yaml", config(1024, WEB_SERVICE), 0),
        ("without-owner.yaml", without_owner, 1),
    ] {
        let path = lab.work.join(name);
        std::fs::write(&path, table).expect("write table");
        let running = lab.config_path();
        let diff = lab.ns_output(
            "lb",
            env!("CARGO_BIN_EXE_xlb"),
            &[
                "diff",
                running.to_str().unwrap(),
                path.to_str().unwrap(),
                "--url",
                "http://127.0.0.1:9781/metrics",
            ],
        );
        let bulk = diff
            .lines()
            .find(|line| line.starts_with("bulk:"))
            .unwrap_or_else(|| panic!("no bulk line in:\n{diff}"));
        assert!(
            bulk.ends_with(&format!("live SCTP associations ended: {ended}")),
            "{name}: {bulk}"
        );
    }

    let applied = lab.log().matches("reload applied").count();
    std::fs::write(lab.config_path(), config(1024, WEB_SERVICE)).expect("rewrite config");
    lab.signal_xlb("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.log().matches("reload applied").count() == applied {
        assert!(
            Instant::now() < deadline,
            "no reload applied after SIGHUP:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (sent, received_by) = transfer_completed(&lab, &mut client, &servers);
    assert_eq!(received_by, backend);
    let scrape = Scrape::of(&lab);
    eprintln!(
        "{sent} messages, reload mid-transfer, on {}:\n{}",
        BACKENDS[backend],
        scrape.evidence()
    );
    let all = [&client, &servers[0], &servers[1], &servers[2]];
    // A stranded association shows as drops of its packets under an unknown tag or a
    // backend taken for gone. (The client lists 10 addresses and xlb keeps 8, so a
    // closing chunk sent from one of the other two may be refused as foreign: that is
    // the address cap, not the reload.)
    assert_eq!(
        (
            scrape.drops("sctp_unknown_association"),
            scrape.drops("sctp_backend_gone")
        ),
        (0, 0),
        "packets of the live association dropped across the reload\n{}",
        evidence(&lab, &all)
    );
    assert_eq!(
        backends_used(&scrape, "bulk"),
        vec![BACKENDS[backend].to_string()],
        "the association moved across the reload\n{}",
        evidence(&lab, &all)
    );
    assert!(lab.stop_xlb().success());
}

#[test]
fn spoofed_cookie_echo_abort_and_init_do_not_break_a_live_association() {
    let (mut lab, servers) = bulk_lab("spoof", 1024);
    let mut client = usrsctp::tsctp_client(&lab, "client", VIP, TRANSFER_SECONDS, MESSAGE_LENGTH);
    let (backend, from) = accepted(&lab, &servers, &[&client]);
    let (addr, port) = from.rsplit_once(':').expect("ADDR:PORT");
    std::thread::sleep(Duration::from_secs(1));

    let before = Scrape::of(&lab).sctp_drops();
    let (cookie_tag, init_tag, abort_tag) = (
        random_tag(),
        random_tag() ^ 0x5a5a_0000,
        random_tag() ^ 0x00a5_a500,
    );
    let from_client = |kind: &str, tag: u32, extra: &str| {
        format!("{kind},{addr},{port},{VIP},{TSCTP_PORT},{tag:#010x}{extra}")
    };
    spoof(
        &lab,
        &[
            // A COOKIE-ECHO would teach a DSR balancer the backend's tag: a spoofed one
            // under a made-up tag, then an ABORT under that tag (T bit: "the tag is
            // the one you gave me"), must not end the real association.
            from_client("cookie", cookie_tag, ""),
            from_client("abort", cookie_tag, ",t"),
            // An INIT from the association's own address and port.
            from_client("init", init_tag, ""),
            // An ABORT under a tag of nobody's.
            from_client("abort", abort_tag, ""),
        ],
    );

    let (sent, received_by) = transfer_completed(&lab, &mut client, &servers);
    let scrape = Scrape::of(&lab);
    eprintln!(
        "{sent} messages from {from}, spoofed packets mid-transfer (drops under sctp_* before: {before}):\n{}",
        scrape.evidence()
    );
    let all = [&client, &servers[0], &servers[1], &servers[2]];
    assert_eq!(received_by, backend, "{}", evidence(&lab, &all));
    assert_eq!(
        backends_used(&scrape, "bulk"),
        vec![BACKENDS[backend].to_string()],
        "the spoofed packets moved the association\n{}",
        evidence(&lab, &all)
    );
    assert!(
        scrape.sctp_drops() > before,
        "none of the spoofed packets was dropped under an sctp_* reason\n{}",
        evidence(&lab, &all)
    );
    assert!(lab.stop_xlb().success());
}

#[test]
fn an_init_flood_does_not_stop_new_or_live_associations() {
    let (mut lab, servers) = bulk_lab("flood", 64);
    // 4000 INITs from 198.19.0.0/16 (198.18.0.0/15 without the lab's own /16: the
    // backends have no route there, so answering costs them no ARP), spread over 3 s,
    // into a table of 64. Scapy takes seconds to build them: built first, sent on cue.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sctp_spoof.py");
    let mut flood = lab
        .ns_command("cl", PYTHON)
        .args([
            script,
            "--wait",
            "eth0",
            XLB_MAC,
            &format!("flood,4000,3,198.18.0.0/15,{VIP},{TSCTP_PORT},198.18.0.0/16"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the flood");
    let mut flood_out = BufReader::new(flood.stdout.take().expect("piped"));
    let mut line = String::new();
    flood_out.read_line(&mut line).expect("flood built");
    assert_eq!(line.trim(), "ready", "flood not built");

    let mut live = usrsctp::tsctp_client(&lab, "live", VIP, TRANSFER_SECONDS + 4, MESSAGE_LENGTH);
    let (_, from) = accepted(&lab, &servers, &[&live]);
    let (_, live_port) = from.rsplit_once(':').expect("ADDR:PORT");
    std::thread::sleep(Duration::from_secs(1));
    writeln!(flood.stdin.as_mut().expect("piped"), "go").expect("flood waits");
    line.clear();
    flood_out.read_line(&mut line).expect("flood starts");
    assert_eq!(line.trim(), "sending", "flood did not start");
    // The new association starts once the flood has put as many associations into
    // the table as it holds (at ~1300 INITs a second, within ~50 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    let created = |lab: &Lab| Scrape::of(lab).sum("xlb_sctp_associations_created_total", &[]);
    while created(&lab) < 64 {
        assert!(
            Instant::now() < deadline,
            "the flood made no associations\n{}",
            Scrape::of(&lab).evidence()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Both clients share the namespace, and usrsctp reads every SCTP packet there
    // through its raw socket. A starting stack answers packets of associations it
    // does not know with ABORT (T bit, their own tag: valid at the backend) until
    // tsctp sets blackhole mode a moment after usrsctp_init; the live association's
    // SACKs, arriving thousands a second, would be answered and the live association
    // killed by the lab itself. No ABORT leaves the namespace under the live
    // association's port (scapy's frames do not cross iptables; none are sent here).
    client_iptables(
        &lab,
        &[
            "-A",
            "OUTPUT",
            "-p",
            "sctp",
            "--sport",
            live_port,
            "-m",
            "sctp",
            "--chunk-types",
            "any",
            "ABORT",
            "-j",
            "DROP",
        ],
    );
    let mut new = usrsctp::tsctp_client(&lab, "new", VIP, 3, MESSAGE_LENGTH);
    assert!(
        flood.try_wait().expect("flood").is_none(),
        "the flood ended before the new association started"
    );

    transfer_completed(&lab, &mut new, &servers);
    // A table full of INITs that never complete lets a new association in only when
    // an established one ends and frees its record (after ~10 s here: usrsctp
    // retransmits its INIT after 3 s, 6 s, ...). The new one has to get in while the
    // live one still holds its record.
    assert!(
        live.running(),
        "the new association completed only after the live one ended\n{}",
        evidence(&lab, &[&new, &live, &servers[0], &servers[1], &servers[2]])
    );
    line.clear();
    flood_out.read_line(&mut line).expect("flood summary");
    assert!(flood.wait().expect("flood").success(), "flood failed");
    eprintln!("flood: {}", line.trim());
    transfer_completed(&lab, &mut live, &servers);
    let abort_rule = lab.ns_output("cl", "iptables", &["-L", "OUTPUT", "-v", "-n", "-x"]);
    eprintln!("{}\n{abort_rule}", Scrape::of(&lab).evidence());
    assert!(lab.stop_xlb().success());
}

#[test]
fn ipv6_association_through_xlb() {
    let mut lab = Lab::up("sctp6", 1);
    let servers: Vec<Peer> = BACKENDS
        .iter()
        .map(|b| usrsctp::echo_server(&lab, b))
        .collect();
    lab.start_xlb(&config(1024, ""));

    let mut client = usrsctp::echo_client(&lab, "client", VIP6);
    let message = "hello over SCTP through xlb's IPv6 VIP";
    client.send_line(message);
    let echoed = client.expect_line(message, Duration::from_secs(15));
    assert!(
        echoed,
        "no echo came back\n{}",
        evidence(&lab, &[&client, &servers[0], &servers[1], &servers[2]])
    );
    client.close_stdin();
    let status = client.wait(Duration::from_secs(15));
    let all = [&client, &servers[0], &servers[1], &servers[2]];
    assert!(
        status.is_some_and(|s| s.success()),
        "client did not shut down ({status:?})\n{}",
        evidence(&lab, &all)
    );
    let output = client.output();
    assert!(
        output.contains("SCTP_COMM_UP") && output.contains("SCTP_SHUTDOWN_COMP"),
        "association did not come up and close cleanly\n{}",
        evidence(&lab, &all)
    );

    let scrape = Scrape::of(&lab);
    let placed = scrape.per_backend("xlb_backend_new_flows_total", "echo6");
    assert_eq!(
        placed.values().sum::<u64>(),
        1,
        "one association placed: {placed:?}\n{}",
        evidence(&lab, &all)
    );
    let backend = placed
        .iter()
        .find(|(_, n)| **n > 0)
        .map(|(b, _)| b.clone())
        .expect("placed");
    let server = &servers[BACKENDS.iter().position(|b| *b == backend).expect("known")];
    let heard = server.wait_for_line(Duration::from_secs(5), |l| {
        l.starts_with(&format!(
            "Msg of length {} received from 2001:db8::1",
            message.len() + 1
        ))
    });
    assert!(
        heard.is_some(),
        "{backend} never logged the message\n{}",
        evidence(&lab, &all)
    );
    eprintln!("echoed: {message:?}\n{}", scrape.evidence());
    assert_eq!(
        scrape.drops("sctp_unknown_association"),
        0,
        "{}",
        evidence(&lab, &all)
    );
    assert!(lab.stop_xlb().success());
}

#[test]
fn backend_initiated_association_is_dropped_not_hashed() {
    let mut lab = Lab::up("bkinit", 1);
    lab.start_xlb(&config(1024, ""));
    for b in BACKENDS {
        lab.capture(b, "sctp");
    }
    let before = Scrape::of(&lab);
    // What a client sends back when a backend starts an association from the VIP:
    // an INIT-ACK under the backend's tag, which xlb has never seen.
    let tag = random_tag();
    spoof(
        &lab,
        &[
            format!("init-ack,198.18.0.10,40123,{VIP},{TSCTP_PORT},{tag:#010x}"),
            format!("init-ack,198.18.0.11,40123,{VIP2},{TSCTP_PORT},{tag:#010x}"),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = Scrape::of(&lab);
    eprintln!("after two INIT-ACKs:\n{}", after.evidence());
    let seen: Vec<(String, SctpFrame)> = lab
        .finish_captures()
        .into_iter()
        .flat_map(|(b, frames)| {
            frames
                .iter()
                .filter_map(|f| sctp_frame(f))
                .map(move |f| (b.clone(), f))
                .collect::<Vec<_>>()
        })
        .collect();
    let leaked: Vec<_> = seen
        .iter()
        .filter(|(_, f)| f.src_port == 40123 && f.dst_port == TSCTP_PORT)
        .collect();
    assert!(leaked.is_empty(), "INIT-ACKs reached a backend: {leaked:?}");
    assert_eq!(
        after.drops("sctp_unknown_association") - before.drops("sctp_unknown_association"),
        2,
        "both INIT-ACKs dropped as of no association\n{}",
        after.evidence()
    );
    assert_eq!(
        backends_used(&after, "bulk"),
        Vec::<String>::new(),
        "{}",
        after.evidence()
    );
    assert!(lab.stop_xlb().success());
}
