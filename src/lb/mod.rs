//! Sans-IO balancing decisions: Maglev, the per-worker flow table, the shared SCTP
//! association table, the per-generation snapshot and the balancer. Nothing here
//! touches a socket or reads a clock; `now` is always an argument.

pub mod sctp;
