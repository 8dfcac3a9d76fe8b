//! The shared pool: segments with free slabs, the LRU of empty segments,
//! the lists of abandoned slabs, and the decommit queue. Everything here is
//! under the pool lock (`Allocator::pool`).
//!
//! Life of a slab: free (in its segment's free mask) → bound to a heap
//! (`take_free_slab` + `Slab::bind`) → either retired when empty
//! (`retire_slab`: back to the free mask, queued for decommit) or abandoned
//! when its heap exits (`abandon`) and later adopted by another heap
//! (`pop_abandoned`) or retired by `trim` once empty.
//!
//! Life of a segment: mapped for a kind → on the partial list of its kind
//! while it has a free slab → when every slab is free, on the LRU of empty
//! segments (byte cap `segment_cache_bytes`) → reused for any kind, or
//! unmapped when the LRU is over its cap (or by `trim`).
//!
//! Invariants (checked in check.rs):
//! I5 POOL-EMPTY  a segment with no used slab is on the LRU, and the LRU
//!                holds no more than its cap after every pool operation
//! I6 POOL-BOOKS  `committed_units` matches what was committed/decommitted,
//!                and the decommit queue holds only free, committed slabs

use core::cell::Cell;
use core::ptr::NonNull;

use crate::allocator::Allocator;
use crate::geometry::SlabKind;
use crate::list::{Links, List};
use crate::platform::{AtomicUsizeOps, Os, OsError, Platform};
use crate::registry::Region;
use crate::segment::{Segment, SegmentState};
use crate::size_class::MAX_CLASSES;
use crate::slab::{Slab, SlabState, NO_OWNER};

pub(crate) struct SlabLinks;
impl<P: Platform> Links<Slab<P>> for SlabLinks {
    #[inline(always)]
    fn next(t: &Slab<P>) -> &Cell<*mut Slab<P>> {
        &t.next
    }
    #[inline(always)]
    fn prev(t: &Slab<P>) -> &Cell<*mut Slab<P>> {
        &t.prev
    }
}

pub(crate) struct SegLinks;
impl<P: Platform> Links<Segment<P>> for SegLinks {
    fn next(t: &Segment<P>) -> &Cell<*mut Segment<P>> {
        &t.next
    }
    fn prev(t: &Segment<P>) -> &Cell<*mut Segment<P>> {
        &t.prev
    }
}

pub(crate) struct SegAllLinks;
impl<P: Platform> Links<Segment<P>> for SegAllLinks {
    fn next(t: &Segment<P>) -> &Cell<*mut Segment<P>> {
        &t.all_next
    }
    fn prev(t: &Segment<P>) -> &Cell<*mut Segment<P>> {
        &t.all_prev
    }
}

pub(crate) type SlabList<P> = List<Slab<P>, SlabLinks>;
pub(crate) type SegList<P> = List<Segment<P>, SegLinks>;

pub(crate) struct PoolState<P: Platform> {
    /// Per kind: in-use segments with at least one free slab.
    pub(crate) partial: [SegList<P>; 2],
    /// Empty segments, most recently emptied first.
    pub(crate) lru: SegList<P>,
    /// Every segment, in use or cached.
    pub(crate) all: List<Segment<P>, SegAllLinks>,
    /// Per class: slabs whose heap exited.
    pub(crate) abandoned: [SlabList<P>; MAX_CLASSES],
    /// Free slabs still committed, oldest retirement first.
    pub(crate) decommit: SlabList<P>,
    pub(crate) decommit_bytes: usize,
}

// SAFETY: the pool state is only pointers to OS-mapped metadata; it is
// always behind the pool lock.
unsafe impl<P: Platform> Send for PoolState<P> {}

impl<P: Platform> PoolState<P> {
    pub(crate) const fn new() -> Self {
        PoolState {
            partial: [List::new(), List::new()],
            lru: List::new(),
            all: List::new(),
            abandoned: [const { List::new() }; MAX_CLASSES],
            decommit: List::new(),
            decommit_bytes: 0,
        }
    }

