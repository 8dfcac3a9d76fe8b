//! The per-thread heap: thread caches in front of the slabs it owns.
//!
//! * `alloc`: pop from the class's thread cache; on a miss, refill a batch
//!   from the current slab (local free list, then its collected remote
//!   queue, then bump carving), moving on to another owned slab with free
//!   blocks, an abandoned slab (adoption) or a fresh slab from the pool.
//! * `free` by the owner: push onto the thread cache; a block that finds
//!   the cache full goes on to its slab's free list (which is what lets a
//!   slab become empty); every `drain_interval` refills, the caches of
//!   classes that look unused give half their blocks back to their slabs.
//! * `free` by anyone else: push onto the slab's remote queue.
//! * Exit: parked whole for the next new thread while fewer than
//!   `Config::parked_heaps` are (no flush: its caches and slabs stay warm,
//!   and blocks its thread handed on are local frees for the next), else
//!   `abandon`: flush the caches, collect, retire empty slabs and leave
//!   the others on the pool's abandoned lists for adoption.
//!
//! Invariants (checked in check.rs):
//! I4 HEAP-CLASS  every cached block belongs to a slab of the cache's class
//!                owned by this heap; every slab on a class list is owned by
//!                this heap and has that class; `current` is on its list
//! I4 HEAP-PARKED the parked heaps are distinct live heaps, each on the
//!                parked list once, at most `Config::parked_heaps` of them,
//!                and the list's count is their number
//! I5 HEAP-EMPTY  after a flush (`drain`), no slab this heap owns is empty

use core::cell::Cell;
use core::ptr::{self, NonNull};

use crate::allocator::Allocator;
use crate::block::{self, Block};
use crate::error::{AllocError, FreeError, ReallocError};
use crate::geometry::MIN_ALIGN;
use crate::large::LocalLarge;
use crate::list::Links;
use crate::platform::{AtomicUsizeOps, MutexOps, Os, Platform};
use crate::pool::SlabList;
use crate::registry::{Region, RegistryView, SEG_MID, SEG_SMALL};
use crate::segment::Segment;
use crate::size_class::{
    class_for, class_of, class_of_size, class_size, MAX_CLASSES, SMALL_LOOKUP_MAX,
};
use crate::slab::{cache_offset, BlockLookup, Slab, SlabState, NO_OWNER};
use crate::stats::HeapStats;
use crate::thread_cache::{cache_at, ThreadCache};
use crate::zoo::{Bug, Zoo};

use core::sync::atomic::Ordering::Relaxed;

/// The free path's misuse checks (block-start test, free tags). Only the
/// benchmark-baseline feature `unchecked` turns them off, to measure what
/// they cost; the checker's BLOCK-TAG clause does not hold without them.
const CHECKED: bool = !cfg!(feature = "unchecked");

/// How many owned slabs a refill looks at before going to the pool.
const SCAN_LIMIT: usize = 8;

/// Entries of a heap's size table (see `HeapData::small_cache`): one per
/// request size from 0 to `SMALL_LOOKUP_MAX`.
const SIZE_TABLE_LEN: usize = SMALL_LOOKUP_MAX + 1;

/// How many abandoned slabs one refill may adopt.
const ADOPT_LIMIT: usize = 4;

pub(crate) struct HeapClass<P: Platform> {
    /// The slab refills try first (on `slabs`), or null.
    pub(crate) current: *mut Slab<P>,
    /// Every slab this heap owns for the class.
    pub(crate) slabs: SlabList<P>,
}

/// A heap's state. It lives in OS-mapped metadata (see `Allocator::create_heap`),
/// never in memory from the allocator itself.
#[repr(C)]
pub struct HeapData<P: Platform> {
    // ---- hot: the fast paths read only these ----
    pub(crate) caches: [ThreadCache; MAX_CLASSES],
    /// Refills left before the next periodic drain (see `count_refill`).
    pub(crate) refills_left: u32,
    /// True from a flush until the next refill (I5 applies then).
    pub(crate) flushed: bool,
    /// The owner id of this heap's slabs: the record's own address (set by
    /// [`place`](Self::place)), so the free path compares a slab's owner
    /// with the heap pointer it holds anyway, with no load of an id (free
    /// 5.5 -> 5.15 TSC ticks in a batch loop of 400 x 32 B). Unique among
    /// live heaps; a record is reused only after its heap gave up every
    /// slab (`abandon` stores `NO_OWNER` in each under the pool lock before
    /// `release_heap` frees the slot under the heaps lock, which the next
    /// `create_heap` takes), so no slab names a reused record's old heap.
    pub(crate) id: usize,
    pub(crate) key: usize,
    pub(crate) zoo: Zoo,
    pub(crate) registry: RegistryView,
    pub(crate) alloc: *const Allocator<P>,
    // ---- slow paths ----
    pub(crate) classes: [HeapClass<P>; MAX_CLASSES],
    /// Freed large mappings this heap keeps for reuse.
    pub(crate) large: LocalLarge,
    pub(crate) stats: HeapStats,
    /// Each cache's `state_hash` at the last periodic drain.
    pub(crate) seen: [u32; MAX_CLASSES],
    /// Frees that found each class's cache full since the class's last
    /// refill or capacity change (see `grow_cache`).
    pub(crate) overflows: [u32; MAX_CLASSES],
    /// Links on the allocator's heap list (or its free-slot chain).
    pub(crate) next: Cell<*mut HeapData<P>>,
    pub(crate) prev: Cell<*mut HeapData<P>>,
    /// The next parked heap while this one is parked (under the heaps
    /// lock; see `Config::parked_heaps`).
    pub(crate) parked_next: *mut HeapData<P>,
}

pub(crate) struct HeapLinks;
impl<P: Platform> Links<HeapData<P>> for HeapLinks {
    fn next(t: &HeapData<P>) -> &Cell<*mut HeapData<P>> {
        &t.next
    }
    fn prev(t: &HeapData<P>) -> &Cell<*mut HeapData<P>> {
        &t.prev
    }
}

/// Slabs found empty during a drain, retired together under one lock.
struct RetireBatch<P: Platform> {
    slabs: [*mut Slab<P>; 16],
    len: usize,
}

impl<P: Platform> RetireBatch<P> {
    fn new() -> Self {
        RetireBatch {
            slabs: [ptr::null_mut(); 16],
            len: 0,
        }
    }
}

