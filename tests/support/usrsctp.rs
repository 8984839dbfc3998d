//! Real SCTP peers for the namespace lab: Debian's usrsctp example programs
//! (`libusrsctp-examples`: `tsctp`, `client`, `echo_server`) run in the lab's
//! namespaces. The kernel here has no SCTP, so usrsctp speaks raw SCTP over IP through
//! raw sockets (`-E 0 -U 0` / port arguments `0`: no UDP encapsulation).
//!
//! Every program runs with `scripts/usrsctp_shim.c` preloaded: stdout
//! line-buffered, the stack's debug output off (tsctp turns it on, on stdout), and the
//! potentially-failed threshold at 0 (RFC 7829), so a path that loses one
//! retransmission timeout's worth of packets fails over in about a second instead of
//! about a minute. Nothing else about the stacks changes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::Namespaces;

/// usrsctp's throughput tool: server without a destination, client with one.
pub const TSCTP: &str = "/usr/lib/usrsctp/tsctp";
/// usrsctp's IPv6 (dual-stack) client: sends stdin's lines, prints what comes back.
pub const CLIENT: &str = "/usr/lib/usrsctp/client";
/// usrsctp's echo server on port 7 (IPv6 wildcard, IPv4 too).
pub const ECHO_SERVER: &str = "/usr/lib/usrsctp/echo_server";
/// The port `tsctp` serves and connects to by default.
pub const TSCTP_PORT: u16 = 5001;
/// The port `echo_server` listens on (fixed in the program).
pub const ECHO_PORT: u16 = 7;

/// The preload shim, built once per test process.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        for program in [TSCTP, CLIENT, ECHO_SERVER] {
            assert!(
                Path::new(program).exists(),
                "{program} missing: install libusrsctp-examples (scripts/setup.sh)"
            );
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/usrsctp_shim.c");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&dir).expect("target tmp dir");
        // Built under a name of its own, then renamed: test binaries running at the
        // same time never load a half-written library.
        let building = dir.join(format!("usrsctp_shim.{}.so", std::process::id()));
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&building)
            .arg(&source)
            .arg("-ldl")
            .output()
            .expect("run cc (scripts/setup.sh installs gcc)");
        assert!(
            out.status.success(),
            "building {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let built = dir.join("usrsctp_shim.so");
        std::fs::rename(&building, &built).expect("install the shim");
        built
    })
}

/// A usrsctp program running in a lab namespace, its stdout and stderr in a file.
/// Killed on drop.
pub struct Peer {
    /// What the test calls it (`b1-tsctp`, `client-1`, ...): names its output file.
    pub name: String,
    child: Child,
    output: PathBuf,
    stdin: Option<ChildStdin>,
    lines: Option<Receiver<String>>,
}

impl Peer {
    fn spawn(lab: &impl Namespaces, short: &str, name: &str, program: &str, args: &[&str]) -> Peer {
        Peer::spawn_with(lab, short, name, program, args, false)
    }

    fn spawn_with(
        lab: &impl Namespaces,
        short: &str,
        name: &str,
        program: &str,
        args: &[&str],
        interactive: bool,
    ) -> Peer {
        let output = lab.work().join(format!("{name}.log"));
        let file = std::fs::File::create(&output).expect("output file");
        let mut cmd = lab.ns_command(short, "env");
        cmd.arg(format!("LD_PRELOAD={}", shim().display()))
            .arg(program)
            .args(args)
            .stderr(file.try_clone().expect("output file"));
        if interactive {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null()).stdout(file);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} in {short}: {e}"));
        let (stdin, lines) = if interactive {
            // A reader thread copies stdout to the output file and hands each line to
            // the test, so the test can wait for a line with a deadline.
            let stdout = child.stdout.take().expect("piped");
            let (tx, rx) = mpsc::channel();
            let path = output.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .expect("output file");
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = writeln!(file, "{line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            (child.stdin.take(), Some(rx))
        } else {
            (None, None)
        };
        Peer {
            name: name.to_string(),
            child,
            output,
            stdin,
            lines,
        }
    }

