//! `balance`: picks the backend of every classified packet (flow table, SCTP
//! association table, Maglev) and binds NAT sessions.

use arrayvec::ArrayVec;

use crate::config::Forwarding;
use crate::lb::balancer::Decision;
use crate::lb::flow::FlowKey;
use crate::lb::nat::{NatKey, ReplyPath, TcpSegment};
use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::batch::MAX_BATCH;
use crate::pipeline::stage::{Batch, Context, PacketMeta, Stage, Target};
use crate::pipeline::WorkerState;
use crate::wire::headers::protocol;
use crate::wire::headers::Headers;

/// How many tracked packets ahead of its lookup a flow's bucket is prefetched, and then
/// its entry: far enough to hide a DRAM access behind the packets in between, near enough
/// that the misses in flight fit the CPU's line-fill buffers (DPDK's l3fwd uses 4-8).
const BUCKET_AHEAD: usize = 8;
const ENTRY_AHEAD: usize = 4;

/// Decides a backend per packet. Flow-table packets are prefetched in a software
/// pipeline: packet k's lookup overlaps with packet k+4's entry and packet k+8's bucket
/// loads, so cache misses overlap instead of adding up.
pub struct Balance;

impl Stage for Balance {
    fn name(&self) -> &'static str {
        "balance"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, worker: &mut WorkerState) {
        let n = batch.packets.len();
        // (index, flow hash) of the packets that look up the flow table, in batch order.
        let tracked: ArrayVec<(usize, u64), MAX_BATCH> = (0..n)
            .filter(|&i| {
                let meta = &batch.meta[i];
                batch.verdicts[i] == Verdict::Pending
                    && meta.target == Target::None
                    && meta.service.is_some()
                    && meta.headers.l4_proto != protocol::SCTP
            })
            .map(|i| (i, batch.meta[i].hash))
            .collect();
        let hash_of = |k: usize| tracked.get(k).map(|&(_, hash)| hash);
        (0..BUCKET_AHEAD)
            .filter_map(hash_of)
            .for_each(|h| worker.balancer.prefetch(h));
        (0..ENTRY_AHEAD)
            .filter_map(hash_of)
            .for_each(|h| worker.balancer.prefetch_entry(h));
        let mut next_tracked = 0;
        for i in 0..n {
            if tracked
                .get(next_tracked)
                .is_some_and(|&(index, _)| index == i)
            {
                if let Some(hash) = hash_of(next_tracked + BUCKET_AHEAD) {
                    worker.balancer.prefetch(hash);
                }
                if let Some(hash) = hash_of(next_tracked + ENTRY_AHEAD) {
                    worker.balancer.prefetch_entry(hash);
                }
                next_tracked += 1;
            }
            if batch.verdicts[i] != Verdict::Pending || batch.meta[i].target != Target::None {
                continue;
            }
            let meta = &mut batch.meta[i];
            let outcome = match meta.service {
                Some(_) => balance(meta, batch.packets[i].data(), ctx, worker),
                None => nat_reply(&meta.headers, batch.packets[i].data(), ctx),
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

/// TCP FIN and RST: the segments that may end a NAT session.
const TCP_FIN_OR_RST: u8 = 0x01 | 0x04;

/// The TCP header fields of a NAT packet, read only for TCP (`None` otherwise).
fn tcp_segment(h: &Headers, frame: &[u8]) -> Option<TcpSegment> {
    if h.l4_proto != protocol::TCP {
        return None;
    }
    let start = h.l4_offset as usize;
    TcpSegment::parse(frame.get(start..start + h.l4_len as usize)?)
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
    let nat = ctx.snapshot.service(service).forwarding == Forwarding::Nat;
    let nat_key = NatKey {
        client: h.src,
        client_port: h.src_port,
        vip: h.dst,
        vip_port: h.dst_port,
        proto: h.l4_proto,
    };
    // A client's FIN or RST meets its NAT session before anything else, so an
    // out-of-window RST is dropped having changed no state, the flow table's included.
    if nat && h.tcp_flags & TCP_FIN_OR_RST != 0 {
        if let Some(segment) = tcp_segment(h, frame) {
            ctx.shared
                .nat
                .client_segment(&nat_key, meta.hash, &segment, ctx.now_ms)?;
        }
    }
    let decision = if h.l4_proto == protocol::SCTP {
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
    if !nat {
        return Ok(Target::Backend { service, backend });
    }
    let address = ctx
        .snapshot
        .backend(backend)
        .ok_or(DropReason::NoBackend)?
        .address;
    let reply = ReplyPath {
        port: ctx.ingress,
        // Only NAT sessions need the client's MAC: read it here, not per packet.
        mac: source_mac(frame),
    };
    let binding = ctx
        .shared
        .nat
        .outbound(&nat_key, address, h.dst_port, reply, meta.hash, ctx.now_ms)?;
    Ok(Target::NatOut {
        backend,
        snat: binding.snat,
        snat_port: binding.snat_port,
    })
}

/// Backend -> SNAT address: the session's client side, or a counted drop. A TCP
/// segment's ACK, window and FIN/RST are followed by the session.
fn nat_reply(h: &Headers, frame: &[u8], ctx: &Context<'_>) -> Result<Target, DropReason> {
    let segment = tcp_segment(h, frame);
    let (key, reply) = ctx
        .shared
        .nat
        .inbound(
            h.src,
            h.src_port,
            h.dst,
            h.dst_port,
            h.l4_proto,
            segment.as_ref(),
            ctx.now_ms,
        )
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
