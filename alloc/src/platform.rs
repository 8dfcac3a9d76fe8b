//! The platform: the two pluggable layers under the allocator.
//!
//! * [`Os`] gives memory: map / unmap / commit / decommit, and (optionally)
//!   the books of what it has handed out, so the checker can verify I6.
//! * [`Sched`] gives the thread-scheduling primitives the allocator
//!   synchronises with: atomics, a mutex and a spin/yield hint. Natively
//!   these are `core` atomics and a futex lock; under shuttle they are
//!   shuttle's, so every access is a scheduling point.
//!
//! A [`Platform`] bundles one of each with a [`Geometry`]. The allocator is
//! generic over it and monomorphised, so the native build pays nothing for
//! the abstraction and every world runs in one test binary.

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::geometry::Geometry;

/// Why the OS layer refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsError {
    /// The errno-like reason (`ENOMEM` for exhaustion, including injected faults).
    pub errno: i32,
    /// The number of bytes asked for.
    pub size: usize,
    /// True when the refusal was injected by a simulated OS.
    pub injected: bool,
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OS refused {} bytes (errno {}{})",
            self.size,
            self.errno,
            if self.injected { ", injected" } else { "" }
        )
    }
}

impl OsError {
    /// What the default of an optional operation (`remap`, `split`,
    /// `splice`) returns: EOPNOTSUPP.
    pub const fn unsupported(size: usize) -> OsError {
        OsError {
            errno: 95, // EOPNOTSUPP
            size,
            injected: false,
        }
    }
}

/// What an OS layer that keeps books says about its mappings (for I6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsBooks {
    /// Bytes currently mapped.
    pub mapped_size: usize,
    /// Mappings currently live.
    pub map_count: usize,
    /// Bytes currently committed (mapped and not decommitted).
    pub committed_size: usize,
    /// Misuses seen so far: unmap of something not mapped, double unmap,
    /// commit/decommit outside a mapping, unmap of a partial mapping.
    pub misuse_count: usize,
    /// An address no mapping this layer has ever made reaches past (0
    /// before the first): the checker scans the ownership registry only
    /// up to here, since every mark the allocator sets lies in a mapping.
    pub mapped_end: usize,
}

/// Memory from the operating system.
///
/// # Safety
/// Implementors promise that a successful `map(size, align)` returns
/// `size` bytes, aligned to `align`, readable and writable, zero-filled,
/// not overlapping any other live mapping, and inside
/// [`Os::address_range`]; and that the memory stays valid until `unmap`.
/// After `decommit` the range may read as zero or be inaccessible until
/// `commit` succeeds on it again.
pub unsafe trait Os: Send + Sync {
    /// Granularity of `map`, `commit` and `decommit`, a power of two.
    fn page_size(&self) -> usize;

    /// The half-open address range `[start, end)` every mapping lies in;
    /// the ownership registry covers exactly this range.
    fn address_range(&self) -> (usize, usize);

    /// [`address_range`](Self::address_range) when it is the same for
    /// every instance and known at compile time: the free path then tests
    /// a pointer against constants instead of loading the bounds.
    const FIXED_RANGE: Option<(usize, usize)> = None;

    /// Maps `size` bytes (a multiple of `page_size`) aligned to `align`
    /// (a power of two, at least `page_size`), committed and zeroed.
    fn map(&self, size: usize, align: usize) -> Result<NonNull<u8>, OsError>;

