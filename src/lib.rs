//! xlb: a userspace AF_XDP L4 load-balancing dataplane.
//!
//! The crate is layered so the architecture reads from the folder tree:
//! `wire` (packet views) -> `config` (service table) -> `lb` (sans-IO balancing
//! decisions) -> `pipeline` (batched stages over frames) -> `xsk` (AF_XDP ports)
//! -> `runtime` (pinned workers) -> `control` (reload, health, metrics).
#![deny(missing_docs)]

/// The allocator of every xlb binary, test and bench. The control plane rebuilds Maglev tables
/// (256 KiB each at the default size) on reloads and health changes; glibc's malloc handed the
/// freed memory back to the kernel, so every build page-faulted its table back in (about 85
/// faults, 0.1 ms of a 1 ms build, several times that on a busy host). mimalloc keeps freed pages
/// for the next build. The dataplane does not allocate per packet, so it is not affected.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod config;
pub mod control;
pub mod lb;
pub mod pipeline;
pub mod pktgen;
pub mod runtime;
pub mod sys;
pub mod wire;
pub mod xsk;
