//! `parse`: reads every frame's headers once and computes the flow hash.

use crate::lb::hash::flow_hash;
use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::stage::{Batch, Context, Stage};
use crate::pipeline::WorkerState;
use crate::wire::{self, headers};

/// Parses Ethernet/VLAN/IP/L4 headers into the batch metadata. Fragments carry no
/// ports and cannot be matched to a flow: they are dropped under their own reason.
pub struct Parse;

impl Stage for Parse {
    fn name(&self) -> &'static str {
        "parse"
    }

    fn process(
        &mut self,
        batch: &mut Batch<'_, '_>,
        _ctx: &Context<'_>,
        _worker: &mut WorkerState,
    ) {
        for i in 0..batch.packets.len() {
            if batch.verdicts[i] != Verdict::Pending {
                continue;
            }
            match headers::parse(batch.packets[i].data()) {
                Ok(h) if h.fragment => batch.verdicts[i] = Verdict::Drop(DropReason::IpFragment),
                Ok(h) => {
                    let meta = &mut batch.meta[i];
                    meta.hash = flow_hash(&h.src, &h.dst, h.src_port, h.dst_port, h.l4_proto);
                    meta.headers = h;
                    meta.service = None;
                    meta.target = Default::default();
                }
                Err(wire::Error::Unsupported) => {
                    batch.verdicts[i] = Verdict::Drop(DropReason::UnsupportedProtocol)
                }
                Err(_) => batch.verdicts[i] = Verdict::Drop(DropReason::Malformed),
            }
        }
    }
}
