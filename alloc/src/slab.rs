//! Slab metadata and the owner-side operations on it.
//!
//! A slab is a run of equal blocks of one size class inside a segment. Its
//! metadata lives in the segment header (never in the slab, never through
//! the allocator). Blocks of a slab are in exactly one state:
//! uncarved | free-local | free-remote | cached (in the owner's thread
//! cache) | live.
//!
//! Invariants (checked in check.rs):
//! I1 BLOCK-ONE   the local free list, the remote queue, every thread cache
//!                and the live blocks are pairwise disjoint, duplicate-free,
//!                and every non-live block carries its free tag (BLOCK-TAG)
//! I2 SLAB-BOUNDS every list node is a block start (`start + i * stride`,
//!                `i < carved`), `carved <= capacity`, the block area
//!                `[start, start + capacity * stride)` lies inside the slab
//!                and after the segment header, and the lookup fields
//!                (stride, its block-test multiplier, the cache offset)
//!                are the class's and `start_mul` is `start * mul`
//! I3 SLAB-USED   `carved == used + free_count` and `free_count` is the
//!                length of `free_local`; `used` counts live, cached and
//!                remote-freed blocks
//! I4 SLAB-OWNER  a bound slab's owner lists it in its class list; an
//!                abandoned slab has owner 0 and is on the pool's list
//!
//! Who may touch what: the `Cell` fields belong to the owning heap while the
//! slab is bound, and to the holder of the pool lock while it is abandoned
//! or free; the hand-over happens under the pool lock. The atomics in the
//! first cache line are read by every free, remote ones included (Relaxed:
//! they do not publish anything; a freeing thread may only free a live
//! block, and a live block's slab cannot be rebound under it).

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};

use crate::block::{self, Block};
use crate::fold;
use crate::platform::{AtomicUsizeOf, AtomicUsizeOps, Os, Platform};
use crate::remote::{RemoteStack, Taken};
use crate::size_class::{block_test, class_size, BLOCK_TEST_REACH};
use crate::thread_cache::ThreadCache;
use crate::zoo::{Bug, Zoo};

/// `class_idx` of a slab that holds no class (free or retired).
pub(crate) const CLASS_NONE: u8 = u8::MAX;

/// `owner` of a slab with no owning heap (free or abandoned).
pub(crate) const NO_OWNER: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SlabState {
    /// Not assigned to a class; in its segment's free mask.
    Free = 0,
    /// Bound to a heap, on that heap's class list.
    Owned = 1,
    /// Its heap exited; on the pool's abandoned list for its class.
    Abandoned = 2,
}

