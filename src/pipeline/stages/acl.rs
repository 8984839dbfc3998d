//! `acl`: a service admits only clients inside its `source_ranges`.

use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::stage::{Batch, Context, Stage};
use crate::pipeline::WorkerState;

/// Drops packets whose source is outside the service's `source_ranges`.
pub struct Acl;

impl Stage for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, _worker: &mut WorkerState) {
        for i in 0..batch.packets.len() {
            if batch.verdicts[i] != Verdict::Pending {
                continue;
            }
            let meta = &batch.meta[i];
            if let Some(service) = meta.service {
                if !ctx.snapshot.service(service).admits(&meta.headers.src) {
                    batch.verdicts[i] = Verdict::Drop(DropReason::AclDenied);
                }
            }
        }
    }
}
