//! The SCTP sync protocol's datagrams (docs/deployment.md, "SCTP state sync"): as small
//! as IPVS's sync protocol, authenticated with the cluster's key, and safe to lose,
//! repeat or reorder, since every record carries the whole association.
//!
//! ```text
//! datagram = magic "XLBS" | version 1 | kind | count u16
//!          | sender u64 | boot u64 | sequence u64
//!          | count × record
//!          | mac: BLAKE3 keyed hash (32 bytes) of everything before it
//! record   = service u64 | backend u64 | client_port u16 | server_port u16
//!          | client_tag u32 (0: unknown) | backend_tag u32 | flags u8 (1: closing)
//!          | address count u8 (1..=8) | per address: family u8 (4 or 6), 4 or 16 bytes
//! ```
//! All integers big-endian. `service` and `backend` are [`name_key`]s of names, the same
//! on every node that runs the same file; `boot` orders a sender's restarts and
//! `sequence` its datagrams within one boot, for the replay check.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;

use crate::lb::sctp::MAX_ADDRESSES;

const MAGIC: [u8; 4] = *b"XLBS";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 2 + 8 + 8 + 8;
const MAC_LEN: usize = 32;
/// A record's fixed part, before its addresses.
const RECORD_FIXED_LEN: usize = 8 + 8 + 2 + 2 + 4 + 4 + 1 + 1;
const FLAG_CLOSING: u8 = 1;
/// Datagrams stay under the smallest MTU of a node network with IPv6 and UDP headers.
pub const DATAGRAM_MAX: usize = 1400;
/// Context string of the key derivation: a key for this protocol only.
const KEY_CONTEXT: &str = "xlb 2026-12 SCTP association sync v1 datagram MAC";

/// What a datagram says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Association records.
    Records,
    /// "Send me your whole table": a node that starts asks its peers.
    ResyncRequest,
    /// The end of a whole-table walk sent for a request.
    ResyncDone,
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::Records => 1,
            Kind::ResyncRequest => 2,
            Kind::ResyncDone => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Records),
            2 => Some(Kind::ResyncRequest),
            3 => Some(Kind::ResyncDone),
            _ => None,
        }
    }
}

/// Who sent a datagram and where it sits in the sender's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the datagram says.
    pub kind: Kind,
    /// The sender's node identity.
    pub sender: u64,
    /// When the sender started (a later start is a larger value).
    pub boot: u64,
    /// The datagram's number within the sender's boot.
    pub sequence: u64,
}

/// One association as the protocol carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// [`name_key`] of the service's name.
    pub service: u64,
    /// [`backend_key`] of the backend.
    pub backend: u64,
    /// The client's port.
    pub client_port: u16,
    /// The service port.
    pub server_port: u16,
    /// The client's tag, if known.
    pub client_tag: Option<u32>,
    /// The backend's tag.
    pub backend_tag: u32,
    /// Closing (ABORT or SHUTDOWN-COMPLETE seen).
    pub closing: bool,
    /// The client's addresses, at least one.
    pub addresses: ArrayVec<IpAddr, MAX_ADDRESSES>,
}

impl Record {
    fn encoded_len(&self) -> usize {
        RECORD_FIXED_LEN
            + self
                .addresses
                .iter()
                .map(|a| if a.is_ipv4() { 5 } else { 17 })
                .sum::<usize>()
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Shorter than its header and MAC, or than its records say.
    #[error("truncated")]
    Truncated,
    /// Not an xlb sync datagram, or another protocol version.
    #[error("not an xlb sync v1 datagram")]
    Foreign,
    /// The MAC does not match: another key, or tampered with.
    #[error("authentication failed")]
    Authentication,
    /// Authentic but inconsistent (a bad kind, family or address count).
    #[error("malformed")]
    Malformed,
}

/// The cluster's datagram key, derived from the shared secret.
#[derive(Clone)]
pub struct SyncKey([u8; 32]);

impl SyncKey {
    /// The key for `secret`, the contents of the key file.
    pub fn derive(secret: &[u8]) -> SyncKey {
        SyncKey(blake3::derive_key(KEY_CONTEXT, secret))
    }

    fn mac(&self, bytes: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&self.0, bytes)
    }
}