#[repr(C, align(64))]
pub(crate) struct Slab<P: Platform> {
    // ---- line 0: read by every free; written on bind, retire and carve ----
    /// `start * mul` (wrapping; 0 while free): the block-start test then
    /// multiplies `addr` itself, `addr * mul - start_mul` being
    /// `(addr - start) * mul` modulo 2^64 (one copy and a subtraction of
    /// `start` fewer per free: pair 0.303 -> 0.292 s with the pinned
    /// record address of `Segment::slab_in`).
    pub(crate) start_mul: AtomicU64,
    /// `carved * block_test(stride).step`: the block test's bound, readable
    /// by any freeing thread (`carved` is the owner's count).
    pub(crate) carved_limit: AtomicUsize,
    /// `block_test(stride).mul`: the block-start test in one multiply and
    /// one compare (see size_class.rs).
    pub(crate) mul: AtomicU64,
    /// Id of the owning heap, or `NO_OWNER`.
    pub(crate) owner: AtomicUsizeOf<P>,
    /// Head of the local free list (owner only).
    pub(crate) free_local: Cell<*mut Block>,
    /// Block size in bytes (`class_size(class_idx)`).
    pub(crate) stride: AtomicU32,
    /// Length of `free_local`.
    pub(crate) free_count: Cell<u32>,
    /// Blocks handed out of this slab and not yet back on `free_local`:
    /// live, cached and remote-freed ones (see I3).
    pub(crate) used: Cell<u32>,
    /// Blocks carved so far (bump pointer, in blocks).
    pub(crate) carved: Cell<u32>,
    /// [`cache_offset`]`(class_idx)`: where the owner's cache of the class
    /// lies in its cache array. The free path indexes with it directly; an
    /// index from `class_idx` took a zero-extension and a shift more, on
    /// the path from the slab's line to the cache head (pair 0.449 ->
    /// 0.417 s). In line 0 with the other fields every free reads
    /// (asserted in `LayoutChecks`): in line 1 a local free would miss on
    /// it after each remote push to the slab. A u32, not a u16: LLVM
    /// zero-extended a u16 load twice.
    pub(crate) cache_offset: AtomicU32,
    /// Size class, or `CLASS_NONE`.
    pub(crate) class_idx: AtomicU8,
    // ---- line 1: pushed to by remote frees; owner-only and list fields ----
    /// Blocks freed by other threads (see remote.rs).
    pub(crate) remote: RemoteStack<P>,
    /// Address of block 0; 0 while free. (The free path reads `start_mul`
    /// instead; this is for the slow paths and the checker.)
    pub(crate) start: AtomicUsize,
    /// Blocks that fit in the block area.
    pub(crate) capacity: Cell<u32>,
    pub(crate) state: Cell<SlabState>,
    /// Links in the one list the slab is on: its heap's class list when
    /// owned, the pool's abandoned list when abandoned, the decommit queue
    /// when free and still committed.
    pub(crate) next: Cell<*mut Slab<P>>,
    pub(crate) prev: Cell<*mut Slab<P>>,
    /// True while on the pool's decommit queue.
    pub(crate) queued: Cell<bool>,
    /// The first remote-queue node `collect` found not to be a block of
    /// this slab (0: none); the checker reports it (I1 REMOTE-CORRUPT).
    pub(crate) corrupt_node: Cell<usize>,
    /// Scratch for the checker (counts and marks during one walk).
    pub(crate) scratch: Cell<u32>,
    pub(crate) scratch2: Cell<u32>,
}

impl<P: Platform> Slab<P> {
    pub(crate) fn new() -> Self {
        Slab {
            start: AtomicUsize::new(0),
            start_mul: AtomicU64::new(0),
            carved_limit: AtomicUsize::new(0),
            mul: AtomicU64::new(0),
            owner: AtomicUsizeOps::new(NO_OWNER),
            free_local: Cell::new(ptr::null_mut()),
            stride: AtomicU32::new(0),
            free_count: Cell::new(0),
            used: Cell::new(0),
            carved: Cell::new(0),
            capacity: Cell::new(0),
            class_idx: AtomicU8::new(CLASS_NONE),
            cache_offset: AtomicU32::new(0),
            state: Cell::new(SlabState::Free),
            remote: RemoteStack::new(),
            next: Cell::new(ptr::null_mut()),
            prev: Cell::new(ptr::null_mut()),
            queued: Cell::new(false),
            corrupt_node: Cell::new(0),
            scratch: Cell::new(0),
            scratch2: Cell::new(0),
        }
    }

    #[inline(always)]
    pub(crate) fn class(&self) -> usize {
        self.class_idx.load(Relaxed) as usize
    }

    /// Assigns the slab to `class_idx` with its block area starting at
    /// `start` and the slab ending at `end`.
    pub(crate) fn bind(&self, class_idx: usize, start: usize, end: usize, zoo: Zoo) {
        let stride = class_size(class_idx);
        // Zoo bug 3: capacity from a stride without the 16-byte "header"
        // the carving path adds back: carving overruns the slab.
        let cap_stride = if zoo.on(Bug::StrideMismatch) && stride > 16 {
            stride - 16
        } else {
            stride
        };
        let capacity = if end > start {
            (end - start) / cap_stride
        } else {
            0
        };
        debug_assert!(
            self.remote.is_empty(),
            "a free slab has an empty remote queue"
        );
        self.stride.store(stride as u32, Relaxed);
        let bt = block_test(stride);
        self.mul.store(bt.mul, Relaxed);
        self.start.store(start, Relaxed);
        self.start_mul
            .store((start as u64).wrapping_mul(bt.mul), Relaxed);
        self.carved_limit.store(0, Relaxed);
        self.capacity.set(capacity as u32);
        self.carved.set(0);
        self.used.set(0);
        self.free_count.set(0);
        self.free_local.set(ptr::null_mut());
        self.class_idx.store(class_idx as u8, Relaxed);
        self.cache_offset
            .store(cache_offset(class_idx) as u32, Relaxed);
    }

