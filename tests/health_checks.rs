//! Health checks against real kernel sockets on loopback: tcp and http probes, rise and
//! fall, timeouts, reload of the target list, and stopping on drop; sctp probes against
//! a scapy responder on a raw socket (the kernel has no SCTP stack; needs root).

use std::io::{BufRead, BufReader};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use xlb::config::{HealthCheck, HealthCheckKind};
use xlb::control::health::{BackendHealth, HealthMonitor, HealthTarget};
use xlb::lb::snapshot::DownBackends;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(80);

fn check(kind: HealthCheckKind, rise: u32, fall: u32) -> HealthCheck {
    HealthCheck {
        kind,
        port: None,
        interval: INTERVAL,
        timeout: TIMEOUT,
        rise,
        fall,
    }
}

fn target(backend: &str, port: u16, check: HealthCheck) -> HealthTarget {
    HealthTarget {
        service: "web".to_owned(),
        backend: backend.to_owned(),
        address: LOCALHOST,
        port,
        check,
    }
}

fn http(path: &str) -> HealthCheckKind {
    HealthCheckKind::Http {
        path: path.to_owned(),
        expect_status: 200,
    }
}

fn down_set(backends: &[&str]) -> DownBackends {
    backends
        .iter()
        .map(|backend| ("web".to_owned(), (*backend).to_owned()))
        .collect()
}

