//! Sans-IO balancing decisions: the hashes instances agree on, Maglev tables, and the per-worker
//! flow table. Nothing here touches a socket or reads a clock; callers pass `now`.

pub mod flow;
pub mod hash;
pub mod maglev;