    /// Returns a whole mapping made by `map`.
    ///
    /// # Safety
    /// `ptr` and `size` are exactly those of one live mapping, and nothing
    /// accesses the range afterwards.
    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize);

    /// Makes a decommitted range usable again (zeroed).
    ///
    /// # Safety
    /// The range lies inside one live mapping and is page aligned.
    unsafe fn commit(&self, ptr: NonNull<u8>, size: usize) -> Result<(), OsError>;

    /// Resizes a whole mapping made by `map` to `new_size` bytes (aligned
    /// to `align`), keeping its contents (the rest reads as zero), without
    /// copying: in place, or by moving its pages. On success the old range
    /// is gone (unless the result is the same address). The default cannot.
    ///
    /// # Safety
    /// `ptr`/`old_size` are exactly one live mapping; on success nothing
    /// uses the old range any more.
    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, OsError> {
        let _ = (ptr, old_size, align);
        Err(OsError::unsupported(new_size))
    }

    /// Makes the whole mapping `ptr`/`size` two: `[ptr, ptr + at)` and
    /// `[ptr + at, ptr + size)`, each then a whole mapping of its own (to
    /// unmap, remap or splice). Nothing moves. `Err` (the default) if this
    /// layer cannot.
    ///
    /// # Safety
    /// `ptr`/`size` are exactly one live mapping; `at` is a positive
    /// multiple of the page size below `size`.
    unsafe fn split(&self, ptr: NonNull<u8>, size: usize, at: usize) -> Result<(), OsError> {
        let _ = (ptr, at);
        Err(OsError::unsupported(size))
    }

    /// Moves the pages of the whole mapping `src`/`size` (contents and all,
    /// without copying where the OS can) over `[dst, dst + size)`, which
    /// lies inside another live mapping; the source mapping is gone
    /// afterwards. On `Err` (the default: this layer cannot) nothing
    /// changed.
    ///
    /// # Safety
    /// `src`/`size` are exactly one live, wholly committed mapping, which
    /// nothing uses after a success; `[dst, dst + size)` is page aligned,
    /// committed, inside one other live mapping, and nothing else accesses
    /// it meanwhile.
    unsafe fn splice(
        &self,
        src: NonNull<u8>,
        size: usize,
        dst: NonNull<u8>,
    ) -> Result<(), OsError> {
        let _ = (src, dst);
        Err(OsError::unsupported(size))
    }

    /// Gives the physical memory of a range back; its contents are lost.
    ///
    /// # Safety
    /// The range lies inside one live mapping, is page aligned, and nothing
    /// accesses it until it is committed again.
    unsafe fn decommit(&self, ptr: NonNull<u8>, size: usize);

    /// Zeroes `size` bytes at `ptr` (calloc of reused memory). This
    /// default writes the zeros. An OS layer may instead give whole pages
    /// of a large range back (natively `MADV_DONTNEED`, after which
    /// private anonymous pages read as zero): cheaper than writing them,
    /// and a page nobody touches afterwards costs nothing at all.
    ///
    /// # Safety
    /// The range lies inside one live committed mapping, and nothing else
    /// accesses it meanwhile.
    unsafe fn zero(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: per the contract the range is ours and writable.
        unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size) }
    }

    /// The books, if this OS layer keeps them (the simulated one does).
    fn books(&self) -> Option<OsBooks> {
        None
    }

    /// Whether `[ptr, ptr + size)` lies inside one live mapping, if known.
    fn is_mapped(&self, ptr: usize, size: usize) -> Option<bool> {
        let _ = (ptr, size);
        None
    }

    /// The allocator found its own metadata corrupted (a remote-free queue
    /// node that is not a block of its slab): the native layer prints
    /// `hakmem: <what> <addr>` and aborts — never a silent repair. The
    /// simulated layers return: the allocator records the corruption and
    /// the checker reports it as an invariant violation.
    fn report_corruption(&self, what: &str, addr: usize) {
        let _ = (what, addr);
    }

    /// A random word for the free-tag secret (see `block.rs`). The
    /// simulated layers return a constant, so runs are reproducible.
    fn entropy(&self) -> usize {
        0x9e37_79b9_7f4a_7c15
    }

    /// Called when the allocator hands a block to the user (`live == true`:
    /// the whole block becomes accessible) or takes it back or carves it
    /// into a cache (`live == false`: its first 16 bytes, where the
    /// allocator keeps a free block's link and tag, stay accessible; the rest
    /// may be poisoned). The fuzzing OS layer poisons for AddressSanitizer;
    /// the native layer does nothing.
    #[inline(always)]
    fn mark_block(&self, ptr: *mut u8, size: usize, live: bool) {
        let _ = (ptr, size, live);
    }

    /// True when [`mark_block`](Self::mark_block) does anything. The free
    /// path reads the block's size from the slab only then: a Relaxed
    /// atomic load is never dropped by the compiler, even when its value
    /// goes unused.
    const MARKS_BLOCKS: bool = false;

    /// Called when a slab is bound to a class: its whole block area is
    /// uncarved and may be poisoned until blocks are carved from it.
    #[inline(always)]
    fn mark_uncarved(&self, ptr: *mut u8, size: usize) {
        let _ = (ptr, size);
    }
}

/// Atomic word used by the allocator for synchronisation.
pub trait AtomicUsizeOps: Send + Sync {
    /// True when the type is core's `AtomicUsize`, a bare word in memory:
    /// the free path may then compare it straight from memory (one
    /// instruction, see `fold.rs`) instead of through [`load`](Self::load).
    /// Model checkers' atomics, which must see every access, keep false.
    const PLAIN_WORD: bool = false;
    fn new(v: usize) -> Self;
    fn load(&self, order: Ordering) -> usize;
    fn store(&self, v: usize, order: Ordering);
    fn swap(&self, v: usize, order: Ordering) -> usize;
    fn fetch_add(&self, v: usize, order: Ordering) -> usize;
    fn fetch_sub(&self, v: usize, order: Ordering) -> usize;
    fn compare_exchange(
        &self,
        current: usize,
        new: usize,
        success: Ordering,
        failure: Ordering,
    ) -> Result<usize, usize>;
}

/// A mutual-exclusion lock around a `T`.
///
/// Implementations must not allocate through the allocator and must yield
/// (not spin forever) under contention.
pub trait MutexOps<T>: Send + Sync {
    fn new(v: T) -> Self;
    /// Runs `f` with exclusive access to the protected value.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

/// The thread-scheduling layer: atomics, locks and yield points.
///
/// (Not called `Sync`: that would shadow `core::marker::Sync`.)
pub trait Sched: 'static + Send + Sync {
    type AtomicUsize: AtomicUsizeOps;
    type Mutex<T: Send>: MutexOps<T>;

    /// A hint inside a retry loop (a CAS that lost a race).
    fn spin_loop_hint();
}

/// One world: an OS layer, a scheduling layer and the sizes.
pub trait Platform: 'static + Sized {
    type Os: Os;
    type Sched: Sched;
    /// Segment, slab and class sizes; see [`Geometry`].
    const GEOMETRY: Geometry;
    /// True when a panic inside the allocator ends the process anyway.
    /// Natively it does: a panic there can only come from a broken
    /// invariant, and nothing may unwind out of the C `free` or a
    /// `GlobalAlloc`. The fast paths then call their slow paths through a
    /// shim that cannot unwind (see `heap::nounwind`), so they need no
    /// unwind frame and end in tail calls. The simulation platforms leave
    /// it false: their tools catch a panicking allocator as a failure.
    const PANIC_ABORTS: bool = false;
}

/// Shorthands used throughout the crate.
pub(crate) type AtomicUsizeOf<P> = <<P as Platform>::Sched as Sched>::AtomicUsize;
pub(crate) type MutexOf<P, T> = <<P as Platform>::Sched as Sched>::Mutex<T>;
