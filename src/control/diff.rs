//! What a reload from one service table to another would change, per service:
//! backends added, removed and drained, Maglev slots that move, and, given the live
//! SCTP association counts, how many associations end. Shared by `xlb diff` and the
//! reload log, so both report the same thing.

use std::collections::HashMap;
use std::fmt;

use crate::config::{BackendState, ServiceTable};
use crate::lb::snapshot::{DownBackends, ServiceEntry, Snapshot, SnapshotError, StaticResolver};

/// How one service changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDiff {
    /// Service name.
    pub name: String,
    /// Added, removed or kept.
    pub change: Change,
    /// Backends only in the new table.
    pub backends_added: Vec<String>,
    /// Backends only in the old table.
    pub backends_removed: Vec<String>,
    /// Backends that become `drain` in the new table.
    pub backends_drained: Vec<String>,
    /// Maglev slots whose backend differs (all slots for added/removed services).
    pub slots_moved: usize,
    /// Maglev table size.
    pub slots: usize,
    /// Live SCTP associations that end: those of backends (and services) that leave.
    /// Associations of a kept backend stay on it, so none ever moves. `None` when the
    /// live counts are unknown.
    pub associations_ended: Option<u64>,
}

/// Live SCTP associations per (service name, backend name), as a running xlb reports
/// them (`xlb_backend_sctp_associations`).
pub type LiveAssociations = HashMap<(String, String), u64>;

/// Whether a service appears, disappears or stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Only in the new table.
    Added,
    /// Only in the old table.
    Removed,
    /// In both.
    Kept,
}

impl ServiceDiff {
    /// Whether anything about the service changes.
    pub fn is_change(&self) -> bool {
        self.change != Change::Kept
            || self.slots_moved > 0
            || !self.backends_added.is_empty()
            || !self.backends_removed.is_empty()
            || !self.backends_drained.is_empty()
    }
}

impl fmt::Display for ServiceDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let change = match self.change {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Kept if self.is_change() => "changed",
            Change::Kept => "unchanged",
        };
        write!(f, "{}: {change}", self.name)?;
        let pct = 100.0 * self.slots_moved as f64 / self.slots.max(1) as f64;
        write!(
            f,
            "; maglev slots moved {}/{} ({pct:.2}%)",
            self.slots_moved, self.slots
        )?;
        for (label, list) in [
            ("added", &self.backends_added),
            ("removed", &self.backends_removed),
            ("drained", &self.backends_drained),
        ] {
            if !list.is_empty() {
                write!(f, "; backends {label}: {}", list.join(", "))?;
            }
        }
        if let Some(ended) = self.associations_ended {
            write!(f, "; live SCTP associations ended: {ended}")?;
        }
        Ok(())
    }
}

/// Compares two tables service by service (by name), old services first. `live`, when
/// known, counts the associations each backend holds now.
pub fn diff(
    old: &ServiceTable,
    new: &ServiceTable,
    live: Option<&LiveAssociations>,
) -> Result<Vec<ServiceDiff>, SnapshotError> {
    let resolver = StaticResolver {
        port_macs: Vec::new(),
        egress: 0,
    };
    let none = DownBackends::new();
    let before = Snapshot::build(old, 0, None, &resolver, &none)?;
    let after = Snapshot::build(new, 1, Some(&before), &resolver, &none)?;
    // A backend's associations end when its stable id is not in the new generation:
    // it was removed, its address changed, or its service left.
    let ended = |service: &ServiceEntry| {
        live.map(|live| {
            service
                .backend_ids
                .iter()
                .filter(|id| after.backend(**id).is_none())
                .filter_map(|id| before.backend(*id))
                .filter_map(|backend| live.get(&(service.name.clone(), backend.name.clone())))
                .sum()
        })
    };
    let mut out = Vec::new();
    for (index, service) in old.services.iter().enumerate() {
        let old_entry = &before.services()[index];
        let Some(new_index) = new.services.iter().position(|s| s.name == service.name) else {
            out.push(ServiceDiff {
                name: service.name.clone(),
                change: Change::Removed,
                backends_added: Vec::new(),
                backends_removed: service.backends.iter().map(|b| b.name.clone()).collect(),
                backends_drained: Vec::new(),
                slots_moved: old_entry.maglev.size() as usize,
                slots: old_entry.maglev.size() as usize,
                associations_ended: ended(old_entry),
            });
            continue;
        };
        let new_service = &new.services[new_index];
        let names = |s: &crate::config::Service| -> Vec<String> {
            s.backends.iter().map(|b| b.name.clone()).collect()
        };
        let (old_names, new_names) = (names(service), names(new_service));
        out.push(ServiceDiff {
            name: service.name.clone(),
            change: Change::Kept,
            backends_added: new_names
                .iter()
                .filter(|n| !old_names.contains(n))
                .cloned()
                .collect(),
            backends_removed: old_names
                .iter()
                .filter(|n| !new_names.contains(n))
                .cloned()
                .collect(),
            backends_drained: new_service
                .backends
                .iter()
                .filter(|b| b.state == BackendState::Drain)
                .filter(|b| {
                    service
                        .backends
                        .iter()
                        .any(|o| o.name == b.name && o.state != BackendState::Drain)
                })
                .map(|b| b.name.clone())
                .collect(),
            slots_moved: slots_moved(old_entry, &after.services()[new_index]),
            slots: after.services()[new_index].maglev.size() as usize,
            associations_ended: ended(old_entry),
        });
    }
    for (index, service) in new.services.iter().enumerate() {
        if old.services.iter().all(|s| s.name != service.name) {
            let size = after.services()[index].maglev.size() as usize;
            out.push(ServiceDiff {
                name: service.name.clone(),
                change: Change::Added,
                backends_added: service.backends.iter().map(|b| b.name.clone()).collect(),
                backends_removed: Vec::new(),
                backends_drained: Vec::new(),
                slots_moved: size,
                slots: size,
                associations_ended: live.map(|_| 0),
            });
        }
    }
    Ok(out)
}

