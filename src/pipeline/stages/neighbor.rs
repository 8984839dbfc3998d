//! `neighbor`: answers ARP requests and IPv6 Neighbor Solicitations for VIPs, so
//! routers and clients on the segment can reach a VIP with no host holding it.

use std::net::IpAddr;

use crate::lb::verdict::{DropReason, Verdict};
use crate::pipeline::stage::{Batch, Context, Stage};
use crate::pipeline::WorkerState;
use crate::wire::headers::protocol;
use crate::wire::headers::L3;
use crate::wire::reply;

/// Replies to ARP/NDP for our VIPs on the port the question came in on.
pub struct Neighbor;

impl Stage for Neighbor {
    fn name(&self) -> &'static str {
        "neighbor"
    }

    fn process(&mut self, batch: &mut Batch<'_, '_>, ctx: &Context<'_>, _worker: &mut WorkerState) {
        let our_mac = ctx.snapshot.port_mac(ctx.ingress);
        for i in 0..batch.packets.len() {
            if batch.verdicts[i] != Verdict::Pending {
                continue;
            }
            let h = batch.meta[i].headers;
            let packet = &mut batch.packets[i];
            let answered = match h.l3 {
                L3::Arp => {
                    let asks_for_vip = reply::arp_request_target(packet.data(), &h)
                        .is_some_and(|target| ctx.snapshot.is_vip(&IpAddr::V4(target)));
                    Some(
                        asks_for_vip
                            && reply::arp_reply(packet.buf, our_mac)
                                .map(|len| packet.len = len)
                                .is_ok(),
                    )
                }
                L3::Ipv6 if h.l4_proto == protocol::ICMPV6 => {
                    match reply::ndp_solicit_target(packet.data(), &h) {
                        Some(target) => Some(
                            ctx.snapshot.is_vip(&IpAddr::V6(target))
                                && reply::ndp_advert(packet.buf, &h, our_mac)
                                    .map(|len| packet.len = len)
                                    .is_ok(),
                        ),
                        None => None,
                    }
                }
                _ => None,
            };
            match answered {
                Some(true) => batch.verdicts[i] = Verdict::Forward(ctx.ingress),
                Some(false) => batch.verdicts[i] = Verdict::Drop(DropReason::ControlIgnored),
                None => {}
            }
        }
    }
}
