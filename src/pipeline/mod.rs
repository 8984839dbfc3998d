//! Batched packet pipeline: the batch type, the stage trait, the stages and the loader
//! for `pipelines/*.yaml`.

pub mod batch;
pub mod verdict;
