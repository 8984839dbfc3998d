//! What a reload from one service table to another would change, per service:
//! backends added, removed and drained, and Maglev slots that move. Shared by
//! `xlb diff` and the reload log, so both report the same thing.

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
}

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
        Ok(())
    }
}

/// Compares two tables service by service (by name), old services first.
pub fn diff(old: &ServiceTable, new: &ServiceTable) -> Result<Vec<ServiceDiff>, SnapshotError> {
    let resolver = StaticResolver {
        port_macs: Vec::new(),
        egress: 0,
    };
    let none = DownBackends::new();
    let before = Snapshot::build(old, 0, None, &resolver, &none)?;
    let after = Snapshot::build(new, 1, Some(&before), &resolver, &none)?;
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
