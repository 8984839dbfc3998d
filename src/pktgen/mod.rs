//! The packet generator and receiver (`xlb pktgen`): one pinned sender thread per
//! queue writing stamped frames straight into AF_XDP TX rings, paced by a token bucket
//! or flat out; receivers (in this process with `--rx`, or a second process with
//! `--receive`) that count packets, loss, reordering and one-way latency.

pub mod pace;
pub mod progress;
pub mod receive;
pub mod report;
pub mod stamp;
pub mod traffic;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::config::{XdpMode, ZeroCopy};
use crate::xsk::{monotonic_ns, SocketSpec, SteeringProgram, TrafficPort, XskError};
use pace::TokenBucket;
use progress::{Display, Goal, Progress};
use receive::RxCounters;
pub use report::PktgenReport;
use report::{rate, RxSummary, TxSummary};
use traffic::{FrameWriter, Proto, SizeMix, TrafficSpec};

/// How long a sender runs when given neither `--duration` nor `--count`.
const DEFAULT_SECONDS: f64 = 10.0;

/// Arguments of `xlb pktgen`.
#[derive(Clone, Debug, clap::Args)]
pub struct PktgenArgs {
    /// Interface to send on (with --receive: to receive on).
    #[arg(long)]
    pub iface: String,
    /// Queues to use on --iface: one pinned thread per queue, queues 0..N.
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Cores to pin the threads to, in order (senders, then receivers), reused
    /// round-robin; default: senders from the first core up, receivers from the last
    /// core down.
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Traffic: udp, tcp-syn (a new flow every packet), tcp-est (ACKs over --flows
    /// flows), sctp (--flows associations set up with INIT and COOKIE-ECHO, then DATA)
    /// or sctp-init (an INIT from a new source every packet: a spoofed INIT flood).
    #[arg(long, value_enum, default_value = "udp")]
    pub proto: Proto,
    /// Flows (source address and port pairs; SCTP: associations).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Frame bytes without the FCS, 64 to 1514, or `imix` (64/590/1514 at 7:4:1).
    /// Frames too small for the headers plus the 16-byte stamp are grown to fit.
    #[arg(long, default_value = "64")]
    pub size: SizeMix,
    /// Packets per second over all queues; 0 sends as fast as the rings take them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to send (default 10 unless --count is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Packets to send in all (split over the queues).
    #[arg(long)]
    pub count: Option<u64>,
    /// First source address; flows add to its low bits once ports run out.
    #[arg(long, default_value = "198.18.0.1")]
    pub src: IpAddr,
    /// SCTP: a second client address, listed in each INIT; every other DATA uses it.
    #[arg(long)]
    pub second_src: Option<IpAddr>,
    /// Destination address (the VIP).
    #[arg(long, default_value = "198.18.0.2")]
    pub dst: IpAddr,
    /// First source port; flow i uses this plus i.
    #[arg(long, default_value_t = 1024)]
    pub src_port: u16,
    /// Destination port.
    #[arg(long, default_value_t = 9)]
    pub dst_port: u16,
    /// Source MAC (default: the interface's).
    #[arg(long, value_parser = parse_mac)]
    pub src_mac: Option<[u8; 6]>,
    /// Destination MAC: the next hop's (a router only forwards frames sent to it).
    #[arg(long, value_parser = parse_mac, default_value = "ff:ff:ff:ff:ff:ff")]
    pub dst_mac: [u8; 6],
    /// Also receive, in this process, on this interface (may be --iface itself).
    #[arg(long)]
    pub rx: Option<String>,
    /// Receive only, on --iface: the sink of a generator running in another process.
    #[arg(long, conflicts_with = "rx")]
    pub receive: bool,
    /// Queues to receive on (default: --queues).
    #[arg(long)]
    pub rx_queues: Option<u32>,
    /// Destination addresses the receiver's XDP program steers to it (default: --dst);
    /// the rest passes to the kernel.
    #[arg(long, value_delimiter = ',')]
    pub steer: Vec<IpAddr>,
    /// How the receiver attaches its XDP program: auto, native or skb.
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: XdpMode,
    /// Entries per AF_XDP ring (a power of two).
    #[arg(long, default_value_t = 2048)]
    pub ring_size: u32,
    /// Frames per TX/RX batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Seconds the receiver keeps listening after the senders stop.
    #[arg(long, default_value_t = 0.5)]
    pub linger: f64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress line and no summary table.
    #[arg(long)]
    pub quiet: bool,
}

/// A MAC address written as six colon-separated hex octets.
fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut octets = text.split(':');
    for byte in &mut mac {
        let octet = octets.next().unwrap_or("");
        *byte = u8::from_str_radix(octet, 16)
            .ok()
            .filter(|_| octet.len() == 2)
            .ok_or_else(|| format!("`{text}` is not a MAC address (like 02:00:00:00:00:01)"))?;
    }
    if octets.next().is_some() {
        return Err(format!("`{text}` has more than six octets"));
    }
    Ok(mac)
}

