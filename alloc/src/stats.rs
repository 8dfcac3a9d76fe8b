//! Counters. Allocator-wide ones are `core` atomics updated on slow paths;
//! per-heap ones are written only by their heap (a Relaxed load + store,
//! a plain add) and summed by `Allocator::stats`.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A snapshot of the allocator's books.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// OS mappings made / returned, and bytes mapped now.
    pub maps: usize,
    pub unmaps: usize,
    pub mapped_bytes: usize,
    /// Bytes mapped and not decommitted now.
    pub committed_bytes: usize,
    /// Of `mapped_bytes`: metadata (registry table, heap records).
    pub meta_bytes: usize,
    /// Segments mapped ever / live now (in use or cached) / cached now /
    /// unmapped ever.
    pub segments_mapped: usize,
    pub segments_live: usize,
    pub segments_cached: usize,
    pub segments_unmapped: usize,
    /// Slabs retired to their segment, and decommitted.
    pub slabs_retired: usize,
    pub slabs_decommitted: usize,
    /// Large allocations, those served from a cache, mappings live now
    /// (and their bytes), and mappings cached now (globally and by heaps).
    pub large_allocs: usize,
    pub large_cache_hits: usize,
    pub large_live: usize,
    pub large_live_bytes: usize,
    pub large_cached: usize,
    /// Cached large mappings split (a surplus given up) and spliced into
    /// another (their pages moved in), ever. A split counts as a mapping
    /// made, a splice as one returned (`maps`, `unmaps`).
    pub large_splits: usize,
    pub large_splices: usize,
    /// Thread-cache refills, drains, and frees by non-owners.
    pub refills: usize,
    pub drains: usize,
    pub remote_frees: usize,
    /// Slabs adopted from exited heaps.
    pub adoptions: usize,
    /// Heaps live now (parked ones included), created ever.
    pub heaps_live: usize,
    pub heaps_created: usize,
    /// Heaps of exited threads parked now (see `Config::parked_heaps`),
    /// and parked heaps taken by new threads ever.
    pub heaps_parked: usize,
    pub heaps_reused: usize,
    /// Requests the OS layer refused.
    pub os_failures: usize,
}

#[derive(Default)]
pub(crate) struct Counter(AtomicUsize);

impl Counter {
    pub(crate) const fn new() -> Self {
        Counter(AtomicUsize::new(0))
    }
    #[inline]
    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Relaxed);
    }
    #[inline]
    pub(crate) fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Relaxed);
    }
    /// Owner-only increment: a plain load + store, no atomic RMW. Per-heap
    /// counters may wrap below zero (a block allocated by one heap, freed by
    /// another); the sum over heaps is exact.
    #[inline(always)]
    pub(crate) fn bump(&self) {
        self.bump_by(1);
    }
    #[inline(always)]
    pub(crate) fn bump_by(&self, n: usize) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline(always)]
    pub(crate) fn unbump(&self) {
        self.unbump_by(1);
    }
    #[inline(always)]
    pub(crate) fn unbump_by(&self, n: usize) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(n), Relaxed);
    }
    #[inline]
    pub(crate) fn get(&self) -> usize {
        self.0.load(Relaxed)
    }
}

/// Allocator-wide counters.
pub(crate) struct GlobalStats {
    pub(crate) maps: Counter,
    pub(crate) unmaps: Counter,
    pub(crate) mapped_bytes: Counter,
    pub(crate) committed_bytes: Counter,
    pub(crate) meta_bytes: Counter,
    pub(crate) segments_mapped: Counter,
    pub(crate) segments_live: Counter,
    pub(crate) segments_cached: Counter,
    pub(crate) segments_unmapped: Counter,
    pub(crate) slabs_retired: Counter,
    pub(crate) slabs_decommitted: Counter,
    pub(crate) large_splits: Counter,
    pub(crate) large_splices: Counter,
    pub(crate) adoptions: Counter,
    pub(crate) heaps_created: Counter,
    pub(crate) heaps_live: Counter,
    pub(crate) heaps_reused: Counter,
    pub(crate) os_failures: Counter,
    /// Totals of heaps that have exited.
    pub(crate) exited: HeapStats,
}

