//! Real AF_XDP end to end, as root: the steering program and `XskPorts` on a veth in a
//! network namespace, traffic from a peer namespace's kernel stack. Frames to the VIP
//! (and ARP/NDP for it) reach `process_batch`; a closure answers ARP and ICMP echo
//! for the VIP and the peer gets the replies; the host's own address keeps working;
//! the program disappears on Drop and when its process is SIGKILLed.

#[path = "support/netns.rs"]
mod netns;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use netns::{require_root, veth_pair, Netns};
use xlb::config::{XdpMode, ZeroCopy};
use xlb::lb::verdict::{DropReason, Verdict};
use xlb::pipeline::batch::PacketBuf;
use xlb::xsk::{
    enter_network_namespace, AttachedMode, SocketMode, SocketSpec, SteeringProgram, XskError,
    XskPorts, FRAME_SIZE,
};

const HOST4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const XLB_IF: &str = "xlb0";
const PEER_IF: &str = "peer0";

/// The xlb namespace and the peer namespace, linked by a veth.
struct Lab {
    xlb: Netns,
    peer: Netns,
    xlb_mac: [u8; 6],
}

fn lab(queues: u32) -> Lab {
    require_root();
    let xlb = Netns::new("x");
    let peer = Netns::new("p");
    veth_pair(&xlb, XLB_IF, &peer, PEER_IF, queues);
    xlb.ip(&["addr", "add", &format!("{HOST4}/24"), "dev", XLB_IF]);
    xlb.ip(&[
        "addr",
        "add",
        &format!("{HOST6}/64"),
        "dev",
        XLB_IF,
        "nodad",
    ]);
    peer.ip(&["addr", "add", &format!("{PEER4}/24"), "dev", PEER_IF]);
    peer.ip(&[
        "addr",
        "add",
        &format!("{PEER6}/64"),
        "dev",
        PEER_IF,
        "nodad",
    ]);
    let xlb_mac = xlb.mac(XLB_IF);
    Lab { xlb, peer, xlb_mac }
}

impl Lab {
    /// Moves the test thread into the xlb namespace (each test has its own thread).
    fn enter(&self) {
        enter_network_namespace(&self.xlb.name).expect("enter the xlb namespace");
    }

    fn xdp_attached(&self) -> bool {
        self.xlb.ip(&["link", "show", XLB_IF]).contains("xdp")
    }
}

fn spec(ifname: &str, queue: u32, zero_copy: ZeroCopy) -> SocketSpec {
    SocketSpec {
        ifname: ifname.to_string(),
        port: 0,
        queue,
        zero_copy,
        ring_size: 512,
    }
}

/// What the closure saw, by kind.
#[derive(Debug, Default)]
struct Seen {
    arp_for_vip: u32,
    echo_to_vip: u32,
    udp_to_vip: u32,
    ns_for_vip6: u32,
    to_host: u32,
    per_socket: [u32; 2],
}

fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Records what `buf` is and, for an ARP request or ICMP echo request to the VIP,
/// rewrites it into the reply in place. Returns whether to send it back.
fn answer(buf: &mut PacketBuf<'_>, mac: [u8; 6], seen: &mut Seen) -> bool {
    let len = buf.len;
    let frame = buf.data_mut();
    if len < 14 {
        return false;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    match ethertype {
        0x0806 if len >= 42 && frame[20..22] == [0, 1] && frame[38..42] == VIP4.octets() => {
            seen.arp_for_vip += 1;
            let (peer_mac, peer_ip) = (
                <[u8; 6]>::try_from(&frame[22..28]).unwrap(),
                <[u8; 4]>::try_from(&frame[28..32]).unwrap(),
            );
            frame[0..6].copy_from_slice(&peer_mac);
            frame[6..12].copy_from_slice(&mac);
            frame[21] = 2;
            frame[22..28].copy_from_slice(&mac);
            frame[28..32].copy_from_slice(&VIP4.octets());
            frame[32..38].copy_from_slice(&peer_mac);
            frame[38..42].copy_from_slice(&peer_ip);
            true
        }
        0x0800 if len >= 34 => {
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[30..34]).unwrap());
            if dst == HOST4 {
                seen.to_host += 1;
            }
            if dst != VIP4 {
                return false;
            }
            let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
            match frame[23] {
                1 if len >= 42 && frame[34] == 8 && 14 + total <= len => {
                    seen.echo_to_vip += 1;
                    let src_mac = <[u8; 6]>::try_from(&frame[6..12]).unwrap();
                    frame[0..6].copy_from_slice(&src_mac);
                    frame[6..12].copy_from_slice(&mac);
                    let src_ip = <[u8; 4]>::try_from(&frame[26..30]).unwrap();
                    frame[26..30].copy_from_slice(&VIP4.octets());
                    frame[30..34].copy_from_slice(&src_ip);
                    frame[34] = 0;
                    frame[36..38].copy_from_slice(&[0, 0]);
                    let checksum = ones_complement_sum(&frame[34..14 + total]);
                    frame[36..38].copy_from_slice(&checksum.to_be_bytes());
                    true
                }
                17 => {
                    seen.udp_to_vip += 1;
                    false
                }
                _ => false,
            }
        }
        0x86dd if len >= 54 => {
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
            if dst == HOST6 {
                seen.to_host += 1;
            }
            if frame[20] == 58 && len >= 78 && frame[54] == 135 && frame[62..78] == VIP6.octets() {
                seen.ns_for_vip6 += 1;
            }
            false
        }
        _ => false,
    }
}

/// Runs every socket's batches, answering with `answer`, until `command` (run in the
/// peer namespace) exits; returns its status.
fn serve_while(
    ports: &mut XskPorts,
    mut command: Command,
    mac: [u8; 6],
    seen: &mut Seen,
) -> ExitStatus {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the peer's command");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for index in 0..ports.socket_count() {
            ports.process_batch(index, 64, |_port, bufs, verdicts| {
                for (buf, verdict) in bufs.iter_mut().zip(verdicts.iter_mut()) {
                    // The buffer is the frame's whole data area: the UMEM frame less
                    // the kernel's 256-byte XDP headroom.
                    assert_eq!(buf.buf.len(), FRAME_SIZE as usize - 256);
                    seen.per_socket[index.min(1)] += 1;
                    *verdict = if answer(buf, mac, seen) {
                        Verdict::Forward(0)
                    } else {
                        Verdict::Drop(DropReason::ControlIgnored)
                    };
                }
            });
        }
        if let Some(status) = child.try_wait().expect("wait for the peer's command") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "peer command did not finish; saw {seen:?}"
        );
        ports.poll_wait(5);
    }
}

fn ping(lab: &Lab, target: &str, count: &str) -> Command {
    lab.peer
        .command("ping", &["-c", count, "-i", "0.2", "-W", "1", target])
}