    /// A free slab of `kind`, committed and marked used in its segment:
    /// from a partial segment, else an empty cached one, else a new
    /// mapping. Returns the segment and the slab index.
    pub(crate) fn take_free_slab(
        &mut self,
        a: &Allocator<P>,
        kind: SlabKind,
    ) -> Result<(*mut Segment<P>, usize), OsError> {
        let seg_ptr = if !self.partial[kind.index()].is_empty() {
            self.partial[kind.index()].head
        } else if !self.lru.is_empty() {
            // SAFETY: LRU segments are live mappings.
            let seg_ptr = unsafe { self.lru.pop_front() };
            // SAFETY: as above.
            let seg = unsafe { &*seg_ptr };
            a.stats.segments_cached.sub(1);
            seg.state.set(SegmentState::InUse);
            if seg.kind.get() != kind {
                self.unqueue_segment(seg);
                seg.set_kind(kind);
                // The segment is empty: only a misuse free can read the
                // byte now, and either kind leads it to a free slab record,
                // which its block check rejects.
                a.registry_view()
                    .mark_segment(seg.base(), P::GEOMETRY.segment_shift, kind);
                self.queue_committed_free_slabs(a, seg);
            }
            // SAFETY: the segment was just taken off the LRU.
            unsafe { self.partial[kind.index()].push_front(seg_ptr) };
            seg_ptr
        } else {
            self.map_segment(a, kind)?
        };
        // SAFETY: partial segments are live mappings.
        let seg = unsafe { &*seg_ptr };
        let idx = seg.free_mask.get().trailing_zeros() as usize;
        debug_assert!(idx < seg.slab_count());
        if let Err(e) = self.commit_slab(a, seg, idx) {
            if seg.used_slabs.get() == 0 {
                // Nothing taken from it: it goes back to the LRU (POOL-EMPTY).
                // SAFETY: it is on the partial list of its kind.
                unsafe { self.partial[kind.index()].remove(seg_ptr) };
                seg.state.set(SegmentState::Cached);
                // SAFETY: now on no pool list.
                unsafe { self.lru.push_front(seg_ptr) };
                a.stats.segments_cached.add(1);
                self.evict_lru(a, a.config.segment_cache_bytes);
            }
            return Err(e);
        }
        // SAFETY: `idx` is a slab of this segment.
        let slab = unsafe { &*seg.slab(idx) };
        if slab.queued.get() {
            // SAFETY: a queued slab is on the decommit queue.
            unsafe { self.decommit.remove(seg.slab(idx)) };
            slab.queued.set(false);
            self.decommit_bytes -= P::GEOMETRY.slab_size(kind);
        }
        seg.free_mask.set(seg.free_mask.get() & !(1u64 << idx));
        seg.used_slabs.set(seg.used_slabs.get() + 1);
        if seg.free_mask.get() == 0 {
            // SAFETY: the segment is on the partial list of its kind.
            unsafe { self.partial[kind.index()].remove(seg_ptr) };
        }
        Ok((seg_ptr, idx))
    }

    fn map_segment(
        &mut self,
        a: &Allocator<P>,
        kind: SlabKind,
    ) -> Result<*mut Segment<P>, OsError> {
        let size = P::GEOMETRY.segment_size();
        let base = a.os_map(size, size)?;
        // SAFETY: a fresh, committed, segment-aligned mapping of one segment.
        let seg_ptr = unsafe { Segment::<P>::init(base.as_ptr() as usize, kind) };
        a.registry_view()
            .mark_segment(base.as_ptr() as usize, P::GEOMETRY.segment_shift, kind);
        // SAFETY: the new segment is on no list.
        unsafe {
            self.all.push_front(seg_ptr);
            self.partial[kind.index()].push_front(seg_ptr);
        }
        a.stats.segments_mapped.add(1);
        a.stats.segments_live.add(1);
        Ok(seg_ptr)
    }

    /// `[start, len)` of unit `u` of a segment, the header excluded.
    fn unit_range(seg: &Segment<P>, u: usize, page: usize) -> (usize, usize) {
        let unit = P::GEOMETRY.slab_size(SlabKind::Small);
        let start = seg.base() + u * unit;
        if u == 0 {
            let floor = Segment::<P>::data_floor(page);
            (seg.base() + floor, unit.saturating_sub(floor))
        } else {
            (start, unit)
        }
    }

    /// Bytes of a segment that are committed now (header included).
    pub(crate) fn committed_size(seg: &Segment<P>, page: usize) -> usize {
        let mut n = Segment::<P>::data_floor(page);
        let mut m = seg.committed_units.get();
        while m != 0 {
            let u = m.trailing_zeros() as usize;
            n += Self::unit_range(seg, u, page).1;
            m &= m - 1;
        }
        n
    }