/// Starts a monitor whose down-set reports arrive on the returned channel.
fn monitor(targets: Vec<HealthTarget>) -> (HealthMonitor, Receiver<DownBackends>) {
    let (reports, received) = mpsc::channel();
    let monitor = HealthMonitor::start(targets, move |down| {
        let _ = reports.send(down.clone());
    });
    (monitor, received)
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn state(monitor: &HealthMonitor, backend: &str) -> BackendHealth {
    monitor
        .states()
        .into_iter()
        .find(|health| health.backend == backend)
        .unwrap_or_else(|| panic!("no state for {backend}"))
}

/// Polls until `done` holds for the backend's state, or fails after `limit`.
fn wait_for_state(
    monitor: &HealthMonitor,
    backend: &str,
    limit: Duration,
    done: impl Fn(&BackendHealth) -> bool,
) -> BackendHealth {
    let deadline = Instant::now() + limit;
    loop {
        let health = state(monitor, backend);
        if done(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "state never reached: {health:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The down-set report the check must produce within `limit`.
fn expect_report(reports: &Receiver<DownBackends>, limit: Duration) -> DownBackends {
    reports
        .recv_timeout(limit)
        .unwrap_or_else(|error| panic!("no down-set report within {limit:?}: {error}"))
}

/// Deadline for a state change: interval × count + 1 s.
fn within(count: u32) -> Duration {
    INTERVAL * count + Duration::from_secs(1)
}

#[test]
fn tcp_backend_goes_down_after_fall_failures_and_returns_after_rise_successes() {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (monitor, reports) = monitor(vec![target("a", port, check(HealthCheckKind::Tcp, 2, 3))]);
    wait_for_state(&monitor, "a", within(1), |h| h.consecutive_successes >= 2);
    assert!(monitor.down().is_empty());

    drop(listener);
    assert_eq!(expect_report(&reports, within(3)), down_set(&["a"]));
    assert_eq!(monitor.down(), down_set(&["a"]));
    let down = state(&monitor, "a");
    assert!(!down.up);
    assert!(down.consecutive_failures >= 3, "{down:?}");
    assert_eq!(down.consecutive_successes, 0);
    let error = down.last_error.unwrap();
    assert!(error.starts_with("connect: "), "{error}");

    let _listener = TcpListener::bind((LOCALHOST, port)).unwrap();
    assert_eq!(expect_report(&reports, within(2)), DownBackends::new());
    let up = state(&monitor, "a");
    assert!(up.up);
    assert!(up.consecutive_successes >= 2, "{up:?}");
    assert_eq!(up.consecutive_failures, 0);
    // The last failure stays visible for logs after the backend recovers.
    assert!(up.last_error.is_some());
}

#[test]
fn every_backend_starts_up_and_one_failure_does_not_take_it_down() {
    let mut slow = check(HealthCheckKind::Tcp, 2, 2);
    slow.interval = Duration::from_secs(30);
    let (monitor, reports) = monitor(vec![target("a", closed_port(), slow)]);
    let start = state(&monitor, "a");
    assert!(start.up);
    assert!(monitor.down().is_empty());
    // The first probe runs at once and fails; the next one is 30 s away.
    let failed = wait_for_state(&monitor, "a", within(1), |h| h.consecutive_failures == 1);
    assert!(failed.up);
    assert!(monitor.down().is_empty());
    assert_eq!(
        reports.recv_timeout(Duration::from_millis(200)),
        Err(RecvTimeoutError::Timeout)
    );
}

/// A tiny HTTP/1.1 server: answers `/healthz` with the current status, other paths 404,
/// and keeps every request head it read.
struct HttpServer {
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    fn start() -> HttpServer {
        let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (served_status, served_requests) = (Arc::clone(&status), Arc::clone(&requests));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let head = read_head(&mut stream);
                let code = if head.starts_with("GET /healthz ") {
                    served_status.load(Ordering::Relaxed)
                } else {
                    404
                };
                served_requests.lock().unwrap().push(head);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        HttpServer {
            port,
            status,
            requests,
        }
    }
}

fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn http_backend_follows_its_status_code() {
    let server = HttpServer::start();
    let (monitor, reports) = monitor(vec![target(
        "a",
        server.port,
        check(http("/healthz"), 2, 3),
    )]);
    wait_for_state(&monitor, "a", within(1), |h| h.consecutive_successes >= 1);
    let request = server.requests.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("GET /healthz HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", server.port)),
        "{request}"
    );
    assert!(request.contains("\r\nConnection: close\r\n"), "{request}");

    server.status.store(503, Ordering::Relaxed);
    assert_eq!(expect_report(&reports, within(3)), down_set(&["a"]));
    let down = state(&monitor, "a");
    assert_eq!(
        down.last_error.as_deref(),
        Some("HTTP status 503, expected 200")
    );

    server.status.store(200, Ordering::Relaxed);
    assert_eq!(expect_report(&reports, within(2)), DownBackends::new());
}

#[test]
fn http_wrong_path_is_a_status_mismatch() {
    let server = HttpServer::start();
    let (monitor, reports) = monitor(vec![target("a", server.port, check(http("/nope"), 1, 1))]);
    assert_eq!(expect_report(&reports, within(1)), down_set(&["a"]));
    assert_eq!(
        state(&monitor, "a").last_error.as_deref(),
        Some("HTTP status 404, expected 200")
    );
}

#[test]
fn http_server_that_never_answers_fails_after_the_timeout() {
    // The kernel completes the handshake from the backlog; nobody ever reads or answers.
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut slow = check(http("/healthz"), 1, 1);
    slow.interval = Duration::from_secs(30);
    slow.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let (monitor, reports) = monitor(vec![target("a", port, slow)]);
    assert_eq!(expect_report(&reports, within(1)), down_set(&["a"]));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let error = state(&monitor, "a").last_error.unwrap();
    assert_eq!(error, "no answer within 300ms");
    drop(listener);
}

#[test]
fn update_keeps_kept_targets_and_drops_removed_ones() {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let up_port = listener.local_addr().unwrap().port();
    let down_port = closed_port();
    let a = target("a", up_port, check(HealthCheckKind::Tcp, 1, 1));
    let b = target("b", down_port, check(HealthCheckKind::Tcp, 1, 1));
    let (monitor, reports) = monitor(vec![a.clone(), b.clone()]);
    assert_eq!(expect_report(&reports, within(1)), down_set(&["b"]));
    let a_before = wait_for_state(&monitor, "a", within(2), |h| h.consecutive_successes >= 3);

    // Same targets: b stays down (a fresh one would start up), a keeps counting.
    monitor.update(vec![a.clone(), b.clone()]);
    assert!(!state(&monitor, "b").up);
    assert_eq!(monitor.down(), down_set(&["b"]));
    assert!(state(&monitor, "a").consecutive_successes >= a_before.consecutive_successes);

    // b's check changes: it starts again, up, and the down set empties.
    let mut b_changed = b.clone();
    b_changed.check.fall = 2;
    monitor.update(vec![a.clone(), b_changed]);
    assert!(state(&monitor, "b").up);
    assert_eq!(expect_report(&reports, within(0)), DownBackends::new());
    assert_eq!(expect_report(&reports, within(2)), down_set(&["b"]));

    // b removed: it leaves the states and the down set.
    monitor.update(vec![a]);
    let states = monitor.states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].backend, "a");
    assert!(monitor.down().is_empty());
    assert_eq!(expect_report(&reports, within(0)), DownBackends::new());
    drop(listener);
}

