//! Maglev consistent hashing with weights (Eisenbud et al., NSDI 2016, §3.4), as a pure function
//! `build(backends, size) -> MaglevTable`.
//!
//! Each backend walks its own permutation of the `M` slots (`offset = h1 % M`,
//! `skip = h2 % (M - 1) + 1`, hashes of its name from [`crate::lb::hash::backend_hashes`]) and
//! claims the next free slot on its turn. Weights use credit rounds: every round each backend
//! earns its weight in credit and claims one slot per `max_weight` of credit it holds. With equal
//! weights that is exactly the paper's round-robin, so shares differ by at most one slot and
//! max/mean share is below `1 + N / M` (≤ 1.01 when `M > 100·N`). With unequal weights backend
//! `i` ends with between `e_i - 2` and `e_i + N + 1` slots, `e_i = M·w_i/Σw` (rounding and the last,
//! partial round).
//!
//! The table depends only on the backends' names and weights and on `M` (not on the order they
//! are listed in): every process on every machine builds the same one.

use thiserror::Error;

use crate::config::{is_prime, MAGLEV_MAX_TABLE_SIZE};
use crate::lb::hash::backend_hashes;

/// The slot value meaning "no backend": every slot holds it when every weight is 0.
pub const NO_BACKEND: u32 = u32::MAX;

/// The table size used when the configuration does not name one (the paper's 65537, a prime).
pub const DEFAULT_SIZE: u32 = 65_537;

/// One backend as Maglev sees it: the name seeds its permutation, the weight sets its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBackend<'a> {
    /// Stable name (not its position), so a backend keeps its slots when others change.
    pub name: &'a str,
    /// Relative share of slots; 0 takes the backend out of the table (drained).
    pub weight: u32,
}

/// Why a Maglev table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MaglevError {
    /// The permutation needs every skip in `1..M` to be coprime with `M`, so `M` must be prime.
    #[error("maglev table size {size} is not prime; use a prime such as 65537")]
    SizeNotPrime {
        /// The size asked for.
        size: u32,
    },
    /// Above [`MAGLEV_MAX_TABLE_SIZE`] the table only costs memory, and ranking the last free slots needs
    /// `M² ≪ 2⁶⁴`.
    #[error("maglev table size {size} is larger than {MAGLEV_MAX_TABLE_SIZE}")]
    SizeTooLarge {
        /// The size asked for.
        size: u32,
    },
    /// Slots hold backend indices as `u32` with `u32::MAX` reserved for "no backend".
    #[error(
        "{count} backends cannot be indexed by a maglev table; use fewer than {}",
        NO_BACKEND
    )]
    TooManyBackends {
        /// The number of backends given.
        count: usize,
    },
}

/// A built Maglev lookup table: `M` slots, each holding an index into the backend list it was
/// built from, or [`NO_BACKEND`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Box<[u32]>,
}

/// Where one backend is in its permutation (its weight credit is a [`Credit`] of its own, which
/// the equal-weight rounds never touch).
struct PermutationCursor {
    /// The next entry of the permutation to try.
    position: u32,
    /// `j·skip mod M` for `j` in `0..=PROBE_LANES`: where each probe lane is, and the step past
    /// them, relative to `position`.
    strides: [u32; PROBE_LANES + 1],
    backend: u32,
}

/// A backend's weight, and the credit it has earned toward its next claim.
struct Credit {
    weight: u64,
    earned: u64,
}

impl Credit {
    /// Earns the weight for one turn; whether the turn claims a slot (every `max_weight` earned).
    ///
    /// Credit stays below `max_weight` and no weight exceeds it, so a turn claims at most once.
    #[inline]
    fn take_turn(&mut self, max_weight: u64) -> bool {
        self.earned += self.weight;
        let claims = self.earned >= max_weight;
        if claims {
            self.earned -= max_weight;
        }
        claims
    }
}

