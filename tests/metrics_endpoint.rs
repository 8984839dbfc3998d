//! The metrics endpoint end to end over loopback TCP: a snapshot built from a small
//! table, worker counters with known values, SCTP and NAT tables with a few entries;
//! the scrape is checked line by line against the exposition grammar and for exact
//! values; `xlb stats` runs against it; the shipped alert rules pass
//! `promtool check rules` and name only metrics the endpoint serves.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use xlb::config;
use xlb::control::metrics::{self, MetricsSources, ReloadCounters, TableCapacities, CONTENT_TYPE};
use xlb::control::stats::run_stats;
use xlb::lb::nat::{NatKey, ReplyPath};
use xlb::lb::sctp::{SctpDecision, SctpPath};
use xlb::lb::snapshot::{BackendId, DownBackends, Snapshot, StaticResolver};
use xlb::lb::verdict::DropReason;
use xlb::pipeline::stage::SharedTables;
use xlb::runtime::worker::WorkerStats;
use xlb::wire::sctp::{ChunkRepr, PacketRepr};

/// `node-b` is taken down by health checks; the third `web` backend drains and has
/// a name that needs escaping in label values.
const TABLE: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth1 }, { name: eth2 }]
  maglev_table_size: 251
  nat: { addresses: [198.18.0.3], port_range: [20000, 20999] }
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - { name: node-a, address: 198.18.1.11 }
      - { name: node-b, address: 198.18.1.12 }
      - { name: 'odd "name\x', address: 198.18.1.13, state: drain }
  - name: ngap
    vips: [198.18.100.20]
    protocol: sctp
    ports: [38412]
    forwarding: dsr
    backends:
      - { name: amf-1, address: 198.18.1.21 }
"#;

const ODD_NAME: &str = "odd \"name\\x";
const FLOWS_PER_WORKER: u64 = 65_536;