/// Why a pktgen run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
    /// The arguments contradict each other or are out of range.
    #[error("pktgen: {0}")]
    InvalidArgument(String),
    /// Opening a socket or attaching the receiver's XDP program failed.
    #[error("pktgen: {0}")]
    Xsk(#[from] XskError),
    /// The source MAC could not be read from the interface.
    #[error("pktgen: reading the MAC of {ifname}: {reason}; pass --src-mac")]
    InterfaceMac {
        /// Interface.
        ifname: String,
        /// What went wrong.
        reason: String,
    },
    /// A frame could not be built from the arguments.
    #[error("pktgen: {0}")]
    Frame(#[from] crate::wire::frames::FrameError),
    /// Writing the JSON report failed.
    #[error("pktgen: writing {path}: {source}")]
    Json {
        /// The --json file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A sender or receiver thread panicked.
    #[error("pktgen: the {0} thread panicked")]
    ThreadPanicked(&'static str),
}

impl PktgenArgs {
    /// Where the senders stop: `--duration`, else `--count`, else the default duration.
    fn goal(&self) -> Goal {
        match (self.duration, self.count) {
            (Some(seconds), _) => Goal::Seconds(seconds),
            (None, Some(frames)) => Goal::Frames(frames),
            (None, None) => Goal::Seconds(DEFAULT_SECONDS),
        }
    }
}

/// Flags that stop the threads.
struct Stops {
    /// SIGINT/SIGTERM or the end of the run: senders stop.
    send: Arc<AtomicBool>,
    /// Receivers stop (after the senders and the linger).
    receive: Arc<AtomicBool>,
}

/// What one sender thread did.
struct SenderResult {
    sent: u64,
    bytes: u64,
    setup: u64,
    first_ns: u64,
    last_ns: u64,
    rx: Option<RxCounters>,
}

/// Runs `xlb pktgen`: sends and/or receives as the arguments say, prints a progress
/// line and a summary table (unless --quiet), writes --json, returns the report.
pub fn run(args: &PktgenArgs) -> Result<PktgenReport, PktgenError> {
    validate(args)?;
    let stops = Stops {
        send: Arc::new(AtomicBool::new(false)),
        receive: Arc::new(AtomicBool::new(false)),
    };
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for forbidden signals; these two are allowed.
        let _ = signal_hook::flag::register(signal, Arc::clone(&stops.send));
    }
    let report = if args.receive {
        receive_only(args, &stops)?
    } else {
        send(args, &stops)?
    };
    if !args.quiet {
        print!("{report}");
    }
    if let Some(path) = &args.json {
        let json_error = |source| PktgenError::Json {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| json_error(std::io::Error::other(e)))?;
        std::fs::write(path, text + "\n").map_err(json_error)?;
    }
    Ok(report)
}

fn validate(args: &PktgenArgs) -> Result<(), PktgenError> {
    let invalid = |text: String| Err(PktgenError::InvalidArgument(text));
    if args.queues == 0 || args.queues > receive::MAX_STREAMS as u32 {
        return invalid(format!(
            "--queues {} must be 1..={}",
            args.queues,
            receive::MAX_STREAMS
        ));
    }
    if args.flows == 0 {
        return invalid("--flows must be at least 1".into());
    }
    if args.batch == 0 || args.batch > crate::pipeline::batch::MAX_BATCH {
        return invalid(format!(
            "--batch must be 1..={}",
            crate::pipeline::batch::MAX_BATCH
        ));
    }
    if args.src.is_ipv4() != args.dst.is_ipv4()
        || args
            .second_src
            .is_some_and(|s| s.is_ipv4() != args.src.is_ipv4())
    {
        return invalid("--src, --second-src and --dst must be of one IP family".into());
    }
    if args.second_src.is_some() && args.proto != Proto::Sctp {
        return invalid("--second-src is for --proto sctp".into());
    }
    if args.proto == Proto::Sctp && args.flows > 0x00ff_ffff {
        return invalid("--proto sctp takes at most 16777215 associations".into());
    }
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite()))
        || !(args.linger.is_finite() && args.linger.is_sign_positive())
    {
        return invalid("--duration must be positive and --linger not negative".into());
    }
    Ok(())
}