/// One class cache's walk in a drain (see `HeapData::drain_step`).
struct DrainWalk<P: Platform> {
    class: usize,
    /// The next cached block to look at.
    next: *mut Block,
    /// Blocks still to take off the cache.
    left: u32,
    /// The run being gathered: blocks of `slab`, which spans `[lo, lo +
    /// span)`; none while `run_len` is 0.
    run_head: *mut Block,
    run_tail: *mut Block,
    run_len: u32,
    slab: *mut Slab<P>,
    lo: usize,
    span: usize,
}

impl<P: Platform> Clone for DrainWalk<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Platform> Copy for DrainWalk<P> {}

impl<P: Platform> DrainWalk<P> {
    const IDLE: Self = DrainWalk {
        class: 0,
        next: ptr::null_mut(),
        left: 0,
        run_head: ptr::null_mut(),
        run_tail: ptr::null_mut(),
        run_len: 0,
        slab: ptr::null_mut(),
        lo: 0,
        span: 0,
    };
}

impl<P: Platform> HeapData<P> {
    pub(crate) fn new(alloc: &Allocator<P>, key: usize) -> Self {
        let cfg = &alloc.config;
        // Classes beyond the geometry's have no cache (capacity 0, no
        // array): nothing is ever cached there.
        let caches = core::array::from_fn(|c| {
            ThreadCache::new(if c < P::GEOMETRY.class_count() {
                cfg.cache_capacity(class_size(c))
            } else {
                0
            })
        });
        HeapData {
            caches,
            refills_left: cfg.drain_interval.max(1),
            flushed: false,
            // Set by `place`, once the record is where it stays.
            id: NO_OWNER,
            key,
            zoo: cfg.zoo,
            registry: alloc.registry_view(),
            alloc,
            classes: core::array::from_fn(|_| HeapClass {
                current: ptr::null_mut(),
                slabs: SlabList::new(),
            }),
            large: LocalLarge::new(),
            stats: HeapStats::new(),
            seen: [0; MAX_CLASSES],
            overflows: [0; MAX_CLASSES],
            next: Cell::new(ptr::null_mut()),
            prev: Cell::new(ptr::null_mut()),
            parked_next: ptr::null_mut(),
        }
    }

    /// Bytes of a heap slot: the record, its size table (see
    /// [`small_cache`](Self::small_cache)), then its caches' arrays (a
    /// slot for each block of each class's largest capacity, after a null
    /// guard slot, see `ThreadCache::pop`), 64-byte rounded. The arrays'
    /// pages are touched only as the caches fill them.
    pub(crate) fn slot_size(cfg: &crate::Config) -> usize {
        let slots: usize = (0..P::GEOMETRY.class_count())
            .map(|c| cfg.cache_capacity_max(class_size(c)) as usize)
            .sum();
        let words = SIZE_TABLE_LEN + P::GEOMETRY.class_count() + slots;
        (core::mem::size_of::<Self>() + words * core::mem::size_of::<usize>() + 63) & !63
    }

    /// Writes a new heap's record to `slot`, where it stays for its whole
    /// life, gives it its id (`slot`'s address), fills its size table with
    /// its own caches' addresses and gives each cache its array.
    ///
    /// Out of line: the record is built on the stack first (about 5 KiB,
    /// a page more for the stack probe), and a caller that takes a parked
    /// heap instead should not pay for that frame. Inlined into the heaps
    /// lock's closure, it made every new thread of larson touch (and its
    /// exit `madvise` away) the extra stack pages.
    ///
    /// # Safety
    /// `slot` is valid for writes of [`slot_size`](Self::slot_size) bytes,
    /// aligned, and holds no live record; the record is never moved from
    /// it.
    #[inline(never)]
    pub(crate) unsafe fn place(slot: *mut Self, alloc: &Allocator<P>, key: usize) {
        // SAFETY: per the contract; the table's entries are in-bounds
        // offsets of the cache array (`class_of` of a size up to
        // SMALL_LOOKUP_MAX is below MAX_CLASSES); the table and the arrays
        // lie inside the slot (`slot_size` counts them).
        unsafe {
            ptr::write(slot, Self::new(alloc, key));
            (*slot).id = slot as usize;
            let caches = ptr::addr_of_mut!((*slot).caches).cast::<ThreadCache>();
            let table = Self::size_table(slot);
            for size in 0..SIZE_TABLE_LEN {
                *table.add(size) = caches.byte_add(cache_offset(class_of(size)));
            }
            let cfg = &alloc.config;
            let mut array = Self::arrays(slot);
            for c in 0..P::GEOMETRY.class_count() {
                // The guard below the class's array (TC-BOUND).
                *array = ptr::null_mut();
                array = array.add(1);
                (*slot).caches[c].attach(array);
                array = array.add(cfg.cache_capacity_max(class_size(c)) as usize);
            }
        }
    }

    /// The record's size table: right after the record, in its slot.
    #[inline(always)]
    fn size_table(this: *const Self) -> *mut *mut ThreadCache {
        this.wrapping_add(1).cast::<*mut ThreadCache>().cast_mut()
    }

    /// Where the caches' arrays start in the record's slot, class after
    /// class, each after its guard slot: after the size table.
    pub(crate) fn arrays(this: *const Self) -> *mut *mut Block {
        Self::size_table(this)
            .wrapping_add(SIZE_TABLE_LEN)
            .cast::<*mut Block>()
    }

    /// [`id`](Self::id), as the record's address: the same value, which
    /// the compiler already has in a register.
    #[inline(always)]
    fn own_id(&self) -> usize {
        debug_assert_eq!(self.id, self as *const Self as usize);
        self as *const Self as usize
    }

    /// The allocator, with a lifetime not tied to `self`: a heap never
    /// outlives its allocator (`Heap<'a>` borrows it; the native allocator
    /// is a static), so the reference stays valid while the heap is used.
    #[inline(always)]
    pub(crate) fn allocator<'x>(&self) -> &'x Allocator<P> {
        // SAFETY: see above.
        unsafe { &*self.alloc }
    }

    // ------------------------------------------------------------------
    // alloc

    /// Allocates `size` bytes aligned to `align`, which must be a power of
    /// two (anything else is `BadAlign`).
    #[inline(always)]
    pub fn alloc(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        if !align.is_power_of_two() {
            return Err(AllocError::BadAlign { align });
        }
        self.alloc_pow2(size, align)
    }

    /// [`alloc`](Self::alloc) for an alignment already known to be a power
    /// of two (a `Layout`'s, or the C ABI's default): the fast path is a
    /// cache lookup, a pop and one branch.
    #[inline(always)]
    pub fn alloc_pow2(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        self.pop_small(
            size,
            align,
            // SAFETY: a live block from `pop_small`, non-null.
            |_, b| Ok(unsafe { NonNull::new_unchecked(b) }),
            |h| h.alloc_slow(size, align, false),
        )
    }

