//! The allocator value: every piece of state lives here (no hidden
//! statics), so every test, fuzz input and schedule starts from a fresh
//! one; natively there is one `static` (see `global.rs`).

use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::config::Config;
use crate::error::{AllocError, FreeError, ReallocError};
use crate::heap::{HeapData, HeapLinks};
use crate::large::LargeState;
use crate::list::List;
use crate::platform::{MutexOf, MutexOps, Os, OsError, Platform};
use crate::pool::PoolState;
use crate::registry::{Registry, RegistryView};
use crate::segment::{LayoutChecks, Segment};
use crate::stats::{GlobalStats, Stats};

/// Size of one chunk of heap records (mapped from the OS on demand).
const HEAP_CHUNK_SIZE: usize = 64 * 1024;

pub(crate) struct HeapList<P: Platform> {
    pub(crate) live: List<HeapData<P>, HeapLinks>,
    /// Unused heap records, chained through `next`.
    free_slots: *mut HeapData<P>,
    /// Heaps of exited threads kept whole for the next new thread (still
    /// on `live`), chained through `parked_next`; `parked_count` of them.
    pub(crate) parked: *mut HeapData<P>,
    pub(crate) parked_count: usize,
    /// Chunks of heap records, chained through their first word.
    chunks: *mut u8,
}

// SAFETY: only pointers to OS-mapped records, always behind the heaps lock.
unsafe impl<P: Platform> Send for HeapList<P> {}

impl<P: Platform> HeapList<P> {
    pub(crate) const fn new() -> Self {
        HeapList {
            live: List::new(),
            free_slots: ptr::null_mut(),
            parked: ptr::null_mut(),
            parked_count: 0,
            chunks: ptr::null_mut(),
        }
    }
}

/// A slab allocator over the platform `P`.
pub struct Allocator<P: Platform> {
    pub(crate) os: P::Os,
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    /// The free-tag secret; fixed at first use (before any block exists).
    pub(crate) key: AtomicUsize,
    pub(crate) pool: MutexOf<P, PoolState<P>>,
    pub(crate) large: MutexOf<P, LargeState>,
    pub(crate) heaps: MutexOf<P, HeapList<P>>,
    pub(crate) stats: GlobalStats,
}

