//! Runtime: how the dataplane maps onto the machine. `topology` discovers
//! NUMA nodes, cores and NIC locality; `plan` decides which core each worker
//! pins to and which (interface, queue) pairs it serves.

pub mod plan;
pub mod topology;
