//! The in-memory port: the same `process_batch` contract as the AF_XDP ports over
//! frames the caller queues, recording what each port transmitted. For pipeline tests
//! and benches that need no kernel.

use std::collections::VecDeque;

use arrayvec::ArrayVec;

use super::{BatchPorts, BatchStats};
use crate::lb::verdict::{PortId, Verdict};
use crate::pipeline::batch::{PacketBuf, MAX_BATCH};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::verdict::DropReason;

    const CAPACITY: usize = 3840;

    #[test]
    fn forwarded_frames_leave_on_their_port_with_the_length_set() {
        let mut ports = MemoryPorts::new(2, CAPACITY);
        ports.push_rx(0, &[1, 2, 3]);
        ports.push_rx(0, &[4, 5]);
        let stats = ports.process_batch(0, 64, |ingress, bufs, verdicts| {
            assert_eq!(ingress, 0);
            assert_eq!(bufs[0].data(), &[1, 2, 3]);
            // Grow the first packet into the room past its end, as encapsulation does.
            bufs[0].buf[3..5].copy_from_slice(&[9, 9]);
            bufs[0].len = 5;
            verdicts[0] = Verdict::Forward(1);
            verdicts[1] = Verdict::Drop(DropReason::Baseline);
        });
        assert_eq!(stats.rx, 2);
        assert_eq!(stats.tx, 1);
        assert_eq!(stats.dropped, 1);
        assert_eq!(ports.take_tx(1), vec![vec![1, 2, 3, 9, 9]]);
        assert!(ports.take_tx(0).is_empty());
        assert!(ports.take_tx(1).is_empty(), "take_tx drains");
    }

    #[test]
    fn buffers_span_the_whole_frame_and_verdicts_start_pending() {
        let mut ports = MemoryPorts::new(1, CAPACITY);
        ports.push_rx(0, &[0xab; 60]);
        ports.process_batch(0, 64, |_, bufs, verdicts| {
            assert_eq!(bufs[0].buf.len(), CAPACITY);
            assert_eq!(bufs[0].len, 60);
            assert_eq!(verdicts, &[Verdict::Pending]);
        });
    }

    #[test]
    fn pending_and_unknown_ports_are_dropped() {
        let mut ports = MemoryPorts::new(1, CAPACITY);
        ports.push_rx(0, &[1]);
        ports.push_rx(0, &[2]);
        let stats = ports.process_batch(0, 64, |_, _, verdicts| {
            verdicts[1] = Verdict::Forward(7);
        });
        assert_eq!((stats.rx, stats.tx, stats.dropped), (2, 0, 2));
        assert!(ports.take_tx(0).is_empty());
    }

    #[test]
    fn a_batch_takes_at_most_max_frames_in_order() {
        let mut ports = MemoryPorts::new(1, CAPACITY);
        for byte in 0..5u8 {
            ports.push_rx(0, &[byte]);
        }
        let mut firsts = Vec::new();
        let stats = ports.process_batch(0, 3, |_, bufs, verdicts| {
            firsts.extend(bufs.iter().map(|b| b.data()[0]));
            verdicts.fill(Verdict::Forward(0));
        });
        assert_eq!(stats.rx, 3);
        assert_eq!(firsts, vec![0, 1, 2]);
        assert_eq!(ports.rx_pending(0), 2);
        let stats = ports.process_batch(0, 64, |_, _, verdicts| {
            verdicts.fill(Verdict::Forward(0));
        });
        assert_eq!(stats.rx, 2);
        assert_eq!(
            ports.take_tx(0),
            vec![vec![0], vec![1], vec![2], vec![3], vec![4]]
        );
    }

    #[test]
    fn an_empty_queue_does_not_run_the_pipeline() {
        let mut ports = MemoryPorts::new(1, CAPACITY);
        let mut ran = false;
        let stats = ports.process_batch(0, 64, |_, _, _| ran = true);
        assert!(!ran);
        assert_eq!(stats, BatchStats::default());
    }

    #[test]
    fn the_batch_ports_trait_runs_the_same_contract() {
        fn forward_all<P: BatchPorts>(ports: &mut P) -> BatchStats {
            ports.process_batch(0, 64, |_, _, verdicts| verdicts.fill(Verdict::Forward(0)))
        }
        let mut ports = MemoryPorts::new(1, CAPACITY);
        ports.push_rx(0, &[7]);
        assert_eq!(forward_all(&mut ports).tx, 1);
        assert_eq!(ports.take_tx(0), vec![vec![7]]);
    }
}
