//! Runtime: how the dataplane maps onto the machine. `topology` discovers NUMA nodes,
//! cores and NIC locality; `plan` decides which core each worker pins to and which
//! (interface, queue) pairs it serves; `worker` is the pinned loop; `dataplane` starts
//! and stops the workers and publishes the snapshots they read. The workers only: the
//! control loop that decides what to publish is `control::supervisor`.

pub mod capabilities;
pub mod dataplane;
pub mod plan;
pub mod topology;
pub mod worker;

pub use dataplane::describe;
