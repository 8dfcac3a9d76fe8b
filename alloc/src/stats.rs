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
    /// Large allocations, those served from the cache, mappings live now
    /// and cached now.
    pub large_allocs: usize,
    pub large_cache_hits: usize,
    pub large_live: usize,
    pub large_cached: usize,
    /// Thread-cache refills, drains, and frees by non-owners.
    pub refills: usize,
    pub drains: usize,
    pub remote_frees: usize,
    /// Slabs adopted from exited heaps.
    pub adoptions: usize,
    /// Heaps live now, created ever.
    pub heaps_live: usize,
    pub heaps_created: usize,
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
    /// Owner-only increment: a plain load + store, no atomic RMW.
    #[inline(always)]
    pub(crate) fn bump(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
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
    pub(crate) large_allocs: Counter,
    pub(crate) large_cache_hits: Counter,
    pub(crate) large_live: Counter,
    pub(crate) large_cached: Counter,
    pub(crate) adoptions: Counter,
    pub(crate) heaps_created: Counter,
    pub(crate) heaps_live: Counter,
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
            large_allocs: Counter::new(),
            large_cache_hits: Counter::new(),
            large_live: Counter::new(),
            large_cached: Counter::new(),
            adoptions: Counter::new(),
            heaps_created: Counter::new(),
            heaps_live: Counter::new(),
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
            large_allocs: self.large_allocs.get(),
            large_cache_hits: self.large_cache_hits.get(),
            large_live: self.large_live.get(),
            large_cached: self.large_cached.get(),
            refills: self.exited.refills.get(),
            drains: self.exited.drains.get(),
            remote_frees: self.exited.remote_frees.get(),
            adoptions: self.adoptions.get(),
            heaps_live: self.heaps_live.get(),
            heaps_created: self.heaps_created.get(),
            os_failures: self.os_failures.get(),
        }
    }
}

/// Per-heap counters.
pub(crate) struct HeapStats {
    pub(crate) refills: Counter,
    pub(crate) drains: Counter,
    pub(crate) remote_frees: Counter,
}

impl HeapStats {
    pub(crate) const fn new() -> Self {
        HeapStats {
            refills: Counter::new(),
            drains: Counter::new(),
            remote_frees: Counter::new(),
        }
    }

    pub(crate) fn add_to(&self, s: &mut Stats) {
        s.refills += self.refills.get();
        s.drains += self.drains.get();
        s.remote_frees += self.remote_frees.get();
    }

    pub(crate) fn fold_into(&self, total: &HeapStats) {
        total.refills.add(self.refills.get());
        total.drains.add(self.drains.get());
        total.remote_frees.add(self.remote_frees.get());
    }
}
