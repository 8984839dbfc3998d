//! Active health checks of backends (issue 5): every backend of a service with a
//! `health_check` is probed on its own thread, off the packet path, and moves between up
//! and down after `fall` failures and `rise` successes. The owner hears the set of down
//! backends through a callback and rebuilds the snapshot with it.
//!
//! A check with `via: vip` probes the service's VIP through the forwarding path instead
//! of the backend's own address (Katran's health-check encapsulation): the SYN or INIT
//! goes out in the frame the dataplane would send that backend (DSR: the backend's
//! next-hop MAC and the VIP as destination; IPIP or GUE around it), and the SYN-ACK or
//! INIT-ACK comes from the VIP back to this node's address, where a raw socket catches
//! it. A backend that listens but lacks the VIP is silent, and goes down.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use smoltcp::wire::{TcpPacket, TcpSeqNumber, ETHERNET_HEADER_LEN, TCP_HEADER_LEN};

use crate::config::{Forwarding, HealthCheck, HealthCheckKind, HealthCheckVia, ServiceTable};
use crate::control::neighbor;
use crate::lb::snapshot::DownBackends;
use crate::sys::PacketSender;
use crate::wire::encap;
use crate::wire::frames::{self, tcp_flags, FrameSpec, Transport};
use crate::wire::headers::protocol;
use crate::wire::sctp::{ChunkRepr, ChunkType, Packet, PacketRepr};

/// One backend to probe: the owner derives these from the table with [`targets`] and hands
/// them to [`HealthMonitor::start`] and [`HealthMonitor::update`].
#[derive(Clone, Debug, PartialEq)]
pub struct HealthTarget {
    /// Service the backend belongs to, as named in the table.
    pub service: String,
    /// Backend name, unique within the service.
    pub backend: String,
    /// Address probed: the backend's address.
    pub address: IpAddr,
    /// Port probed: the check's port, or the service's first port.
    pub port: u16,
    /// How and how often to probe.
    pub check: HealthCheck,
    /// With `via: vip`: the VIP probed and how the dataplane delivers to this backend.
    pub via_vip: Option<VipPath>,
}

/// The forwarding path of a `via: vip` probe: the frame goes to `vip`, delivered to the
/// backend as the dataplane would deliver a client's packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipPath {
    /// The service's first VIP: the probe's destination.
    pub vip: IpAddr,
    /// How the frame reaches the backend.
    pub delivery: Delivery,
    /// The backend's configured MAC; else the kernel's neighbour entry, as for traffic.
    pub mac: Option<[u8; 6]>,
}

/// How the dataplane hands a backend its packets (the service's `forwarding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The frame as is, to the backend's next-hop MAC.
    Dsr,
    /// Inside IPIP or IP6IP6 from `source` (the table's encapsulation source of the
    /// backend's family; none if the table lacks it, which fails every probe).
    Ipip {
        /// Outer source address.
        source: Option<IpAddr>,
    },
    /// Inside GUE from `source` to UDP `port`.
    Gue {
        /// Outer source address.
        source: Option<IpAddr>,
        /// The GUE UDP destination port.
        port: u16,
    },
}

/// The backends of every service that has a `health_check`, each with the port to probe
/// (the check's port, else the service's first port; a service without ports is skipped).
pub fn targets(table: &ServiceTable) -> Vec<HealthTarget> {
    let mut targets = Vec::new();
    for service in &table.services {
        let Some(check) = &service.health_check else {
            continue;
        };
        let Some(port) = check.port.or_else(|| service.ports.first().copied()) else {
            continue;
        };
        let outer = &table.dataplane.encapsulation;
        for backend in &service.backends {
            let source = match backend.address {
                IpAddr::V4(_) => outer.source_v4.map(IpAddr::V4),
                IpAddr::V6(_) => outer.source_v6.map(IpAddr::V6),
            };
            let delivery = match service.forwarding {
                Forwarding::Ipip => Some(Delivery::Ipip { source }),
                Forwarding::Gue => Some(Delivery::Gue {
                    source,
                    port: outer.gue_port,
                }),
                Forwarding::Dsr => Some(Delivery::Dsr),
                // Validation refuses `via: vip` for nat: the backend never holds the VIP.
                Forwarding::Nat => None,
            };
            let via_vip = match (check.via, delivery, service.vips.first()) {
                (HealthCheckVia::Vip, Some(delivery), Some(vip)) => Some(VipPath {
                    vip: *vip,
                    delivery,
                    mac: backend.mac,
                }),
                _ => None,
            };
            targets.push(HealthTarget {
                service: service.name.clone(),
                backend: backend.name.clone(),
                address: backend.address,
                port,
                check: check.clone(),
                via_vip,
            });
        }
    }
    targets
}

/// What the monitor knows of one backend, for metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendHealth {
    /// Service the backend belongs to.
    pub service: String,
    /// Backend name.
    pub backend: String,
    /// Address probed.
    pub address: IpAddr,
    /// Port probed.
    pub port: u16,
    /// Whether the backend takes new flows; every backend starts up.
    pub up: bool,
    /// Probes in a row that succeeded (0 after a failure).
    pub consecutive_successes: u32,
    /// Probes in a row that failed (0 after a success).
    pub consecutive_failures: u32,
    /// Why the most recent failed probe failed; kept after later successes.
    pub last_error: Option<String>,
}

