//! hakmem: a slab allocator with per-thread caches, one core for every world.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod geometry;
pub mod platform;
pub mod size_class;

pub use geometry::{Geometry, SlabKind};
pub use platform::{AtomicPtrOps, AtomicUsizeOps, MutexOps, Os, OsBooks, OsError, Platform, Sched};
