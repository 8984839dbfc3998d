//! Property tests of `lb::maglev`: the same table as the paper's plain loop, no hole,
//! determinism (with pinned golden tables), weight proportionality, bounded disruption when a
//! backend leaves or joins, balance at `M > 100·N`, and an empty table when every weight is 0.

use std::collections::BTreeSet;

use proptest::prelude::*;
use xlb::lb::hash::backend_hashes;
use xlb::lb::maglev::{build, MaglevBackend, MaglevTable, DEFAULT_SIZE, NO_BACKEND};
use xxhash_rust::xxh3::xxh3_64;

#[path = "support/papers_loop.rs"]
mod papers_loop;
use papers_loop::plain_loop_build;

/// Primes used as table sizes; 65537 is the default.
const SIZES: [u32; 4] = [251, 1021, 4093, 65_537];

/// Distinct backend names, as a validated configuration has.
fn names(count: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z][a-z0-9.-]{0,15}", count)
        .prop_map(|set: BTreeSet<String>| set.into_iter().collect())
}

/// Distinct names, each with a weight drawn from `weights`.
fn weighted_names(
    count: std::ops::RangeInclusive<usize>,
    weights: std::ops::RangeInclusive<u32>,
) -> impl Strategy<Value = (Vec<String>, Vec<u32>)> {
    names(count).prop_flat_map(move |names| {
        let n = names.len();
        (Just(names), prop::collection::vec(weights.clone(), n))
    })
}

fn weighted<'a>(names: &'a [String], weights: &[u32]) -> Vec<MaglevBackend<'a>> {
    names
        .iter()
        .zip(weights)
        .map(|(name, &weight)| MaglevBackend { name, weight })
        .collect()
}

fn equal_weights(names: &[String]) -> Vec<MaglevBackend<'_>> {
    names
        .iter()
        .map(|name| MaglevBackend { name, weight: 1 })
        .collect()
}