struct Fixture {
    sources: MetricsSources,
    /// Backend ids by name.
    ids: HashMap<String, BackendId>,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn sctp_init(client_tag: u32) -> Vec<u8> {
    PacketRepr {
        src_port: 5000,
        dst_port: 38412,
        verification_tag: 0,
        chunks: &[ChunkRepr::Init {
            initiate_tag: client_tag,
            a_rwnd: 65536,
            outbound_streams: 2,
            inbound_streams: 2,
            initial_tsn: 1,
            addresses: &[],
        }],
    }
    .to_vec()
}

fn fixture() -> Fixture {
    let table = config::parse(TABLE, "metrics.yaml").expect("test table is valid");
    let resolver = StaticResolver {
        port_macs: vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
        egress: 0,
    };
    let mut down = DownBackends::new();
    down.insert(("web".into(), "node-b".into()));
    let snapshot = Snapshot::build(&table, 1, None, &resolver, &down).expect("snapshot builds");
    let ids: HashMap<String, BackendId> = snapshot
        .backends()
        .map(|b| (b.name.clone(), b.id))
        .collect();

    let shared = SharedTables::with_capacity(&table.dataplane, 2048);
    let amf = ids["amf-1"];
    for (n, client_tag) in [(1u8, 0x1111_0001u32), (2, 0x1111_0002)] {
        let path = SctpPath {
            service: 1,
            src: v4(198, 19, 0, n),
            dst: v4(198, 18, 100, 20),
            src_port: 5000,
            dst_port: 38412,
        };
        let decision = shared
            .sctp
            .decide(&path, &sctp_init(client_tag), 0, || Some(amf), |_| true);
        assert_eq!(
            decision,
            SctpDecision::Forward {
                backend: amf,
                new_association: true
            }
        );
    }
    for n in 0..3u16 {
        let key = NatKey {
            client: v4(198, 19, 1, n as u8 + 1),
            client_port: 40_000 + n,
            vip: v4(198, 18, 100, 10),
            vip_port: 80,
            proto: 6,
        };
        let reply_path = ReplyPath {
            port: 0,
            mac: [2, 0, 0, 0, 0, 0x10],
        };
        let hash = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        shared
            .nat
            .outbound(&key, v4(198, 18, 1, 11), 80, reply_path, hash, 0)
            .expect("a NAT session is created");
    }

    let worker0 = WorkerStats::default();
    let worker1 = WorkerStats::default();
    let set = |a: &std::sync::atomic::AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
    set(&worker0.rx_packets, 1000);
    set(&worker0.rx_bytes, 64_000);
    set(&worker0.tx_packets, 990);
    set(&worker0.tx_bytes, 63_360);
    set(&worker0.drops[DropReason::NoService as usize], 7);
    set(
        &worker0.drops[DropReason::SctpUnknownAssociation as usize],
        3,
    );
    set(&worker0.tx_ring_full, 2);
    set(&worker0.fill_ring_empty, 4);
    set(&worker0.wakeups, 11);
    set(&worker0.idle_sleeps, 13);
    set(&worker0.new_flows, 40);
    set(&worker0.reselected, 5);
    set(&worker0.evictions, 6);
    set(&worker0.flows, 35);
    set(&worker0.backend_packets[ids["node-a"] as usize], 100);
    set(&worker0.backend_bytes[ids["node-a"] as usize], 6_400);
    set(&worker1.rx_packets, 500);
    set(&worker1.drops[DropReason::Malformed as usize], 1);
    set(&worker1.flows, 12);
    set(&worker1.backend_packets[ids["node-a"] as usize], 50);
    set(&worker1.backend_bytes[ids["node-a"] as usize], 3_200);
    set(&worker1.backend_packets[ids[ODD_NAME] as usize], 9);

    let reloads = ReloadCounters::new(1);
    reloads.record_ok(2);
    reloads.record_failed();
    Fixture {
        sources: MetricsSources {
            workers: vec![
                (0, vec![("eth1".into(), 0)], Arc::new(worker0)),
                (
                    1,
                    vec![("eth1".into(), 1), ("eth2".into(), 1)],
                    Arc::new(worker1),
                ),
            ],
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            shared: Arc::new(shared),
            reloads: Arc::new(reloads),
            capacities: TableCapacities {
                flows_per_worker: FLOWS_PER_WORKER,
                sctp_associations: 1024,
                nat_sessions: 2048,
            },
            sync: None,
            announce: Arc::default(),
        },
        ids,
    }
}

/// Sends one raw HTTP request and returns (status line, headers, body).
fn http(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("the endpoint accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .expect("the answer has a header");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, headers, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains(&format!("Content-Type: {CONTENT_TYPE}")),
        "{headers}"
    );
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length is sent")
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    body
}

/// A series key: sample name and its labels, sorted.
type SeriesKey = (String, BTreeMap<String, String>);

fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `{k="v",...}` strictly (OpenMetrics escapes only); returns the labels
/// and the rest of the line.
fn parse_labels(text: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    assert_eq!(chars.next(), Some('{'));
    if chars.peek() == Some(&'}') {
        chars.next();
        return (labels, chars.collect());
    }
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(is_label_name(&name), "bad label name {name:?} in {line:?}");
        assert_eq!(chars.next(), Some('"'), "unquoted value in {line:?}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some('\n') | None => panic!("unterminated label value in {line:?}"),
                Some(c) => value.push(c),
            }
        }
        assert!(
            labels.insert(name.clone(), value).is_none(),
            "label {name} twice in {line:?}"
        );
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("expected , or }} but found {other:?} in {line:?}"),
        }
    }
    (labels, chars.collect())
}