/// Slots whose backend (by stable id) differs between two generations of a service.
fn slots_moved(old: &ServiceEntry, new: &ServiceEntry) -> usize {
    let owner = |entry: &ServiceEntry, slot: u32| entry.backend_ids.get(slot as usize).copied();
    if old.maglev.size() != new.maglev.size() {
        return new.maglev.size() as usize;
    }
    old.maglev
        .slots()
        .iter()
        .zip(new.maglev.slots())
        .filter(|(a, b)| owner(old, **a) != owner(new, **b))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn table(above: &str, amf: &[(&str, &str)]) -> ServiceTable {
        let backends: String = amf
            .iter()
            .map(|(name, address)| format!("      - {{ name: {name}, address: {address} }}\n"))
            .collect();
        let yaml = format!(
            "version: 1\ndataplane:\n  interfaces: [{{ name: eth0 }}]\n  maglev_table_size: 1009\n\
             services:\n{above}  - name: ngap\n    vips: [198.18.100.20]\n    protocol: sctp\n\
             \x20   ports: [38412]\n    forwarding: dsr\n    backends:\n{backends}"
        );
        config::parse(&yaml, "t.yaml").expect("valid")
    }

    const WEB: &str = "  - name: web\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends:\n      - { name: w1, address: 198.18.1.31 }\n";

    fn live() -> LiveAssociations {
        [("amf-1", 5), ("amf-2", 7), ("amf-3", 11)]
            .into_iter()
            .map(|(backend, n)| (("ngap".to_owned(), backend.to_owned()), n))
            .collect()
    }

    fn ngap(diffs: &[ServiceDiff]) -> &ServiceDiff {
        diffs.iter().find(|d| d.name == "ngap").expect("ngap")
    }

    #[test]
    fn associations_end_only_with_their_backend_or_service() {
        let amf = [
            ("amf-1", "198.18.1.21"),
            ("amf-2", "198.18.1.22"),
            ("amf-3", "198.18.1.23"),
        ];
        let old = table("", &amf);
        // A service added above, nothing else: nothing ends.
        let reordered = diff(&old, &table(WEB, &amf), Some(&live())).unwrap();
        assert_eq!(ngap(&reordered).associations_ended, Some(0));
        assert!(!ngap(&reordered).is_change());
        // amf-1 removed, amf-3 readdressed: theirs end.
        let changed = table(WEB, &[("amf-2", "198.18.1.22"), ("amf-3", "198.18.1.33")]);
        let diffs = diff(&old, &changed, Some(&live())).unwrap();
        assert_eq!(ngap(&diffs).associations_ended, Some(5 + 11));
        assert!(ngap(&diffs)
            .to_string()
            .ends_with("; live SCTP associations ended: 16"));
        // Without live counts the figure is unknown, not zero.
        assert_eq!(
            ngap(&diff(&old, &changed, None).unwrap()).associations_ended,
            None
        );
        // The whole service removed: all of them.
        let mut without = table(WEB, &amf);
        without.services.retain(|s| s.name != "ngap");
        let diffs = diff(&old, &without, Some(&live())).unwrap();
        assert_eq!(ngap(&diffs).change, Change::Removed);
        assert_eq!(ngap(&diffs).associations_ended, Some(5 + 7 + 11));
    }
}
