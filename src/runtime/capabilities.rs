//! Which Linux capabilities `xlb run` needs, which of them this process lacks (so the
//! error says exactly what to grant instead of failing later with EPERM), and which it
//! still needs once it serves: after start every thread drops the rest from its
//! effective and permitted sets (docs/architecture.md, "Privileges").

use std::io;

use crate::sys::capabilities as sys;

/// Capabilities the dataplane uses, with their bit numbers (linux/capability.h).
const NEEDED: [(&str, u32); 4] = [
    ("CAP_NET_ADMIN", 12), // attach XDP, bind AF_XDP
    ("CAP_NET_RAW", 13),   // AF_XDP sockets, neighbour probes
    ("CAP_IPC_LOCK", 14),  // pin UMEM pages beyond RLIMIT_MEMLOCK
    ("CAP_BPF", 39),       // load the steering program and its maps
];

/// `CAP_NET_ADMIN`'s bit.
const NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`'s bit.
const NET_RAW: u32 = 13;
/// `CAP_BPF`'s bit.
const BPF: u32 = 39;

/// A capability the control thread keeps once xlb serves, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    /// Its name, e.g. `CAP_NET_RAW`.
    pub name: &'static str,
    /// Its bit number.
    pub bit: u32,
    /// What still needs it.
    pub why: &'static str,
}

/// What the control thread keeps after start. Everything else was needed only to start:
/// loading the program and creating its maps (CAP_BPF, CAP_NET_ADMIN), attaching XDP
/// (CAP_NET_ADMIN; the attachment is a bpf_link, so closing its fd at stop detaches with
/// no capability), binding AF_XDP sockets (CAP_NET_RAW) and registering their UMEM
/// (CAP_IPC_LOCK). Reloads only update the steering map through the fd already open,
/// which needs CAP_BPF only where the kernel refuses bpf(2) to the unprivileged
/// altogether (`bpf_usable` false: before Linux 5.19 with unprivileged BPF disabled).
/// A node that announces its VIPs (`announces`) keeps CAP_NET_ADMIN for the addresses on
/// its announcement device.
pub fn kept_after_start(bpf_usable: bool, announces: bool) -> Vec<Kept> {
    let mut kept = vec![Kept {
        name: "CAP_NET_RAW",
        bit: NET_RAW,
        why: "the sctp health probe opens a raw socket for each probe, on threads the control loop starts (a reload may add probes)",
    }];
    if announces {
        kept.push(Kept {
            name: "CAP_NET_ADMIN",
            bit: NET_ADMIN,
            why: "the announcement device's VIP addresses follow health, drains and reloads (netlink address changes)",
        });
    }
    if !bpf_usable {
        kept.push(Kept {
            name: "CAP_BPF",
            bit: BPF,
            why: "this kernel refuses bpf(2) without it, and reloads update the steering map",
        });
    }
    kept
}

fn mask(kept: &[Kept]) -> u64 {
    kept.iter().fold(0, |m, k| m | 1 << k.bit)
}

/// Drops from the calling thread (the control thread, once the workers serve and XDP is
/// attached) every capability but those [`kept_after_start`] names, and returns those.
/// Threads it starts from now on inherit the smaller sets.
pub fn drop_after_start(announces: bool) -> io::Result<Vec<Kept>> {
    let now = sys::current()?;
    // Without CAP_BPF and CAP_SYS_ADMIN in effective (permitted untouched), ask the
    // kernel whether bpf(2) stays usable.
    sys::set(sys::CapabilitySets {
        effective: now.permitted & mask(&kept_after_start(true, announces)),
        ..now
    })?;
    let kept = kept_after_start(sys::bpf_usable(), announces);
    sys::restrict(mask(&kept))?;
    Ok(kept)
}

/// Drops every capability from the calling thread: for threads that need none once
/// started (workers after opening their sockets, the resolver, the metrics endpoint).
pub fn drop_all_in_this_thread() -> io::Result<()> {
    sys::restrict(0)
}

/// The needed capabilities missing from this process's effective set.
pub fn missing() -> Vec<&'static str> {
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    NEEDED
        .iter()
        .filter(|(_, bit)| effective & (1u64 << bit) == 0)
        .map(|(name, _)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_raw_socket_of_health_probes_is_kept_where_bpf_stays_usable() {
        let kept = kept_after_start(true, false);
        assert_eq!(
            kept.iter().map(|k| k.name).collect::<Vec<_>>(),
            ["CAP_NET_RAW"]
        );
        let announcing = kept_after_start(true, true);
        assert_eq!(mask(&announcing), 1 << 12 | 1 << 13);
        let old_kernel = kept_after_start(false, false);
        assert_eq!(mask(&old_kernel), 1 << 13 | 1 << 39);
        for k in &old_kernel {
            assert_eq!(
                NEEDED.iter().find(|(n, _)| *n == k.name).map(|n| n.1),
                Some(k.bit)
            );
        }
    }

    #[test]
    fn root_in_ci_has_everything_and_names_are_stable() {
        let missing = super::missing();
        if nix_is_root() {
            assert!(missing.is_empty(), "root lacks {missing:?}");
        } else {
            assert!(missing.contains(&"CAP_NET_ADMIN"));
        }
    }

    /// Effective uid 0, read from /proc so the test needs no `unsafe`.
    fn nix_is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false)
    }
}