    /// [`alloc_pow2`](Self::alloc_pow2) returning a raw pointer, null on
    /// failure: what `malloc` and `GlobalAlloc` want, without building a
    /// `Result` on the fast path.
    #[inline(always)]
    pub fn alloc_raw(&mut self, size: usize, align: usize) -> *mut u8 {
        self.alloc_raw_or(size, align, |h| {
            h.slow((size, align), |h, (size, align)| {
                h.alloc_raw_slow(size, align)
            })
        })
    }

    /// [`alloc_raw`](Self::alloc_raw) with the caller's slow path (the C
    /// ABI's sets `errno` there, so that the fast path ends in a tail call).
    #[inline(always)]
    pub(crate) fn alloc_raw_or(
        &mut self,
        size: usize,
        align: usize,
        miss: impl FnOnce(&mut Self) -> *mut u8,
    ) -> *mut u8 {
        self.pop_small(size, align, |_, b| b, miss)
    }

    /// Runs a slow path `f(self, args)` of a fast path: through
    /// [`nounwind`] when a panic aborts anyway (`Platform::PANIC_ABORTS`),
    /// so that the fast path needs no unwind frame and can end in a tail
    /// call. `f` should capture nothing and `args` fit in two registers:
    /// then the call passes everything in registers and the fast path
    /// needs no stack frame at all.
    #[inline(always)]
    pub(crate) fn slow<A, R>(&mut self, args: A, f: impl FnOnce(&mut Self, A) -> R) -> R {
        if P::PANIC_ABORTS {
            nounwind(self, args, f)
        } else {
            f(self, args)
        }
    }

    /// [`alloc_raw`](Self::alloc_raw), zero-filled (`calloc`): the same
    /// fast path, then the size's bytes cleared.
    #[inline(always)]
    pub fn alloc_zeroed_raw(&mut self, size: usize, align: usize) -> *mut u8 {
        self.pop_small(
            size,
            align,
            |_, b| {
                // SAFETY: a live block of at least `size` bytes, ours now.
                unsafe { ptr::write_bytes(b, 0, size) };
                b
            },
            |h| match h.alloc_slow(size, align, true) {
                Ok(p) => p.as_ptr(),
                Err(_) => ptr::null_mut(),
            },
        )
    }

    /// The fast path: a request with the default alignment that a slab
    /// class serves, from the thread cache (a cache lookup, a pop, one
    /// branch) as a live block given to `hit`; anything else goes to
    /// `miss`. Up to `SMALL_LOOKUP_MAX` bytes the cache's offset comes from
    /// the heap's table; beyond, from `class_of_size`'s arithmetic (a
    /// leading-zero count and shifts), still without a call.
    #[inline(always)]
    fn pop_small<R>(
        &mut self,
        size: usize,
        align: usize,
        hit: impl FnOnce(&mut Self, *mut u8) -> R,
        miss: impl FnOnce(&mut Self) -> R,
    ) -> R {
        debug_assert!(align.is_power_of_two());
        if align <= MIN_ALIGN {
            let cache = if size <= SMALL_LOOKUP_MAX {
                self.small_cache(size)
            } else if size <= P::GEOMETRY.mid_max_size {
                // Laid out of line, so the small path falls straight
                // through to the pop (a taken branch there cost pair ~30 %).
                cold_path();
                // SAFETY: the class count is `class_of_size(mid_max_size) +
                // 1`, which bounds `class_of_size` (monotonic) of every size
                // up to `mid_max_size`: an in-bounds cache offset.
                unsafe { cache_at(self.caches.as_mut_ptr(), cache_offset(class_of_size(size))) }
            } else {
                return miss(self);
            };
            // SAFETY: either way, one of this heap's caches (`place` filled
            // the table), not otherwise borrowed here.
            let cache = unsafe { &mut *cache };
            let b = cache.pop();
            if !b.is_null() {
                if CHECKED {
                    // SAFETY: a cached block is a free block of one of our slabs.
                    unsafe { block::make_live(b) };
                }
                if <P::Os as Os>::MARKS_BLOCKS {
                    let off = cache as *mut ThreadCache as usize - self.caches.as_ptr() as usize;
                    self.allocator().os.mark_block(
                        b.cast(),
                        class_size(off / core::mem::size_of::<ThreadCache>()),
                        true,
                    );
                }
                return hit(self, b.cast());
            }
        }
        miss(self)
    }