/// Why one probe failed; its text becomes [`BackendHealth::last_error`].
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// No answer within the check's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The TCP connection was refused, reset or unroutable.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The connection broke while the request or response was in flight.
    #[error("{0}")]
    Io(io::Error),
    /// The server closed the connection before a whole status line came.
    #[error("connection closed before an HTTP status line")]
    ClosedEarly,
    /// The first line is not an HTTP/1.x status line.
    #[error("not an HTTP status line: {0:?}")]
    BadStatusLine(String),
    /// The server answered, but with another status.
    #[error("HTTP status {got}, expected {expected}")]
    Status {
        /// Status code received.
        got: u16,
        /// Status code the check expects.
        expected: u16,
    },
    /// The raw SCTP socket could not be opened or used (it needs CAP_NET_RAW).
    #[error("raw SCTP socket: {0}")]
    RawSocket(io::Error),
    /// The backend's SCTP stack answered our INIT with ABORT: no application listens on
    /// the port, so an association would be refused too.
    #[error("ABORT: no SCTP listener on port {0}")]
    Abort(u16),
    /// The backend's host answered our INIT with ICMP protocol unreachable (IPv4) or
    /// parameter problem (IPv6): it runs no SCTP stack at all.
    #[error("ICMP: {0} has no SCTP stack (protocol unreachable)")]
    NoSctpStack(IpAddr),
    /// `via: vip`: the frame to the backend could not be made (no route or neighbour, no
    /// address of the VIP's family on the egress interface, no encapsulation source).
    #[error("path to the backend: {0}")]
    Path(String),
    /// `via: vip`: the AF_PACKET socket could not be opened or sent on (it needs
    /// CAP_NET_RAW).
    #[error("AF_PACKET socket: {0}")]
    PacketSocket(io::Error),
    /// `via: vip`: the raw socket that catches the answer could not be opened or read.
    #[error("raw socket for the answer: {0}")]
    Capture(io::Error),
    /// `via: vip`: the backend holds the VIP but refused the connection (RST).
    #[error("RST: nothing listens on {0} at the backend")]
    Refused(SocketAddr),
    /// `via: vip`: no answer from the VIP: the backend does not hold it, or is dead.
    #[error("no answer from {vip} through the forwarding path within {timeout:?}; does the backend hold the VIP?")]
    VipSilent {
        /// The VIP and port probed.
        vip: SocketAddr,
        /// The check's timeout.
        timeout: Duration,
    },
}

impl ProbeError {
    /// Sorts an I/O error from a socket with a deadline: a timeout is not a broken socket.
    fn from_io(error: io::Error, timeout: Duration) -> ProbeError {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ProbeError::Timeout(timeout),
            _ => ProbeError::Io(error),
        }
    }
}

/// The callback told about every change of the down set.
type OnChange = Box<dyn Fn(&DownBackends) + Send>;

/// Key of a target: (service name, backend name), as in [`DownBackends`].
type TargetKey = (String, String);

/// One probed backend inside the monitor.
struct TargetEntry {
    target: HealthTarget,
    health: BackendHealth,
    /// Tells results of this entry's thread from those of a replaced one.
    probe_id: u64,
    /// Never sent on: dropping it (entry removed or replaced, monitor dropped) wakes the
    /// probe thread from its sleep and ends it.
    _stop: Sender<()>,
}

/// State shared by the monitor, its probe threads and its notifier thread.
struct Shared {
    entries: Mutex<HashMap<TargetKey, TargetEntry>>,
    next_probe_id: AtomicU64,
}

/// What recording a probe result did.
enum Recorded {
    /// The target was removed or replaced: its thread ends.
    Gone,
    /// The backend went up or down.
    Changed,
    /// Counters moved, state did not.
    Unchanged,
}

