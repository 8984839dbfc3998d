//! The result of a run: what was sent, what arrived, loss, reordering and latency
//! percentiles; printed as a table and written as JSON (`--json FILE`).

use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::receive::RxCounters;

/// What one `xlb pktgen` run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PktgenReport {
    /// `send`, `send+receive` or `receive`.
    pub mode: String,
    /// Traffic kind (`udp`, `tcp-syn`, `tcp-est`, `sctp`), absent in receive mode.
    pub proto: Option<String>,
    /// `--size` as given (bytes or `imix`), absent in receive mode.
    pub size: Option<String>,
    /// Frame lengths actually sent (grown to hold headers and the stamp).
    pub frame_lengths: Vec<usize>,
    /// Flows (SCTP: associations).
    pub flows: u32,
    /// Sender (or receiver) threads, one per queue.
    pub queues: u32,
    /// Seconds from the first to the last packet sent (receive mode: listened).
    pub duration_s: f64,
    /// The sending side.
    pub tx: Option<TxSummary>,
    /// The receiving side.
    pub rx: Option<RxSummary>,
}

/// Sent packets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxSummary {
    /// Stamped packets placed on TX rings (setup packets excluded).
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Packets per second over the run.
    pub pps: f64,
    /// Gigabits per second of frame bytes.
    pub gbps: f64,
    /// SCTP INIT and COOKIE-ECHO frames sent before the data.
    pub setup_packets: u64,
}

/// Received packets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RxSummary {
    /// Stamped packets received.
    pub packets: u64,
    /// Bytes of all frames received.
    pub bytes: u64,
    /// Stamped packets per second over the run.
    pub pps: f64,
    /// Sent minus received when the sender is in this process, else the gaps in the
    /// sequence numbers.
    pub lost: u64,
    /// `lost` over the packets that should have arrived.
    pub loss_ratio: f64,
    /// Packets that arrived after a later one of their stream.
    pub reordered: u64,
    /// Frames without a stamp (ARP, SCTP setup, strays).
    pub unstamped: u64,
    /// One-way latency, absent when nothing arrived.
    pub latency_ns: Option<Latency>,
}

/// Latency percentiles, nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub samples: u64,
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of `histogram`, `None` when it is empty.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        Some(Latency {
            samples: histogram.len(),
            min: histogram.min(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        })
    }
}

impl RxSummary {
    /// The summary of `counters` over `seconds`; `sent` is the sender's count when it
    /// ran in this process.
    pub fn new(counters: &RxCounters, seconds: f64, sent: Option<u64>) -> RxSummary {
        let packets = counters.stamped();
        let lost = match sent {
            Some(sent) => sent.saturating_sub(packets),
            None => counters.gaps(),
        };
        let expected = packets + lost;
        RxSummary {
            packets,
            bytes: counters.bytes,
            pps: rate(packets, seconds),
            lost,
            loss_ratio: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            reordered: counters.reordered,
            unstamped: counters.unstamped,
            latency_ns: Latency::from_histogram(&counters.latency),
        }
    }
}

/// `count / seconds`, 0 for an empty interval.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

impl fmt::Display for PktgenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "  {name:<14} {value}")
        };
        writeln!(f, "xlb pktgen: {}", self.mode)?;
        if let (Some(proto), Some(size)) = (&self.proto, &self.size) {
            let lengths: Vec<String> = self.frame_lengths.iter().map(|l| l.to_string()).collect();
            row(
                f,
                "traffic",
                format!(
                    "{proto}, size {size} (frames of {} bytes), {} flows, {} queues",
                    lengths.join("/"),
                    self.flows,
                    self.queues
                ),
            )?;
        }
        row(f, "duration", format!("{:.3} s", self.duration_s))?;
        if let Some(tx) = &self.tx {
            row(
                f,
                "sent",
                format!(
                    "{} packets, {:.3} Mpps, {:.3} Gbit/s",
                    tx.packets,
                    tx.pps / 1e6,
                    tx.gbps
                ),
            )?;
            if tx.setup_packets > 0 {
                row(
                    f,
                    "sctp setup",
                    format!("{} INIT/COOKIE-ECHO", tx.setup_packets),
                )?;
            }
        }
        if let Some(rx) = &self.rx {
            row(
                f,
                "received",
                format!("{} packets, {:.3} Mpps", rx.packets, rx.pps / 1e6),
            )?;
            row(
                f,
                "lost",
                format!("{} ({:.4} %)", rx.lost, rx.loss_ratio * 100.0),
            )?;
            row(f, "reordered", rx.reordered.to_string())?;
            row(f, "unstamped", rx.unstamped.to_string())?;
            if let Some(l) = &rx.latency_ns {
                row(
                    f,
                    "latency",
                    format!(
                        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                        micros(l.p50),
                        micros(l.p90),
                        micros(l.p99),
                        micros(l.p999),
                        micros(l.max)
                    ),
                )?;
            }
        }
        Ok(())
    }
}