/// Builds the table for `backends` (slot values index this slice) with `size` slots.
///
/// `size` must be a prime up to [`MAGLEV_MAX_TABLE_SIZE`]. Names should be unique (configuration validation
/// ensures it); equal names take turns in list order. Backends of weight 0 get no slot; if all
/// weigh 0 every slot is [`NO_BACKEND`]. Probes about `M·ln(M/256)` permutation entries, then
/// ranks the last 256 free slots; a tiny weight next to a huge one adds up to `M·N` credit steps
/// (control-plane time, never per packet).
pub fn build(backends: &[MaglevBackend<'_>], size: u32) -> Result<MaglevTable, MaglevError> {
    if size > MAGLEV_MAX_TABLE_SIZE {
        return Err(MaglevError::SizeTooLarge { size });
    }
    if !is_prime(size) {
        return Err(MaglevError::SizeNotPrime { size });
    }
    if backends.len() >= NO_BACKEND as usize {
        return Err(MaglevError::TooManyBackends {
            count: backends.len(),
        });
    }
    let mut slots = vec![NO_BACKEND; size as usize].into_boxed_slice();
    let max_weight = backends
        .iter()
        .map(|b| u64::from(b.weight))
        .max()
        .unwrap_or(0);
    if max_weight == 0 {
        return Ok(MaglevTable { slots });
    }
    let (mut cursors, mut credits) = turns_in_name_order(backends, size);

    // Whole rounds while one cannot bring the free slots down to the tail: every claim probes,
    // and no claim checks how many slots are left. A turn claims at most one slot; with equal
    // weights every turn claims one (a loop of its own, without credit: 10% faster).
    let mut taken = vec![false; 2 * size as usize];
    let mut free_count = size as usize;
    let equal_weights = credits.iter().all(|c| c.weight == max_weight);
    while equal_weights && free_count > TAIL_SLOTS + cursors.len() {
        for cursor in &mut cursors {
            let slot = claim_by_probing(&mut taken, cursor, size);
            slots[slot as usize] = cursor.backend;
        }
        free_count -= cursors.len();
    }
    while free_count > TAIL_SLOTS + cursors.len() {
        for (cursor, credit) in cursors.iter_mut().zip(&mut credits) {
            if credit.take_turn(max_weight) {
                let slot = claim_by_probing(&mut taken, cursor, size);
                slots[slot as usize] = cursor.backend;
                free_count -= 1;
            }
        }
    }
    // Then turn by turn: probing down to the tail, ranking the tail.
    let turns = cursors.len();
    let mut tail = None;
    for turn in (0..turns).cycle() {
        if !credits[turn].take_turn(max_weight) {
            continue;
        }
        let cursor = &mut cursors[turn];
        let slot = if free_count > TAIL_SLOTS {
            free_count -= 1;
            claim_by_probing(&mut taken, cursor, size)
        } else {
            let tail = tail.get_or_insert_with(|| Tail::new(&taken[..size as usize], turns, size));
            match tail.claim(turn, cursor) {
                Some(slot) => slot,
                None => break,
            }
        };
        slots[slot as usize] = cursor.backend;
    }
    Ok(MaglevTable { slots })
}

/// A cursor and a credit per backend of nonzero weight, in name order (not list order, so
/// reordering the configuration moves no slot).
fn turns_in_name_order(
    backends: &[MaglevBackend<'_>],
    size: u32,
) -> (Vec<PermutationCursor>, Vec<Credit>) {
    let modulus = u64::from(size);
    let mut turns: Vec<(u128, &MaglevBackend<'_>, u32)> = backends
        .iter()
        .zip(0u32..)
        .filter(|(b, _)| b.weight > 0)
        .map(|(b, backend)| (name_prefix(b.name), b, backend))
        .collect();
    // The order of the names, but most comparisons are one integer comparison instead of a
    // string comparison: sorting 1000 names took half as long.
    turns.sort_by(|(prefix, b, _), (other_prefix, other, _)| {
        prefix
            .cmp(other_prefix)
            .then_with(|| b.name.cmp(other.name))
    });
    turns
        .into_iter()
        .map(|(_, b, backend)| {
            let (h1, h2) = backend_hashes(b.name);
            // Both are < size, so they fit u32.
            let skip = (h2 % (modulus - 1) + 1) as u32;
            let mut strides = [0; PROBE_LANES + 1];
            for lane in 1..strides.len() {
                strides[lane] = next_position(strides[lane - 1], skip, size);
            }
            let cursor = PermutationCursor {
                position: (h1 % modulus) as u32,
                strides,
                backend,
            };
            let credit = Credit {
                weight: u64::from(b.weight),
                earned: 0,
            };
            (cursor, credit)
        })
        .unzip()
}

/// The first 16 bytes of `name` as a big-endian integer, zero-padded: where two names' prefixes
/// differ, they order the names.
fn name_prefix(name: &str) -> u128 {
    let mut bytes = [0; 16];
    let len = name.len().min(bytes.len());
    bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
    u128::from_be_bytes(bytes)
}

/// Below this many free slots a claim ranks the free slots instead of probing: probing needs
/// about `M / free` probes per claim (`M·ln M` in all), ranking `free` multiplications. At
/// M = 65537, 128 built 3% slower and 512 10% slower.
const TAIL_SLOTS: usize = 256;

/// Permutation entries tested per probe step (see [`claim_by_probing`]).
const PROBE_LANES: usize = 4;

/// The next free slot in `cursor`'s permutation, marked taken.
///
/// `taken` holds whether each slot is taken, twice over: `taken[x]` and `taken[x + M]` both stand
/// for slot `x`, so a probe lane reads `taken[position + j·skip mod M]` and never reduces the
/// sum. Bytes, not bits: testing one is a single load (a bit costs a variable shift too), which
/// made the build a sixth faster.
///
/// Tests four consecutive permutation entries per step and takes the first free one: the same
/// slot as testing one at a time, with one branch per four probes, which the CPU predicts well
/// even when half the table is taken (one-at-a-time exits mispredict there). Two or eight
/// entries per step built 5-10% slower.
///
/// Always inlined: the build calls it from three loops, and a call per claim cost 10%.
#[inline(always)]
fn claim_by_probing(taken: &mut [bool], cursor: &mut PermutationCursor, size: u32) -> u32 {
    let strides = &cursor.strides;
    let mut position = cursor.position;
    loop {
        let taken_mask =
            (1..PROBE_LANES).fold(u32::from(taken[position as usize]), |mask, lane| {
                let unreduced = position as usize + strides[lane] as usize;
                mask | u32::from(taken[unreduced]) << lane
            });
        let free_mask = !taken_mask & ((1 << PROBE_LANES) - 1);
        if free_mask != 0 {
            let lane = free_mask.trailing_zeros() as usize % PROBE_LANES;
            let slot = next_position(position, strides[lane], size);
            taken[slot as usize] = true;
            taken[slot as usize + size as usize] = true;
            cursor.position = next_position(position, strides[lane + 1], size);
            return slot;
        }
        position = next_position(position, strides[PROBE_LANES], size);
    }
}

/// The last [`TAIL_SLOTS`] free slots, each claimed by the cursor that reaches it first in its
/// permutation: the one fewest skips away, `(slot - position)·skip⁻¹ mod M`. Every slot a cursor
/// already passed is taken, so this is the slot probing would find.
struct Tail {
    free: Vec<u32>,
    /// Per turn, `⌈2⁶⁴·skip⁻¹ / M⌉`, or 0 before that turn's first claim in the tail.
    rank_multipliers: Vec<u64>,
    size: u32,
}

impl Tail {
    /// Lists the free slots of `taken`, sixteen map bytes per load: the runs of taken slots
    /// that fill the map go by quickly.
    fn new(taken: &[bool], turns: usize, size: u32) -> Self {
        const ALL_TAKEN: u128 = u128::from_ne_bytes([1; 16]);
        let map: &[u8] = bytemuck::cast_slice(taken);
        let mut free = Vec::with_capacity(TAIL_SLOTS);
        for (chunk, first) in map.chunks(16).zip((0u32..).step_by(16)) {
            let all_taken = <[u8; 16]>::try_from(chunk)
                .is_ok_and(|word| u128::from_ne_bytes(word) == ALL_TAKEN);
            if !all_taken {
                let slots = chunk.iter().zip(first..).filter(|&(&taken, _)| taken == 0);
                free.extend(slots.map(|(_, slot)| slot));
            }
        }
        Tail {
            free,
            rank_multipliers: vec![0; turns],
            size,
        }
    }

    /// The free slot nearest in `cursor`'s permutation, removed from the list; `None` once the
    /// table is full.
    ///
    /// Ranks by `c·(slot - position) mod 2⁶⁴` with `c = ⌈2⁶⁴·skip⁻¹ / M⌉`: that is
    /// `2⁶⁴·rank / M` give or take less than `M`, and ranks lie `2⁶⁴ / M > 2⁴⁰` apart, so the
    /// order is exact, one multiplication per slot and no reduction. The high 32 bits keep the
    /// order, the low 32 carry the list index.
    fn claim(&mut self, turn: usize, cursor: &mut PermutationCursor) -> Option<u32> {
        let multiplier = match self.rank_multipliers[turn] {
            0 => {
                let inverse = modular_inverse(cursor.strides[1], self.size);
                let multiplier = rank_multiplier(inverse, self.size);
                self.rank_multipliers[turn] = multiplier;
                multiplier
            }
            known => known,
        };
        let origin = multiplier.wrapping_mul(u64::from(cursor.position));
        let nearest = self
            .free
            .iter()
            .zip(0u64..)
            .map(|(&slot, index)| rank_key(multiplier, origin, slot) | index)
            .min()?;
        let slot = self.free.swap_remove(nearest as u32 as usize);
        cursor.position = next_position(slot, cursor.strides[1], self.size);
        Some(slot)
    }
}

/// A slot's rank key: `multiplier·slot - origin mod 2⁶⁴` with the low 32 bits cleared (see
/// [`Tail::claim`]).
#[inline]
fn rank_key(multiplier: u64, origin: u64, slot: u32) -> u64 {
    multiplier
        .wrapping_mul(u64::from(slot))
        .wrapping_sub(origin)
        & !u64::from(u32::MAX)
}

/// `⌈2⁶⁴·inverse / size⌉`, which fits u64 because `inverse < size`.
fn rank_multiplier(inverse: u32, size: u32) -> u64 {
    ((u128::from(inverse) << 64).div_ceil(u128::from(size))) as u64
}

/// `value⁻¹ mod prime` by the extended Euclidean algorithm (`0 < value < prime`).
fn modular_inverse(value: u32, prime: u32) -> u32 {
    let (mut remainder, mut next_remainder) = (i64::from(value), i64::from(prime));
    let (mut coefficient, mut next_coefficient) = (1i64, 0i64);
    while next_remainder != 0 {
        let quotient = remainder / next_remainder;
        (remainder, next_remainder) = (next_remainder, remainder - quotient * next_remainder);
        (coefficient, next_coefficient) =
            (next_coefficient, coefficient - quotient * next_coefficient);
    }
    // The result is in 0..prime, so it fits u32.
    coefficient.rem_euclid(i64::from(prime)) as u32
}

/// The next entry of a permutation `offset + j·skip (mod size)`, without a division.
#[inline]
fn next_position(position: u32, skip: u32, size: u32) -> u32 {
    // position < size and skip < size, so the sum fits u64 and one subtraction reduces it.
    let next = u64::from(position) + u64::from(skip);
    if next >= u64::from(size) {
        (next - u64::from(size)) as u32
    } else {
        next as u32
    }
}

impl MaglevTable {
    /// The backend index for a flow hash, or `None` when the slot has no backend.
    ///
    /// The slot is `hash·M >> 64` (multiply-high, no division): it uses the hash's high bits,
    /// while the flow table indexes its buckets with the low bits.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<u32> {
        let slot = ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize;
        self.slots
            .get(slot)
            .copied()
            .filter(|&backend| backend != NO_BACKEND)
    }

    /// The number of slots `M`, so callers can compare tables of the same size.
    #[inline]
    pub fn size(&self) -> u32 {
        // build() takes the size as a u32, so the length always fits.
        self.slots.len() as u32
    }

    /// Every slot's backend index (or [`NO_BACKEND`]), for `xlb explain` and tests.
    #[inline]
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// How many slots change backend going from `self` (old) to `other` (new), comparing
    /// backends by identity: `old_to_new` maps an old index to the same backend's new index, or
    /// `None` if it left. This is what `xlb diff` reports per service.
    ///
    /// Tables of different sizes map hashes to slots differently, so then every slot of `other`
    /// counts as moved.
    pub fn slots_moved(
        &self,
        other: &MaglevTable,
        old_to_new: impl Fn(u32) -> Option<u32>,
    ) -> usize {
        if self.slots.len() != other.slots.len() {
            return other.slots.len();
        }
        self.slots
            .iter()
            .zip(other.slots.iter())
            .filter(|&(&old, &new)| {
                let old_identity = (old != NO_BACKEND).then(|| old_to_new(old)).flatten();
                let new_identity = (new != NO_BACKEND).then_some(new);
                old_identity != new_identity
            })
            .count()
    }

    /// Slots held by each of the first `n` backend indices, for `xlb explain`/`diff` and tests.
    pub fn shares(&self, n: usize) -> Vec<usize> {
        let mut shares = vec![0usize; n];
        for &backend in self.slots.iter() {
            if let Some(share) = shares.get_mut(backend as usize) {
                *share += 1;
            }
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&'static str]) -> Vec<MaglevBackend<'static>> {
        names
            .iter()
            .map(|&name| MaglevBackend { name, weight: 1 })
            .collect()
    }

    #[test]
    fn modular_inverse_inverts() {
        for prime in [2u32, 3, 31, 65_537, 4_294_967_291] {
            for value in [1u32, 2, 7, prime / 2, prime - 1]
                .into_iter()
                .filter(|&v| v > 0 && v < prime)
            {
                let inverse = modular_inverse(value, prime);
                assert_eq!(u64::from(value) * u64::from(inverse) % u64::from(prime), 1);
            }
        }
    }

    #[test]
    fn rank_keys_order_slots_like_ranks() {
        for size in [2u32, 31, 1021, 65_537, MAGLEV_MAX_TABLE_SIZE - 3] {
            let modulus = u64::from(size);
            let mut value = 1u64;
            let mut next = || {
                value = value
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                value >> 16
            };
            for _ in 0..2000 {
                let skip = (next() % (modulus - 1) + 1) as u32;
                let position = (next() % modulus) as u32;
                let (first, second) = ((next() % modulus) as u32, (next() % modulus) as u32);
                let inverse = modular_inverse(skip, size);
                let rank = |slot: u32| {
                    (u64::from(slot) + modulus - u64::from(position)) * u64::from(inverse) % modulus
                };
                let multiplier = rank_multiplier(inverse, size);
                let origin = multiplier.wrapping_mul(u64::from(position));
                let key = |slot| rank_key(multiplier, origin, slot);
                assert_eq!(rank(position), 0);
                assert_eq!(key(position), 0);
                assert_eq!(
                    rank(first).cmp(&rank(second)),
                    key(first).cmp(&key(second)),
                    "size {size}, skip {skip}, position {position}, slots {first} and {second}"
                );
            }
        }
    }

    #[test]
    fn turns_follow_name_order() {
        // Long shared prefixes, a name that is a prefix of another, and bytes above 0x7f.
        let names = [
            "backend-0000000001.example",
            "backend-0000000000.example",
            "backend-0000000000",
            "backend-000000000",
            "b",
            "a",
            "ä",
            "backend-0000000000.example",
        ];
        let (cursors, _) = turns_in_name_order(&named(&names), 65_537);
        let turns: Vec<&str> = cursors.iter().map(|c| names[c.backend as usize]).collect();
        let mut sorted = names.to_vec();
        sorted.sort();
        assert_eq!(turns, sorted);
        // Equal names keep their list order.
        let equal: Vec<u32> = cursors
            .iter()
            .map(|c| c.backend)
            .filter(|&b| names[b as usize] == names[1])
            .collect();
        assert_eq!(equal, [1, 7]);
    }

    #[test]
    fn non_prime_size_is_refused() {
        assert_eq!(
            build(&named(&["a"]), 65_536),
            Err(MaglevError::SizeNotPrime { size: 65_536 })
        );
        assert_eq!(
            build(&named(&["a"]), 1),
            Err(MaglevError::SizeNotPrime { size: 1 })
        );
        assert_eq!(
            build(&named(&["a"]), 4_294_967_291),
            Err(MaglevError::SizeTooLarge {
                size: 4_294_967_291
            })
        );
    }

    #[test]
    fn single_backend_takes_every_slot() {
        let table = build(&named(&["only"]), 13).unwrap();
        assert_eq!(table.slots(), &[0; 13]);
        assert_eq!(table.lookup(0), Some(0));
        assert_eq!(table.lookup(u64::MAX), Some(0));
    }

    #[test]
    fn empty_list_has_no_backend() {
        let table = build(&[], 7).unwrap();
        assert_eq!(table.slots(), &[NO_BACKEND; 7]);
        assert_eq!(table.lookup(42), None);
        assert_eq!(table.shares(0), Vec::<usize>::new());
    }

    #[test]
    fn weight_zero_backend_gets_no_slot() {
        let backends = [
            MaglevBackend {
                name: "a",
                weight: 1,
            },
            MaglevBackend {
                name: "drained",
                weight: 0,
            },
            MaglevBackend {
                name: "c",
                weight: 1,
            },
        ];
        let shares = build(&backends, 101).unwrap().shares(3);
        assert_eq!(shares[1], 0);
        assert_eq!(shares[0] + shares[2], 101);
    }

    #[test]
    fn slots_moved_counts_identity_changes() {
        let old = build(&named(&["a", "b", "c"]), 101).unwrap();
        let same = build(&named(&["a", "b", "c"]), 101).unwrap();
        assert_eq!(old.slots_moved(&same, Some), 0);
        // Same backends listed in another order: no slot moves once identities are mapped.
        let reordered = build(&named(&["c", "a", "b"]), 101).unwrap();
        let old_to_new = |i: u32| Some((i + 1) % 3);
        assert_eq!(old.slots_moved(&reordered, old_to_new), 0);
        // Comparing by position instead would call nearly everything moved.
        assert!(old.slots_moved(&reordered, Some) > 50);
        // A different size moves everything.
        let bigger = build(&named(&["a", "b", "c"]), 103).unwrap();
        assert_eq!(old.slots_moved(&bigger, Some), 103);
    }
}
