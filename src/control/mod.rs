//! Control plane: work done off the per-packet path. `supervisor` is `xlb run`'s one
//! control loop above the workers (reload, health, next hops, sweeps, metrics), built
//! from the other modules: `neighbor` and `resolver` find
//! backends' next hops through the kernel's routing and neighbour tables; `diff` says
//! what a reload changes; `explain` answers which backend a flow maps to; `health`
//! probes backends and tracks which are down; `stall` notices a worker that stops
//! making progress; `metrics` serves the Prometheus endpoint and `stats` is the live
//! terminal view of it; `announce` holds the VIPs the node's routing daemon announces
//! while this node can serve them.

pub mod announce;
pub mod diff;
pub mod explain;
pub mod health;
pub mod metrics;
pub mod neighbor;
pub mod notify;
pub mod resolver;
pub mod stall;
pub mod stats;
pub mod supervisor;
pub mod sync;
