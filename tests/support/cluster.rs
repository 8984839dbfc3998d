//! The cluster lab for end-to-end tests: `scripts/cluster.sh` builds a client, an ECMP
//! router, three xlb nodes and three backends, with a BIRD on the router and on every
//! node; this starts the backends' servers and the real `xlb` binary on the nodes, and
//! reads the router's routes and BIRD's sessions.
//!
//! Needs root. Without it every test fails with a message saying so (never skipped).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::lab::{require_root, PYTHON};

/// One cluster lab at a time in a test binary: each runs three dataplanes and four
/// BIRDs, and the machine may have two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How one long transfer ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Stream {
    /// Client source address.
    pub source: String,
    /// Client source port.
    pub port: u16,
    /// The backend that answered first.
    pub backend: String,
    /// Why it broke, if it did.
    pub broken: Option<String>,
}

/// Long TCP transfers running from the client (tests/support/streams.py).
pub struct Streams {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// Each connection's (source, port), in order.
    pub endpoints: Vec<(String, u16)>,
}

impl Streams {
    /// Waits for the transfers to end and returns how each ended.
    pub fn finish(mut self) -> Vec<Stream> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("streams report");
        let status = self.child.wait().expect("reap streams.py");
        assert!(status.success(), "streams.py failed: {status}");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("streams output {line:?}: {e}"))
    }
}

/// A running cluster lab; torn down on drop.
pub struct Cluster {
    /// Namespace prefix.
    pub prefix: String,
    /// Scratch directory: the service table the nodes run, their logs.
    pub work: PathBuf,
    nodes: [Option<Child>; 3],
    backends: Vec<Option<Child>>,
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Builds the lab with `config` as every node's service table, starts the backends'
    /// servers, and waits until the router has its six BGP sessions (no xlb runs yet).
    pub fn up(name: &str, config: &str) -> Cluster {
        require_root();
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "k{}{}{}",
            &name[..name.len().min(4)],
            std::process::id() % 1000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let work = std::env::temp_dir().join(format!("xlb-cluster-e2e-{prefix}"));
        std::fs::create_dir_all(&work).expect("scratch dir");
        std::fs::write(work.join("xlb.yaml"), config).expect("write config");
        let status = Command::new(repo().join("scripts/cluster.sh"))
            .args(["up", &prefix])
            .status()
            .expect("run scripts/cluster.sh");
        assert!(status.success(), "scripts/cluster.sh up {prefix} failed");
        let mut cluster = Cluster {
            prefix,
            work,
            nodes: [None, None, None],
            backends: Vec::new(),
            _turn: turn,
        };
        for n in 1..=3 {
            let backend = cluster.spawn_backend(n);
            cluster.backends.push(Some(backend));
        }
        cluster.wait_for(
            Duration::from_secs(30),
            "the router's six BGP sessions",
            |c| {
                c.bird("rt", "show protocols")
                    .matches("Established")
                    .count()
                    == 6
            },
        );
        cluster
    }

