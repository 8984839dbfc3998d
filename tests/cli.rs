//! The `xlb` command line as a user runs it: check, explain, diff, schema, topology,
//! and the start-up errors of `run`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn xlb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xlb"))
        .args(args)
        .output()
        .expect("run xlb")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `yaml` to a scratch file named `name` and returns its path.
fn scratch(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xlb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

const TABLE: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }]
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
  - name: ngap
    vips: [198.18.100.20]
    protocol: sctp
    ports: [38412]
    forwarding: dsr
    backends:
      - { name: amf-1, address: 198.18.1.21 }
"#;

#[test]
fn check_accepts_the_shipped_configs() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["config/lab.yaml", "config/example.yaml"] {
        let out = xlb(&["check", "-c", &format!("{root}/{file}")]);
        assert!(out.status.success(), "{file}: {}", text(&out));
        assert!(text(&out).contains(": ok ("), "{}", text(&out));
    }
}

#[test]
fn check_reports_file_line_and_column() {
    let bad = TABLE.replace(
        "forwarding: dsr\n    backends:\n      - { name: amf-1",
        "forwarding: nat\n    backends:\n      - { name: amf-1",
    );
    let path = scratch("nat-sctp.yaml", &bad);
    let out = xlb(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let message = text(&out);
    let location = format!("{}:18:17:", path.display());
    assert!(message.contains(&location), "want {location} in {message}");
    assert!(message.contains("ASCONF"), "the reason is given: {message}");
}

#[test]
fn explain_names_service_and_backend_and_is_stable() {
    let path = scratch("explain.yaml", TABLE);
    let p = path.to_str().unwrap();
    let first = xlb(&[
        "explain",
        "-c",
        p,
        "tcp",
        "198.18.0.10:40000",
        "198.18.100.10:80",
    ]);
    assert!(first.status.success(), "{}", text(&first));
    let answer = text(&first);
    assert!(answer.starts_with("service web -> backend b"), "{answer}");
    assert!(answer.contains("via dsr"), "{answer}");
    // Same flow, same answer: Maglev is deterministic across processes.
    let again = xlb(&[
        "explain",
        "-c",
        p,
        "tcp",
        "198.18.0.10:40000",
        "198.18.100.10:80",
    ]);
    assert_eq!(text(&again), answer);
    // Many flows reach every backend.
    let backends: std::collections::BTreeSet<String> = (0..60)
        .map(|port| {
            let src = format!("198.18.0.10:{}", 40000 + port);
            let out = xlb(&["explain", "-c", p, "tcp", &src, "198.18.100.10:80"]);
            text(&out)
                .split_whitespace()
                .nth(4)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(backends.len(), 3, "{backends:?}");
    let sctp = xlb(&[
        "explain",
        "-c",
        p,
        "sctp",
        "198.18.0.10:5000",
        "198.18.100.20:38412",
    ]);
    assert!(
        text(&sctp).contains("service ngap -> backend amf-1"),
        "{}",
        text(&sctp)
    );
    let miss = xlb(&[
        "explain",
        "-c",
        p,
        "udp",
        "198.18.0.10:5000",
        "198.18.100.10:53",
    ]);
    assert!(
        text(&miss).contains("dropped (no_service)"),
        "{}",
        text(&miss)
    );
}

#[test]
fn diff_reports_backends_and_slots_moved() {
    let old = scratch("old.yaml", TABLE);
    let grown = TABLE.replace(
        "      - { name: b3, address: 198.18.1.13 }\n",
        "      - { name: b3, address: 198.18.1.13 }\n      - { name: b4, address: 198.18.1.14 }\n",
    );
    let new = scratch("new.yaml", &grown);
    let out = xlb(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    let web = report
        .lines()
        .find(|l| l.starts_with("web:"))
        .expect("web line");
    assert!(
        web.contains("changed") && web.contains("backends added: b4"),
        "{web}"
    );
    // Adding one backend to three moves about a quarter of the slots, not more.
    let moved: f64 = web
        .split('(')
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .expect("percentage");
    assert!((20.0..32.0).contains(&moved), "{web}");
    let ngap = report
        .lines()
        .find(|l| l.starts_with("ngap:"))
        .expect("ngap line");
    assert!(
        ngap.contains("unchanged") && ngap.contains("0/65537"),
        "{ngap}"
    );
}

#[test]
fn schema_is_json_with_the_top_level_fields() {
    let out = xlb(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    for field in ["version", "dataplane", "services"] {
        assert!(schema["properties"][field].is_object(), "{field} missing");
    }
}

#[test]
fn topology_prints_the_machine_and_a_plan() {
    let out = xlb(&["topology"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("NUMA node"), "{}", text(&out));
    let path = scratch("topology.yaml", &TABLE.replace("eth0", "lo"));
    let out = xlb(&["topology", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("worker 0: cpu"), "{}", text(&out));
}

#[test]
fn run_names_a_missing_interface() {
    let path = scratch("missing.yaml", &TABLE.replace("eth0", "xlbnosuch0"));
    let out = xlb(&["run", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("xlbnosuch0")
            && (message.contains("no such interface") || message.contains("CAP_")),
        "{message}"
    );
}

#[test]
fn run_without_capabilities_says_which_are_missing() {
    let path = scratch("caps.yaml", &TABLE.replace("eth0", "lo"));
    // setpriv drops every capability, as an unprivileged user would have none.
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_xlb"))
        .args(["run", "-c", path.to_str().unwrap()])
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("CAP_NET_ADMIN") && message.contains("CAP_BPF"),
        "{message}"
    );
}

#[test]
fn run_refuses_more_queues_than_the_interface_has() {
    // `lo` has one queue.
    let table = TABLE.replace("[{ name: eth0 }]", "[{ name: lo, queues: [3] }]");
    let path = scratch("queues.yaml", &table);
    let out = xlb(&["run", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("interface lo: has 1 queue(s) but the config asks for queue 3")
            || message.contains("CAP_"),
        "{message}"
    );
}