impl<P: Platform> Allocator<P> {
    /// A fresh allocator over `os`. Nothing is mapped until the first heap.
    pub fn new(os: P::Os, config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = LayoutChecks::<P>::OK;
        Allocator {
            os,
            config,
            registry: Registry::new(),
            key: AtomicUsize::new(0),
            pool: MutexOps::new(PoolState::new()),
            large: MutexOps::new(LargeState::new()),
            heaps: MutexOps::new(HeapList::new()),
            stats: GlobalStats::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The OS layer (the simulation injects faults and reads books here).
    pub fn os(&self) -> &P::Os {
        &self.os
    }

    // ------------------------------------------------------------------
    // heaps

    /// A new heap (one per thread). Fails only if the OS refuses memory for
    /// its record or for the registry.
    pub fn heap(&self) -> Result<Heap<'_, P>, AllocError> {
        let data = self.create_heap()?;
        Ok(Heap {
            data,
            _alloc: PhantomData,
            _not_sync: PhantomData,
        })
    }

    /// A heap for a new thread: a parked one (see `Config::parked_heaps`),
    /// with its caches and slabs as its last thread left them, or a new
    /// record in OS-mapped metadata.
    pub(crate) fn create_heap(&self) -> Result<NonNull<HeapData<P>>, AllocError> {
        self.heaps.with(|hl| {
            if let Some(h) = self.pop_parked(hl) {
                self.stats.heaps_reused.add(1);
                return Ok(h);
            }
            if self.registry.view().is_none() {
                self.init_locked()?;
            }
            if hl.free_slots.is_null() {
                self.map_heap_chunk(hl)?;
            }
            let slot = hl.free_slots;
            // SAFETY: free slots are unused records inside a heap chunk.
            hl.free_slots = unsafe { (*slot).next.get() };
            // SAFETY: the slot is ours, aligned and large enough.
            unsafe {
                HeapData::place(slot, self, self.key.load(Relaxed));
                hl.live.push_front(slot);
            }
            self.stats.heaps_created.add(1);
            self.stats.heaps_live.add(1);
            // SAFETY: non-null slot.
            Ok(unsafe { NonNull::new_unchecked(slot) })
        })
    }

    /// First use: map the registry and fix the tag key.
    fn init_locked(&self) -> Result<(), AllocError> {
        let mut key = self.config.tag_key;
        if key == 0 {
            key = self.os.entropy();
        }
        // Low bits set: no 16-aligned block address equals the key, so a
        // tag is never 0 (the live marker). Top bit clear: `!tag` (the
        // checker's visit mark) is never a tag.
        key = (key | 0xf) & (usize::MAX >> 1);
        self.key.store(key, Relaxed);
        let size = Registry::table_size(&self.os, P::GEOMETRY.segment_shift);
        self.registry
            .init(&self.os, P::GEOMETRY.segment_shift)
            .inspect_err(|_| self.stats.os_failures.add(1))
            .map_err(AllocError::OutOfMemory)?;
        self.stats.maps.add(1);
        self.stats.mapped_bytes.add(size);
        self.stats.committed_bytes.add(size);
        self.stats.meta_bytes.add(size);
        Ok(())
    }

    /// A heap chunk's layout: the size of each heap slot in it, the offset
    /// of the first slot (after the word that chains the chunks), and the
    /// chunk's size (at least one slot, page-rounded).
    fn heap_chunk_layout(&self) -> (usize, usize, usize) {
        let rec = HeapData::<P>::slot_size(&self.config);
        let align = core::mem::align_of::<HeapData<P>>().max(64);
        let first = (core::mem::size_of::<usize>() + align - 1) & !(align - 1);
        let page = self.os.page_size();
        let size = HEAP_CHUNK_SIZE.max((first + rec + page - 1) & !(page - 1));
        (rec, first, size)
    }

    fn map_heap_chunk(&self, hl: &mut HeapList<P>) -> Result<(), AllocError> {
        let (rec, first, size) = self.heap_chunk_layout();
        let chunk = self
            .os_map(size, self.os.page_size())
            .map_err(AllocError::OutOfMemory)?;
        self.stats.meta_bytes.add(size);
        let base = chunk.as_ptr();
        // SAFETY: the chunk is fresh; its first word chains the chunks.
        unsafe { ptr::write(base.cast::<*mut u8>(), hl.chunks) };
        hl.chunks = base;
        let mut off = first;
        while off + rec <= size {
            // SAFETY: the record lies inside the chunk, aligned.
            unsafe {
                let slot = base.add(off).cast::<HeapData<P>>();
                // Only the link is written; the record is built on use.
                ptr::write(
                    ptr::addr_of_mut!((*slot).next),
                    core::cell::Cell::new(hl.free_slots),
                );
                hl.free_slots = slot;
            }
            off += rec;
        }
        Ok(())
    }

    /// Thread exit of a heap: parked whole while fewer than
    /// `Config::parked_heaps` are (larson, whose threads hand their blocks
    /// to a new thread and exit: 0.491 -> 0.436 s, 1403 heaps created ->
    /// 5, adoptions 37345 -> 0, remote frees 828k -> 156k, peak RSS 9.1
    /// -> 9.8 MiB); else flushed, its slabs abandoned and its record
    /// recycled.
    ///
    /// # Safety
    /// `data` came from `create_heap` of this allocator and is not used
    /// afterwards.
    pub(crate) unsafe fn release_heap(&self, data: NonNull<HeapData<P>>) {
        let h = data.as_ptr();
        // Parked whole if there is room: no flush, no abandoned slab; the
        // next new thread takes it warm (its caches, its slabs, which the
        // blocks the old thread handed on are then local frees to).
        // (No lock at all when parking is off: the schedules that shuttle
        // saved under `Config::TINY` keep their steps.)
        let parked = self.config.parked_heaps > 0
            && self.heaps.with(|hl| {
                if hl.parked_count >= self.config.parked_heaps {
                    return false;
                }
                // SAFETY: per the contract the record is live and ours; from
                // now on the heaps lock owns it.
                unsafe { (*h).parked_next = hl.parked };
                hl.parked = h;
                hl.parked_count += 1;
                true
            });
        if parked {
            return;
        }
        // SAFETY: as above.
        unsafe { self.retire_heap(data) }
    }

    /// Flushes `data`'s caches, abandons its slabs and frees its record.
    ///
    /// # Safety
    /// As for [`release_heap`](Self::release_heap).
    unsafe fn retire_heap(&self, data: NonNull<HeapData<P>>) {
        let h = data.as_ptr();
        // SAFETY: per the contract the record is live and ours.
        unsafe { (*h).abandon() };
        self.heaps.with(|hl| {
            // SAFETY: a live record on the live list.
            unsafe {
                (*h).stats.fold_into(&self.stats.exited);
                hl.live.remove(h);
                ptr::drop_in_place(h);
                ptr::write(
                    ptr::addr_of_mut!((*h).next),
                    core::cell::Cell::new(hl.free_slots),
                );
            }
            hl.free_slots = h;
        });
        self.stats.heaps_live.sub(1);
    }

    // ------------------------------------------------------------------
    // OS helpers that keep the books

    pub(crate) fn os_map(&self, size: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        match self.os.map(size, align) {
            Ok(p) => {
                self.stats.maps.add(1);
                self.stats.mapped_bytes.add(size);
                self.stats.committed_bytes.add(size);
                Ok(p)
            }
            Err(e) => {
                self.stats.os_failures.add(1);
                Err(e)
            }
        }
    }

    /// # Safety
    /// One whole mapping made by `os_map`, unused; `committed` of its bytes
    /// are still counted as committed.
    pub(crate) unsafe fn os_unmap(&self, p: NonNull<u8>, size: usize, committed: usize) {
        // SAFETY: per the contract.
        unsafe { self.os.unmap(p, size) };
        self.stats.unmaps.add(1);
        self.stats.mapped_bytes.sub(size);
        self.stats.committed_bytes.sub(committed);
    }

    /// # Safety
    /// As for [`os_unmap`](Self::os_unmap), with the committed bytes
    /// already taken off the books.
    pub(crate) unsafe fn os_unmap_uncommitted(&self, p: NonNull<u8>, size: usize) {
        // SAFETY: per the contract.
        unsafe { self.os_unmap(p, size, 0) }
    }

    pub(crate) fn registry_view(&self) -> RegistryView {
        self.registry.view().unwrap_or(RegistryView::EMPTY)
    }

    // ------------------------------------------------------------------
    // whole-allocator operations

    /// True if `ptr` lies in a segment or starts a large mapping's granule
    /// of this allocator. O(1), no system call, no access to user memory.
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.registry_view()
            .lookup(ptr as usize, P::GEOMETRY.segment_shift)
            != crate::registry::Region::None
    }

