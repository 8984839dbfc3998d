//! ARP, ICMP echo and NDP replies to arbitrary frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::wire::reply(data));
