//! What a running `xlb pktgen` shows: a progress bar on a terminal, one line a second
//! otherwise (logs and CI keep a record the bar's redraws would not).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::rate;

/// Live counters of one thread, read by the display.
#[derive(Default)]
pub struct Progress {
    /// Frames this sender put on its TX ring.
    pub sent: AtomicU64,
    /// Stamped frames this thread received.
    pub received: AtomicU64,
    /// The sender has stopped sending (it may still be receiving).
    pub done_sending: AtomicBool,
}

impl Progress {
    /// Sent and received frames summed over `threads`.
    pub fn totals(threads: &[Progress]) -> (u64, u64) {
        threads.iter().fold((0, 0), |(sent, received), p| {
            (
                sent + p.sent.load(Ordering::Relaxed),
                received + p.received.load(Ordering::Relaxed),
            )
        })
    }
}

/// Where a run ends, which sets how full the bar is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// After this many seconds.
    Seconds(f64),
    /// After this many frames sent.
    Frames(u64),
    /// When stopped (a receiver without `--duration`): a spinner, no bar.
    Open,
}

/// The bar of a run with an end: how far, when it started, the last second's rates.
const BAR_TEMPLATE: &str = "[{bar:30}] {percent:>3}% {elapsed_precise}{msg}";

/// Nanoseconds between two progress lines or two rate updates on the bar.
const RATE_PERIOD_NS: u64 = 1_000_000_000;

/// The progress display of one run.
pub struct Display {
    bar: Option<ProgressBar>,
    goal: Goal,
    /// Whether there is anything to send (a receiver shows only what it received).
    sending: bool,
    /// Whether frames are received too.
    receiving: bool,
    started_ns: u64,
    /// Time and counts at the last rate update.
    last: (u64, u64, u64),
}

impl Display {
    /// A bar on stderr when it is a terminal, progress lines otherwise.
    pub fn new(goal: Goal, sending: bool, receiving: bool, now_ns: u64) -> Display {
        let target = std::io::stderr()
            .is_terminal()
            .then(ProgressDrawTarget::stderr);
        Display::with_target(target, goal, sending, receiving, now_ns)
    }

    /// As [`Display::new`], drawing the bar on `target` (`None`: progress lines).
    pub fn with_target(
        target: Option<ProgressDrawTarget>,
        goal: Goal,
        sending: bool,
        receiving: bool,
        now_ns: u64,
    ) -> Display {
        let bar = target.map(|target| {
            let (bar, template) = match goal {
                Goal::Seconds(seconds) => {
                    (ProgressBar::new((seconds * 1000.0) as u64), BAR_TEMPLATE)
                }
                Goal::Frames(frames) => (ProgressBar::new(frames), BAR_TEMPLATE),
                Goal::Open => (
                    ProgressBar::new_spinner(),
                    "{spinner} {elapsed_precise}{msg}",
                ),
            };
            bar.set_draw_target(target);
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Display {
            bar,
            goal,
            sending,
            receiving,
            started_ns: now_ns,
            last: (now_ns, 0, 0),
        }
    }

    /// Shows the counts at `now_ns`: moves the bar every call, refreshes the rates (and
    /// prints a line, without a bar) once a second.
    pub fn update(&mut self, now_ns: u64, sent: u64, received: u64) {
        let elapsed_ns = now_ns.saturating_sub(self.started_ns);
        if let Some(bar) = &self.bar {
            match self.goal {
                Goal::Seconds(_) => bar.set_position(elapsed_ns / 1_000_000),
                Goal::Frames(_) => bar.set_position(sent),
                Goal::Open => bar.tick(),
            }
        }
        let (last_ns, last_sent, last_received) = self.last;
        if now_ns.saturating_sub(last_ns) < RATE_PERIOD_NS {
            return;
        }
        let seconds = (now_ns - last_ns) as f64 / 1e9;
        let mut counts = String::new();
        if self.sending {
            counts += &format!(
                "  sent {sent} ({:.3} Mpps)",
                rate(sent.saturating_sub(last_sent), seconds) / 1e6
            );
        }
        if self.receiving {
            counts += &format!(
                "  received {received} ({:.3} Mpps)",
                rate(received.saturating_sub(last_received), seconds) / 1e6
            );
        }
        match &self.bar {
            Some(bar) => bar.set_message(counts),
            None => {
                let elapsed = elapsed_ns as f64 / 1e9;
                let _ = writeln!(std::io::stderr(), "[{elapsed:6.1} s]{counts}");
            }
        }
        self.last = (now_ns, sent, received);
    }

    /// Takes the bar off the terminal, so the summary table follows a clean line.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    const SECOND: u64 = 1_000_000_000;

    fn drawn(goal: Goal, steps: &[(u64, u64, u64)]) -> String {
        let term = InMemoryTerm::new(4, 120);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let mut display = Display::with_target(Some(target), goal, true, true, 0);
        for &(now, sent, received) in steps {
            display.update(now, sent, received);
        }
        if let Some(bar) = &display.bar {
            bar.force_draw();
        }
        term.contents()
    }

    #[test]
    fn the_bar_fills_with_time_and_shows_the_last_second_s_rates() {
        let screen = drawn(
            Goal::Seconds(10.0),
            &[
                (SECOND, 1_000_000, 900_000),
                (2 * SECOND, 3_000_000, 2_800_000),
                (5 * SECOND / 2, 3_500_000, 3_300_000),
            ],
        );
        assert!(screen.contains(" 25% "), "{screen}");
        assert!(screen.contains("  sent 3000000 (2.000 Mpps)"), "{screen}");
        assert!(screen.contains("received 2800000 (1.900 Mpps)"), "{screen}");
    }

    #[test]
    fn a_frame_count_fills_the_bar_by_frames_sent() {
        let screen = drawn(Goal::Frames(4_000_000), &[(SECOND, 3_000_000, 0)]);
        assert!(screen.contains(" 75% "), "{screen}");
    }

    #[test]
    fn totals_sum_every_thread() {
        let threads = [Progress::default(), Progress::default()];
        threads[0].sent.store(5, Ordering::Relaxed);
        threads[1].sent.store(7, Ordering::Relaxed);
        threads[1].received.store(3, Ordering::Relaxed);
        assert_eq!(Progress::totals(&threads), (12, 3));
    }
}
