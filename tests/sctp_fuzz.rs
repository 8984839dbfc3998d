//! Arbitrary bytes never panic the SCTP views or the association table's `decide`.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use xlb::lb::sctp::{SctpAssociationTable, SctpConfig, SctpPath};
use xlb::wire::sctp::{AsconfChunk, ChunkType, InitChunk, Packet, HEADER_LEN};

/// Walks every view over `bytes`, reading every field.
fn read_everything(bytes: &[u8]) {
    let Ok(packet) = Packet::new_checked(bytes) else {
        return;
    };
    let _ = (
        packet.src_port(),
        packet.dst_port(),
        packet.verification_tag(),
    );
    let _ = packet.verify_checksum();
    for chunk in packet.chunks() {
        let Ok(chunk) = chunk else { break };
        let _ = (chunk.flags(), chunk.t_bit(), chunk.value().len());
        match chunk.chunk_type() {
            ChunkType::Init | ChunkType::InitAck => {
                if let Ok(init) = InitChunk::new_checked(chunk) {
                    let _ = (init.initiate_tag(), init.a_rwnd(), init.initial_tsn());
                    let _ = (init.outbound_streams(), init.inbound_streams());
                    init.params().for_each(drop);
                    init.addresses().for_each(drop);
                }
            }
            ChunkType::Asconf => {
                if let Ok(asconf) = AsconfChunk::new_checked(chunk) {
                    let _ = (asconf.serial(), asconf.address());
                    asconf.requests().for_each(drop);
                }
            }
            _ => {}
        }
    }
}

/// A common header followed by chunks of the types the table reads, with arbitrary
/// lengths and bodies, so that the generator reaches past the header.
fn sctp_like() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        prop::sample::select(vec![0u8, 1, 4, 6, 10, 14, 0xC1]),
        any::<u8>(),
        prop::option::of(0u16..80),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(chunk_type, flags, length, body)| {
            // Half the chunks carry their true length, so the walk goes past them.
            let length = length.unwrap_or(body.len() as u16 + 4);
            let mut bytes = vec![chunk_type, flags];
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(&body);
            bytes
        });
    (
        prop::collection::vec(any::<u8>(), HEADER_LEN),
        prop::collection::vec(chunk, 0..4),
    )
        .prop_map(|(mut header, chunks)| {
            if header[4] & 1 == 0 {
                header[4..8].fill(0);
            }
            header.extend(chunks.concat());
            header
        })
}

fn decide_on(table: &SctpAssociationTable, bytes: &[u8], now_ms: u64) {
    let path = SctpPath {
        service: 1,
        src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, (now_ms % 4) as u8)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 18, 100, 20)),
        src_port: 5000,
        dst_port: 38412,
    };
    let _ = table.decide(&path, bytes, now_ms, || Some(3), |backend| backend == 3);
}

proptest! {
    #[test]
    fn views_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        read_everything(&bytes);
    }

    #[test]
    fn views_never_panic_on_sctp_like_bytes(bytes in sctp_like()) {
        read_everything(&bytes);
    }

    #[test]
    fn decide_never_panics(
        packets in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            sctp_like(),
        ], 1..16)
    ) {
        let table = SctpAssociationTable::new(SctpConfig {
            capacity: 4,
            max_addresses: 8,
            linger_ms: 5,
            idle_ms: 10,
            embryonic_ms: 5,
            embryonic_per_source: 2,
        });
        for (now_ms, bytes) in (0u64..).zip(&packets) {
            decide_on(&table, bytes, now_ms);
            if now_ms % 5 == 4 {
                table.expire(now_ms);
            }
        }
        let stats = table.stats();
        prop_assert_eq!(stats.associations, table.len());
        prop_assert_eq!(stats.created - stats.freed, stats.associations as u64);
        prop_assert!(table.len() <= 4);
    }
}