/// Slots that changed backend when backend `removed` left (indices above it shift down).
fn moved_after_removal(old: &MaglevTable, new: &MaglevTable, removed: usize) -> usize {
    let removed = removed as u32;
    old.slots_moved(new, |i| match i.cmp(&removed) {
        std::cmp::Ordering::Less => Some(i),
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(i - 1),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_the_papers_plain_loop(
        backends in weighted_names(1..=60, 0u32..=5),
        size in prop::sample::select(vec![7u32, 31, 251, 1021, 4093, 65_537]),
    ) {
        let (names, weights) = backends;
        let list = weighted(&names, &weights);
        let table = build(&list, size).unwrap();
        prop_assert_eq!(table.slots(), &plain_loop_build(&list, size)[..]);
    }

    #[test]
    fn matches_the_papers_plain_loop_with_equal_weights(
        names in names(1..=60),
        weight in 1u32..=3,
        size in prop::sample::select(vec![7u32, 31, 251, 1021, 4093, 65_537]),
    ) {
        // Equal weights take a loop of their own in the build, without credit.
        let list = weighted(&names, &vec![weight; names.len()]);
        let table = build(&list, size).unwrap();
        prop_assert_eq!(table.slots(), &plain_loop_build(&list, size)[..]);
    }

    #[test]
    fn no_slot_is_empty_with_positive_weights(
        backends in weighted_names(1..=40, 1u32..=1000),
        size in prop::sample::select(SIZES.to_vec()),
        hash in any::<u64>(),
    ) {
        let (names, weights) = backends;
        let list = weighted(&names, &weights);
        let table = build(&list, size).unwrap();
        prop_assert_eq!(table.size(), size);
        prop_assert!(table.slots().iter().all(|&b| (b as usize) < list.len()));
        prop_assert!(table.lookup(hash).is_some());
    }

    #[test]
    fn same_input_builds_same_table_in_any_order(
        names in names(1..=30),
        size in prop::sample::select(SIZES.to_vec()),
    ) {
        let list = equal_weights(&names);
        let first = build(&list, size).unwrap();
        prop_assert_eq!(&first, &build(&list, size).unwrap());
        // Listing the same backends in reverse moves no slot once identities are mapped.
        let reversed: Vec<MaglevBackend<'_>> = list.iter().rev().copied().collect();
        let last = list.len() as u32 - 1;
        prop_assert_eq!(first.slots_moved(&build(&reversed, size).unwrap(), |i| Some(last - i)), 0);
    }

    #[test]
    fn shares_follow_weights(
        backends in weighted_names(1..=20, 1u32..=100),
    ) {
        // Credit rounds give backend i between e_i - 2 and e_i + N + 1 slots, where
        // e_i = M·w_i/Σw (the last, partial round and per-backend rounding).
        let (names, weights) = backends;
        let list = weighted(&names, &weights);
        let size = 65_537u32;
        let shares = build(&list, size).unwrap().shares(list.len());
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        for (share, &weight) in shares.iter().zip(&weights) {
            let expected = f64::from(size) * f64::from(weight) / total as f64;
            let share = *share as f64;
            prop_assert!(share >= expected - 2.0, "share {share} expected {expected}");
            prop_assert!(share <= expected + list.len() as f64 + 1.0, "share {share} expected {expected}");
        }
    }

    #[test]
    fn equal_weights_balance_within_one_percent(
        names in names(1..=60),
    ) {
        let size = 65_537u32; // > 100·N for every N here
        let shares = build(&equal_weights(&names), size).unwrap().shares(names.len());
        let max = *shares.iter().max().unwrap() as f64;
        let mean = f64::from(size) / names.len() as f64;
        prop_assert!(max / mean <= 1.01, "max/mean {}", max / mean);
        // Equal weights take turns exactly: shares differ by at most one slot.
        prop_assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
    }

    #[test]
    fn removal_at_default_size_moves_close_to_minimum(
        // From five backends up: below that, Maglev's round-robin interleaving itself
        // shifts (2 -> 3 backends was seen moving 2.03·M/N), a known small-N limit.
        names in names(5..=50),
        pick in any::<prop::sample::Index>(),
    ) {
        // Measured worst over random sets with distinct skips for N = 5..51: 1.34·M/N (at
        // N = 50; 1.06 at N = 10). Shared skips: `two_backends_sharing_a_skip_move_more`.
        prop_assume!(skips_are_distinct(&names, DEFAULT_SIZE));
        let size = DEFAULT_SIZE;
        let all = equal_weights(&names);
        let removed = pick.index(all.len());
        let mut fewer = all.clone();
        fewer.remove(removed);
        let old = build(&all, size).unwrap();
        let new = build(&fewer, size).unwrap();
        let moved = moved_after_removal(&old, &new, removed);
        let minimal = old.shares(all.len())[removed];
        prop_assert!(moved >= minimal);
        let fair = f64::from(size) / all.len() as f64;
        prop_assert!(moved as f64 <= 1.4 * fair, "moved {moved}, M/N {fair}");
    }

    #[test]
    fn addition_moves_close_to_minimum(
        names in names(6..=51),
    ) {
        // The last name joins the others; measured worst with distinct skips 1.31·M/(N+1) at
        // M = 65537.
        prop_assume!(skips_are_distinct(&names, DEFAULT_SIZE));
        let size = DEFAULT_SIZE;
        let all = equal_weights(&names);
        let before = &all[..all.len() - 1];
        let old = build(before, size).unwrap();
        let new = build(&all, size).unwrap();
        let moved = old.slots_moved(&new, Some);
        let joined = new.shares(all.len())[all.len() - 1];
        prop_assert!(moved >= joined);
        let fair = f64::from(size) / all.len() as f64;
        prop_assert!(moved as f64 <= 1.4 * fair, "moved {moved}, M/(N+1) {fair}");
    }

    #[test]
    fn zero_total_weight_has_no_backend(
        names in names(0..=10),
        size in prop::sample::select(SIZES.to_vec()),
        hash in any::<u64>(),
    ) {
        let list: Vec<MaglevBackend<'_>> = names
            .iter()
            .map(|name| MaglevBackend { name, weight: 0 })
            .collect();
        let table = build(&list, size).unwrap();
        prop_assert!(table.slots().iter().all(|&b| b == NO_BACKEND));
        prop_assert_eq!(table.lookup(hash), None);
    }
}

/// Whether no two names get the same Maglev skip at `size`.
fn skips_are_distinct(names: &[String], size: u32) -> bool {
    let skips: BTreeSet<u64> = names
        .iter()
        .map(|name| backend_hashes(name).1 % u64::from(size - 1))
        .collect();
    skips.len() == names.len()
}

#[test]
fn two_backends_sharing_a_skip_move_more() {
    // "g.37vn-peh5-" and "v3dwi" get the same skip at M = 65537 (their second hashes agree in
    // the low 16 bits), so their permutations are one sequence shifted, and they contend for
    // it all the way. Removing any backend of the set reshuffles that contest: 1.32 to 1.95·M/N
    // moved, against 1.05 for sets without a shared skip. Two of N backends share a skip with
    // chance about N²/2¹⁷ (2% at N = 50); the paper's permutation allows it.
    let names: Vec<String> = ["a.6", "g.37vn-peh5-", "ga", "gb", "v3dwi"]
        .map(String::from)
        .to_vec();
    assert!(!skips_are_distinct(&names, DEFAULT_SIZE));
    let all = equal_weights(&names);
    let old = build(&all, DEFAULT_SIZE).unwrap();
    let fair = f64::from(DEFAULT_SIZE) / names.len() as f64;
    for removed in 0..names.len() {
        let mut fewer = all.clone();
        fewer.remove(removed);
        let new = build(&fewer, DEFAULT_SIZE).unwrap();
        let moved = moved_after_removal(&old, &new, removed) as f64;
        assert!(
            (1.3 * fair..=2.0 * fair).contains(&moved),
            "removing {removed}: moved {moved}"
        );
    }
}

#[test]
fn removal_at_small_size_moves_close_to_minimum_on_average() {
    // At M ≈ 100·N Maglev's disruption is heavy-tailed: over seeded name sets the mean stays
    // near the minimum but single cases reached 2.33·M/N (N = 10, M = 1021). So this checks a
    // fixed sample's mean and worst rather than each random case.
    let size = 1021u32;
    for count in [4usize, 10] {
        let mut ratios = Vec::new();
        for set in 0..200u64 {
            let names: Vec<String> = (0..count as u64)
                .map(|i| {
                    format!(
                        "{:x}.backend",
                        splitmix(set * 64 + i + count as u64 * 1_000_000)
                    )
                })
                .collect();
            let all = equal_weights(&names);
            let removed = set as usize % count;
            let mut fewer = all.clone();
            fewer.remove(removed);
            let old = build(&all, size).unwrap();
            let moved = moved_after_removal(&old, &build(&fewer, size).unwrap(), removed);
            assert!(moved >= old.shares(count)[removed]);
            ratios.push(moved as f64 * count as f64 / f64::from(size));
        }
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let worst = ratios.iter().cloned().fold(0.0, f64::max);
        assert!(mean <= 1.35, "N = {count}: mean moved {mean}·M/N");
        assert!(worst <= 2.6, "N = {count}: worst moved {worst}·M/N");
    }
}

/// A splitmix64 step: seeded, well-spread names for the fixed samples.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn small_weighted_table_is_pinned() {
    // A golden table: if this changes, instances of different versions disagree on every flow.
    let list = [
        MaglevBackend {
            name: "alpha",
            weight: 1,
        },
        MaglevBackend {
            name: "bravo",
            weight: 2,
        },
        MaglevBackend {
            name: "charlie",
            weight: 3,
        },
        MaglevBackend {
            name: "delta",
            weight: 4,
        },
    ];
    let table = build(&list, 31).unwrap();
    assert_eq!(
        table.slots(),
        &[
            3, 0, 3, 1, 3, 3, 1, 3, 3, 2, 0, 3, 3, 3, 0, 2, 2, 3, 3, 2, 1, 2, 2, 1, 2, 2, 2, 1, 1,
            3, 3
        ]
    );
    assert_eq!(table.shares(4), vec![3, 6, 9, 13]);
}

#[test]
fn default_size_table_checksum_is_pinned() {
    let names: Vec<String> = (0..10).map(|i| format!("node-{i}.example")).collect();
    let table = build(&equal_weights(&names), 65_537).unwrap();
    let bytes: Vec<u8> = table.slots().iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(xxh3_64(&bytes), 13_419_030_608_933_770_631);
}