impl GlobalStats {
    pub(crate) const fn new() -> Self {
        GlobalStats {
            maps: Counter::new(),
            unmaps: Counter::new(),
            mapped_bytes: Counter::new(),
            committed_bytes: Counter::new(),
            meta_bytes: Counter::new(),
            segments_mapped: Counter::new(),
            segments_live: Counter::new(),
            segments_cached: Counter::new(),
            segments_unmapped: Counter::new(),
            slabs_retired: Counter::new(),
            slabs_decommitted: Counter::new(),
            large_splits: Counter::new(),
            large_splices: Counter::new(),
            adoptions: Counter::new(),
            heaps_created: Counter::new(),
            heaps_live: Counter::new(),
            heaps_reused: Counter::new(),
            os_failures: Counter::new(),
            exited: HeapStats::new(),
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            maps: self.maps.get(),
            unmaps: self.unmaps.get(),
            mapped_bytes: self.mapped_bytes.get(),
            committed_bytes: self.committed_bytes.get(),
            meta_bytes: self.meta_bytes.get(),
            segments_mapped: self.segments_mapped.get(),
            segments_live: self.segments_live.get(),
            segments_cached: self.segments_cached.get(),
            segments_unmapped: self.segments_unmapped.get(),
            slabs_retired: self.slabs_retired.get(),
            slabs_decommitted: self.slabs_decommitted.get(),
            refills: 0,
            drains: 0,
            remote_frees: 0,
            large_allocs: 0,
            large_cache_hits: 0,
            large_live: 0,
            large_live_bytes: 0,
            large_cached: 0,
            large_splits: self.large_splits.get(),
            large_splices: self.large_splices.get(),
            adoptions: self.adoptions.get(),
            heaps_live: self.heaps_live.get(),
            heaps_created: self.heaps_created.get(),
            // Read from the heap list by `Allocator::stats`.
            heaps_parked: 0,
            heaps_reused: self.heaps_reused.get(),
            os_failures: self.os_failures.get(),
        }
    }
}

/// Per-heap counters (and, in `GlobalStats::exited`, the totals of heaps
/// that exited plus what heapless frees changed).
pub(crate) struct HeapStats {
    pub(crate) refills: Counter,
    pub(crate) drains: Counter,
    pub(crate) remote_frees: Counter,
    pub(crate) large_allocs: Counter,
    pub(crate) large_hits: Counter,
    pub(crate) large_live: Counter,
    pub(crate) large_live_bytes: Counter,
}

impl HeapStats {
    pub(crate) const fn new() -> Self {
        HeapStats {
            refills: Counter::new(),
            drains: Counter::new(),
            remote_frees: Counter::new(),
            large_allocs: Counter::new(),
            large_hits: Counter::new(),
            large_live: Counter::new(),
            large_live_bytes: Counter::new(),
        }
    }

    fn all(&self) -> [&Counter; 7] {
        [
            &self.refills,
            &self.drains,
            &self.remote_frees,
            &self.large_allocs,
            &self.large_hits,
            &self.large_live,
            &self.large_live_bytes,
        ]
    }

    /// Adds these counters to a snapshot (wrapping: see `Counter::bump`).
    pub(crate) fn add_to(&self, s: &mut Stats) {
        let [a, b, c, d, e, f, g] = self.all().map(Counter::get);
        s.refills = s.refills.wrapping_add(a);
        s.drains = s.drains.wrapping_add(b);
        s.remote_frees = s.remote_frees.wrapping_add(c);
        s.large_allocs = s.large_allocs.wrapping_add(d);
        s.large_cache_hits = s.large_cache_hits.wrapping_add(e);
        s.large_live = s.large_live.wrapping_add(f);
        s.large_live_bytes = s.large_live_bytes.wrapping_add(g);
    }

    /// Adds these counters into `total` (atomically: other heaps fold too).
    pub(crate) fn fold_into(&self, total: &HeapStats) {
        for (mine, theirs) in self.all().into_iter().zip(total.all()) {
            theirs.add(mine.get());
        }
    }
}
