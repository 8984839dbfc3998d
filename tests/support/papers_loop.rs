//! The paper's Maglev population loop (NSDI 2016, §3.4, with credit rounds for weights), one
//! probe at a time and no shortcut. `tests/maglev_props.rs` checks the fast build against it slot
//! for slot; `perf/benches/maglev.rs` times it next to the build, so the speed-up is measured in
//! one run whatever the host's load.

use xlb::lb::hash::backend_hashes;
use xlb::lb::maglev::{MaglevBackend, NO_BACKEND};

/// The table by the paper's loop: every slot's backend index (or [`NO_BACKEND`]), as
/// `MaglevTable::slots` gives them.
pub fn plain_loop_build(backends: &[MaglevBackend<'_>], size: u32) -> Vec<u32> {
    struct Turn<'a> {
        name: &'a str,
        index: u32,
        position: u64,
        skip: u64,
        credit: u64,
    }
    let modulus = u64::from(size);
    let mut slots = vec![NO_BACKEND; size as usize];
    let max_weight = backends
        .iter()
        .map(|b| u64::from(b.weight))
        .max()
        .unwrap_or(0);
    let mut turns: Vec<Turn<'_>> = backends
        .iter()
        .zip(0u32..)
        .filter(|(b, _)| b.weight > 0)
        .map(|(b, index)| {
            let (h1, h2) = backend_hashes(b.name);
            Turn {
                name: b.name,
                index,
                position: h1 % modulus,
                skip: h2 % (modulus - 1) + 1,
                credit: 0,
            }
        })
        .collect();
    turns.sort_by_key(|turn| turn.name);
    let mut filled = 0;
    while max_weight > 0 && filled < slots.len() {
        for turn in &mut turns {
            turn.credit += u64::from(backends[turn.index as usize].weight);
            while turn.credit >= max_weight && filled < slots.len() {
                turn.credit -= max_weight;
                while slots[turn.position as usize] != NO_BACKEND {
                    turn.position = (turn.position + turn.skip) % modulus;
                }
                slots[turn.position as usize] = turn.index;
                turn.position = (turn.position + turn.skip) % modulus;
                filled += 1;
            }
        }
    }
    slots
}
