//! Baseline stages for benchmarks: `macswap` (bounce every frame back, DPDK testpmd's
//! macswap) and `rxdrop` (drop everything). They bound what the balancer could reach.

use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::stage::{Batch, Context, Stage};
use crate::pipeline::WorkerState;

/// Swaps source and destination MAC and sends the frame back out of its port.
pub struct MacSwap;

impl Stage for MacSwap {
    fn name(&self) -> &'static str {
        "macswap"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, _worker: &mut WorkerState) {
        for (packet, verdict) in batch.packets.iter_mut().zip(batch.verdicts.iter_mut()) {
            if *verdict != Verdict::Pending {
                continue;
            }
            let frame = packet.data_mut();
            if frame.len() < 12 {
                *verdict = Verdict::Drop(DropReason::Malformed);
                continue;
            }
            let (dst, src) = frame.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
            *verdict = Verdict::Forward(ctx.ingress);
        }
    }
}

/// Drops every frame, counted as `baseline`.
pub struct RxDrop;

impl Stage for RxDrop {
    fn name(&self) -> &'static str {
        "rxdrop"
    }

    fn process(
        &mut self,
        batch: &mut Batch<'_, '_>,
        _ctx: &Context<'_>,
        _worker: &mut WorkerState,
    ) {
        for verdict in batch.verdicts.iter_mut() {
            if *verdict == Verdict::Pending {
                *verdict = Verdict::Drop(DropReason::Baseline);
            }
        }
    }
}
