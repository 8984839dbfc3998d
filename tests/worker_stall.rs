//! End to end: a worker that stops making progress is noticed and reported. `xlb run`
//! serves two queues with two workers under a fake systemd (`$NOTIFY_SOCKET` bound here,
//! a 2 s watchdog); the test freezes exactly one worker thread with ptrace (SEIZE, then
//! INTERRUPT: that thread stops, the rest of the process runs on), and checks the error
//! log naming the worker, its core and its queues, the `xlb_worker_stalled` gauge, and
//! that the watchdog pings stop; then it lets the thread go and checks the recovery.
//! Needs root (namespaces, XDP, ptrace); fails without it, never skips.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::lab::{client_sources, Lab};
use support::metric;

const TABLE: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth0, queues: all }]
  workers: [0, 1]
  flow_table: { capacity: 65536 }
services:
  - name: web
    vips: [198.18.100.10]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - { name: b1, address: 198.18.1.11 }
      - { name: b2, address: 198.18.1.12 }
"#;

/// The watchdog timeout handed to xlb: it pings every half of it.
const WATCHDOG_USEC: &str = "2000000";

/// What xlb sent to the fake service manager, with when it arrived.
struct Manager {
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Manager {
    fn listen(path: &Path) -> Manager {
        let socket = UnixDatagram::bind(path).expect("bind the notification socket");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        Manager { received }
    }

    /// Watchdog pings received after `since`.
    fn pings_since(&self, since: Instant) -> usize {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .filter(|(at, text)| *at > since && text.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    }

    fn said(&self, line: &str) -> bool {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .any(|(_, text)| text.lines().any(|l| l == line))
    }
}

/// `xlb run`, killed if the test fails before stopping it.
struct Xlb(Option<Child>);

impl Drop for Xlb {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The thread of process `pid` whose name is `name`.
fn thread_named(pid: u32, name: &str) -> i32 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("xlb's threads");
    tasks
        .filter_map(Result::ok)
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
        })
        .and_then(|task| task.file_name().to_str()?.parse().ok())
        .unwrap_or_else(|| panic!("xlb has no thread named {name}"))
}

/// One thread held in a ptrace stop; released on drop.
struct Frozen(i32);

impl Frozen {
    /// Stops thread `tid` alone: PTRACE_SEIZE attaches without stopping anything, and
    /// PTRACE_INTERRUPT stops that thread only (no group stop, unlike SIGSTOP).
    fn thread(tid: i32) -> Frozen {
        // SAFETY: ptrace with integer arguments and null address/data, as PTRACE_SEIZE
        // and PTRACE_INTERRUPT take; no memory is passed.
        let seized = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                tid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        assert_eq!(
            seized,
            0,
            "PTRACE_SEIZE {tid}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: as above.
        let interrupted = unsafe {
            libc::ptrace(
                libc::PTRACE_INTERRUPT,
                tid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        assert_eq!(
            interrupted,
            0,
            "PTRACE_INTERRUPT {tid}: {}",
            std::io::Error::last_os_error()
        );
        let mut status = 0;
        // SAFETY: `status` is a valid, writable c_int for the call's duration.
        let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        assert_eq!(
            waited,
            tid,
            "waitpid {tid}: {}",
            std::io::Error::last_os_error()
        );
        assert!(
            libc::WIFSTOPPED(status),
            "thread {tid} did not stop: {status:#x}"
        );
        Frozen(tid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: the thread is in a ptrace stop of ours; detaching takes no memory.
        unsafe {
            libc::ptrace(
                libc::PTRACE_DETACH,
                self.0,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            );
        }
    }
}

/// Waits until `done` holds, checking every 100 ms, or fails with `what`.
fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_frozen_worker_is_reported_stops_the_watchdog_and_recovers() {
    let lab = Lab::up("stall", 2);
    let config = lab.config_path();
    std::fs::write(&config, TABLE).expect("write config");
    let notify = lab.work.join("notify.sock");
    let manager = Manager::listen(&notify);
    let log_path = lab.work.join("xlb.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let child = lab
        .ns_command("lb", env!("CARGO_BIN_EXE_xlb"))
        .args(["run", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .expect("start xlb");
    // `ip netns exec` execs xlb in place: the child's pid is xlb's.
    let pid = child.id();
    let mut xlb = Xlb(Some(child));
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    eventually(Duration::from_secs(20), "xlb ready", || {
        manager.said("READY=1")
    });

    // Which core and queue worker 0 has: the plan in the log, the queue metric.
    let plan = log();
    let cpu = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("worker 0: cpu "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no plan for worker 0:\n{plan}"))
        .to_string();
    let body = lab.scrape();
    let queue = body
        .lines()
        .find(|l| l.starts_with("xlb_worker_queue_info{") && l.contains("worker=\"0\""))
        .and_then(|l| l.split("queue=\"").nth(1)?.split('"').next())
        .unwrap_or_else(|| panic!("no queue for worker 0:\n{body}"))
        .to_string();
    assert_eq!(metric(&body, "xlb_worker_stalled", &[]), 0.0, "{body}");
    let started = Instant::now();
    eventually(Duration::from_secs(5), "watchdog pings", || {
        manager.pings_since(started) >= 2
    });

    let frozen = Frozen::thread(thread_named(pid, "xlb-worker-0"));
    let stalled =
        |body: &str, worker: &str| metric(body, "xlb_worker_stalled", &[("worker", worker)]);
    eventually(Duration::from_secs(10), "worker 0 reported stalled", || {
        stalled(&lab.scrape(), "0") == 1.0
    });
    let body = lab.scrape();
    assert_eq!(stalled(&body, "1"), 0.0, "only worker 0 stopped: {body}");
    let quiet = metric(
        &body,
        "xlb_worker_seconds_since_progress",
        &[("worker", "0")],
    );
    assert!(quiet >= 2.0, "{quiet} s since worker 0's progress");
    let text = log();
    let line = text
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("has made no progress"))
        .unwrap_or_else(|| panic!("no stall logged:\n{text}"));
    assert!(
        line.contains(&format!("worker 0 on CPU {cpu} "))
            && line.contains(&format!("(eth0:{queue})")),
        "the log names worker 0, CPU {cpu} and eth0:{queue}: {line}"
    );
    // No ping while the worker is stalled (the last one may have left just before).
    let reported = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        manager.pings_since(reported),
        0,
        "the watchdog was pinged while worker 0 was stalled"
    );

    drop(frozen);
    eventually(Duration::from_secs(10), "worker 0 recovered", || {
        stalled(&lab.scrape(), "0") == 0.0
    });
    let recovered = Instant::now();
    assert!(
        log().contains("worker 0 on CPU") && log().contains("makes progress again"),
        "no recovery logged:\n{}",
        log()
    );
    eventually(Duration::from_secs(5), "watchdog pings again", || {
        manager.pings_since(recovered) >= 1
    });
    let summary = lab.client("tcp", "198.18.100.10", 80, 100, &client_sources(false));
    assert_eq!(summary.failed, 0, "traffic after the recovery: {summary:?}");

    let mut child = xlb.0.take().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually(Duration::from_secs(10), "xlb exits on SIGTERM", || {
        child.try_wait().expect("wait").is_some()
    });
    assert!(child.wait().expect("reaped").success(), "{}", log());
}
