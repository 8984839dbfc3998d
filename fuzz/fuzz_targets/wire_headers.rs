//! `xlb::wire::headers::parse` and `parse_icmp_error` over arbitrary frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::wire::headers(data));