    /// Returns the slab to the free state (the pool does the rest).
    pub(crate) fn unbind(&self) {
        self.class_idx.store(CLASS_NONE, Relaxed);
        self.start.store(0, Relaxed);
        self.start_mul.store(0, Relaxed);
        self.carved_limit.store(0, Relaxed);
        self.owner.store(NO_OWNER, Relaxed);
        self.free_local.set(ptr::null_mut());
        self.free_count.set(0);
        self.carved.set(0);
        self.capacity.set(0);
        // `corrupt_node` stays: the checker must still see it.
        self.state.set(SlabState::Free);
    }

    /// Whether `addr`, an address in this slab's segment, is the start of
    /// a carved block: the free path's validation, one multiply, one
    /// subtraction and one compare (see `size_class::block_test`).
    ///
    /// Only for an address in the segment: the test is exact for offsets
    /// from `start` below 2^22 either way, and a segment is 2 MiB at most
    /// (asserted below). Far from the slab some addresses pass that are
    /// not blocks; [`is_block`](Self::is_block) takes any address.
    ///
    /// `start_mul` and `carved_limit` are read by the instructions that
    /// use them (`fold.rs`): two instructions fewer on every free.
    #[inline(always)]
    pub(crate) fn is_block_in_segment(&self, addr: usize) -> bool {
        const {
            assert!(core::mem::offset_of!(Slab<P>, start_mul) == 0);
            assert!(core::mem::offset_of!(Slab<P>, carved_limit) == 8);
            assert!(P::GEOMETRY.segment_size() <= BLOCK_TEST_REACH / 2);
        }
        let base = (self as *const Self).cast::<u8>();
        let product = (addr as u64).wrapping_mul(self.mul.load(Relaxed));
        // SAFETY: offsets 0 and 8 of a live record are the 8-aligned
        // atomics `start_mul` and `carved_limit` (asserted above; the
        // record is 64-aligned), only ever stored atomically. The
        // arithmetic is `size_class::block_residue_at`'s.
        let residue = unsafe { fold::sub_at::<0>(product, base) };
        // SAFETY: as above.
        unsafe { fold::below_at::<8>(residue, base) }
    }