/// The cluster-wide key of a name: the same on every node, whatever order or history
/// gave the name its local id.
pub fn name_key(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// The cluster-wide key of a backend: its service's name, its own name and its address,
/// which together are its identity (docs/architecture.md §3).
pub fn backend_key(service: &str, backend: &str, address: IpAddr) -> u64 {
    let mut bytes = Vec::with_capacity(service.len() + backend.len() + 18);
    bytes.extend_from_slice(service.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(backend.as_bytes());
    bytes.push(0);
    match address {
        IpAddr::V4(a) => bytes.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => bytes.extend_from_slice(&a.octets()),
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Encodes `records` into datagrams of at most [`DATAGRAM_MAX`] bytes, each under its
/// own sequence number from `next_sequence`; a control datagram (no records) when
/// `records` is empty.
pub fn encode(
    key: &SyncKey,
    kind: Kind,
    sender: u64,
    boot: u64,
    next_sequence: &mut u64,
    records: &[Record],
) -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    let mut rest = records;
    loop {
        let mut fits = 0;
        let mut len = HEADER_LEN + MAC_LEN;
        while let Some(record) = rest.get(fits) {
            if len + record.encoded_len() > DATAGRAM_MAX || fits == usize::from(u16::MAX) {
                break;
            }
            len += record.encoded_len();
            fits += 1;
        }
        let (these, later) = rest.split_at(fits);
        let header = Header {
            kind,
            sender,
            boot,
            sequence: *next_sequence,
        };
        *next_sequence += 1;
        datagrams.push(encode_one(key, &header, these));
        rest = later;
        if rest.is_empty() {
            return datagrams;
        }
    }
}

fn encode_one(key: &SyncKey, header: &Header, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATAGRAM_MAX);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(header.kind.to_byte());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&header.sender.to_be_bytes());
    out.extend_from_slice(&header.boot.to_be_bytes());
    out.extend_from_slice(&header.sequence.to_be_bytes());
    for record in records {
        out.extend_from_slice(&record.service.to_be_bytes());
        out.extend_from_slice(&record.backend.to_be_bytes());
        out.extend_from_slice(&record.client_port.to_be_bytes());
        out.extend_from_slice(&record.server_port.to_be_bytes());
        out.extend_from_slice(&record.client_tag.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&record.backend_tag.to_be_bytes());
        out.push(if record.closing { FLAG_CLOSING } else { 0 });
        out.push(record.addresses.len() as u8);
        for address in &record.addresses {
            match address {
                IpAddr::V4(a) => {
                    out.push(4);
                    out.extend_from_slice(&a.octets());
                }
                IpAddr::V6(a) => {
                    out.push(6);
                    out.extend_from_slice(&a.octets());
                }
            }
        }
    }
    let mac = key.mac(&out);
    out.extend_from_slice(mac.as_bytes());
    out
}

/// Decodes and authenticates one datagram. The MAC is checked before anything else is
/// believed; any byte sequence gives an error, never a panic.
pub fn decode(key: &SyncKey, datagram: &[u8]) -> Result<(Header, Vec<Record>), MessageError> {
    if datagram.len() < HEADER_LEN + MAC_LEN {
        return Err(MessageError::Truncated);
    }
    if datagram[..4] != MAGIC || datagram[4] != VERSION {
        return Err(MessageError::Foreign);
    }
    let (body, mac) = datagram.split_at(datagram.len() - MAC_LEN);
    // blake3::Hash compares in constant time.
    if key.mac(body) != blake3::Hash::from_slice(mac).map_err(|_| MessageError::Truncated)? {
        return Err(MessageError::Authentication);
    }
    let mut reader = Reader { bytes: body, at: 5 };
    let kind = Kind::from_byte(reader.u8()?).ok_or(MessageError::Malformed)?;
    let count = reader.u16()?;
    let header = Header {
        kind,
        sender: reader.u64()?,
        boot: reader.u64()?,
        sequence: reader.u64()?,
    };
    let mut records = Vec::with_capacity(usize::from(count).min(DATAGRAM_MAX / RECORD_FIXED_LEN));
    for _ in 0..count {
        records.push(reader.record()?);
    }
    if reader.at != body.len() {
        return Err(MessageError::Malformed);
    }
    Ok((header, records))
}

/// A cursor over an authenticated body.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let bytes = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or(MessageError::Truncated)?;
        self.at += N;
        Ok(bytes.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, MessageError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn record(&mut self) -> Result<Record, MessageError> {
        let service = self.u64()?;
        let backend = self.u64()?;
        let client_port = self.u16()?;
        let server_port = self.u16()?;
        let client_tag = Some(self.u32()?).filter(|tag| *tag != 0);
        let backend_tag = self.u32()?;
        let flags = self.u8()?;
        let count = usize::from(self.u8()?);
        if count == 0 || count > MAX_ADDRESSES || backend_tag == 0 {
            return Err(MessageError::Malformed);
        }
        let mut addresses = ArrayVec::new();
        for _ in 0..count {
            addresses.push(match self.u8()? {
                4 => IpAddr::V4(Ipv4Addr::from(self.take::<4>()?)),
                6 => IpAddr::V6(Ipv6Addr::from(self.take::<16>()?)),
                _ => return Err(MessageError::Malformed),
            });
        }
        Ok(Record {
            service,
            backend,
            client_port,
            server_port,
            client_tag,
            backend_tag,
            closing: flags & FLAG_CLOSING != 0,
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SyncKey {
        SyncKey::derive(b"a cluster secret of enough bytes")
    }

    fn record(n: u32, addresses: usize) -> Record {
        Record {
            service: name_key("ngap"),
            backend: backend_key("ngap", "amf-1", "198.18.1.11".parse().unwrap()),
            client_port: 5000,
            server_port: 38412,
            client_tag: Some(0x1000 + n),
            backend_tag: 0x2000 + n,
            closing: n % 2 == 1,
            addresses: (0..addresses)
                .map(|i| {
                    if i % 2 == 0 {
                        IpAddr::from([198, 18, 0, i as u8])
                    } else {
                        IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16])
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn records_round_trip_across_as_many_datagrams_as_they_need() {
        let records: Vec<Record> = (0..200).map(|n| record(n, 1 + n as usize % 8)).collect();
        let mut sequence = 7;
        let datagrams = encode(&key(), Kind::Records, 1, 2, &mut sequence, &records);
        assert!(datagrams.len() > 1);
        assert!(datagrams.iter().all(|d| d.len() <= DATAGRAM_MAX));
        assert_eq!(sequence, 7 + datagrams.len() as u64);
        let mut decoded = Vec::new();
        for (i, datagram) in datagrams.iter().enumerate() {
            let (header, records) = decode(&key(), datagram).unwrap();
            assert_eq!(
                header,
                Header {
                    kind: Kind::Records,
                    sender: 1,
                    boot: 2,
                    sequence: 7 + i as u64
                }
            );
            decoded.extend(records);
        }
        assert_eq!(decoded, records);
    }

    #[test]
    fn control_datagrams_carry_no_records() {
        let mut sequence = 0;
        let datagrams = encode(&key(), Kind::ResyncRequest, 1, 2, &mut sequence, &[]);
        assert_eq!(datagrams.len(), 1);
        let (header, records) = decode(&key(), &datagrams[0]).unwrap();
        assert_eq!(header.kind, Kind::ResyncRequest);
        assert!(records.is_empty());
    }

    #[test]
    fn another_key_or_any_flipped_bit_is_refused() {
        let mut sequence = 0;
        let datagram =
            encode(&key(), Kind::Records, 1, 2, &mut sequence, &[record(1, 3)]).remove(0);
        let other = SyncKey::derive(b"another cluster's secret bytes..");
        assert_eq!(decode(&other, &datagram), Err(MessageError::Authentication));
        for bit in 0..datagram.len() * 8 {
            let mut flipped = datagram.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&key(), &flipped).is_err(),
                "bit {bit} flipped was accepted"
            );
        }
        for len in 0..datagram.len() {
            assert!(decode(&key(), &datagram[..len]).is_err());
        }
    }

    #[test]
    fn names_key_the_same_on_every_node() {
        assert_eq!(name_key("ngap"), name_key("ngap"));
        assert_ne!(name_key("ngap"), name_key("ngap2"));
        let address = "198.18.1.11".parse().unwrap();
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            backend_key("ab", "c", address),
            backend_key("a", "bc", address)
        );
    }
}
