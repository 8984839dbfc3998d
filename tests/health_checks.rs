//! Health checks against real kernel sockets on loopback: tcp and http probes, rise and
//! fall, timeouts, reload of the target list, and stopping on drop; sctp probes against
//! a scapy responder on a raw socket (the kernel has no SCTP stack), and against real
//! usrsctp stacks in network namespaces. The sctp tests need root. `via: vip` probes run
//! through `xlb run` in the namespace lab (tests/support/lab.rs), against a backend
//! that lost its VIP.

// Shared namespace helpers; this file uses `Netns` and `veth_pair` only.
#[allow(dead_code)]
#[path = "support/netns.rs"]
mod netns;
mod support;

use std::io::{BufRead, BufReader};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use xlb::config::{HealthCheck, HealthCheckKind, HealthCheckVia};
use xlb::control::health::{BackendHealth, HealthMonitor, HealthTarget};
use xlb::lb::snapshot::DownBackends;

use netns::{veth_pair, Netns};

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
        via: HealthCheckVia::Backend,
    }
}

fn target(backend: &str, port: u16, check: HealthCheck) -> HealthTarget {
    HealthTarget {
        service: "web".to_owned(),
        backend: backend.to_owned(),
        address: LOCALHOST,
        port,
        check,
        via_vip: None,
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

/// A child process, killed when dropped (also when the test panics).
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the "ready" line a helper prints once it serves, failing with `why` if
/// it exits or says something else.
fn wait_ready(mut child: Child, why: &str) -> KilledOnDrop {
    let stdout = child.stdout.take().expect("stdout is piped");
    let child = KilledOnDrop(child);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "{why}");
    child
}

/// Starts the scapy responder for `family` ("4" or "6") with `port:answer` pairs.
fn sctp_responder(family: &str, answers: &[&str]) -> KilledOnDrop {
    let child = Command::new("/usr/bin/python3")
        .args(["-c", SCTP_RESPONDER, family])
        .args(answers)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with scapy runs the SCTP responder");
    wait_ready(
        child,
        "SCTP responder did not start (root and scapy needed)",
    )
}

/// Fails the test unless it runs as root, saying why: a skipped test would hide that.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    assert!(
        root,
        "the sctp health check tests need root (raw SCTP sockets, network namespaces, veth); run them as root, as CI does"
    );
}

/// An sctp check that goes down after one failure and up after one success.
fn sctp_check(interval: Duration, timeout: Duration) -> HealthCheck {
    HealthCheck {
        interval,
        timeout,
        ..check(HealthCheckKind::Sctp, 1, 1)
    }
}

/// Waits for the backend's first successful probe; it must be up with no failure seen.
fn expect_up_at_once(monitor: &HealthMonitor, backend: &str, limit: Duration) {
    let health = wait_for_state(monitor, backend, limit, |h| {
        h.consecutive_successes >= 1 || h.consecutive_failures >= 1
    });
    assert!(health.up && health.last_error.is_none(), "{health:?}");
}

/// Waits for the backend's first failed probe; it must be down with `error`.
fn expect_down_with(monitor: &HealthMonitor, backend: &str, limit: Duration, error: &str) {
    let health = wait_for_state(monitor, backend, limit, |h| h.consecutive_failures >= 1);
    assert!(!health.up, "{health:?}");
    assert_eq!(health.last_error.as_deref(), Some(error), "{health:?}");
}

/// A timeout no probe in these tests waits for: a backend down within a few seconds
/// under it was failed by an answer (ABORT, ICMP), not by silence.
const NEVER: Duration = Duration::from_secs(30);

