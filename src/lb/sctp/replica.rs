//! Export and adoption of association records between the nodes of a cluster.
//!
//! Only established associations travel: their backend tag routes every path, and an
//! INIT flood never costs the cluster anything. A node exports the records its own
//! packets changed (COOKIE-ECHO, an address added or removed, a close) and, in slices,
//! its whole table, which refreshes the copies on other nodes before they idle out and
//! repairs whatever a lost datagram missed. Adopting never evicts an established
//! association and never moves one: where the two nodes disagree on the backend, the
//! record already here wins, as packets already went to it.
//!
//! Identities here are this node's [`ServiceId`] and [`BackendId`]; the sync protocol
//! (`control::sync`) carries names, which are the same on every node with the same file.

use core::net::IpAddr;
use core::sync::atomic::Ordering;

use arrayvec::ArrayVec;

use super::{
    Association, Placement, SctpAssociationState, SctpAssociationTable, SctpPath, MAX_ADDRESSES,
};
use crate::lb::snapshot::{BackendId, ServiceId};

/// One established association as nodes exchange it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpReplica {
    /// The service, in this node's numbering.
    pub service: ServiceId,
    /// The backend that owns the association, in this node's numbering.
    pub backend: BackendId,
    /// The client's port.
    pub client_port: u16,
    /// The service port.
    pub server_port: u16,
    /// The client's tag, when the node that saw the INIT knows it.
    pub client_tag: Option<u32>,
    /// The backend's tag: what routes the association's packets.
    pub backend_tag: u32,
    /// The client's addresses.
    pub addresses: ArrayVec<IpAddr, MAX_ADDRESSES>,
    /// An ABORT or SHUTDOWN-COMPLETE was seen: the record lingers, then goes.
    pub closing: bool,
}

/// What adopting one replica did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// A new record now routes the association here.
    Created,
    /// The record here was refreshed (addresses, closing, last seen).
    Refreshed,
    /// The record here names another backend; it was kept.
    Conflict,
    /// The table is full of established associations.
    TableFull,
    /// The replica holds no address.
    Invalid,
}

impl SctpAssociationTable {
    /// Moves up to `max` records changed since the last call into `out`, oldest change
    /// first.
    pub fn export_changed(&self, out: &mut Vec<SctpReplica>, max: usize) {
        let mut control = self.control.lock();
        let take = control.changed.len().min(max);
        let ids: Vec<u32> = control.changed.drain(..take).collect();
        for id in ids {
            let record = &mut control.records[id as usize];
            if !record.changed {
                continue;
            }
            record.changed = false;
            if let Some(replica) = replica_of(record) {
                out.push(replica);
            }
        }
    }

    /// Appends the established records among `records[from..]` to `out`, up to `max`
    /// of them; returns where the next slice starts, 0 once the table was walked.
    pub fn export_slice(&self, from: usize, max: usize, out: &mut Vec<SctpReplica>) -> usize {
        let control = self.control.lock();
        let mut at = from.min(control.records.len());
        let mut taken = 0;
        while at < control.records.len() && taken < max {
            if let Some(replica) = replica_of(&control.records[at]) {
                out.push(replica);
                taken += 1;
            }
            at += 1;
        }
        if at >= control.records.len() {
            0
        } else {
            at
        }
    }

    /// Adopts a record another node exported. The caller has mapped its names to this
    /// node's ids and dropped replicas whose backend does not serve here.
    pub fn adopt(&self, replica: &SctpReplica, now_ms: u64) -> Adopted {
        let Some(&first) = replica.addresses.first() else {
            return Adopted::Invalid;
        };
        let path = SctpPath {
            service: replica.service,
            src: first,
            dst: first,
            src_port: replica.client_port,
            dst_port: replica.server_port,
        };
        let mut control = self.control.lock();
        let key = super::TagKey::new(&path, replica.backend_tag);
        let id = match self.tag_lookup(&key) {
            Some(entry) if entry.backend != replica.backend => return Adopted::Conflict,
            Some(entry) => entry.record,
            None => {
                let created = self.create(
                    &mut control,
                    &path,
                    Placement::PinnedTo(replica.backend),
                    SctpAssociationState::Established,
                    || None,
                    now_ms,
                );
                let Ok(id) = created else {
                    return Adopted::TableFull;
                };
                let record = &mut control.records[id as usize];
                for address in replica.addresses.iter().skip(1) {
                    if record.addresses.len() < self.max_addresses
                        && !record.addresses.contains(address)
                    {
                        record.addresses.push(*address);
                    }
                }
                if let Some(tag) = replica.client_tag {
                    self.set_client_tag(&mut control, id, tag);
                }
                // Another node's association claims only the addresses nobody here holds.
                self.establish(&mut control, id, replica.backend_tag, false);
                self.settle(&mut control, id, replica, now_ms);
                return Adopted::Created;
            }
        };
        // The exporting node saw this association's latest address changes.
        let stale: ArrayVec<IpAddr, MAX_ADDRESSES> = control.records[id as usize]
            .addresses
            .iter()
            .copied()
            .filter(|held| !replica.addresses.contains(held))
            .collect();
        for address in &replica.addresses {
            self.add_address(&mut control, id, *address);
        }
        for address in stale {
            self.remove_address(&mut control, id, address);
        }
        if control.records[id as usize].client_tag.is_none() {
            if let Some(tag) = replica.client_tag {
                self.set_client_tag(&mut control, id, tag);
            }
        }
        self.settle(&mut control, id, replica, now_ms);
        Adopted::Refreshed
    }

    /// The end of an adoption: the record is alive as of now, closing if the replica
    /// is, and not queued to be exported back.
    fn settle(&self, control: &mut super::Control, id: u32, replica: &SctpReplica, now_ms: u64) {
        let until_ms = now_ms.saturating_add(self.linger_ms);
        let record = &mut control.records[id as usize];
        if replica.closing && record.state == SctpAssociationState::Established {
            record.state = SctpAssociationState::Closing { until_ms };
        }
        record.changed = false;
        self.last_seen[id as usize].fetch_max(now_ms, Ordering::Relaxed);
    }
}

/// The replica of an established or closing record; `None` for free and embryonic ones.
fn replica_of(record: &Association) -> Option<SctpReplica> {
    if !record.in_use {
        return None;
    }
    let backend_tag = record.backend_tag?;
    Some(SctpReplica {
        service: record.service,
        backend: record.backend,
        client_port: record.client_port,
        server_port: record.server_port,
        client_tag: record.client_tag,
        backend_tag,
        addresses: record.addresses.clone(),
        closing: matches!(record.state, SctpAssociationState::Closing { .. }),
    })
}