fn spec(args: &PktgenArgs, ifname: &str, queue: u32) -> SocketSpec {
    SocketSpec {
        ifname: ifname.to_string(),
        port: 0,
        queue,
        zero_copy: ZeroCopy::Auto,
        ring_size: args.ring_size,
    }
}

/// UMEM frames per socket: a fill ring's and a TX ring's worth.
fn frame_count(args: &PktgenArgs) -> u32 {
    args.ring_size * 2
}

/// Attaches the receiver's XDP program on `ifname`, steering `--steer` (or --dst).
fn steering(args: &PktgenArgs, ifname: &str) -> Result<SteeringProgram, PktgenError> {
    let mut program = SteeringProgram::attach(ifname, args.xdp_mode)?;
    let steered = if args.steer.is_empty() {
        vec![args.dst]
    } else {
        args.steer.clone()
    };
    program.set_vips(&steered)?;
    Ok(program)
}

/// Opens receiving sockets on queues 0..count of `ifname` and registers them.
fn open_receivers(
    args: &PktgenArgs,
    ifname: &str,
    count: u32,
    program: &mut SteeringProgram,
) -> Result<Vec<TrafficPort>, PktgenError> {
    (0..count)
        .map(|queue| {
            let port = TrafficPort::open(&spec(args, ifname, queue), frame_count(args), true)?;
            program.register_socket(queue, port.fd())?;
            Ok(port)
        })
        .collect()
}

/// Which thread a core is chosen for: senders count up from the first core and
/// receivers down from the last, so a generator and a sink process on one machine
/// do not share a core by default.
#[derive(Clone, Copy)]
enum Role {
    Sender(usize),
    Receiver(usize),
}

/// Pins the calling thread: `--cores` in order (senders, then receivers), else by role.
fn pin(args: &PktgenArgs, role: Role) {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let wanted = if args.cores.is_empty() {
        let count = cores.len();
        match role {
            _ if count == 0 => None,
            Role::Sender(i) => Some(cores[i % count].id),
            Role::Receiver(i) => Some(cores[count - 1 - i % count].id),
        }
    } else {
        let index = match role {
            Role::Sender(i) => i,
            Role::Receiver(i) => args.queues as usize + i,
        };
        args.cores.get(index % args.cores.len()).copied()
    };
    if let Some(id) = wanted {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            tracing::warn!(core = id, "could not pin a pktgen thread");
        }
    }
}

