//! Sans-IO balancing decisions: every table and function here takes `now` as an
//! argument and touches no socket, so it runs in tests and benches with no kernel.

pub mod nat;