impl Shared {
    fn down(&self) -> DownBackends {
        self.entries
            .lock()
            .iter()
            .filter(|(_, entry)| !entry.health.up)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Applies one probe result to the rise/fall state of the target, logging changes.
    fn record(&self, key: &TargetKey, probe_id: u64, outcome: Result<(), ProbeError>) -> Recorded {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(key).filter(|e| e.probe_id == probe_id) else {
            return Recorded::Gone;
        };
        let check = &entry.target.check;
        let health = &mut entry.health;
        let was_up = health.up;
        match outcome {
            Ok(()) => {
                health.consecutive_successes = health.consecutive_successes.saturating_add(1);
                health.consecutive_failures = 0;
                if !health.up && health.consecutive_successes >= check.rise {
                    health.up = true;
                    tracing::info!(
                        service = %health.service,
                        backend = %health.backend,
                        address = %health.address,
                        port = health.port,
                        successes = health.consecutive_successes,
                        "backend is up"
                    );
                }
            }
            Err(error) => {
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                health.consecutive_successes = 0;
                let error = error.to_string();
                if health.up && health.consecutive_failures >= check.fall {
                    health.up = false;
                    tracing::warn!(
                        service = %health.service,
                        backend = %health.backend,
                        address = %health.address,
                        port = health.port,
                        failures = health.consecutive_failures,
                        %error,
                        "backend is down"
                    );
                } else {
                    tracing::debug!(
                        service = %health.service,
                        backend = %health.backend,
                        %error,
                        "health probe failed"
                    );
                }
                health.last_error = Some(error);
            }
        }
        if health.up == was_up {
            Recorded::Unchanged
        } else {
            Recorded::Changed
        }
    }
}

/// Probes backends off the packet path and tracks which are down.
///
/// Each target has its own thread, so a slow backend never delays another's schedule;
/// one more thread calls `on_change`, so probes never wait for the owner's rebuild.
/// Dropping the monitor stops every thread: sleeping ones at once, one in the middle of
/// a probe when the probe ends (within its timeout), and `on_change` is never called
/// after the drop returns.
pub struct HealthMonitor {
    shared: Arc<Shared>,
    on_change: Arc<Mutex<Option<OnChange>>>,
    /// Wakes the notifier thread; bounded to one, so bursts of changes coalesce.
    changed: Sender<()>,
}

impl HealthMonitor {
    /// Starts probing `targets`, each on its own thread, at once and then every interval.
    /// Every target starts up, so start-up never black-holes a service. State changes are
    /// logged; `on_change` gets the full set of down backends after each change, on the
    /// monitor's own thread.
    pub fn start(
        targets: Vec<HealthTarget>,
        on_change: impl Fn(&DownBackends) + Send + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            entries: Mutex::new(HashMap::new()),
            next_probe_id: AtomicU64::new(0),
        });
        let on_change: Arc<Mutex<Option<OnChange>>> =
            Arc::new(Mutex::new(Some(Box::new(on_change))));
        let (changed, changes) = channel::bounded(1);
        let notifier_shared = Arc::clone(&shared);
        let notifier_callback = Arc::clone(&on_change);
        if let Err(error) = thread::Builder::new()
            .name("xlb-health-notify".to_owned())
            .spawn(move || deliver_changes(&notifier_shared, &notifier_callback, &changes))
        {
            tracing::error!(%error, "health check notifier thread could not start; down backends will not be reported");
        }
        let monitor = HealthMonitor {
            shared,
            on_change,
            changed,
        };
        tracing::info!(targets = targets.len(), "health checks starting");
        monitor.update(targets);
        monitor
    }

    /// Replaces the target list (on reload). A target kept with the same service, backend,
    /// address, port and check keeps its state and its schedule; a changed one starts
    /// again, up; a removed one stops being probed and leaves the down set.
    pub fn update(&self, targets: Vec<HealthTarget>) {
        let down_before = self.down();
        {
            let mut entries = self.shared.entries.lock();
            let mut previous = std::mem::take(&mut *entries);
            for target in targets {
                let key = (target.service.clone(), target.backend.clone());
                let entry = match previous.remove(&key) {
                    Some(entry) if entry.target == target => entry,
                    _ => self.spawn_probe(key.clone(), target),
                };
                entries.insert(key, entry);
            }
            // `previous` now holds the removed targets: dropping it ends their threads.
        }
        if self.down() != down_before {
            self.notify();
        }
    }

    /// The state of every target, for metrics and logs.
    pub fn states(&self) -> Vec<BackendHealth> {
        self.shared
            .entries
            .lock()
            .values()
            .map(|entry| entry.health.clone())
            .collect()
    }

    /// The backends currently down, as [`crate::lb::snapshot::Snapshot::build`] takes them.
    pub fn down(&self) -> DownBackends {
        self.shared.down()
    }

    fn notify(&self) {
        // A full channel means a wake-up is pending; the notifier reads the latest state.
        let _ = self.changed.try_send(());
    }

    /// Starts the probe thread of a new target and returns its entry.
    fn spawn_probe(&self, key: TargetKey, target: HealthTarget) -> TargetEntry {
        let probe_id = self.shared.next_probe_id.fetch_add(1, Ordering::Relaxed);
        let (stop, stopped) = channel::bounded::<()>(0);
        let mut health = BackendHealth {
            service: target.service.clone(),
            backend: target.backend.clone(),
            address: target.address,
            port: target.port,
            up: true,
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_error: None,
        };
        let shared = Arc::clone(&self.shared);
        let changed = self.changed.clone();
        let probed = target.clone();
        let spawned = thread::Builder::new()
            // A thread name cannot hold NUL; the backend name comes from the file.
            .name(format!("xlb-health-{}", target.backend.replace('\0', "")))
            .stack_size(256 * 1024)
            .spawn(move || run_probes(&shared, &key, probe_id, &probed, &stopped, &changed));
        if let Err(error) = spawned {
            tracing::error!(
                service = %target.service,
                backend = %target.backend,
                %error,
                "health probe thread could not start; the backend stays up unprobed"
            );
            health.last_error = Some(format!("probe thread could not start: {error}"));
        }
        TargetEntry {
            target,
            health,
            probe_id,
            _stop: stop,
        }
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        // Waits for a callback in progress; after this no callback runs.
        self.on_change.lock().take();
        // Drops every stop sender: sleeping probe threads wake and end.
        self.shared.entries.lock().clear();
    }
}

