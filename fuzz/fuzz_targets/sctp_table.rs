//! Sequences of SCTP packets, expiry and clock steps through `SctpAssociationTable`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xlb_fuzz::sctp::table(data));