/// Threads of this process whose name starts with `prefix` (names are cut at 15 bytes).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn drop_stops_the_probe_threads_and_the_callback() {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let probed = target("dropcheck", port, check(HealthCheckKind::Tcp, 1, 1));
    let (monitor, reports) = monitor(vec![probed]);
    wait_for_state(&monitor, "dropcheck", within(1), |h| {
        h.consecutive_successes >= 1
    });
    assert_eq!(threads_named("xlb-health-drop"), 1);

    drop(monitor);
    // The callback (and the report sender it owns) is gone as soon as drop returns.
    assert_eq!(reports.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    drop(listener);
    let deadline = Instant::now() + INTERVAL + TIMEOUT + Duration::from_secs(1);
    while threads_named("xlb-health-drop") > 0 {
        assert!(Instant::now() < deadline, "probe thread still running");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn targets_come_from_services_with_a_health_check() {
    let yaml = r#"
version: 1
dataplane:
  interfaces: [{ name: eth1 }]
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80, 443]
    forwarding: dsr
    health_check: { kind: http, path: /healthz }
    backends:
      - { name: node-a, address: 198.18.1.11 }
      - { name: node-b, address: "2001:db8::12" }
  - name: dns
    vips: [198.18.100.11]
    protocol: udp
    ports: [53]
    forwarding: dsr
    backends:
      - { name: node-c, address: 198.18.1.13 }
  - name: ngap
    vips: [198.18.100.20]
    protocol: sctp
    ports: [38412]
    forwarding: dsr
    health_check: { kind: sctp, port: 38413 }
    backends:
      - { name: amf-1, address: 198.18.1.21 }
"#;
    let table = xlb::config::parse(yaml, "test.yaml").unwrap();
    let targets = xlb::control::health::targets(&table);
    let summary: Vec<(&str, &str, SocketAddr)> = targets
        .iter()
        .map(|t| {
            (
                t.service.as_str(),
                t.backend.as_str(),
                SocketAddr::new(t.address, t.port),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("web", "node-a", "198.18.1.11:80".parse().unwrap()),
            ("web", "node-b", "[2001:db8::12]:80".parse().unwrap()),
            ("ngap", "amf-1", "198.18.1.21:38413".parse().unwrap()),
        ]
    );
    assert_eq!(targets[0].check.kind, http("/healthz"));
    assert_eq!(targets[2].check.kind, HealthCheckKind::Sctp);
}

/// Answers SCTP INITs on loopback through a raw socket: per destination port, with
/// INIT-ACK or ABORT under the INIT's initiate tag; other ports stay silent.
const SCTP_RESPONDER: &str = r#"
import socket, sys
from scapy.all import IP, SCTP
from scapy.layers.sctp import SCTPChunkAbort, SCTPChunkInit, SCTPChunkInitAck
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
answers = dict(arg.split(":") for arg in sys.argv[2:])
sock = socket.socket(family, socket.SOCK_RAW, 132)
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(2048)
    packet = IP(data) if family == socket.AF_INET else SCTP(data)
    if SCTP not in packet or SCTPChunkInit not in packet:
        continue
    sctp = packet[SCTP]
    answer = answers.get(str(sctp.dport))
    if answer == "init-ack":
        chunk = SCTPChunkInitAck(init_tag=0x5EED, a_rwnd=65535, n_out_streams=1,
                                 n_in_streams=1, init_tsn=1)
    elif answer == "abort":
        chunk = SCTPChunkAbort()
    else:
        continue
    tag = sctp[SCTPChunkInit].init_tag
    sock.sendto(bytes(SCTP(sport=sctp.dport, dport=sctp.sport, tag=tag) / chunk), peer)
"#;

/// The responder process; killed when dropped.
struct SctpResponder(Child);

impl SctpResponder {
    fn start(family: &str, answers: &[&str]) -> SctpResponder {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", SCTP_RESPONDER, family])
            .args(answers)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with scapy runs the SCTP responder");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "SCTP responder did not start (root and scapy needed)"
        );
        SctpResponder(child)
    }
}

impl Drop for SctpResponder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sctp_probe_is_answered_by_init_ack_or_abort() {
    let families = [
        ("4", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("6", IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for (family, address) in families {
        let _responder = SctpResponder::start(family, &["47301:init-ack", "47302:abort"]);
        let mut sctp = check(HealthCheckKind::Sctp, 1, 1);
        sctp.interval = Duration::from_secs(1);
        sctp.timeout = Duration::from_millis(500);
        let on = |backend: &str, port| HealthTarget {
            address,
            ..target(backend, port, sctp.clone())
        };
        let (monitor, reports) = monitor(vec![
            on("init-ack", 47301),
            on("abort", 47302),
            on("silent", 47303),
        ]);
        assert_eq!(expect_report(&reports, within(1)), down_set(&["silent"]));
        for answered in ["init-ack", "abort"] {
            let health = wait_for_state(&monitor, answered, within(1), |h| {
                h.consecutive_successes >= 1 || h.consecutive_failures >= 1
            });
            assert!(health.up && health.last_error.is_none(), "{health:?}");
        }
        assert_eq!(
            state(&monitor, "silent").last_error.as_deref(),
            Some("no answer within 500ms")
        );
    }
}
