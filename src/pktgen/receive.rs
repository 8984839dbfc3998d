//! What the receiver counts per frame: stamped packets per stream, loss and
//! reordering from sequence numbers, one-way latency into an hdrhistogram. One
//! `RxCounters` per receiving thread, merged at the end.

use hdrhistogram::Histogram;

use super::stamp::{self, Stamp};

/// Streams (sender threads) tracked; stamps of higher streams are counted but not
/// sequenced.
pub const MAX_STREAMS: usize = 64;

/// Latencies above this (60 s) are recorded as this.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Sequence state of one stream.
#[derive(Clone, Copy, Debug, Default)]
struct StreamState {
    seen: bool,
    /// Highest sequence number seen, extended past the 32-bit wrap.
    highest: u64,
    received: u64,
}

/// Counters of one receiving thread.
#[derive(Clone, Debug)]
pub struct RxCounters {
    /// Frames read, stamped or not.
    pub frames: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames without a stamp (ARP, setup chunks, strays).
    pub unstamped: u64,
    /// Stamped packets that arrived after a higher sequence number of their stream.
    pub reordered: u64,
    /// Receive time of the first and last stamped packet (0: none yet).
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
    streams: [StreamState; MAX_STREAMS],
    /// One-way latency, nanoseconds.
    pub latency: Histogram<u64>,
}

impl Default for RxCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl RxCounters {
    /// Empty counters.
    pub fn new() -> Self {
        RxCounters {
            frames: 0,
            bytes: 0,
            unstamped: 0,
            reordered: 0,
            first_ns: 0,
            last_ns: 0,
            streams: [StreamState::default(); MAX_STREAMS],
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("1 ns to 60 s at 3 significant digits is a valid hdrhistogram range"),
        }
    }

    /// Counts one received frame; `now_ns` is the batch's receive time.
    #[inline]
    pub fn record(&mut self, frame: &[u8], now_ns: u64) {
        self.frames += 1;
        self.bytes += frame.len() as u64;
        let Some(stamp) = stamp::find(frame) else {
            self.unstamped += 1;
            return;
        };
        self.record_stamp(stamp, now_ns);
    }

    #[inline]
    fn record_stamp(&mut self, stamp: Stamp, now_ns: u64) {
        if self.first_ns == 0 {
            self.first_ns = now_ns;
        }
        self.last_ns = now_ns;
        let latency = now_ns
            .saturating_sub(stamp.sent_ns)
            .clamp(1, MAX_LATENCY_NS);
        self.latency.saturating_record(latency);
        let Some(stream) = self.streams.get_mut(usize::from(stamp.stream)) else {
            return;
        };
        stream.received += 1;
        if !stream.seen {
            stream.seen = true;
            stream.highest = u64::from(stamp.seq);
            return;
        }
        // Serial-number arithmetic (RFC 1982 style): the distance from the highest seen,
        // read as signed, extends the 32-bit sequence number.
        let distance = i64::from(stamp.seq.wrapping_sub(stream.highest as u32) as i32);
        let extended = (stream.highest as i64).saturating_add(distance).max(0) as u64;
        if extended > stream.highest {
            stream.highest = extended;
        } else {
            self.reordered += 1;
        }
    }

    /// Stamped packets received.
    pub fn stamped(&self) -> u64 {
        self.frames - self.unstamped
    }

    /// Packets missing below each stream's highest sequence number, counting from 0
    /// where every stream starts (a tail lost after
    /// the last received packet is invisible here; the sender's count shows it).
    pub fn gaps(&self) -> u64 {
        self.streams
            .iter()
            .filter(|s| s.seen)
            .map(|s| (s.highest + 1).saturating_sub(s.received))
            .sum()
    }

    /// Seconds between the first and the last stamped packet received.
    pub fn active_seconds(&self) -> f64 {
        self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9
    }

    /// Adds `other`'s counts (another receiving thread's) to these.
    pub fn merge(&mut self, other: &RxCounters) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.unstamped += other.unstamped;
        self.reordered += other.reordered;
        if other.first_ns != 0 {
            self.first_ns = match self.first_ns {
                0 => other.first_ns,
                mine => mine.min(other.first_ns),
            };
            self.last_ns = self.last_ns.max(other.last_ns);
        }
        for (mine, theirs) in self.streams.iter_mut().zip(&other.streams) {
            if !theirs.seen {
                continue;
            }
            mine.highest = if mine.seen {
                mine.highest.max(theirs.highest)
            } else {
                theirs.highest
            };
            mine.seen = true;
            mine.received += theirs.received;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(stream: u16, seq: u32, sent_ns: u64) -> Stamp {
        Stamp {
            stream,
            seq,
            sent_ns,
        }
    }

    #[test]
    fn counts_gaps_and_reordering_per_stream() {
        let mut rx = RxCounters::new();
        for seq in [0, 1, 2, 4, 3, 7] {
            rx.record_stamp(stamp(0, seq, 100), 1100);
        }
        rx.record_stamp(stamp(1, 10, 100), 1100);
        // Stream 0: 0..=7 minus 5 and 6; 3 came after 4. Stream 1 lost 0..=9.
        assert_eq!(rx.gaps(), 2 + 10);
        assert_eq!(rx.reordered, 1);
        assert_eq!(rx.latency.len(), 7);
        assert_eq!(rx.latency.value_at_quantile(0.5), 1000);
    }

    #[test]
    fn sequence_numbers_wrap_at_two_to_the_32() {
        let mut rx = RxCounters::new();
        // As if 0..=2^32-3 had all arrived.
        let highest = u64::from(u32::MAX) - 2;
        rx.streams[0] = StreamState {
            seen: true,
            highest,
            received: highest + 1,
        };
        for seq in [u32::MAX - 1, u32::MAX, 0, 1] {
            rx.record_stamp(stamp(0, seq, 0), 1);
        }
        assert_eq!((rx.gaps(), rx.reordered), (0, 0));
    }

    #[test]
    fn merging_two_threads_adds_counts_and_histograms() {
        let (mut a, mut b) = (RxCounters::new(), RxCounters::new());
        a.record_stamp(stamp(0, 0, 0), 10);
        a.record_stamp(stamp(0, 2, 0), 10);
        b.record_stamp(stamp(0, 1, 0), 20);
        b.record_stamp(stamp(0, 3, 0), 20);
        a.merge(&b);
        assert_eq!(a.gaps(), 0);
        assert_eq!(a.latency.len(), 4);
        assert_eq!(a.latency.max(), 20);
    }

    #[test]
    fn frames_without_a_stamp_are_counted_apart() {
        let mut rx = RxCounters::new();
        rx.record(&[0u8; 60], 5);
        rx.record(&[], 5);
        assert_eq!((rx.frames, rx.unstamped, rx.stamped()), (2, 2, 0));
    }
}