/// A probe thread: probes at once, then every interval, until its entry goes away.
fn run_probes(
    shared: &Shared,
    key: &TargetKey,
    probe_id: u64,
    target: &HealthTarget,
    stopped: &Receiver<()>,
    changed: &Sender<()>,
) {
    loop {
        let started = Instant::now();
        match shared.record(key, probe_id, probe(target)) {
            Recorded::Gone => return,
            Recorded::Changed => {
                let _ = changed.try_send(());
            }
            Recorded::Unchanged => {}
        }
        let next = started + target.check.interval;
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The notifier thread: hands the owner each new down set, latest state only.
fn deliver_changes(shared: &Shared, on_change: &Mutex<Option<OnChange>>, changes: &Receiver<()>) {
    let mut delivered = DownBackends::new();
    for () in changes.iter() {
        let down = shared.down();
        if down == delivered {
            continue;
        }
        let callback = on_change.lock();
        let Some(callback) = callback.as_ref() else {
            return;
        };
        callback(&down);
        delivered = down;
    }
}

/// One probe of one target, bounded by the check's timeout.
fn probe(target: &HealthTarget) -> Result<(), ProbeError> {
    let address = SocketAddr::new(target.address, target.port);
    let timeout = target.check.timeout;
    if let Some(path) = &target.via_vip {
        return probe_via_vip(target, path);
    }
    match &target.check.kind {
        HealthCheckKind::Tcp => probe_tcp(address, timeout),
        HealthCheckKind::Http {
            path,
            expect_status,
        } => probe_http(address, path, *expect_status, timeout),
        HealthCheckKind::Sctp => probe_sctp(address, timeout),
    }
}

/// Time left before `deadline`, or the probe's timeout error when none is left.
fn remaining(deadline: Instant, timeout: Duration) -> Result<Duration, ProbeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ProbeError::Timeout(timeout))
    } else {
        Ok(left)
    }
}

fn connect(address: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    TcpStream::connect_timeout(&address, timeout).map_err(|error| match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ProbeError::Timeout(timeout),
        _ => ProbeError::Connect(error),
    })
}

/// `tcp`: the handshake completes within the timeout.
fn probe_tcp(address: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    connect(address, timeout).map(drop)
}

/// Longest status line read; a longer first line is not HTTP.
const MAX_STATUS_LINE: usize = 512;

/// `http`: `GET path` answers with `expect_status`, all within the timeout.
fn probe_http(
    address: SocketAddr,
    path: &str,
    expect_status: u16,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(address, timeout)?;
    //# RFC 9112 §3.2: A client MUST send a Host header field in all HTTP/1.1 request
    //# messages. [...] the Host field value MUST be identical to [the] authority
    //# component, excluding any userinfo subcomponent and its "@" delimiter.
    //# RFC 9112 §9.6: A client that does not support persistent connections MUST send
    //# the "close" connection option in every request message.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: xlb-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .set_write_timeout(Some(remaining(deadline, timeout)?))
        .map_err(ProbeError::Io)?;
    stream
        .write_all(request.as_bytes())
        .map_err(|error| ProbeError::from_io(error, timeout))?;
    let mut head = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    loop {
        if let Some(end) = head[..len].iter().position(|&byte| byte == b'\n') {
            return check_status_line(&head[..end], expect_status);
        }
        if len == head.len() {
            return Err(ProbeError::BadStatusLine(
                String::from_utf8_lossy(&head[..32]).into_owned(),
            ));
        }
        stream
            .set_read_timeout(Some(remaining(deadline, timeout)?))
            .map_err(ProbeError::Io)?;
        match stream.read(&mut head[len..]) {
            Ok(0) => return Err(ProbeError::ClosedEarly),
            Ok(read) => len += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(ProbeError::from_io(error, timeout)),
        }
    }
}

/// Compares the status code of an HTTP/1.x status line (without its line feed).
fn check_status_line(line: &[u8], expect_status: u16) -> Result<(), ProbeError> {
    //# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    //# [...] The status-code element is a 3-digit integer code
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = || ProbeError::BadStatusLine(String::from_utf8_lossy(line).into_owned());
    let mut fields = line.splitn(3, |&byte| byte == b' ');
    let version = fields.next().unwrap_or_default();
    let code = fields.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") || code.len() != 3 {
        return Err(bad());
    }
    let got = std::str::from_utf8(code)
        .ok()
        .filter(|code| code.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(bad)?;
    if got == expect_status {
        Ok(())
    } else {
        Err(ProbeError::Status {
            got,
            expected: expect_status,
        })
    }
}

/// `sctp`: an INIT sent through a raw socket is answered by the backend's INIT-ACK
/// within the timeout, so an SCTP application listens on the port. An ABORT (nothing
/// listens) or an ICMP error (no SCTP stack) fails the probe at once; silence fails it
/// at the timeout. No state is left behind, since the INIT-ACK's cookie is never echoed.
fn probe_sctp(address: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let socket = Socket::new(
        Domain::for_address(address),
        Type::RAW,
        Some(Protocol::from(i32::from(protocol::SCTP))),
    )
    .map_err(ProbeError::RawSocket)?;
    // A connected raw socket only receives packets from the backend's address, and the
    // kernel reports ICMP errors about our INIT on it.
    socket
        .connect(&SockAddr::from(SocketAddr::new(address.ip(), 0)))
        .map_err(ProbeError::RawSocket)?;
    let initiate_tag = random_tag();
    // An ephemeral source port (49152..=65535) taken from the tag.
    let source_port = 49152 | (initiate_tag as u16);
    //# RFC 9260 §8.5.1: A) Rules for packets carrying INIT: The sender MUST set the
    //# Verification Tag of the packet to 0.
    let init = PacketRepr {
        src_port: source_port,
        dst_port: address.port(),
        verification_tag: 0,
        chunks: &[ChunkRepr::Init {
            initiate_tag,
            a_rwnd: 65535,
            outbound_streams: 1,
            inbound_streams: 1,
            initial_tsn: initiate_tag,
            addresses: &[],
        }],
    };
    let mut sent = [0u8; 64];
    let len = init.emit(&mut Packet::new_unchecked(&mut sent[..]));
    socket
        .send(&sent[..len])
        .map_err(|error| sctp_io_error(error, address, timeout))?;
    let mut received = [0u8; 2048];
    loop {
        socket
            .set_read_timeout(Some(remaining(deadline, timeout)?))
            .map_err(ProbeError::RawSocket)?;
        let read = match (&socket).read(&mut received) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(sctp_io_error(error, address, timeout)),
        };
        let datagram = received.get(..read).unwrap_or_default();
        // IPv4 raw sockets deliver the IP header; IPv6 raw sockets do not.
        let sctp = match address {
            SocketAddr::V4(_) => {
                let header_len = usize::from(datagram.first().copied().unwrap_or(0) & 0x0f) * 4;
                datagram.get(header_len..).unwrap_or_default()
            }
            SocketAddr::V6(_) => datagram,
        };
        match answers_init(sctp, address.port(), source_port, initiate_tag) {
            Some(InitAnswer::InitAck) => return Ok(()),
            Some(InitAnswer::Abort) => return Err(ProbeError::Abort(address.port())),
            None => {}
        }
    }
}

