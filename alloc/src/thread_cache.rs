//! The per-class thread cache (the "TLS SLL"): a singly linked stack of
//! free blocks with a count and a bounded capacity, owned by one heap.
//!
//! TC-BOUND  `cap - room` is the length of the list and, after every free
//!           returns, `room >= 0` (the free that overflows sends its block
//!           on to its slab); `cap` lies between the class's starting
//!           capacity and `Config::cache_capacity_max` (it grows when
//!           frees keep overflowing, see `HeapData::grow_cache`)
//!
//! The cache keeps `room` (free slots left) rather than a count, so the
//! free fast path is one decrement and a sign test.
//!
//! Cached blocks are counted in their slab's `used` (I3) and carry their
//! free tag (BLOCK-TAG), so a double free of a cached block is caught.

use core::ptr;

use crate::block::{self, Block};

#[repr(C)]
pub(crate) struct ThreadCache {
    pub(crate) head: *mut Block,
    /// `cap - length`; negative when over capacity.
    pub(crate) room: i32,
    pub(crate) cap: u32,
}

impl ThreadCache {
    pub(crate) const fn new(cap: u32) -> Self {
        ThreadCache {
            head: ptr::null_mut(),
            room: cap as i32,
            cap,
        }
    }

    /// Pops a block, or null when empty. The block still carries its tag.
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> *mut Block {
        let b = self.head;
        if !b.is_null() {
            // SAFETY: a cached block is a free block of a committed slab
            // (TC-BOUND keeps the list well formed).
            self.head = unsafe { block::next(b) };
            // The next pop loads the new head's link: start that load now,
            // so its miss overlaps the caller's work on `b` instead of
            // stalling the next malloc. It matters when the cache holds
            // blocks another core wrote last (a remote queue taken whole,
            // see `Slab::take`): xmalloc 0.149 -> 0.133 s, glibc-simple
            // 0.229 -> 0.216 s.
            block::prefetch(self.head);
            self.room += 1;
        }
        b
    }

    /// Pushes a free block (its tag must already be written).
    ///
    /// # Safety
    /// `b` is a free block of a committed slab owned by this cache's heap,
    /// of this cache's class.
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, b: *mut Block) {
        // SAFETY: per the contract the block is ours to link.
        unsafe { block::set_next(b, self.head) };
        self.head = b;
        self.room -= 1;
    }

    /// Blocks on the list.
    #[inline]
    pub(crate) fn count(&self) -> u32 {
        (self.cap as i32 - self.room) as u32
    }

    /// A digest of the list's head and length: equal at two moments (bar
    /// a collision), the cache was most likely not used in between.
    pub(crate) fn state_hash(&self) -> u32 {
        let h = self.head as usize;
        (h ^ (h >> 32)) as u32 ^ (self.room as u32).rotate_left(16)
    }

    #[inline(always)]
    pub(crate) fn is_over(&self) -> bool {
        self.room < 0
    }
}

/// The cache `off` bytes into the cache array at `caches` (`off` a
/// [`cache_offset`](crate::slab::cache_offset)), as a pointer the compiler
/// must hold in a register of its own, so that every access to the cache
/// is `disp(reg)` and none is `(base,index)`.
///
/// Why: the fast paths chain through the cache from call to call (free
/// stores the head and `room`, the next malloc loads and stores them, and
/// so on), so the latency of forwarding a store to a later load of the
/// same address is on the critical path. On this project's benchmark
/// machine (an Intel Xeon, Golden Cove class) that forwarding is far
/// faster when both sides address the cache as base + displacement —
/// the memory renaming of recent cores — than with an index register,
/// which is what LLVM emits when it folds `caches + off` into each access.
/// Measured with the fold and without it (a C loop of batched mallocs
/// under `LD_PRELOAD`, rdtsc ticks per call, n = 400 of 32 B): malloc 6.7
/// -> 3.9; `hakmem-bench run pair`, pinned medians of 5: 0.384 -> 0.300 s;
/// glibc-simple 0.210 -> 0.194 s. The free path and malloc's mid sizes
/// use this; malloc's small sizes load the cache's address from the
/// heap's `cache_ptrs`, which puts it in a register just the same (and
/// spares the add: fixed-16 +1.3 % with the add, +0 % without).
///
/// # Safety
/// `caches.byte_add(off)` is in bounds of the cache array.
#[inline(always)]
pub(crate) unsafe fn cache_at(caches: *mut ThreadCache, off: usize) -> *mut ThreadCache {
    // SAFETY: in bounds per the contract.
    let p = unsafe { caches.byte_add(off) };
    // The address goes through `opaque`, the provenance stays with `p`.
    p.map_addr(crate::fold::opaque)
}
