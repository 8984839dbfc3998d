//! `xlb pktgen` end to end, as root: a generator process in one network namespace
//! sends over AF_XDP on a veth, a receiver process (`--receive`) in the other counts
//! what arrives. Counts match, nothing is lost at a modest rate, the latency
//! histogram is populated and both JSON reports parse.

#[path = "support/netns.rs"]
mod netns;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use netns::{require_root, veth_pair, Netns};
use xlb::pktgen::PktgenReport;

const XLB: &str = env!("CARGO_BIN_EXE_xlb");

/// A generator namespace and a sink namespace joined by a veth with `queues` queues.
struct Pair {
    generator: Netns,
    sink: Netns,
    sink_mac: String,
    dir: PathBuf,
}

fn pair(queues: u32) -> Pair {
    require_root();
    let generator = Netns::new("gen");
    let sink = Netns::new("sink");
    veth_pair(&generator, "g0", &sink, "s0", queues);
    generator.ip(&["addr", "add", "198.18.0.1/24", "dev", "g0"]);
    sink.ip(&["addr", "add", "198.18.0.2/24", "dev", "s0"]);
    let mac = sink.mac("s0");
    let sink_mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let dir = std::env::temp_dir().join(format!("xlb-pktgen-{}", generator.name));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    Pair {
        generator,
        sink,
        sink_mac,
        dir,
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `xlb pktgen --receive` in the sink and waits until it reports ready.
fn start_receiver(pair: &Pair, extra: &[&str], json: &Path) -> Child {
    let mut args = vec![
        "pktgen",
        "--iface",
        "s0",
        "--receive",
        "--quiet",
        "--duration",
        "60",
        "--json",
    ];
    let json = json.to_str().expect("UTF-8 path");
    args.push(json);
    args.extend_from_slice(extra);
    let mut child = pair
        .sink
        .command(XLB, &args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the receiver");
    let stderr = child.stderr.take().expect("receiver stderr");
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("receiver: {line}");
            if line.contains("pktgen receiver ready") {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!("the receiver did not get ready within 20 s (see its log above)");
    }
    child
}

/// Runs the generator in its namespace to completion and returns its report.
fn run_generator(pair: &Pair, extra: &[&str], json: &Path) -> PktgenReport {
    let mut args = vec![
        "pktgen",
        "--iface",
        "g0",
        "--quiet",
        "--dst-mac",
        &pair.sink_mac,
        "--json",
    ];
    let json_arg = json.to_str().expect("UTF-8 path");
    args.push(json_arg);
    args.extend_from_slice(extra);
    let out = pair.generator.output(XLB, &args);
    assert!(
        out.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_report(json)
}

/// Stops the receiver with SIGINT, as a user would, and returns its report.
fn stop_receiver(mut child: Child, json: &Path) -> PktgenReport {
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT {pid} failed");
    let status = child.wait().expect("wait for the receiver");
    assert!(status.success(), "receiver exited with {status}");
    read_report(json)
}

fn read_report(json: &Path) -> PktgenReport {
    let text =
        std::fs::read_to_string(json).unwrap_or_else(|e| panic!("read {}: {e}", json.display()));
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", json.display()));
    assert!(value.is_object(), "{text}");
    serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("{} is not a pktgen report: {e}\n{text}", json.display()))
}

/// Sends `count` packets at `rate` with `traffic` arguments; checks that every one
/// arrived once, in order, with a populated latency histogram.
fn check_lossless(queues: u32, count: u64, rate: u64, traffic: &[&str]) -> PktgenReport {
    let pair = pair(queues);
    let (tx_json, rx_json) = (pair.dir.join("tx.json"), pair.dir.join("rx.json"));
    let q = queues.to_string();
    let mut rx_args = vec!["--queues", q.as_str()];
    let steer_at = traffic.iter().position(|a| *a == "--dst");
    if let Some(at) = steer_at {
        rx_args.extend_from_slice(&["--steer", traffic[at + 1]]);
    } else {
        rx_args.extend_from_slice(&["--steer", "198.18.0.2"]);
    }
    let receiver = start_receiver(&pair, &rx_args, &rx_json);
    let (count_arg, rate_arg) = (count.to_string(), rate.to_string());
    let mut tx_args = vec![
        "--queues",
        q.as_str(),
        "--count",
        &count_arg,
        "--rate",
        &rate_arg,
    ];
    tx_args.extend_from_slice(traffic);
    let sent = run_generator(&pair, &tx_args, &tx_json);
    let received = stop_receiver(receiver, &rx_json);

    let tx = sent
        .tx
        .as_ref()
        .expect("the generator reports what it sent");
    assert_eq!(tx.packets, count);
    assert!(sent.rx.is_none());
    let rx = received
        .rx
        .as_ref()
        .expect("the receiver reports what arrived");
    assert_eq!(received.mode, "receive");
    assert_eq!(rx.packets, count, "received {rx:?}");
    assert_eq!(rx.lost, 0);
    assert_eq!(rx.reordered, 0);
    let latency = rx.latency_ns.as_ref().expect("a latency histogram");
    assert_eq!(latency.samples, count);
    assert!(latency.min > 0 && latency.min <= latency.p50);
    assert!(latency.p50 <= latency.p90 && latency.p90 <= latency.p99);
    assert!(latency.p99 <= latency.p999 && latency.p999 <= latency.max);
    // One way on one machine: anything near a second means the stamp is misread.
    assert!(latency.p50 < 1_000_000_000, "{latency:?}");
    sent
}

#[test]
fn udp_arrives_complete_in_order_with_latencies() {
    let sent = check_lossless(1, 20_000, 20_000, &["--proto", "udp", "--flows", "1000"]);
    assert_eq!(sent.frame_lengths, vec![64]);
}

#[test]
fn two_queues_of_tcp_acks_over_ipv6_arrive_complete() {
    check_lossless(
        2,
        20_000,
        20_000,
        &[
            "--proto",
            "tcp-est",
            "--flows",
            "100",
            "--src",
            "2001:db8::1",
            "--dst",
            "2001:db8::2",
            "--size",
            "imix",
        ],
    );
}

#[test]
fn sctp_associations_are_set_up_then_carry_stamped_data() {
    let sent = check_lossless(
        1,
        10_000,
        10_000,
        &[
            "--proto",
            "sctp",
            "--flows",
            "20",
            "--second-src",
            "198.18.0.9",
            "--dst-port",
            "38412",
        ],
    );
    // An INIT and a COOKIE-ECHO per association, before the data.
    assert_eq!(sent.tx.as_ref().map(|tx| tx.setup_packets), Some(40));
}
