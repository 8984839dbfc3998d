//! Which Linux capabilities `xlb run` needs and which of them this process lacks, so
//! the error says exactly what to grant instead of failing later with EPERM.

/// Capabilities the dataplane uses, with their bit numbers (linux/capability.h).
const NEEDED: [(&str, u32); 4] = [
    ("CAP_NET_ADMIN", 12), // attach XDP, bind AF_XDP
    ("CAP_NET_RAW", 13),   // AF_XDP sockets, neighbour probes
    ("CAP_IPC_LOCK", 14),  // pin UMEM pages beyond RLIMIT_MEMLOCK
    ("CAP_BPF", 39),       // load the steering program and its maps
];

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
