//! xlb: a userspace AF_XDP L4 load-balancing dataplane.
//!
//! The crate is layered so the architecture reads from the folder tree, each layer
//! using only those below it (docs/architecture.md §2, checked by tests/layering.rs):
//! `sys` (unsafe primitives) <- `wire` (packet views) <- `config` (service table) <-
//! `lb` (sans-IO balancing decisions) <- `pipeline` (batched stages over frames) <-
//! `xsk` (AF_XDP ports) <- `runtime` (pinned workers) <- `control` (the supervisor:
//! reload, health, metrics, sweeps) and `pktgen` (the traffic generator).
#![deny(missing_docs)]

pub mod config;
pub mod control;
pub mod lb;
pub mod pipeline;
pub mod pktgen;
pub mod runtime;
pub mod sys;
pub mod wire;
pub mod xsk;
