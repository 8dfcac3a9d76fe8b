//! The per-class thread cache, owned by one heap: a stack of free blocks in
//! two parts with one bounded capacity.
//!
//! - The *array*: slots `base..top` hold blocks, the newest at `top - 1`.
//!   Frees push here and mallocs pop from here first: a pop is a load of
//!   `top`, a load of the slot below it and a null test (the slot below
//!   `base` is a null guard); a push a compare and two stores. Neither
//!   touches a count or the block's link word.
//! - The *chain*: a list of free blocks linked through their first word,
//!   which a refill takes whole from a slab (its free list or its remote
//!   queue) without walking it. Mallocs pop it when the array is empty.
//!   (Freshly carved blocks go into the array: carving computes their
//!   addresses, so nothing needs walking.)
//!
//! The chain's length is not stored: it is what the capacity leaves the
//! array, `cap - (limit - base)`. A free that finds `top == limit` sends
//! its block on to its slab (see `HeapData::bypass_to_slab`); a chain pop
//! gives the array one more slot (`limit += 1`).
//!
//! TC-BOUND  `base <= top <= limit <= base + cap`, and the chain's length
//!           is `cap - (limit - base)`: so a cache never holds more than
//!           `cap` blocks. `cap` lies between the class's starting
//!           capacity and `Config::cache_capacity_max` (it grows when frees
//!           keep overflowing, see `HeapData::grow_cache`); the array is
//!           the class's own `cache_capacity_max` slots in the heap's slot,
//!           after the record, and the slot just below `base` (the
//!           class's guard) holds null (see `HeapData::place`)
//!
//! Why an array in front of the list: the list cache this replaced
//! updated a count on every malloc and every free, and linked each freed
//! block. The array saves those stores, and stores bound the malloc+free
//! pair (see bench/README.md). The chain keeps the list's cheap refills:
//! a remote queue taken whole is popped one block at a time, each pop
//! prefetching the next, instead of walked in one go (whose serial misses
//! made xmalloc five times slower in a prototype that walked them into the
//! array). Against the list cache (every function 64-byte aligned,
//! interleaved medians of 11-15): pair 0.2795 -> 0.2679 s, glibc-simple
//! 0.1424 -> 0.1392 s, glibc-thread -1.6 %; fixed-size and random-mixed
//! within 1 %; but mstress +2 to +3.5 %, larson +2 to +3 %, xmalloc +1 %
//! (each array adds a line, and a page, per class in use; not measured
//! further).
//!
//! Cached blocks are counted in their slab's `used` (I3) and carry their
//! free tag (BLOCK-TAG), so a double free of a cached block is caught.

use core::ptr;

use crate::block::{self, Block};

const SLOT: usize = core::mem::size_of::<*mut Block>();

#[repr(C)]
pub(crate) struct ThreadCache {
    /// One past the newest block of the array.
    pub(crate) top: *mut *mut Block,
    /// The array's first slot.
    pub(crate) base: *mut *mut Block,
    /// Where the array ends for now: `base + cap - chain length`.
    pub(crate) limit: *mut *mut Block,
    /// The chain's first block, or null.
    pub(crate) head: *mut Block,
    pub(crate) cap: u32,
}

impl ThreadCache {
    /// A cache without slots yet; [`attach`](Self::attach) gives it its
    /// array.
    pub(crate) const fn new(cap: u32) -> Self {
        ThreadCache {
            top: ptr::null_mut(),
            base: ptr::null_mut(),
            limit: ptr::null_mut(),
            head: ptr::null_mut(),
            cap,
        }
    }

    /// Gives the empty cache its array (room for the class's largest
    /// capacity).
    ///
    /// # Safety
    /// `slots` is valid for `cache_capacity_max` pointer slots, used by no
    /// other cache.
    pub(crate) unsafe fn attach(&mut self, slots: *mut *mut Block) {
        self.base = slots;
        self.top = slots;
        // SAFETY: `cap` slots lie inside the array, per the contract.
        self.limit = unsafe { slots.add(self.cap as usize) };
        self.head = ptr::null_mut();
    }

    /// Empties the cache without giving its blocks anywhere (zoo bug 8).
    pub(crate) fn forget(&mut self) {
        // SAFETY: as in `attach`.
        unsafe { self.attach(self.base) };
    }