    /// Whether any address `addr` (a list node that may be user data, say)
    /// is the start of a carved block of this slab: the offset from the
    /// block area's start is first bounded to where
    /// [`is_block_in_segment`](Self::is_block_in_segment) is exact.
    #[inline]
    pub(crate) fn is_block(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.start.load(Relaxed)) < BLOCK_TEST_REACH
            && self.is_block_in_segment(addr)
    }

    /// [`is_block`](Self::is_block), and if not, why not (for the slow
    /// paths' errors: the fast path wants only the bool, and the call to
    /// the cold `not_a_block` would make it save a register).
    #[inline]
    pub(crate) fn check_block(&self, addr: usize) -> Result<(), BlockLookup> {
        if self.is_block(addr) {
            Ok(())
        } else {
            Err(self.not_a_block(addr.wrapping_sub(self.start.load(Relaxed))))
        }
    }

    /// `block_test(stride).step`, from the stored multiplier (0 while free).
    #[inline]
    fn step(&self) -> usize {
        self.mul
            .load(Relaxed)
            .wrapping_mul(self.stride.load(Relaxed) as u64) as usize
    }

    /// Whether heap `id` owns the slab: `owner.load(Relaxed) == id`, with
    /// the load folded into the compare where the owner word is a plain
    /// one (natively; see `fold.rs`).
    #[inline(always)]
    pub(crate) fn owned_by(&self, id: usize) -> bool {
        if <AtomicUsizeOf<P> as AtomicUsizeOps>::PLAIN_WORD {
            const {
                assert!(
                    !<AtomicUsizeOf<P> as AtomicUsizeOps>::PLAIN_WORD
                        || core::mem::offset_of!(Slab<P>, owner) == 24
                );
            }
            // SAFETY: offset 24 of a live record is `owner`, a core
            // `AtomicUsize` here (`PLAIN_WORD`), 8-aligned, only ever
            // stored atomically.
            unsafe { fold::equal_at::<24>(id as u64, (self as *const Self).cast::<u8>()) }
        } else {
            self.owner.load(Relaxed) == id
        }
    }

    /// Whether the fields the free path derives from the class (stride,
    /// its block-test multiplier, `start_mul`, the cache offset) are class
    /// `c`'s (and `start`'s): the checker's I2 SLAB-BOUNDS clause and
    /// [`record_consistent`](Self::record_consistent) both ask this. `c`
    /// must be below `CLASS_TABLE_LEN`.
    pub(crate) fn lookup_fields_are(&self, c: usize) -> bool {
        let stride = class_size(c);
        let bt = block_test(stride);
        let start = self.start.load(Relaxed) as u64;
        self.stride.load(Relaxed) as usize == stride
            && self.mul.load(Relaxed) == bt.mul
            && self.start_mul.load(Relaxed) == start.wrapping_mul(bt.mul)
            && self.cache_offset.load(Relaxed) as usize == cache_offset(c)
    }

    /// Whether the shared bound of the block test, `carved_limit`, is the
    /// owner's carve count times the class's step (I2 SLAB-BOUNDS).
    /// Wrapping: the checker asks this of records user writes may have
    /// overlapped (zoo bug 4), and a garbage record must not panic it.
    pub(crate) fn carved_limit_agrees(&self) -> bool {
        self.carved_limit.load(Relaxed) == (self.carved.get() as usize).wrapping_mul(self.step())
    }

    /// Whether the record's block-lookup fields agree with each other (the
    /// checker's guard before it follows a slab's lists: a record that
    /// user writes overlapped, zoo bug 4, must not send it into garbage).
    pub(crate) fn record_consistent(&self) -> bool {
        let c = self.class();
        if c >= crate::size_class::CLASS_TABLE_LEN {
            return false;
        }
        self.lookup_fields_are(c)
            && self.start.load(Relaxed) != 0
            && self.carved_limit_agrees()
            && self.carved.get() <= self.capacity.get()
    }

    #[cold]
    fn not_a_block(&self, off: usize) -> BlockLookup {
        let stride = self.stride.load(Relaxed) as usize;
        let step = self.step();
        if stride == 0 || step == 0 || off / stride >= self.carved_limit.load(Relaxed) / step {
            return BlockLookup::NotCarved;
        }
        BlockLookup::Interior {
            block: self.start.load(Relaxed) + off / stride * stride,
        }
    }

    /// True if a refill can get a block from this slab.
    #[inline]
    pub(crate) fn has_free(&self) -> bool {
        !self.free_local.get().is_null()
            || !self.remote.is_empty()
            || self.carved.get() < self.capacity.get()
    }

    /// Moves the remote queue onto the local free list; returns how many
    /// blocks moved. Owner (or pool-lock holder for an unowned slab) only.
    ///
    /// Other threads write this queue, so the walk checks every node is a
    /// carved block of this slab (a push that lost an update can link a
    /// block the owner already handed out, whose first word is user data).
    /// At the first bad node it stops, keeps the good prefix, records the
    /// node and tells the OS layer (natively: a message and an abort).
    pub(crate) fn collect(&self, zoo: Zoo, os: &P::Os) -> u32 {
        let taken = self.take_remote(zoo);
        self.splice_remote(taken, 0, os).0
    }

    /// Takes the remote queue (zoo bug 2: reads it and leaves it there).
    #[inline]
    fn take_remote(&self, zoo: Zoo) -> Taken {
        if zoo.on(Bug::SpliceKeepsRemote) {
            // Zoo bug 2: the splice reads the queue but does not take it,
            // so the blocks stay on the queue and join the free list.
            self.remote.peek()
        } else {
            self.remote.take_all()
        }
    }

    /// Puts a taken remote queue on the local free list, walking it to
    /// validate each node and find its tail; returns how many blocks moved
    /// and the node ending the first `min(n, cut)` of them (null if none
    /// moved or `cut` is 0), so a refill can hand that prefix to the cache
    /// without walking the list a second time.
    #[inline]
    fn splice_remote(&self, taken: Taken, cut: u32, os: &P::Os) -> (u32, *mut Block) {
        let list = taken.list;
        if list.is_null() {
            return (0, ptr::null_mut());
        }
        if !self.is_block(list as usize) {
            self.corrupted(list as usize, os);
            return (0, ptr::null_mut());
        }
        let mut n = 1u32;
        let mut tail = list;
        let mut cut_node = if cut > 0 { list } else { ptr::null_mut() };
        // SAFETY: every node walked was checked to be a carved block start
        // of this slab, and the queue's links were published by the push's
        // Release CAS and made visible by the Acquire in take_all/peek. The
        // walk is bounded by the capacity, so a cycle cannot hang it.
        unsafe {
            loop {
                let next = block::next(tail);
                if next.is_null() || n > self.capacity.get() {
                    break;
                }
                if !self.is_block(next as usize) {
                    self.corrupted(next as usize, os);
                    break;
                }
                tail = next;
                n += 1;
                if n <= cut {
                    cut_node = tail;
                }
            }
            block::set_next(tail, self.free_local.get());
        }
        self.free_local.set(list);
        self.free_count.set(self.free_count.get().wrapping_add(n));
        self.used.set(self.used.get().wrapping_sub(n));
        (n, cut_node)
    }

    #[cold]
    fn corrupted(&self, node: usize, os: &P::Os) {
        if self.corrupt_node.get() == 0 {
            self.corrupt_node.set(node);
        }
        os.report_corruption(
            "corrupted remote-free queue: a node that is not a block of its slab:",
            node,
        );
    }

    /// Refill: moves up to `want` blocks into `cache` (local free list
    /// first, then the collected remote queue, onto the cache's chain as
    /// they are; then bump-carved blocks, into its array) and counts them
    /// as used; a local free list that fits the empty cache whole moves
    /// whole, even beyond `want`. Returns how many moved.
    ///
    /// # Safety
    /// The caller owns the slab and `cache` is its class's cache, empty,
    /// with a capacity of at least `want`; the slab's block area is
    /// committed.
    pub(crate) unsafe fn take(
        &self,
        want: u32,
        cache: &mut ThreadCache,
        key: usize,
        zoo: Zoo,
        os: &P::Os,
    ) -> u32 {
        debug_assert!(cache.count() == 0 && cache.chain_room() >= want);
        // The free list and the cache's chain share the link word: hand
        // over a prefix of up to `want` blocks as it is, relinking nothing
        // but the cut. `last` ends the prefix, `got` counts it.
        let mut got = 0u32;
        let mut last = ptr::null_mut();
        if self.free_local.get().is_null() {
            let taken = self.take_remote(zoo);
            if !taken.list.is_null()
                && taken.count <= cache.chain_room()
                && taken.count <= self.carved.get()
                && self.is_block(taken.list as usize)
            {
                // The whole queue fits in the empty cache: it becomes the
                // free list as it is, without a walk, and goes on whole
                // below like a free list that fits. Its nodes were each
                // validated by the free that pushed them; the links are
                // the pushes' own (REMOTE-COUNT gives the length).
                self.free_local.set(taken.list);
                self.free_count.set(taken.count);
                self.used.set(self.used.get().wrapping_sub(taken.count));
                got = taken.count;
            } else {
                // The collect walk (which validates every node anyway)
                // marks where the prefix ends: no second walk over blocks
                // that the freeing threads' cores wrote last.
                let (n, cut_node) = self.splice_remote(taken, want, os);
                if n > 0 {
                    got = n.min(want);
                    last = cut_node;
                }
            }
        } else if self.free_count.get() <= cache.chain_room() {
            // The whole list fits in the empty cache (even if it is more
            // than `want`) and its last link is already null, the empty
            // cache's head: take it without walking it. A walk here is a
            // chain of dependent misses over blocks freed long ago.
            got = self.free_count.get();
        } else {
            let head = self.free_local.get();
            last = head;
            got = 1;
            // SAFETY: nodes of our free list are free blocks of this
            // committed slab (I1/I2); the walk stops at `want` or the end.
            let mut next = unsafe { block::next(last) };
            while got < want && !next.is_null() {
                last = next;
                // SAFETY: as above.
                next = unsafe { block::next(last) };
                got += 1;
            }
        }
        if got > 0 {
            let head = self.free_local.get();
            let next = if last.is_null() {
                // the whole list, taken into an empty cache
                ptr::null_mut()
            } else {
                // SAFETY: `last` is a node of our free list (ours); the
                // cache's old list goes after it.
                let next = unsafe { block::next(last) };
                // SAFETY: as above.
                unsafe { block::set_next(last, cache.head) };
                next
            };
            // SAFETY: at most `want` (or what `chain_room` allowed) blocks,
            // linked from `head` down to the old chain.
            unsafe { cache.set_chain(head, got) };
            self.free_local.set(next);
            self.free_count.set(self.free_count.get().wrapping_sub(got));
        }
        let from_list = got;
        if got < want {
            let carved = self.carved.get();
            let n = (want - got).min(self.capacity.get() - carved);
            let stride = self.stride.load(Relaxed) as usize;
            let start = self.start.load(Relaxed);
            let mut addr = start + carved as usize * stride;
            for _ in 0..n {
                let blk = addr as *mut Block;
                os.mark_block(blk.cast(), stride, false);
                // SAFETY: `addr` is below `start + capacity * stride`, inside
                // the committed block area (I2), and never handed out; the
                // array has room (it was empty, and the chain took at most
                // `got` of the `cap >= want` slots).
                unsafe {
                    block::set_tag(blk, key);
                    cache.push(blk);
                }
                addr += stride;
            }
            self.carved.set(carved + n);
            self.carved_limit
                .store((carved + n) as usize * self.step(), Relaxed);
            got += n;
        }
        // Zoo bug 5: blocks spliced from the free list are not counted.
        let counted = if zoo.on(Bug::RefillForgetsUsed) {
            got - from_list
        } else {
            got
        };
        self.used.set(self.used.get().wrapping_add(counted));
        got
    }

    /// Drain: returns a chain of `n` cached blocks (`head` .. `tail`, linked)
    /// to the local free list. Returns true when the slab has just become
    /// empty.
    ///
    /// # Safety
    /// The caller owns the slab; the chain holds `n` cached (tagged) blocks
    /// of it.
    #[inline]
    pub(crate) unsafe fn push_local_chain(
        &self,
        head: *mut Block,
        tail: *mut Block,
        n: u32,
        zoo: Zoo,
    ) -> bool {
        // SAFETY: per the contract the blocks are free and ours.
        unsafe { block::set_next(tail, self.free_local.get()) };
        self.free_local.set(head);
        self.free_count.set(self.free_count.get().wrapping_add(n));
        if zoo.on(Bug::DrainForgetsUsed) {
            // Zoo bug 1: the slab never sees its blocks come back.
            return false;
        }
        let used = self.used.get().wrapping_sub(n);
        self.used.set(used);
        used == 0
    }
}