/// Sorts an error of the connected raw SCTP socket: the kernel turns an ICMP protocol
/// unreachable (IPv4) or parameter problem (IPv6) about our INIT into ENOPROTOOPT or
/// EPROTO, which says the host has no SCTP stack, not that the socket broke.
fn sctp_io_error(error: io::Error, address: SocketAddr, timeout: Duration) -> ProbeError {
    match (address, error.raw_os_error()) {
        (SocketAddr::V4(_), Some(libc::ENOPROTOOPT)) | (SocketAddr::V6(_), Some(libc::EPROTO)) => {
            ProbeError::NoSctpStack(address.ip())
        }
        _ => ProbeError::from_io(error, timeout),
    }
}

/// The backend's answer to our INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InitAnswer {
    /// INIT-ACK: an SCTP application listens on the port.
    InitAck,
    /// ABORT: the backend's SCTP stack refuses the association; nothing listens.
    Abort,
}

/// What `bytes` says about our INIT: the backend's INIT-ACK or ABORT for it, or nothing
/// (another packet, or not SCTP). The CRC32c is not checked: a backend on the same host
/// may leave it to a veth's offload, and ports and tag already tie the answer to our INIT.
fn answers_init(
    bytes: &[u8],
    backend_port: u16,
    source_port: u16,
    initiate_tag: u32,
) -> Option<InitAnswer> {
    let packet = Packet::new_checked(bytes).ok()?;
    //# RFC 9260 §3.3.2: The receiver of the INIT chunk (the responding end) records the
    //# value of the Initiate Tag parameter. This value MUST be placed into the
    //# Verification Tag field of every SCTP packet that the receiver of the INIT chunk
    //# transmits within this association.
    if packet.src_port() != backend_port
        || packet.dst_port() != source_port
        || packet.verification_tag() != initiate_tag
    {
        return None;
    }
    let chunk = packet.chunks().next()?.ok()?;
    match chunk.chunk_type() {
        ChunkType::InitAck => Some(InitAnswer::InitAck),
        //# RFC 9260 §8.4: If, for whatever reason, the INIT cannot be processed normally
        //# and an ABORT has to be sent in response, the Verification Tag of the packet
        //# containing the ABORT chunk MUST be the Initiate Tag of the received INIT
        //# chunk, and the T bit of the ABORT chunk has to be set to 0, indicating that
        //# the Verification Tag is NOT reflected.
        ChunkType::Abort if !chunk.t_bit() => Some(InitAnswer::Abort),
        _ => None,
    }
}

