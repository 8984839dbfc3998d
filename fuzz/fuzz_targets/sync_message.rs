//! The SCTP sync protocol's datagrams: arbitrary bytes, and records round-tripped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::sync::message(data));
