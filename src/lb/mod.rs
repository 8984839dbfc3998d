//! Sans-IO balancing decisions: the hashes instances agree on, Maglev, the per-worker
//! flow table, the shared SCTP association and NAT session tables, the per-generation
//! snapshot, the balancer, and the packet verdicts with their drop reasons. Nothing
//! here touches a socket or reads a clock; `now` is always an argument, so it all runs
//! in tests and benches with no kernel.

pub mod balancer;
pub mod flow;
pub mod hash;
pub mod maglev;
pub mod nat;
pub mod sctp;
pub mod snapshot;
pub mod verdict;
