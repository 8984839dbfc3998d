//! End to end: SIGHUP reloads under traffic in the namespace lab. Needs root; fails
//! (never skips) without it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::lab::{client_sources, Lab, PYTHON};

fn table(backends: &[&str]) -> String {
    let list: String = backends
        .iter()
        .map(|b| format!("      - {{ name: {b}, address: 198.18.1.1{} }}\n", &b[1..]))
        .collect();
    format!(
        r#"version: 1
dataplane:
  interfaces: [{{ name: eth0 }}]
  flow_table: {{ capacity: 65536 }}
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
{list}"#
    )
}

/// Long-lived connections held open by tests/support/hold.py.
struct Held {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl Held {
    fn open(lab: &Lab, count: u32) -> (Held, Vec<Option<String>>) {
        let mut child = lab
            .ns_command("cl", PYTHON)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/hold.py"
            ))
            .args([
                "198.18.100.10",
                "80",
                &count.to_string(),
                &client_sources(false).join(","),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hold.py");
        let mut lines = BufReader::new(child.stdout.take().expect("piped"));
        let first = read_names(&mut lines);
        (Held { child, lines }, first)
    }

    fn ask(&mut self) -> Vec<Option<String>> {
        let stdin = self.child.stdin.as_mut().expect("piped");
        stdin.write_all(b"again\n").expect("hold.py alive");
        stdin.flush().unwrap();
        read_names(&mut self.lines)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_names(lines: &mut impl BufRead) -> Vec<Option<String>> {
    let mut line = String::new();
    lines.read_line(&mut line).expect("hold.py answers");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("hold.py said {line:?}: {e}"))
}

fn reload(lab: &Lab, config: &str, expect: &str) {
    let before = lab.log().matches(expect).count();
    std::fs::write(lab.config_path(), config).expect("rewrite config");
    lab.signal_xlb("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.log().matches(expect).count() == before {
        assert!(
            Instant::now() < deadline,
            "no {expect:?} after SIGHUP:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_adding_a_backend_keeps_connections_and_spreads_new_flows() {
    let mut lab = Lab::up("rld", 1);
    lab.start_xlb(&table(&["b1", "b2"]));
    let (mut held, before) = Held::open(&lab, 40);
    assert!(
        before.iter().all(Option::is_some),
        "held connections: {before:?}"
    );
    assert!(!before.iter().any(|b| b.as_deref() == Some("b3")));

    reload(&lab, &table(&["b1", "b2", "b3"]), "reload applied");
    assert!(
        lab.log().contains("backends added: b3"),
        "reload diff logged:\n{}",
        lab.log()
    );

    let after = held.ask();
    assert_eq!(
        before, after,
        "existing connections moved or broke across the reload"
    );
    let fresh = lab.client("tcp", "198.18.100.10", 80, 300, &client_sources(false));
    assert_eq!(fresh.failed, 0, "{fresh:?}");
    assert!(
        fresh.share("b3") > 0.2,
        "new flows reach the new backend: {fresh:?}"
    );
    drop(held);
    assert!(lab.stop_xlb().success());
}

#[test]
fn reload_removing_a_backend_moves_only_its_flows() {
    let mut lab = Lab::up("rmv", 1);
    lab.start_xlb(&table(&["b1", "b2", "b3"]));
    let (mut held, before) = Held::open(&lab, 40);
    reload(&lab, &table(&["b1", "b3"]), "reload applied");
    let after = held.ask();
    for (b, a) in before.iter().zip(&after) {
        if b.as_deref() != Some("b2") {
            assert_eq!(b, a, "a connection not on the removed backend moved");
        }
    }
    let fresh = lab.client("tcp", "198.18.100.10", 80, 200, &client_sources(false));
    assert_eq!(fresh.failed, 0);
    assert_eq!(
        fresh.answers.get("b2"),
        None,
        "new flows still reach a removed backend: {fresh:?}"
    );
    drop(held);
    assert!(lab.stop_xlb().success());
}

#[test]
fn reload_with_a_broken_file_keeps_the_running_table() {
    let mut lab = Lab::up("brk", 1);
    lab.start_xlb(&table(&["b1", "b2"]));
    let broken = table(&["b1", "b2"]).replace("forwarding: dsr", "forwarding: teleport");
    reload(&lab, &broken, "reload failed");
    let log = lab.log();
    let line = log.lines().find(|l| l.contains("reload failed")).unwrap();
    let location = format!("{}:10:17:", lab.config_path().display());
    assert!(
        line.contains(&location),
        "error names file:line:col: {line}"
    );
    let still = lab.client("tcp", "198.18.100.10", 80, 100, &client_sources(false));
    assert_eq!(still.failed, 0, "traffic after a failed reload: {still:?}");
    assert_eq!(still.answers.len(), 2);
    // A burst of SIGHUPs with a good file coalesces and applies.
    std::fs::write(lab.config_path(), table(&["b1", "b2", "b3"])).unwrap();
    for _ in 0..5 {
        lab.signal_xlb("-HUP");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let fresh = lab.client("tcp", "198.18.100.10", 80, 200, &client_sources(false));
    assert!(fresh.answers.contains_key("b3"), "{fresh:?}");
    assert!(lab.stop_xlb().success());
}

#[test]
fn reload_changing_start_only_settings_is_refused_whole() {
    let mut lab = Lab::up("rst", 1);
    lab.start_xlb(&table(&["b1", "b2"]));
    // A new backend and a new SNAT address: the table is all or nothing, so neither
    // applies while the SNAT address needs a restart.
    let mixed = table(&["b1", "b2", "b3"]).replace(
        "  flow_table: { capacity: 65536 }\n",
        "  flow_table: { capacity: 65536 }\n  nat: { addresses: [198.18.0.3] }\n",
    );
    reload(&lab, &mixed, "reload failed");
    let log = lab.log();
    let line = log.lines().find(|l| l.contains("reload failed")).unwrap();
    assert!(
        line.contains("dataplane.nat changed: it is only applied at start"),
        "{line}"
    );
    let still = lab.client("tcp", "198.18.100.10", 80, 200, &client_sources(false));
    assert_eq!(still.failed, 0, "{still:?}");
    assert!(
        !still.answers.contains_key("b3"),
        "b3 was applied: {still:?}"
    );
    let metrics = lab.scrape();
    assert!(
        metrics.contains("xlb_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    // The same change without the start-only setting applies, with a new Maglev size.
    let live = table(&["b1", "b2", "b3"]).replace(
        "  flow_table: { capacity: 65536 }\n",
        "  flow_table: { capacity: 65536 }\n  maglev_table_size: 1009\n",
    );
    reload(&lab, &live, "reload applied");
    let fresh = lab.client("tcp", "198.18.100.10", 80, 200, &client_sources(false));
    assert!(fresh.answers.contains_key("b3"), "{fresh:?}");
    assert!(lab.stop_xlb().success());
}

#[test]
fn fifty_dead_backends_stall_neither_start_nor_reload_nor_stop() {
    let mut lab = Lab::up("dead", 1);
    // On-link addresses where no host answers ARP: each waits out its resolution.
    let dead: String = (1..=50)
        .map(|n| format!("      - {{ name: dead{n}, address: 198.18.5.{n} }}\n"))
        .collect();
    let config = table(&["b1", "b2"]) + &dead;
    // Resolved one after another, 50 × 500 ms would outlast start_xlb's 20 s wait.
    lab.start_xlb(&config);
    reload(&lab, &config.replace("dead50", "dead51"), "reload applied");
    let unresolved = lab.log().matches("backend unresolved").count();
    assert!(unresolved >= 50, "{unresolved} unresolved backends logged");
    // stop_xlb fails unless xlb exits within 5 s of SIGTERM.
    assert!(lab.stop_xlb().success());
}

/// Runs `xlb pktgen` in a lab namespace; returns the child (receiver) or waits (sender).
fn pktgen(lab: &Lab, ns: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = lab.ns_command(ns, env!("CARGO_BIN_EXE_xlb"));
    cmd.arg("pktgen").args(args).arg("--quiet");
    cmd
}

fn report(path: &std::path::Path) -> xlb::pktgen::PktgenReport {
    let text = std::fs::read_to_string(path).expect("pktgen wrote its report");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn no_packet_is_lost_across_many_reloads_under_traffic() {
    let mut lab = Lab::up("nolss", 1);
    let udp = |backends: &[&str]| {
        table(backends).replace(
            "protocol: tcp\n    ports: [80]",
            "protocol: udp\n    ports: [9000]",
        )
    };
    lab.start_xlb(&udp(&["b1"]));
    let (rx_json, tx_json) = (lab.work.join("rx.json"), lab.work.join("tx.json"));
    // The sink: b1's interface, every frame to the VIP taken by its own AF_XDP socket.
    let mut receiver = pktgen(
        &lab,
        "b1",
        &["--iface", "eth0", "--receive", "--duration", "60"],
    )
    .args(["--steer", "198.18.100.10", "--json"])
    .arg(&rx_json)
    .stderr(Stdio::piped())
    .spawn()
    .expect("start the receiver");
    let mut lines = BufReader::new(receiver.stderr.take().expect("piped")).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("pktgen receiver ready"))),
        "receiver never got ready"
    );
    std::thread::spawn(move || lines.for_each(drop));
    // 64 flows, all placed on b1 by their first packets; then b2 and b3 come and go
    // twenty times while the flows keep sending.
    let mut sender = pktgen(&lab, "cl", &["--iface", "eth0", "--dst", "198.18.100.10"])
        .args([
            "--dst-port",
            "9000",
            "--src",
            "198.18.0.10",
            "--flows",
            "64",
        ])
        .args([
            "--rate",
            "5000",
            "--count",
            "25000",
            "--dst-mac",
            support::lab::XLB_MAC,
            "--json",
        ])
        .arg(&tx_json)
        .spawn()
        .expect("start the sender");
    std::thread::sleep(Duration::from_millis(500));
    for round in 0..20 {
        let backends: &[&str] = if round % 2 == 0 {
            &["b1", "b2", "b3"]
        } else {
            &["b1"]
        };
        reload(&lab, &udp(backends), "reload applied");
    }
    assert!(sender.wait().expect("sender ends").success());
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &receiver.id().to_string()])
        .status();
    assert!(receiver.wait().expect("receiver ends").success());
    let (sent, received) = (report(&tx_json), report(&rx_json));
    let (sent, received) = (
        sent.tx.expect("tx summary"),
        received.rx.expect("rx summary"),
    );
    assert_eq!(lab.log().matches("reload applied").count(), 20);
    assert_eq!(
        received.packets, sent.packets,
        "packets lost across reloads: {received:?}"
    );
    assert_eq!(received.lost, 0);
    assert!(lab.stop_xlb().success());
}
