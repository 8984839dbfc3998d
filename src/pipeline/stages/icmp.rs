//! `icmp`: answers echo requests to VIPs and sends ICMP errors about a VIP flow
//! ("fragmentation needed", "packet too big", ...) to that flow's backend, which is
//! the host that sent the oversized packet and must lower its path MTU.

use crate::lb::flow::FlowKey;
use crate::lb::hash::flow_hash;
use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::stage::{Batch, Context, Stage, Target};
use crate::pipeline::WorkerState;
use crate::wire::headers::{self, protocol, Headers, L3};
use crate::wire::reply;

const ICMPV4_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

/// Echo replies for VIPs, and ICMP errors steered to the backend of the quoted flow.
pub struct Icmp;

impl Stage for Icmp {
    fn name(&self) -> &'static str {
        "icmp"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, worker: &mut WorkerState) {
        for i in 0..batch.packets.len() {
            if batch.verdicts[i] != Verdict::Pending {
                continue;
            }
            let h = batch.meta[i].headers;
            let is_icmp = matches!(
                (h.l3, h.l4_proto),
                (L3::Ipv4, protocol::ICMP) | (L3::Ipv6, protocol::ICMPV6)
            );
            if !is_icmp {
                continue;
            }
            let packet = &mut batch.packets[i];
            let icmp_type = packet
                .data()
                .get(h.l4_offset as usize)
                .copied()
                .unwrap_or(0);
            let is_echo = matches!(
                (h.l3, icmp_type),
                (L3::Ipv4, ICMPV4_ECHO_REQUEST) | (L3::Ipv6, ICMPV6_ECHO_REQUEST)
            );
            // Echo is answered only for our own addresses; the frame is rewritten then.
            let echo = is_echo.then(|| {
                if !ctx.snapshot.is_vip(&h.dst) {
                    Err(crate::wire::Error::Unsupported)
                } else if h.l3 == L3::Ipv4 {
                    reply::icmpv4_echo_reply(packet.buf, &h)
                } else {
                    reply::icmpv6_echo_reply(packet.buf, &h)
                }
            });
            batch.verdicts[i] = match echo {
                Some(Ok(len)) => {
                    packet.len = len;
                    Verdict::Forward(ctx.ingress)
                }
                Some(Err(_)) => Verdict::Drop(DropReason::ControlIgnored),
                None => match quoted_flow_target(packet.data(), &h, ctx, worker) {
                    Some((hash, target)) => {
                        batch.meta[i].hash = hash;
                        batch.meta[i].target = target;
                        Verdict::Pending
                    }
                    None => Verdict::Drop(DropReason::IcmpUnmatched),
                },
            };
        }
    }
}

/// The backend of the flow quoted in an ICMP error: the quoted packet went from the
/// VIP (sent by a backend, DSR) to the client. SCTP errors follow the association
/// (by the quoted client tag), whichever of its paths they quote; other protocols
/// follow the flow table or Maglev.
fn quoted_flow_target(
    frame: &[u8],
    h: &Headers,
    ctx: &Context<'_>,
    worker: &mut WorkerState,
) -> Option<(u64, Target)> {
    let quoted = headers::parse_icmp_error(frame, h).ok()?;
    let service = ctx
        .snapshot
        .service_for(quoted.src, quoted.src_port, quoted.l4_proto)?;
    let hash = flow_hash(
        &quoted.dst,
        &quoted.src,
        quoted.dst_port,
        quoted.src_port,
        quoted.l4_proto,
    );
    if quoted.l4_proto == protocol::SCTP {
        let backend = ctx.shared.sctp.backend_for_error(
            ctx.snapshot.service(service).id,
            quoted.dst,
            quoted.dst_port,
            quoted.src_port,
            quoted.sctp_tag?,
        )?;
        return ctx
            .snapshot
            .keeps_flow(service, backend)
            .then_some((hash, Target::Backend { service, backend }));
    }
    let key = FlowKey {
        vip: quoted.src,
        client: quoted.dst,
        vip_port: quoted.src_port,
        client_port: quoted.dst_port,
        proto: quoted.l4_proto,
    };
    let backend = worker
        .balancer
        .peek_flow(ctx.snapshot, service, &key, hash, ctx.now_ms)?;
    Some((hash, Target::Backend { service, backend }))
}
