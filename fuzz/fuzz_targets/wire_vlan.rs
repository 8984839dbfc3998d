//! The 802.1Q tag view and `Repr` over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::wire::vlan(data));
