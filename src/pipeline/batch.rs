//! A batch of frames as a struct of arrays (DPDK l3fwd, VPP): packet buffers,
//! per-packet verdicts, and whatever metadata stages parse. Stages loop over the
//! whole batch; a drop is a verdict, not an early return.

/// Largest batch a worker pulls from a ring at once.
pub const MAX_BATCH: usize = 256;

/// One frame: a writable buffer (a UMEM chunk's data area, or a test buffer) holding
/// the packet in `buf[..len]`. Capacity past `len` is room to grow for encapsulation.
pub struct PacketBuf<'a> {
    /// The whole writable area; the packet starts at offset 0.
    pub buf: &'a mut [u8],
    /// Length of the packet in `buf`.
    pub len: usize,
}

impl<'a> PacketBuf<'a> {
    /// Wraps a buffer holding a packet of `len` bytes.
    pub fn new(buf: &'a mut [u8], len: usize) -> Self {
        debug_assert!(len <= buf.len());
        PacketBuf { buf, len }
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}
