//! Test hosts in network namespaces: `Netns` creates a uniquely named namespace and
//! deletes it (with every interface inside) on Drop; `veth_pair` links two of them.
//! Shared by the end-to-end tests; include it with `#[path = "support/netns.rs"] mod netns;`.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Panics with a clear message unless the tests run as root: namespaces, veth, XDP
/// and AF_XDP all need it, and a skipped test would hide that.
pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("run `id -u`");
    let uid = String::from_utf8_lossy(&uid.stdout);
    assert_eq!(
        uid.trim(),
        "0",
        "this test needs root (network namespaces, veth, XDP, AF_XDP): run it as root, \
         e.g. `sudo -E cargo test --test xsk_netns`"
    );
}

/// Runs `program args...`, panicking with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace that exists while this value does.
pub struct Netns {
    /// The name `ip netns` knows it by.
    pub name: String,
}

impl Netns {
    /// Creates `xlbt-<pid>-<n>-<tag>` with its loopback up.
    pub fn new(tag: &str) -> Netns {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("xlbt-{}-{id}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME args...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A command that runs `program args...` inside the namespace (spawn or output it).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, program])
            .args(args);
        command
    }

    /// Runs `program args...` inside the namespace and returns its output, whatever
    /// its exit status.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name))
    }

    /// The MAC address of `ifname` in this namespace.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = self.output("cat", &[&format!("/sys/class/net/{ifname}/address")]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.trim().split(':')) {
            *byte = u8::from_str_radix(part, 16).expect("MAC in sysfs is hex");
        }
        mac
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth ends inside it (and their peers).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Creates veth `a_if` in `a` paired with `b_if` in `b`, each with `queues` rx and tx
/// queues, and brings both up.
pub fn veth_pair(a: &Netns, a_if: &str, b: &Netns, b_if: &str, queues: u32) {
    let q = queues.to_string();
    a.ip(&[
        "link",
        "add",
        a_if,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        &b.name,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}