    fn spawn_backend(&self, n: usize) -> Child {
        let mut child = self
            .ns_command(&format!("b{n}"), PYTHON)
            .arg(repo().join("tests/support/backend.py"))
            .args([format!("b{n}").as_str(), "80", "--", "53"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start backend");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("backend says ready");
        assert_eq!(line.trim(), "ready", "backend did not start");
        child
    }

    /// Stops backend `n`'s servers (1..=3), as a crashed backend would.
    pub fn stop_backend(&mut self, n: usize) {
        if let Some(mut child) = self.backends[n - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts backend `n`'s servers again.
    pub fn start_backend(&mut self, n: usize) {
        self.backends[n - 1] = Some(self.spawn_backend(n));
    }

    /// A command run inside namespace `short` (`cl`, `rt`, `n1`, `b1`, ...).
    pub fn ns_command(&self, short: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        super::ns_command(&format!("{}{short}", self.prefix), program)
    }

    /// Runs a command in a namespace and returns its stdout; panics on failure.
    pub fn ns_output(&self, short: &str, program: &str, args: &[&str]) -> String {
        super::ns_output(&format!("{}{short}", self.prefix), program, args)
    }

    /// `birdc CMD` against the BIRD of namespace `short` (`rt`, `n1`..`n3`).
    pub fn bird(&self, short: &str, command: &str) -> String {
        let socket = std::env::temp_dir()
            .join(format!("xlb-cluster-{}", self.prefix))
            .join(format!("{short}.ctl"));
        let out = Command::new("birdc")
            .arg("-s")
            .arg(socket)
            .args(command.split_whitespace())
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The path of the service table the nodes run (rewrite it before a SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.work.join("xlb.yaml")
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.work.join(format!("n{n}.log"))
    }

    /// Everything node `n`'s xlb logged so far.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.log_path(n)).unwrap_or_default()
    }

    /// Starts `xlb run` on node `n` (1..=3) and waits until it runs.
    pub fn start_node(&mut self, n: usize) {
        self.start_node_with(n, &self.config_path());
    }

    /// Starts `xlb run` on node `n` with a service table of its own (one that differs
    /// between nodes, as SCTP sync's `listen` and `peers` do).
    pub fn start_node_with(&mut self, n: usize, config: &std::path::Path) {
        let log = std::fs::File::create(self.log_path(n)).expect("log file");
        let child = self
            .ns_command(&format!("n{n}"), env!("CARGO_BIN_EXE_xlb"))
            .args(["run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start xlb");
        self.nodes[n - 1] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log(n).contains("xlb running") {
            let exited = self.nodes[n - 1]
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("xlb on n{n} exited with {status}:\n{}", self.log(n));
            }
            assert!(
                Instant::now() < deadline,
                "xlb on n{n} did not start:\n{}",
                self.log(n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` (e.g. `-HUP`) to node `n`'s xlb.
    pub fn signal_node(&self, n: usize, signal: &str) {
        let pid = self.nodes[n - 1].as_ref().expect("xlb started").id();
        // `ip netns exec` execs xlb in place, so the child's pid is xlb's.
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILLs node `n`'s xlb: no clean-up code runs.
    pub fn kill_node(&mut self, n: usize) {
        let mut child = self.nodes[n - 1].take().expect("xlb started");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// SIGTERMs node `n`'s xlb and waits for it to exit (at most `within`).
    pub fn stop_node(&mut self, n: usize, within: Duration) -> ExitStatus {
        self.signal_node(n, "-TERM");
        let mut child = self.nodes[n - 1].take().expect("xlb started");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "xlb on n{n} did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The router's next hops for `vip`, from its kernel routing table (what ECMP uses).
    pub fn next_hops(&self, vip: &str) -> Vec<String> {
        let family = if vip.contains(':') { "-6" } else { "-4" };
        let out = self.ns_output("rt", "ip", &[family, "route", "show", vip]);
        let mut hops: Vec<String> = out
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    /// Waits until the router has `count` next hops for `vip`; returns how long it took.
    pub fn wait_next_hops(&self, vip: &str, count: usize, within: Duration) -> Duration {
        let start = Instant::now();
        self.wait_for(within, &format!("{count} next hops for {vip}"), |c| {
            c.next_hops(vip).len() == count
        });
        start.elapsed()
    }

    /// Which node (1..=3) each TCP flow to `vip` crosses now: the router's frames to
    /// the VIP, captured for a second on its cluster side, say by their destination MAC.
    /// (`ip route get ... sport dport` does not model the forwarding hash faithfully.)
    pub fn nodes_of_flows(&self, vip: &str) -> HashMap<(String, u16), usize> {
        let macs: Vec<String> = (1..=3)
            .map(|n| {
                self.ns_output(&format!("n{n}"), "cat", &["/sys/class/net/eth0/address"])
                    .trim()
                    .to_string()
            })
            .collect();
        let out = self
            .ns_command("rt", "timeout")
            .args([
                "1", "tcpdump", "-i", "eth0", "-Q", "out", "-t", "-e", "-n", "-l", "-s", "128",
            ])
            .arg(format!("tcp and dst host {vip}"))
            .output()
            .expect("run tcpdump");
        let mut nodes = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "SRCMAC > DSTMAC, ethertype IPv4 (0x0800), length N: 198.18.0.16.48683 > ..."
            let words: Vec<&str> = line.split_whitespace().collect();
            let (Some(dst), Some(at)) = (words.get(2), words.iter().position(|w| w.ends_with(':')))
            else {
                continue;
            };
            let Some(node) = macs.iter().position(|m| dst.trim_end_matches(',') == m) else {
                continue;
            };
            let Some((source, port)) = words.get(at + 1).and_then(|w| w.rsplit_once('.')) else {
                continue;
            };
            if let Ok(port) = port.parse() {
                nodes.insert((source.to_string(), port), node + 1);
            }
        }
        nodes
    }

    /// Starts `count` long TCP transfers to `vip:port` lasting `seconds`; returns once
    /// every connection is open.
    pub fn streams(&self, vip: &str, port: u16, count: u32, seconds: u32) -> Streams {
        let sources: Vec<String> = (0..10).map(|n| format!("198.18.0.1{n}")).collect();
        let mut child = self
            .ns_command("cl", PYTHON)
            .arg(repo().join("tests/support/streams.py"))
            .args([
                vip,
                &port.to_string(),
                &count.to_string(),
                &seconds.to_string(),
                &sources.join(","),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start streams.py");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("streams say ready");
        let endpoints = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("streams.py did not start: {line:?}"));
        let endpoints: Vec<(String, u16)> = serde_json::from_str(endpoints).expect("endpoint list");
        Streams {
            child,
            stdout,
            endpoints,
        }
    }

    /// Scrapes node `n`'s metrics endpoint.
    pub fn scrape(&self, n: usize) -> String {
        self.ns_output(
            &format!("n{n}"),
            "curl",
            &["-sf", "http://127.0.0.1:9781/metrics"],
        )
    }

    /// Polls `done` every 100 ms until it holds; panics after `within`, with the
    /// router's routes and sessions.
    pub fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "waited {within:?} for {what}; router:\n{}\n{}",
                self.bird("rt", "show protocols"),
                self.ns_output("rt", "ip", &["route"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for mut child in self
            .nodes
            .iter_mut()
            .chain(&mut self.backends)
            .filter_map(Option::take)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(repo().join("scripts/cluster.sh"))
            .args(["down", &self.prefix])
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.work);
        } else {
            eprintln!("cluster scratch kept at {}", self.work.display());
        }
    }
}
