//! SCTP views (written by the SCTP owner).
