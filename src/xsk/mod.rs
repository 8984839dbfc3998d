//! AF_XDP ports: the XDP steering program and its maps (`program`), one worker's
//! AF_XDP sockets over a shared UMEM (`ports`), an in-memory port with the same batch
//! contract for tests and benches (`memory`), and a socket that sends and receives
//! frames outside the pipeline, for the packet generator (`traffic`). With `sys`, the
//! only home of the crate's `unsafe`.
//!
//! Every port type runs the same per-batch contract: pull up to `max` frames, hand
//! them to the pipeline as `PacketBuf`s with all-`Pending` verdicts, then transmit
//! `Forward(port)` frames with the lengths the pipeline left and recycle the rest.

mod error;
mod memory;
mod ports;
mod program;
mod sys;
mod traffic;

pub use error::XskError;
pub use memory::MemoryPorts;
pub use ports::{SocketSpec, XskPorts, FRAME_SIZE};
pub use program::{AttachedMode, SteeringProgram};
pub use sys::{enter_network_namespace, interface_mac};
pub use traffic::{monotonic_ns, TrafficPort};

use crate::lb::verdict::{PortId, Verdict};
use crate::pipeline::batch::PacketBuf;

/// What a socket actually got from the kernel, to log and to show in `xlb run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketMode {
    /// Frames are DMA'd straight into the UMEM.
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM.
    Copy,
}

/// What one `process_batch` call did, for the worker's counters and idle policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Frames taken from the RX ring.
    pub rx: u32,
    /// Frames placed on TX rings.
    pub tx: u32,
    /// Frames the pipeline dropped (or left pending, or sent to a port with no socket).
    pub dropped: u32,
    /// Forwarded frames that found no room on their TX ring (also not transmitted).
    pub tx_ring_full: u32,
    /// The fill ring was left with no frame for the kernel to receive into.
    pub fill_ring_empty: bool,
    /// Syscalls made to kick the kernel because a ring asked for it.
    pub wakeups: u32,
}

/// A set of ports that runs the batch contract; implemented by the real AF_XDP ports
/// and the in-memory ports, so a worker loop can run over either.
pub trait BatchPorts {
    /// Pulls up to `max` frames from receive queue `index` and runs `process` on them;
    /// see [`XskPorts::process_batch`].
    fn process_batch<F>(&mut self, index: usize, max: usize, process: F) -> BatchStats
    where
        F: FnOnce(PortId, &mut [PacketBuf<'_>], &mut [Verdict]);
}

/// The runtime opens ports and programs on the control thread or in a pinned worker
/// and may move them between threads: fail the build if that stops being possible.
const _: () = {
    fn assert_send<T: Send>() {}
    let _ = assert_send::<XskPorts>;
    let _ = assert_send::<SteeringProgram>;
    let _ = assert_send::<MemoryPorts>;
    let _ = assert_send::<TrafficPort>;
};