fn send(args: &PktgenArgs, stops: &Stops) -> Result<PktgenReport, PktgenError> {
    let src_mac = match args.src_mac {
        Some(mac) => mac,
        None => crate::xsk::interface_mac(&args.iface).map_err(|e| PktgenError::InterfaceMac {
            ifname: args.iface.clone(),
            reason: e.to_string(),
        })?,
    };
    let traffic = TrafficSpec {
        proto: args.proto,
        flows: args.flows,
        sizes: args.size.clone(),
        src_mac,
        dst_mac: args.dst_mac,
        src: args.src,
        second_src: args.second_src,
        dst: args.dst,
        src_port: args.src_port,
        dst_port: args.dst_port,
    };
    let shared_rx = args.rx.as_deref() == Some(args.iface.as_str());
    let mut program = match &args.rx {
        Some(rx) => Some(steering(args, rx)?),
        None => None,
    };
    let mut senders = Vec::new();
    for queue in 0..args.queues {
        let port = TrafficPort::open(
            &spec(args, &args.iface, queue),
            frame_count(args),
            shared_rx,
        )?;
        if let (true, Some(program)) = (shared_rx, program.as_mut()) {
            program.register_socket(queue, port.fd())?;
        }
        senders.push(port);
    }
    let receivers = match (&args.rx, program.as_mut()) {
        (Some(rx), Some(program)) if !shared_rx => {
            open_receivers(args, rx, args.rx_queues.unwrap_or(args.queues), program)?
        }
        _ => Vec::new(),
    };
    let writers = (0..args.queues)
        .map(|queue| FrameWriter::new(&traffic, queue as u16))
        .collect::<Result<Vec<_>, _>>()?;
    let frame_lengths = writers
        .first()
        .map(|w| w.frame_lengths())
        .unwrap_or_default();

    let progress: Arc<Vec<Progress>> = Arc::new(
        (0..senders.len() + receivers.len())
            .map(|_| Progress::default())
            .collect(),
    );
    let receiver_threads = spawn_receivers(args, receivers, senders.len(), &progress, stops);
    let mut sender_threads = Vec::new();
    for (index, (port, writer)) in senders.into_iter().zip(writers).enumerate() {
        let args = args.clone();
        let progress = Arc::clone(&progress);
        let send_stop = Arc::clone(&stops.send);
        let receive_stop = Arc::clone(&stops.receive);
        sender_threads.push(thread::spawn(move || {
            pin(&args, Role::Sender(index));
            sender(
                port,
                &writer,
                &args,
                index,
                &progress[index],
                &send_stop,
                shared_rx.then_some(&*receive_stop),
            )
        }));
    }

    show_progress(args, &progress, sender_threads.len(), &stops.send);
    stops.send.store(true, Ordering::Relaxed);
    if args.rx.is_some() {
        thread::sleep(Duration::from_secs_f64(args.linger));
    }
    stops.receive.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for handle in sender_threads {
        results.push(
            handle
                .join()
                .map_err(|_| PktgenError::ThreadPanicked("sender"))?,
        );
    }
    let mut rx = join_receivers(receiver_threads)?;
    for result in &mut results {
        if let Some(counters) = result.rx.take() {
            rx.get_or_insert_with(RxCounters::new).merge(&counters);
        }
    }
    let sent: u64 = results.iter().map(|r| r.sent).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let first = results.iter().map(|r| r.first_ns).filter(|&t| t != 0).min();
    let last = results.iter().map(|r| r.last_ns).max();
    let seconds = match (first, last) {
        (Some(first), Some(last)) => last.saturating_sub(first) as f64 / 1e9,
        _ => 0.0,
    };
    drop(program);
    Ok(PktgenReport {
        mode: if args.rx.is_some() {
            "send+receive"
        } else {
            "send"
        }
        .to_string(),
        proto: Some(
            clap::ValueEnum::to_possible_value(&args.proto)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default(),
        ),
        size: Some(args.size.to_string()),
        frame_lengths,
        flows: args.flows,
        queues: args.queues,
        duration_s: seconds,
        tx: Some(TxSummary {
            packets: sent,
            bytes,
            pps: rate(sent, seconds),
            gbps: rate(bytes * 8, seconds) / 1e9,
            setup_packets: results.iter().map(|r| r.setup).sum(),
        }),
        rx: rx.map(|counters| RxSummary::new(&counters, seconds, Some(sent))),
    })
}

fn receive_only(args: &PktgenArgs, stops: &Stops) -> Result<PktgenReport, PktgenError> {
    let mut program = steering(args, &args.iface)?;
    let receivers = open_receivers(
        args,
        &args.iface,
        args.rx_queues.unwrap_or(args.queues),
        &mut program,
    )?;
    let count = receivers.len() as u32;
    tracing::info!(interface = %args.iface, queues = count, "pktgen receiver ready");
    let progress: Arc<Vec<Progress>> =
        Arc::new((0..receivers.len()).map(|_| Progress::default()).collect());
    let started = monotonic_ns();
    let threads = spawn_receivers(args, receivers, 0, &progress, stops);
    let deadline = args
        .duration
        .map(|d| started + (d * 1e9) as u64)
        .unwrap_or(u64::MAX);
    let goal = args.duration.map_or(Goal::Open, Goal::Seconds);
    let mut display = (!args.quiet).then(|| Display::new(goal, false, true, started));
    while !stops.send.load(Ordering::Relaxed) && monotonic_ns() < deadline {
        thread::sleep(Duration::from_millis(50));
        if let Some(display) = display.as_mut() {
            display.update(monotonic_ns(), 0, Progress::totals(&progress).1);
        }
    }
    if let Some(display) = display {
        display.finish();
    }
    stops.receive.store(true, Ordering::Relaxed);
    let counters = join_receivers(threads)?.unwrap_or_default();
    let listened = (monotonic_ns() - started) as f64 / 1e9;
    drop(program);
    Ok(PktgenReport {
        mode: "receive".to_string(),
        proto: None,
        size: None,
        frame_lengths: Vec::new(),
        flows: 0,
        queues: count,
        duration_s: listened,
        tx: None,
        rx: Some(RxSummary::new(&counters, counters.active_seconds(), None)),
    })
}

