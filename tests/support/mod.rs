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
