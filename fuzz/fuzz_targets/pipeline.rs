//! Sequences of frames through the `l4lb` pipeline with its state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::pipeline::run(data));
