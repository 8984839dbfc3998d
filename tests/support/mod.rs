//! Helpers shared by the integration tests.

pub mod cluster;
pub mod lab;

use std::path::Path;
use std::process::Command;

/// A set of lab namespaces programs can run in (the single-node lab, the cluster lab).
/// Only the test binaries with real SCTP peers use it.
#[allow(dead_code)]
pub trait Namespaces {
    /// Scratch directory for programs' output.
    fn work(&self) -> &Path;
    /// `program` run inside namespace `short` (`cl`, `b1`, ...).
    fn ns_command(&self, short: &str, program: &str) -> Command;
}

impl Namespaces for lab::Lab {
    fn work(&self) -> &Path {
        &self.work
    }

    fn ns_command(&self, short: &str, program: &str) -> Command {
        lab::Lab::ns_command(self, short, program)
    }
}

impl Namespaces for cluster::Cluster {
    fn work(&self) -> &Path {
        &self.work
    }

    fn ns_command(&self, short: &str, program: &str) -> Command {
        cluster::Cluster::ns_command(self, short, program)
    }
}

/// The value of one series in a Prometheus text body, summed over the series matching
/// every given label.
#[allow(dead_code)]
pub fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `program` run inside the network namespace `namespace` (spawn or output it).
fn ns_command(namespace: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", namespace]).arg(program);
    cmd
}

/// Runs `program args...` in `namespace` and returns its stdout; panics on failure.
fn ns_output(namespace: &str, program: &str, args: &[&str]) -> String {
    let out = ns_command(namespace, program)
        .args(args)
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{program} {args:?} in {namespace} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