/// `via: vip`: a SYN (tcp) or an INIT (sctp) to the VIP, in the frame the dataplane
/// would send this backend, answered by a SYN-ACK or INIT-ACK from the VIP to this
/// node. A SYN-ACK is reset at once through the same path, so the backend keeps no
/// half-open connection. The raw socket that waits for the answer sees every TCP (or
/// SCTP) packet this host receives for the timeout: cheap on a balancer node, whose
/// VIP traffic never reaches the kernel.
fn probe_via_vip(target: &HealthTarget, path: &VipPath) -> Result<(), ProbeError> {
    let timeout = target.check.timeout;
    let deadline = Instant::now() + timeout;
    let vip = SocketAddr::new(path.vip, target.port);
    let hop = neighbor::resolve(target.address, timeout)
        .map_err(|error| ProbeError::Path(error.to_string()))?;
    let node = neighbor::interface_addrs(&hop.ifname)
        .map_err(|error| ProbeError::Path(error.to_string()))?
        .into_iter()
        .find(|address| is_source_for(address, &path.vip))
        .ok_or_else(|| {
            ProbeError::Path(format!(
                "{} has no address of {}'s family to receive the answer on",
                hop.ifname, path.vip
            ))
        })?;
    let sctp = target.check.kind == HealthCheckKind::Sctp;
    let answers = answer_socket(path.vip, sctp)?;
    let sender = PacketSender::bind(hop.ifindex).map_err(ProbeError::PacketSocket)?;
    let tag = random_tag();
    let source = SocketAddr::new(node, 49152 | (tag as u16));
    let mut init = [0u8; 64];
    let transport = if sctp {
        //# RFC 9260 §8.5.1: A) Rules for packets carrying INIT: The sender MUST set the
        //# Verification Tag of the packet to 0.
        let len = PacketRepr {
            src_port: source.port(),
            dst_port: vip.port(),
            verification_tag: 0,
            chunks: &[ChunkRepr::Init {
                initiate_tag: tag,
                a_rwnd: 65535,
                outbound_streams: 1,
                inbound_streams: 1,
                initial_tsn: tag,
                addresses: &[],
            }],
        }
        .emit(&mut Packet::new_unchecked(&mut init[..]));
        Transport::Raw {
            protocol: protocol::SCTP,
            bytes: &init[..len],
        }
    } else {
        Transport::Tcp {
            flags: tcp_flags::SYN,
            payload: b"",
        }
    };
    let spec = FrameSpec {
        src_mac: hop.src_mac,
        dst_mac: path.mac.unwrap_or(hop.dst_mac),
        src: source,
        dst: vip,
        transport,
    };
    let send = |spec: &FrameSpec<'_>, seq: Option<u32>| -> Result<(), ProbeError> {
        let frame = delivered(spec, seq, path.delivery, target.address, tag)?;
        sender.send(&frame).map_err(ProbeError::PacketSocket)
    };
    send(&spec, None)?;
    let mut received = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeError::VipSilent { vip, timeout });
        }
        answers
            .set_read_timeout(Some(left))
            .map_err(ProbeError::Capture)?;
        let (read, from) = match answers.recv_from(&mut received) {
            Ok(got) => got,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => match ProbeError::from_io(error, timeout) {
                ProbeError::Timeout(_) => return Err(ProbeError::VipSilent { vip, timeout }),
                ProbeError::Io(error) => return Err(ProbeError::Capture(error)),
                other => return Err(other),
            },
        };
        if from.ip() != path.vip {
            continue;
        }
        let datagram = received.get(..read).unwrap_or_default();
        // IPv4 raw sockets deliver the IP header; IPv6 raw sockets do not.
        let l4 = match path.vip {
            IpAddr::V4(_) => {
                let header_len = usize::from(datagram.first().copied().unwrap_or(0) & 0x0f) * 4;
                datagram.get(header_len..).unwrap_or_default()
            }
            IpAddr::V6(_) => datagram,
        };
        if sctp {
            match answers_init(l4, vip.port(), source.port(), tag) {
                Some(InitAnswer::InitAck) => return Ok(()),
                Some(InitAnswer::Abort) => return Err(ProbeError::Abort(vip.port())),
                None => continue,
            }
        }
        match answers_syn(l4, vip.port(), source.port()) {
            Some(SynAnswer::SynAck) => {
                //# RFC 9293 §3.10.7.4: In SYN-RECEIVED state [...] If the RST bit is
                //# set [...] the connection is closed (the RST's sequence number being
                //# in the window: the SYN-ACK acknowledged ours, so it is 2).
                let reset = FrameSpec {
                    transport: Transport::Tcp {
                        flags: tcp_flags::RST,
                        payload: b"",
                    },
                    ..spec.clone()
                };
                // The probe already passed; a lost RST only leaves the backend to time out.
                let _ = send(&reset, Some(SYN_SEQ + 1));
                return Ok(());
            }
            Some(SynAnswer::Reset) => return Err(ProbeError::Refused(vip)),
            None => {}
        }
    }
}

/// Sequence number of the probe's SYN: [`frames::build`] gives every segment 1.
const SYN_SEQ: u32 = 1;
/// Outer TTL of encapsulated probes, as the dataplane's.
const OUTER_TTL: u8 = 64;
/// Room left after a probe frame for the outer headers (IPv6, UDP, GUE).
const ENCAP_ROOM: usize = 64;

/// Whether `address`, an address of the egress interface, can be the probe's source
/// for `vip`: same family, not link-local, so the backend routes its answer to it.
fn is_source_for(address: &IpAddr, vip: &IpAddr) -> bool {
    match (address, vip) {
        (IpAddr::V4(a), IpAddr::V4(_)) => !a.is_loopback() && !a.is_link_local(),
        (IpAddr::V6(a), IpAddr::V6(_)) => !a.is_loopback() && !a.is_unicast_link_local(),
        _ => false,
    }
}

/// A raw socket of the VIP's family that receives every TCP or SCTP packet for this
/// host. std's `UdpSocket::recv_from` is a plain recvfrom(2), which on a raw socket
/// gives each datagram and its source address.
fn answer_socket(vip: IpAddr, sctp: bool) -> Result<UdpSocket, ProbeError> {
    let number = if sctp { protocol::SCTP } else { protocol::TCP };
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(vip, 0)),
        Type::RAW,
        Some(Protocol::from(i32::from(number))),
    )
    .map_err(ProbeError::Capture)?;
    Ok(UdpSocket::from(socket))
}

