//! Noticing a worker that stops making progress. Each worker stores a pass counter once
//! per loop pass ([`WorkerStats::progress`](crate::runtime::worker::WorkerStats)); the
//! supervisor samples every counter about once a second and feeds the samples to a
//! [`StallDetector`], which says which workers went quiet for longer than the threshold
//! and which came back. Sans-IO: samples and `now` in, changes out, so the rules are
//! tested without threads or clocks.
//!
//! A stuck worker (a livelock, a kernel call that never returns, a debugger) stops its
//! queues without stopping the process; the supervisor logs it, exports it as
//! `xlb_worker_stalled`, and stops petting systemd's watchdog so the service restarts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info};

use crate::runtime::dataplane::Dataplane;
use crate::runtime::worker::WorkerStats;

/// How long a worker may make no progress before it counts as stalled: far above an
/// idle worker's poll timeout (1 ms) and any batch, short enough for the watchdog.
pub const STALL_THRESHOLD: Duration = Duration::from_secs(2);

/// How often the supervisor samples the workers' progress.
pub const CHECK_PERIOD: Duration = Duration::from_secs(1);

/// A worker that crossed the threshold one way or the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallChange {
    /// The worker (by position) has made no progress for `quiet`.
    Stalled {
        /// Position of the worker in the samples.
        worker: usize,
        /// How long its counter has not moved.
        quiet: Duration,
    },
    /// The worker moved again after a stall that lasted at least `quiet`.
    Recovered {
        /// Position of the worker in the samples.
        worker: usize,
        /// How long its counter had not moved.
        quiet: Duration,
    },
}

/// One worker as the detector last saw it.
#[derive(Clone, Copy, Debug)]
struct Watched {
    progress: u64,
    moved_at: Instant,
    stalled: bool,
}

/// Which workers stopped making progress, from successive samples of their counters.
#[derive(Debug)]
pub struct StallDetector {
    threshold: Duration,
    workers: Vec<Watched>,
}

impl StallDetector {
    /// A detector for workers whose counters read `progress` at `now`.
    pub fn new(threshold: Duration, progress: &[u64], now: Instant) -> StallDetector {
        let workers = progress
            .iter()
            .map(|&progress| Watched {
                progress,
                moved_at: now,
                stalled: false,
            })
            .collect();
        StallDetector { threshold, workers }
    }

    /// Takes one sample of every worker's counter (same order as at [`StallDetector::new`])
    /// and returns the workers that stalled or recovered since the last sample.
    pub fn observe(&mut self, progress: &[u64], now: Instant) -> Vec<StallChange> {
        let mut changes = Vec::new();
        for (worker, (watched, &sample)) in self.workers.iter_mut().zip(progress).enumerate() {
            let quiet = now.saturating_duration_since(watched.moved_at);
            if sample != watched.progress {
                if watched.stalled {
                    changes.push(StallChange::Recovered { worker, quiet });
                }
                *watched = Watched {
                    progress: sample,
                    moved_at: now,
                    stalled: false,
                };
            } else if !watched.stalled && quiet > self.threshold {
                watched.stalled = true;
                changes.push(StallChange::Stalled { worker, quiet });
            }
        }
        changes
    }

    /// How long worker `worker`'s counter has not moved, as of `now`.
    pub fn quiet(&self, worker: usize, now: Instant) -> Duration {
        self.workers.get(worker).map_or(Duration::ZERO, |w| {
            now.saturating_duration_since(w.moved_at)
        })
    }

    /// Whether worker `worker` is stalled now.
    pub fn is_stalled(&self, worker: usize) -> bool {
        self.workers.get(worker).is_some_and(|w| w.stalled)
    }

    /// Whether any worker is stalled now.
    pub fn any_stalled(&self) -> bool {
        self.workers.iter().any(|w| w.stalled)
    }
}

/// The stall check over a running dataplane's workers: samples their counters every
/// [`CHECK_PERIOD`], logs who stalled and who recovered (worker, core, queues), and
/// keeps each worker's `xlb_worker_stalled` and seconds-since-progress gauges.
pub struct WorkerWatch {
    detector: StallDetector,
    workers: Vec<Watch>,
    checked: Instant,
}

/// One worker as the log names it, and its counters.
struct Watch {
    id: usize,
    cpu: usize,
    /// `eth0:0,eth0:1`: the (interface, queue) pairs it serves.
    queues: String,
    stats: Arc<WorkerStats>,
}