    /// The cache of the class of a request of at most `SMALL_LOOKUP_MAX`
    /// bytes, from the heap's size table: one pointer per request size,
    /// `&caches[class_of(size)]`, right after the record (see
    /// [`place`](Self::place)). Indexed by the size itself, so the malloc
    /// fast path goes from the size to its cache in one load, with no
    /// arithmetic first, and with the cache's address in a register of its
    /// own (see [`cache_at`](crate::thread_cache::cache_at) for why that
    /// matters). A wrong entry would cache blocks of one class in another's
    /// cache, which the checker's I4 clause reports.
    ///
    /// The table is 8 KiB a heap (two pages of every thread's record). It
    /// used to hold one entry per 16 bytes of size (65 entries), indexed
    /// by `(size + 15) >> 4`; the `lea` and the shift that took were on
    /// the malloc path's chain of dependent loads (size, table, cache,
    /// slot). Pinned medians of 11 and 9: `pair` 2.501 to 2.406 ns,
    /// random-mixed 0.3831 to 0.3808 s, fixed-size 0.4524 to 0.4492 s,
    /// glibc-simple unchanged.
    #[inline(always)]
    fn small_cache(&self, size: usize) -> *mut ThreadCache {
        debug_assert!(size <= SMALL_LOOKUP_MAX);
        // SAFETY: `size < SIZE_TABLE_LEN`, and `place` filled the table,
        // which lies in the record's slot.
        unsafe { *Self::size_table(self).add(size) }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_raw_slow(&mut self, size: usize, align: usize) -> *mut u8 {
        match self.alloc_slow(size, align, false) {
            Ok(p) => p.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }

    /// Allocates zeroed memory (`align` as for [`alloc`](Self::alloc)).
    pub fn alloc_zeroed(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        self.alloc_slow(size, align, true)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(
        &mut self,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        if !align.is_power_of_two() {
            return Err(AllocError::BadAlign { align });
        }
        match class_for(size, align) {
            Some(c) if c < P::GEOMETRY.class_count() => {
                let mut b = self.caches[c].pop();
                if b.is_null() {
                    b = self.refill(c)?;
                }
                // Accessible first (under ASan), then written.
                self.allocator()
                    .os
                    .mark_block(b.cast(), class_size(c), true);
                // SAFETY: a block from our cache, of class `c`.
                unsafe {
                    block::make_live(b);
                    if zeroed {
                        ptr::write_bytes(b.cast::<u8>(), 0, size);
                    }
                }
                // SAFETY: refill never returns null.
                Ok(unsafe { NonNull::new_unchecked(b.cast()) })
            }
            _ => self
                .allocator()
                .large_alloc(&mut self.large, &self.stats, size, align, zeroed),
        }
    }

    /// Refills the cache of class `c` and pops one block.
    fn refill(&mut self, c: usize) -> Result<*mut Block, AllocError> {
        // Before the refill: this cache is empty now, so a periodic drain
        // has nothing of it to halve.
        self.count_refill();
        self.overflows[c] = 0;
        let want = (self.caches[c].cap / 2).max(1);
        loop {
            let cur = self.classes[c].current;
            if !cur.is_null() {
                let os = &self.allocator().os;
                // SAFETY: `current` is a slab we own, of class `c`, committed.
                let n = unsafe { (*cur).take(want, &mut self.caches[c], self.key, self.zoo, os) };
                if n > 0 {
                    self.stats.refills.bump();
                    self.flushed = false;
                    return Ok(self.caches[c].pop());
                }
                // Exhausted: to the back of the list, so scans find slabs
                // with free blocks first.
                // SAFETY: `current` is on this class list.
                unsafe {
                    self.classes[c].slabs.remove(cur);
                    self.classes[c].slabs.push_back(cur);
                }
                self.classes[c].current = ptr::null_mut();
            }
            self.next_slab(c)?;
        }
    }

    /// Makes some slab with free blocks `current`: one we own, else an
    /// adopted one, else a fresh one from the pool.
    fn next_slab(&mut self, c: usize) -> Result<(), AllocError> {
        let mut s = self.classes[c].slabs.head;
        let mut n = 0;
        while !s.is_null() && n < SCAN_LIMIT {
            // SAFETY: slabs on our list are ours and live.
            if unsafe { (*s).has_free() } {
                self.classes[c].current = s;
                return Ok(());
            }
            // SAFETY: `s` is on this list.
            s = unsafe { self.classes[c].slabs.next_of(s) };
            n += 1;
        }
        for _ in 0..ADOPT_LIMIT {
            let s = self.adopt(c);
            if s.is_null() {
                break;
            }
            // SAFETY: just adopted: ours.
            if unsafe { (*s).has_free() } {
                self.classes[c].current = s;
                return Ok(());
            }
        }
        let s = self
            .allocator()
            .fresh_slab(c, self.id)
            .map_err(AllocError::OutOfMemory)?;
        // SAFETY: a fresh slab bound to us, on no list.
        unsafe { self.classes[c].slabs.push_front(s) };
        self.classes[c].current = s;
        Ok(())
    }

    /// Adoption, in one place: acquire an abandoned slab of class `c`
    /// (under the pool lock, which owns it while abandoned) → collect its
    /// remote queue → bind it to this heap. Returns null if none.
    fn adopt(&mut self, c: usize) -> *mut Slab<P> {
        let id = self.id;
        let s = self.allocator().pool.with(|st| {
            let s = st.pop_abandoned(c);
            if !s.is_null() {
                // SAFETY: an abandoned slab is a live record; the lock we
                // hold owns it, and now hands it to us.
                unsafe {
                    (*s).owner.store(id, Relaxed);
                    (*s).state.set(SlabState::Owned);
                }
            }
            s
        });
        if s.is_null() {
            return s;
        }
        // SAFETY: ours now.
        unsafe { (*s).collect(self.zoo, &self.allocator().os) };
        // SAFETY: the slab is on no list.
        unsafe { self.classes[c].slabs.push_front(s) };
        self.allocator().stats.adoptions.add(1);
        s
    }

    // ------------------------------------------------------------------
    // free

    /// Frees a block, or says why it cannot (nothing changes then).
    #[inline(always)]
    pub fn free(&mut self, p: NonNull<u8>) -> Result<(), FreeError> {
        if self.free_fast(p) {
            Ok(())
        } else {
            self.free_cold(p.as_ptr() as usize)
        }
    }

    /// The fast path of [`free`](Self::free): frees `p` and returns true
    /// when it is a live block of a small or mid segment; returns false,
    /// having changed nothing, for anything else (a large block, a foreign
    /// pointer, a block that fails a check), which [`free`](Self::free)
    /// then settles off the fast path.
    ///
    /// The registry byte of the block's granule names the segment kind, so
    /// each arm computes the slab record's address from `addr` and a
    /// constant shift: the branch is predicted, and no load stands between
    /// the pointer and its slab record. Returning a bool rather than a
    /// 24-byte `Result` keeps the error's construction (and its stack
    /// slot) out of a caller such as the C ABI's `free`.
    #[inline(always)]
    pub fn free_fast(&mut self, p: NonNull<u8>) -> bool {
        let shift = P::GEOMETRY.segment_shift;
        let addr = p.as_ptr() as usize;
        let byte = self
            .registry
            .with_fixed_bounds::<P::Os>(shift)
            .byte(addr, shift);
        self.free_fast_byte(addr, addr & !P::GEOMETRY.segment_mask(), byte)
    }

    /// [`free_fast`](Self::free_fast) of the address `addr` given the
    /// registry byte `byte` of the granule starting at `granule` (read by a
    /// caller that can reach the registry sooner): `addr`'s own granule,
    /// or one it aliases (see `Registry::granule_after_init`; the
    /// block-start test then refuses `addr`). The granule of address 0
    /// never holds a segment (no mapping starts at 0), so a null `addr`
    /// returns false.
    #[inline(always)]
    pub(crate) fn free_fast_byte(&mut self, addr: usize, granule: usize, byte: u8) -> bool {
        // Not a `match`: with one, LLVM made the small arm the taken branch.
        if byte == SEG_SMALL {
            self.free_in_segment(addr, granule, P::GEOMETRY.small_slab_shift)
        } else if byte == SEG_MID {
            cold_path();
            self.free_in_segment(addr, granule, P::GEOMETRY.mid_slab_shift)
        } else {
            false
        }
    }

    /// [`free_fast`](Self::free_fast) of `addr` with the live segment at
    /// `seg`, whose slabs are `1 << slab_shift` bytes. `addr` is checked
    /// against that segment's slab record before anything else reads it
    /// (the `unchecked` baseline, which has no such test, must only be
    /// given blocks of ours).
    #[inline(always)]
    fn free_in_segment(&mut self, addr: usize, seg: usize, slab_shift: u32) -> bool {
        // SAFETY: the registry says a live segment of this kind starts at
        // `seg`, and the slab table of a live segment is initialised.
        let slab = unsafe { &*Segment::<P>::slab_in(seg, addr, slab_shift) };
        if CHECKED && !slab.is_block_in_segment(addr) {
            return false;
        }
        let b = addr as *mut Block;
        // SAFETY: a carved block start of an in-use slab: readable.
        if CHECKED && unsafe { block::read_tag(b) } == block::tag(addr, self.key) {
            return false;
        }
        if <P::Os as Os>::MARKS_BLOCKS {
            self.allocator()
                .os
                .mark_block(b.cast(), class_size(slab.class()), false);
        }
        if slab.owned_by(self.own_id()) {
            if CHECKED {
                // SAFETY: the block was live and is ours to write.
                unsafe { block::set_tag(b, self.key) };
            }
            let cache = Self::slab_cache(&mut self.caches, slab);
            if !cache.is_full() {
                // SAFETY: room for it; a free block of our slab, of the
                // cache's class.
                unsafe { cache.push(b) };
            } else {
                self.slow((slab, b), |h, (slab, b)| h.bypass_to_slab(slab, b));
            }
        } else {
            self.slow((slab, b), |h, (slab, b)| h.free_remote(slab, b));
        }
        true
    }

    /// What [`free_fast`](Self::free_fast) declined: a large block is
    /// freed; anything else gets its typed error. The checks are pure
    /// reads, so running them again here finds what the fast path found.
    #[cold]
    #[inline(never)]
    fn free_cold(&mut self, addr: usize) -> Result<(), FreeError> {
        match self.registry.lookup(addr, P::GEOMETRY.segment_shift) {
            Region::Segment => {
                // SAFETY: the registry marks a live segment there.
                unsafe { checked_slab::<P>(addr, self.key) }?;
                // Every check passes now, so the fast path's refusal was
                // not a check's: a broken invariant, not a user error.
                panic!("hakmem: free({addr:#x}) refused by the fast path but passes every check");
            }
            r @ (Region::Large | Region::LargeAligned) => {
                self.allocator()
                    .large_free(Some((&mut self.large, &self.stats)), addr, r)
            }
            Region::None => Err(FreeError::NotOwned { ptr: addr }),
        }
    }

    /// The cache of `slab`'s class in `caches` (a heap's), from the slab's
    /// cache offset (see [`cache_at`] for why through it). Takes the array,
    /// not the heap, so the heap's other fields stay usable beside it.
    #[inline(always)]
    fn slab_cache<'c>(
        caches: &'c mut [ThreadCache; MAX_CLASSES],
        slab: &Slab<P>,
    ) -> &'c mut ThreadCache {
        // SAFETY: the slab's class is below the class count (I2), and its
        // cache offset is the class's index in bytes.
        unsafe {
            &mut *cache_at(
                caches.as_mut_ptr(),
                slab.cache_offset.load(Relaxed) as usize,
            )
        }
    }

    /// A free by a heap that does not own the block's slab: onto the
    /// slab's remote queue. Inlined into its `nounwind` call (one jump
    /// from `free`, no call through the GOT): xmalloc 0.130 -> 0.122 s,
    /// larson 0.180 -> 0.176 s (every function 64-byte aligned, medians
    /// of 9-11).
    #[inline(always)]
    fn free_remote(&mut self, slab: &Slab<P>, b: *mut Block) {
        // SAFETY: the block was live; the push writes its link.
        unsafe { block::make_free(b, ptr::null_mut(), self.key) };
        if self.zoo.on(Bug::RetireWithRemoteInFlight) {
            // Zoo bug 6: the freeing thread takes the block off `used`
            // before its push lands; the owner may retire the slab between.
            slab.used.set(slab.used.get().wrapping_sub(1));
        }
        // SAFETY: REMOTE-LIVE: the block is counted in `used` until the
        // owner collects it; we do not touch the slab afterwards.
        unsafe { slab.remote.push(b, self.zoo) };
        self.stats.remote_frees.bump();
    }

    /// A free that found its cache full: the block goes on to its slab's
    /// free list instead, and the cache stays full. The block's line and
    /// the slab's are hot.
    ///
    /// Draining half the cache instead (as before) walked its list, one
    /// dependent load per block, and left the blocks of a batch in a
    /// different order for the next batch of mallocs. Medians with every
    /// function 64-byte aligned (so that code placement does not decide):
    /// glibc-simple 0.159 -> 0.149 s, glibc-thread 0.105 -> 0.099 s,
    /// xmalloc 0.128 -> 0.125 s, larson unchanged (0.186 -> 0.182 s, 15
    /// runs), mstress peak RSS +7 % (21.0 -> 22.6 MiB: caches stay
    /// fuller). Inlined into its `nounwind` call, with the rare retirement
    /// in a call of its own, so the overflowing free pays one jump and no
    /// stack frame: glibc-simple 0.152 -> 0.145 s (aligned, medians of 9).
    #[inline(always)]
    fn bypass_to_slab(&mut self, slab: &Slab<P>, b: *mut Block) {
        // Read before the push, which may retire the slab.
        let c = slab.class();
        let cap = self.caches[c].cap;
        // SAFETY: `b` is free (its tag is written) and of `slab`, ours.
        if unsafe { slab.push_local_chain(b, b, 1, self.zoo) } {
            self.bypass_emptied(slab);
        }
        self.overflows[c] += 1;
        if self.overflows[c] >= cap / 2 {
            self.grow_cache(c);
        }
    }

    /// Half a cache's worth of frees found class `c`'s cache full since
    /// its last refill: its capacity doubles, up to
    /// `Config::cache_capacity_max` (the periodic drain sets it back once
    /// the class looks unused). Counting from the last refill keeps
    /// sporadic overflows (larson's) from growing caches, which then cost
    /// more to flush at every thread exit (larson +8 % when every cache's
    /// worth of overflows grew the cache). Batches larger
    /// than a cache (glibc-simple frees 1600 blocks of 64 or 128 B in a
    /// row, into caches of 1024 and 512) otherwise send most of their
    /// frees on to the slabs and take them back by refills, batch after
    /// batch. A budget of 256 KiB for every class did as well there but
    /// cost peak RSS everywhere (larson +20 %, larson-4t +24 %) and time
    /// in larson-4t (+4 %) and mstress (+4 %).
    #[cold]
    #[inline(never)]
    fn grow_cache(&mut self, c: usize) {
        self.overflows[c] = 0;
        let max = self.allocator().config.cache_capacity_max(class_size(c));
        let cache = &mut self.caches[c];
        let cap = cache.cap.saturating_mul(2).min(max);
        if cap > cache.cap {
            cache.set_cap(cap);
        }
    }

    /// [`bypass_to_slab`](Self::bypass_to_slab) emptied `slab`: retire it
    /// (unless it is its class's current slab).
    #[cold]
    #[inline(never)]
    fn bypass_emptied(&mut self, slab: &Slab<P>) {
        // The slab stays bound: I5 holds again only after the next full
        // flush.
        self.flushed = false;
        let mut batch = RetireBatch::new();
        self.note_emptied(slab as *const Slab<P> as *mut Slab<P>, &mut batch);
        self.retire_batch(&mut batch);
    }

    /// Counts one refill; every `drain_interval` of them, the caches of
    /// classes that look unused give half their blocks back, so that such
    /// blocks do not keep their slabs from becoming empty for ever. Only
    /// refills count, off the fast paths: a thread whose caches never miss
    /// is not moving memory between classes, and what its caches hold
    /// stays bounded by their capacities (mimalloc's heartbeat and
    /// tcmalloc's scavenging also run from slow paths only). Not the
    /// overflowing frees: they can be most frees (glibc-simple's batches
    /// of 1600 blocks), and a count there cost glibc-simple 2 %. Nor
    /// frees on the fast path: a `dec` of a count of frees on every free
    /// was 10 % of free's time in a malloc/free batch loop.
    #[inline(always)]
    fn count_refill(&mut self) {
        self.refills_left -= 1;
        if self.refills_left == 0 {
            self.periodic_drain();
        }
    }

    /// Halves the cache of every class that looks unused since the last
    /// periodic drain: its state hashes to what it did then (`seen`, so
    /// the fast paths record nothing; see `ThreadCache::state_hash`; a
    /// collision only halves a cache in use, and so does a class that
    /// frees and takes back one block only: either costs a refill). A
    /// class in use keeps its cache: its surplus reaches its slabs through
    /// the overflow path anyway, and halving it disturbed the order of its
    /// blocks for a long time after (glibc-simple, medians of 9 with
    /// every function 64-byte aligned:
    /// 0.149 s without periodic drains; halving every class every 2^18
    /// overflowing frees, 0.156 s, every 2^16, 0.169 s; halving the
    /// classes that did not refill, 0.156 s, as glibc-simple's 16 and
    /// 32 B classes live on their caches alone and never refill). Out of
    /// line: the walks' frame and saved registers would otherwise be set
    /// up on every refill.
    #[cold]
    #[inline(never)]
    fn periodic_drain(&mut self) {
        self.refills_left = self.allocator().config.drain_interval.max(1);
        let mut idle = [false; MAX_CLASSES];
        let mut base = [0u32; MAX_CLASSES];
        let cfg = &self.allocator().config;
        for c in 0..P::GEOMETRY.class_count() {
            idle[c] = self.seen[c] == self.caches[c].state_hash();
            base[c] = cfg.cache_capacity(class_size(c));
        }
        // An idle class also goes back to its starting capacity (keeping
        // at most that many blocks).
        self.drain_all(|c, n| if idle[c] { (n / 2).min(base[c]) } else { n });
        for c in 0..P::GEOMETRY.class_count() {
            let cache = &mut self.caches[c];
            if idle[c] && cache.cap > base[c] {
                cache.set_cap(base[c]);
                self.overflows[c] = 0;
            }
            self.seen[c] = cache.state_hash();
        }
    }

    /// Gives cached blocks back to their slabs, keeping `keep(c, count)`
    /// blocks of class `c`'s cache of `count`, for every class at once;
    /// retires slabs that become empty (except `current`). The cache walks
    /// are interleaved, one block of each in turn: cached blocks are often
    /// cold (a thread exit flushes blocks freed long ago), and a walk must
    /// load each block's link before it can go on, so one walk at a time
    /// waits for one cache miss after another, while side by side their
    /// misses overlap.
    pub(crate) fn drain_all(&mut self, keep: impl Fn(usize, u32) -> u32) {
        let mut walks: [DrainWalk<P>; MAX_CLASSES] = [DrainWalk::IDLE; MAX_CLASSES];
        let mut live = 0;
        for c in 0..P::GEOMETRY.class_count() {
            let k = keep(c, self.caches[c].count());
            if let Some(w) = self.drain_walk(c, k) {
                walks[live] = w;
                live += 1;
            }
        }
        let mut batch = RetireBatch::new();
        while live > 0 {
            let mut i = 0;
            while i < live {
                if self.drain_step(&mut walks[i], &mut batch) {
                    i += 1;
                } else {
                    // Finished: the last live walk takes its place.
                    live -= 1;
                    walks[i] = walks[live];
                }
            }
        }
        self.retire_batch(&mut batch);
    }

    /// Starts taking all but `keep` blocks off the cache of class `c`;
    /// `None` if there is nothing to take. The array's blocks join the
    /// chain first, which the walk then shortens from its head: the chain
    /// counts the blocks as gone from here on; its head moves when the
    /// walk ends.
    fn drain_walk(&mut self, c: usize, keep: u32) -> Option<DrainWalk<P>> {
        let left = self.caches[c].count().saturating_sub(keep);
        if left == 0 {
            return None;
        }
        self.caches[c].spill_to_chain();
        // A drain may empty the current slab, which stays bound: I5 holds
        // again only after the next full flush.
        self.flushed = false;
        self.stats.drains.bump();
        // SAFETY: the chain holds every cached block, `left` of them go.
        unsafe { self.caches[c].unchain(left) };
        Some(DrainWalk {
            class: c,
            next: self.caches[c].head,
            left,
            ..DrainWalk::IDLE
        })
    }

    /// One block of a drain walk. The cache's chain and the slab free
    /// lists share the link word, and consecutive cached blocks usually
    /// come from one slab: the walk gathers each run of blocks from one
    /// slab and splices it into that slab as it is, writing only at the
    /// run's end. Returns false when the walk is over (its cache's chain
    /// then starts at the first block it kept).
    #[inline(always)]
    fn drain_step(&mut self, w: &mut DrainWalk<P>, batch: &mut RetireBatch<P>) -> bool {
        let b = w.next;
        if w.run_len > 0 {
            if w.left > 0 && (b as usize).wrapping_sub(w.lo) < w.span {
                w.run_tail = b;
                w.run_len += 1;
                w.left -= 1;
                // SAFETY: a cached block: a free block of one of our slabs.
                w.next = unsafe { block::next(b) };
                block::prefetch(w.next);
                return true;
            }
            // SAFETY: the run is `run_len` cached blocks of `w.slab`, which
            // we own.
            if unsafe { (*w.slab).push_local_chain(w.run_head, w.run_tail, w.run_len, self.zoo) } {
                self.note_emptied(w.slab, batch);
            }
            w.run_len = 0;
        }
        if w.left == 0 {
            self.caches[w.class].head = b;
            return false;
        }
        let addr = b as usize;
        // SAFETY: a cached block lies in a live segment (I4).
        w.slab = unsafe { (*Segment::<P>::of(addr)).slab_of(addr) };
        // SAFETY: as above; we own the slab.
        let slab = unsafe { &*w.slab };
        w.lo = slab.start.load(Relaxed);
        w.span = slab.carved.get() as usize * slab.stride.load(Relaxed) as usize;
        w.run_head = b;
        w.run_tail = b;
        w.run_len = 1;
        w.left -= 1;
        // SAFETY: a cached block, as above.
        w.next = unsafe { block::next(b) };
        block::prefetch(w.next);
        true
    }

    /// A slab became empty during a drain: retire it with the batch
    /// (unless it is its class's current slab, which stays for reuse).
    fn note_emptied(&mut self, slab: *mut Slab<P>, batch: &mut RetireBatch<P>) {
        // SAFETY: a slab we own: a live record.
        let c = unsafe { (*slab).class() };
        if slab == self.classes[c].current {
            return;
        }
        self.add_to_batch(slab, batch);
    }

    /// Adds an empty slab to `batch`, retiring the batch first if it is
    /// full.
    fn add_to_batch(&mut self, slab: *mut Slab<P>, batch: &mut RetireBatch<P>) {
        if batch.len == batch.slabs.len() {
            self.retire_batch(batch);
        }
        batch.slabs[batch.len] = slab;
        batch.len += 1;
    }

    fn retire_batch(&mut self, batch: &mut RetireBatch<P>) {
        if batch.len == 0 {
            return;
        }
        for &s in &batch.slabs[..batch.len] {
            // SAFETY: the slab is ours, on the list of its class.
            unsafe { self.classes[(*s).class()].slabs.remove(s) };
        }
        let a = self.allocator();
        a.pool.with(|st| {
            for &s in &batch.slabs[..batch.len] {
                st.retire_slab(a, s);
            }
        });
        batch.len = 0;
    }

    /// Collects every owned slab's remote queue; retires the slabs that are
    /// empty (`current` too when `retire_current`).
    pub fn collect(&mut self) {
        self.collect_all(false);
    }

    fn collect_all(&mut self, retire_current: bool) {
        self.flushed = false;
        for c in 0..P::GEOMETRY.class_count() {
            let mut batch = RetireBatch::new();
            let mut s = self.classes[c].slabs.head;
            while !s.is_null() {
                // SAFETY: slabs on our list are ours and live.
                let slab = unsafe { &*s };
                // SAFETY: `s` is on this list.
                let next = unsafe { self.classes[c].slabs.next_of(s) };
                slab.collect(self.zoo, &self.allocator().os);
                if slab.used.get() == 0 && (retire_current || s != self.classes[c].current) {
                    if s == self.classes[c].current {
                        self.classes[c].current = ptr::null_mut();
                    }
                    self.add_to_batch(s, &mut batch);
                }
                s = next;
            }
            self.retire_batch(&mut batch);
        }
    }

    /// Drains every cache completely, collects every remote queue and
    /// retires every empty slab: afterwards I5 holds for this heap.
    pub fn flush(&mut self) {
        self.drain_all(|_, _| 0);
        self.collect_all(true);
        self.allocator().large_flush_local(&mut self.large);
        self.flushed = true;
    }

    /// Thread exit: flush, then leave every remaining slab for adoption.
    pub(crate) fn abandon(&mut self) {
        if self.zoo.on(Bug::ExitLeaksCache) {
            // Zoo bug 8: the thread cache is forgotten: its blocks stay
            // counted in their slabs' `used` and nobody will return them.
            for cache in self.caches.iter_mut() {
                cache.forget();
            }
            self.collect_all(true);
            self.allocator().large_flush_local(&mut self.large);
        } else {
            self.flush();
        }
        let a = self.allocator();
        let classes = &mut self.classes;
        a.pool.with(|st| {
            for hc in classes.iter_mut().take(P::GEOMETRY.class_count()) {
                hc.current = ptr::null_mut();
                loop {
                    // SAFETY: slabs on our lists are live records.
                    let s = unsafe { hc.slabs.pop_front() };
                    if s.is_null() {
                        break;
                    }
                    st.abandon(s);
                }
            }
        });
    }

    // ------------------------------------------------------------------
    // realloc, usable_size

    /// The usable size of a live block, validated like a free.
    pub fn usable_size(&self, p: NonNull<u8>) -> Result<usize, FreeError> {
        let addr = p.as_ptr() as usize;
        match self.registry.lookup(addr, P::GEOMETRY.segment_shift) {
            Region::Segment => {
                // SAFETY: the registry marks a live segment there.
                let slab = unsafe { checked_slab::<P>(addr, self.key) }?;
                Ok(slab.stride.load(Relaxed) as usize)
            }
            r @ (Region::Large | Region::LargeAligned) => {
                Ok(self.allocator().large_lookup(addr, r)?.usable())
            }
            Region::None => Err(FreeError::NotOwned { ptr: addr }),
        }
    }

    /// Resizes a block, in place when its class (or mapping) allows,
    /// otherwise by allocate + copy + free. On error the old block is
    /// untouched and still live.
    pub fn realloc(
        &mut self,
        p: NonNull<u8>,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        let old = self.usable_size(p)?;
        let addr = p.as_ptr() as usize;
        if new_size <= old && addr.is_multiple_of(align.max(1)) {
            let in_place = match self.registry.lookup(addr, P::GEOMETRY.segment_shift) {
                // Same class: stay. Shrinking below the class: move.
                Region::Segment => class_for(new_size, align) == class_for(old, align),
                // A large block stays in its mapping (it may have taken a big
                // resident one to grow into: moving it out at every step
                // would ping-pong), unless it shrinks into the slab range
                // and would waste more than half of the mapping.
                _ => {
                    new_size >= old / 2
                        || new_size > P::GEOMETRY.mid_max_size
                        || align > P::GEOMETRY.segment_size() / 2
                }
            };
            if in_place {
                return Ok(p);
            }
        }
        if new_size > old && align <= P::GEOMETRY.segment_size() / 2 {
            if let r @ Region::Large = self.registry.lookup(addr, P::GEOMETRY.segment_shift) {
                // Grow without copying when the OS layer can move pages.
                if let Some(q) =
                    self.allocator()
                        .large_grow(&mut self.large, &self.stats, addr, r, new_size)
                {
                    return Ok(q);
                }
            }
        }
        // A block that grows out of its place gets headroom (1.5x its old
        // size): a buffer grown step by step then moves a few times
        // (geometrically) instead of at every step.
        let want = if new_size > old {
            new_size.max(old.saturating_add(old / 2))
        } else {
            new_size
        };
        let into_large =
            new_size > old && class_for(want, align).is_none_or(|c| c >= P::GEOMETRY.class_count());
        let resident = if into_large && align <= crate::large::LARGE_HEADER_SIZE {
            // Growing into the large tier: a resident cached mapping first.
            let page = self.allocator().os.page_size();
            crate::large::mapping_size(want, crate::large::LARGE_HEADER_SIZE, page).and_then(
                |need| {
                    self.allocator().large_take_for_growth(
                        &mut self.large,
                        &self.stats,
                        need,
                        crate::large::LARGE_HEADER_SIZE,
                    )
                },
            )
        } else {
            None
        };
        let q = match resident.map_or_else(|| self.alloc(want, align.max(1)), Ok) {
            Ok(q) => q,
            Err(_) if want > new_size => self.alloc(new_size, align.max(1))?,
            Err(e) => return Err(e.into()),
        };
        // SAFETY: both blocks are live and distinct; `old` bytes of `p` and
        // `new_size` bytes of `q` are ours.
        unsafe { ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(new_size)) };
        self.free(p)
            .expect("realloc: a block validated above must free");
        Ok(q)
    }
}

