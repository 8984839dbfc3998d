//! The `unsafe` system primitives below every layer: tables on transparent huge pages
//! (`huge_pages`), the CPU's prefetch hint (`prefetch`), a thread's Linux capability
//! sets (`capabilities`), a send-only `AF_PACKET` socket (`packet`, for health probes
//! through the forwarding path) and a TUN device that dies with its process (`tun`,
//! which holds announced VIPs). They live here, not in
//! `xsk`, so the sans-IO balancer can use them without depending on the AF_XDP layer;
//! `sys` and `xsk` are the only homes of `unsafe`.

pub mod capabilities;
mod huge_pages;
mod packet;
mod prefetch;
mod tun;

pub use huge_pages::HugePageSlice;
pub use packet::PacketSender;
pub use prefetch::prefetch;
pub use tun::TunDevice;
