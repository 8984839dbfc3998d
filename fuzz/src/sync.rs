//! The SCTP sync protocol's datagrams (`xlb::control::sync::message`): any bytes decode to
//! a refusal or to records, never a panic; records built from the input survive an
//! encode-decode round trip whatever datagrams they take; and a datagram encoded under
//! one key never decodes under another.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xlb::control::sync::message::{self, Kind, Record, SyncKey};

use super::Input;

/// The key every fuzz run (and the datagram seed) uses, and another cluster's.
pub const SECRET: &[u8] = b"xlb fuzz: the cluster secret....";
const OTHER_SECRET: &[u8] = b"xlb fuzz: another cluster secret";

/// `data`: a mode byte; 0 decodes the rest as a datagram, anything else reads records
/// from it (see [`records`]) and round-trips them.
pub fn message(data: &[u8]) {
    let mut input = Input::new(data);
    let key = SyncKey::derive(SECRET);
    if input.u8() == 0 {
        let _ = message::decode(&key, input.rest());
        return;
    }
    let records = records(&mut input);
    let mut sequence = u64::from(input.u32());
    let first = sequence;
    let datagrams = message::encode(&key, Kind::Records, 7, 9, &mut sequence, &records);
    assert_eq!(
        sequence - first,
        datagrams.len() as u64,
        "one sequence number per datagram"
    );
    let mut decoded = Vec::new();
    for datagram in &datagrams {
        assert!(datagram.len() <= message::DATAGRAM_MAX);
        assert!(message::decode(&SyncKey::derive(OTHER_SECRET), datagram).is_err());
        let (header, these) = message::decode(&key, datagram).expect("our own datagram decodes");
        assert_eq!(
            (header.kind, header.sender, header.boot),
            (Kind::Records, 7, 9)
        );
        decoded.extend(these);
    }
    assert_eq!(decoded, records);
}

/// Records as the encoder takes them: a count byte, then per record its fields and 1 to
/// 8 addresses (a family bit per address, then 4 or 16 bytes).
fn records(input: &mut Input<'_>) -> Vec<Record> {
    let count = usize::from(input.u8());
    (0..count)
        .map(|_| {
            let service = u64::from(input.u32()) << 32 | u64::from(input.u32());
            let backend = u64::from(input.u32()) << 32 | u64::from(input.u32());
            let client_port = input.u16();
            let server_port = input.u16();
            let client_tag = Some(input.u32()).filter(|tag| *tag != 0);
            let backend_tag = input.u32().max(1);
            let flags = input.u8();
            let count = usize::from(flags & 7) + 1;
            let addresses = (0..count)
                .map(|i| {
                    if flags & (8 << (i % 4)) == 0 {
                        IpAddr::V4(Ipv4Addr::from(input.u32()))
                    } else {
                        let high = u128::from(input.u32()) << 96;
                        IpAddr::V6(Ipv6Addr::from(high | u128::from(input.u32())))
                    }
                })
                .collect();
            Record {
                service,
                backend,
                client_port,
                server_port,
                client_tag,
                backend_tag,
                closing: flags & 0x80 != 0,
                addresses,
            }
        })
        .collect()
}

/// The input [`message`] reads `records` from, in round-trip mode.
pub fn encode_records(records: &[Record], sequence: u32) -> Vec<u8> {
    let mut out = vec![1, records.len() as u8];
    for record in records {
        out.extend_from_slice(&record.service.to_be_bytes());
        out.extend_from_slice(&record.backend.to_be_bytes());
        out.extend_from_slice(&record.client_port.to_be_bytes());
        out.extend_from_slice(&record.server_port.to_be_bytes());
        out.extend_from_slice(&record.client_tag.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&record.backend_tag.to_be_bytes());
        let mut flags = (record.addresses.len() as u8 - 1) & 7;
        if record.closing {
            flags |= 0x80;
        }
        for (i, address) in record.addresses.iter().enumerate().take(4) {
            if address.is_ipv6() {
                flags |= 8 << i;
            }
        }
        out.push(flags);
        for address in &record.addresses {
            match address {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => {
                    let bits = u128::from(*a);
                    out.extend_from_slice(&((bits >> 96) as u32).to_be_bytes());
                    out.extend_from_slice(&(bits as u32).to_be_bytes());
                }
            }
        }
    }
    out.extend_from_slice(&sequence.to_be_bytes());
    out
}