fn steer_answer_and_detach(mode: XdpMode, expected: AttachedMode) {
    let lab = lab(1);
    lab.enter();
    let mut program = SteeringProgram::attach(XLB_IF, mode).expect("attach the steering program");
    assert_eq!(program.attached_mode(), expected);
    let mut ports = XskPorts::open(&[spec(XLB_IF, 0, ZeroCopy::Auto)], 2048).expect("open ports");
    for (_, queue, fd) in ports.socket_fds() {
        program
            .register_socket(queue, fd)
            .expect("register the socket");
    }
    program
        .set_vips(&[VIP4.into(), VIP6.into()])
        .expect("set VIPs");
    assert!(lab.xdp_attached(), "no xdp on {XLB_IF} after attach");
    let mac = lab.xlb_mac;
    let mut seen = Seen::default();

    // ARP for the VIP and echo requests to it reach the closure, whose replies reach
    // the peer's kernel: ping succeeds.
    let status = serve_while(
        &mut ports,
        ping(&lab, &VIP4.to_string(), "3"),
        mac,
        &mut seen,
    );
    assert!(
        status.success(),
        "ping to the VIP got no reply; saw {seen:?}"
    );
    assert!(
        seen.arp_for_vip >= 1,
        "ARP for the VIP not steered: {seen:?}"
    );
    assert!(seen.echo_to_vip >= 3, "echo requests not steered: {seen:?}");

    // The host's own addresses are served by the kernel, never steered.
    for host in [HOST4.to_string(), HOST6.to_string()] {
        let status = serve_while(&mut ports, ping(&lab, &host, "2"), mac, &mut seen);
        assert!(
            status.success(),
            "ping to host address {host} failed while xlb runs"
        );
    }
    assert_eq!(seen.to_host, 0, "host traffic was steered: {seen:?}");

    // A Neighbor Solicitation for the IPv6 VIP is steered (left unanswered here).
    serve_while(
        &mut ports,
        ping(&lab, &VIP6.to_string(), "1"),
        mac,
        &mut seen,
    );
    assert!(
        seen.ns_for_vip6 >= 1,
        "NS for the IPv6 VIP not steered: {seen:?}"
    );

    // Once the VIP leaves the set, its traffic goes to the kernel, which drops it.
    program.set_vips(&[VIP6.into()]).expect("replace VIPs");
    let before = seen.arp_for_vip + seen.echo_to_vip;
    let status = serve_while(
        &mut ports,
        ping(&lab, &VIP4.to_string(), "1"),
        mac,
        &mut seen,
    );
    assert!(!status.success(), "ping to a removed VIP was answered");
    let after = seen.arp_for_vip + seen.echo_to_vip;
    assert_eq!(after, before, "a removed VIP was still steered: {seen:?}");

    drop(ports);
    drop(program);
    assert!(
        !lab.xdp_attached(),
        "xdp still attached to {XLB_IF} after Drop"
    );
}

#[test]
fn skb_mode_steers_vip_traffic_and_passes_the_rest() {
    steer_answer_and_detach(XdpMode::Skb, AttachedMode::Skb);
}

#[test]
fn native_mode_steers_vip_traffic_and_passes_the_rest() {
    steer_answer_and_detach(XdpMode::Native, AttachedMode::Native);
}

