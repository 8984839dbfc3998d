//! IPIP, IP6IP and GUE encapsulation of arbitrary frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::wire::encap(data));