    /// Pops a block, or null when empty. The block still carries its tag.
    ///
    /// The array's emptiness is the slot below `top` holding null: at
    /// `top == base` that slot is the guard, which is null (TC-BOUND); in
    /// the array a slot never holds null. So the pop loads `top` and that
    /// slot, and tests the slot, instead of also loading `base` to compare
    /// `top` with it. One load fewer on every malloc. Pinned medians of 11
    /// to 21, against the compare with `base`: `pair` 2.407 to 2.352 ns,
    /// glibc-simple 0.1246 to 0.1223 s (mimalloc 2.0.9 0.1184 s in the
    /// same runs); random-mixed within its noise (+0.6 and +0.9 % in two
    /// sets, -0.3 % in a third), fixed-size and glibc-thread unchanged.
    /// Aligning each guard to the start of its array's first line (so an
    /// empty pop reads a line the last pops used) changed nothing.
    ///
    /// Every class the size table can reach has an array (GEO-CLASS), so
    /// `top` is never the null of an unattached cache here.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> *mut Block {
        let t = self.top;
        // SAFETY: `base - 1 <= top - 1 < limit`: the slot below `top` is
        // one of our array's slots or its guard, both in the heap's slot
        // (TC-BOUND).
        let t = unsafe { t.sub(1) };
        // SAFETY: as above: a slot we may read.
        let b = unsafe { *t };
        if !b.is_null() {
            // `b` is in `base..top` (the guard is null): the newest block.
            self.top = t;
            return b;
        }
        self.pop_chain()
    }

    /// Pops the chain, or null when it is empty.
    #[inline(always)]
    fn pop_chain(&mut self) -> *mut Block {
        let b = self.head;
        if !b.is_null() {
            // SAFETY: a chained block is a free block of a committed slab
            // (TC-BOUND keeps the list well formed).
            self.head = unsafe { block::next(b) };
            // The next pop loads the new head's link: start that load now,
            // so its miss overlaps the caller's work on `b` instead of
            // stalling the next malloc. It matters when the chain holds
            // blocks another core wrote last (a remote queue taken whole,
            // see `Slab::take`): xmalloc 0.149 -> 0.133 s.
            block::prefetch(self.head);
            // SAFETY: the chain was at least one long, so `limit` is below
            // `base + cap` (TC-BOUND).
            self.limit = unsafe { self.limit.add(1) };
        }
        b
    }

    /// Whether a push would not fit.
    #[inline(always)]
    pub(crate) fn is_full(&self) -> bool {
        self.top == self.limit
    }

    /// Pushes a free block onto the array (its tag must already be
    /// written).
    ///
    /// # Safety
    /// Not [`is_full`](Self::is_full); `b` is a free block of a committed
    /// slab owned by this cache's heap, of this cache's class.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, b: *mut Block) {
        let t = self.top;
        // SAFETY: `top < limit`: a slot of our array.
        unsafe {
            self.top = t.add(1);
            *t = b;
        }
    }

    /// Slots that neither part uses: how many blocks the chain may still
    /// take.
    #[inline]
    pub(crate) fn chain_room(&self) -> u32 {
        self.limit_slots() - self.array_len()
    }

    /// Puts `n` blocks at the head of the chain: the list from `head`,
    /// whose `n`th block links to the old chain (see `Slab::take`).
    ///
    /// # Safety
    /// `n <= chain_room()`; the `n` blocks are free blocks as for
    /// [`push`](Self::push).
    pub(crate) unsafe fn set_chain(&mut self, head: *mut Block, n: u32) {
        self.head = head;
        // SAFETY: per the contract `limit - n >= top`.
        self.limit = unsafe { self.limit.sub(n as usize) };
    }

    /// Counts `n` blocks as gone from the chain; the caller unlinks them
    /// (and sets `head`) itself.
    ///
    /// # Safety
    /// The chain holds at least `n` blocks.
    pub(crate) unsafe fn unchain(&mut self, n: u32) {
        // SAFETY: per the contract `limit + n <= base + cap`.
        self.limit = unsafe { self.limit.add(n as usize) };
    }

    /// Moves the array's blocks onto the chain, oldest first (so the newest
    /// ends up at its head), for the drains, which walk the chain.
    pub(crate) fn spill_to_chain(&mut self) {
        let n = self.array_len();
        let mut s = self.base;
        while s < self.top {
            // SAFETY: `base..top` hold our blocks; linking one writes its
            // first word, as the chain wants.
            unsafe {
                block::set_next(*s, self.head);
                self.head = *s;
                s = s.add(1);
            }
        }
        self.top = self.base;
        // SAFETY: the chain grew by `n`: `limit - n >= base`.
        self.limit = unsafe { self.limit.sub(n as usize) };
    }

    /// Changes the capacity; the cache must hold at most `cap` blocks and
    /// the array have slots for them.
    pub(crate) fn set_cap(&mut self, cap: u32) {
        debug_assert!(self.count() <= cap);
        // SAFETY: `limit` moves by the change, staying within
        // `base + cap_max` (the caller's `cap` is at most that).
        self.limit = unsafe { self.limit.offset(cap as isize - self.cap as isize) };
        self.cap = cap;
    }

    /// Slots below `limit` (by address, so that the checker can read a
    /// broken cache).
    #[inline]
    fn limit_slots(&self) -> u32 {
        ((self.limit as usize).wrapping_sub(self.base as usize) / SLOT) as u32
    }

    /// Blocks in the array.
    #[inline]
    pub(crate) fn array_len(&self) -> u32 {
        ((self.top as usize).wrapping_sub(self.base as usize) / SLOT) as u32
    }

    /// Blocks on the chain.
    #[inline]
    pub(crate) fn chain_len(&self) -> u32 {
        self.cap.wrapping_sub(self.limit_slots())
    }

    /// Blocks in the cache.
    #[inline]
    pub(crate) fn count(&self) -> u32 {
        self.array_len().wrapping_add(self.chain_len())
    }

    /// A digest of the cache's state: equal at two moments (bar a
    /// collision), the cache was most likely not used in between. Besides
    /// the pointers it takes the slot just above the array's top, which
    /// keeps the last block popped from there: a class used in balanced
    /// frees and mallocs leaves the pointers as they were, but (unless it
    /// frees and takes back one block only) not that slot. Without it,
    /// glibc-thread's periodic drains halved caches in use 11 times as
    /// often (55 drains instead of 5) and cost it 3 %.
    pub(crate) fn state_hash(&self) -> u32 {
        let above = if self.top < self.limit {
            // SAFETY: below `limit`: a slot of our array (TC-BOUND); it
            // holds an old pointer or zero, read as a number only.
            unsafe { *self.top as usize }
        } else {
            0
        };
        let (t, h, l) = (self.top as usize, self.head as usize, self.limit as usize);
        let x = t ^ h.rotate_left(17) ^ l.rotate_left(34) ^ above.rotate_left(51);
        (x ^ (x >> 32)) as u32
    }

    /// Whether the pointers break TC-BOUND (for the checker).
    pub(crate) fn is_over(&self) -> bool {
        self.top < self.base || self.limit < self.top || self.limit_slots() > self.cap
    }
}

