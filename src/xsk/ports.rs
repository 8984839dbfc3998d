//! One worker's AF_XDP sockets: one per (interface, queue) it serves, sharing one UMEM
//! (XDP_SHARED_UMEM) so a frame received on one interface leaves on another without a
//! copy; each socket has its own fill and completion rings. Where the kernel refuses
//! to share (e.g. zero-copy on one NIC, copy on another), the socket gets a UMEM of its
//! own and frames crossing UMEMs are copied.

use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::thread;
use std::time::Duration;

use arrayvec::ArrayVec;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::error::{is_permission_error, XskError};
use super::sys::{interface_index, kick_tx, poll_readable, rx_queue_count, socket_is_zero_copy};
use super::{BatchPorts, BatchStats, SocketMode};
use crate::config::ZeroCopy;
use crate::lb::verdict::{PortId, Verdict};
use crate::pipeline::batch::{PacketBuf, MAX_BATCH};

/// Bytes per UMEM frame: one page, which every zero-copy driver accepts. The packet
/// area is what is left after the kernel's 256-byte XDP headroom.
pub const FRAME_SIZE: u32 = 4096;

/// How often, and how far apart, a bind that answers EBUSY is retried: the kernel
/// releases a queue asynchronously after the previous socket on it closed.
const BIND_ATTEMPTS: u32 = 40;
const BIND_RETRY_WAIT: Duration = Duration::from_millis(50);

/// One AF_XDP socket to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketSpec {
    /// Interface name.
    pub ifname: String,
    /// The interface's index in the config's `interfaces` list: the `PortId` that
    /// `Verdict::Forward` names.
    pub port: u8,
    /// Rx/tx queue index on the interface.
    pub queue: u32,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// Entries in each of the socket's four rings (a power of two).
    pub ring_size: u32,
}

/// A UMEM and the frames of it that are in no ring right now.
struct UmemPool {
    umem: Umem,
    /// Never grows past the UMEM's frame count, which it was allocated with.
    free: Vec<FrameDesc>,
    /// Mode of the first socket bound on it: sharing sockets inherit it.
    mode: SocketMode,
    /// Size of the fill and completion rings of every socket on it (libxdp sizes a
    /// sharing socket's rings from the UMEM's config, whatever its spec asks).
    ring_size: u32,
    sockets: usize,
}

/// One bound socket and its rings.
struct PortSocket {
    ifname: String,
    port: PortId,
    queue: u32,
    mode: SocketMode,
    /// Index into `XskPorts::umems`.
    umem: usize,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    fill_size: u32,
    /// Frames placed on the TX ring and not yet seen on the completion ring.
    tx_in_flight: u32,
    /// Frames forwarded to this socket during the current batch.
    tx_staged: ArrayVec<FrameDesc, MAX_BATCH>,
}

/// All AF_XDP sockets of ONE worker, sharing one UMEM (XDP_SHARED_UMEM across its
/// (interface, queue) pairs, each with its own fill/completion ring) so a frame
/// received on one interface can be transmitted on another without a copy. If the
/// kernel refuses sharing, a socket gets a UMEM of its own and a frame forwarded
/// across UMEMs is copied.
pub struct XskPorts {
    umems: Vec<UmemPool>,
    sockets: Vec<PortSocket>,
    /// `egress[ingress socket][port]`: the socket that transmits on `port`, on the
    /// ingress socket's queue index when there is one.
    egress: Vec<Vec<Option<usize>>>,
    rx_descs: Vec<FrameDesc>,
    comp_descs: Vec<FrameDesc>,
    poll_fds: Vec<libc::pollfd>,
}