#[test]
fn zero_copy_auto_falls_back_to_copy_and_required_fails_clearly() {
    let lab = lab(1);
    lab.enter();
    let err = XskPorts::open(&[spec(XLB_IF, 0, ZeroCopy::Required)], 2048)
        .err()
        .expect("veth has no zero-copy AF_XDP");
    assert!(matches!(err, XskError::ZeroCopyRefused { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("xlb0 queue 0") && message.contains("zero_copy: auto"),
        "{message}"
    );

    let ports = XskPorts::open(&[spec(XLB_IF, 0, ZeroCopy::Auto)], 2048).expect("copy mode");
    assert_eq!(ports.modes(), vec![SocketMode::Copy]);
}

#[test]
fn setup_errors_name_the_interface_and_queue() {
    let lab = lab(1);
    lab.enter();
    let err = SteeringProgram::attach("nosuch0", XdpMode::Auto)
        .err()
        .expect("no such interface");
    assert!(matches!(err, XskError::InterfaceMissing { .. }), "{err}");
    assert!(err.to_string().contains("nosuch0"), "{err}");

    let err = XskPorts::open(&[spec(XLB_IF, 3, ZeroCopy::Auto)], 2048)
        .err()
        .expect("queue 3 of 1");
    assert!(
        matches!(err, XskError::QueueOutOfRange { count: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("xlb0 queue 3"), "{err}");

    // Loopback has no native XDP: the error names the interface and both attempts.
    let err = SteeringProgram::attach("lo", XdpMode::Native)
        .err()
        .expect("lo has no native XDP");
    assert!(matches!(err, XskError::AttachFailed { .. }), "{err}");
    assert!(err.to_string().contains("interface lo"), "{err}");
}

#[test]
fn two_queues_serve_two_sockets() {
    let lab = lab(2);
    lab.enter();
    let mut program = SteeringProgram::attach(XLB_IF, XdpMode::Native).expect("attach");
    let specs = [
        spec(XLB_IF, 0, ZeroCopy::Auto),
        spec(XLB_IF, 1, ZeroCopy::Auto),
    ];
    let mut ports = XskPorts::open(&specs, 2048).expect("open two sockets");
    assert!(ports.shares_umem(0, 1), "one worker's sockets share a UMEM");
    for (_, queue, fd) in ports.socket_fds() {
        program.register_socket(queue, fd).expect("register");
    }
    program.set_vips(&[VIP4.into()]).expect("set VIPs");
    let mac = lab.xlb_mac.map(|b| format!("{b:02x}")).join(":");
    lab.peer.ip(&[
        "neigh",
        "add",
        &VIP4.to_string(),
        "lladdr",
        &mac,
        "dev",
        PEER_IF,
    ]);

    // Each datagram comes from a new socket, so the flows hash over both TX queues.
    let send = format!("for i in $(seq 1 64); do echo x > /dev/udp/{VIP4}/9; done");
    let mut seen = Seen::default();
    let status = serve_while(
        &mut ports,
        lab.peer.command("bash", &["-c", &send]),
        lab.xlb_mac,
        &mut seen,
    );
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.udp_to_vip < 64 && Instant::now() < deadline {
        serve_while(&mut ports, Command::new("true"), lab.xlb_mac, &mut seen);
    }
    assert_eq!(seen.udp_to_vip, 64, "{seen:?}");
    assert!(
        seen.per_socket[0] > 0 && seen.per_socket[1] > 0,
        "one queue idle: {seen:?}"
    );
}

/// Set in the child process that holds the program until it is killed.
const HOLD_ENV: &str = "XLB_TEST_HOLD_PROGRAM_IN_NETNS";

#[test]
fn program_is_detached_when_its_process_is_killed() {
    if let Ok(ns) = std::env::var(HOLD_ENV) {
        // Child: attach, report, wait to be killed.
        enter_network_namespace(&ns).expect("enter namespace");
        let _program = SteeringProgram::attach(XLB_IF, XdpMode::Skb).expect("attach");
        println!("attached");
        std::thread::sleep(Duration::from_secs(60));
        panic!("the parent should have killed this process");
    }
    let lab = lab(1);
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "program_is_detached_when_its_process_is_killed",
            "--exact",
            "--nocapture",
        ])
        .env(HOLD_ENV, &lab.xlb.name)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let stdout = child.stdout.take().expect("piped stdout");
    let attached = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("attached"));
    assert!(attached, "the holder never attached");
    assert!(
        lab.xdp_attached(),
        "holder reported attached but no xdp on {XLB_IF}"
    );
    child.kill().expect("SIGKILL the holder");
    child.wait().expect("reap the holder");
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.xdp_attached() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !lab.xdp_attached(),
        "xdp still attached after the holder was SIGKILLed"
    );
}

