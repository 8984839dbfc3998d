//! `xlb stats`: a live terminal view of the metrics endpoint. Scrapes it over plain
//! HTTP/1.1, parses the text exposition, and prints, every interval, per-worker RX/TX
//! packets per second and drops per second, per-service and per-backend packets per
//! second and Mbit/s (rates between two scrapes), and each backend's state.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Where `xlb stats` looks when no `--url` is given: the default `metrics_listen`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9781/metrics";

/// How long one scrape may take (connect, send, read the whole answer).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `xlb stats` stopped.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The URL is not `http://HOST:PORT[/PATH]` (or `HOST:PORT`).
    #[error("{url}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The endpoint could not be reached or stopped answering.
    #[error("{url}: {source}; is xlb running, and is `dataplane.metrics_listen` this address?")]
    Connect {
        /// The URL scraped.
        url: String,
        /// What the socket said.
        source: io::Error,
    },
    /// The endpoint answered with something other than `200 OK` and a body.
    #[error("{url}: {message}")]
    Http {
        /// The URL scraped.
        url: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// A line of the body is not valid exposition text.
    #[error("{url}: line {line} of the exposition: {message}")]
    Exposition {
        /// The URL scraped.
        url: String,
        /// 1-based line number in the body.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Writing the view failed (the terminal or pipe went away).
    #[error("writing the view: {0}")]
    Output(#[from] io::Error),
}

/// How frames are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Clear the terminal and draw each frame at the top (interactive use).
    Redraw,
    /// Print frames one after another, separated by a blank line (pipes, logs, tests).
    Plain,
}

impl Screen {
    /// `Redraw` when standard output is a terminal, else `Plain`.
    pub fn detect() -> Screen {
        if io::stdout().is_terminal() {
            Screen::Redraw
        } else {
            Screen::Plain
        }
    }
}

/// Shows the live view of `url` on `out`, one frame every `interval`, until `count`
/// frames were shown (forever without a count). The first frame comes after two
/// scrapes, one interval apart. Redraws in place when standard output is a terminal.
pub fn run_stats(
    url: &str,
    interval: Duration,
    count: Option<u64>,
    out: &mut impl Write,
) -> Result<(), StatsError> {
    run_stats_on(url, interval, count, out, Screen::detect())
}

/// [`run_stats`] with the drawing mode chosen by the caller.
pub fn run_stats_on(
    url: &str,
    interval: Duration,
    count: Option<u64>,
    out: &mut impl Write,
    screen: Screen,
) -> Result<(), StatsError> {
    let endpoint = Endpoint::parse(url)?;
    let mut previous = endpoint.scrape()?;
    let mut shown = 0u64;
    while count.is_none_or(|count| shown < count) {
        std::thread::sleep(interval);
        let current = endpoint.scrape()?;
        let text = Frame::between(&previous, &current).render(&endpoint.url);
        match screen {
            Screen::Redraw => write!(out, "\x1b[H\x1b[2J{text}")?,
            Screen::Plain if shown > 0 => write!(out, "\n{text}")?,
            Screen::Plain => write!(out, "{text}")?,
        }
        out.flush()?;
        previous = current;
        shown += 1;
    }
    Ok(())
}

/// A scrape target: `authority` (host:port) and the request path.
/// The live SCTP associations per (service, backend) a running xlb reports, for
/// `xlb diff --url`.
pub fn live_associations(url: &str) -> Result<crate::control::diff::LiveAssociations, StatsError> {
    let scrape = Endpoint::parse(url)?.scrape()?;
    Ok(scrape
        .series("xlb_backend_sctp_associations")
        .iter()
        .map(|sample| {
            let key = (
                sample.label("service").to_owned(),
                sample.label("backend").to_owned(),
            );
            (key, sample.value as u64)
        })
        .collect())
}

struct Endpoint {
    url: String,
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, StatsError> {
        let error = |reason: &str| StatsError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((_, _)) => return Err(error("only http:// is served by xlb's metrics endpoint")),
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/metrics"),
        };
        if authority.is_empty() {
            return Err(error("no host; give e.g. http://127.0.0.1:9781/metrics"));
        }
        // A port is present when the text after the last ':' is outside brackets.
        let has_port = authority
            .rfind(':')
            .is_some_and(|colon| !authority[colon..].contains(']'));
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Endpoint {
            url: url.to_string(),
            authority,
            path: path.to_string(),
        })
    }

    fn scrape(&self) -> Result<Scrape, StatsError> {
        let at = Instant::now();
        let body = self.fetch()?;
        let samples =
            parse_exposition(&body).map_err(|(line, message)| StatsError::Exposition {
                url: self.url.clone(),
                line,
                message,
            })?;
        Ok(Scrape::new(at, samples))
    }

    fn fetch(&self) -> Result<String, StatsError> {
        let connect = |source| StatsError::Connect {
            url: self.url.clone(),
            source,
        };
        let address = self
            .authority
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| {
                connect(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the host name has no address",
                ))
            })?;
        let mut stream = TcpStream::connect_timeout(&address, SCRAPE_TIMEOUT).map_err(connect)?;
        stream
            .set_read_timeout(Some(SCRAPE_TIMEOUT))
            .map_err(connect)?;
        stream
            .set_write_timeout(Some(SCRAPE_TIMEOUT))
            .map_err(connect)?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nUser-Agent: xlb-stats\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes()).map_err(connect)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(connect)?;
        self.body_of(&answer)
    }

    /// The body of an HTTP/1.1 answer, de-chunked when needed.
    fn body_of(&self, answer: &[u8]) -> Result<String, StatsError> {
        let http = |message: String| StatsError::Http {
            url: self.url.clone(),
            message,
        };
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| http("the answer has no complete HTTP header".into()))?;
        let head = String::from_utf8_lossy(&answer[..split]);
        let body = &answer[split + 4..];
        let mut lines = head.lines();
        let status = lines.next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(http(format!("answered `{status}`, not 200 OK")));
        }
        let chunked = lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("transfer-encoding")
                    && value.to_ascii_lowercase().contains("chunked")
            })
        });
        let body = if chunked {
            dechunk(body).ok_or_else(|| http("malformed chunked body".into()))?
        } else {
            body.to_vec()
        };
        String::from_utf8(body).map_err(|_| http("the body is not UTF-8".into()))
    }
}

