//! End to end: full-size TCP from a real kernel client through an encapsulating (ipip)
//! service on 1500-byte links, over IPv4 and IPv6. xlb answers the first segments that
//! no longer fit once encapsulated with ICMP "fragmentation needed" or Packet Too Big,
//! the client's kernel learns the lower path MTU, and the upload completes intact; no
//! frame xlb sends exceeds the link MTU. The backend decapsulates with a small XDP
//! program (tests/support/decap.c), as this kernel has no tunnel modules. Needs root; fails (never skips) without it.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::lab::{read_pcap, repo, Lab, PYTHON};

/// VIPs the lab's backends hold (scripts/netns.sh), with the outer header ipip adds.
const VIPS: [(&str, usize); 2] = [("198.18.100.10", 20), ("2001:db8:100::10", 40)];
const PORT: u16 = 7000;
/// The lab's links are plain Ethernet.
const LINK_MTU: usize = 1500;
const UPLOAD_BYTES: usize = 4_000_000;

fn config() -> String {
    format!(
        r#"version: 1
dataplane:
  interfaces:
    - {{ name: eth0, queues: all, xdp_mode: auto, zero_copy: auto }}
  workers: auto
  encapsulation: {{ source_v4: 198.18.0.2, source_v6: "2001:db8::2" }}
services:
  - name: upload-ipip
    vips: [{vip4}]
    protocol: tcp
    ports: [{PORT}]
    forwarding: ipip
    backends:
      - {{ name: b1, address: 198.18.1.11 }}
  - name: upload-ip6ip6
    vips: ["{vip6}"]
    protocol: tcp
    ports: [{PORT}]
    forwarding: ipip
    backends:
      - {{ name: b1, address: "2001:db8::1:11" }}
"#,
        vip4 = VIPS[0].0,
        vip6 = VIPS[1].0,
    )
}

/// Compiles the decapsulator and attaches it to backend b1's eth0.
fn decapsulate_at_b1(lab: &Lab) {
    let object = lab.work.join("decap.o");
    let multiarch = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new("clang")
        .args([
            "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", &multiarch, "-c",
        ])
        .arg(repo().join("tests/support/decap.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .expect("run clang");
    assert!(status.success(), "clang failed on tests/support/decap.c");
    let object = object.to_str().expect("utf-8 path");
    let link = [
        "link",
        "set",
        "dev",
        "eth0",
        "xdpgeneric",
        "obj",
        object,
        "sec",
        "xdp",
    ];
    lab.ns_output("b1", "ip", &link);
}

/// The sum of a Prometheus counter over all its series.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn full_size_tcp_through_ipip_learns_the_path_mtu_and_completes() {
    let mut lab = Lab::up("mtu", 1);
    decapsulate_at_b1(&lab);
    let mut sink = lab
        .ns_command("b1", PYTHON)
        .arg(repo().join("tests/support/upload.py"))
        .args(["sink", &PORT.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the sink");
    let mut ready = String::new();
    BufReader::new(sink.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .expect("sink says ready");
    assert_eq!(ready.trim(), "ready");
    lab.start_xlb(&config());

    // Everything xlb transmits crosses the switch port facing it.
    let capture = lab.work.join("from-xlb.pcap");
    let mut tcpdump = lab
        .ns_command("sw", "tcpdump")
        .args(["-i", "lb", "-Q", "in", "-n", "-U", "-w"])
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    let mut line = String::new();
    BufReader::new(tcpdump.stderr.take().expect("piped"))
        .read_line(&mut line)
        .expect("tcpdump starts");

    for (vip, overhead) in VIPS {
        let upload = lab.ns_output(
            "cl",
            PYTHON,
            &[
                repo().join("tests/support/upload.py").to_str().unwrap(),
                "send",
                vip,
                &PORT.to_string(),
                &UPLOAD_BYTES.to_string(),
            ],
        );
        let result: serde_json::Value = serde_json::from_str(upload.trim()).expect("upload JSON");
        assert_eq!(
            result["answer"],
            result["expected"],
            "{vip}: the upload arrived changed or incomplete\n{}",
            lab.log()
        );
        let route = lab.ns_output("cl", "ip", &["route", "get", vip]);
        assert!(
            route.contains(&format!("mtu {}", LINK_MTU - overhead)),
            "{vip}: the client did not learn the tunnel's path MTU: {route}"
        );
    }
    let _ = sink.kill();
    let _ = sink.wait();
    let metrics = lab.scrape();
    assert!(
        counter(&metrics, "xlb_icmp_too_big_total") >= 2,
        "an ICMP error per family should have been counted:\n{metrics}"
    );

    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = Command::new("kill").arg(tcpdump.id().to_string()).status();
    let _ = tcpdump.wait();
    let frames = read_pcap(&capture);
    // The capture may miss frames under load; it must still hold most of both uploads.
    let encapsulated = |ethertype: [u8; 2], next_at: usize, next: u8| {
        frames
            .iter()
            .filter(|f| f.len() > next_at && f[12..14] == ethertype && f[next_at] == next)
            .count()
    };
    for (family, count) in [
        ("IPv4 in IPv4", encapsulated([0x08, 0x00], 14 + 9, 4)),
        ("IPv6 in IPv6", encapsulated([0x86, 0xdd], 14 + 6, 41)),
    ] {
        assert!(
            count > UPLOAD_BYTES / LINK_MTU / 2,
            "too few {family} frames captured: {count}"
        );
    }
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        largest <= 14 + LINK_MTU,
        "xlb sent a {largest}-byte frame on a {LINK_MTU}-byte link"
    );
    assert!(lab.stop_xlb().success(), "{}", lab.log());
}
