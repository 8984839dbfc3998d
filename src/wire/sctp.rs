//! SCTP (RFC 9260) packet views: the common header, a chunk iterator, the INIT/INIT-ACK
//! fixed fields and address parameters, ASCONF (RFC 5061) requests, the T bit of ABORT
//! and SHUTDOWN-COMPLETE, the CRC32c, and emitters for the chunks xlb's tests and
//! fixtures build.
//!
//! Everything here borrows the packet bytes; nothing allocates. After `check_len`, no
//! accessor panics, and the iterators yield an [`Error`] (then stop) on bad lengths.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{Error, Result};

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = 12;
/// Length of a chunk header (type, flags, length).
pub const CHUNK_HEADER_LEN: usize = 4;
/// Length of the INIT/INIT-ACK chunk up to its first parameter.
pub const INIT_FIXED_LEN: usize = 20;
/// Length of the DATA chunk up to its user data.
pub const DATA_FIXED_LEN: usize = 16;
/// Length of the ASCONF chunk header plus its serial number.
pub const ASCONF_FIXED_LEN: usize = 8;

/// Parameter type of an IPv4 Address parameter (RFC 9260 §3.3.2.1).
pub const PARAM_IPV4_ADDRESS: u16 = 5;
/// Parameter type of an IPv6 Address parameter (RFC 9260 §3.3.2.1).
pub const PARAM_IPV6_ADDRESS: u16 = 6;
/// Parameter type of the Heartbeat Info parameter (RFC 9260 §3.3.5).
pub const PARAM_HEARTBEAT_INFO: u16 = 1;
/// ASCONF parameter type: Add IP Address (RFC 5061 §4.2.1).
pub const PARAM_ADD_IP: u16 = 0xC001;
/// ASCONF parameter type: Delete IP Address (RFC 5061 §4.2.2).
pub const PARAM_DELETE_IP: u16 = 0xC002;
/// ASCONF parameter type: Set Primary Address (RFC 5061 §4.2.4).
pub const PARAM_SET_PRIMARY: u16 = 0xC004;
/// Zero Checksum Acceptable parameter type (RFC 9653 §5.1).
pub const PARAM_ZERO_CHECKSUM_ACCEPTABLE: u16 = 0x8001;

/// The T bit of ABORT and SHUTDOWN-COMPLETE chunk flags.
//# RFC 9260 §3.3.7: T bit: The T bit is set to 0 if the sender filled in the
//# Verification Tag expected by the peer. If the Verification Tag is reflected,
//# the T bit MUST be set to 1.
pub const FLAG_T: u8 = 0x01;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const VERIFICATION_TAG: Range<usize> = 4..8;
    pub const CHECKSUM: Range<usize> = 8..12;

    pub const CHUNK_TYPE: usize = 0;
    pub const CHUNK_FLAGS: usize = 1;
    pub const CHUNK_LENGTH: Range<usize> = 2..4;

    pub const INIT_TAG: Range<usize> = 4..8;
    pub const INIT_A_RWND: Range<usize> = 8..12;
    pub const INIT_OUTBOUND_STREAMS: Range<usize> = 12..14;
    pub const INIT_INBOUND_STREAMS: Range<usize> = 14..16;
    pub const INIT_TSN: Range<usize> = 16..20;

    pub const ASCONF_SERIAL: Range<usize> = 4..8;
}

/// Rounds a chunk or parameter length up to its 4-byte padded size.
#[inline]
fn padded(len: usize) -> usize {
    (len + 3) & !3
}

#[inline]
fn read_u16(bytes: &[u8], at: core::ops::Range<usize>) -> u16 {
    let mut raw = [0u8; 2];
    raw.copy_from_slice(&bytes[at]);
    u16::from_be_bytes(raw)
}

#[inline]
fn read_u32(bytes: &[u8], at: core::ops::Range<usize>) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at]);
    u32::from_be_bytes(raw)
}

/// A chunk type (RFC 9260 §3.2, RFC 5061 §4.1); unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkType {
    /// Payload data (0).
    Data,
    /// Initiation (1).
    Init,
    /// Initiation acknowledgement (2).
    InitAck,
    /// Selective acknowledgement (3).
    Sack,
    /// Heartbeat request (4).
    Heartbeat,
    /// Heartbeat acknowledgement (5).
    HeartbeatAck,
    /// Abort (6).
    Abort,
    /// Shutdown (7).
    Shutdown,
    /// Shutdown acknowledgement (8).
    ShutdownAck,
    /// Operation error (9).
    Error,
    /// State cookie (10).
    CookieEcho,
    /// Cookie acknowledgement (11).
    CookieAck,
    /// Shutdown complete (14).
    ShutdownComplete,
    /// Address configuration change (0xC1).
    Asconf,
    /// Address configuration acknowledgement (0x80).
    AsconfAck,
    /// Any other type, kept as read.
    Unknown(u8),
}

impl From<u8> for ChunkType {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => ChunkType::Data,
            1 => ChunkType::Init,
            2 => ChunkType::InitAck,
            3 => ChunkType::Sack,
            4 => ChunkType::Heartbeat,
            5 => ChunkType::HeartbeatAck,
            6 => ChunkType::Abort,
            7 => ChunkType::Shutdown,
            8 => ChunkType::ShutdownAck,
            9 => ChunkType::Error,
            10 => ChunkType::CookieEcho,
            11 => ChunkType::CookieAck,
            14 => ChunkType::ShutdownComplete,
            0xC1 => ChunkType::Asconf,
            0x80 => ChunkType::AsconfAck,
            other => ChunkType::Unknown(other),
        }
    }
}

