//! The namespace lab for end-to-end tests: `scripts/netns.sh` builds a client, the xlb
//! node and three backends on one bridge; this drives real kernel stacks, the real
//! `xlb` binary, scapy-made SCTP and tcpdump captures through it.
//!
//! Needs root. Without it every test fails with a message saying so (never skipped).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Debian's python, which has scapy; the one on PATH may not.
pub const PYTHON: &str = "/usr/bin/python3";
/// xlb's MAC in the lab (scripts/netns.sh).
pub const XLB_MAC: &str = "02:00:00:00:00:02";

/// Fails the test unless we are root, saying why.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    assert!(
        root,
        "the netns end-to-end tests need root (network namespaces, XDP, AF_XDP); run them as root, as CI does"
    );
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Answers a client run: per-backend answer counts.
#[derive(Debug, serde::Deserialize)]
pub struct ClientSummary {
    /// Answers per backend name.
    pub answers: std::collections::BTreeMap<String, u32>,
    /// Exchanges that failed.
    pub failed: u32,
    /// The first few errors.
    pub errors: Vec<String>,
}

impl ClientSummary {
    /// Total answered exchanges.
    pub fn answered(&self) -> u32 {
        self.answers.values().sum()
    }

    /// Share of answers from one backend.
    pub fn share(&self, backend: &str) -> f64 {
        f64::from(*self.answers.get(backend).unwrap_or(&0)) / f64::from(self.answered().max(1))
    }
}

/// A running lab; torn down on drop.
pub struct Lab {
    /// Namespace prefix.
    pub prefix: String,
    /// Scratch directory for configs, logs and captures.
    pub work: PathBuf,
    xlb: Option<Child>,
    children: Vec<Child>,
    captures: Vec<(String, Child, PathBuf)>,
}

impl Lab {
    /// Builds the lab with `queues` queues on xlb's interface and starts the backends'
    /// TCP (80, 8080) and UDP (53) servers.
    pub fn up(name: &str, queues: u32) -> Lab {
        Lab::build(name, queues, false)
    }

    /// The split lab: backends on a second segment behind xlb's `eth1` (scripts/netns.sh).
    pub fn up_split(name: &str, queues: u32) -> Lab {
        Lab::build(name, queues, true)
    }

