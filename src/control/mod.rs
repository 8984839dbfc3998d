//! Control plane: work done off the per-packet path. `neighbor` resolves
//! backend addresses to egress interface and MAC addresses through the
//! kernel's routing and neighbour tables.

pub mod neighbor;
