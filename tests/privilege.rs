//! Least privilege, end to end. `xlb run` as an unprivileged user holding only the
//! capabilities `packaging/systemd/xlb.service` grants (read from the unit itself) passes
//! the lab's TCP traffic, serves metrics, probes backends (raw SCTP sockets included),
//! reloads a new VIP into the steering map on SIGHUP and stops cleanly; without any one of
//! those capabilities it does not start. Once it serves, every thread has dropped all of
//! them but CAP_NET_RAW (the sctp probe's raw sockets), and so does a root run. The OCI image `scripts/image.sh` builds holds
//! what xlb loads and nothing else, and runs the same way under crun in the lab's xlb
//! namespace. Needs root (namespaces, setpriv, chroot, crun); fails without it, never
//! skips.
//!
//! Memory: the unit sets `LimitMEMLOCK=infinity`. These tests leave the inherited limit
//! alone (8 MiB on the test host, whose bounding set lacks CAP_SYS_RESOURCE to raise it):
//! CAP_IPC_LOCK, which the unit grants, exempts the UMEM from it (packaging/README.md).

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::lab::{client_sources, require_root, Lab};
use support::metric;

/// The unit whose privileges these tests grant.
const UNIT: &str = include_str!("../packaging/systemd/xlb.service");
/// The OCI runtime configuration `scripts/image.sh bundle` writes.
const RUNTIME: &str = include_str!("../packaging/image/runtime.json.in");
/// `nobody`: owns no file xlb could write.
const NOBODY: u32 = 65534;
/// The image's xlb user (packaging/image/passwd).
const IMAGE_USER: u32 = 65532;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab's table: TCP over IPv4 and IPv6 with a tcp health check, and an SCTP service
/// whose sctp health check needs a raw socket (b1 has no SCTP stack, so the probe must
/// read the ICMP protocol-unreachable to say so).
fn table(extra: &str) -> String {
    format!(
        r#"version: 1
dataplane:
  interfaces: [{{ name: eth0 }}]
  flow_table: {{ capacity: 65536 }}
  sctp: {{ capacity: 1024 }}
services:
  - name: web
    vips: [198.18.100.10, "2001:db8:100::10"]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    health_check: {{ kind: tcp, port: 80, interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }}
    backends:
      - {{ name: b1, address: 198.18.1.11 }}
      - {{ name: b2, address: 198.18.1.12 }}
      - {{ name: b3, address: 198.18.1.13 }}
  - name: ngap
    vips: [198.18.100.20]
    protocol: sctp
    ports: [38412]
    forwarding: dsr
    health_check: {{ kind: sctp, port: 38412, interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }}
    backends:
      - {{ name: b1, address: 198.18.1.11 }}
{extra}"#
    )
}

/// Added by the reload: a VIP the steering map did not hold (the backends hold it on
/// vip0, scripts/netns.sh).
const RELOADED_SERVICE: &str = r#"  - name: web2
    vips: [198.18.101.20]
    protocol: tcp
    ports: [80]
    forwarding: dsr
    backends:
      - { name: b2, address: 198.18.1.12 }
"#;

/// The capability names a `Key=` line of the unit lists, e.g. `CAP_NET_ADMIN`.
fn unit_list(key: &str) -> BTreeSet<String> {
    let prefix = format!("{key}=");
    let lines: Vec<&str> = UNIT
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(lines.len(), 1, "xlb.service sets {key}= once");
    lines[0].split_whitespace().map(str::to_string).collect()
}

/// What the unit grants: its ambient set, which must equal its bounding set.
fn unit_capabilities() -> BTreeSet<String> {
    let ambient = unit_list("AmbientCapabilities");
    assert_eq!(
        ambient,
        unit_list("CapabilityBoundingSet"),
        "xlb.service: the bounding set holds more or less than the ambient set"
    );
    ambient
}

/// A capability's bit (linux/capability.h), for the ones a unit for xlb could name.
fn bit(name: &str) -> u32 {
    match name {
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_ADMIN" => 12,
        "CAP_NET_RAW" => 13,
        "CAP_IPC_LOCK" => 14,
        "CAP_SYS_ADMIN" => 21,
        "CAP_SYS_NICE" => 23,
        "CAP_SYS_RESOURCE" => 24,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("add {other}'s bit to tests/privilege.rs"),
    }
}