impl XskPorts {
    /// Opens and binds one socket per spec, fills their fill rings, and logs the mode
    /// each obtained. `frame_count` is the number of frames per UMEM; it must cover
    /// at least two rings' worth per socket (RX in flight plus TX in flight).
    pub fn open(specs: &[SocketSpec], frame_count: u32) -> Result<Self, XskError> {
        let mut umems: Vec<UmemPool> = Vec::new();
        let mut sockets: Vec<PortSocket> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            check_spec(spec, &specs[..i], frame_count)?;
            sockets.push(open_socket(spec, frame_count, &mut umems)?);
        }
        for socket in &mut sockets {
            let pool = &mut umems[socket.umem];
            let share = (frame_count as usize / (2 * pool.sockets)).min(socket.fill_size as usize);
            let start = pool.free.len().saturating_sub(share);
            // SAFETY: the frames come from this socket's UMEM and are in no ring.
            let placed = unsafe { socket.fill.produce(&pool.free[start..]) };
            pool.free.truncate(pool.free.len() - placed);
            tracing::info!(
                interface = %socket.ifname,
                queue = socket.queue,
                mode = ?socket.mode,
                umem = socket.umem,
                "AF_XDP socket bound"
            );
        }
        let egress = (0..sockets.len())
            .map(|ingress| egress_table(&sockets, ingress))
            .collect();
        let poll_fds = sockets
            .iter()
            .map(|socket| libc::pollfd {
                fd: socket.rx.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        Ok(XskPorts {
            umems,
            sockets,
            egress,
            rx_descs: vec![FrameDesc::default(); MAX_BATCH],
            comp_descs: vec![FrameDesc::default(); MAX_BATCH],
            poll_fds,
        })
    }

    /// Number of sockets, i.e. valid `index` values for `process_batch`.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// (interface, queue, socket fd) of every socket, in spec order, for
    /// `SteeringProgram::register_socket`.
    pub fn socket_fds(&self) -> Vec<(String, u32, RawFd)> {
        self.sockets
            .iter()
            .map(|s| (s.ifname.clone(), s.queue, s.rx.fd().as_raw_fd()))
            .collect()
    }

    /// The mode each socket obtained, in spec order.
    pub fn modes(&self) -> Vec<SocketMode> {
        self.sockets.iter().map(|s| s.mode).collect()
    }

    /// Whether sockets `a` and `b` share one UMEM (forwarding between them is copy-free).
    pub fn shares_umem(&self, a: usize, b: usize) -> bool {
        match (self.sockets.get(a), self.sockets.get(b)) {
            (Some(a), Some(b)) => a.umem == b.umem,
            _ => false,
        }
    }

    /// Pull up to `max` frames from socket `index`'s RX ring, hand them to `process` as
    /// `PacketBuf`s with a verdict slice (all `Verdict::Pending`), then:
    /// Forward(port) -> TX ring of this worker's socket on that port (preferring the
    /// same queue index), lengths as set by `process`; Drop -> straight back to the
    /// fill ring. Completions recycled to fill rings, ring atomics touched once per
    /// batch, kernel kicked only when need_wakeup says so.
    pub fn process_batch(
        &mut self,
        index: usize,
        max: usize,
        process: impl FnOnce(u8, &mut [PacketBuf<'_>], &mut [Verdict]),
    ) -> BatchStats {
        let mut stats = BatchStats::default();
        let XskPorts {
            umems,
            sockets,
            egress,
            rx_descs,
            comp_descs,
            ..
        } = self;
        if index >= sockets.len() {
            return stats;
        }
        recycle_completions(sockets, umems, comp_descs);

        let ingress_umem = sockets[index].umem;
        let want = max.min(MAX_BATCH);
        // SAFETY: the RX ring only holds frames of this socket's UMEM.
        let received = unsafe { sockets[index].rx.consume(&mut rx_descs[..want]) };
        stats.rx = received as u32;
        let mut verdicts = [Verdict::Pending; MAX_BATCH];
        let mut recycle: ArrayVec<FrameDesc, MAX_BATCH> = ArrayVec::new();
        if received > 0 {
            let received_descs = &mut rx_descs[..received];
            run_pipeline(
                &umems[ingress_umem].umem,
                sockets[index].port,
                received_descs,
                &mut verdicts[..received],
                process,
            );
            for (desc, verdict) in received_descs.iter().zip(&verdicts[..received]) {
                let target = match verdict {
                    Verdict::Forward(port) => egress[index].get(*port as usize).copied().flatten(),
                    Verdict::Drop(_) | Verdict::Pending => None,
                };
                let Some(target) = target else {
                    stats.dropped += 1;
                    recycle.push(*desc);
                    continue;
                };
                let target_umem = sockets[target].umem;
                if target_umem == ingress_umem {
                    sockets[target].tx_staged.push(*desc);
                    continue;
                }
                match copy_frame(umems, ingress_umem, target_umem, desc) {
                    Some(copy) => sockets[target].tx_staged.push(copy),
                    None => stats.dropped += 1,
                }
                recycle.push(*desc);
            }
        }

        flush_tx(sockets, umems, &mut stats);
        refill(
            &mut sockets[index],
            &mut umems[ingress_umem],
            &recycle,
            &mut stats,
        );
        stats
    }

    /// Adaptive idle: sleeps in poll() until a socket has frames or `timeout_ms` passes.
    pub fn poll_wait(&mut self, timeout_ms: i32) {
        poll_readable(&mut self.poll_fds, timeout_ms);
    }

    /// Shutdown: kicks every TX ring until the kernel has completed the frames already
    /// placed on it, or `timeout` passes; returns how many were still in flight then.
    pub fn drain_tx(&mut self, timeout: std::time::Duration) -> u32 {
        let deadline = std::time::Instant::now() + timeout;
        let mut stats = BatchStats::default();
        loop {
            recycle_completions(&mut self.sockets, &mut self.umems, &mut self.comp_descs);
            let in_flight: u32 = self.sockets.iter().map(|s| s.tx_in_flight).sum();
            if in_flight == 0 || std::time::Instant::now() >= deadline {
                return in_flight;
            }
            flush_tx(&mut self.sockets, &mut self.umems, &mut stats);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl BatchPorts for XskPorts {
    fn process_batch<F>(&mut self, index: usize, max: usize, process: F) -> BatchStats
    where
        F: FnOnce(PortId, &mut [PacketBuf<'_>], &mut [Verdict]),
    {
        XskPorts::process_batch(self, index, max, process)
    }
}

/// Hands the received frames to `process` as buffers spanning each frame's whole data
/// area, then stores the lengths `process` left back into the descriptors.
fn run_pipeline<F>(
    umem: &Umem,
    port: PortId,
    descs: &mut [FrameDesc],
    verdicts: &mut [Verdict],
    process: F,
) where
    F: FnOnce(PortId, &mut [PacketBuf<'_>], &mut [Verdict]),
{
    let mut received_lens: ArrayVec<usize, MAX_BATCH> = ArrayVec::new();
    let mut areas = ArrayVec::<_, MAX_BATCH>::new();
    for desc in descs.iter_mut() {
        received_lens.push(desc.lengths().data());
        // SAFETY: the descriptor came off this UMEM's RX ring, so it addresses one of
        // its frames, and no other reference to that frame exists during the batch.
        let mut area = unsafe { umem.data_mut(desc) };
        // Widen the view to the whole data area, so the pipeline can grow the packet.
        area.cursor().set_pos(usize::MAX);
        areas.push(area);
    }
    let mut bufs: ArrayVec<PacketBuf<'_>, MAX_BATCH> = areas
        .iter_mut()
        .zip(&received_lens)
        .map(|(area, &len)| PacketBuf::new(area.contents_mut(), len))
        .collect();
    process(port, &mut bufs, verdicts);
    let final_lens: ArrayVec<usize, MAX_BATCH> =
        bufs.iter().map(|buf| buf.len.min(buf.buf.len())).collect();
    drop(bufs);
    for (area, len) in areas.iter_mut().zip(final_lens) {
        area.cursor().set_pos(len);
    }
}

/// Copies `desc`'s packet (a frame of UMEM `from`) into a free frame of UMEM `to`.
fn copy_frame(
    umems: &mut [UmemPool],
    from: usize,
    to: usize,
    desc: &FrameDesc,
) -> Option<FrameDesc> {
    let mut copy = umems[to].free.pop()?;
    // SAFETY: `desc` addresses a frame of UMEM `from` that this batch owns.
    let source = unsafe { umems[from].umem.data(desc) };
    // SAFETY: `copy` came from UMEM `to`'s free list, so no ring and no other
    // reference holds it.
    let mut target = unsafe { umems[to].umem.data_mut(&mut copy) };
    let mut cursor = target.cursor();
    cursor.set_pos(0);
    if cursor.write_all(source.contents()).is_err() {
        umems[to].free.push(copy);
        return None;
    }
    Some(copy)
}

/// Moves every socket's completed TX frames to its UMEM's free list.
fn recycle_completions(
    sockets: &mut [PortSocket],
    umems: &mut [UmemPool],
    scratch: &mut [FrameDesc],
) {
    for socket in sockets.iter_mut().filter(|s| s.tx_in_flight > 0) {
        // SAFETY: the completion ring only returns frames of this socket's UMEM.
        let done = unsafe { socket.comp.consume(scratch) };
        socket.tx_in_flight = socket.tx_in_flight.saturating_sub(done as u32);
        umems[socket.umem].free.extend_from_slice(&scratch[..done]);
    }
}

/// Places each socket's staged frames on its TX ring; frames that do not fit go back
/// to their UMEM's free list. Kicks a TX ring that still has frames in flight when the
/// kernel asks for it (copy mode sends a bounded number per kick).
fn flush_tx(sockets: &mut [PortSocket], umems: &mut [UmemPool], stats: &mut BatchStats) {
    for socket in sockets.iter_mut() {
        if !socket.tx_staged.is_empty() {
            let staged = socket.tx_staged.len();
            let room = (socket.tx.nb_free(staged as u32) as usize).min(staged);
            // SAFETY: staged frames belong to this socket's UMEM (same-UMEM forwards
            // or copies into it) and are in no ring.
            let sent = unsafe { socket.tx.produce(&socket.tx_staged[..room]) };
            socket.tx_in_flight += sent as u32;
            stats.tx += sent as u32;
            stats.tx_ring_full += (staged - sent) as u32;
            umems[socket.umem]
                .free
                .extend_from_slice(&socket.tx_staged[sent..]);
            socket.tx_staged.clear();
        }
        if socket.tx_in_flight > 0 && socket.tx.needs_wakeup() {
            kick_tx(socket.tx.fd().as_raw_fd(), socket.tx_in_flight);
            stats.wakeups += 1;
        }
    }
}

/// Returns the batch's unforwarded frames to the ingress fill ring, tops the ring up
/// from the free list, and wakes the kernel if the fill ring asks for it.
fn refill(
    socket: &mut PortSocket,
    pool: &mut UmemPool,
    recycle: &[FrameDesc],
    stats: &mut BatchStats,
) {
    let room = (socket.fill.nb_free(recycle.len() as u32) as usize).min(recycle.len());
    // SAFETY: the frames came off this socket's RX ring, so belong to its UMEM.
    let placed = unsafe { socket.fill.produce(&recycle[..room]) };
    pool.free.extend_from_slice(&recycle[placed..]);

    let free = pool.free.len();
    let top_up = (socket.fill.nb_free(free as u32) as usize).min(free);
    if top_up > 0 {
        // SAFETY: free-list frames belong to this UMEM and are in no ring.
        let placed = unsafe { socket.fill.produce(&pool.free[free - top_up..]) };
        pool.free.truncate(free - placed);
    }
    stats.fill_ring_empty = socket.fill.nb_free(socket.fill_size) >= socket.fill_size;
    if socket.fill.needs_wakeup() {
        let _ = socket.fill.wakeup(socket.rx.fd_mut(), 0);
        stats.wakeups += 1;
    }
}

/// For one ingress socket: per port, the socket to transmit on.
fn egress_table(sockets: &[PortSocket], ingress: usize) -> Vec<Option<usize>> {
    let ports = sockets
        .iter()
        .map(|s| s.port as usize + 1)
        .max()
        .unwrap_or(0);
    let queue = sockets[ingress].queue;
    (0..ports)
        .map(|port| {
            let on_port = |s: &&PortSocket| s.port as usize == port;
            let same_queue = sockets.iter().position(|s| on_port(&s) && s.queue == queue);
            same_queue.or_else(|| sockets.iter().position(|s| on_port(&s)))
        })
        .collect()
}

pub(super) fn check_spec(
    spec: &SocketSpec,
    earlier: &[SocketSpec],
    frame_count: u32,
) -> Result<(), XskError> {
    let invalid = |reason: String| XskError::InvalidSetting {
        ifname: spec.ifname.clone(),
        queue: spec.queue,
        reason,
    };
    if interface_index(&spec.ifname).is_none() {
        return Err(XskError::InterfaceMissing {
            ifname: spec.ifname.clone(),
        });
    }
    if let Some(count) = rx_queue_count(&spec.ifname) {
        if spec.queue >= count {
            return Err(XskError::QueueOutOfRange {
                ifname: spec.ifname.clone(),
                queue: spec.queue,
                count,
            });
        }
    }
    if !spec.ring_size.is_power_of_two() || spec.ring_size < 64 {
        return Err(invalid(format!(
            "ring size {} must be a power of two of at least 64",
            spec.ring_size
        )));
    }
    if frame_count < 2 * spec.ring_size {
        return Err(invalid(format!(
            "{frame_count} UMEM frames cannot cover a fill ring and a TX ring of {} each; \
             use at least {}",
            spec.ring_size,
            2 * spec.ring_size
        )));
    }
    if earlier
        .iter()
        .any(|e| e.ifname == spec.ifname && e.queue == spec.queue)
    {
        return Err(invalid(
            "this (interface, queue) is listed twice".to_string(),
        ));
    }
    Ok(())
}

/// Whether a socket asking for `policy` may join a UMEM whose sockets run in `mode`.
fn may_share(policy: ZeroCopy, mode: SocketMode) -> bool {
    matches!(
        (policy, mode),
        (ZeroCopy::Auto, _)
            | (ZeroCopy::Required, SocketMode::ZeroCopy)
            | (ZeroCopy::Off, SocketMode::Copy)
    )
}

/// Binds the socket on a UMEM of this worker that can take it, else on a new one.
fn open_socket(
    spec: &SocketSpec,
    frame_count: u32,
    umems: &mut Vec<UmemPool>,
) -> Result<PortSocket, XskError> {
    for (index, pool) in umems.iter_mut().enumerate() {
        if !may_share(spec.zero_copy, pool.mode) {
            continue;
        }
        // Bind flags are ignored for a shared bind: the socket inherits the UMEM's mode.
        match bind(spec, &pool.umem, BindFlags::XDP_USE_NEED_WAKEUP) {
            Ok(bound) => {
                pool.sockets += 1;
                return Ok(finish(spec, bound, index, pool));
            }
            Err(err) if is_fatal(&err) => return Err(bind_error(spec, err)),
            Err(err) => tracing::info!(
                interface = %spec.ifname,
                queue = spec.queue,
                error = %err,
                "kernel refused to share the UMEM; this socket gets its own"
            ),
        }
    }

    let (umem, frames) = new_umem(spec, frame_count)?;
    let attempts: &[BindFlags] = match spec.zero_copy {
        ZeroCopy::Auto => &[BindFlags::XDP_ZEROCOPY, BindFlags::XDP_COPY],
        ZeroCopy::Required => &[BindFlags::XDP_ZEROCOPY],
        ZeroCopy::Off => &[BindFlags::XDP_COPY],
    };
    let mut last_error = None;
    for flags in attempts {
        match bind(spec, &umem, *flags | BindFlags::XDP_USE_NEED_WAKEUP) {
            Ok(bound) => {
                let fd = bound.0.fd().as_raw_fd();
                let mode = socket_mode(spec, fd)?;
                umems.push(UmemPool {
                    umem,
                    free: frames,
                    mode,
                    ring_size: spec.ring_size,
                    sockets: 1,
                });
                let index = umems.len() - 1;
                return Ok(finish(spec, bound, index, &umems[index]));
            }
            Err(err) if is_fatal(&err) => return Err(bind_error(spec, err)),
            Err(err) => last_error = Some(err),
        }
    }
    let err = last_error.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL));
    if spec.zero_copy == ZeroCopy::Required {
        return Err(XskError::ZeroCopyRefused {
            ifname: spec.ifname.clone(),
            queue: spec.queue,
            source: err,
        });
    }
    Err(bind_error(spec, err))
}

pub(super) type Bound = (RxQueue, TxQueue, FillQueue, CompQueue);

fn finish(spec: &SocketSpec, bound: Bound, umem: usize, pool: &UmemPool) -> PortSocket {
    let (rx, tx, fill, comp) = bound;
    PortSocket {
        ifname: spec.ifname.clone(),
        port: spec.port,
        queue: spec.queue,
        mode: pool.mode,
        umem,
        rx,
        tx,
        fill,
        comp,
        fill_size: pool.ring_size,
        tx_in_flight: 0,
        tx_staged: ArrayVec::new(),
    }
}

pub(super) fn socket_mode(spec: &SocketSpec, fd: RawFd) -> Result<SocketMode, XskError> {
    match socket_is_zero_copy(fd) {
        Ok(true) => Ok(SocketMode::ZeroCopy),
        Ok(false) => Ok(SocketMode::Copy),
        Err(source) => Err(XskError::Socket {
            ifname: spec.ifname.clone(),
            queue: spec.queue,
            operation: "reading the socket's XDP options",
            source,
        }),
    }
}

pub(super) fn new_umem(
    spec: &SocketSpec,
    frame_count: u32,
) -> Result<(Umem, Vec<FrameDesc>), XskError> {
    let umem_error = |source: io::Error| XskError::Socket {
        ifname: spec.ifname.clone(),
        queue: spec.queue,
        operation: "creating the UMEM",
        source,
    };
    let ring = QueueSize::new(spec.ring_size)
        .map_err(|e| umem_error(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
    let frame_size = FrameSize::new(FRAME_SIZE)
        .map_err(|e| umem_error(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
    let config = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| umem_error(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
    let count = NonZeroU32::new(frame_count)
        .ok_or_else(|| umem_error(io::Error::new(io::ErrorKind::InvalidInput, "zero frames")))?;
    Umem::new(config, count, false).map_err(|e| umem_error(error_cause(&e)))
}

/// Creates and binds the socket, retrying while the queue answers EBUSY.
pub(super) fn bind(spec: &SocketSpec, umem: &Umem, flags: BindFlags) -> io::Result<Bound> {
    let ring = QueueSize::new(spec.ring_size)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let config = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(flags)
        .build();
    let interface: Interface = spec
        .ifname
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    let mut attempt = 1;
    loop {
        // SAFETY: libxdp's program loading is inhibited, and each (interface, queue)
        // is bound once per worker (check_spec rejects duplicates), as Socket::new
        // requires for a shared UMEM.
        let created = unsafe { Socket::new(config, umem, &interface, spec.queue) };
        match created {
            Ok((tx, rx, Some((fill, comp)))) => return Ok((rx, tx, fill, comp)),
            Ok((_, _, None)) => {
                return Err(io::Error::other(
                    "libxdp reused another socket's fill and completion rings",
                ))
            }
            Err(err) => {
                let cause = error_cause(&err);
                if cause.raw_os_error() == Some(libc::EBUSY) && attempt < BIND_ATTEMPTS {
                    attempt += 1;
                    thread::sleep(BIND_RETRY_WAIT);
                    continue;
                }
                return Err(cause);
            }
        }
    }
}

/// The io::Error behind an xsk-rs error, keeping its errno.
fn error_cause(err: &(dyn std::error::Error + 'static)) -> io::Error {
    match err.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io) => match io.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(io.kind(), io.to_string()),
        },
        None => io::Error::other(err.to_string()),
    }
}

/// Errors that another UMEM or bind mode will not fix.
pub(super) fn is_fatal(err: &io::Error) -> bool {
    is_permission_error(err) || matches!(err.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENODEV))
}

pub(super) fn bind_error(spec: &SocketSpec, err: io::Error) -> XskError {
    let ifname = spec.ifname.clone();
    if is_permission_error(&err) {
        return XskError::PermissionDenied {
            ifname,
            operation: "creating an AF_XDP socket",
            source: err,
        };
    }
    match err.raw_os_error() {
        Some(libc::EBUSY) => XskError::QueueBusy {
            ifname,
            queue: spec.queue,
        },
        Some(libc::ENODEV) => XskError::InterfaceMissing { ifname },
        _ => XskError::Socket {
            ifname,
            queue: spec.queue,
            operation: "binding the AF_XDP socket",
            source: err,
        },
    }
}
