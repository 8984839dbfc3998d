//! The SCTP views over arbitrary bytes; packets built with `PacketRepr` read back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::wire::sctp(data));