/// The byte offset of class `c`'s cache in a heap's cache array.
pub(crate) const fn cache_offset(c: usize) -> usize {
    c * core::mem::size_of::<ThreadCache>()
}

const _: () = assert!(
    cache_offset(crate::size_class::MAX_CLASSES) <= u32::MAX as usize,
    "cache offsets fit the slab record's field"
);

/// Why an address is not a block start of a slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockLookup {
    /// Outside the carved part of the block area.
    NotCarved,
    /// Inside the block starting at `block`.
    Interior { block: usize },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::Native;
    use crate::size_class::{block_test, CLASS_TABLE_LEN};

    /// The production segment size: no slab's block area is larger.
    const SEGMENT: usize = Native::GEOMETRY.segment_size();

    /// The free path's block test (`check_block`, with its loads folded
    /// by hand, see fold.rs) against plain division, for every class, a
    /// few carved counts and every 8-byte step around the block area.
    #[test]
    fn check_block_is_the_reference_block_test() {
        let slab = Slab::<Native>::new();
        let start = 0x7f12_3456_0040usize;
        for c in 0..CLASS_TABLE_LEN {
            let stride = class_size(c);
            // As in a real slab, the block area fits a segment (2 MiB).
            let n = (SEGMENT / stride).min(64);
            slab.bind(c, start, start + n * stride, Zoo::NONE);
            for carved in [0usize, 1, 5.min(n), n] {
                slab.carved.set(carved as u32);
                slab.carved_limit
                    .store(carved * block_test(stride).step as usize, Relaxed);
                assert!(slab.carved_limit_agrees());
                let lo = start - 2 * stride;
                let hi = start + (carved + 2) * stride;
                for addr in (lo..hi).step_by(8) {
                    let want = if addr < start || (addr - start) / stride >= carved {
                        Err(BlockLookup::NotCarved)
                    } else if (addr - start).is_multiple_of(stride) {
                        Ok(())
                    } else {
                        Err(BlockLookup::Interior {
                            block: addr - (addr - start) % stride,
                        })
                    };
                    assert_eq!(
                        slab.check_block(addr),
                        want,
                        "class {c} carved {carved} addr {addr:#x}"
                    );
                }
            }
        }
    }

    /// Far from the slab, the bare test lets some addresses through: with
    /// an odd `mul`, the address `start + mul^-1` has residue 1, below any
    /// non-zero bound. `is_block` (and so `check_block`) bounds the offset
    /// first and refuses it, as it refuses random addresses anywhere.
    #[test]
    fn is_block_refuses_far_addresses_the_bare_test_lets_through() {
        let slab = Slab::<Native>::new();
        let start = 0x7f12_3456_0040usize;
        let mut far_passes = 0;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for c in 0..CLASS_TABLE_LEN {
            let stride = class_size(c);
            let carved = (SEGMENT / stride).min(64);
            slab.bind(c, start, start + carved * stride, Zoo::NONE);
            let bt = block_test(stride);
            slab.carved.set(carved as u32);
            slab.carved_limit.store(carved * bt.step as usize, Relaxed);
            if bt.mul % 2 == 1 && bt.step > 1 {
                // Newton's iteration for the inverse modulo 2^64.
                let mut inv = bt.mul;
                for _ in 0..6 {
                    inv = inv.wrapping_mul(2u64.wrapping_sub(bt.mul.wrapping_mul(inv)));
                }
                assert_eq!(inv.wrapping_mul(bt.mul), 1);
                let addr = start.wrapping_add(inv as usize);
                assert!(slab.is_block_in_segment(addr), "class {c}");
                assert!(!slab.is_block(addr), "class {c} addr {addr:#x}");
                assert!(slab.check_block(addr).is_err(), "class {c}");
                far_passes += 1;
            }
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let addr = x as usize;
                let off = addr.wrapping_sub(start);
                let want = off < carved * stride && off.is_multiple_of(stride);
                assert_eq!(slab.is_block(addr), want, "class {c} addr {addr:#x}");
            }
        }
        assert!(far_passes > 0, "no class with an odd multiplier to try");
    }

    #[test]
    fn owned_by_compares_the_owner_word() {
        let slab = Slab::<Native>::new();
        assert!(slab.owned_by(NO_OWNER));
        for id in [0x1000usize, 0x7fff_0000_1240, usize::MAX - 1] {
            slab.owner.store(id, Relaxed);
            assert!(slab.owned_by(id));
            assert!(!slab.owned_by(id ^ 0x40));
            assert!(!slab.owned_by(NO_OWNER));
        }
    }
}