/// Checks the body line by line against the OpenMetrics text grammar xlb uses
/// (HELP and TYPE before each family's samples, each family once, sample names that
/// belong to their family, unique series, numeric values, `# EOF` last) and returns
/// every series with its value.
fn parse_exposition(body: &str) -> HashMap<SeriesKey, f64> {
    let lines: Vec<&str> = body.split('\n').collect();
    assert_eq!(lines.last(), Some(&""), "the body ends with a newline");
    let lines = &lines[..lines.len() - 1];
    assert_eq!(lines.last(), Some(&"# EOF"), "the body ends with # EOF");
    let mut families: Vec<String> = Vec::new();
    let mut family: Option<(String, String)> = None;
    let mut help_for: Option<String> = None;
    let mut series = HashMap::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(is_metric_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(!families.contains(&name.to_string()), "{name} twice");
            help_for = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert_eq!(
                help_for.as_deref(),
                Some(name),
                "HELP precedes TYPE: {line}"
            );
            assert!(
                ["counter", "gauge"].contains(&kind),
                "unexpected type in {line}"
            );
            families.push(name.to_string());
            family = Some((name.to_string(), kind.to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let (family_name, kind) = family
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
        let name_end = line.find(['{', ' ']).expect("a sample has a value");
        let name = &line[..name_end];
        let expected = match kind.as_str() {
            "counter" => format!("{family_name}_total"),
            _ => family_name.clone(),
        };
        assert_eq!(name, expected, "sample outside its family: {line}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..], line)
        } else {
            (BTreeMap::new(), line[name_end..].to_string())
        };
        let value_text = rest.strip_prefix(' ').expect("one space before the value");
        let value: f64 = value_text
            .parse()
            .unwrap_or_else(|_| panic!("value {value_text:?} is not a number in {line}"));
        assert!(
            series.insert((name.to_string(), labels), value).is_none(),
            "duplicate series {line}"
        );
    }
    series
}

fn value(series: &HashMap<SeriesKey, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    *series
        .get(&key(name, labels))
        .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

const W0: [(&str, &str); 3] = [("worker", "0"), ("interface", "eth1"), ("queue", "0")];
const W1: [(&str, &str); 3] = [("worker", "1"), ("interface", "eth1,eth2"), ("queue", "1")];

#[test]
fn scrape_carries_exact_values_for_every_family() {
    let fixture = fixture();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), fixture.sources.clone())
        .expect("the endpoint starts");
    let body = scrape(server.local_addr());
    let series = parse_exposition(&body);

    assert_eq!(value(&series, "xlb_rx_packets_total", &W0), 1000.0);
    assert_eq!(value(&series, "xlb_rx_bytes_total", &W0), 64_000.0);
    assert_eq!(value(&series, "xlb_tx_packets_total", &W0), 990.0);
    assert_eq!(value(&series, "xlb_tx_bytes_total", &W0), 63_360.0);
    assert_eq!(value(&series, "xlb_rx_packets_total", &W1), 500.0);
    assert_eq!(value(&series, "xlb_tx_ring_full_total", &W0), 2.0);
    assert_eq!(value(&series, "xlb_fill_ring_empty_total", &W0), 4.0);
    assert_eq!(value(&series, "xlb_wakeups_total", &W0), 11.0);
    assert_eq!(value(&series, "xlb_idle_sleeps_total", &W0), 13.0);
    assert_eq!(value(&series, "xlb_new_flows_total", &W0), 40.0);
    assert_eq!(value(&series, "xlb_flows_reselected_total", &W0), 5.0);
    assert_eq!(value(&series, "xlb_flow_evictions_total", &W0), 6.0);
    assert_eq!(value(&series, "xlb_flows", &W0), 35.0);
    assert_eq!(value(&series, "xlb_flows", &W1), 12.0);
    assert_eq!(
        value(&series, "xlb_flow_table_capacity", &W1),
        FLOWS_PER_WORKER as f64
    );
    for (worker, interface, queue) in [("0", "eth1", "0"), ("1", "eth1", "1"), ("1", "eth2", "1")] {
        let labels = [
            ("worker", worker),
            ("interface", interface),
            ("queue", queue),
        ];
        assert_eq!(value(&series, "xlb_worker_queue_info", &labels), 1.0);
    }

    // Every reason, for every worker, zeros included.
    for reason in DropReason::ALL {
        for (labels, worker) in [(W0, 0), (W1, 1)] {
            let mut with_reason = labels.to_vec();
            with_reason.push(("reason", reason.name()));
            let expected = match (worker, reason) {
                (0, DropReason::NoService) => 7.0,
                (0, DropReason::SctpUnknownAssociation) => 3.0,
                (1, DropReason::Malformed) => 1.0,
                _ => 0.0,
            };
            assert_eq!(
                value(&series, "xlb_drops_total", &with_reason),
                expected,
                "{worker} {}",
                reason.name()
            );
        }
    }
    let drop_series = series
        .keys()
        .filter(|(n, _)| n == "xlb_drops_total")
        .count();
    assert_eq!(drop_series, 2 * DropReason::COUNT);

    // Per backend: summed over workers; health and drain from the snapshot.
    let node_a = [("service", "web"), ("backend", "node-a")];
    let node_b = [("service", "web"), ("backend", "node-b")];
    let odd = [("service", "web"), ("backend", ODD_NAME)];
    let amf = [("service", "ngap"), ("backend", "amf-1")];
    assert_eq!(value(&series, "xlb_backend_packets_total", &node_a), 150.0);
    assert_eq!(value(&series, "xlb_backend_bytes_total", &node_a), 9_600.0);
    assert_eq!(value(&series, "xlb_backend_packets_total", &node_b), 0.0);
    assert_eq!(value(&series, "xlb_backend_packets_total", &odd), 9.0);
    assert_eq!(value(&series, "xlb_backend_packets_total", &amf), 0.0);
    assert_eq!(value(&series, "xlb_backend_up", &node_a), 1.0);
    assert_eq!(value(&series, "xlb_backend_up", &node_b), 0.0);
    assert_eq!(value(&series, "xlb_backend_up", &odd), 1.0);
    assert_eq!(value(&series, "xlb_backend_draining", &odd), 1.0);
    assert_eq!(value(&series, "xlb_backend_draining", &node_a), 0.0);
    assert_eq!(
        series.keys().filter(|(n, _)| n == "xlb_backend_up").count(),
        fixture.ids.len()
    );

    assert_eq!(value(&series, "xlb_sctp_associations", &[]), 2.0);
    assert_eq!(
        value(&series, "xlb_sctp_associations_created_total", &[]),
        2.0
    );
    assert_eq!(
        value(&series, "xlb_sctp_associations_freed_total", &[]),
        0.0
    );
    assert_eq!(value(&series, "xlb_sctp_table_capacity", &[]), 1024.0);
    assert_eq!(value(&series, "xlb_nat_sessions", &[]), 3.0);
    assert_eq!(value(&series, "xlb_nat_sessions_created_total", &[]), 3.0);
    assert_eq!(value(&series, "xlb_nat_ports_exhausted_total", &[]), 0.0);
    assert_eq!(
        value(&series, "xlb_nat_sessions_expired_unanswered_total", &[]),
        0.0
    );
    assert_eq!(value(&series, "xlb_nat_table_capacity", &[]), 2048.0);
    assert_eq!(
        value(&series, "xlb_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        value(&series, "xlb_reloads_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(value(&series, "xlb_config_generation", &[]), 2.0);

    // The endpoint's text is `render`'s.
    assert_eq!(body, metrics::render(&fixture.sources));
}

#[test]
fn other_paths_and_methods_are_refused_and_drop_stops_the_listener() {
    let fixture = fixture();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), fixture.sources)
        .expect("the endpoint starts");
    let addr = server.local_addr();
    let (status, _, _) = http(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = http(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    drop(server);
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens on {addr} after the server is dropped"
    );
}

#[test]
fn a_silent_client_delays_no_other_scraper() {
    use std::io::Read;
    let fixture = fixture();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), fixture.sources)
        .expect("bind an ephemeral port");
    // Clients that connect and never send a request, up to one below the cap.
    let silent: Vec<TcpStream> = (1..metrics::MAX_CONCURRENT_SCRAPES)
        .map(|_| TcpStream::connect(server.local_addr()).expect("connect"))
        .collect();
    // Another scraper is answered while they still hang: with one scrape at a time it
    // would wait for each silent one to time out and be closed first.
    let body = scrape(server.local_addr());
    assert!(body.contains("xlb_config_generation"), "{body}");
    for mut stream in silent {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let still_open = matches!(
            stream.read(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        assert!(still_open, "a silent client was answered or closed first");
    }
}

#[test]
fn binding_a_busy_port_names_the_address() {
    let fixture = fixture();
    let first = metrics::serve("127.0.0.1:0".parse().unwrap(), fixture.sources.clone())
        .expect("the endpoint starts");
    let error = metrics::serve(first.local_addr(), fixture.sources)
        .expect_err("the port is taken")
        .to_string();
    assert!(
        error.contains(&first.local_addr().to_string()) && error.contains("metrics_listen"),
        "{error}"
    );
}

/// The number in `column` (0-based, whitespace-split) of the frame line that starts
/// with `row` (after indentation), in the last frame of `view`.
fn column_in_last_frame(view: &str, row: &str, column: usize) -> f64 {
    let last = view.rsplit("xlb stats  ").next().expect("a frame");
    let line = last
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .unwrap_or_else(|| panic!("no row {row:?} in {last}"));
    line.split_whitespace()
        .nth(column)
        .unwrap_or_else(|| panic!("no column {column} in {line:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("column {column} of {line:?} is not a number"))
}

#[test]
fn stats_view_shows_services_backends_and_rates() {
    let fixture = fixture();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), fixture.sources.clone())
        .expect("the endpoint starts");
    let url = format!("http://{}/metrics", server.local_addr());
    // Traffic to node-a and on worker 0 while the view runs; nothing else moves.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = std::thread::spawn({
        let stop = stop.clone();
        let worker0 = fixture.sources.workers[0].2.clone();
        let node_a = fixture.ids["node-a"] as usize;
        move || {
            while !stop.load(Ordering::Relaxed) {
                worker0.rx_packets.fetch_add(10, Ordering::Relaxed);
                worker0.backend_packets[node_a].fetch_add(10, Ordering::Relaxed);
                worker0.backend_bytes[node_a].fetch_add(15_000, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let mut view = Vec::new();
    let result = run_stats(&url, Duration::from_millis(300), Some(2), &mut view);
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    result.expect("xlb stats runs");
    let view = String::from_utf8(view).unwrap();

    assert_eq!(
        view.matches("xlb stats  ").count(),
        2,
        "two frames:\n{view}"
    );
    for name in ["web", "ngap", "node-a", "node-b", "amf-1", ODD_NAME] {
        assert!(view.contains(name), "{name} missing from:\n{view}");
    }
    // Backend rows: NAME STATE pps Mbit/s.
    assert!(column_in_last_frame(&view, "node-a", 2) > 0.0, "{view}");
    assert!(column_in_last_frame(&view, "node-a", 3) > 0.0, "{view}");
    assert_eq!(column_in_last_frame(&view, "node-b", 2), 0.0, "{view}");
    assert!(
        view.contains("node-b")
            && view
                .lines()
                .any(|l| l.contains("node-b") && l.contains("down"))
    );
    assert!(view
        .lines()
        .any(|l| l.contains(ODD_NAME) && l.contains("draining")));
    // Worker rows: WORKER INTERFACE QUEUE RX TX DROPS FLOWS.
    assert!(column_in_last_frame(&view, "0 ", 3) > 0.0, "{view}");
    assert_eq!(column_in_last_frame(&view, "1 ", 3), 0.0, "{view}");
    assert_eq!(column_in_last_frame(&view, "1 ", 5), 0.0, "{view}");
}

#[test]
fn stats_reports_an_unreachable_endpoint() {
    let fixture = fixture();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), fixture.sources)
        .expect("the endpoint starts");
    let addr = server.local_addr();
    drop(server);
    let error = run_stats(
        &format!("http://{addr}/metrics"),
        Duration::from_millis(10),
        Some(1),
        &mut Vec::new(),
    )
    .expect_err("nothing listens")
    .to_string();
    assert!(error.contains(&addr.to_string()), "{error}");
}

fn monitoring(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/monitoring")
        .join(file)
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = monitoring("xlb-alerts.yaml");
    let output = match Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed; run scripts/setup.sh (it installs Debian's \
             `prometheus` package, which ships promtool)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    assert!(
        output.status.success(),
        "promtool check rules {} failed:\n{}{}",
        rules.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `xlb_...` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("xlb_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboard_and_alerts_name_only_served_metrics() {
    let fixture = fixture();
    let series = parse_exposition(&metrics::render(&fixture.sources));
    let served: Vec<&str> = series.keys().map(|(name, _)| name.as_str()).collect();
    let dashboard = std::fs::read_to_string(monitoring("xlb-dashboard.json")).unwrap();
    let alerts = std::fs::read_to_string(monitoring("xlb-alerts.yaml")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("dashboard has panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Worker",
        "Drops",
        "Service",
        "Backend packets",
        "Flow-table",
        "SCTP",
        "Backend up",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no {wanted} panel in {titles:?}"
        );
    }
    for (file, text) in [
        ("xlb-dashboard.json", &dashboard),
        ("xlb-alerts.yaml", &alerts),
    ] {
        let names = metric_names(text);
        assert!(!names.is_empty(), "{file} names no metric");
        for name in names {
            assert!(
                served.contains(&name.as_str()),
                "{file} uses {name}, which /metrics does not serve"
            );
        }
    }
}