    /// Frees `p` without a heap of one's own (a thread that has exited or
    /// not started): always through the remote queue.
    pub fn free_unowned(&self, p: NonNull<u8>) -> Result<(), FreeError> {
        crate::heap::free_without_heap(self, p)
    }

    /// Retires empty abandoned slabs, decommits every free slab, unmaps
    /// cached segments beyond `Config::retain_bytes` and empties the large
    /// cache, after retiring the parked heaps (flushed, slabs abandoned).
    /// Blocks still cached by heaps in use stay where they are.
    pub fn trim(&self) {
        self.release_parked();
        self.pool.with(|st| st.trim(self));
        self.large_trim();
    }

    /// Takes the most recently parked heap off `hl`'s parked list (the
    /// caller holds the heaps lock), pointed back at this allocator: an
    /// `Allocator` may have moved since the heap parked (nothing borrows it
    /// while no `Heap` exists: a simulation's world is moved into its last
    /// step), and the heap's pointer to it would dangle.
    fn pop_parked(&self, hl: &mut HeapList<P>) -> Option<NonNull<HeapData<P>>> {
        let h = NonNull::new(hl.parked)?;
        // SAFETY: a parked heap is a live record nobody uses; off the list
        // it is the caller's alone.
        unsafe {
            let p = h.as_ptr();
            hl.parked = (*p).parked_next;
            (*p).parked_next = ptr::null_mut();
            (*p).alloc = self;
        }
        hl.parked_count -= 1;
        Some(h)
    }

    /// Retires every parked heap (flushed, slabs abandoned), so that their
    /// blocks and mappings can go back to the OS.
    fn release_parked(&self) {
        while let Some(h) = self.heaps.with(|hl| self.pop_parked(hl)) {
            // SAFETY: taken off the parked list: ours, used by nobody.
            unsafe { self.retire_heap(h) };
        }
    }

    /// A snapshot of the counters. `large_cached` counts the global large
    /// cache only (each live heap may hold up to 8 more mappings of its own).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.snapshot();
        self.stats.exited.add_to(&mut s);
        self.heaps.with(|hl| {
            s.heaps_parked = hl.parked_count;
            // SAFETY: live heap records; their counters are atomics.
            for h in unsafe { hl.live.iter() } {
                // SAFETY: as above.
                unsafe { (*h).stats.add_to(&mut s) };
            }
        });
        s.large_cached = self.large.with(|st| st.cached.len);
        s
    }

    /// Bytes mapped for metadata (the registry table and heap records):
    /// what stays mapped after every block is freed, every heap has exited
    /// and `trim` ran with `retain_bytes == 0`.
    pub fn meta_bytes(&self) -> usize {
        self.stats.meta_bytes.get()
    }
}