#[test]
fn sctp_probe_is_up_on_init_ack_and_down_on_abort_or_silence() {
    require_root();
    let families = [
        ("4", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("6", IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for (family, address) in families {
        let _responder = sctp_responder(family, &["47301:init-ack", "47302:abort"]);
        let on = |backend: &str, port, timeout| HealthTarget {
            address,
            ..target(backend, port, sctp_check(Duration::from_secs(1), timeout))
        };
        let (monitor, _reports) = monitor(vec![
            on("init-ack", 47301, Duration::from_millis(500)),
            on("abort", 47302, NEVER),
            on("silent", 47303, Duration::from_millis(500)),
        ]);
        expect_up_at_once(&monitor, "init-ack", within(1));
        expect_down_with(
            &monitor,
            "abort",
            within(1),
            "ABORT: no SCTP listener on port 47302",
        );
        expect_down_with(&monitor, "silent", within(1), "no answer within 500ms");
        assert_eq!(monitor.down(), down_set(&["abort", "silent"]));
    }
}

/// Drives the real usrsctp stack (Debian's libusrsctp2) through ctypes: raw SCTP over
/// IP (UDP encapsulation port 0), one socket listening on the port given. The stack's
/// default `blackhole` of 0 answers an INIT to any other port with ABORT, as a kernel
/// SCTP stack does; Debian's usrsctp example programs all set blackhole=2, which drops
/// such an INIT silently instead.
const USRSCTP_SERVER: &str = r#"
import ctypes, socket, struct, sys, time
from ctypes import c_char_p, c_int, c_uint32, c_void_p
port = int(sys.argv[1])
usrsctp = ctypes.CDLL("libusrsctp.so.2")
usrsctp.usrsctp_init(0, None, None)
usrsctp.usrsctp_sysctl_set_sctp_blackhole(0)
usrsctp.usrsctp_socket.restype = c_void_p
usrsctp.usrsctp_socket.argtypes = [c_int, c_int, c_int, c_void_p, c_void_p, c_uint32, c_void_p]
usrsctp.usrsctp_bind.argtypes = [c_void_p, c_char_p, c_uint32]
usrsctp.usrsctp_listen.argtypes = [c_void_p, c_int]
sock = usrsctp.usrsctp_socket(socket.AF_INET, socket.SOCK_STREAM, 132, None, None, 0, None)
assert sock, "usrsctp_socket failed"
# struct sockaddr_in: family in host order, port and address in network order.
addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port, bytes(4))
assert usrsctp.usrsctp_bind(sock, addr, len(addr)) == 0, "usrsctp_bind failed"
assert usrsctp.usrsctp_listen(sock, 1) == 0, "usrsctp_listen failed"
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// Debian's usrsctp throughput server (libusrsctp-examples).
const TSCTP: &str = "/usr/lib/usrsctp/tsctp";

/// Host of the ctypes usrsctp server and the port it listens on.
const USRSCTP_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
const USRSCTP_PORT: u16 = 38412;
/// Host of Debian's tsctp server and the port it listens on.
const TSCTP_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 201, 2);
const TSCTP_PORT: u16 = 5001;
/// A live host whose kernel has no SCTP: it answers with ICMP protocol unreachable.
const NO_SCTP_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 202, 2);
/// An address on that host's link where no host answers at all.
const NO_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 202, 9);

/// The real-stack lab: namespace `probe` holds one veth to each of three hosts, each
/// host in its own namespace: the ctypes usrsctp server, Debian's tsctp server, and a
/// host with only the kernel (no SCTP module). usrsctp reads SCTP from a raw socket and
/// will not send from addresses on `lo`, hence the veths. One usrsctp process per host:
/// each one's raw socket sees every SCTP packet, and would ABORT INITs for the other's
/// port. Fields drop in order: servers are killed before the namespaces go.
struct SctpLab {
    _servers: Vec<KilledOnDrop>,
    probe: Netns,
    _hosts: Vec<Netns>,
}

