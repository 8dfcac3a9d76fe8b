//! Tuning knobs, in one place, with documented defaults.

use crate::zoo::Zoo;

/// Allocator tuning. [`Config::DEFAULT`] is what the native allocator
/// uses; [`Config::TINY`] makes every transition (cache overflow, periodic
/// drain, slab retirement, segment caching and eviction, decommit) happen
/// within a few ops, for the simulation and shuttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Refills (by the owning heap) between two periodic drains, in which
    /// the caches of the classes that look unused since the previous one
    /// give half their blocks back to their slabs, so that such blocks do
    /// not keep their slabs from becoming empty for ever (see
    /// `HeapData::periodic_drain`). The fast paths count nothing. Default
    /// 256: with unused classes told apart, the interval hardly shows in
    /// the benchmarks (glibc-simple 0.149-0.151 s at 64 and 256 refills,
    /// as without periodic drains).
    pub drain_interval: u32,
    /// Per-class thread-cache budget in bytes: a class caches
    /// `clamp(cache_bytes / class_size, cache_min, cache_max)` blocks;
    /// a refill takes half of that. Default 64 KiB, 4..=4096 blocks.
    pub cache_bytes: usize,
    /// What a class's cache may grow to (per class, bytes; still at most
    /// `cache_max` blocks) when frees keep overflowing it: each time half
    /// a cache's worth of frees found it full since the class's last
    /// refill, its capacity doubles; a periodic drain that finds the class
    /// unused sets it back. Default 256 KiB.
    pub cache_bytes_max: usize,
    pub cache_min: u32,
    pub cache_max: u32,
    /// Empty segments kept mapped (most recently emptied first) before the
    /// oldest are unmapped. Default 32 MiB (16 segments).
    pub segment_cache_bytes: usize,
    /// Freed large mappings kept for reuse: total bytes and count.
    /// Default 64 MiB, 64 mappings; the count is capped at 256.
    pub large_cache_bytes: usize,
    pub large_cache_count: usize,
    /// When not 0, the global large cache may hold up to this fraction
    /// (`1 / large_cache_share`) of all mapped memory if that is more than
    /// `large_cache_bytes`. Default 3 (see `Allocator::large_cap_bytes`).
    pub large_cache_share: usize,
    /// Freed large mappings each heap keeps for itself (up to 8, at most
    /// this many bytes), reused without a lock. Default 8 MiB.
    pub large_local_bytes: usize,
    /// Bytes of retired slabs kept committed (in retirement order) before
    /// the oldest are decommitted. Default 8 MiB.
    pub decommit_delay_bytes: usize,
    /// Bytes of empty segments that `trim` keeps mapped (decommitted).
    /// Default 0: after a trim only metadata stays mapped.
    pub retain_bytes: usize,
    /// Secret for free tags (see `block.rs`); 0 picks one from the OS
    /// layer's entropy at first use.
    pub tag_key: usize,
    /// Heaps of exited threads kept whole (their caches, slabs and large
    /// mappings) for the next new thread, at most this many; an exiting
    /// thread's heap beyond them is flushed and its slabs abandoned, and
    /// `trim` releases the parked ones. 0: every exit flushes. Default 2.
    pub parked_heaps: usize,
    /// Historic bugs switched on (only with the `zoo` feature).
    pub zoo: Zoo,
}

impl Config {
    pub const DEFAULT: Config = Config {
        drain_interval: 256,
        cache_bytes: 64 * 1024,
        cache_bytes_max: 256 * 1024,
        cache_min: 4,
        cache_max: 4096,
        segment_cache_bytes: 32 << 20,
        large_cache_bytes: 64 << 20,
        large_cache_count: 64,
        large_cache_share: 3,
        large_local_bytes: 8 << 20,
        decommit_delay_bytes: 8 << 20,
        retain_bytes: 0,
        tag_key: 0,
        parked_heaps: 2,
        zoo: Zoo::NONE,
    };

    /// For tiny geometries: small caches, frequent drains, one cached
    /// segment, two cached large mappings, two slabs before decommit.
    pub const TINY: Config = Config {
        drain_interval: 4,
        cache_bytes: 256,
        cache_bytes_max: 1024,
        cache_min: 2,
        cache_max: 8,
        segment_cache_bytes: 64 * 1024,
        large_cache_bytes: 256 * 1024,
        large_cache_count: 2,
        large_cache_share: 0,
        large_local_bytes: 128 * 1024,
        decommit_delay_bytes: 8 * 1024,
        retain_bytes: 0,
        tag_key: 0x5eed_0000_0000_f00f,
        parked_heaps: 0,
        zoo: Zoo::NONE,
    };

    /// How many mappings the global large cache may hold:
    /// `large_cache_count`, at most the size of its index.
    pub(crate) const fn large_cache_cap(&self) -> usize {
        if self.large_cache_count < crate::large::LARGE_INDEX_CAP {
            self.large_cache_count
        } else {
            crate::large::LARGE_INDEX_CAP
        }
    }

    /// Capacity of the thread cache of a class of `class_size` bytes.
    pub const fn cache_capacity(&self, class_size: usize) -> u32 {
        self.capacity_for(self.cache_bytes, class_size)
    }

    /// The most the cache of a class of `class_size` bytes grows to (at
    /// least its starting capacity).
    pub const fn cache_capacity_max(&self, class_size: usize) -> u32 {
        let base = self.cache_capacity(class_size);
        let max = self.capacity_for(self.cache_bytes_max, class_size);
        if max > base {
            max
        } else {
            base
        }
    }

    /// `clamp(bytes / class_size, cache_min, cache_max)`.
    const fn capacity_for(&self, bytes: usize, class_size: usize) -> u32 {
        let n = bytes / class_size;
        let n = if n > self.cache_max as usize {
            self.cache_max as usize
        } else {
            n
        };
        if n < self.cache_min as usize {
            self.cache_min
        } else {
            n as u32
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}