/// The cache `off` bytes into the cache array at `caches` (`off` a
/// [`cache_offset`](crate::slab::cache_offset)), as a pointer the compiler
/// must hold in a register of its own, so that every access to the cache
/// is `disp(reg)` and none is `(base,index)`.
///
/// Why: the fast paths chain through the cache from call to call (free
/// stores `top`, the next malloc loads and stores it, and so on; the
/// measurements below were taken with the list cache this replaced, whose
/// head and count chained the same way), so the latency of forwarding a
/// store to a later load of the same address is on the critical path. On
/// this project's benchmark machine (an Intel Xeon, Golden Cove class)
/// that forwarding is far faster when both sides address the cache as
/// base + displacement — the memory renaming of recent cores — than with
/// an index register, which is what LLVM emits when it folds `caches +
/// off` into each access.
/// Measured with the fold and without it (a C loop of batched mallocs
/// under `LD_PRELOAD`, rdtsc ticks per call, n = 400 of 32 B): malloc 6.7
/// -> 3.9; `hakmem-bench run pair`, pinned medians of 5: 0.384 -> 0.300 s;
/// glibc-simple 0.210 -> 0.194 s. The free path and malloc's mid sizes
/// use this; malloc's small sizes load the cache's address from the
/// heap's size table (`HeapData::small_cache`), which puts it in a
/// register just the same (and spares the add: fixed-16 +1.3 % with the
/// add, +0 % without; a table of 16-bit offsets plus the add measured
/// `pair` 2.49 ns against 2.40 for the table of pointers).
///
/// # Safety
/// `caches.byte_add(off)` is in bounds of the cache array.
#[inline(always)]
pub(crate) unsafe fn cache_at(caches: *mut ThreadCache, off: usize) -> *mut ThreadCache {
    // SAFETY: in bounds per the contract.
    let p = unsafe { caches.byte_add(off) };
    // Through `opaque_ptr`, not `map_addr(opaque)`: with the latter, LLVM
    // wrote the free path's store of `top` as `caches + (p - caches)`, an
    // indexed address after all.
    crate::fold::opaque_ptr(p)
}