type ReceiverHandle = thread::JoinHandle<RxCounters>;

fn spawn_receivers(
    args: &PktgenArgs,
    ports: Vec<TrafficPort>,
    first_index: usize,
    progress: &Arc<Vec<Progress>>,
    stops: &Stops,
) -> Vec<ReceiverHandle> {
    ports
        .into_iter()
        .enumerate()
        .map(|(i, mut port)| {
            let index = first_index + i;
            let args = args.clone();
            let progress = Arc::clone(progress);
            let stop = Arc::clone(&stops.receive);
            thread::spawn(move || {
                pin(&args, Role::Receiver(i));
                let mut counters = RxCounters::new();
                while !stop.load(Ordering::Relaxed) {
                    if receive_batch(&mut port, args.batch, &mut counters) == 0 {
                        port.wait_readable(10);
                    }
                    progress[index]
                        .received
                        .store(counters.stamped(), Ordering::Relaxed);
                }
                counters
            })
        })
        .collect()
}

fn join_receivers(threads: Vec<ReceiverHandle>) -> Result<Option<RxCounters>, PktgenError> {
    let mut merged: Option<RxCounters> = None;
    for handle in threads {
        let counters = handle
            .join()
            .map_err(|_| PktgenError::ThreadPanicked("receiver"))?;
        merged.get_or_insert_with(RxCounters::new).merge(&counters);
    }
    Ok(merged)
}

/// Reads one batch into `counters`; the clock is read once, after the batch arrived.
#[inline]
fn receive_batch(port: &mut TrafficPort, batch: usize, counters: &mut RxCounters) -> usize {
    let mut now = 0;
    port.receive(batch, |frame| {
        if now == 0 {
            now = monotonic_ns();
        }
        counters.record(frame, now);
    })
}