    fn commit_slab(
        &mut self,
        a: &Allocator<P>,
        seg: &Segment<P>,
        idx: usize,
    ) -> Result<(), OsError> {
        let missing = seg.unit_mask(idx) & !seg.committed_units.get();
        let mut m = missing;
        let page = a.os.page_size();
        while m != 0 {
            let u = m.trailing_zeros() as usize;
            let (start, len) = Self::unit_range(seg, u, page);
            if len > 0 {
                // SAFETY: the unit lies inside the live segment mapping and
                // was decommitted (its bit is clear).
                let r = unsafe { a.os.commit(NonNull::new_unchecked(start as *mut u8), len) };
                if let Err(e) = r {
                    a.stats.os_failures.add(1);
                    return Err(e);
                }
                a.stats.committed_bytes.add(len);
            }
            seg.committed_units.set(seg.committed_units.get() | 1 << u);
            m &= m - 1;
        }
        Ok(())
    }

    fn decommit_slab(&mut self, a: &Allocator<P>, seg: &Segment<P>, idx: usize) {
        let mut m = seg.unit_mask(idx) & seg.committed_units.get();
        let page = a.os.page_size();
        while m != 0 {
            let u = m.trailing_zeros() as usize;
            let (start, len) = Self::unit_range(seg, u, page);
            if len > 0 {
                // SAFETY: the unit lies inside the live segment mapping, is
                // committed, and belongs to a free slab nobody uses.
                unsafe { a.os.decommit(NonNull::new_unchecked(start as *mut u8), len) };
                a.stats.committed_bytes.sub(len);
            }
            seg.committed_units
                .set(seg.committed_units.get() & !(1 << u));
            m &= m - 1;
        }
        a.stats.slabs_decommitted.add(1);
    }

    /// Takes every queued slab of `seg` off the decommit queue (they stay
    /// committed; `committed_units` keeps the truth).
    fn unqueue_segment(&mut self, seg: &Segment<P>) {
        let size = P::GEOMETRY.slab_size(seg.kind.get());
        for i in 0..seg.slab_count() {
            // SAFETY: `i` is a slab of this segment.
            let slab = unsafe { &*seg.slab(i) };
            if slab.queued.get() {
                // SAFETY: a queued slab is on the decommit queue.
                unsafe { self.decommit.remove(seg.slab(i)) };
                slab.queued.set(false);
                self.decommit_bytes -= size;
            }
        }
    }

    /// After a kind change: queue the free slabs that still have committed
    /// units, so their memory is decommitted in due course.
    fn queue_committed_free_slabs(&mut self, a: &Allocator<P>, seg: &Segment<P>) {
        for i in 0..seg.slab_count() {
            if seg.free_mask.get() & (1 << i) != 0
                && seg.unit_mask(i) & seg.committed_units.get() != 0
            {
                self.queue_for_decommit(a, seg, i);
            }
        }
    }

    fn queue_for_decommit(&mut self, a: &Allocator<P>, seg: &Segment<P>, idx: usize) {
        let slab_ptr = seg.slab(idx);
        // SAFETY: a slab record of a live segment, on no list (free).
        unsafe {
            (*slab_ptr).queued.set(true);
            self.decommit.push_back(slab_ptr);
        }
        self.decommit_bytes += P::GEOMETRY.slab_size(seg.kind.get());
        while self.decommit_bytes > a.config.decommit_delay_bytes {
            self.decommit_oldest(a);
        }
    }

    fn decommit_oldest(&mut self, a: &Allocator<P>) -> bool {
        // SAFETY: queued slabs are records of live segments.
        let slab_ptr = unsafe { self.decommit.pop_front() };
        if slab_ptr.is_null() {
            return false;
        }
        // SAFETY: as above.
        let slab = unsafe { &*slab_ptr };
        let seg = Segment::<P>::of(slab_ptr as usize);
        // SAFETY: the slab's segment is live.
        let seg = unsafe { &*seg };
        slab.queued.set(false);
        self.decommit_bytes -= P::GEOMETRY.slab_size(seg.kind.get());
        let idx = seg.slab_index(slab_ptr);
        self.decommit_slab(a, seg, idx);
        true
    }

