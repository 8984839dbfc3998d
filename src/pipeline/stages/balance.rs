//! `balance`: picks the backend of every classified packet (flow table, SCTP
//! association table, Maglev) and binds NAT sessions.

use crate::config::Forwarding;
use crate::lb::balancer::Decision;
use crate::lb::flow::FlowKey;
use crate::lb::nat::{NatKey, ReplyPath};
use crate::pipeline::stage::{Batch, Context, PacketMeta, Stage, Target};
use crate::pipeline::verdict::{DropReason, Verdict};
use crate::pipeline::WorkerState;
use crate::wire::headers::Headers;

const IPPROTO_SCTP: u8 = 132;

/// Decides a backend per packet. The flow-table buckets of the whole batch are
/// prefetched first, so their cache misses overlap instead of adding up.
pub struct Balance;

impl Stage for Balance {
    fn name(&self) -> &'static str {
        "balance"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, worker: &mut WorkerState) {
        let n = batch.packets.len();
        let tracked = |i: usize| {
            let meta = &batch.meta[i];
            batch.verdicts[i] == Verdict::Pending
                && meta.target == Target::None
                && meta.service.is_some()
                && meta.headers.l4_proto != IPPROTO_SCTP
        };
        for i in (0..n).filter(|&i| tracked(i)) {
            worker.balancer.prefetch(batch.meta[i].hash);
        }
        for i in 0..n {
            if batch.verdicts[i] != Verdict::Pending || batch.meta[i].target != Target::None {
                continue;
            }
            let meta = &mut batch.meta[i];
            let outcome = match meta.service {
                Some(_) => balance(meta, batch.packets[i].data(), ctx, worker),
                None => nat_reply(&meta.headers, ctx),
            };
            match outcome {
                Ok(target) => meta.target = target,
                Err(reason) => batch.verdicts[i] = Verdict::Drop(reason),
            }
        }
    }
}

fn source_mac(frame: &[u8]) -> [u8; 6] {
    frame
        .get(6..12)
        .and_then(|m| <[u8; 6]>::try_from(m).ok())
        .unwrap_or_default()
}

/// Client -> VIP: backend by flow table / association table / Maglev.
fn balance(
    meta: &PacketMeta,
    frame: &[u8],
    ctx: &Context<'_>,
    worker: &mut WorkerState,
) -> Result<Target, DropReason> {
    let h = &meta.headers;
    let Some(service) = meta.service else {
        return Err(DropReason::NoService);
    };
    let decision = if h.l4_proto == IPPROTO_SCTP {
        let start = h.l4_offset as usize;
        let sctp = frame
            .get(start..start + h.l4_len as usize)
            .ok_or(DropReason::Malformed)?;
        worker.balancer.decide_sctp(
            ctx.snapshot,
            &ctx.shared.sctp,
            service,
            h.src,
            h.dst,
            (h.src_port, h.dst_port),
            sctp,
            meta.hash,
            ctx.now_ms,
        )
    } else {
        let key = FlowKey {
            vip: h.dst,
            client: h.src,
            vip_port: h.dst_port,
            client_port: h.src_port,
            proto: h.l4_proto,
        };
        worker.balancer.decide_flow(
            ctx.snapshot,
            service,
            &key,
            meta.hash,
            h.tcp_flags,
            ctx.now_ms,
        )
    };
    let backend = match decision {
        Decision::Backend(id) => id,
        Decision::Drop(reason) => return Err(reason),
    };
    if ctx.snapshot.service(service).forwarding != Forwarding::Nat {
        return Ok(Target::Backend { service, backend });
    }
    let address = ctx
        .snapshot
        .backend(backend)
        .ok_or(DropReason::NoBackend)?
        .address;
    let key = NatKey {
        client: h.src,
        client_port: h.src_port,
        vip: h.dst,
        vip_port: h.dst_port,
        proto: h.l4_proto,
    };
    let reply = ReplyPath {
        port: ctx.ingress,
        // Only NAT sessions need the client's MAC: read it here, not per packet.
        mac: source_mac(frame),
    };
    let binding = ctx
        .shared
        .nat
        .outbound(&key, address, h.dst_port, reply, meta.hash, ctx.now_ms)?;
    if h.tcp_flags & (0x01 | 0x04) != 0 {
        ctx.shared.nat.close(&key, meta.hash, ctx.now_ms);
    }
    Ok(Target::NatOut {
        backend,
        snat: binding.snat,
        snat_port: binding.snat_port,
    })
}

/// Backend -> SNAT address: the session's client side, or a counted drop.
fn nat_reply(h: &Headers, ctx: &Context<'_>) -> Result<Target, DropReason> {
    let (key, reply) = ctx
        .shared
        .nat
        .inbound(h.src, h.src_port, h.dst, h.dst_port, h.l4_proto, ctx.now_ms)
        .ok_or(DropReason::NatNoSession)?;
    Ok(Target::NatBack {
        vip: key.vip,
        vip_port: key.vip_port,
        client: key.client,
        client_port: key.client_port,
        reply_port: reply.port,
        reply_mac: reply.mac,
    })
}
