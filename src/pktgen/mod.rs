//! Traffic generation: frames built from a description, for `xlb explain`, tests,
//! benches and the packet generator.

pub mod frames;