/// The slab of `addr` after the checks a free (or `usable_size`) makes
/// before it touches anything: a carved block start (I5), not already free
/// (its tag, when checked).
///
/// # Safety
/// The registry marks a live segment in `addr`'s granule.
unsafe fn checked_slab<'a, P: Platform>(addr: usize, key: usize) -> Result<&'a Slab<P>, FreeError> {
    // SAFETY: per the contract; a live segment's slab table is initialised.
    let slab = unsafe { &*(*Segment::<P>::of(addr)).slab_of(addr) };
    slab.check_block(addr).map_err(|e| lookup_error(e, addr))?;
    // SAFETY: a carved block start of an in-use slab: readable.
    if CHECKED && unsafe { block::read_tag(addr as *mut Block) } == block::tag(addr, key) {
        return Err(FreeError::DoubleFree { ptr: addr });
    }
    Ok(slab)
}

/// Marks the branch that calls it as unlikely, so the compiler lays it out
/// of line (`core::hint::cold_path` needs Rust 1.95; our MSRV is 1.87).
#[cold]
#[inline(always)]
fn cold_path() {}

/// Runs `f(h, args)`, which must not unwind: a panic in it aborts the
/// process (`extern "C"`). A fast path calling its slow path through here
/// needs no unwind frame (no landing pad, no stack adjustment for one) and
/// can end in a tail call. Only for `Platform::PANIC_ABORTS` platforms.
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)] // called from Rust only: Rust types by value
extern "C" fn nounwind<H, A, R>(h: &mut H, args: A, f: impl FnOnce(&mut H, A) -> R) -> R {
    f(h, args)
}

