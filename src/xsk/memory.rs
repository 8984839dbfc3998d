//! The in-memory port: the same `process_batch` contract as the AF_XDP ports over
//! frames the caller queues, recording what each port transmitted. For pipeline tests
//! and benches that need no kernel.

use std::collections::VecDeque;

use arrayvec::ArrayVec;

use super::{BatchPorts, BatchStats};
use crate::pipeline::batch::{PacketBuf, MAX_BATCH};
use crate::pipeline::verdict::{PortId, Verdict};

/// Ports backed by memory: `push_rx` queues a frame on a port, `process_batch` runs
/// the pipeline over a port's queue, `take_tx` returns what each port transmitted.
pub struct MemoryPorts {
    frame_capacity: usize,
    /// Per port: queued frames, each a buffer of `frame_capacity` bytes and a length.
    rx: Vec<VecDeque<(Vec<u8>, usize)>>,
    /// Per port: transmitted frames, cut to their final length.
    tx: Vec<Vec<Vec<u8>>>,
    /// Buffers of dropped frames, reused by `push_rx`.
    spare: Vec<Vec<u8>>,
    batch: Vec<(Vec<u8>, usize)>,
}

impl MemoryPorts {
    /// `port_count` ports whose frames have `frame_capacity` bytes of room each (the
    /// AF_XDP ports give 3840), so pipelines can grow packets as on real frames.
    pub fn new(port_count: usize, frame_capacity: usize) -> Self {
        MemoryPorts {
            frame_capacity,
            rx: (0..port_count).map(|_| VecDeque::new()).collect(),
            tx: (0..port_count).map(|_| Vec::new()).collect(),
            spare: Vec::new(),
            batch: Vec::with_capacity(MAX_BATCH),
        }
    }

    /// Queues `frame` for reception on `port`. Panics (a test bug) if the port does not
    /// exist or the frame is larger than the frame capacity.
    pub fn push_rx(&mut self, port: PortId, frame: &[u8]) {
        assert!(
            frame.len() <= self.frame_capacity,
            "frame of {} bytes exceeds the {}-byte frame capacity",
            frame.len(),
            self.frame_capacity
        );
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(self.frame_capacity, 0);
        buf[..frame.len()].copy_from_slice(frame);
        self.rx[port as usize].push_back((buf, frame.len()));
    }

    /// Frames still queued for reception on `port`.
    pub fn rx_pending(&self, port: PortId) -> usize {
        self.rx.get(port as usize).map_or(0, VecDeque::len)
    }

    /// Same contract as `XskPorts::process_batch`, with `port` as the receive queue:
    /// Forward(p) records the frame (cut to the length `process` left) as sent on `p`;
    /// Drop, Pending or a port that does not exist count as dropped.
    pub fn process_batch(
        &mut self,
        port: PortId,
        max: usize,
        process: impl FnOnce(u8, &mut [PacketBuf<'_>], &mut [Verdict]),
    ) -> BatchStats {
        let mut stats = BatchStats::default();
        let Some(queue) = self.rx.get_mut(port as usize) else {
            return stats;
        };
        let take = max.min(MAX_BATCH).min(queue.len());
        self.batch.clear();
        self.batch.extend(queue.drain(..take));
        stats.rx = take as u32;
        if take == 0 {
            return stats;
        }
        let mut verdicts = [Verdict::Pending; MAX_BATCH];
        let mut bufs: ArrayVec<PacketBuf<'_>, MAX_BATCH> = self
            .batch
            .iter_mut()
            .map(|(buf, len)| PacketBuf::new(buf, *len))
            .collect();
        process(port, &mut bufs, &mut verdicts[..take]);
        let final_lens: ArrayVec<usize, MAX_BATCH> =
            bufs.iter().map(|buf| buf.len.min(buf.buf.len())).collect();
        drop(bufs);
        let frames = self.batch.drain(..).zip(final_lens);
        for (((mut buf, _), len), verdict) in frames.zip(&verdicts[..take]) {
            match verdict {
                Verdict::Forward(out) if (*out as usize) < self.tx.len() => {
                    buf.truncate(len);
                    self.tx[*out as usize].push(buf);
                    stats.tx += 1;
                }
                _ => {
                    stats.dropped += 1;
                    self.spare.push(buf);
                }
            }
        }
        stats
    }

    /// Takes the frames transmitted on `port` so far, oldest first.
    pub fn take_tx(&mut self, port: PortId) -> Vec<Vec<u8>> {
        self.tx
            .get_mut(port as usize)
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

impl BatchPorts for MemoryPorts {
    fn process_batch<F>(&mut self, index: usize, max: usize, process: F) -> BatchStats
    where
        F: FnOnce(PortId, &mut [PacketBuf<'_>], &mut [Verdict]),
    {
        match PortId::try_from(index) {
            Ok(port) => MemoryPorts::process_batch(self, port, max, process),
            Err(_) => BatchStats::default(),
        }
    }
}