impl From<ChunkType> for u8 {
    #[inline]
    fn from(value: ChunkType) -> Self {
        match value {
            ChunkType::Data => 0,
            ChunkType::Init => 1,
            ChunkType::InitAck => 2,
            ChunkType::Sack => 3,
            ChunkType::Heartbeat => 4,
            ChunkType::HeartbeatAck => 5,
            ChunkType::Abort => 6,
            ChunkType::Shutdown => 7,
            ChunkType::ShutdownAck => 8,
            ChunkType::Error => 9,
            ChunkType::CookieEcho => 10,
            ChunkType::CookieAck => 11,
            ChunkType::ShutdownComplete => 14,
            ChunkType::Asconf => 0xC1,
            ChunkType::AsconfAck => 0x80,
            ChunkType::Unknown(other) => other,
        }
    }
}

/// A read/write view of an SCTP packet: common header followed by chunks.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them; call [`Packet::check_len`] before reading.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes after checking that the common header is present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the common header fits, so that no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the bytes back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The sender's port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The receiver's port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The verification tag: the receiver's tag, 0 in INIT, or the sender's own tag
    /// when a T bit says it is reflected.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VERIFICATION_TAG)
    }

    /// The checksum field as a number (the CRC32c is stored little-endian).
    #[inline]
    pub fn checksum(&self) -> u32 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&self.buffer.as_ref()[field::CHECKSUM]);
        u32::from_le_bytes(raw)
    }

    /// The chunk bytes after the common header.
    #[inline]
    pub fn chunk_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Iterates the chunks after the common header.
    #[inline]
    pub fn chunks(&self) -> ChunkIter<'_> {
        ChunkIter::new(self.chunk_bytes())
    }

    /// Computes the CRC32c of the packet as if its checksum field were zero.
    //# RFC 9260 §6.8: Fill in the proper Verification Tag in the SCTP common header
    //# and initialize the checksum field to '0's.
    pub fn compute_checksum(&self) -> u32 {
        let bytes = self.buffer.as_ref();
        let crc = crc32c::crc32c(&bytes[..field::CHECKSUM.start]);
        let crc = crc32c::crc32c_append(crc, &[0u8; 4]);
        crc32c::crc32c_append(crc, &bytes[field::CHECKSUM.end..])
    }

    /// Whether the stored checksum matches the packet. For tests and for packets xlb
    /// emits: the fast path never drops on a bad or zero checksum (RFC 9653).
    pub fn verify_checksum(&self) -> bool {
        self.checksum() == self.compute_checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the sender's port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the receiver's port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the verification tag.
    #[inline]
    pub fn set_verification_tag(&mut self, value: u32) {
        self.buffer.as_mut()[field::VERIFICATION_TAG].copy_from_slice(&value.to_be_bytes());
    }

    /// Stores a checksum value (little-endian, as the CRC32c is transmitted).
    #[inline]
    pub fn set_checksum(&mut self, value: u32) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_le_bytes());
    }

    /// Computes and stores the CRC32c over the whole packet.
    // RFC 9260 Appendix B (paraphrased): the CRC32c value goes into the checksum field
    // least significant byte first, as in the iSCSI test vectors (RFC 3720 §B.4).
    pub fn fill_checksum(&mut self) {
        let crc = self.compute_checksum();
        self.set_checksum(crc);
    }

    /// The chunk bytes after the common header, writable.
    #[inline]
    pub fn chunk_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A view of one chunk: exactly `length` bytes (header and value, padding excluded).
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    bytes: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// Reads the chunk at the start of `bytes`, checking its length field.
    //# RFC 9260 §3.2: Chunk Length: [...] the size of the chunk in bytes, including
    //# the Chunk Type, Chunk Flags, Chunk Length, and Chunk Value fields.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Chunk<'a>> {
        if bytes.len() < CHUNK_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let length = usize::from(read_u16(bytes, field::CHUNK_LENGTH));
        if length < CHUNK_HEADER_LEN {
            return Err(Error::Malformed);
        }
        match bytes.get(..length) {
            Some(bytes) => Ok(Chunk { bytes }),
            None => Err(Error::Truncated),
        }
    }

    /// The chunk type.
    #[inline]
    pub fn chunk_type(&self) -> ChunkType {
        ChunkType::from(self.bytes[field::CHUNK_TYPE])
    }

    /// The chunk flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.bytes[field::CHUNK_FLAGS]
    }

    /// For ABORT and SHUTDOWN-COMPLETE: the verification tag is the sender's own
    /// (reflected) rather than the receiver's.
    #[inline]
    pub fn t_bit(&self) -> bool {
        self.flags() & FLAG_T != 0
    }

    /// The value of the length field.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the chunk has no value (length exactly 4).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == CHUNK_HEADER_LEN
    }

    /// The chunk value after its 4-byte header (e.g. the cookie of COOKIE-ECHO).
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        &self.bytes[CHUNK_HEADER_LEN..]
    }

    /// All bytes of the chunk, header included.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterates the chunks of a packet, honouring 4-byte padding. Yields an error for a
/// chunk whose length is below 4 or runs past the end, and then stops.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    rest: &'a [u8],
}

impl<'a> ChunkIter<'a> {
    /// Iterates the chunks in `bytes` (the packet after its common header).
    #[inline]
    pub fn new(bytes: &'a [u8]) -> ChunkIter<'a> {
        ChunkIter { rest: bytes }
    }
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = Result<Chunk<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Chunk::new_checked(self.rest) {
            Ok(chunk) => {
                //# RFC 9260 §3.2: The Chunk Length field does not count any chunk padding.
                //# [...] The sender MUST NOT pad with more than 3 bytes.
                // A last chunk whose padding the sender left out is accepted: the padding
                // carries nothing.
                let next = padded(chunk.len()).min(self.rest.len());
                self.rest = &self.rest[next..];
                Some(Ok(chunk))
            }
            Err(error) => {
                self.rest = &[];
                Some(Err(error))
            }
        }
    }
}

/// One TLV parameter (RFC 9260 §3.2.1): its type and value (padding excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter type.
    pub param_type: u16,
    /// The parameter value, after the 4-byte type/length header.
    pub value: &'a [u8],
}

