//! The token bucket that paces a sender thread to `--rate` packets per second: tokens
//! accrue with elapsed time, capped at a millisecond's worth (one batch at least), so a
//! sender preempted for less than that catches up and offers the rate it was asked for,
//! while a longer idle spell is not made up for with a flood.

/// The most time whose tokens a sender may still spend after not running.
const CATCH_UP_NS: f64 = 1_000_000.0;

/// Packets a sender may send now, refilled at a fixed rate.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last_ns: u64,
}

impl TokenBucket {
    /// A bucket filling at `per_second` packets per second, holding at most a
    /// millisecond's worth and at least `batch`, starting empty at `now_ns`.
    pub fn new(per_second: f64, batch: usize, now_ns: u64) -> Self {
        TokenBucket {
            per_second,
            burst: (per_second * CATCH_UP_NS / 1e9).max(batch.max(1) as f64),
            tokens: 0.0,
            last_ns: now_ns,
        }
    }

    /// Tokens available at `now_ns`, at most `max`, without taking them.
    #[inline]
    pub fn available(&mut self, now_ns: u64, max: usize) -> usize {
        let elapsed = now_ns.saturating_sub(self.last_ns) as f64;
        self.last_ns = self.last_ns.max(now_ns);
        self.tokens = (self.tokens + elapsed * self.per_second / 1e9).min(self.burst);
        (self.tokens as usize).min(max)
    }

    /// Takes `count` tokens (after `available` said they were there).
    #[inline]
    pub fn take(&mut self, count: usize) {
        self.tokens = (self.tokens - count as f64).max(0.0);
    }

    /// Nanoseconds until one token is available, for a sender to sleep instead of spin.
    #[inline]
    pub fn wait_ns(&self) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        (missing * 1e9 / self.per_second) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accrues_at_the_rate_and_caps_at_the_burst() {
        let mut bucket = TokenBucket::new(1_000_000.0, 64, 0);
        assert_eq!(bucket.available(0, 64), 0);
        // 10 µs at 1 Mpps: 10 packets.
        assert_eq!(bucket.available(10_000, 64), 10);
        bucket.take(10);
        assert_eq!(bucket.available(10_000, 64), 0);
        assert_eq!(bucket.wait_ns(), 1_000);
        // A long pause gives a millisecond's worth, not the whole backlog.
        assert_eq!(bucket.available(1_000_000_000, 5000), 1000);
        assert_eq!(bucket.available(1_000_000_000, 5), 5);
    }

    #[test]
    fn a_slow_rate_still_holds_a_batch() {
        let mut bucket = TokenBucket::new(1_000.0, 64, 0);
        assert_eq!(bucket.available(1_000_000_000, 100), 64);
    }

    #[test]
    fn a_preempted_sender_catches_up() {
        let mut bucket = TokenBucket::new(400_000.0, 64, 0);
        // Off the CPU for half a millisecond: 200 packets owed, sent in batches.
        let mut sent = 0;
        while let n @ 1.. = bucket.available(500_000, 64) {
            bucket.take(n);
            sent += n;
        }
        assert_eq!(sent, 200);
    }

    #[test]
    fn a_clock_that_steps_back_adds_nothing() {
        let mut bucket = TokenBucket::new(1_000.0, 8, 5_000_000);
        assert_eq!(bucket.available(1_000_000, 8), 0);
        assert_eq!(bucket.available(6_000_000, 8), 1);
    }

    #[test]
    fn sums_to_the_rate_over_many_small_steps() {
        let mut bucket = TokenBucket::new(250_000.0, 64, 0);
        let mut sent = 0;
        for step in 1..=100_000u64 {
            let n = bucket.available(step * 1_000, 64);
            bucket.take(n);
            sent += n;
        }
        // 0.1 s at 250 kpps.
        assert!((24_990..=25_000).contains(&sent), "{sent}");
    }
}
