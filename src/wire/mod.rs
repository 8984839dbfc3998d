//! Zero-copy packet views and emitters.
//!
//! Contract: every view has `new_unchecked`, `check_len` and `new_checked`; once
//! `check_len` has passed, no accessor panics, whatever the bytes say. Ethernet, ARP,
//! IPv4, IPv6, ICMP, TCP and UDP come from smoltcp's `wire`; SCTP and encapsulation
//! are written here in the same style.
//!
//! Functions that take a whole frame (`headers::parse`, `encap::*`, `reply::*`) never
//! panic either: any byte string gives a value or an [`Error`]. `frames` builds whole
//! frames for the generator, tests, benches and `xlb explain`.

use core::fmt;

pub mod checksum;
pub mod encap;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod frames;
pub mod headers;
pub mod reply;
pub mod sctp;
pub mod vlan;

pub use headers::{parse, parse_icmp_error, Headers, QuotedFlow, L3};

/// smoltcp's views and constants for the formats xlb reads but does not own.
pub use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Message,
    Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6ExtHeader,
    Ipv6FragmentHeader, Ipv6Packet, TcpPacket, UdpPacket, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN, TCP_HEADER_LEN, UDP_HEADER_LEN,
};

/// EtherType of an 802.1Q VLAN tag (IEEE 802.1Q §9.5).
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Shortest Ethernet frame on the wire without its FCS; replies are zero-padded to it.
pub const ETHERNET_MIN_FRAME_LEN: usize = 60;

/// Why bytes could not be read as a packet. Small on purpose (smoltcp's `wire::Error`):
/// the fast path only needs to know that a frame is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the header or a length field says it should.
    Truncated,
    /// A field holds a value the format forbids (e.g. a chunk length below 4).
    Malformed,
    /// A valid packet of a kind xlb does not handle.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for Error {}

/// smoltcp's `check_len` fails only on short buffers or lengths past the buffer.
impl From<smoltcp::wire::Error> for Error {
    fn from(_: smoltcp::wire::Error) -> Self {
        Error::Truncated
    }
}

/// Result of reading packet bytes.
pub type Result<T> = core::result::Result<T, Error>;