/// Iterates TLV parameters, honouring 4-byte padding; yields an error for a length
/// below 4 or past the end, then stops.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a [u8],
}

impl<'a> ParamIter<'a> {
    /// Iterates the parameters in `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> ParamIter<'a> {
        ParamIter { rest: bytes }
    }
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<Param<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        //# RFC 9260 §3.2.1: Parameter Length: [...] the size of the parameter in bytes,
        //# including the Parameter Type, Parameter Length, and Parameter Value fields.
        //# [...] The Parameter Length does not include any padding bytes.
        let result = if self.rest.len() < 4 {
            Err(Error::Truncated)
        } else {
            let param_type = read_u16(self.rest, 0..2);
            let length = usize::from(read_u16(self.rest, 2..4));
            if length < 4 {
                Err(Error::Malformed)
            } else if let Some(bytes) = self.rest.get(..length) {
                let next = padded(length).min(self.rest.len());
                self.rest = &self.rest[next..];
                return Some(Ok(Param {
                    param_type,
                    value: &bytes[4..],
                }));
            } else {
                Err(Error::Truncated)
            }
        };
        self.rest = &[];
        Some(result)
    }
}

/// Reads an IPv4 (5) or IPv6 (6) Address parameter; `None` for other types.
// RFC 9260 §3.3.2.1 (paraphrased): IPv4 Address is type 5 with length 8, IPv6 Address
// is type 6 with length 20; any other length is malformed.
#[inline]
pub fn address_param(param: &Param<'_>) -> Option<Result<IpAddr>> {
    match param.param_type {
        PARAM_IPV4_ADDRESS => Some(match <[u8; 4]>::try_from(param.value) {
            Ok(octets) => Ok(IpAddr::V4(Ipv4Addr::from(octets))),
            Err(_) => Err(Error::Malformed),
        }),
        PARAM_IPV6_ADDRESS => Some(match <[u8; 16]>::try_from(param.value) {
            Ok(octets) => Ok(IpAddr::V6(Ipv6Addr::from(octets))),
            Err(_) => Err(Error::Malformed),
        }),
        _ => None,
    }
}

/// A view of an INIT or INIT-ACK chunk (RFC 9260 §3.3.2, §3.3.3).
#[derive(Debug, Clone, Copy)]
pub struct InitChunk<'a> {
    bytes: &'a [u8],
}

impl<'a> InitChunk<'a> {
    /// Reads an INIT/INIT-ACK chunk, checking that its fixed fields fit.
    pub fn new_checked(chunk: Chunk<'a>) -> Result<InitChunk<'a>> {
        if chunk.len() < INIT_FIXED_LEN {
            return Err(Error::Malformed);
        }
        Ok(InitChunk {
            bytes: chunk.as_bytes(),
        })
    }

    /// The tag the sender wants in every packet sent to it.
    #[inline]
    pub fn initiate_tag(&self) -> u32 {
        read_u32(self.bytes, field::INIT_TAG)
    }

    /// The advertised receiver window credit.
    #[inline]
    pub fn a_rwnd(&self) -> u32 {
        read_u32(self.bytes, field::INIT_A_RWND)
    }

    /// Number of outbound streams.
    #[inline]
    pub fn outbound_streams(&self) -> u16 {
        read_u16(self.bytes, field::INIT_OUTBOUND_STREAMS)
    }

    /// Number of inbound streams.
    #[inline]
    pub fn inbound_streams(&self) -> u16 {
        read_u16(self.bytes, field::INIT_INBOUND_STREAMS)
    }

    /// The first TSN the sender will use.
    #[inline]
    pub fn initial_tsn(&self) -> u32 {
        read_u32(self.bytes, field::INIT_TSN)
    }

    /// Every parameter after the fixed fields.
    #[inline]
    pub fn params(&self) -> ParamIter<'a> {
        ParamIter::new(&self.bytes[INIT_FIXED_LEN..])
    }

    /// Whether the sender announces that it accepts packets with a zero checksum.
    // RFC 9653 §5.1 (paraphrased): the Zero Checksum Acceptable parameter (0x8001) may
    // appear in INIT and INIT ACK chunks.
    pub fn accepts_zero_checksum(&self) -> bool {
        self.params()
            .map_while(|param| param.ok())
            .any(|param| param.param_type == PARAM_ZERO_CHECKSUM_ACCEPTABLE)
    }

    /// The IPv4 and IPv6 Address parameters, other parameters skipped.
    #[inline]
    pub fn addresses(&self) -> AddressIter<'a> {
        AddressIter {
            params: self.params(),
        }
    }
}

/// Yields the addresses of IPv4/IPv6 Address parameters, skipping other parameters;
/// an error (then the end) on a bad parameter length.
#[derive(Debug, Clone)]
pub struct AddressIter<'a> {
    params: ParamIter<'a>,
}

impl Iterator for AddressIter<'_> {
    type Item = Result<IpAddr>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.params.next()? {
                Err(error) => return Some(Err(error)),
                Ok(param) => {
                    if let Some(address) = address_param(&param) {
                        if address.is_err() {
                            self.params = ParamIter::new(&[]);
                        }
                        return Some(address);
                    }
                }
            }
        }
    }
}

/// What an ASCONF request asks for (RFC 5061 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsconfRequestKind {
    /// Add IP Address (0xC001).
    AddIp,
    /// Delete IP Address (0xC002).
    DeleteIp,
    /// Set Primary Address (0xC004).
    SetPrimary,
}

impl AsconfRequestKind {
    /// The parameter type of this request.
    #[inline]
    pub fn param_type(self) -> u16 {
        match self {
            AsconfRequestKind::AddIp => PARAM_ADD_IP,
            AsconfRequestKind::DeleteIp => PARAM_DELETE_IP,
            AsconfRequestKind::SetPrimary => PARAM_SET_PRIMARY,
        }
    }
}