/// The probe frame as the dataplane would deliver it: as built for DSR, inside IPIP,
/// IP6IP6 or GUE otherwise. `seq` replaces the TCP sequence number.
fn delivered(
    spec: &FrameSpec<'_>,
    seq: Option<u32>,
    delivery: Delivery,
    backend: IpAddr,
    tag: u32,
) -> Result<Vec<u8>, ProbeError> {
    let mut frame = frames::build(spec).map_err(|error| ProbeError::Path(error.to_string()))?;
    if let Some(seq) = seq {
        // A bare TCP header ends the frame.
        let l4 = frame.len() - TCP_HEADER_LEN;
        let mut tcp = TcpPacket::new_unchecked(&mut frame[l4..]);
        tcp.set_seq_number(TcpSeqNumber(seq as i32));
        tcp.fill_checksum(&spec.src.ip().into(), &spec.dst.ip().into());
    }
    let len = frame.len();
    let l3 = ETHERNET_HEADER_LEN;
    frame.resize(len + ENCAP_ROOM, 0);
    let no_source = || ProbeError::Path(format!("no encapsulation source address for {backend}"));
    let encapsulated = match (delivery, backend) {
        (Delivery::Dsr, _) => Ok(len),
        (Delivery::Ipip { source }, IpAddr::V4(dst)) => match source.ok_or_else(no_source)? {
            IpAddr::V4(src) => encap::ipip(&mut frame, len, l3, src, dst, OUTER_TTL),
            IpAddr::V6(_) => return Err(no_source()),
        },
        (Delivery::Ipip { source }, IpAddr::V6(dst)) => match source.ok_or_else(no_source)? {
            IpAddr::V6(src) => encap::ip6ip(&mut frame, len, l3, src, dst, OUTER_TTL),
            IpAddr::V4(_) => return Err(no_source()),
        },
        (Delivery::Gue { source, port }, dst) => encap::gue(
            &mut frame,
            len,
            l3,
            source.ok_or_else(no_source)?,
            dst,
            // The dataplane takes the GUE source port from the flow hash, in 0xC000..
            0xC000 | (tag as u16 & 0x3fff),
            port,
            OUTER_TTL,
        ),
    };
    let len = encapsulated.map_err(|error| ProbeError::Path(format!("encapsulation: {error}")))?;
    frame.truncate(len);
    Ok(frame)
}

/// The answer to our SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SynAnswer {
    /// SYN-ACK: something listens on the VIP's port.
    SynAck,
    /// RST: the host holds the VIP, nothing listens.
    Reset,
}

/// What TCP segment `bytes` says about our SYN from `source_port` to `port`: the
/// SYN-ACK or RST acknowledging it, or nothing.
fn answers_syn(bytes: &[u8], port: u16, source_port: u16) -> Option<SynAnswer> {
    let tcp = TcpPacket::new_checked(bytes).ok()?;
    //# RFC 9293 §3.10.7.3: If the state is SYN-SENT [...] If the ACK bit is set [...]
    //# If SEG.ACK =< ISS or SEG.ACK > SND.NXT, [...] discard the segment.
    if tcp.src_port() != port
        || tcp.dst_port() != source_port
        || !tcp.ack()
        || tcp.ack_number() != TcpSeqNumber(SYN_SEQ as i32 + 1)
    {
        return None;
    }
    if tcp.rst() {
        Some(SynAnswer::Reset)
    } else if tcp.syn() {
        Some(SynAnswer::SynAck)
    } else {
        None
    }
}