fn mask(caps: &BTreeSet<String>) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << bit(c))
}

/// One field of /proc/PID/status, e.g. `CapEff`.
fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("xlb's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// What xlb keeps once it serves (src/runtime/capabilities.rs): CAP_NET_RAW, for the
/// sctp health probe's raw sockets. (CAP_BPF too on kernels before 5.19 that refuse
/// bpf(2) to the unprivileged; the test host's is newer.)
fn kept_after_start() -> BTreeSet<String> {
    BTreeSet::from(["CAP_NET_RAW".to_string()])
}

/// One capability set of /proc/PID/status (or /proc/PID/task/TID/status), as bits.
fn capability_bits(status: &str, set: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{set}:")))
        .unwrap_or_else(|| panic!("no {set} in the status"));
    u64::from_str_radix(hex.trim(), 16).expect("hex")
}

/// Asserts process `pid` runs as `uid`, was granted `granted` (its bounding set) and,
/// started, holds only `kept_after_start` (see `assert_dropped`). No way to gain more
/// (no_new_privs).
fn assert_confined(pid: u32, uid: u32, granted: &BTreeSet<String>) {
    let uids: Vec<u32> = proc_status(pid, "Uid")
        .split_whitespace()
        .map(|u| u.parse().expect("uid"))
        .collect();
    assert_eq!(uids, [uid; 4], "real, effective, saved and fs uid");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_dropped(pid, mask(granted));
}

/// Asserts every thread of `pid` kept at most `kept_after_start`, within a bounding set
/// of `bounding` (what the process was granted), and the threads that need nothing kept
/// nothing.
fn assert_dropped(pid: u32, bounding: u64) {
    let kept = mask(&kept_after_start());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("xlb's status");
    assert_eq!(capability_bits(&status, "CapBnd"), bounding, "CapBnd");
    for set in ["CapEff", "CapPrm"] {
        let got = capability_bits(&status, set);
        assert_eq!(
            got, kept,
            "{set} of the control thread is {got:#x}, xlb keeps {kept:#x}"
        );
    }
    // Root starts with none inheritable; the unit's user with the four it grants.
    for set in ["CapInh", "CapAmb"] {
        let got = capability_bits(&status, set);
        assert_eq!(got & !kept, 0, "{set} of the control thread is {got:#x}");
    }
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("xlb's threads");
    let mut unprivileged = Vec::new();
    for task in tasks.map(|t| t.expect("a thread").path()) {
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue; // the thread ended meanwhile
        };
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let name = name.trim();
        for set in ["CapEff", "CapPrm"] {
            let got = capability_bits(&status, set);
            assert_eq!(got & !kept, 0, "{set} of thread {name} is {got:#x}");
            if name.starts_with("xlb-worker") || name == "xlb-resolver" || name == "xlb-metrics" {
                assert_eq!(got, 0, "{set} of thread {name} is {got:#x}, it needs none");
            }
        }
        if name.starts_with("xlb-worker") || name == "xlb-resolver" {
            unprivileged.push(name.to_string());
        }
    }
    assert!(
        unprivileged.iter().any(|n| n == "xlb-resolver")
            && unprivileged.iter().any(|n| n.starts_with("xlb-worker")),
        "the workers and the resolver were checked: {unprivileged:?}"
    );
}

/// Asserts the log says which capabilities were kept, and why.
fn assert_kept_logged(log: &str) {
    let line = log
        .lines()
        .find(|l| l.contains("capabilities dropped"))
        .unwrap_or_else(|| panic!("no capability drop logged:\n{log}"));
    assert!(
        line.contains("kept: CAP_NET_RAW (the sctp health probe"),
        "{line}"
    );
}