#[test]
fn a_frame_received_on_one_interface_leaves_on_another() {
    let lab = lab(1);
    let backend = Netns::new("b");
    veth_pair(&lab.xlb, "xlb1", &backend, "back0", 1);
    let back_mac = backend.mac("back0");
    let xlb1_mac = lab.xlb.mac("xlb1");
    lab.enter();
    let mut program = SteeringProgram::attach(XLB_IF, XdpMode::Skb).expect("attach");
    let specs = [
        spec(XLB_IF, 0, ZeroCopy::Auto),
        SocketSpec {
            port: 1,
            ..spec("xlb1", 0, ZeroCopy::Auto)
        },
    ];
    let mut ports = XskPorts::open(&specs, 2048).expect("open both interfaces");
    assert!(ports.shares_umem(0, 1), "copy-mode sockets share one UMEM");
    let (_, queue, fd) = ports.socket_fds()[0].clone();
    program.register_socket(queue, fd).expect("register");
    program.set_vips(&[VIP4.into()]).expect("set VIPs");
    let mac = lab.xlb_mac.map(|b| format!("{b:02x}")).join(":");
    lab.peer.ip(&[
        "neigh",
        "add",
        &VIP4.to_string(),
        "lladdr",
        &mac,
        "dev",
        PEER_IF,
    ]);

    // The backend holds the VIP (DSR style) and counts the datagrams its kernel accepts.
    backend.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
    backend.ip(&["route", "add", "198.18.0.0/24", "dev", "back0"]);
    let receive = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{VIP4}', 9)); s.settimeout(5); print('ready', flush=True); n = 0\n\
         try:\n    while n < 20: s.recv(64); n += 1\n\
         except OSError: pass\n\
         print(n)"
    );
    let mut receiver = backend
        .command("/usr/bin/python3", &["-c", &receive])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the backend's receiver");
    let mut received = BufReader::new(receiver.stdout.take().expect("piped")).lines();
    let ready = received.next().and_then(Result::ok);
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "the receiver did not start"
    );
    let send = format!("for i in $(seq 1 20); do echo x > /dev/udp/{VIP4}/9; done");
    let mut child = lab
        .peer
        .command("bash", &["-c", &send])
        .spawn()
        .expect("send");
    let mut forwarded = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while forwarded < 20 && Instant::now() < deadline {
        let stats = ports.process_batch(0, 64, |ingress, bufs, verdicts| {
            assert_eq!(ingress, 0);
            for (buf, verdict) in bufs.iter_mut().zip(verdicts.iter_mut()) {
                let frame = buf.data_mut();
                frame[0..6].copy_from_slice(&back_mac);
                frame[6..12].copy_from_slice(&xlb1_mac);
                // The peer's veth leaves a partial (offload) UDP checksum in the frame,
                // which a real NIC would have completed on the wire. Clear it:
                //# RFC 768: An all zero transmitted checksum value means that the
                //# transmitter generated no checksum.
                let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
                frame[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
                *verdict = Verdict::Forward(1);
            }
        });
        forwarded += stats.tx;
        ports.poll_wait(5);
    }
    child.wait().expect("sender exits");
    assert_eq!(forwarded, 20, "frames placed on xlb1's TX ring");
    // Keep kicking TX and reaping completions until the receiver has them all.
    while receiver.try_wait().expect("poll the receiver").is_none() {
        ports.process_batch(1, 64, |_, _, _| {});
        std::thread::sleep(Duration::from_millis(10));
    }
    let count = received.next().and_then(Result::ok);
    assert_eq!(
        count.as_deref(),
        Some("20"),
        "datagrams the backend received"
    );
}

/// Set in the child process that runs without capabilities.
const NO_CAPS_ENV: &str = "XLB_TEST_WITHOUT_CAPABILITIES";

#[test]
fn missing_capabilities_are_reported_as_such() {
    if std::env::var_os(NO_CAPS_ENV).is_some() {
        // Child: every capability dropped, so loading the program must be refused.
        let err = SteeringProgram::attach("lo", XdpMode::Skb)
            .err()
            .expect("attach without capabilities");
        assert!(matches!(err, XskError::PermissionDenied { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("interface lo") && message.contains("CAP_BPF"),
            "{message}"
        );
        return;
    }
    // The child starts inside a lab namespace, so it can only touch that `lo`.
    let lab = lab(1);
    let exe = std::env::current_exe().expect("test binary path");
    let exe = exe.to_str().expect("UTF-8 path");
    let status = lab
        .xlb
        .command(
            "setpriv",
            &["--bounding-set=-all", "--inh-caps=-all", "--", exe],
        )
        .args(["missing_capabilities_are_reported_as_such", "--exact"])
        .env(NO_CAPS_ENV, "1")
        .stdout(Stdio::null())
        .status()
        .expect("run setpriv (util-linux)");
    assert!(
        status.success(),
        "the capability-less child did not get PermissionDenied"
    );
}