impl WorkerWatch {
    /// Watches every worker of `dataplane`, starting at `now`.
    pub fn new(dataplane: &Dataplane, now: Instant) -> WorkerWatch {
        let workers: Vec<Watch> = dataplane
            .assignments()
            .iter()
            .zip(dataplane.workers())
            .map(|(assignment, (id, served, stats))| Watch {
                id,
                cpu: assignment.cpu,
                queues: served
                    .iter()
                    .map(|(interface, queue)| format!("{interface}:{queue}"))
                    .collect::<Vec<_>>()
                    .join(","),
                stats,
            })
            .collect();
        let detector = StallDetector::new(STALL_THRESHOLD, &sample(&workers), now);
        WorkerWatch {
            detector,
            workers,
            checked: now,
        }
    }

    /// Samples the workers if a check is due at `now`; true while any worker is stalled.
    pub fn check(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.checked) < CHECK_PERIOD {
            return self.detector.any_stalled();
        }
        self.checked = now;
        for change in self.detector.observe(&sample(&self.workers), now) {
            match change {
                StallChange::Stalled { worker, quiet } => {
                    let w = &self.workers[worker];
                    error!(worker = w.id, cpu = w.cpu, queues = %w.queues, "worker {} on CPU {} has made no progress for {quiet:.1?}: its queues ({}) are not served; the systemd watchdog is no longer pinged", w.id, w.cpu, w.queues);
                }
                StallChange::Recovered { worker, quiet } => {
                    let w = &self.workers[worker];
                    info!(worker = w.id, cpu = w.cpu, queues = %w.queues, "worker {} on CPU {} makes progress again after {quiet:.1?} without: its queues ({}) are served", w.id, w.cpu, w.queues);
                }
            }
        }
        for (index, w) in self.workers.iter().enumerate() {
            let liveness = &w.stats.liveness;
            let stalled = u64::from(self.detector.is_stalled(index));
            liveness.stalled.store(stalled, Ordering::Relaxed);
            let quiet = self.detector.quiet(index, now).as_secs();
            liveness
                .seconds_since_progress
                .store(quiet, Ordering::Relaxed);
        }
        self.detector.any_stalled()
    }
}

/// Every watched worker's progress counter, in order.
fn sample(workers: &[Watch]) -> Vec<u64> {
    workers
        .iter()
        .map(|w| w.stats.progress.load(Ordering::Relaxed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_worker_whose_counter_stops_is_stalled_past_the_threshold_and_recovers() {
        let t0 = Instant::now();
        let mut detector = StallDetector::new(2 * SECOND, &[0, 0], t0);
        // Both move, then worker 1 stops at 20.
        assert!(detector.observe(&[10, 10], t0 + SECOND).is_empty());
        assert!(detector.observe(&[20, 20], t0 + 2 * SECOND).is_empty());
        assert!(detector.observe(&[30, 20], t0 + 3 * SECOND).is_empty());
        // Two seconds quiet is not yet more than the threshold.
        assert!(detector.observe(&[40, 20], t0 + 4 * SECOND).is_empty());
        assert!(!detector.any_stalled());
        let changes = detector.observe(&[50, 20], t0 + 5 * SECOND);
        assert_eq!(
            changes,
            [StallChange::Stalled {
                worker: 1,
                quiet: 3 * SECOND
            }]
        );
        assert!(detector.any_stalled() && detector.is_stalled(1) && !detector.is_stalled(0));
        // Reported once, not on every sample.
        assert!(detector.observe(&[60, 20], t0 + 6 * SECOND).is_empty());
        assert_eq!(detector.quiet(1, t0 + 6 * SECOND), 4 * SECOND);
        assert_eq!(detector.quiet(0, t0 + 6 * SECOND), Duration::ZERO);
        let changes = detector.observe(&[70, 21], t0 + 7 * SECOND);
        assert_eq!(
            changes,
            [StallChange::Recovered {
                worker: 1,
                quiet: 5 * SECOND
            }]
        );
        assert!(!detector.any_stalled());
        assert_eq!(detector.quiet(1, t0 + 7 * SECOND), Duration::ZERO);
    }

    #[test]
    fn every_worker_is_judged_on_its_own_and_a_wrapped_counter_is_progress() {
        let t0 = Instant::now();
        let mut detector = StallDetector::new(2 * SECOND, &[u64::MAX, 5, 7], t0);
        let changes = detector.observe(&[0, 5, 7], t0 + 3 * SECOND);
        assert_eq!(
            changes,
            [
                StallChange::Stalled {
                    worker: 1,
                    quiet: 3 * SECOND
                },
                StallChange::Stalled {
                    worker: 2,
                    quiet: 3 * SECOND
                },
            ]
        );
        let changes = detector.observe(&[0, 6, 7], t0 + 4 * SECOND);
        assert_eq!(
            changes,
            [StallChange::Recovered {
                worker: 1,
                quiet: 4 * SECOND
            }]
        );
        assert!(!detector.is_stalled(0) && detector.is_stalled(2));
    }
}
