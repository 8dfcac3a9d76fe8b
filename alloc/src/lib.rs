//! hakmem: a slab allocator with per-thread caches, one core for every world.
//!
//! The allocator is generic over a [`Platform`] (an [`Os`] layer for memory,
//! a [`Sched`] layer for atomics and locks, and a [`Geometry`]), so the same
//! code runs natively ([`HakMem`] as `#[global_allocator]`, `libhakmem.so`
//! under `LD_PRELOAD`), in the deterministic simulation (`hakmem-sim`) and
//! under shuttle's schedulers.
//!
//! Module map (layers call downward only): [`heap`] (front: thread caches,
//! refill, drain, remote free) → `thread_cache` → `slab` / `remote` →
//! `segment` → `pool` / `large` → [`platform`]; `registry` answers
//! ownership; `check` verifies the invariants I1–I6 of DESIGN.md.
#![deny(unsafe_op_in_unsafe_fn)]

mod allocator;
mod block;
pub mod check;
pub mod config;
pub mod error;
mod fold;
pub mod geometry;
mod global;
pub mod heap;
mod large;
mod list;
pub mod native;
pub mod platform;
mod pool;
mod registry;
mod remote;
mod segment;
pub mod size_class;
mod slab;
pub mod stats;
mod thread_cache;
pub mod zoo;

pub use allocator::{Allocator, Heap};
pub use check::{CheckReport, Invariant, SlabDump, Violation};
pub use config::Config;
pub use error::{AllocError, FreeError, ReallocError};
pub use geometry::{Geometry, SlabKind};
pub use global::HakMem;
pub use native::{Native, NativeOs, NativeSched};
pub use platform::{AtomicUsizeOps, MutexOps, Os, OsBooks, OsError, Platform, Sched};
pub use slab::SlabState;
pub use stats::Stats;
pub use zoo::{Bug, Zoo};

/// The lock-free core, reachable for model checkers (loom drives the
/// remote-free stack in `tests/loom_remote.rs`). Not an API.
#[doc(hidden)]
pub mod __model {
    pub use crate::block::Block;
    pub use crate::remote::{RemoteStack, Taken};
}

#[cfg(test)]
mod tests;
