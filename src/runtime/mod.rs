//! Runtime: how the dataplane maps onto the machine. `topology` discovers NUMA nodes,
//! cores and NIC locality; `plan` decides which core each worker pins to and which
//! (interface, queue) pairs it serves; `worker` is the pinned loop; `dataplane` starts,
//! reloads and stops it all.

pub mod capabilities;
pub mod dataplane;
pub mod plan;
pub mod topology;
pub mod worker;

pub use dataplane::describe;
