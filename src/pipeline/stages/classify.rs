//! `classify`: VIP:port:protocol -> service, or a reply to one of our SNAT addresses.

use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::stage::{Batch, Context, Stage, Target};
use crate::pipeline::WorkerState;

/// Finds each packet's service; packets for no service are dropped and counted.
pub struct Classify;

impl Stage for Classify {
    fn name(&self) -> &'static str {
        "classify"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, _worker: &mut WorkerState) {
        for i in 0..batch.packets.len() {
            let meta = &mut batch.meta[i];
            if batch.verdicts[i] != Verdict::Pending || meta.target != Target::None {
                continue;
            }
            let h = &meta.headers;
            meta.service = ctx.snapshot.service_for(h.dst, h.dst_port, h.l4_proto);
            if meta.service.is_none() && !ctx.shared.nat.is_snat_address(&h.dst) {
                batch.verdicts[i] = Verdict::Drop(DropReason::NoService);
            }
        }
    }
}