/// One sender thread: SCTP setup first, then stamped frames until the duration, the
/// count or a stop. With `shared_rx` it also receives on its own socket until that
/// flag says the linger is over.
fn sender(
    mut port: TrafficPort,
    writer: &FrameWriter,
    args: &PktgenArgs,
    index: usize,
    progress: &Progress,
    stop: &AtomicBool,
    shared_rx: Option<&AtomicBool>,
) -> SenderResult {
    let mut rx = shared_rx.map(|_| RxCounters::new());
    let mut setup = 0;
    if args.proto == Proto::Sctp {
        setup = send_setup(&mut port, writer, args.queues as u16);
        // Let the device under test learn the associations before DATA arrives.
        thread::sleep(Duration::from_millis(50));
    }
    let queues = u64::from(args.queues);
    let quota = match args.count {
        Some(count) => count / queues + u64::from((index as u64) < count % queues),
        None => u64::MAX,
    };
    let duration = match args.goal() {
        Goal::Seconds(seconds) => seconds,
        Goal::Frames(_) | Goal::Open => f64::INFINITY,
    };
    let start = monotonic_ns();
    let deadline = if duration.is_finite() {
        start + (duration * 1e9) as u64
    } else {
        u64::MAX
    };
    let mut bucket = (args.rate > 0)
        .then(|| TokenBucket::new(args.rate as f64 / queues as f64, args.batch, start));
    let (mut seq, mut bytes, mut last_ns) = (0u64, 0u64, start);
    while seq < quota && !stop.load(Ordering::Relaxed) {
        let now = monotonic_ns();
        if now >= deadline {
            break;
        }
        let mut want = (quota - seq).min(args.batch as u64) as usize;
        if let Some(bucket) = bucket.as_mut() {
            want = bucket.available(now, want);
            if want == 0 {
                if let Some(rx) = rx.as_mut() {
                    receive_batch(&mut port, args.batch, rx);
                }
                port.reclaim();
                let wait = bucket.wait_ns();
                if wait > 50_000 {
                    thread::sleep(Duration::from_nanos(wait - 20_000));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
        }
        let sent = port.transmit(want, |buf| {
            let len = writer.write(buf, seq, now);
            seq += 1;
            bytes += len as u64;
            len
        });
        if let Some(bucket) = bucket.as_mut() {
            bucket.take(sent);
        }
        if sent > 0 {
            last_ns = now;
        }
        progress.sent.store(seq, Ordering::Relaxed);
        if let Some(rx) = rx.as_mut() {
            receive_batch(&mut port, args.batch, rx);
            progress.received.store(rx.stamped(), Ordering::Relaxed);
        }
    }
    // Let the kernel finish the TX ring so every counted frame has left.
    let drain_until = monotonic_ns() + 200_000_000;
    while port.tx_in_flight() > 0 && monotonic_ns() < drain_until {
        port.transmit(0, |_| 0);
        std::hint::spin_loop();
    }
    progress.done_sending.store(true, Ordering::Release);
    if let (Some(rx), Some(done)) = (rx.as_mut(), shared_rx) {
        while !done.load(Ordering::Relaxed) {
            if receive_batch(&mut port, args.batch, rx) == 0 {
                port.wait_readable(10);
            }
            progress.received.store(rx.stamped(), Ordering::Relaxed);
        }
    }
    SenderResult {
        sent: seq,
        bytes,
        setup,
        first_ns: start,
        last_ns,
        rx,
    }
}

/// Sends this stream's SCTP INIT and COOKIE-ECHO frames; returns how many left.
fn send_setup(port: &mut TrafficPort, writer: &FrameWriter, streams: u16) -> u64 {
    let Ok(frames) = writer.sctp_setup_frames(streams) else {
        return 0;
    };
    let mut next = 0;
    let give_up = monotonic_ns() + 2_000_000_000;
    while next < frames.len() && monotonic_ns() < give_up {
        let mut index = next;
        next += port.transmit(frames.len() - next, |buf| {
            let Some(frame) = frames.get(index) else {
                return 0;
            };
            index += 1;
            match buf.get_mut(..frame.len()) {
                Some(out) => {
                    out.copy_from_slice(frame);
                    frame.len()
                }
                None => 0,
            }
        });
    }
    next as u64
}

/// Shows the run's progress until every sender (the first `senders` entries of
/// `progress`) stopped sending.
fn show_progress(args: &PktgenArgs, progress: &[Progress], senders: usize, stop: &AtomicBool) {
    let mut display =
        (!args.quiet).then(|| Display::new(args.goal(), true, args.rx.is_some(), monotonic_ns()));
    while !progress[..senders]
        .iter()
        .all(|p| p.done_sending.load(Ordering::Acquire))
    {
        thread::sleep(Duration::from_millis(50));
        if let Some(display) = display.as_mut().filter(|_| !stop.load(Ordering::Relaxed)) {
            let (sent, received) = Progress::totals(progress);
            display.update(monotonic_ns(), sent, received);
        }
    }
    if let Some(display) = display {
        display.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PktgenArgs,
    }

    fn parse(line: &str) -> Result<PktgenArgs, String> {
        let words = std::iter::once("pktgen").chain(line.split_whitespace());
        Cli::try_parse_from(words)
            .map(|cli| cli.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn macs_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Ok([2, 0, 10, 255, 0, 1]));
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "2:0:0:0:0:1",
            "zz:00:00:00:00:01",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let args = parse("--iface g0 --proto sctp --flows 10 --size imix --second-src 198.18.0.9")
            .unwrap();
        assert_eq!(args.proto, Proto::Sctp);
        assert_eq!(args.size, SizeMix::Imix);
        assert_eq!(args.dst_mac, [0xff; 6]);
        assert!(validate(&args).is_ok());
        assert!(parse("--iface g0 --size 40").is_err());
        assert!(parse("--iface g0 --rx s0 --receive").is_err());
    }

    #[test]
    fn contradictory_arguments_are_refused() {
        for line in [
            "--iface g0 --queues 0",
            "--iface g0 --flows 0",
            "--iface g0 --dst 2001:db8::1",
            "--iface g0 --second-src 198.18.0.9",
            "--iface g0 --duration 0",
            "--iface g0 --batch 0",
        ] {
            let args = parse(line).unwrap();
            assert!(
                matches!(validate(&args), Err(PktgenError::InvalidArgument(_))),
                "{line}"
            );
        }
    }
}