/// An `xlb run` (or the crun holding it) this test started, its output in `log`.
struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    fn spawn(mut command: Command, log: PathBuf) -> Running {
        let file = File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start xlb");
        Running {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Ok` once xlb logs that it runs; `Err(status)` if it exits first.
    fn started(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains("xlb running") {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait") {
                return Err(status);
            }
            assert!(
                Instant::now() < deadline,
                "xlb neither started nor exited within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits until the log contains `text`.
    fn await_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "xlb did not log {text:?} within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit after it was told to stop.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "xlb did not exit within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `xlb run -c CONFIG` in the lab's xlb namespace as nobody, holding `caps` only:
/// `setpriv` sets uid, gid, no groups, the inheritable, ambient and bounding sets and
/// no_new_privs, as systemd does for the unit; `ip netns exec` and `setpriv` exec in
/// place, so the child's pid is xlb's.
fn start_as_nobody(lab: &Lab, config: &Path, caps: &BTreeSet<String>, log: PathBuf) -> Running {
    let names: Vec<String> = caps
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let limited = std::iter::once("-all".to_string())
        .chain(names.iter().map(|n| format!("+{n}")))
        .collect::<Vec<_>>()
        .join(",");
    let mut command = lab.ns_command("lb", "setpriv");
    command
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(format!("--inh-caps={limited}"))
        .arg(format!("--bounding-set={limited}"))
        .arg("--no-new-privs");
    if !names.is_empty() {
        let ambient: Vec<String> = names.iter().map(|n| format!("+{n}")).collect();
        command.arg(format!("--ambient-caps={}", ambient.join(",")));
    }
    command
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_xlb"))
        .args(["run", "-c"])
        .arg(config)
        .env("RUST_LOG", "info");
    Running::spawn(command, log)
}

/// Sends `signal` (e.g. `-HUP`) to process `pid`.
fn signal(pid: u32, name: &str) {
    run(Command::new("kill").args([name, &pid.to_string()]));
}

fn write_table(lab: &Lab, extra: &str) -> PathBuf {
    let path = lab.work.join("xlb.yaml");
    std::fs::write(&path, table(extra)).expect("write the table");
    path
}

/// TCP through xlb from the client to `vip`: every connection answered.
fn assert_tcp_passes(lab: &Lab, vip: &str, count: u32, log: &str) {
    let ipv6 = vip.contains(':');
    let summary = lab.client("tcp", vip, 80, count, &client_sources(ipv6));
    assert_eq!(summary.failed, 0, "{vip}: {summary:?}\n{log}");
    assert_eq!(summary.answered(), count, "{vip}: {summary:?}");
}

#[test]
fn xlb_runs_as_nobody_with_only_the_units_capabilities() {
    let lab = Lab::up("priv", 1);
    let caps = unit_capabilities();
    let config = write_table(&lab, "");
    let mut xlb = start_as_nobody(&lab, &config, &caps, lab.work.join("xlb.log"));
    if let Err(status) = xlb.started() {
        panic!(
            "xlb as nobody with {caps:?} exited with {status}:\n{}",
            xlb.log()
        );
    }
    assert_confined(xlb.pid(), NOBODY, &caps);
    assert_kept_logged(&xlb.log());

    for vip in ["198.18.100.10", "2001:db8:100::10"] {
        assert_tcp_passes(&lab, vip, 150, &xlb.log());
    }
    let summary = lab.client("tcp", "198.18.100.10", 80, 60, &client_sources(false));
    assert!(
        summary.answers.len() >= 2,
        "one backend took all: {summary:?}"
    );

    // The sctp probe's raw socket works: it reads b1's ICMP protocol unreachable.
    xlb.await_log("has no SCTP stack", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300)); // workers publish every 50 ms
    let body = lab.scrape();
    assert!(
        metric(&body, "xlb_rx_packets_total", &[]) >= 300.0,
        "metrics count the traffic: {body}"
    );
    for backend in ["b1", "b2", "b3"] {
        let up = metric(
            &body,
            "xlb_backend_up",
            &[("service", "web"), ("backend", backend)],
        );
        assert_eq!(up, 1.0, "tcp probes run unprivileged: {backend}");
    }
    assert_eq!(metric(&body, "xlb_backend_up", &[("service", "ngap")]), 0.0);

    // A reload that adds a VIP writes the steering map with the same privileges.
    write_table(&lab, RELOADED_SERVICE);
    signal(xlb.pid(), "-HUP");
    xlb.await_log("reload applied", Duration::from_secs(10));
    let summary = lab.client("tcp", "198.18.101.20", 80, 40, &client_sources(false));
    assert_eq!(
        summary.failed,
        0,
        "the reloaded VIP: {summary:?}\n{}",
        xlb.log()
    );
    assert_eq!(summary.answers.get("b2"), Some(&40), "{summary:?}");

    let log = xlb.log();
    for refusal in ["Operation not permitted", "Permission denied", "EPERM"] {
        assert!(!log.contains(refusal), "{refusal} in the log:\n{log}");
    }
    signal(xlb.pid(), "-TERM");
    let status = xlb.wait(Duration::from_secs(10));
    assert!(status.success(), "xlb exited with {status}:\n{}", xlb.log());
    let link = lab.ns_output("lb", "ip", &["link", "show", "eth0"]);
    assert!(!link.contains("xdp"), "XDP left attached: {link}");
}

#[test]
fn a_root_run_drops_the_same_capabilities() {
    let lab = Lab::up("proot", 1);
    let config = write_table(&lab, "");
    let mut command = lab.ns_command("lb", env!("CARGO_BIN_EXE_xlb"));
    command
        .args(["run", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info");
    let mut xlb = Running::spawn(command, lab.work.join("xlb.log"));
    if let Err(status) = xlb.started() {
        panic!("xlb as root exited with {status}:\n{}", xlb.log());
    }
    let bounding = capability_bits(
        &std::fs::read_to_string("/proc/self/status").expect("own status"),
        "CapBnd",
    );
    assert_dropped(xlb.pid(), bounding);
    assert_kept_logged(&xlb.log());

    assert_tcp_passes(&lab, "198.18.100.10", 100, &xlb.log());
    xlb.await_log("has no SCTP stack", Duration::from_secs(5));
    write_table(&lab, RELOADED_SERVICE);
    signal(xlb.pid(), "-HUP");
    xlb.await_log("reload applied", Duration::from_secs(10));
    assert_tcp_passes(&lab, "198.18.101.20", 40, &xlb.log());
    signal(xlb.pid(), "-TERM");
    let status = xlb.wait(Duration::from_secs(10));
    assert!(status.success(), "xlb exited with {status}:\n{}", xlb.log());
    let link = lab.ns_output("lb", "ip", &["link", "show", "eth0"]);
    assert!(!link.contains("xdp"), "XDP left attached: {link}");
}

#[test]
fn without_any_one_of_the_units_capabilities_xlb_does_not_start() {
    let lab = Lab::up("pcap", 1);
    let caps = unit_capabilities();
    let config = write_table(&lab, "");
    for dropped in &caps {
        let mut fewer = caps.clone();
        fewer.remove(dropped);
        let log = lab.work.join(format!("xlb-without-{dropped}.log"));
        let mut xlb = start_as_nobody(&lab, &config, &fewer, log);
        match xlb.started() {
            Ok(()) => panic!(
                "xlb started without {dropped}: the unit grants more than xlb needs\n{}",
                xlb.log()
            ),
            Err(status) => {
                assert!(!status.success(), "{status}");
                let reason = xlb.log();
                let last = reason.lines().last().unwrap_or("").to_string();
                eprintln!("without {dropped}: {last}");
            }
        }
        let link = lab.ns_output("lb", "ip", &["link", "show", "eth0"]);
        assert!(
            !link.contains("xdp"),
            "a failed start left XDP attached: {link}"
        );
    }
}

#[test]
fn the_container_runtime_grants_what_the_unit_grants() {
    let runtime: serde_json::Value = serde_json::from_str(
        &RUNTIME
            .replace("@CONFIG@", "/etc/xlb/xlb.yaml")
            .replace("@NETNS@", "/run/netns/x"),
    )
    .expect("runtime.json.in is JSON once filled");
    let process = &runtime["process"];
    let caps = unit_capabilities();
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        let listed: BTreeSet<String> = process["capabilities"][set]
            .as_array()
            .unwrap_or_else(|| panic!("no {set} set"))
            .iter()
            .map(|c| c.as_str().expect("a name").to_string())
            .collect();
        assert_eq!(listed, caps, "runtime.json.in {set} set");
    }
    assert_eq!(process["user"]["uid"], IMAGE_USER);
    assert_eq!(process["noNewPrivileges"], true);
    assert_eq!(runtime["root"]["readonly"], true);
}

/// Runs a command, panicking with its stderr unless it succeeds.
fn run(command: &mut Command) -> Output {
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read JSON")).expect("valid JSON")
}

/// The image of this test build's xlb, built once per test run (scripts/image.sh build).
fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("privilege-image");
        run(Command::new(repo().join("scripts/image.sh"))
            .args(["build", "--binary", env!("CARGO_BIN_EXE_xlb"), "--out"])
            .arg(&out));
        out
    })
}

/// The blob a descriptor names, checked against its digest and size.
fn blob(image: &Path, descriptor: &serde_json::Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().expect("a digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digests");
    let path = image.join("blobs/sha256").join(hex);
    assert_eq!(sha256(&path), hex, "blob {digest} holds other bytes");
    let size = std::fs::metadata(&path).expect("blob exists").len();
    assert_eq!(Some(size), descriptor["size"].as_u64(), "{digest}: size");
    path
}

/// The image's one layer (checked), and its manifest.
fn layer(image: &Path) -> PathBuf {
    assert_eq!(
        std::fs::read_to_string(image.join("oci-layout")).expect("oci-layout"),
        "{\"imageLayoutVersion\":\"1.0.0\"}\n"
    );
    let index = read_json(&image.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "xlb"
    );
    let manifest = read_json(&blob(image, &manifests[0]));
    let config = read_json(&blob(image, &manifest["config"]));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer");
    let layer = blob(image, &layers[0]);
    let uncompressed = run(Command::new("sh")
        .args(["-c", "gzip -dc \"$0\" | sha256sum"])
        .arg(&layer))
    .stdout;
    let diff_id = String::from_utf8_lossy(&uncompressed)
        .split_whitespace()
        .next()
        .map(|hex| format!("sha256:{hex}"));
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str(),
        diff_id.as_deref(),
        "the config's diff_id is the uncompressed layer's digest"
    );
    assert_eq!(
        config["config"]["User"],
        format!("{IMAGE_USER}:{IMAGE_USER}")
    );
    layer
}

#[test]
fn the_image_holds_xlb_and_exactly_the_libraries_it_loads() {
    require_root();
    let image = image();
    let layer = layer(image);

    let listing = run(Command::new("tar").arg("-tzf").arg(&layer)).stdout;
    let files: BTreeSet<String> = String::from_utf8_lossy(&listing)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| l.trim_start_matches("./").to_string())
        .collect();
    let ldd = run(Command::new("ldd").arg(env!("CARGO_BIN_EXE_xlb"))).stdout;
    let mut wanted: BTreeSet<String> = String::from_utf8_lossy(&ldd)
        .lines()
        .filter_map(|l| {
            let path = match l.split_whitespace().collect::<Vec<_>>()[..] {
                [_, "=>", path, _] => path,
                [path, _] if path.starts_with('/') => path,
                _ => return None,
            };
            // The usr-merged place of /lib and /lib64 (scripts/image.sh).
            Some(match path.strip_prefix("/usr/") {
                Some(rest) => format!("usr/{rest}"),
                None => format!("usr{path}"),
            })
        })
        .collect();
    assert!(
        wanted.iter().any(|l| l.contains("ld-linux")),
        "ldd names the loader: {wanted:?}"
    );
    wanted.extend(["usr/bin/xlb", "etc/passwd", "etc/group", "lib", "lib64"].map(String::from));
    assert_eq!(
        files, wanted,
        "the layer holds xlb, its libraries and users, nothing else"
    );

    // The libraries are complete: xlb runs from the unpacked layer, as the image's user.
    let rootfs = image.with_extension("rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    std::fs::create_dir_all(&rootfs).expect("rootfs dir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs));
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
    assert!(
        passwd.contains(&format!("xlb:x:{IMAGE_USER}:{IMAGE_USER}:")),
        "{passwd}"
    );
    std::fs::copy(
        repo().join("config/lab.yaml"),
        rootfs.join("etc/xlb/xlb.yaml"),
    )
    .expect("config into the rootfs");
    let out = run(Command::new("chroot")
        .arg(format!("--userspec={IMAGE_USER}:{IMAGE_USER}"))
        .arg(&rootfs)
        .args(["/usr/bin/xlb", "check", "-c", "/etc/xlb/xlb.yaml"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&rootfs);
}

#[test]
fn the_image_build_is_reproducible() {
    let again = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("privilege-image-again");
    run(Command::new(repo().join("scripts/image.sh"))
        .args(["build", "--binary", env!("CARGO_BIN_EXE_xlb"), "--out"])
        .arg(&again));
    let first = std::fs::read(image().join("index.json")).expect("index");
    let second = std::fs::read(again.join("index.json")).expect("index");
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "two builds of one binary name different manifests"
    );
    let _ = std::fs::remove_dir_all(&again);
}

/// `crun run` of a bundle, in a mount namespace of its own. crun 1.8 refuses hosts with
/// cgroup v2 controllers beside v1 ("hybrid", as on the test host), so the unified
/// hierarchy is unmounted there first, in that namespace only, and crun places the
/// container in no cgroup of its own: this test is about privileges, not resource limits.
fn crun_run(bundle: &Path, id: &str) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "umount /sys/fs/cgroup/unified 2>/dev/null; \
             exec crun --cgroup-manager=disabled run --bundle \"$0\" \"$1\"",
        )
        .arg(bundle)
        .arg(id);
    command
}

/// Removes the container if a failed test left it.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("crun")
            .args(["delete", "--force", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn the_image_runs_under_crun_in_the_lab_and_passes_traffic() {
    let lab = Lab::up("oci", 1);
    let status = Command::new("crun").arg("--version").output();
    assert!(
        status.is_ok_and(|o| o.status.success()),
        "crun is missing: apt-get install crun (scripts/setup.sh)"
    );
    let image = image();
    layer(image);
    let config = write_table(&lab, "");
    let bundle = lab.work.join("bundle");
    run(Command::new(repo().join("scripts/image.sh"))
        .args(["bundle", "--image"])
        .arg(image)
        .arg("--bundle")
        .arg(&bundle)
        .args(["--netns", &format!("{}lb", lab.prefix), "--config"])
        .arg(&config));
    let id = format!("xlb-{}", lab.prefix);
    let container = Container(id.clone());
    let mut xlb = Running::spawn(crun_run(&bundle, &id), lab.work.join("crun.log"));
    if let Err(status) = xlb.started() {
        panic!("xlb in crun exited with {status}:\n{}", xlb.log());
    }
    let state: serde_json::Value =
        serde_json::from_slice(&run(Command::new("crun").args(["state", &id])).stdout)
            .expect("crun state is JSON");
    let pid = u32::try_from(state["pid"].as_u64().expect("a pid")).expect("pid");
    assert_confined(pid, IMAGE_USER, &unit_capabilities());
    let namespace = |path: String| std::fs::metadata(&path).expect(&path).ino();
    assert_eq!(
        namespace(format!("/proc/{pid}/ns/net")),
        namespace(format!("/run/netns/{}lb", lab.prefix)),
        "xlb runs in the lab's xlb namespace"
    );

    assert_tcp_passes(&lab, "198.18.100.10", 150, &xlb.log());
    std::thread::sleep(Duration::from_millis(300));
    let body = lab.scrape();
    assert!(
        metric(&body, "xlb_rx_packets_total", &[]) >= 150.0,
        "metrics from the container: {body}"
    );

    run(Command::new("crun").args(["kill", &id, "TERM"]));
    let status = xlb.wait(Duration::from_secs(10));
    assert!(
        status.success(),
        "crun run exited with {status}:\n{}",
        xlb.log()
    );
    drop(container);
    let link = lab.ns_output("lb", "ip", &["link", "show", "eth0"]);
    assert!(!link.contains("xdp"), "XDP left attached: {link}");
}
