//! What the fuzz targets check, in plain functions over bytes: each target in
//! `fuzz_targets/` is one line calling one of them, and `tests/fuzz_regressions.rs` in the
//! main crate includes this module tree with `#[path]` to replay the seed corpora and every
//! crash found, under `cargo test` on stable. A check fails by panicking.
//!
//! Nothing here may depend on more than `xlb` and std, and modules name each other with
//! `super::`, never `crate::`: the main crate's tests compile this tree as a module of
//! their own crate, with their own dependencies.
//!
//! Structured inputs (the SCTP table's operations, the pipeline's frames) are decoded with
//! [`Input`], which reads zeros past the end, so every byte string is a valid input; each
//! format has an encoder next to its decoder, used by `seeds.rs` to write the seeds.

pub mod config;
/// The reference frames of the wire tests, included as the integration tests include them
/// (the library keeps them out unless its `fixtures` feature is on).
#[path = "../../src/wire/fixtures.rs"]
pub mod fixtures;
pub mod pipeline;
pub mod sctp;
pub mod sync;
pub mod wire;

/// A reader of fuzz-chosen values off the front of the input; past the end every read
/// gives zeros or an empty slice.
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { rest: bytes }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&byte, rest)) => {
                self.rest = rest;
                byte
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next `len` bytes, or what is left if fewer.
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// A byte string behind a 16-bit big-endian length (see [`put_prefixed`]).
    pub fn prefixed(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16());
        self.bytes(len)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.rest)
    }
}

/// Appends `bytes` behind its 16-bit big-endian length, as [`Input::prefixed`] reads it.
pub fn put_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("a prefixed string fits 65535 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The index of `value` in `pool` when it is there and below `escape`, else `escape`
/// (the encoders' side of "an index into a pool, or an escape byte and a raw value").
fn pool_index<T: PartialEq>(pool: &[T], value: &T, escape: u8) -> u8 {
    pool.iter()
        .position(|item| item == value)
        .and_then(|at| u8::try_from(at).ok())
        .filter(|&at| at < escape)
        .unwrap_or(escape)
}