/// Joins the chunks of a `Transfer-Encoding: chunked` body; `None` if malformed.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut joined = Vec::with_capacity(body.len());
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = body.get(line_end + 2..)?;
        if size == 0 {
            return Some(joined);
        }
        joined.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// One series of a scrape.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// Parses text exposition (Prometheus 0.0.4 or OpenMetrics): every sample line,
/// comments skipped. Errors carry the 1-based line number.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, (usize, String)> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_sample(line).map_err(|message| (index + 1, message))?);
    }
    Ok(samples)
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .char_indices()
        .find(|(i, c)| !is_name_char(*c, *i == 0))
        .map_or(line.len(), |(i, _)| i);
    if name_end == 0 {
        return Err(format!("`{line}` does not start with a metric name"));
    }
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = rest
                .split_once('=')
                .ok_or_else(|| format!("label without `=` in `{line}`"))?;
            let key = key.trim();
            if key.is_empty()
                || !key
                    .chars()
                    .enumerate()
                    .all(|(i, c)| is_name_char(c, i == 0))
            {
                return Err(format!("bad label name `{key}` in `{line}`"));
            }
            let quoted = after_key
                .trim_start()
                .strip_prefix('"')
                .ok_or_else(|| format!("label `{key}` has no quoted value in `{line}`"))?;
            let (value, after_value) = unquote(quoted)
                .ok_or_else(|| format!("label `{key}` has an unterminated value in `{line}`"))?;
            labels.push((key.to_string(), value));
            rest = after_value.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!(
                    "expected `,` or `}}` after label `{key}` in `{line}`"
                ));
            }
        }
    }
    let value_text = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("`{line}` has no value"))?;
    let value = value_text
        .parse::<f64>()
        .map_err(|_| format!("`{value_text}` is not a number in `{line}`"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads a label value after its opening quote: the unescaped value and the text
/// after the closing quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// One scrape: when it was taken and its samples, indexed by name.
struct Scrape {
    at: Instant,
    by_name: HashMap<String, Vec<Sample>>,
}

impl Scrape {
    fn new(at: Instant, samples: Vec<Sample>) -> Self {
        let mut by_name: HashMap<String, Vec<Sample>> = HashMap::new();
        for sample in samples {
            by_name.entry(sample.name.clone()).or_default().push(sample);
        }
        Scrape { at, by_name }
    }

    fn series(&self, name: &str) -> &[Sample] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Sum of `name` over the series whose labels include every `(key, value)`.
    fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.series(name)
            .iter()
            .filter(|s| matching.iter().all(|(k, v)| s.label(k) == *v))
            .map(|s| s.value)
            .sum()
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.series(name).first().map(|s| s.value)
    }
}

/// Per-second rate of a counter between two scrapes; a counter that went down was
/// reset (xlb restarted, or a backend id changed hands), so the new value is the
/// increase, as Prometheus' `rate()` counts it.
fn rate(before: f64, after: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    let increase = if after >= before {
        after - before
    } else {
        after
    };
    increase / seconds
}

struct WorkerRow {
    worker: String,
    interface: String,
    queue: String,
    rx_pps: f64,
    tx_pps: f64,
    drops_per_second: f64,
    flows: f64,
}

struct BackendRow {
    name: String,
    up: bool,
    draining: bool,
    pps: f64,
    mbps: f64,
}

struct ServiceRow {
    name: String,
    pps: f64,
    mbps: f64,
    backends: Vec<BackendRow>,
}

/// What one frame shows, computed from two scrapes.
struct Frame {
    generation: f64,
    reloads_ok: f64,
    reloads_failed: f64,
    workers: Vec<WorkerRow>,
    services: Vec<ServiceRow>,
    sctp_associations: f64,
    nat_sessions: f64,
    /// Each VIP and whether the node's routing daemon is given it to announce.
    announced: Vec<(String, bool)>,
}

impl Frame {
    fn between(before: &Scrape, after: &Scrape) -> Frame {
        let seconds = after.at.duration_since(before.at).as_secs_f64();
        let counter_rate = |name: &str, matching: &[(&str, &str)]| {
            rate(
                before.sum(name, matching),
                after.sum(name, matching),
                seconds,
            )
        };
        let workers = after
            .series("xlb_rx_packets_total")
            .iter()
            .map(|s| {
                let worker = s.label("worker");
                let this = [("worker", worker)];
                WorkerRow {
                    worker: worker.to_string(),
                    interface: s.label("interface").to_string(),
                    queue: s.label("queue").to_string(),
                    rx_pps: counter_rate("xlb_rx_packets_total", &this),
                    tx_pps: counter_rate("xlb_tx_packets_total", &this),
                    drops_per_second: counter_rate("xlb_drops_total", &this),
                    flows: after.sum("xlb_flows", &this),
                }
            })
            .collect();
        let mut services: Vec<ServiceRow> = Vec::new();
        for s in after.series("xlb_backend_packets_total") {
            let (service, backend) = (s.label("service"), s.label("backend"));
            let this = [("service", service), ("backend", backend)];
            let row = BackendRow {
                name: backend.to_string(),
                up: after.sum("xlb_backend_up", &this) > 0.0,
                draining: after.sum("xlb_backend_draining", &this) > 0.0,
                pps: counter_rate("xlb_backend_packets_total", &this),
                mbps: counter_rate("xlb_backend_bytes_total", &this) * 8.0 / 1e6,
            };
            let position = match services.iter().position(|row| row.name == service) {
                Some(position) => position,
                None => {
                    services.push(ServiceRow {
                        name: service.to_string(),
                        pps: 0.0,
                        mbps: 0.0,
                        backends: Vec::new(),
                    });
                    services.len() - 1
                }
            };
            let service_row = &mut services[position];
            service_row.pps += row.pps;
            service_row.mbps += row.mbps;
            service_row.backends.push(row);
        }
        Frame {
            generation: after.value("xlb_config_generation").unwrap_or(0.0),
            reloads_ok: after.sum("xlb_reloads_total", &[("result", "ok")]),
            reloads_failed: after.sum("xlb_reloads_total", &[("result", "failed")]),
            workers,
            services,
            sctp_associations: after.value("xlb_sctp_associations").unwrap_or(0.0),
            nat_sessions: after.value("xlb_nat_sessions").unwrap_or(0.0),
            announced: after
                .series("xlb_vip_announced")
                .iter()
                .map(|s| (s.label("vip").to_string(), s.value > 0.0))
                .collect(),
        }
    }

    fn render(&self, url: &str) -> String {
        let mut text = String::new();
        self.write_to(&mut text, url)
            .expect("writing to a String never fails");
        text
    }

    fn write_to(&self, text: &mut String, url: &str) -> std::fmt::Result {
        writeln!(
            text,
            "xlb stats  {url}  generation {}  reloads: {} ok, {} failed",
            self.generation, self.reloads_ok, self.reloads_failed
        )?;
        writeln!(
            text,
            "{:<7} {:<12} {:<6} {:>12} {:>12} {:>10} {:>10}",
            "WORKER", "INTERFACE", "QUEUE", "RX pps", "TX pps", "DROPS/s", "FLOWS"
        )?;
        for w in &self.workers {
            writeln!(
                text,
                "{:<7} {:<12} {:<6} {:>12.0} {:>12.0} {:>10.0} {:>10}",
                w.worker, w.interface, w.queue, w.rx_pps, w.tx_pps, w.drops_per_second, w.flows
            )?;
        }
        writeln!(
            text,
            "{:<28} {:<9} {:>12} {:>10}",
            "SERVICE / BACKEND", "STATE", "pps", "Mbit/s"
        )?;
        for s in &self.services {
            writeln!(
                text,
                "{:<28} {:<9} {:>12.0} {:>10.3}",
                s.name, "", s.pps, s.mbps
            )?;
            for b in &s.backends {
                let state = match (b.up, b.draining) {
                    (false, _) => "down",
                    (true, true) => "draining",
                    (true, false) => "up",
                };
                writeln!(
                    text,
                    "  {:<26} {:<9} {:>12.0} {:>10.3}",
                    b.name, state, b.pps, b.mbps
                )?;
            }
        }
        writeln!(
            text,
            "SCTP associations {}  NAT sessions {}",
            self.sctp_associations, self.nat_sessions
        )?;
        if !self.announced.is_empty() {
            let list = |on: bool| {
                let vips: Vec<&str> = self
                    .announced
                    .iter()
                    .filter(|(_, a)| *a == on)
                    .map(|(vip, _)| vip.as_str())
                    .collect();
                if vips.is_empty() {
                    "-".to_string()
                } else {
                    vips.join(" ")
                }
            };
            writeln!(
                text,
                "VIPs announced: {}  withdrawn: {}",
                list(true),
                list(false)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(at: Instant, text: &str) -> Scrape {
        Scrape::new(at, parse_exposition(text).unwrap())
    }

    #[test]
    fn parses_labels_with_escapes_and_openmetrics_lines() {
        let samples = parse_exposition(
            "# TYPE xlb_backend_packets counter\n\
             xlb_backend_packets_total{service=\"we\\\"b\",backend=\"a\\\\b\\nc\"} 12\n\
             xlb_config_generation 3\n\
             # EOF\n",
        )
        .unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].label("service"), "we\"b");
        assert_eq!(samples[0].label("backend"), "a\\b\nc");
        assert_eq!(samples[0].value, 12.0);
        assert_eq!(samples[1].name, "xlb_config_generation");
        assert!(samples[1].labels.is_empty());
    }

    #[test]
    fn rejects_broken_lines_with_their_number() {
        let broken = "xlb_a 1\nxlb_b{x=\"1} 2\n";
        assert_eq!(parse_exposition(broken).unwrap_err().0, 2);
        assert_eq!(parse_exposition("xlb_a one\n").unwrap_err().0, 1);
        assert_eq!(parse_exposition("{a=\"b\"} 1\n").unwrap_err().0, 1);
    }

    #[test]
    fn rates_come_from_two_scrapes_and_survive_resets() {
        let start = Instant::now();
        let before = scrape(
            start,
            "xlb_rx_packets_total{worker=\"0\",interface=\"eth1\",queue=\"0\"} 1000\n\
             xlb_tx_packets_total{worker=\"0\",interface=\"eth1\",queue=\"0\"} 500\n\
             xlb_drops_total{worker=\"0\",reason=\"malformed\"} 10\n\
             xlb_drops_total{worker=\"0\",reason=\"no_service\"} 0\n\
             xlb_backend_packets_total{service=\"web\",backend=\"a\"} 100\n\
             xlb_backend_bytes_total{service=\"web\",backend=\"a\"} 1000000\n\
             xlb_backend_packets_total{service=\"web\",backend=\"b\"} 900\n\
             xlb_backend_up{service=\"web\",backend=\"a\"} 1\n",
        );
        let after = scrape(
            start + Duration::from_secs(2),
            "xlb_rx_packets_total{worker=\"0\",interface=\"eth1\",queue=\"0\"} 3000\n\
             xlb_tx_packets_total{worker=\"0\",interface=\"eth1\",queue=\"0\"} 1500\n\
             xlb_drops_total{worker=\"0\",reason=\"malformed\"} 14\n\
             xlb_drops_total{worker=\"0\",reason=\"no_service\"} 6\n\
             xlb_backend_packets_total{service=\"web\",backend=\"a\"} 300\n\
             xlb_backend_bytes_total{service=\"web\",backend=\"a\"} 3000000\n\
             xlb_backend_packets_total{service=\"web\",backend=\"b\"} 40\n\
             xlb_backend_up{service=\"web\",backend=\"a\"} 1\n\
             xlb_backend_up{service=\"web\",backend=\"b\"} 0\n",
        );
        let frame = Frame::between(&before, &after);
        let worker = &frame.workers[0];
        assert_eq!(
            (worker.rx_pps, worker.tx_pps, worker.drops_per_second),
            (1000.0, 500.0, 5.0)
        );
        let web = &frame.services[0];
        let (a, b) = (&web.backends[0], &web.backends[1]);
        assert_eq!((a.pps, a.mbps, a.up), (100.0, 8.0, true));
        // b's counter went down: a reset, so its whole value is the increase.
        assert_eq!((b.pps, b.up), (20.0, false));
        assert_eq!((web.pps, web.mbps), (120.0, 8.0));
        let text = frame.render("http://x/metrics");
        assert!(text.contains("  b "), "{text}");
        assert!(text.contains("down"), "{text}");
    }

    #[test]
    fn announced_vips_are_listed_when_announcement_is_on() {
        let start = Instant::now();
        let text = |body: &str| {
            let (before, after) = (scrape(start, body), scrape(start, body));
            Frame::between(&before, &after).render("http://x/metrics")
        };
        let on = text(
            "xlb_vip_announced{vip=\"198.18.100.10\"} 1\n\
             xlb_vip_announced{vip=\"2001:db8:100::10\"} 0\n",
        );
        assert!(
            on.contains("VIPs announced: 198.18.100.10  withdrawn: 2001:db8:100::10"),
            "{on}"
        );
        assert!(!text("xlb_config_generation 1\n").contains("VIPs announced"));
    }

    #[test]
    fn urls_default_their_path_and_port() {
        let e = Endpoint::parse("http://127.0.0.1:9781").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("127.0.0.1:9781", "/metrics")
        );
        let e = Endpoint::parse("[::1]:9000/m").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("[::1]:9000", "/m")
        );
        let e = Endpoint::parse("http://[::1]/metrics").unwrap();
        assert_eq!(e.authority, "[::1]:80");
        assert!(Endpoint::parse("https://127.0.0.1:9781/metrics").is_err());
        assert!(Endpoint::parse("http:///metrics").is_err());
    }

    #[test]
    fn dechunks_chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nxlb_\r\n3;ext=1\r\na 1\r\n0\r\n\r\n").as_deref(),
            Some(&b"xlb_a 1"[..])
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"9\r\nshort\r\n"), None);
    }
}
