//! `xlb::config::parse` over arbitrary text; valid tables build a `Snapshot`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::config::parse(data));
