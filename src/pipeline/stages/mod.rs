//! The stages a pipeline can be built from, by the names used in `pipelines/*.yaml`.

mod acl;
mod balance;
mod baseline;
mod classify;
mod icmp;
mod neighbor;
mod parse;
mod rewrite;

pub use acl::Acl;
pub use balance::Balance;
pub use baseline::{MacSwap, RxDrop};
pub use classify::Classify;
pub use icmp::Icmp;
pub use neighbor::Neighbor;
pub use parse::Parse;
pub use rewrite::Rewrite;

use super::stage::Stage;

/// Every stage name the loader knows, in the order `l4lb` uses them.
pub const STAGE_NAMES: [&str; 9] = [
    "parse", "neighbor", "icmp", "classify", "acl", "balance", "rewrite", "macswap", "rxdrop",
];

/// Builds the stage called `name`, or `None` if there is no such stage.
pub fn by_name(name: &str) -> Option<Box<dyn Stage>> {
    Some(match name {
        "parse" => Box::new(Parse),
        "neighbor" => Box::new(Neighbor),
        "icmp" => Box::new(Icmp),
        "classify" => Box::new(Classify),
        "acl" => Box::new(Acl),
        "balance" => Box::new(Balance),
        "rewrite" => Box::new(Rewrite),
        "macswap" => Box::new(MacSwap),
        "rxdrop" => Box::new(RxDrop),
        _ => return None,
    })
}