    /// Everything the program printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Waits until the output holds a line `matches` accepts; returns that line.
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().lines().find(|l| matches(l)) {
                return Some(line.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the program is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Waits for the program to exit; `None` (and the program killed) on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a line to an interactive program's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("interactive peer");
        writeln!(stdin, "{line}").expect("peer reads stdin");
        stdin.flush().expect("peer reads stdin");
    }

    /// Closes an interactive program's stdin (usrsctp's `client` then shuts down).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for an interactive program to print `line`.
    pub fn expect_line(&self, line: &str, timeout: Duration) -> bool {
        let lines = self.lines.as_ref().expect("interactive peer");
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(got) if got == line => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tsctp -E 0 -U 0 -v` on backend `short`: a server on 0.0.0.0:5001 (every address of
/// the backend, so its INIT-ACK lists both VIPs and its own address). `-v` prints
/// `Connection accepted from ADDR:PORT` per association; each association's end
/// prints `LENGTH, MESSAGES, RECV_CALLS, BYTES, SECONDS, RATE, NOTIFICATIONS`.
pub fn tsctp_server(lab: &impl Namespaces, short: &str) -> Peer {
    let peer = Peer::spawn(
        lab,
        short,
        &format!("{short}-tsctp"),
        TSCTP,
        &["-E", "0", "-U", "0", "-v"],
    );
    // Printed just before listen().
    assert!(
        peer.wait_for_line(Duration::from_secs(5), |l| l
            .starts_with("Receive buffer size"))
            .is_some(),
        "tsctp server on {short} did not start: {}",
        peer.output()
    );
    peer
}

/// `tsctp -E 0 -U 0 -T SECONDS -l LENGTH VIP` in the client namespace: bound to
/// 0.0.0.0 (its INIT lists all ten client addresses), sends LENGTH-byte messages to
/// VIP:5001 for SECONDS seconds, then shuts the association down and prints
/// `Sending of N messages of length L took S seconds.`
pub fn tsctp_client(
    lab: &impl Namespaces,
    name: &str,
    vip: &str,
    seconds: u32,
    length: u32,
) -> Peer {
    Peer::spawn(
        lab,
        "cl",
        name,
        TSCTP,
        &[
            "-E",
            "0",
            "-U",
            "0",
            "-T",
            &seconds.to_string(),
            "-l",
            &length.to_string(),
            vip,
        ],
    )
}

/// `echo_server 0` on backend `short`: port 7, IPv6 wildcard (IPv4 too), no UDP
/// encapsulation; prints `Msg of length N received from ADDR:PORT ...` per message.
pub fn echo_server(lab: &impl Namespaces, short: &str) -> Peer {
    Peer::spawn(lab, short, &format!("{short}-echo"), ECHO_SERVER, &["0"])
}

/// `client VIP 7 0 0 0` in the client namespace: remote address and port, local port
/// 0 (any), local and remote UDP encapsulation ports 0 (none). Sends each line written
/// to it; prints what comes back; on end of input shuts down and prints
/// `Number of packets (sent/received): (S/R).`
pub fn echo_client(lab: &impl Namespaces, name: &str, vip: &str) -> Peer {
    Peer::spawn_with(
        lab,
        "cl",
        name,
        CLIENT,
        &[vip, &ECHO_PORT.to_string(), "0", "0", "0"],
        true,
    )
}

/// What a tsctp client reports once it is done: messages sent and their length.
pub fn tsctp_sent(output: &str) -> Option<(u64, u64)> {
    let line = output.lines().find(|l| l.starts_with("Sending of "))?;
    let mut words = line.split_whitespace();
    let messages = words.nth(2)?.parse().ok()?;
    let length = words.nth(3)?.parse().ok()?;
    Some((messages, length))
}

/// One association a tsctp server saw end: messages and bytes received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Complete messages received.
    pub messages: u64,
    /// Bytes received.
    pub bytes: u64,
}

/// Every association a tsctp server reported, in order.
pub fn tsctp_received(output: &str) -> Vec<Received> {
    output
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(", ").collect();
            if fields.len() != 7 {
                return None;
            }
            Some(Received {
                messages: fields[1].parse().ok()?,
                bytes: fields[3].parse().ok()?,
            })
        })
        .collect()
}

/// The clients a tsctp server accepted (`ADDR:PORT`), in order.
pub fn tsctp_accepted(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("Connection accepted from "))
        .map(|s| s.trim().to_string())
        .collect()
}