/// A fresh non-zero initiate tag, so a probe's answers are told from older ones.
fn random_tag() -> u32 {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let nonce = (PROBES.fetch_add(1, Ordering::Relaxed), Instant::now());
    //# RFC 9260 §3.3.2: The Initiate Tag is allowed to have any value except 0.
    (RandomState::new().hash_one(nonce) as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sctp::HEADER_LEN;

    #[test]
    fn status_lines() {
        assert!(check_status_line(b"HTTP/1.1 200 OK\r", 200).is_ok());
        assert!(check_status_line(b"HTTP/1.0 204", 204).is_ok());
        let err = check_status_line(b"HTTP/1.1 503 Service Unavailable\r", 200).unwrap_err();
        assert_eq!(err.to_string(), "HTTP status 503, expected 200");
        for bad in [
            &b"SSH-2.0-OpenSSH\r"[..],
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2x0 OK",
            b"HTTP/2 200",
            b"",
            b"\xff\xfe 200",
        ] {
            assert!(
                matches!(
                    check_status_line(bad, 200),
                    Err(ProbeError::BadStatusLine(_))
                ),
                "{bad:?}"
            );
        }
    }

    fn answer(src_port: u16, dst_port: u16, tag: u32, chunk: ChunkRepr<'_>) -> Vec<u8> {
        let repr = PacketRepr {
            src_port,
            dst_port,
            verification_tag: tag,
            chunks: &[chunk],
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    }

    #[test]
    fn init_answers() {
        let abort = ChunkRepr::Abort { reflected: false };
        let init = ChunkRepr::Init {
            initiate_tag: 9,
            a_rwnd: 1,
            outbound_streams: 1,
            inbound_streams: 1,
            initial_tsn: 1,
            addresses: &[],
        };
        let answers = |bytes: &[u8]| answers_init(bytes, 38412, 50000, 7);
        let mut init_ack = answer(38412, 50000, 7, init);
        init_ack[HEADER_LEN] = u8::from(ChunkType::InitAck);
        assert_eq!(answers(&init_ack), Some(InitAnswer::InitAck));
        // An ABORT under our tag refuses our INIT: nothing listens, the backend is down.
        assert_eq!(
            answers(&answer(38412, 50000, 7, abort)),
            Some(InitAnswer::Abort)
        );
        // A reflected ABORT carries the sender's own tag: not an answer to our INIT.
        let reflected = ChunkRepr::Abort { reflected: true };
        assert_eq!(answers(&answer(38412, 50000, 7, reflected)), None);
        // An INIT is not an answer, even under the right tag.
        assert_eq!(answers(&answer(38412, 50000, 7, init)), None);
        for other in [
            answer(38412, 50000, 8, abort),
            answer(38413, 50000, 7, abort),
            answer(38412, 50001, 7, abort),
            init_ack[..HEADER_LEN].to_vec(),
            vec![0u8; 5],
        ] {
            assert_eq!(answers(&other), None, "{other:?}");
        }
    }

    fn segment(src_port: u16, dst_port: u16, flags: u8, ack: i32) -> Vec<u8> {
        let mut bytes = vec![0u8; TCP_HEADER_LEN];
        let mut tcp = TcpPacket::new_unchecked(&mut bytes[..]);
        tcp.set_src_port(src_port);
        tcp.set_dst_port(dst_port);
        tcp.set_header_len(TCP_HEADER_LEN as u8);
        tcp.set_ack_number(TcpSeqNumber(ack));
        bytes[13] = flags;
        bytes
    }

    #[test]
    fn syn_answers() {
        let answers = |bytes: &[u8]| answers_syn(bytes, 80, 50000);
        let syn_ack = tcp_flags::SYN | tcp_flags::ACK;
        let rst_ack = tcp_flags::RST | tcp_flags::ACK;
        assert_eq!(
            answers(&segment(80, 50000, syn_ack, 2)),
            Some(SynAnswer::SynAck)
        );
        assert_eq!(
            answers(&segment(80, 50000, rst_ack, 2)),
            Some(SynAnswer::Reset)
        );
        for other in [
            // Not acknowledging our SYN (sequence 1): someone else's segment.
            segment(80, 50000, syn_ack, 3),
            segment(80, 50000, tcp_flags::SYN, 2),
            segment(81, 50000, syn_ack, 2),
            segment(80, 50001, syn_ack, 2),
            segment(80, 50000, tcp_flags::ACK, 2),
            vec![0u8; 12],
        ] {
            assert_eq!(answers(&other), None, "{other:?}");
        }
    }

    #[test]
    fn probes_are_delivered_as_the_dataplane_would() {
        let spec = FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 1, 0x11],
            src: "198.18.0.2:50000".parse().unwrap(),
            dst: "198.18.100.10:80".parse().unwrap(),
            transport: Transport::Tcp {
                flags: tcp_flags::RST,
                payload: b"",
            },
        };
        let backend: IpAddr = "198.18.1.11".parse().unwrap();
        let dsr = delivered(&spec, Some(2), Delivery::Dsr, backend, 7).unwrap();
        let h = crate::wire::headers::parse(&dsr).unwrap();
        assert_eq!((h.dst, h.dst_port), (spec.dst.ip(), 80));
        let tcp = TcpPacket::new_checked(&dsr[h.l4_offset as usize..]).unwrap();
        assert_eq!(tcp.seq_number(), TcpSeqNumber(2));
        assert!(tcp.verify_checksum(&spec.src.ip().into(), &spec.dst.ip().into()));

        let source = Some("198.18.0.2".parse().unwrap());
        let ipip = delivered(&spec, None, Delivery::Ipip { source }, backend, 7).unwrap();
        let outer = crate::wire::headers::parse(&ipip).unwrap();
        assert_eq!((outer.dst, outer.l4_proto), (backend, protocol::IPV4));
        let plain = delivered(&spec, None, Delivery::Dsr, backend, 7).unwrap();
        assert_eq!(
            &ipip[outer.l4_offset as usize..],
            &plain[ETHERNET_HEADER_LEN..]
        );

        let gue = Delivery::Gue { source, port: 6080 };
        let frame = delivered(&spec, None, gue, backend, 7).unwrap();
        let outer = crate::wire::headers::parse(&frame).unwrap();
        assert_eq!((outer.dst, outer.dst_port), (backend, 6080));

        let missing = delivered(&spec, None, Delivery::Ipip { source: None }, backend, 7);
        assert!(matches!(missing, Err(ProbeError::Path(_))), "{missing:?}");
    }

    #[test]
    fn sctp_errors_say_why() {
        assert_eq!(
            ProbeError::Abort(38412).to_string(),
            "ABORT: no SCTP listener on port 38412"
        );
        let timeout = Duration::from_millis(500);
        let error = |backend: &str, errno| {
            let backend: SocketAddr = backend.parse().unwrap();
            sctp_io_error(io::Error::from_raw_os_error(errno), backend, timeout)
        };
        // ICMP protocol unreachable (IPv4) and parameter problem (IPv6), as the kernel
        // reports them on the connected raw socket.
        assert_eq!(
            error("198.18.1.21:38412", libc::ENOPROTOOPT).to_string(),
            "ICMP: 198.18.1.21 has no SCTP stack (protocol unreachable)"
        );
        assert_eq!(
            error("[2001:db8::21]:38412", libc::EPROTO).to_string(),
            "ICMP: 2001:db8::21 has no SCTP stack (protocol unreachable)"
        );
        assert!(matches!(
            error("198.18.1.21:38412", libc::EAGAIN),
            ProbeError::Timeout(_)
        ));
        assert!(matches!(
            error("198.18.1.21:38412", libc::EHOSTUNREACH),
            ProbeError::Io(_)
        ));
    }
}