    /// Gives an empty slab back to its segment. The caller has unlinked it
    /// from its heap (or abandoned list).
    pub(crate) fn retire_slab(&mut self, a: &Allocator<P>, slab_ptr: *mut Slab<P>) {
        // SAFETY: the slab is a record of a live segment.
        let slab = unsafe { &*slab_ptr };
        let seg_ptr = Segment::<P>::of(slab_ptr as usize);
        // SAFETY: as above.
        let seg = unsafe { &*seg_ptr };
        let idx = seg.slab_index(slab_ptr);
        let kind = seg.kind.get();
        slab.unbind();
        a.stats.slabs_retired.add(1);
        let was_full = seg.free_mask.get() == 0;
        seg.free_mask.set(seg.free_mask.get() | 1 << idx);
        seg.used_slabs.set(seg.used_slabs.get() - 1);
        if seg.used_slabs.get() == 0 {
            if !was_full {
                // SAFETY: a segment with a free slab and a used one is on
                // the partial list of its kind.
                unsafe { self.partial[kind.index()].remove(seg_ptr) };
            }
            seg.state.set(SegmentState::Cached);
            // SAFETY: the segment is now on no pool list.
            unsafe { self.lru.push_front(seg_ptr) };
            a.stats.segments_cached.add(1);
        } else if was_full {
            // SAFETY: a full segment is on no list.
            unsafe { self.partial[kind.index()].push_front(seg_ptr) };
        }
        self.queue_for_decommit(a, seg, idx);
        self.evict_lru(a, a.config.segment_cache_bytes);
    }

    /// Unmaps the least recently emptied segments until the LRU holds at
    /// most `keep_bytes`.
    pub(crate) fn evict_lru(&mut self, a: &Allocator<P>, keep_bytes: usize) {
        let size = P::GEOMETRY.segment_size();
        while self.lru.len * size > keep_bytes {
            // SAFETY: LRU segments are live.
            let seg_ptr = unsafe { self.lru.pop_back() };
            // SAFETY: as above.
            let seg = unsafe { &*seg_ptr };
            self.unqueue_segment(seg);
            // SAFETY: the segment is on the all-list.
            unsafe { self.all.remove(seg_ptr) };
            a.registry_view()
                .mark(seg.base(), P::GEOMETRY.segment_shift, Region::None);
            let committed = Self::committed_size(seg, a.os.page_size());
            a.stats.segments_cached.sub(1);
            a.stats.segments_live.sub(1);
            a.stats.segments_unmapped.add(1);
            a.stats.committed_bytes.sub(committed);
            // SAFETY: the segment is empty and on no list; nothing refers
            // to it. The committed bytes were taken off above, so the unmap
            // books only the mapping.
            unsafe {
                Segment::<P>::destroy(seg_ptr);
                a.os_unmap_uncommitted(NonNull::new_unchecked(seg_ptr.cast()), size);
            }
        }
    }

    /// Puts a slab whose heap exited on the abandoned list of its class.
    pub(crate) fn abandon(&mut self, slab_ptr: *mut Slab<P>) {
        // SAFETY: a bound slab of a live segment, just unlinked by its heap.
        let slab = unsafe { &*slab_ptr };
        slab.owner
            .store(NO_OWNER, core::sync::atomic::Ordering::Relaxed);
        slab.state.set(SlabState::Abandoned);
        // SAFETY: the slab is on no list.
        unsafe { self.abandoned[slab.class()].push_back(slab_ptr) };
    }

    /// Takes an abandoned slab of `class_idx` for adoption (the caller
    /// binds it to its heap and collects it: see `Heap::adopt`).
    pub(crate) fn pop_abandoned(&mut self, class_idx: usize) -> *mut Slab<P> {
        // SAFETY: abandoned slabs are records of live segments.
        unsafe { self.abandoned[class_idx].pop_front() }
    }

    /// Retires the abandoned slabs that have become empty (collecting their
    /// remote queues), decommits every queued slab, and unmaps cached
    /// segments beyond `retain_bytes`.
    pub(crate) fn trim(&mut self, a: &Allocator<P>) {
        for c in 0..P::GEOMETRY.class_count() {
            // SAFETY: abandoned slabs are records of live segments; we hold
            // the pool lock, which is what owns an abandoned slab.
            let mut s = self.abandoned[c].head;
            while !s.is_null() {
                // SAFETY: as above.
                let slab = unsafe { &*s };
                // SAFETY: `s` is on this list.
                let next = unsafe { self.abandoned[c].next_of(s) };
                slab.collect(a.config.zoo, &a.os);
                if slab.used.get() == 0 {
                    // SAFETY: `s` is on this list.
                    unsafe { self.abandoned[c].remove(s) };
                    self.retire_slab(a, s);
                }
                s = next;
            }
        }
        while self.decommit_oldest(a) {}
        self.evict_lru(a, a.config.retain_bytes);
    }
}
