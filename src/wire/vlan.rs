//! One IEEE 802.1Q VLAN tag: the four bytes after an Ethernet header whose EtherType is
//! 0x8100 — the tag control information (priority, drop eligibility, VLAN id) and the
//! EtherType of what follows.

use super::{Error, Result};

/// A read/write view of one 802.1Q tag (the Ethernet payload when the EtherType is 0x8100).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub type Field = core::ops::Range<usize>;
    //# IEEE 802.1Q §9.6: TCI = PCP (3 bits) | DEI (1 bit) | VID (12 bits).
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of one tag.
pub const HEADER_LEN: usize = field::PAYLOAD;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking its length; accessors may panic until `check_len` passes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer after checking that it holds a whole tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` when the buffer is shorter than one tag; afterwards no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Give the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn tci(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::TCI.start], data[field::TCI.start + 1]])
    }

    /// Priority code point (802.1p class of service).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (0 means priority-tagged only).
    #[inline]
    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of the payload after the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([
            data[field::ETHERTYPE.start],
            data[field::ETHERTYPE.start + 1],
        ])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_tci(&mut self, value: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the priority code point; only the low 3 bits are used.
    #[inline]
    pub fn set_pcp(&mut self, value: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(value & 0x7) << 13);
        self.set_tci(tci);
    }

    /// Set the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, value: bool) {
        let tci = (self.tci() & !0x1000) | if value { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Set the VLAN identifier; only the low 12 bits are used.
    #[inline]
    pub fn set_vlan_id(&mut self, value: u16) {
        let tci = (self.tci() & 0xf000) | (value & 0x0fff);
        self.set_tci(tci);
    }

    /// Set the EtherType of the payload.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// The bytes after the tag, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The fields of a tag, for building one.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Repr {
    /// Priority code point.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier.
    pub vlan_id: u16,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// Read a checked tag.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            pcp: packet.pcp(),
            dei: packet.dei(),
            vlan_id: packet.vlan_id(),
            ethertype: packet.ethertype(),
        })
    }

    /// Bytes a tag takes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the tag into a buffer of at least `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_pcp(self.pcp);
        packet.set_dei(self.dei);
        packet.set_vlan_id(self.vlan_id);
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // PCP 3, DEI 0, VID 100, then IPv4.
    static TAG_BYTES: [u8; 6] = [0x60, 0x64, 0x08, 0x00, 0xaa, 0xbb];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&TAG_BYTES[..]).unwrap();
        assert_eq!(packet.pcp(), 3);
        assert!(!packet.dei());
        assert_eq!(packet.vlan_id(), 100);
        assert_eq!(packet.ethertype(), 0x0800);
        assert_eq!(packet.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xffu8; 6];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_pcp(3);
        packet.set_dei(false);
        packet.set_vlan_id(100);
        packet.set_ethertype(0x0800);
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(bytes, TAG_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_unchecked(&TAG_BYTES[..]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                pcp: 3,
                dei: false,
                vlan_id: 100,
                ethertype: 0x0800
            }
        );
    }

    #[test]
    fn test_emit() {
        let repr = Repr {
            pcp: 3,
            dei: false,
            vlan_id: 100,
            ethertype: 0x0800,
        };
        let mut bytes = [0u8; 4];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, TAG_BYTES[..4]);
    }

    #[test]
    fn test_dei_and_masking() {
        let mut bytes = [0u8; 4];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_vlan_id(0xffff);
        packet.set_dei(true);
        packet.set_pcp(0xff);
        assert_eq!(packet.vlan_id(), 0x0fff);
        assert!(packet.dei());
        assert_eq!(packet.pcp(), 7);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(Packet::new_checked(&TAG_BYTES[..3]), Err(Error::Truncated));
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&TAG_BYTES[..3])),
            Err(Error::Truncated)
        );
    }
}