impl SctpLab {
    fn up() -> SctpLab {
        assert!(
            std::path::Path::new(TSCTP).exists(),
            "{TSCTP} is missing: install Debian's libusrsctp-examples"
        );
        let probe = Netns::new("hcprobe");
        let mut hosts = Vec::new();
        for (n, (tag, host)) in [
            ("hcusrsctp", USRSCTP_HOST),
            ("hctsctp", TSCTP_HOST),
            ("hcnosctp", NO_SCTP_HOST),
        ]
        .into_iter()
        .enumerate()
        {
            let ns = Netns::new(tag);
            let link = format!("veth{n}");
            veth_pair(&probe, &link, &ns, "eth0", 1);
            let [a, b, c, _] = host.octets();
            probe.ip(&["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", &link]);
            ns.ip(&["addr", "add", &format!("{host}/24"), "dev", "eth0"]);
            // Checksums are computed in software: a raw socket never sees a frame whose
            // CRC was left to an offload that veth never performs.
            ethtool_tx_off(&probe, &link);
            ethtool_tx_off(&ns, "eth0");
            hosts.push(ns);
        }
        let usrsctp = hosts[0]
            .command(
                "/usr/bin/python3",
                &["-c", USRSCTP_SERVER, &USRSCTP_PORT.to_string()],
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the usrsctp server");
        let usrsctp = wait_ready(
            usrsctp,
            "usrsctp server did not start (root and Debian's libusrsctp2 needed)",
        );
        let tsctp = hosts[1]
            .command(
                TSCTP,
                &["-E", "0", "-U", "0", "-p", &TSCTP_PORT.to_string()],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run tsctp");
        let tsctp = KilledOnDrop(tsctp);
        wait_for_raw_sctp_socket(&tsctp);
        SctpLab {
            _servers: vec![usrsctp, tsctp],
            probe,
            _hosts: hosts,
        }
    }
}

/// Waits until `server` has opened its raw SCTP socket: before that, its host's kernel
/// answers an INIT with ICMP protocol unreachable. tsctp prints nothing when it is
/// ready; it listens right after, and a probe that comes first is only silent.
fn wait_for_raw_sctp_socket(server: &KilledOnDrop) {
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Until `ip netns exec` has become tsctp, it may still be in the host's
        // namespace, whose raw sockets (another test's responder) do not count.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        // /proc/PID/net shows the network namespace of that process.
        let raw = if exe == std::path::Path::new(TSCTP) {
            std::fs::read_to_string(format!("/proc/{pid}/net/raw")).unwrap_or_default()
        } else {
            String::new()
        };
        // A raw socket shows its protocol as its local port: 132 is 0x84.
        let open = raw.lines().any(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.ends_with(":0084"))
        });
        if open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{TSCTP} opened no raw SCTP socket within 5 s:\n{raw}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `ethtool -K ifname tx off` inside `ns`.
fn ethtool_tx_off(ns: &Netns, ifname: &str) {
    let out = ns.output("ethtool", &["-K", ifname, "tx", "off"]);
    assert!(
        out.status.success(),
        "ethtool -K {ifname} tx off in {}: {}",
        ns.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `work` on a new thread moved into namespace `ns`. Threads inherit their
/// creator's network namespace, so a monitor started there probes from `ns`, while the
/// host's network and the test harness's threads stay untouched.
fn in_netns<T: Send + 'static>(ns: &Netns, work: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name.clone();
    let worker = thread::spawn(move || {
        xlb::xsk::enter_network_namespace(&name)
            .unwrap_or_else(|e| panic!("entering network namespace {name}: {e}"));
        work()
    });
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn sctp_probe_against_real_usrsctp_stacks() {
    require_root();
    let lab = SctpLab::up();
    let short = Duration::from_secs(1);
    let at = |backend: &str, host: Ipv4Addr, port, timeout| HealthTarget {
        address: IpAddr::V4(host),
        ..target(
            backend,
            port,
            sctp_check(Duration::from_millis(200), timeout),
        )
    };
    let targets = vec![
        at("usrsctp-listening", USRSCTP_HOST, USRSCTP_PORT, short),
        at("usrsctp-closed", USRSCTP_HOST, USRSCTP_PORT + 1, NEVER),
        at("tsctp-listening", TSCTP_HOST, TSCTP_PORT, short),
        at("tsctp-closed", TSCTP_HOST, TSCTP_PORT + 1, short),
        at("no-sctp-stack", NO_SCTP_HOST, USRSCTP_PORT, NEVER),
        at("no-host", NO_HOST, USRSCTP_PORT, short),
    ];
    in_netns(&lab.probe, move || {
        let (monitor, _reports) = monitor(targets);
        let limit = Duration::from_secs(10);
        // The server was listening before the first probe: INIT-ACK at once.
        expect_up_at_once(&monitor, "usrsctp-listening", limit);
        // Same stack, no listener: it ABORTs the INIT, long before the timeout.
        expect_down_with(
            &monitor,
            "usrsctp-closed",
            limit,
            &format!("ABORT: no SCTP listener on port {}", USRSCTP_PORT + 1),
        );
        // tsctp may not listen yet at the very first probe; it answers soon after.
        wait_for_state(&monitor, "tsctp-listening", limit, |h| {
            h.up && h.consecutive_successes >= 1
        });
        // tsctp sets blackhole=2: an INIT to a closed port is dropped, as by a dead host.
        expect_down_with(&monitor, "tsctp-closed", limit, "no answer within 1s");
        // The kernel has no SCTP: it answers ICMP protocol unreachable, long before the
        // timeout.
        expect_down_with(
            &monitor,
            "no-sctp-stack",
            limit,
            &format!("ICMP: {NO_SCTP_HOST} has no SCTP stack (protocol unreachable)"),
        );
        expect_down_with(&monitor, "no-host", limit, "no answer within 1s");
        assert_eq!(
            monitor.down(),
            down_set(&["usrsctp-closed", "tsctp-closed", "no-sctp-stack", "no-host"])
        );
    });
}

/// A DSR lab service per family whose health check probes `via`; b2 lost its VIPs.
fn via_config(via: &str) -> String {
    let check =
        format!("{{ kind: tcp, interval: 300ms, timeout: 200ms, rise: 1, fall: 2, via: {via} }}");
    format!(
        r#"version: 1
dataplane:
  interfaces: [{{ name: eth0 }}]
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    health_check: {check}
    backends:
      - {{ name: b1, address: 198.18.1.11 }}
      - {{ name: b2, address: 198.18.1.12 }}
      - {{ name: b3, address: 198.18.1.13 }}
  - name: web6
    vips: ["2001:db8:100::10"]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    health_check: {check}
    backends:
      - {{ name: b1, address: "2001:db8::1:11" }}
      - {{ name: b2, address: "2001:db8::1:12" }}
      - {{ name: b3, address: "2001:db8::1:13" }}
"#
    )
}

/// `xlb_backend_up` per (service, backend) from a scrape.
fn backends_up(lab: &support::lab::Lab) -> Vec<(String, String, u8)> {
    let body = lab.scrape();
    let mut up = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("xlb_backend_up{") else {
            continue;
        };
        let label = |name: &str| {
            let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
            Some(rest[start..start + rest[start..].find('"')?].to_owned())
        };
        let value = rest.rsplit(' ').next().unwrap_or_default() == "1";
        up.push((
            label("service").unwrap(),
            label("backend").unwrap(),
            u8::from(value),
        ));
    }
    up.sort();
    up
}

/// Polls until every backend's up state is `expect(service, backend)`, or fails.
fn wait_backends(lab: &support::lab::Lab, expect: impl Fn(&str, &str) -> u8, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = backends_up(lab);
        if up.len() == 6 && up.iter().all(|(s, b, v)| expect(s, b) == *v) {
            return;
        }
        assert!(Instant::now() < deadline, "{why}: {up:?}\n{}", lab.log());
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn via_vip_catches_a_backend_missing_its_vip_and_traffic_avoids_it() {
    let mut lab = support::lab::Lab::up("hvip", 1);
    for vip in ["198.18.100.10/32", "2001:db8:100::10/128"] {
        lab.ns_output("b2", "ip", &["addr", "del", vip, "dev", "vip0"]);
    }
    let sources = |ipv6| support::lab::client_sources(ipv6);

    // Probing the backend's own address: b2 listens there, so after three rounds of
    // probes (fall is 2) it is still up, though the SYNs Maglev gives it die.
    lab.start_xlb(&via_config("backend"));
    thread::sleep(Duration::from_secs(1));
    wait_backends(&lab, |_, _| 1, "via: backend probes the backend's address");

    // Probing the VIP through the forwarding path: b2 is silent and goes down, the
    // others stay up, and every connection lands on b1 or b3.
    std::fs::write(lab.config_path(), via_config("vip")).unwrap();
    lab.signal_xlb("-HUP");
    wait_backends(
        &lab,
        |_, backend| u8::from(backend != "b2"),
        "via: vip takes b2 down, keeps b1 and b3",
    );
    for (vip, ipv6) in [("198.18.100.10", false), ("2001:db8:100::10", true)] {
        let summary = lab.client("tcp", vip, 80, 100, &sources(ipv6));
        assert_eq!(summary.failed, 0, "{vip}: {summary:?}\n{}", lab.log());
        assert!(
            summary.answers.contains_key("b1") && summary.answers.contains_key("b3"),
            "{vip}: {summary:?}"
        );
    }
    let log = lab.log();
    assert!(
        log.contains("does the backend hold the VIP?"),
        "the down reason names the VIP:\n{log}"
    );

    // b2 gets its VIPs back: the same probe brings it up again.
    lab.ns_output(
        "b2",
        "ip",
        &["addr", "add", "198.18.100.10/32", "dev", "vip0"],
    );
    lab.ns_output(
        "b2",
        "ip",
        &[
            "addr",
            "add",
            "2001:db8:100::10/128",
            "dev",
            "vip0",
            "nodad",
        ],
    );
    wait_backends(&lab, |_, _| 1, "b2 holds the VIPs again");
    assert!(lab.stop_xlb().success());
}

#[test]
fn via_vip_is_validated() {
    let table = |forwarding: &str, check: &str| {
        let extra = if forwarding == "nat" {
            "  nat: { addresses: [198.18.0.3] }\n"
        } else {
            ""
        };
        xlb::config::parse(
            &format!(
                "version: 1\ndataplane:\n  interfaces: [{{ name: eth1 }}]\n{extra}services:\n  - name: web\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: {forwarding}\n    health_check: {check}\n    backends: [{{ name: a, address: 198.18.1.11 }}]\n"
            ),
            "via.yaml",
        )
    };
    let error = |forwarding, check| table(forwarding, check).unwrap_err().to_string();
    let nat = error("nat", "{ kind: tcp, via: vip }");
    assert!(
        nat.contains("health_check.via") && nat.contains("nat backend never holds the VIP"),
        "{nat}"
    );
    let http = error("dsr", "{ kind: http, via: vip }");
    assert!(http.contains("use kind tcp"), "{http}");
    let unknown = error("dsr", "{ kind: tcp, via: somewhere }");
    assert!(unknown.contains("via"), "{unknown}");

    let targets = |check| xlb::control::health::targets(&table("dsr", check).unwrap());
    assert_eq!(targets("{ kind: tcp }")[0].via_vip, None);
    let via = targets("{ kind: tcp, via: vip }")[0]
        .via_vip
        .clone()
        .unwrap();
    assert_eq!(via.vip, "198.18.100.10".parse::<IpAddr>().unwrap());
    assert_eq!(via.delivery, xlb::control::health::Delivery::Dsr);
}