/// One ASCONF request parameter: kind, correlation id and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsconfRequest {
    /// What is requested.
    pub kind: AsconfRequestKind,
    /// ASCONF-Request Correlation ID, echoed in the ASCONF-ACK.
    pub correlation_id: u32,
    /// The address; 0.0.0.0 or :: is the wildcard (see [`AsconfRequest::is_wildcard`]).
    pub address: IpAddr,
}

impl AsconfRequest {
    /// Whether the address is the wildcard 0.0.0.0 / ::, which refers to the packet's
    /// source (RFC 5061 §4.2.1, §4.2.2, §4.2.4).
    #[inline]
    pub fn is_wildcard(&self) -> bool {
        self.address.is_unspecified()
    }
}

/// A view of an ASCONF chunk (0xC1, RFC 5061 §3.1.1): serial number, the sender's
/// address parameter, then request parameters.
#[derive(Debug, Clone, Copy)]
pub struct AsconfChunk<'a> {
    bytes: &'a [u8],
    address: IpAddr,
    requests_at: usize,
}

impl<'a> AsconfChunk<'a> {
    /// Reads an ASCONF chunk: the serial number and the address parameter must fit.
    // RFC 5061 §3.1.1 (paraphrased): after the serial number comes one IPv4 or IPv6
    // Address parameter naming the sender, then the ASCONF parameters.
    pub fn new_checked(chunk: Chunk<'a>) -> Result<AsconfChunk<'a>> {
        let bytes = chunk.as_bytes();
        if bytes.len() < ASCONF_FIXED_LEN {
            return Err(Error::Malformed);
        }
        let mut params = ParamIter::new(&bytes[ASCONF_FIXED_LEN..]);
        let first = params.next().ok_or(Error::Malformed)??;
        let address = address_param(&first).ok_or(Error::Malformed)??;
        let requests_at = (ASCONF_FIXED_LEN + 4 + padded(first.value.len())).min(bytes.len());
        Ok(AsconfChunk {
            bytes,
            address,
            requests_at,
        })
    }

    /// The ASCONF serial number.
    #[inline]
    pub fn serial(&self) -> u32 {
        read_u32(self.bytes, field::ASCONF_SERIAL)
    }

    /// The sender's address from the chunk's address parameter.
    #[inline]
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The Add-IP, Delete-IP and Set-Primary requests; other parameters skipped.
    #[inline]
    pub fn requests(&self) -> AsconfRequestIter<'a> {
        AsconfRequestIter {
            params: ParamIter::new(&self.bytes[self.requests_at..]),
        }
    }
}

/// Yields the ASCONF requests xlb acts on; an error (then the end) on a bad length.
#[derive(Debug, Clone)]
pub struct AsconfRequestIter<'a> {
    params: ParamIter<'a>,
}

impl AsconfRequestIter<'_> {
    fn request(param: &Param<'_>) -> Option<Result<AsconfRequest>> {
        let kind = match param.param_type {
            PARAM_ADD_IP => AsconfRequestKind::AddIp,
            PARAM_DELETE_IP => AsconfRequestKind::DeleteIp,
            PARAM_SET_PRIMARY => AsconfRequestKind::SetPrimary,
            _ => return None,
        };
        // RFC 5061 §4.2.1 (paraphrased): each request is a 32-bit ASCONF-Request
        // Correlation ID followed by one IPv4 or IPv6 Address parameter.
        if param.value.len() < 4 {
            return Some(Err(Error::Malformed));
        }
        let correlation_id = read_u32(param.value, 0..4);
        let inner = ParamIter::new(&param.value[4..]).next();
        let address = match inner {
            Some(Ok(inner)) => match address_param(&inner) {
                Some(address) => address,
                None => Err(Error::Malformed),
            },
            Some(Err(error)) => Err(error),
            None => Err(Error::Malformed),
        };
        Some(address.map(|address| AsconfRequest {
            kind,
            correlation_id,
            address,
        }))
    }
}

impl Iterator for AsconfRequestIter<'_> {
    type Item = Result<AsconfRequest>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let request = match self.params.next()? {
                Err(error) => Err(error),
                Ok(param) => match Self::request(&param) {
                    Some(request) => request,
                    None => continue,
                },
            };
            if request.is_err() {
                self.params = ParamIter::new(&[]);
            }
            return Some(request);
        }
    }
}

/// A chunk xlb can build, for its own packets, tests, fixtures and benches.
#[derive(Debug, Clone, Copy)]
pub enum ChunkRepr<'a> {
    /// INIT with IPv4/IPv6 Address parameters.
    Init {
        /// The tag the sender wants to receive.
        initiate_tag: u32,
        /// Advertised receiver window.
        a_rwnd: u32,
        /// Outbound streams.
        outbound_streams: u16,
        /// Inbound streams.
        inbound_streams: u16,
        /// First TSN.
        initial_tsn: u32,
        /// Address parameters, in order.
        addresses: &'a [IpAddr],
    },
    /// COOKIE-ECHO carrying an opaque cookie.
    CookieEcho {
        /// The state cookie.
        cookie: &'a [u8],
    },
    /// DATA, unfragmented (B and E bits set).
    Data {
        /// Transmission sequence number.
        tsn: u32,
        /// Stream identifier.
        stream_id: u16,
        /// Stream sequence number.
        stream_seq: u16,
        /// Payload protocol identifier.
        ppid: u32,
        /// User data.
        payload: &'a [u8],
    },
    /// HEARTBEAT with its Heartbeat Info parameter.
    Heartbeat {
        /// Sender-specific heartbeat information.
        info: &'a [u8],
    },
    /// ASCONF with its address parameter and requests.
    Asconf {
        /// Serial number.
        serial: u32,
        /// The sender's address parameter.
        address: IpAddr,
        /// Requests, in order.
        requests: &'a [AsconfRequest],
    },
    /// ABORT without error causes.
    Abort {
        /// T bit: the tag is the sender's own.
        reflected: bool,
    },
    /// SHUTDOWN-COMPLETE.
    ShutdownComplete {
        /// T bit: the tag is the sender's own.
        reflected: bool,
    },
}