impl<P: Platform> Drop for Allocator<P> {
    fn drop(&mut self) {
        // No heap can be in use (each borrows the allocator); parked ones
        // give their large mappings to the global cache first. Then unmap
        // every segment, large mapping, heap chunk and the registry table.
        self.release_parked();
        let page = self.os.page_size();
        self.pool.with(|st| loop {
            // SAFETY: segments on the all-list are live mappings; nothing
            // refers to them any more.
            let seg = unsafe { st.all.pop_front() };
            if seg.is_null() {
                break;
            }
            // SAFETY: as above.
            unsafe {
                let committed = PoolState::<P>::committed_size(&*seg, page);
                Segment::<P>::destroy(seg);
                self.os_unmap(
                    NonNull::new_unchecked(seg.cast()),
                    P::GEOMETRY.segment_size(),
                    committed,
                );
            }
        });
        // Every heap has exited, so every freed large mapping is in the
        // global cache. Large blocks the program never freed are not
        // tracked (no list of live mappings on the hot path): they stay
        // mapped, like any leak.
        self.large_trim();
        let mut chunk = self
            .heaps
            .with(|hl| core::mem::replace(&mut hl.chunks, ptr::null_mut()));
        // Every chunk has `map_heap_chunk`'s size.
        let (_, _, size) = self.heap_chunk_layout();
        while !chunk.is_null() {
            // SAFETY: a heap chunk; its first word links the next one.
            unsafe {
                let next = *chunk.cast::<*mut u8>();
                self.os_unmap(NonNull::new_unchecked(chunk), size, size);
                chunk = next;
            }
        }
        if let Some((table, _)) = self.registry.mapping() {
            let size = Registry::table_size(&self.os, P::GEOMETRY.segment_shift);
            // SAFETY: the registry table mapping, unused from now on.
            unsafe { self.os_unmap(NonNull::new_unchecked(table), size, size) };
        }
    }
}

/// A heap: the handle through which one thread allocates and frees.
///
/// `Send` (a heap may move to another thread) but not `Sync` (one thread
/// at a time). Dropping it is the thread's exit: it is parked whole for the
/// next `heap()` while fewer than `Config::parked_heaps` are, else its
/// caches are flushed and its slabs abandoned for adoption by other heaps.
pub struct Heap<'a, P: Platform> {
    data: NonNull<HeapData<P>>,
    _alloc: PhantomData<&'a Allocator<P>>,
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

// SAFETY: the heap's state is reached only through this handle; moving it
// to another thread moves that exclusive access. The allocator is shared
// (its shared parts are behind locks and atomics).
unsafe impl<P: Platform> Send for Heap<'_, P> where Allocator<P>: Sync {}

// SAFETY: the allocator's shared state is behind locks and atomics; the
// slab and segment records it points to are handed between threads only
// under the pool lock or through the ownership protocol of slab.rs.
unsafe impl<P: Platform> Sync for Allocator<P> {}
// SAFETY: as above; an allocator with no heaps may move.
unsafe impl<P: Platform> Send for Allocator<P> {}

impl<P: Platform> Heap<'_, P> {
    #[inline(always)]
    pub(crate) fn data(&mut self) -> &mut HeapData<P> {
        // SAFETY: the record is live while the handle exists, and the
        // handle is the only way to it.
        unsafe { self.data.as_mut() }
    }

    /// The heap's id (the owner id of its slabs).
    pub fn id(&self) -> usize {
        // SAFETY: as in `data`.
        unsafe { self.data.as_ref().id }
    }

    /// Allocates `size` bytes aligned to `align` (a power of two). Sizes
    /// of 0 get a unique block.
    #[inline]
    pub fn alloc(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        self.data().alloc(size, align)
    }

    /// Allocates zeroed memory.
    pub fn alloc_zeroed(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
        self.data().alloc_zeroed(size, align)
    }

    /// Frees a block of this allocator, allocated by any heap. A pointer
    /// that is not a live block is reported and nothing changes.
    #[inline]
    pub fn free(&mut self, p: NonNull<u8>) -> Result<(), FreeError> {
        self.data().free(p)
    }

    /// Resizes a block (see `HeapData::realloc`).
    pub fn realloc(
        &mut self,
        p: NonNull<u8>,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        self.data().realloc(p, new_size, align)
    }

    /// The usable size of a live block.
    pub fn usable_size(&mut self, p: NonNull<u8>) -> Result<usize, FreeError> {
        self.data().usable_size(p)
    }

    /// Drains every cache, collects every remote queue, retires empty
    /// slabs (the `drain` op of traces).
    pub fn flush(&mut self) {
        self.data().flush()
    }

    /// Collects every remote queue into the free lists (the `collect` op).
    pub fn collect(&mut self) {
        self.data().collect()
    }

    /// The raw record (for the native global allocator and the checker).
    pub fn as_ptr(&self) -> *mut HeapData<P> {
        self.data.as_ptr()
    }
}

impl<P: Platform> Drop for Heap<'_, P> {
    fn drop(&mut self) {
        // SAFETY: the record came from `create_heap` of the borrowed
        // allocator and this handle was its only user.
        unsafe { (*self.data.as_ptr()).allocator().release_heap(self.data) }
    }
}
