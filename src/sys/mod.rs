//! The `unsafe` system primitives below every layer: tables on transparent huge pages
//! (`huge_pages`), the CPU's prefetch hint (`prefetch`) and a thread's Linux capability
//! sets (`capabilities`). They live here, not in
//! `xsk`, so the sans-IO balancer can use them without depending on the AF_XDP layer;
//! `sys` and `xsk` are the only homes of `unsafe`.

pub mod capabilities;
mod huge_pages;
mod prefetch;

pub use huge_pages::HugePageSlice;
pub use prefetch::prefetch;