fn address_param_len(address: &IpAddr) -> usize {
    match address {
        IpAddr::V4(_) => 8,
        IpAddr::V6(_) => 20,
    }
}

/// Writes an address parameter at the start of `buf`; returns its length.
fn emit_address_param(address: &IpAddr, buf: &mut [u8]) -> usize {
    let len = address_param_len(address);
    let (param_type, octets): (u16, &[u8]) = match address {
        IpAddr::V4(v4) => (PARAM_IPV4_ADDRESS, &v4.octets()[..]),
        IpAddr::V6(v6) => (PARAM_IPV6_ADDRESS, &v6.octets()[..]),
    };
    buf[0..2].copy_from_slice(&param_type.to_be_bytes());
    buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    buf[4..len].copy_from_slice(octets);
    len
}

impl ChunkRepr<'_> {
    /// The chunk type this representation emits.
    pub fn chunk_type(&self) -> ChunkType {
        match self {
            ChunkRepr::Init { .. } => ChunkType::Init,
            ChunkRepr::CookieEcho { .. } => ChunkType::CookieEcho,
            ChunkRepr::Data { .. } => ChunkType::Data,
            ChunkRepr::Heartbeat { .. } => ChunkType::Heartbeat,
            ChunkRepr::Asconf { .. } => ChunkType::Asconf,
            ChunkRepr::Abort { .. } => ChunkType::Abort,
            ChunkRepr::ShutdownComplete { .. } => ChunkType::ShutdownComplete,
        }
    }

    /// The chunk's length field (padding excluded).
    pub fn chunk_len(&self) -> usize {
        match self {
            ChunkRepr::Init { addresses, .. } => {
                INIT_FIXED_LEN + addresses.iter().map(address_param_len).sum::<usize>()
            }
            ChunkRepr::CookieEcho { cookie } => CHUNK_HEADER_LEN + cookie.len(),
            ChunkRepr::Data { payload, .. } => DATA_FIXED_LEN + payload.len(),
            ChunkRepr::Heartbeat { info } => CHUNK_HEADER_LEN + 4 + info.len(),
            ChunkRepr::Asconf {
                address, requests, ..
            } => {
                ASCONF_FIXED_LEN
                    + address_param_len(address)
                    + requests
                        .iter()
                        .map(|request| 8 + address_param_len(&request.address))
                        .sum::<usize>()
            }
            ChunkRepr::Abort { .. } | ChunkRepr::ShutdownComplete { .. } => CHUNK_HEADER_LEN,
        }
    }

    /// Bytes the chunk takes in a packet, padding included.
    pub fn buffer_len(&self) -> usize {
        padded(self.chunk_len())
    }

    /// Writes the chunk, zero padding included, at the start of `buf`; returns the
    /// bytes written. Panics if `buf` is shorter than [`ChunkRepr::buffer_len`] or a
    /// length exceeds 65535 (emitters build xlb's own packets, not untrusted ones).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.chunk_len();
        let total = padded(len);
        let len_field = u16::try_from(len).expect("SCTP chunk longer than 65535 bytes");
        let buf = &mut buf[..total];
        buf.fill(0);
        buf[field::CHUNK_TYPE] = self.chunk_type().into();
        buf[field::CHUNK_LENGTH].copy_from_slice(&len_field.to_be_bytes());
        match *self {
            ChunkRepr::Init {
                initiate_tag,
                a_rwnd,
                outbound_streams,
                inbound_streams,
                initial_tsn,
                addresses,
            } => {
                buf[field::INIT_TAG].copy_from_slice(&initiate_tag.to_be_bytes());
                buf[field::INIT_A_RWND].copy_from_slice(&a_rwnd.to_be_bytes());
                buf[field::INIT_OUTBOUND_STREAMS].copy_from_slice(&outbound_streams.to_be_bytes());
                buf[field::INIT_INBOUND_STREAMS].copy_from_slice(&inbound_streams.to_be_bytes());
                buf[field::INIT_TSN].copy_from_slice(&initial_tsn.to_be_bytes());
                let mut at = INIT_FIXED_LEN;
                for address in addresses {
                    at += emit_address_param(address, &mut buf[at..]);
                }
            }
            ChunkRepr::CookieEcho { cookie } => {
                buf[CHUNK_HEADER_LEN..len].copy_from_slice(cookie);
            }
            ChunkRepr::Data {
                tsn,
                stream_id,
                stream_seq,
                ppid,
                payload,
            } => {
                // RFC 9260 §3.3.1 (paraphrased): B and E both set mark an unfragmented
                // user message.
                buf[field::CHUNK_FLAGS] = 0x03;
                buf[4..8].copy_from_slice(&tsn.to_be_bytes());
                buf[8..10].copy_from_slice(&stream_id.to_be_bytes());
                buf[10..12].copy_from_slice(&stream_seq.to_be_bytes());
                buf[12..16].copy_from_slice(&ppid.to_be_bytes());
                buf[DATA_FIXED_LEN..len].copy_from_slice(payload);
            }
            ChunkRepr::Heartbeat { info } => {
                let info_len = (4 + info.len()) as u16;
                buf[4..6].copy_from_slice(&PARAM_HEARTBEAT_INFO.to_be_bytes());
                buf[6..8].copy_from_slice(&info_len.to_be_bytes());
                buf[8..len].copy_from_slice(info);
            }
            ChunkRepr::Asconf {
                serial,
                address,
                requests,
            } => {
                buf[field::ASCONF_SERIAL].copy_from_slice(&serial.to_be_bytes());
                let mut at = ASCONF_FIXED_LEN;
                at += emit_address_param(&address, &mut buf[at..]);
                for request in requests {
                    let param_len = 8 + address_param_len(&request.address);
                    buf[at..at + 2].copy_from_slice(&request.kind.param_type().to_be_bytes());
                    buf[at + 2..at + 4].copy_from_slice(&(param_len as u16).to_be_bytes());
                    buf[at + 4..at + 8].copy_from_slice(&request.correlation_id.to_be_bytes());
                    emit_address_param(&request.address, &mut buf[at + 8..]);
                    at += param_len;
                }
            }
            ChunkRepr::Abort { reflected } | ChunkRepr::ShutdownComplete { reflected } => {
                buf[field::CHUNK_FLAGS] = if reflected { FLAG_T } else { 0 };
            }
        }
        total
    }
}