    fn build(name: &str, queues: u32, split: bool) -> Lab {
        require_root();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "x{}{}{}",
            &name[..name.len().min(4)],
            std::process::id() % 1000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let work = std::env::temp_dir().join(format!("xlb-e2e-{prefix}"));
        std::fs::create_dir_all(&work).expect("scratch dir");
        let status = Command::new(repo().join("scripts/netns.sh"))
            .args([
                "up",
                &prefix,
                &queues.to_string(),
                if split { "split" } else { "" },
            ])
            .status()
            .expect("run scripts/netns.sh");
        assert!(status.success(), "scripts/netns.sh up {prefix} failed");
        let mut lab = Lab {
            prefix,
            work,
            xlb: None,
            children: Vec::new(),
            captures: Vec::new(),
        };
        for n in 1..=3 {
            let child = lab
                .ns_command(&format!("b{n}"), PYTHON)
                .arg(repo().join("tests/support/backend.py"))
                .args([format!("b{n}").as_str(), "80", "8080", "--", "53", "5353"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start backend");
            lab.children.push(child);
        }
        for child in &mut lab.children {
            let mut line = String::new();
            let out = child.stdout.take().expect("piped");
            BufReader::new(out)
                .read_line(&mut line)
                .expect("backend says ready");
            assert_eq!(line.trim(), "ready", "backend did not start");
        }
        lab
    }

    /// Stops backend `n`'s servers (1..=3), as a crashed backend would.
    pub fn stop_backend(&mut self, n: usize) {
        let child = &mut self.children[n - 1];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts backend `n`'s servers again.
    pub fn start_backend(&mut self, n: usize) {
        self.children[n - 1] = self.spawn_backend(n);
    }

    fn spawn_backend(&self, n: usize) -> Child {
        let mut child = self
            .ns_command(&format!("b{n}"), PYTHON)
            .arg(repo().join("tests/support/backend.py"))
            .args([format!("b{n}").as_str(), "80", "8080", "--", "53", "5353"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start backend");
        let mut line = String::new();
        let out = child.stdout.take().expect("piped");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("backend says ready");
        assert_eq!(line.trim(), "ready", "backend did not start");
        child
    }

    /// Scrapes xlb's metrics endpoint from inside the xlb namespace.
    pub fn scrape(&self) -> String {
        self.ns_output("lb", "curl", &["-sf", "http://127.0.0.1:9781/metrics"])
    }

    /// A command run inside namespace `short` (`cl`, `lb`, `b1`, ...).
    pub fn ns_command(&self, short: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        super::ns_command(&format!("{}{short}", self.prefix), program)
    }

    /// Runs a command in a namespace and returns its stdout; panics on failure.
    pub fn ns_output(&self, short: &str, program: &str, args: &[&str]) -> String {
        super::ns_output(&format!("{}{short}", self.prefix), program, args)
    }

    /// Writes `config` and starts `xlb run` on the lab's xlb node; waits until the
    /// process logs that it runs.
    pub fn start_xlb(&mut self, config: &str) {
        let path = self.work.join("xlb.yaml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(self.work.join("xlb.log")).expect("log file");
        let child = self
            .ns_command("lb", env!("CARGO_BIN_EXE_xlb"))
            .args(["run", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start xlb");
        self.xlb = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains("xlb running") {
            if let Some(status) = self.xlb.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("xlb exited with {status} during start-up:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "xlb did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything xlb logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.work.join("xlb.log")).unwrap_or_default()
    }

    /// The xlb config path (for rewriting before a SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.work.join("xlb.yaml")
    }

    /// Sends a signal to xlb.
    pub fn signal_xlb(&self, signal: &str) {
        let pid = self.xlb.as_ref().expect("xlb started").id();
        // `ip netns exec` execs xlb in place, so the child's pid is xlb's.
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERMs xlb and waits for it to exit.
    pub fn stop_xlb(&mut self) -> ExitStatus {
        self.signal_xlb("-TERM");
        let mut child = self.xlb.take().expect("xlb started");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "xlb did not exit within 5 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs xlb (no clean-up code runs).
    pub fn kill_xlb(&mut self) {
        let mut child = self.xlb.take().expect("xlb started");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// Runs tests/support/client.py in the client namespace.
    pub fn client(
        &self,
        proto: &str,
        vip: &str,
        port: u16,
        count: u32,
        sources: &[String],
    ) -> ClientSummary {
        let out = self.ns_output(
            "cl",
            PYTHON,
            &[
                repo()
                    .join("tests/support/client.py")
                    .to_str()
                    .expect("utf-8 path"),
                proto,
                vip,
                &port.to_string(),
                &count.to_string(),
                &sources.join(","),
            ],
        );
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("client output {out:?}: {e}"))
    }

    /// Sends scapy-made SCTP steps (see tests/support/sctp_peer.py) from the client.
    pub fn sctp(&self, steps: &[&str]) {
        let script = repo().join("tests/support/sctp_peer.py");
        let mut args = vec![script.to_str().expect("utf-8 path"), "eth0", XLB_MAC];
        args.extend_from_slice(steps);
        self.ns_output("cl", PYTHON, &args);
    }

    /// Starts capturing `filter` on backend `n`'s eth0.
    pub fn capture(&mut self, backend: &str, filter: &str) {
        self.start_capture(backend, &[], filter);
    }

    /// Starts capturing the first `snaplen` bytes of the frames matching `filter` that
    /// arrive on namespace `short`'s eth0 (not those it sends): for captures of long,
    /// fast transfers, where only the headers matter. `finish_captures` returns them
    /// under `short`.
    pub fn capture_inbound(&mut self, short: &str, filter: &str, snaplen: u32) {
        self.start_capture(short, &["-Q", "in", "-s", &snaplen.to_string()], filter);
    }

    fn start_capture(&mut self, backend: &str, options: &[&str], filter: &str) {
        let path = self.work.join(format!("{backend}.pcap"));
        let child = self
            .ns_command(backend, "tcpdump")
            .args(["-i", "eth0", "-n", "-U"])
            .args(options)
            .arg("-w")
            .arg(&path)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        self.captures.push((backend.to_string(), child, path));
        // tcpdump prints "listening on" once the capture runs.
        let child = &mut self.captures.last_mut().expect("pushed").1;
        let mut line = String::new();
        BufReader::new(child.stderr.take().expect("piped"))
            .read_line(&mut line)
            .expect("tcpdump starts");
    }

    /// Stops every capture and returns the frames each backend saw.
    pub fn finish_captures(&mut self) -> Vec<(String, Vec<Vec<u8>>)> {
        std::thread::sleep(Duration::from_millis(300));
        let mut out = Vec::new();
        for (backend, mut child, path) in self.captures.drain(..) {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
            out.push((backend, read_pcap(&path)));
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.xlb.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for mut child in self
            .children
            .drain(..)
            .chain(self.captures.drain(..).map(|c| c.1))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(repo().join("scripts/netns.sh"))
            .args(["down", &self.prefix])
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.work);
        } else {
            eprintln!("lab scratch kept at {}", self.work.display());
        }
    }
}

/// Frames of a classic pcap file (what tcpdump -w writes), Ethernet link type.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut frames = Vec::new();
    if bytes.len() < 24 {
        return frames;
    }
    let little = bytes[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || bytes[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let read_u32 = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let captured = read_u32(&bytes[at + 8..]) as usize;
        let start = at + 16;
        if start + captured > bytes.len() {
            break;
        }
        frames.push(bytes[start..start + captured].to_vec());
        at = start + captured;
    }
    frames
}

/// The lab's client source addresses: ten IPv4 or ten IPv6.
pub fn client_sources(ipv6: bool) -> Vec<String> {
    (0..10)
        .map(|n| {
            if ipv6 {
                format!("2001:db8::1{n}")
            } else {
                format!("198.18.0.1{n}")
            }
        })
        .collect()
}
