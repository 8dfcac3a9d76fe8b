//! The shuttle platform: [`SimOs`] for memory, shuttle's atomics, lock and
//! yield for scheduling, the tiny geometry for sizes.
//!
//! Every atomic access and every lock of the allocator becomes a shuttle
//! scheduling point, so shuttle's schedulers choose the interleaving of the
//! real allocator code. `SimOs` never calls shuttle (its internal lock is a
//! `std` mutex held only inside one call), so it cannot block a shuttle task.
//!
//! The wrappers are newtypes because the allocator's traits and shuttle's
//! types are both foreign to this crate. The atomics are boxed: a shuttle
//! atomic is several words (a `RefCell` of the value, a clock, a resource
//! signature), and the allocator keeps its atomics in the segment header,
//! whose layout (slab records of one or two cache lines, a header that fits
//! in slab 0) must stay what the native build has. A box is one word, like
//! a `core` atomic; the segment drops its slab records when it is unmapped. Shuttle runs every atomic as
//! SeqCst whatever ordering is passed: orderings are checked by loom (see
//! `alloc/tests/loom_remote.rs`), interleavings here.

use std::sync::atomic::Ordering;

use ::shuttle::sync::atomic::AtomicUsize;
use hakmem::{AtomicUsizeOps, Geometry, MutexOps, Platform, Sched};

use crate::sim_os::SimOs;

/// The scheduling layer over shuttle. Usable only inside a shuttle
/// execution (shuttle's primitives panic outside one).
pub struct ShuttleSched;

impl Sched for ShuttleSched {
    type AtomicUsize = ShuttleAtomicUsize;
    type Mutex<T: Send> = ShuttleMutex<T>;

    #[inline]
    fn spin_loop_hint() {
        // A yield point that tells the scheduler this task is retrying
        // (PCT deprioritises it), so a lost CAS cannot spin forever.
        ::shuttle::hint::spin_loop();
    }
}

const _: () = assert!(
    std::mem::size_of::<ShuttleAtomicUsize>() == std::mem::size_of::<usize>(),
    "the shuttle atomics keep the native layout of the segment header"
);

/// The shuttle world: `SimOs`, shuttle scheduling, tiny slabs and segments.
pub struct ShuttleTiny;

impl Platform for ShuttleTiny {
    type Os = SimOs;
    type Sched = ShuttleSched;
    const GEOMETRY: Geometry = Geometry::TINY;
}

/// `AtomicUsize` whose every access is a shuttle scheduling point.
pub struct ShuttleAtomicUsize(Box<AtomicUsize>);

impl AtomicUsizeOps for ShuttleAtomicUsize {
    fn new(v: usize) -> Self {
        ShuttleAtomicUsize(Box::new(AtomicUsize::new(v)))
    }
    fn load(&self, order: Ordering) -> usize {
        self.0.load(order)
    }
    fn store(&self, v: usize, order: Ordering) {
        self.0.store(v, order)
    }
    fn swap(&self, v: usize, order: Ordering) -> usize {
        self.0.swap(v, order)
    }
    fn fetch_add(&self, v: usize, order: Ordering) -> usize {
        self.0.fetch_add(v, order)
    }
    fn fetch_sub(&self, v: usize, order: Ordering) -> usize {
        self.0.fetch_sub(v, order)
    }
    fn compare_exchange(
        &self,
        current: usize,
        new: usize,
        success: Ordering,
        failure: Ordering,
    ) -> Result<usize, usize> {
        self.0.compare_exchange(current, new, success, failure)
    }
}

/// shuttle's mutex: a task that finds it taken blocks, and the scheduler
/// picks another (contention is explored, never spun on).
pub struct ShuttleMutex<T>(::shuttle::sync::Mutex<T>);

impl<T: Send> MutexOps<T> for ShuttleMutex<T> {
    fn new(v: T) -> Self {
        ShuttleMutex(::shuttle::sync::Mutex::new(v))
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A panic under the lock (a failed assertion in a test) poisons
        // it; the state is still what the checker should look at.
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}
