//! One AF_XDP socket with a UMEM of its own, for traffic that does not go through the
//! pipeline: the packet generator writes frames straight into free UMEM frames and
//! puts them on the TX ring, and its receiver reads frames off the RX ring and
//! recycles them to the fill ring in the same pass.

use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::config::BindFlags;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use super::error::XskError;
use super::ports::{bind, bind_error, check_spec, is_fatal, new_umem, socket_mode};
use super::sys::{kick_tx, poll_readable};
use super::{SocketMode, SocketSpec};
use crate::config::ZeroCopy;
use crate::pipeline::batch::MAX_BATCH;

/// An AF_XDP socket that transmits frames a caller writes and receives frames a
/// caller reads, on one (interface, queue), over its own UMEM.
pub struct TrafficPort {
    ifname: String,
    queue: u32,
    mode: SocketMode,
    umem: Umem,
    /// Frames in no ring; never grows past the UMEM's frame count.
    free: Vec<FrameDesc>,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    tx_in_flight: u32,
    batch: Vec<FrameDesc>,
}

impl TrafficPort {
    /// Opens and binds the socket with `frame_count` UMEM frames. With `receive`, half
    /// of them (at most a ring's worth) go to the fill ring so the socket can receive;
    /// without, every frame is available to transmit.
    pub fn open(spec: &SocketSpec, frame_count: u32, receive: bool) -> Result<Self, XskError> {
        check_spec(spec, &[], frame_count)?;
        let (umem, mut free) = new_umem(spec, frame_count)?;
        let attempts: &[BindFlags] = match spec.zero_copy {
            ZeroCopy::Auto => &[BindFlags::XDP_ZEROCOPY, BindFlags::XDP_COPY],
            ZeroCopy::Required => &[BindFlags::XDP_ZEROCOPY],
            ZeroCopy::Off => &[BindFlags::XDP_COPY],
        };
        let mut last_error = None;
        let mut bound = None;
        for flags in attempts {
            match bind(spec, &umem, *flags | BindFlags::XDP_USE_NEED_WAKEUP) {
                Ok(socket) => {
                    bound = Some(socket);
                    break;
                }
                Err(err) if is_fatal(&err) => return Err(bind_error(spec, err)),
                Err(err) => last_error = Some(err),
            }
        }
        let Some((rx, tx, mut fill, comp)) = bound else {
            let err = last_error.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL));
            return Err(match spec.zero_copy {
                ZeroCopy::Required => XskError::ZeroCopyRefused {
                    ifname: spec.ifname.clone(),
                    queue: spec.queue,
                    source: err,
                },
                _ => bind_error(spec, err),
            });
        };
        let mode = socket_mode(spec, rx.fd().as_raw_fd())?;
        if receive {
            let share = (free.len() / 2).min(spec.ring_size as usize);
            let start = free.len() - share;
            // SAFETY: the frames come from this socket's UMEM and are in no ring.
            let placed = unsafe { fill.produce(&free[start..]) };
            free.truncate(free.len() - placed);
        }
        tracing::debug!(interface = %spec.ifname, queue = spec.queue, mode = ?mode, "traffic socket bound");
        Ok(TrafficPort {
            ifname: spec.ifname.clone(),
            queue: spec.queue,
            mode,
            umem,
            free,
            rx,
            tx,
            fill,
            comp,
            tx_in_flight: 0,
            batch: vec![FrameDesc::default(); MAX_BATCH],
        })
    }

    /// The interface this socket is bound on.
    pub fn interface(&self) -> &str {
        &self.ifname
    }

    /// The queue this socket is bound on.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Zero-copy or copy, as the kernel granted.
    pub fn mode(&self) -> SocketMode {
        self.mode
    }

    /// The socket's fd, for `SteeringProgram::register_socket`.
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Frames on the TX ring that the kernel has not completed yet.
    #[inline]
    pub fn tx_in_flight(&self) -> u32 {
        self.tx_in_flight
    }

    /// Writes up to `max` frames (at most one batch) with `write`, which fills the
    /// buffer it gets (a whole frame's data area) and returns the frame length, then
    /// places them on the TX ring and kicks the kernel if it asks. Completed frames
    /// are reclaimed first. Returns how many frames went on the ring.
    pub fn transmit(&mut self, max: usize, mut write: impl FnMut(&mut [u8]) -> usize) -> usize {
        self.reclaim();
        let want = max.min(MAX_BATCH).min(self.free.len());
        let room = (self.tx.nb_free(want as u32) as usize).min(want);
        if room > 0 {
            let start = self.free.len() - room;
            for desc in &mut self.free[start..] {
                // SAFETY: free-list frames belong to this UMEM and are in no ring, so
                // no other reference to this frame exists while it is written.
                let mut area = unsafe { self.umem.data_mut(desc) };
                let mut cursor = area.cursor();
                cursor.set_pos(usize::MAX);
                let len = write(area.contents_mut());
                area.cursor().set_pos(len);
            }
            // SAFETY: the frames belong to this socket's UMEM and are in no ring.
            let sent = unsafe { self.tx.produce(&self.free[start..]) };
            self.free.truncate(self.free.len() - sent);
            self.tx_in_flight += sent as u32;
        }
        if self.tx_in_flight > 0 && self.tx.needs_wakeup() {
            kick_tx(self.tx.fd().as_raw_fd(), self.tx_in_flight);
        }
        room
    }

    /// Moves completed TX frames back to the free list.
    pub fn reclaim(&mut self) {
        if self.tx_in_flight == 0 {
            return;
        }
        // SAFETY: the completion ring only returns frames of this socket's UMEM.
        let done = unsafe { self.comp.consume(&mut self.batch) };
        self.tx_in_flight = self.tx_in_flight.saturating_sub(done as u32);
        self.free.extend_from_slice(&self.batch[..done]);
    }

    /// Sleeps until the RX ring has frames or `timeout_ms` passes (also kicks the
    /// kernel to fill it, in copy mode).
    pub fn wait_readable(&mut self, timeout_ms: i32) {
        let mut fds = [libc::pollfd {
            fd: self.rx.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        poll_readable(&mut fds, timeout_ms);
    }

    /// Takes up to `max` received frames (at most one batch), hands each frame's
    /// bytes to `read`, and returns the frames to the fill ring. Returns how many
    /// frames were read.
    pub fn receive(&mut self, max: usize, mut read: impl FnMut(&[u8])) -> usize {
        let want = max.min(MAX_BATCH);
        // SAFETY: the RX ring only holds frames of this socket's UMEM.
        let received = unsafe { self.rx.consume(&mut self.batch[..want]) };
        for desc in &self.batch[..received] {
            // SAFETY: the descriptor came off this UMEM's RX ring and is in no ring now.
            let data = unsafe { self.umem.data(desc) };
            read(data.contents());
        }
        if received > 0 {
            // SAFETY: the frames came off this socket's RX ring, so belong to its UMEM.
            let placed = unsafe { self.fill.produce(&self.batch[..received]) };
            self.free.extend_from_slice(&self.batch[placed..received]);
        }
        if self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
        received
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the send timestamp the generator writes and the
/// receiver compares against. Both ends run on one machine, so one clock serves both,
/// across processes and network namespaces.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to write; CLOCK_MONOTONIC
    // always exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(now.tv_nsec as u64)
}