#[inline]
fn lookup_error(e: BlockLookup, addr: usize) -> FreeError {
    match e {
        BlockLookup::NotCarved => FreeError::NotAllocated { ptr: addr },
        BlockLookup::Interior { block } => FreeError::Interior { ptr: addr, block },
    }
}

impl<P: Platform> Allocator<P> {
    /// A fresh slab of class `c` bound to heap `owner`.
    pub(crate) fn fresh_slab(
        &self,
        c: usize,
        owner: usize,
    ) -> Result<*mut Slab<P>, crate::OsError> {
        let zoo = self.config.zoo;
        self.pool.with(|st| {
            let kind = P::GEOMETRY.kind_for(class_size(c));
            let (seg_ptr, idx) = st.take_free_slab(self, kind)?;
            // SAFETY: a live segment and one of its slabs, ours under the lock.
            let seg = unsafe { &*seg_ptr };
            let slab_ptr = seg.slab(idx);
            // SAFETY: as above.
            let slab = unsafe { &*slab_ptr };
            let (range_start, end) = seg.slab_range(idx);
            let start = if idx == 0 {
                seg.base() + Segment::<P>::data_offset(c, zoo)
            } else {
                range_start
            };
            slab.bind(c, start, end, zoo);
            self.os.mark_uncarved(
                start as *mut u8,
                slab.capacity.get() as usize * class_size(c),
            );
            slab.owner.store(owner, Relaxed);
            slab.state.set(SlabState::Owned);
            Ok(slab_ptr)
        })
    }
}

/// Frees a block for a thread that has no heap (it has exited, or is
/// being set up): validated like any free, then always pushed onto the
/// slab's remote queue, which is correct whoever owns the slab.
pub(crate) fn free_without_heap<P: Platform>(
    a: &Allocator<P>,
    p: NonNull<u8>,
) -> Result<(), FreeError> {
    let addr = p.as_ptr() as usize;
    let key = a.key.load(Relaxed);
    match a.registry_view().lookup(addr, P::GEOMETRY.segment_shift) {
        Region::Segment => {
            // SAFETY: the registry marks a live segment there.
            let slab = unsafe { checked_slab::<P>(addr, key) }?;
            let b = addr as *mut Block;
            a.os.mark_block(b.cast(), class_size(slab.class()), false);
            // SAFETY: the block was live; REMOTE-LIVE holds for it.
            unsafe {
                block::make_free(b, ptr::null_mut(), key);
                slab.remote.push(b, a.config.zoo);
            }
            a.stats.exited.remote_frees.add(1);
            Ok(())
        }
        r @ (Region::Large | Region::LargeAligned) => a.large_free(None, addr, r),
        Region::None => Err(FreeError::NotOwned { ptr: addr }),
    }
}
