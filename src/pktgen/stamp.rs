//! The 16-byte stamp at the start of every generated payload (magic, stream, sequence
//! number, send time) and finding it again in a received frame, whatever the device
//! under test did to the headers on the way (MAC rewrite, NAT, DNAT, IPIP/IP6IP6).

use crate::wire::headers::protocol;
use crate::wire::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN};

/// Bytes a stamp takes.
pub const STAMP_LEN: usize = 16;

/// First two bytes of a stamp ("XL"): frames without it are not the generator's.
pub const STAMP_MAGIC: u16 = 0x584c;

const ETHERNET_LEN: usize = 14;
/// EtherType of an 802.1ad service tag (QinQ's outer tag).
const ETHERTYPE_QINQ: u16 = 0x88a8;
const SCTP_DATA: u8 = 0;

/// What the generator writes into each payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Which sender thread (queue) sent it; sequence numbers count per stream.
    pub stream: u16,
    /// Per-stream sequence number, wrapping at 2^32.
    pub seq: u32,
    /// CLOCK_MONOTONIC at send time, in nanoseconds.
    pub sent_ns: u64,
}

impl Stamp {
    /// The stamp's 16 bytes: magic, stream, sequence number, send time, big-endian.
    #[inline]
    pub fn to_bytes(&self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        out[0..2].copy_from_slice(&STAMP_MAGIC.to_be_bytes());
        out[2..4].copy_from_slice(&self.stream.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.sent_ns.to_be_bytes());
        out
    }

    /// Reads a stamp from the start of `payload`, if it holds one.
    #[inline]
    pub fn parse(payload: &[u8]) -> Option<Stamp> {
        let bytes: &[u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
        if u16::from_be_bytes([bytes[0], bytes[1]]) != STAMP_MAGIC {
            return None;
        }
        Some(Stamp {
            stream: u16::from_be_bytes([bytes[2], bytes[3]]),
            seq: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            sent_ns: u64::from_be_bytes(bytes[8..16].try_into().ok()?),
        })
    }
}

/// The stamp of a received Ethernet frame: after at most one VLAN tag, IPv4 or IPv6
/// (possibly inside one IPIP/IP6IP6 layer), then the payload of UDP or TCP or of an
/// SCTP packet whose first chunk is DATA. `None` for anything else; never panics.
pub fn find(frame: &[u8]) -> Option<Stamp> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut at = ETHERNET_LEN;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        at += 4;
    }
    let version = match ethertype {
        ETHERTYPE_IPV4 => 4,
        ETHERTYPE_IPV6 => 6,
        _ => return None,
    };
    find_in_ip(frame.get(at..)?, version, true)
}

fn find_in_ip(packet: &[u8], version: u8, may_decapsulate: bool) -> Option<Stamp> {
    let (protocol, l4) = match version {
        4 => {
            //# RFC 791 §3.1: IHL is the length of the internet header in 32 bit words.
            let header_len = usize::from(*packet.first()? & 0x0f) * 4;
            (*packet.get(9)?, packet.get(header_len.max(20)..)?)
        }
        _ => (*packet.get(6)?, packet.get(40..)?),
    };
    match protocol {
        protocol::IPV4 if may_decapsulate => find_in_ip(l4, 4, false),
        protocol::IPV6 if may_decapsulate => find_in_ip(l4, 6, false),
        protocol::UDP => Stamp::parse(l4.get(8..)?),
        protocol::TCP => {
            //# RFC 9293 §3.1: Data Offset is the number of 32-bit words in the TCP header.
            let header_len = usize::from(*l4.get(12)? >> 4) * 4;
            Stamp::parse(l4.get(header_len.max(20)..)?)
        }
        protocol::SCTP => {
            // Common header (12 bytes), then the first chunk; DATA's value starts
            // after its 16 fixed bytes.
            if *l4.get(12)? != SCTP_DATA {
                return None;
            }
            Stamp::parse(l4.get(12 + 16..)?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frames::{build, FrameSpec, Transport};

    const STAMP: Stamp = Stamp {
        stream: 3,
        seq: 0xdead_beef,
        sent_ns: 0x0102_0304_0506_0708,
    };

    fn frame(transport: Transport<'_>, src: &str, dst: &str) -> Vec<u8> {
        build(&FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            transport,
        })
        .unwrap()
    }

    #[test]
    fn stamp_round_trips_through_bytes() {
        assert_eq!(Stamp::parse(&STAMP.to_bytes()), Some(STAMP));
        let mut wrong_magic = STAMP.to_bytes();
        wrong_magic[0] = 0;
        assert_eq!(Stamp::parse(&wrong_magic), None);
        assert_eq!(Stamp::parse(&STAMP.to_bytes()[..15]), None);
    }

    #[test]
    fn finds_the_stamp_after_udp_and_tcp_over_both_families() {
        let payload = STAMP.to_bytes();
        let udp4 = frame(
            Transport::Udp { payload: &payload },
            "198.18.0.1:1",
            "198.18.0.2:2",
        );
        let tcp6 = frame(
            Transport::Tcp {
                flags: 0x10,
                payload: &payload,
            },
            "[2001:db8::1]:1",
            "[2001:db8::2]:2",
        );
        assert_eq!(find(&udp4), Some(STAMP));
        assert_eq!(find(&tcp6), Some(STAMP));
    }

    #[test]
    fn finds_the_stamp_in_sctp_data_but_not_in_other_chunks() {
        use crate::wire::sctp::{ChunkRepr, PacketRepr};
        let payload = STAMP.to_bytes();
        let data = [ChunkRepr::Data {
            tsn: 1,
            stream_id: 0,
            stream_seq: 0,
            ppid: 0,
            payload: &payload,
        }];
        let cookie = [ChunkRepr::CookieEcho { cookie: &payload }];
        let sctp = |chunks| {
            PacketRepr {
                src_port: 1,
                dst_port: 2,
                verification_tag: 7,
                chunks,
            }
            .to_vec()
        };
        let with_data = sctp(&data);
        let with_cookie = sctp(&cookie);
        let raw = |bytes| Transport::Raw {
            protocol: protocol::SCTP,
            bytes,
        };
        let data_frame = frame(raw(&with_data), "198.18.0.1:0", "198.18.0.2:0");
        let cookie_frame = frame(raw(&with_cookie), "198.18.0.1:0", "198.18.0.2:0");
        assert_eq!(find(&data_frame), Some(STAMP));
        assert_eq!(find(&cookie_frame), None);
    }

    #[test]
    fn finds_the_stamp_inside_ipip() {
        let payload = STAMP.to_bytes();
        let inner = frame(
            Transport::Udp { payload: &payload },
            "198.18.0.1:1",
            "198.18.0.2:2",
        );
        let outer = frame(
            Transport::Raw {
                protocol: protocol::IPV4,
                bytes: &inner[ETHERNET_LEN..],
            },
            "198.18.0.3:0",
            "198.18.1.11:0",
        );
        assert_eq!(find(&outer), Some(STAMP));
    }

    #[test]
    fn truncated_and_foreign_frames_give_none() {
        let payload = STAMP.to_bytes();
        let udp4 = frame(
            Transport::Udp { payload: &payload },
            "198.18.0.1:1",
            "198.18.0.2:2",
        );
        for len in 0..udp4.len() {
            assert_eq!(find(&udp4[..len]), None, "truncated to {len}");
        }
        let mut arp = udp4.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(find(&arp), None);
    }
}
