//! Zero-copy packet views and emitters.
//!
//! Contract: every view has `new_unchecked`, `check_len` and `new_checked`; once
//! `check_len` has passed, no accessor panics, whatever the bytes say. Ethernet, ARP,
//! IPv4, IPv6, ICMP, TCP and UDP come from smoltcp's `wire`; SCTP and encapsulation
//! are written here in the same style.

use core::fmt;

pub mod sctp;

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

/// Result of reading packet bytes.
pub type Result<T> = core::result::Result<T, Error>;
