//! End to end: health checks taking a backend out and back, and the metrics endpoint
//! counting exactly the traffic sent. Needs root; fails (never skips) without it.

mod support;

use std::time::{Duration, Instant};

use support::lab::{client_sources, Lab};
use support::metric;

const TABLE: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }]
  flow_table: { capacity: 65536 }
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    health_check: { kind: tcp, port: 80, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
  - name: dns
    vips: [198.18.100.10]
    protocol: udp
    ports: [53]
    forwarding: dsr
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
      - { name: b3, address: 198.18.1.13 }
"#;

#[test]
fn a_failed_backend_leaves_within_interval_times_fall_and_returns() {
    let mut lab = Lab::up("hlth", 1);
    lab.start_xlb(TABLE);
    let before = lab.client("tcp", "198.18.100.10", 80, 150, &client_sources(false));
    assert_eq!(before.failed, 0);
    assert!(before.answers.contains_key("b2"));

    lab.stop_backend(2);
    let stopped = Instant::now();
    // interval 200 ms x fall 2, plus one second.
    let deadline = stopped + Duration::from_millis(200 * 2 + 1000);
    loop {
        let up = metric(
            &lab.scrape(),
            "xlb_backend_up",
            &[("service", "web"), ("backend", "b2")],
        );
        if up == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b2 still up {:?} after it stopped",
            stopped.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = lab.client("tcp", "198.18.100.10", 80, 150, &client_sources(false));
    assert_eq!(
        during.failed, 0,
        "traffic continues on the others: {during:?}"
    );
    assert_eq!(during.answers.get("b2"), None, "{during:?}");

    lab.start_backend(2);
    let deadline = Instant::now() + Duration::from_secs(3);
    while metric(
        &lab.scrape(),
        "xlb_backend_up",
        &[("service", "web"), ("backend", "b2")],
    ) != 1.0
    {
        assert!(Instant::now() < deadline, "b2 did not return");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = lab.client("tcp", "198.18.100.10", 80, 150, &client_sources(false));
    assert_eq!(after.failed, 0);
    assert!(
        after.answers.contains_key("b2"),
        "b2 is back in rotation: {after:?}"
    );
    assert!(lab.stop_xlb().success());
}

#[test]
fn metrics_count_exactly_the_traffic_sent() {
    let mut lab = Lab::up("mtr", 2);
    let started = Instant::now();
    lab.start_xlb(TABLE);
    let sent = lab.client("udp", "198.18.100.10", 53, 300, &client_sources(false));
    assert_eq!(sent.failed, 0, "{sent:?}");
    // Workers publish every 50 ms.
    std::thread::sleep(Duration::from_millis(300));
    let body = lab.scrape();
    for backend in ["b1", "b2", "b3"] {
        let counted = metric(
            &body,
            "xlb_backend_packets_total",
            &[("service", "dns"), ("backend", backend)],
        );
        let answered = f64::from(*sent.answers.get(backend).unwrap_or(&0));
        assert_eq!(counted, answered, "{backend}: one datagram per answer");
    }
    let new_flows = metric(&body, "xlb_backend_new_flows_total", &[("service", "dns")]);
    assert!(
        (295.0..=300.0).contains(&new_flows),
        "each exchange is a new flow: {new_flows}"
    );
    let rx = metric(&body, "xlb_rx_packets_total", &[]);
    let tx = metric(&body, "xlb_tx_packets_total", &[]);
    let dropped = metric(&body, "xlb_drops_total", &[]);
    assert!(rx >= 300.0, "rx {rx}");
    assert_eq!(
        rx,
        tx + dropped,
        "every received frame is sent or counted as a drop"
    );
    // Busy time: some, and never more than the time each worker has been running.
    let elapsed = started.elapsed().as_secs_f64();
    let busy: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("xlb_worker_busy_seconds_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!busy.is_empty(), "no xlb_worker_busy_seconds_total series");
    assert!(busy.iter().sum::<f64>() > 0.0, "{busy:?}");
    assert!(busy.iter().all(|b| *b < elapsed), "{busy:?} in {elapsed} s");
    assert_eq!(
        metric(&body, "xlb_backend_up", &[("backend", "b1")]),
        2.0,
        "b1 up in both services"
    );
    assert_eq!(metric(&body, "xlb_config_generation", &[]), 1.0);

    // A reload that fails is counted; one that works bumps the generation.
    std::fs::write(
        lab.config_path(),
        TABLE.replace("protocol: udp", "protocol: quic"),
    )
    .unwrap();
    lab.signal_xlb("-HUP");
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(lab.config_path(), TABLE).unwrap();
    lab.signal_xlb("-HUP");
    std::thread::sleep(Duration::from_millis(600));
    let body = lab.scrape();
    assert_eq!(
        metric(&body, "xlb_reloads_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(metric(&body, "xlb_reloads_total", &[("result", "ok")]), 1.0);
    assert_eq!(metric(&body, "xlb_config_generation", &[]), 2.0);
    assert!(lab.stop_xlb().success());
}
