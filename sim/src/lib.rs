//! hakmem-sim: the deterministic harness.
//!
//! * [`trace`]: the op trace and its text form (`t0 alloc p1 48`).
//! * [`bytes`]: the compact byte form fuzzers mutate, decoded into traces.
//! * [`gen`]: seeded workload mixes (random, larson, producer-consumer,
//!   slab-churn).
//! * [`fuzz`]: the drivers of the `fuzz/` targets, shared with tests;
//!   [`corpus`]: their seed corpus.
//! * [`sim_os`]: [`SimOs`], the deterministic, accounted, fault-injecting OS
//!   layer the allocator runs on in simulation.

pub mod bytes;
pub mod corpus;
pub mod explore;
pub mod fuzz;
pub mod gen;
pub mod isolate;
pub mod minimize;
pub mod model;
pub mod runner;
pub mod shuttle;
pub mod sim_os;
pub mod trace;
pub mod zoo;

pub use bytes::{decode, encode};
pub use gen::{generate, Mix, SplitMix64};
pub use runner::{run, Failure, FailureKind, GeometryKind, RunConfig, RunReport, SimProd, SimTiny};
pub use sim_os::{MappingInfo, SimOs, SimOsConfig, SimOsStats};

pub use trace::{
    headers, with_headers, Op, OsFailKind, ParseError, Trace, DEFAULT_ALIGN, MAX_TEXT_SIZE,
    MAX_THREADS,
};

/// Proptest case count: `PROPTEST_CASES` from the environment, 256 if unset.
#[cfg(test)]
pub(crate) fn test_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}