/// An SCTP packet xlb can build: common header fields and chunks.
#[derive(Debug, Clone, Copy)]
pub struct PacketRepr<'a> {
    /// The sender's port.
    pub src_port: u16,
    /// The receiver's port.
    pub dst_port: u16,
    /// The verification tag.
    pub verification_tag: u32,
    /// The chunks, in order.
    pub chunks: &'a [ChunkRepr<'a>],
}

impl PacketRepr<'_> {
    /// Bytes the packet takes: common header plus padded chunks.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.chunks.iter().map(ChunkRepr::buffer_len).sum::<usize>()
    }

    /// Writes the packet into `packet` (at least [`PacketRepr::buffer_len`] bytes) and
    /// fills the CRC32c over exactly those bytes; returns the length written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> usize {
        let total = self.buffer_len();
        let mut sized = Packet::new_unchecked(&mut packet.buffer.as_mut()[..total]);
        sized.set_src_port(self.src_port);
        sized.set_dst_port(self.dst_port);
        sized.set_verification_tag(self.verification_tag);
        let mut at = 0;
        for chunk in self.chunks {
            at += chunk.emit(&mut sized.chunk_bytes_mut()[at..]);
        }
        sized.fill_checksum();
        total
    }

    /// Builds the packet into a new vector (tests and fixtures).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference packets built by scapy (an independent SCTP implementation), checksum
    // included.

    /// INIT from 5000 to 38412 listing 198.18.0.2, Supported Address Types (length 6,
    /// padded) and 2001:db8::2.
    static INIT_PACKET: [u8; 68] = [
        0x13, 0x88, 0x96, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x93, 0x03, 0xeb, 0x68, 0x01, 0x00, 0x00,
        0x38, 0x11, 0x22, 0x33, 0x44, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x01, 0x02,
        0x03, 0x04, 0x00, 0x05, 0x00, 0x08, 0xc6, 0x12, 0x00, 0x02, 0x00, 0x0c, 0x00, 0x06, 0x00,
        0x05, 0x00, 0x00, 0x00, 0x06, 0x00, 0x14, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];

    /// The same INIT with only the two address parameters.
    static INIT_EMITTED: [u8; 60] = [
        0x13, 0x88, 0x96, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x16, 0xf0, 0x36, 0x92, 0x01, 0x00, 0x00,
        0x30, 0x11, 0x22, 0x33, 0x44, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x01, 0x02,
        0x03, 0x04, 0x00, 0x05, 0x00, 0x08, 0xc6, 0x12, 0x00, 0x02, 0x00, 0x06, 0x00, 0x14, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];

    /// COOKIE-ECHO ("abcde", padded) bundled with DATA ("hi", padded), tag 0xdeadbeef.
    static COOKIE_DATA_PACKET: [u8; 44] = [
        0x13, 0x88, 0x96, 0x0c, 0xde, 0xad, 0xbe, 0xef, 0x8e, 0x51, 0xfa, 0xb5, 0x0a, 0x00, 0x00,
        0x09, 0x61, 0x62, 0x63, 0x64, 0x65, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x12, 0x00, 0x00,
        0x00, 0x07, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x3c, 0x68, 0x69, 0x00, 0x00,
    ];

    /// ASCONF serial 42 from 198.18.0.1: Add-IP 198.18.0.3, Delete-IP ::, Set-Primary
    /// 198.18.0.3.
    static ASCONF_PACKET: [u8; 88] = [
        0x13, 0x88, 0x96, 0x0c, 0xde, 0xad, 0xbe, 0xef, 0x95, 0x04, 0x69, 0x04, 0xc1, 0x00, 0x00,
        0x4c, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x05, 0x00, 0x08, 0xc6, 0x12, 0x00, 0x01, 0xc0, 0x01,
        0x00, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x05, 0x00, 0x08, 0xc6, 0x12, 0x00, 0x03, 0xc0,
        0x02, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x02, 0x00, 0x06, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x04, 0x00,
        0x10, 0x00, 0x00, 0x00, 0x03, 0x00, 0x05, 0x00, 0x08, 0xc6, 0x12, 0x00, 0x03,
    ];

    /// ABORT with the T bit set.
    static ABORT_T_PACKET: [u8; 16] = [
        0x13, 0x88, 0x96, 0x0c, 0xde, 0xad, 0xbe, 0xef, 0x29, 0xcb, 0xd3, 0xdd, 0x06, 0x01, 0x00,
        0x04,
    ];

    /// HEARTBEAT (info "beat") then SHUTDOWN-COMPLETE with T=0.
    static HEARTBEAT_SHUTDOWN_COMPLETE_PACKET: [u8; 28] = [
        0x13, 0x88, 0x96, 0x0c, 0xde, 0xad, 0xbe, 0xef, 0x8c, 0xea, 0xb4, 0xd7, 0x04, 0x00, 0x00,
        0x0c, 0x00, 0x01, 0x00, 0x08, 0x62, 0x65, 0x61, 0x74, 0x0e, 0x00, 0x00, 0x04,
    ];

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    fn v6(last: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
    }

    fn chunks(bytes: &[u8]) -> Vec<Result<(ChunkType, usize)>> {
        ChunkIter::new(bytes)
            .map(|chunk| chunk.map(|chunk| (chunk.chunk_type(), chunk.len())))
            .collect()
    }

    #[test]
    fn test_parse_init() {
        let packet = Packet::new_checked(&INIT_PACKET[..]).unwrap();
        assert_eq!(packet.src_port(), 5000);
        assert_eq!(packet.dst_port(), 38412);
        assert_eq!(packet.verification_tag(), 0);
        assert!(packet.verify_checksum());
        let mut iter = packet.chunks();
        let chunk = iter.next().unwrap().unwrap();
        assert!(iter.next().is_none());
        assert_eq!(chunk.chunk_type(), ChunkType::Init);
        assert_eq!(chunk.len(), 56);
        let init = InitChunk::new_checked(chunk).unwrap();
        assert_eq!(init.initiate_tag(), 0x1122_3344);
        assert_eq!(init.a_rwnd(), 65536);
        assert_eq!(init.outbound_streams(), 10);
        assert_eq!(init.inbound_streams(), 10);
        assert_eq!(init.initial_tsn(), 0x0102_0304);
        let types: Vec<u16> = init.params().map(|p| p.unwrap().param_type).collect();
        assert_eq!(types, [5, 12, 6]);
        let addresses: Vec<IpAddr> = init.addresses().map(|a| a.unwrap()).collect();
        assert_eq!(addresses, [v4(2), v6(2)]);
    }

    #[test]
    fn test_construct_init() {
        let addresses = [v4(2), v6(2)];
        let repr = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0,
            chunks: &[ChunkRepr::Init {
                initiate_tag: 0x1122_3344,
                a_rwnd: 65536,
                outbound_streams: 10,
                inbound_streams: 10,
                initial_tsn: 0x0102_0304,
                addresses: &addresses,
            }],
        };
        assert_eq!(repr.buffer_len(), INIT_EMITTED.len());
        assert_eq!(repr.to_vec(), INIT_EMITTED);
    }

    #[test]
    fn test_deconstruct_cookie_echo_and_data() {
        let packet = Packet::new_checked(&COOKIE_DATA_PACKET[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(packet.verification_tag(), 0xdead_beef);
        let all: Vec<Chunk<'_>> = packet.chunks().map(|c| c.unwrap()).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].chunk_type(), ChunkType::CookieEcho);
        assert_eq!(all[0].value(), b"abcde");
        assert_eq!(all[1].chunk_type(), ChunkType::Data);
        assert_eq!(all[1].flags(), 0x03);
        assert_eq!(&all[1].value()[12..], b"hi");
    }

    #[test]
    fn test_construct_cookie_echo_and_data() {
        let repr = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0xdead_beef,
            chunks: &[
                ChunkRepr::CookieEcho { cookie: b"abcde" },
                ChunkRepr::Data {
                    tsn: 7,
                    stream_id: 1,
                    stream_seq: 2,
                    ppid: 60,
                    payload: b"hi",
                },
            ],
        };
        assert_eq!(repr.to_vec(), COOKIE_DATA_PACKET);
    }

    #[test]
    fn test_parse_asconf() {
        let packet = Packet::new_checked(&ASCONF_PACKET[..]).unwrap();
        let chunk = packet.chunks().next().unwrap().unwrap();
        assert_eq!(chunk.chunk_type(), ChunkType::Asconf);
        let asconf = AsconfChunk::new_checked(chunk).unwrap();
        assert_eq!(asconf.serial(), 42);
        assert_eq!(asconf.address(), v4(1));
        let requests: Vec<AsconfRequest> = asconf.requests().map(|r| r.unwrap()).collect();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].kind, AsconfRequestKind::AddIp);
        assert_eq!(requests[0].correlation_id, 1);
        assert_eq!(requests[0].address, v4(3));
        assert!(!requests[0].is_wildcard());
        assert_eq!(requests[1].kind, AsconfRequestKind::DeleteIp);
        assert!(requests[1].is_wildcard());
        assert_eq!(requests[1].address, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(requests[2].kind, AsconfRequestKind::SetPrimary);
        assert_eq!(requests[2].correlation_id, 3);
    }

    #[test]
    fn test_construct_asconf() {
        let requests = [
            AsconfRequest {
                kind: AsconfRequestKind::AddIp,
                correlation_id: 1,
                address: v4(3),
            },
            AsconfRequest {
                kind: AsconfRequestKind::DeleteIp,
                correlation_id: 2,
                address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            AsconfRequest {
                kind: AsconfRequestKind::SetPrimary,
                correlation_id: 3,
                address: v4(3),
            },
        ];
        let repr = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0xdead_beef,
            chunks: &[ChunkRepr::Asconf {
                serial: 42,
                address: v4(1),
                requests: &requests,
            }],
        };
        assert_eq!(repr.to_vec(), ASCONF_PACKET);
    }

    #[test]
    fn test_t_bit_abort_and_shutdown_complete() {
        let abort = Packet::new_checked(&ABORT_T_PACKET[..]).unwrap();
        let chunk = abort.chunks().next().unwrap().unwrap();
        assert_eq!(chunk.chunk_type(), ChunkType::Abort);
        assert!(chunk.t_bit());
        assert!(chunk.is_empty());
        let repr = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0xdead_beef,
            chunks: &[ChunkRepr::Abort { reflected: true }],
        };
        assert_eq!(repr.to_vec(), ABORT_T_PACKET);

        let packet = Packet::new_checked(&HEARTBEAT_SHUTDOWN_COMPLETE_PACKET[..]).unwrap();
        let last = packet.chunks().last().unwrap().unwrap();
        assert_eq!(last.chunk_type(), ChunkType::ShutdownComplete);
        assert!(!last.t_bit());
        let repr = PacketRepr {
            src_port: 5000,
            dst_port: 38412,
            verification_tag: 0xdead_beef,
            chunks: &[
                ChunkRepr::Heartbeat { info: b"beat" },
                ChunkRepr::ShutdownComplete { reflected: false },
            ],
        };
        assert_eq!(repr.to_vec(), HEARTBEAT_SHUTDOWN_COMPLETE_PACKET);
    }

    #[test]
    fn test_header_too_short() {
        assert_eq!(
            Packet::new_checked(&[0u8; HEADER_LEN - 1][..]).unwrap_err(),
            Error::Truncated
        );
        let empty = Packet::new_checked(&[0u8; HEADER_LEN][..]).unwrap();
        assert!(empty.chunks().next().is_none());
    }

    #[test]
    fn chunk_length_zero_is_malformed_and_stops() {
        let bytes = [0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x04];
        assert_eq!(chunks(&bytes), [Err(Error::Malformed)]);
    }

    #[test]
    fn chunk_length_three_is_malformed_and_stops() {
        let bytes = [0x00, 0x00, 0x00, 0x03, 0x04, 0x00, 0x00, 0x04];
        assert_eq!(chunks(&bytes), [Err(Error::Malformed)]);
    }

    #[test]
    fn chunk_past_the_end_is_truncated_and_stops() {
        // HEARTBEAT claims 12 bytes, 8 are there.
        let bytes = [
            0x0b, 0x00, 0x00, 0x04, 0x04, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x08,
        ];
        assert_eq!(
            chunks(&bytes),
            [Ok((ChunkType::CookieAck, 4)), Err(Error::Truncated)]
        );
        // Fewer than four bytes left for a chunk header.
        assert_eq!(chunks(&[0x0b, 0x00]), [Err(Error::Truncated)]);
    }

    #[test]
    fn chunk_padding_is_skipped_and_may_be_missing_at_the_end() {
        // COOKIE-ECHO of 5 bytes padded to 8, then COOKIE-ECHO of 5 bytes unpadded.
        let bytes = [
            0x0a, 0x00, 0x00, 0x05, 0xaa, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x05, 0xbb,
        ];
        assert_eq!(
            chunks(&bytes),
            [
                Ok((ChunkType::CookieEcho, 5)),
                Ok((ChunkType::CookieEcho, 5))
            ]
        );
    }

    #[test]
    fn parameter_lengths_are_checked() {
        let too_short = [0x00, 0x05, 0x00, 0x02];
        assert_eq!(
            ParamIter::new(&too_short).collect::<Vec<_>>(),
            [Err(Error::Malformed)]
        );
        let past_end = [0x00, 0x05, 0x00, 0x08, 0xc6, 0x12];
        assert_eq!(
            ParamIter::new(&past_end).collect::<Vec<_>>(),
            [Err(Error::Truncated)]
        );
        // An IPv4 Address parameter of length 12 is malformed; iteration then stops.
        let wrong_len = [
            0x00, 0x05, 0x00, 0x0c, 0xc6, 0x12, 0x00, 0x02, 0, 0, 0, 0, 0x00, 0x05, 0x00, 0x08,
            0xc6, 0x12, 0x00, 0x03,
        ];
        let addresses: Vec<_> = AddressIter {
            params: ParamIter::new(&wrong_len),
        }
        .collect();
        assert_eq!(addresses, [Err(Error::Malformed)]);
    }

    #[test]
    fn short_init_and_asconf_are_malformed() {
        let init = [0x01, 0x00, 0x00, 0x10, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1];
        let chunk = Chunk::new_checked(&init).unwrap();
        assert_eq!(InitChunk::new_checked(chunk).unwrap_err(), Error::Malformed);
        // ASCONF with a serial number and no address parameter.
        let asconf = [0xc1, 0x00, 0x00, 0x08, 0, 0, 0, 1];
        let chunk = Chunk::new_checked(&asconf).unwrap();
        assert_eq!(
            AsconfChunk::new_checked(chunk).unwrap_err(),
            Error::Malformed
        );
        // A request whose address parameter is cut short.
        let asconf = [
            0xc1, 0x00, 0x00, 0x18, 0, 0, 0, 1, 0x00, 0x05, 0x00, 0x08, 198, 18, 0, 1, 0xc0, 0x01,
            0x00, 0x08, 0, 0, 0, 7,
        ];
        let chunk = Chunk::new_checked(&asconf).unwrap();
        let requests: Vec<_> = AsconfChunk::new_checked(chunk)
            .unwrap()
            .requests()
            .collect();
        assert_eq!(requests, [Err(Error::Malformed)]);
    }

    #[test]
    fn crc32c_matches_the_iscsi_vector() {
        //# RFC 3720 §B.4: 32 bytes of zeroes: [...] CRC: aa 36 91 8a
        let mut zeros = Packet::new_unchecked([0u8; 32]);
        assert_eq!(zeros.compute_checksum(), 0x8a91_36aa);
        zeros.fill_checksum();
        assert_eq!(&zeros.into_inner()[8..12], &[0xaa, 0x36, 0x91, 0x8a]);
    }

    #[test]
    fn checksum_detects_a_flipped_bit() {
        let mut bytes = INIT_PACKET;
        bytes[20] ^= 0x01;
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
    }

    #[test]
    fn setters_round_trip() {
        let mut packet = Packet::new_checked([0u8; HEADER_LEN]).unwrap();
        packet.set_src_port(1);
        packet.set_dst_port(2);
        packet.set_verification_tag(3);
        packet.set_checksum(0x0102_0304);
        assert_eq!(packet.src_port(), 1);
        assert_eq!(packet.dst_port(), 2);
        assert_eq!(packet.verification_tag(), 3);
        assert_eq!(packet.checksum(), 0x0102_0304);
        assert_eq!(&packet.into_inner()[8..12], &[4, 3, 2, 1]);
    }

    #[test]
    fn chunk_types_round_trip() {
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(ChunkType::from(value)), value);
        }
    }
}
