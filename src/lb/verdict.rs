//! What was decided for each packet, and why a packet was dropped. The balancer's
//! decisions and the pipeline's verdicts share these types, so they live at the
//! balancer's layer.
//!
//! Drop reasons are one `#[repr(u8)]` enum so that per-worker counters are a plain
//! array indexed by reason (VPP's `foreach_lb_error`, Katran's stats arrays).

/// Index of a port (interface) in the dataplane's `interfaces` list.
pub type PortId = u8;

/// Why a packet was dropped. Every drop is counted under exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The frame is shorter than its headers claim, or a header is inconsistent.
    Malformed,
    /// Neither IPv4, IPv6 nor ARP.
    UnsupportedProtocol,
    /// An IP fragment: it carries no ports, so it cannot be matched to a flow.
    IpFragment,
    /// Destination is not a configured VIP:port:protocol.
    NoService,
    /// The client's address is outside the service's `source_ranges`.
    AclDenied,
    /// The service has no backend that can take traffic.
    NoBackend,
    /// The chosen backend's next-hop MAC address is not known yet.
    BackendUnresolved,
    /// The frame would not fit in its buffer after encapsulation.
    TooBig,
    /// The packet would exceed the egress MTU and may not be answered with an ICMP error
    /// (IPv4 without DF, an ICMP error itself, IPv6 needing an MTU below 1280).
    MtuExceeded,
    /// A non-INIT SCTP packet whose association is unknown (never hashed: it would
    /// make the wrong backend abort the association).
    SctpUnknownAssociation,
    /// An SCTP packet whose chunks cannot be walked.
    SctpMalformed,
    /// The SCTP association table has no room for a new association.
    SctpTableFull,
    /// The association's backend left the service.
    SctpBackendGone,
    /// An SCTP chunk that would change balancer state (INIT, COOKIE-ECHO, ASCONF, ABORT,
    /// SHUTDOWN-COMPLETE) failed its CRC32c.
    SctpBadChecksum,
    /// A state-changing SCTP chunk from an address that is not one of its association's.
    SctpForeignAddress,
    /// An SCTP INIT from a client address that already has its share of half-open
    /// associations (INIT seen, no COOKIE-ECHO yet).
    SctpInitLimit,
    /// No free SNAT port for a new NAT session.
    NatPortsExhausted,
    /// A packet to an SNAT address that matches no NAT session.
    NatNoSession,
    /// A client's TCP RST whose sequence number lies outside the window the backend
    /// announced: a blind reset, which must not end the NAT session (RFC 5961 §3).
    NatRstOutOfWindow,
    /// An ICMP error that refers to no flow xlb balances.
    IcmpUnmatched,
    /// ARP, NDP or ICMP that xlb does not answer.
    ControlIgnored,
    /// Dropped on purpose by the `rxdrop` baseline pipeline.
    Baseline,
}

impl DropReason {
    /// Every reason, in counter-array order.
    pub const ALL: [DropReason; 22] = [
        DropReason::Malformed,
        DropReason::UnsupportedProtocol,
        DropReason::IpFragment,
        DropReason::NoService,
        DropReason::AclDenied,
        DropReason::NoBackend,
        DropReason::BackendUnresolved,
        DropReason::TooBig,
        DropReason::MtuExceeded,
        DropReason::SctpUnknownAssociation,
        DropReason::SctpMalformed,
        DropReason::SctpTableFull,
        DropReason::SctpBackendGone,
        DropReason::SctpBadChecksum,
        DropReason::SctpForeignAddress,
        DropReason::SctpInitLimit,
        DropReason::NatPortsExhausted,
        DropReason::NatNoSession,
        DropReason::NatRstOutOfWindow,
        DropReason::IcmpUnmatched,
        DropReason::ControlIgnored,
        DropReason::Baseline,
    ];

    /// Number of reasons: the length of a per-worker counter array.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name used in metrics labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::IpFragment => "ip_fragment",
            DropReason::NoService => "no_service",
            DropReason::AclDenied => "acl_denied",
            DropReason::NoBackend => "no_backend",
            DropReason::BackendUnresolved => "backend_unresolved",
            DropReason::TooBig => "too_big",
            DropReason::MtuExceeded => "mtu_exceeded",
            DropReason::SctpUnknownAssociation => "sctp_unknown_association",
            DropReason::SctpMalformed => "sctp_malformed",
            DropReason::SctpTableFull => "sctp_table_full",
            DropReason::SctpBackendGone => "sctp_backend_gone",
            DropReason::SctpBadChecksum => "sctp_bad_checksum",
            DropReason::SctpForeignAddress => "sctp_foreign_address",
            DropReason::SctpInitLimit => "sctp_init_limit",
            DropReason::NatPortsExhausted => "nat_ports_exhausted",
            DropReason::NatNoSession => "nat_no_session",
            DropReason::NatRstOutOfWindow => "nat_rst_out_of_window",
            DropReason::IcmpUnmatched => "icmp_unmatched",
            DropReason::ControlIgnored => "control_ignored",
            DropReason::Baseline => "baseline",
        }
    }
}

/// The fate of one packet in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No stage has decided yet; later stages still look at the packet.
    Pending,
    /// Transmit the (possibly rewritten) frame on this port.
    Forward(PortId),
    /// Drop, counted under the reason.
    Drop(DropReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{} out of order", reason.name());
        }
    }
}
