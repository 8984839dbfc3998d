//! The cargo-fuzz targets of `fuzz/` as ordinary tests, on stable: every committed seed
//! (`fuzz/corpus/TARGET/*`) and every input a fuzz run found failing goes through the same
//! check the target runs. The checks live in `fuzz/src/` and are included here, so they
//! compile, and their seeds keep passing, with every `cargo test`.
//!
//! Add a crash as its own test below, input in hex, with the panic it gave and the target
//! that found it (`scripts/fuzz.sh` names the artifact; shrink it first with
//! `cargo +nightly fuzz tmin TARGET ARTIFACT`).

use std::fs;
use std::path::Path;

// The encoders are for writing seeds (`fuzz/seeds.rs`); the tests only decode.
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod xlb_fuzz;

/// Runs `check` on every seed of `target`; there must be some.
fn replay_corpus(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{}: no seeds", dir.display());
    for seed in seeds {
        let bytes = fs::read(&seed).expect("read a seed");
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{target}: seed {} fails", seed.display());
    }
}

/// Bytes from a hex string (whitespace ignored), for crash inputs.
#[allow(dead_code)]
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn wire_headers_seeds() {
    replay_corpus("wire_headers", xlb_fuzz::wire::headers);
}

#[test]
fn wire_sctp_seeds() {
    replay_corpus("wire_sctp", xlb_fuzz::wire::sctp);
}

#[test]
fn wire_encap_seeds() {
    replay_corpus("wire_encap", xlb_fuzz::wire::encap);
}

#[test]
fn wire_vlan_seeds() {
    replay_corpus("wire_vlan", xlb_fuzz::wire::vlan);
}

#[test]
fn wire_reply_seeds() {
    replay_corpus("wire_reply", xlb_fuzz::wire::reply);
}

#[test]
fn sync_message_seeds() {
    replay_corpus("sync_message", xlb_fuzz::sync::message);
}

#[test]
fn sctp_table_seeds() {
    replay_corpus("sctp_table", xlb_fuzz::sctp::table);
}

#[test]
fn config_yaml_seeds() {
    replay_corpus("config_yaml", xlb_fuzz::config::parse);
}

#[test]
fn pipeline_seeds() {
    replay_corpus("pipeline", xlb_fuzz::pipeline::run);
}

/// The seed encoders and the targets' decoders agree: what `fuzz/seeds.rs` meant is what
/// the targets read.
#[test]
fn seed_formats_round_trip() {
    use xlb_fuzz::sctp::{Checksum, ChunkSpec, SctpSpec};
    use xlb_fuzz::Input;
    let spec = SctpSpec {
        checksum: Checksum::Corrupt,
        ..SctpSpec::new(
            0x1234_5678,
            vec![
                ChunkSpec::Init {
                    initiate_tag: 0xb0b0,
                    addresses: vec!["192.0.2.1".parse().unwrap(), "2001:db8::9".parse().unwrap()],
                },
                ChunkSpec::Abort { reflected: true },
            ],
        )
    };
    let mut bytes = Vec::new();
    spec.encode(&mut bytes);
    assert_eq!(SctpSpec::decode(&mut Input::new(&bytes)), spec);
    xlb_fuzz::wire::check_sctp_roundtrip(&spec, &spec.to_bytes());
}

/// wire_reply found it: an ICMPv4 echo request whose message is all zero but for its type
/// and checksum. The reply's incrementally updated checksum came out 0x0000, which a
/// receiver rejects, instead of 0xffff ("ICMP checksum of the echo reply", left 0, right
/// 65535). The echo reply's checksum is now computed afresh.
#[test]
fn an_all_zero_echo_request_gets_a_valid_reply_checksum() {
    xlb_fuzz::wire::reply(&hex("2002000000000202009d00001008004500001c0000400040014aa8c612040ac612640a0800f7ff00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000ffffffffffffffffffffffffff1c0000400040014aa8c612040ac612640a08fffffd00010001"));
}
