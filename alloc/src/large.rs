//! Large allocations: beyond the slab classes (or with an alignment slabs
//! do not give), one mapping each, aligned to the segment size so that
//! `ptr & !segment_mask` finds the header, marked `LARGE` in the registry.
//!
//! Freed mappings are kept for reuse in two places: a few in the freeing
//! heap's own cache (`LocalLarge`: no lock, no shared counter on the hit
//! path) and, beyond that, in a bounded global cache under a lock (count
//! and bytes, most recent first), so alloc/free loops of big blocks do not
//! call mmap/munmap; reuse is best fit within 25 %. A heap gives its local
//! mappings to the global cache when it flushes or exits; `trim` empties
//! the global cache.
//!
//! Blocks of at least two segments share pages with cached mappings
//! rather than each mapping keeping the largest size it ever held: a
//! cached mapping bigger than the block gives up its surplus (split off at
//! a segment boundary, cached on its own), a smaller one is grown with the
//! pages of others moved in (`Os::splice`, natively `mremap`: page-table
//! moves, no faults). See `Allocator::large_resize`. Such mappings
//! are whole numbers of segments and every split and splice falls on a
//! segment boundary, so natively (where moved anonymous pages rarely merge
//! with their neighbours into one kernel VMA) a process has at most one
//! VMA per segment of such mappings: 12k for 24 GiB, inside
//! `vm.max_map_count` (65530) up to 128 GiB of them; beyond, a refused
//! splice only costs the page faults it would have saved.
//!
//! Invariants (checked in check.rs):
//! I1 LARGE-ONE    a freed mapping is in exactly one cache, once, in the
//!                 cached state; a live one in none, in the live state
//! I6 LARGE-BOOKS  every cached mapping is live in the OS books and marked
//!                 in the registry, and one of at least `share_min` bytes
//!                 is a whole number of segments; the caches hold at most
//!                 their caps (the global one's byte cap: the one in force
//!                 at its last insertion, never below
//!                 `Config::large_cache_bytes`); the
//!                 live large bytes (per-heap counters) plus the cached ones
//!                 are what was mapped for large blocks; the global cache's
//!                 size index holds each of its mappings once, at the slot
//!                 the mapping records, with its size

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::allocator::Allocator;
use crate::error::{AllocError, FreeError};
use crate::list::{Links, List};
use crate::platform::{MutexOps, Os, OsError, Platform};
use crate::registry::Region;
use crate::stats::HeapStats;
use crate::zoo::Bug;

/// Bytes before the user block when the alignment asks for no more.
pub(crate) const LARGE_HEADER_SIZE: usize = 64;

pub(crate) const STATE_LIVE: usize = 0x4c49_5645_6c61_7267; // "LIVElarg"
pub(crate) const STATE_CACHED: usize = 0x4341_4348_6c61_7267; // "CACHlarg"

#[repr(C, align(64))]
pub(crate) struct LargeHeader {
    /// `STATE_LIVE` or `STATE_CACHED`; read by frees from any thread.
    pub(crate) state: AtomicUsize,
    /// Size of the whole mapping.
    pub(crate) map_size: AtomicUsize,
    /// Offset of the user block from the mapping start.
    pub(crate) user_offset: AtomicUsize,
    /// Start of the mapping: the header's own address, except for a block
    /// aligned beyond half a segment, whose header lies just below it.
    pub(crate) map_base: AtomicUsize,
    pub(crate) next: Cell<*mut LargeHeader>,
    pub(crate) prev: Cell<*mut LargeHeader>,
    /// Its entry in the global cache's size index while it is there.
    pub(crate) slot: Cell<usize>,
}

const _: () = assert!(core::mem::size_of::<LargeHeader>() <= LARGE_HEADER_SIZE);

impl LargeHeader {
    /// Start of the mapping.
    #[inline]
    pub(crate) fn base(&self) -> usize {
        self.map_base.load(Relaxed)
    }

    /// True for an over-aligned block (header below the block, not at the
    /// mapping start): never cached, its granule marked `LargeAligned`.
    #[inline]
    pub(crate) fn is_over_aligned(&self) -> bool {
        self as *const Self as usize != self.base()
    }

    /// The address whose granule the registry marks for this mapping.
    #[inline]
    pub(crate) fn registry_addr(&self) -> usize {
        if self.is_over_aligned() {
            self.base() + self.user_offset.load(Relaxed)
        } else {
            self.base()
        }
    }

    #[inline]
    pub(crate) fn usable(&self) -> usize {
        self.map_size.load(Relaxed) - self.user_offset.load(Relaxed)
    }
}

pub(crate) struct LargeLinks;
impl Links<LargeHeader> for LargeLinks {
    fn next(t: &LargeHeader) -> &Cell<*mut LargeHeader> {
        &t.next
    }
    fn prev(t: &LargeHeader) -> &Cell<*mut LargeHeader> {
        &t.prev
    }
}

/// Most mappings the global cache holds, whatever
/// `Config::large_cache_count` asks: its size index is a fixed array.
pub(crate) const LARGE_INDEX_CAP: usize = 256;

/// A cached mapping's size, next to those of the others.
#[derive(Clone, Copy)]
pub(crate) struct IndexEntry {
    pub(crate) size: usize,
    pub(crate) header: *mut LargeHeader,
}

// SAFETY: an entry is a size and a pointer to a cached mapping, which only
// the holder of the large-cache lock (that guards the index) touches.
unsafe impl Send for IndexEntry {}

/// The global cache of freed mappings (under `Allocator::large`).
pub(crate) struct LargeState {
    /// Most recently freed first (the eviction order).
    pub(crate) cached: List<LargeHeader, LargeLinks>,
    pub(crate) cached_bytes: usize,
    /// The cached mappings' sizes in no order, entry `i` for the mapping
    /// whose `slot` is `i`: a best-fit search reads this one array rather
    /// than the header in every mapping (a cache and a TLB miss each).
    pub(crate) index: [IndexEntry; LARGE_INDEX_CAP],
    pub(crate) index_len: usize,
    /// The byte cap in force at the last insertion (see
    /// `Allocator::large_cap_bytes`); `cached_bytes` stays within it.
    pub(crate) cap_bytes: usize,
}

impl LargeState {
    pub(crate) const fn new() -> Self {
        LargeState {
            cached: List::new(),
            cached_bytes: 0,
            index: [IndexEntry {
                size: 0,
                header: ptr::null_mut(),
            }; LARGE_INDEX_CAP],
            index_len: 0,
            cap_bytes: 0,
        }
    }

    /// The live entries of the size index.
    pub(crate) fn entries(&self) -> &[IndexEntry] {
        &self.index[..self.index_len]
    }

    /// Adds a cached mapping of `size` bytes as the most recent.
    ///
    /// # Safety
    /// `h` is a cached mapping on no list (zoo bug 9 breaks this on
    /// purpose; the index then panics rather than go wrong later).
    unsafe fn insert(&mut self, h: *mut LargeHeader, size: usize) {
        assert!(
            self.index_len < LARGE_INDEX_CAP,
            "hakmem: large cache index overflow (a mapping cached twice?)"
        );
        // SAFETY: per the contract.
        unsafe {
            self.cached.push_front(h);
            (*h).slot.set(self.index_len);
        }
        self.index[self.index_len] = IndexEntry { size, header: h };
        self.index_len += 1;
        self.cached_bytes += size;
    }

    /// Takes `h` off the cache.
    ///
    /// # Safety
    /// `h` is on the cache.
    unsafe fn remove(&mut self, h: *mut LargeHeader) {
        // SAFETY: per the contract.
        unsafe { self.cached.remove(h) };
        // SAFETY: as above.
        unsafe { self.unindex(h) };
    }

    /// Takes the oldest (`oldest`) or the newest mapping off the cache,
    /// null if it is empty.
    ///
    /// # Safety
    /// The cache holds live mappings.
    unsafe fn pop(&mut self, oldest: bool) -> *mut LargeHeader {
        // SAFETY: per the contract.
        let h = unsafe {
            if oldest {
                self.cached.pop_back()
            } else {
                self.cached.pop_front()
            }
        };
        if !h.is_null() {
            // SAFETY: it was on the cache.
            unsafe { self.unindex(h) };
        }
        h
    }

    /// Drops `h`'s index entry (the last entry moves into its place) and
    /// its bytes.
    ///
    /// # Safety
    /// `h` was on the cache: a live mapping.
    unsafe fn unindex(&mut self, h: *mut LargeHeader) {
        // SAFETY: per the contract.
        let i = unsafe { (*h).slot.get() };
        assert!(
            i < self.index_len && self.index[i].header == h,
            "hakmem: large cache index does not hold {h:p} at its slot {i}"
        );
        self.cached_bytes -= self.index[i].size;
        let last = self.index_len - 1;
        self.index[i] = self.index[last];
        // SAFETY: every indexed header is a cached, live mapping.
        unsafe { (*self.index[i].header).slot.set(i) };
        self.index_len = last;
    }
}

/// How many freed mappings a heap keeps for itself. Eight (and 8 MiB, see
/// `Config::large_local_bytes`) rather than four and 4 MiB: with four, a
/// request in mid-large's 32 KiB..1 MiB range found its best fit locally
/// too rarely and took the global cache's lock on most large allocations
/// and frees (its `lock cmpxchg`, bouncing between two threads, was 9 % of
/// the run). mid-large --iters 2000000, medians of 5: 0.379 -> 0.356 s;
/// mstress 0.203 -> 0.197; peak RSS unchanged.
pub(crate) const LOCAL_SLOTS: usize = 8;

/// A heap's own cache of freed mappings, oldest first.
pub(crate) struct LocalLarge {
    pub(crate) slots: [*mut LargeHeader; LOCAL_SLOTS],
    pub(crate) len: usize,
    pub(crate) bytes: usize,
}

impl LocalLarge {
    pub(crate) const fn new() -> Self {
        LocalLarge {
            slots: [ptr::null_mut(); LOCAL_SLOTS],
            len: 0,
            bytes: 0,
        }
    }

    /// Takes `h`, which this cache holds.
    fn take_ptr(&mut self, h: *mut LargeHeader) -> *mut LargeHeader {
        let i = self
            .iter()
            .position(|x| x == h)
            .expect("in the local cache");
        self.take(i)
    }

    fn take(&mut self, i: usize) -> *mut LargeHeader {
        let h = self.slots[i];
        self.slots.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.slots[self.len] = ptr::null_mut();
        // SAFETY: a cached mapping held by this cache.
        self.bytes -= unsafe { (*h).map_size.load(Relaxed) };
        h
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = *mut LargeHeader> + '_ {
        self.slots[..self.len].iter().copied()
    }
}

/// Of (mapping, size) pairs, the mapping whose size `rank` scores lowest
/// (`None`: not eligible), the first one on ties, with its score.
fn best_ranked(
    it: impl Iterator<Item = (*mut LargeHeader, usize)>,
    rank: &impl Fn(usize) -> Option<usize>,
) -> Option<(*mut LargeHeader, usize)> {
    let mut best: Option<(*mut LargeHeader, usize)> = None;
    for (h, s) in it {
        if let Some(r) = rank(s) {
            if best.is_none_or(|(_, br)| r < br) {
                best = Some((h, r));
            }
        }
    }
    best
}

/// The mapping size for a block of `size` bytes at `user_offset`: page
/// rounded, then rounded up to one of eight steps per power of two so that
/// similar sizes reuse each other's cached mappings (waste <= 12.5 %).
pub(crate) fn mapping_size(size: usize, user_offset: usize, page: usize) -> Option<usize> {
    let need = size.checked_add(user_offset)?.checked_add(page - 1)? & !(page - 1);
    let msb = usize::BITS - 1 - need.leading_zeros();
    let step = if msb >= 3 {
        (1usize << (msb - 3)).max(page)
    } else {
        page
    };
    need.checked_add(step - 1).map(|n| n & !(step - 1))
}

/// Whether a cached mapping of `have` bytes may serve a need of `need`.
#[inline]
fn fits(have: usize, need: usize) -> bool {
    have >= need && have - need <= need / 4
}

impl<P: Platform> Allocator<P> {
    /// Allocates a large block for a heap (its local cache and counters).
    /// `zeroed`: the caller needs zero bytes.
    pub(crate) fn large_alloc(
        &self,
        local: &mut LocalLarge,
        stats: &HeapStats,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        let seg = P::GEOMETRY.segment_size();
        if !align.is_power_of_two() {
            return Err(AllocError::BadAlign { align });
        }
        if align > seg / 2 {
            return self.large_alloc_over_aligned(stats, size, align);
        }
        let user_offset = align.max(LARGE_HEADER_SIZE);
        let map_size = self
            .large_map_size(size, user_offset)
            .ok_or(AllocError::TooLarge { size })?;
        if map_size > isize::MAX as usize {
            return Err(AllocError::TooLarge { size });
        }
        stats.large_allocs.bump();
        // 1-3. One search of this heap's own cache (no lock) and, unless
        //      that has a fit, of the global cache under one lock: the
        //      best fit within 25 %, else (unless the block must be zero)
        //      the mapping closest in size, resized (its resident pages
        //      save the page faults of fresh memory).
        if let Some(h) = self.large_take_closest(local, map_size, !zeroed) {
            // SAFETY: taken off a cache: ours.
            if fits(unsafe { (*h).map_size.load(Relaxed) }, map_size) {
                let user = self.large_revive(h, user_offset, stats);
                if zeroed {
                    // SAFETY: the user block lies inside the mapping
                    // (revived: accessible and committed), and it is ours
                    // alone.
                    unsafe { self.os.zero(user, size) };
                }
                return Ok(user);
            }
            // SAFETY: as above.
            if let Some(p) = unsafe { self.large_resize(local, stats, h, map_size, user_offset) } {
                return Ok(p);
            }
        }
        // 4. A fresh mapping (already zero).
        let base = self
            .os_map(map_size, seg)
            .map_err(AllocError::OutOfMemory)?;
        let h = base.as_ptr().cast::<LargeHeader>();
        // SAFETY: a fresh mapping of at least one page, aligned; the header
        // fits (asserted above).
        unsafe {
            ptr::write(
                h,
                LargeHeader {
                    state: AtomicUsize::new(STATE_LIVE),
                    map_size: AtomicUsize::new(map_size),
                    user_offset: AtomicUsize::new(user_offset),
                    map_base: AtomicUsize::new(base.as_ptr() as usize),
                    next: Cell::new(ptr::null_mut()),
                    prev: Cell::new(ptr::null_mut()),
                    slot: Cell::new(0),
                },
            );
        }
        self.registry_view().mark(
            base.as_ptr() as usize,
            P::GEOMETRY.segment_shift,
            Region::Large,
        );
        stats.large_live.bump();
        stats.large_live_bytes.bump_by(map_size);
        let user = base.as_ptr() as usize + user_offset;
        // SAFETY: inside the mapping.
        Ok(unsafe { NonNull::new_unchecked(user as *mut u8) })
    }

    /// A block aligned beyond half a segment: a mapping aligned to
    /// `align`, the block at `base + align`, the header just below it, the
    /// block's granule marked `LargeAligned`. Not cached when freed.
    fn large_alloc_over_aligned(
        &self,
        stats: &HeapStats,
        size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let page = self.os.page_size();
        // At least one byte of block inside the mapping (a 0-byte request
        // must not end the mapping where the block starts).
        let map_size = size
            .max(1)
            .checked_add(align)
            .and_then(|n| n.checked_add(page - 1))
            .map(|n| n & !(page - 1))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or(AllocError::TooLarge { size })?;
        let base = self
            .os_map(map_size, align)
            .map_err(AllocError::OutOfMemory)?;
        let user = base.as_ptr() as usize + align;
        let h = (user - LARGE_HEADER_SIZE) as *mut LargeHeader;
        // SAFETY: the header lies in the fresh mapping, below the block,
        // aligned to 64.
        unsafe {
            ptr::write(
                h,
                LargeHeader {
                    state: AtomicUsize::new(STATE_LIVE),
                    map_size: AtomicUsize::new(map_size),
                    user_offset: AtomicUsize::new(align),
                    map_base: AtomicUsize::new(base.as_ptr() as usize),
                    next: Cell::new(ptr::null_mut()),
                    prev: Cell::new(ptr::null_mut()),
                    slot: Cell::new(0),
                },
            );
        }
        self.registry_view()
            .mark(user, P::GEOMETRY.segment_shift, Region::LargeAligned);
        stats.large_allocs.bump();
        stats.large_live.bump();
        stats.large_live_bytes.bump_by(map_size);
        // SAFETY: inside the mapping.
        Ok(unsafe { NonNull::new_unchecked(user as *mut u8) })
    }

    /// The header of the large block at `addr` (in a granule the registry
    /// marks `region`), validated: a live block starting exactly at `addr`.
    pub(crate) fn large_lookup(
        &self,
        addr: usize,
        region: Region,
    ) -> Result<&LargeHeader, FreeError> {
        let granule = addr & !P::GEOMETRY.segment_mask();
        let hp = if region == Region::LargeAligned {
            granule - LARGE_HEADER_SIZE
        } else {
            granule
        };
        // SAFETY: the registry marks the granule, so a live large mapping
        // has its header at `hp` (see `Region`).
        let h = unsafe { &*(hp as *const LargeHeader) };
        let (base, off) = (h.base(), h.user_offset.load(Relaxed));
        if addr != base + off {
            return Err(
                if addr > base + off && addr < base + h.map_size.load(Relaxed) {
                    FreeError::Interior {
                        ptr: addr,
                        block: base + off,
                    }
                } else {
                    FreeError::NotAllocated { ptr: addr }
                },
            );
        }
        // Zoo bug 9 skips this check: a second free of the same mapping
        // inserts it into a cache a second time.
        if h.state.load(Relaxed) != STATE_LIVE && !self.config.zoo.on(Bug::LargeCacheDoubleInsert) {
            return Err(FreeError::DoubleFree { ptr: addr });
        }
        Ok(h)
    }

    /// Frees a large block: into the freeing heap's own cache, else the
    /// global cache, else back to the OS. `heap`: the freeing heap's cache
    /// and counters, `None` for a thread without a heap (its counts go to
    /// the allocator-wide totals, atomically).
    pub(crate) fn large_free(
        &self,
        heap: Option<(&mut LocalLarge, &HeapStats)>,
        addr: usize,
        region: Region,
    ) -> Result<(), FreeError> {
        let h = self.large_lookup(addr, region)?;
        let size = h.map_size.load(Relaxed);
        self.os.mark_block(addr as *mut u8, h.usable(), false);
        h.state.store(STATE_CACHED, Relaxed);
        let hp = h as *const LargeHeader as *mut LargeHeader;
        let local_cap = self.config.large_local_bytes;
        let local = match heap {
            Some((local, stats)) => {
                stats.large_live.unbump();
                stats.large_live_bytes.unbump_by(size);
                Some(local)
            }
            None => {
                self.stats.exited.large_live.sub(1);
                self.stats.exited.large_live_bytes.sub(size);
                None
            }
        };
        if h.is_over_aligned() {
            // SAFETY: off every list; the block was its only use.
            unsafe { self.large_unmap(hp) };
            return Ok(());
        }
        match local {
            Some(local) if size <= local_cap => {
                // Make room: the oldest local mappings go to the global cache.
                while local.len == LOCAL_SLOTS || local.bytes + size > local_cap {
                    let old = local.take(0);
                    self.large_to_global(old);
                }
                local.slots[local.len] = hp;
                local.len += 1;
                local.bytes += size;
            }
            _ => self.large_to_global(hp),
        }
        Ok(())
    }

    /// Puts a cached mapping on the global cache, evicting (unmapping) the
    /// oldest beyond the caps, or unmaps it if it cannot fit at all.
    pub(crate) fn large_to_global(&self, hp: *mut LargeHeader) {
        // SAFETY: a cached mapping we hold.
        let size = unsafe { (*hp).map_size.load(Relaxed) };
        let cap_bytes = self.large_cap_bytes();
        let cap_count = self.config.large_cache_cap();
        // Evicted mappings are chained through their `next` link and
        // unmapped after the lock is released.
        let mut evicted: *mut LargeHeader = ptr::null_mut();
        let cached = self.large.with(|st| {
            if size > cap_bytes || cap_count == 0 {
                return false;
            }
            st.cap_bytes = cap_bytes;
            // SAFETY: the header is on no list (or, under zoo bug 9, already
            // on one: the corruption the bug is about).
            unsafe { st.insert(hp, size) };
            while st.cached_bytes > cap_bytes || st.cached.len > cap_count {
                // SAFETY: cached headers are live mappings; a popped one is
                // on no list, so its link is free for the chain.
                unsafe {
                    let t = st.pop(true);
                    (*t).next.set(evicted);
                    evicted = t;
                }
            }
            true
        });
        if !cached {
            // SAFETY: off every list; nothing refers to it.
            unsafe { self.large_unmap(hp) };
        }
        while !evicted.is_null() {
            // SAFETY: evicted headers are off every list; read the chain
            // link before the mapping goes away.
            let next = unsafe { (*evicted).next.get() };
            // SAFETY: as above.
            unsafe { self.large_unmap(evicted) };
            evicted = next;
        }
    }

    /// Grows the live large block at `addr` to hold `new_size` bytes:
    /// 1. it fits its mapping already: in place;
    /// 2. a cached mapping holds it (the largest: a growing block is likely
    ///    to keep growing, and cached pages are resident, so taking it costs
    ///    no memory, saves the page faults of fresh pages, and the block
    ///    then grows in place): copy once, free the old mapping to the cache;
    /// 3. the OS layer resizes the mapping in place or moves its pages
    ///    (`Os::remap`).
    ///
    /// `None` when none works; the caller then allocates, copies and frees.
    pub(crate) fn large_grow(
        &self,
        local: &mut LocalLarge,
        stats: &HeapStats,
        addr: usize,
        region: Region,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let h = self.large_lookup(addr, region).ok()?;
        if h.is_over_aligned() {
            return None;
        }
        let (base, off, old) = (
            h.base(),
            h.user_offset.load(Relaxed),
            h.map_size.load(Relaxed),
        );
        let need = self.large_map_size(new_size, off)?;
        if need <= old {
            return NonNull::new(addr as *mut u8);
        }
        if let Some(q) = self.large_take_for_growth(local, stats, need, off) {
            // SAFETY: two distinct live blocks; the old one holds `old - off`
            // bytes, the new one at least `need - off`.
            unsafe { ptr::copy_nonoverlapping(addr as *const u8, q.as_ptr(), old - off) };
            self.large_free(Some((local, stats)), addr, region).ok()?;
            return Some(q);
        }
        // SAFETY: the block is its caller's alone and `base`/`old` are
        // exactly its mapping.
        let hp = unsafe { self.large_remap(base, old, need)? };
        stats.large_live_bytes.bump_by(need - old);
        NonNull::new((hp as usize + off) as *mut u8)
    }

    /// Grows the large mapping at `base` (`old` bytes, header at its start)
    /// to `need` bytes with `Os::remap`, keeping its pages: the registry
    /// mark and the header follow the move, the books count the growth.
    /// Returns the (possibly moved) header, or `None` with nothing changed
    /// if the OS layer cannot remap.
    ///
    /// # Safety
    /// The mapping is the caller's alone (a live block of its own or a
    /// mapping it took off a cache), so nobody looks it up meanwhile.
    unsafe fn large_remap(&self, base: usize, old: usize, need: usize) -> Option<*mut LargeHeader> {
        let old_ptr = NonNull::new(base as *mut u8)?;
        let shift = P::GEOMETRY.segment_shift;
        // Clearing the old mark first means a mapping another thread makes
        // at the old address after the move cannot lose its mark to us.
        self.registry_view().mark(base, shift, Region::None);
        // SAFETY: `base`/`old` are exactly this mapping (the caller's
        // contract); on success its header moved with its pages and the old
        // range is gone.
        match unsafe {
            self.os
                .remap(old_ptr, old, need, P::GEOMETRY.segment_size())
        } {
            Ok(nb) => {
                let nb = nb.as_ptr() as usize;
                let hp = nb as *mut LargeHeader;
                // SAFETY: the header is at the start of the (moved) mapping.
                let hd = unsafe { &*hp };
                hd.map_size.store(need, Relaxed);
                hd.map_base.store(nb, Relaxed);
                self.registry_view().mark(nb, shift, Region::Large);
                self.stats.mapped_bytes.add(need - old);
                self.stats.committed_bytes.add(need - old);
                Some(hp)
            }
            Err(_) => {
                self.registry_view().mark(base, shift, Region::Large);
                None
            }
        }
    }

    /// When no cached mapping fits within 25 %: makes `h`, the cached
    /// mapping closest in size (see [`large_take_closest`]), a block of
    /// `need` bytes: as it is if it is bigger (its pages are resident:
    /// using them costs no memory and saves the page faults of fresh
    /// ones), else grown to `need`. `None` if the OS layer can neither
    /// splice nor remap (the mapping then goes back to the cache).
    ///
    /// A block of at least [`share_min`](Self::share_min) bytes shares
    /// pages with the other cached mappings instead of keeping a mapping's
    /// size forever: a bigger mapping gives up its surplus (split off, cached
    /// on its own), and a smaller one is grown with the pages of others
    /// spliced in (moved, not faulted). Before, each mapping ratcheted up to
    /// the largest block it had held: malloc-large (20 slots of 5..25 MiB)
    /// held 20 mappings of ~25 MiB for blocks of 15 MiB on average, and
    /// faulted in 125k pages where tcmalloc, whose page heap splits and
    /// coalesces, faulted 118k.
    ///
    /// # Safety
    /// `h` was taken off a cache by the caller: ours alone, a whole
    /// mapping, not over-aligned.
    ///
    /// [`large_take_closest`]: Self::large_take_closest
    unsafe fn large_resize(
        &self,
        local: &mut LocalLarge,
        stats: &HeapStats,
        h: *mut LargeHeader,
        need: usize,
        off: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: taken off a cache: ours.
        let (base, old) = unsafe { ((*h).base(), (*h).map_size.load(Relaxed)) };
        let share = need >= self.share_min();
        if old >= need {
            if share {
                let seg = P::GEOMETRY.segment_size();
                let keep = need.next_multiple_of(seg);
                if old >= keep + seg {
                    // SAFETY: taken off a cache: ours, a whole mapping.
                    unsafe { self.large_split(h, keep) };
                }
            }
            return Some(self.large_revive(h, off, stats));
        }
        if share {
            // SAFETY: as above.
            if let Some(hp) = unsafe { self.large_assemble(local, h, need) } {
                return Some(self.large_revive(hp, off, stats));
            }
        }
        // SAFETY: taken off a cache, the mapping is ours alone; `base`/`old`
        // are exactly it.
        match unsafe { self.large_remap(base, old, need) } {
            Some(hp) => Some(self.large_revive(hp, off, stats)),
            None => {
                self.large_to_global(h);
                None
            }
        }
    }

    /// The smallest block whose mapping shares pages with other cached
    /// ones (split, splice): two segments. Below that a split would leave
    /// pieces too small to serve anything, and a splice would save few
    /// page faults for its system call.
    #[inline]
    pub(crate) fn share_min(&self) -> usize {
        2 * P::GEOMETRY.segment_size()
    }

    /// The mapping size for a block of `size` bytes at `user_offset`:
    /// [`mapping_size`], then, from [`share_min`](Self::share_min) up, a
    /// whole number of segments (so that splits and splices fall on
    /// segment boundaries; at most one segment more, and the pages no
    /// block reaches are never touched).
    pub(crate) fn large_map_size(&self, size: usize, user_offset: usize) -> Option<usize> {
        let m = mapping_size(size, user_offset, self.os.page_size())?;
        if m >= self.share_min() {
            m.checked_next_multiple_of(P::GEOMETRY.segment_size())
        } else {
            Some(m)
        }
    }

    /// The global large cache's byte cap: `large_cache_bytes`, or, when
    /// `large_cache_share` is `n > 0` and that is more, a `1/n` share of
    /// all mapped memory. With split and splice, cached pages serve any
    /// later block; a fixed 64 MiB cap made malloc-large (20 live blocks
    /// of 5..25 MiB) evict and fault again whenever a few frees came in a
    /// row (a model of it: 150k page faults with the fixed cap, 106k with
    /// a third of the mapped memory, 128k before sharing).
    pub(crate) fn large_cap_bytes(&self) -> usize {
        let fixed = self.config.large_cache_bytes;
        match self.config.large_cache_share {
            0 => fixed,
            n => fixed.max(self.stats.mapped_bytes.get() / n),
        }
    }

    /// Splits the mapping of `h` at `at` (a segment multiple): `h` keeps
    /// the first `at` bytes, the rest becomes a cached mapping of its own
    /// (a header at its start, its granule marked) on the global cache.
    /// Leaves `h` whole if the OS layer cannot split.
    ///
    /// # Safety
    /// `h` is a mapping taken off a cache (ours alone, a whole mapping, not
    /// over-aligned); `at` is a positive multiple of the segment size
    /// below its size.
    unsafe fn large_split(&self, h: *mut LargeHeader, at: usize) {
        // SAFETY: per the contract the header is ours.
        let hd = unsafe { &*h };
        let (base, size) = (hd.base(), hd.map_size.load(Relaxed));
        debug_assert!(at > 0 && at < size && at.is_multiple_of(P::GEOMETRY.segment_size()));
        // SAFETY: `base`/`size` are exactly one live mapping (the
        // contract); `at` is a page multiple inside it.
        let split = unsafe {
            self.os
                .split(NonNull::new_unchecked(base as *mut u8), size, at)
        };
        if split.is_err() {
            return;
        }
        self.stats.maps.add(1);
        self.stats.large_splits.add(1);
        let tail = base + at;
        // The tail's first bytes were cached (poisoned) user memory.
        self.os.mark_block(tail as *mut u8, LARGE_HEADER_SIZE, true);
        // SAFETY: `tail` is segment aligned, inside the mapping we own, and
        // no live block covers it: the header fits there.
        unsafe {
            ptr::write(
                tail as *mut LargeHeader,
                LargeHeader {
                    state: AtomicUsize::new(STATE_CACHED),
                    map_size: AtomicUsize::new(size - at),
                    user_offset: AtomicUsize::new(LARGE_HEADER_SIZE),
                    map_base: AtomicUsize::new(tail),
                    next: Cell::new(ptr::null_mut()),
                    prev: Cell::new(ptr::null_mut()),
                    slot: Cell::new(0),
                },
            );
        }
        hd.map_size.store(at, Relaxed);
        self.registry_view()
            .mark(tail, P::GEOMETRY.segment_shift, Region::Large);
        self.large_to_global(tail as *mut LargeHeader);
    }

    /// Moves the whole mapping of `h` over `dst` (`Os::splice`): its
    /// registry mark goes, the books count one mapping and its bytes fewer.
    /// `Err` with nothing changed if the OS layer refuses.
    ///
    /// # Safety
    /// As for [`large_split`](Self::large_split) for `h`; `dst` is the
    /// start of `h`'s size in bytes inside another mapping of ours that
    /// nothing else uses.
    unsafe fn large_splice(&self, h: *mut LargeHeader, dst: usize) -> Result<(), OsError> {
        // SAFETY: per the contract the header is ours.
        let (base, size) = unsafe { ((*h).base(), (*h).map_size.load(Relaxed)) };
        let shift = P::GEOMETRY.segment_shift;
        // Cleared first, as in `large_remap`.
        self.registry_view().mark(base, shift, Region::None);
        // SAFETY: per the contract; both addresses are inside mappings.
        let r = unsafe {
            self.os.splice(
                NonNull::new_unchecked(base as *mut u8),
                size,
                NonNull::new_unchecked(dst as *mut u8),
            )
        };
        match r {
            Ok(()) => {
                self.stats.unmaps.add(1);
                self.stats.large_splices.add(1);
                self.stats.mapped_bytes.sub(size);
                self.stats.committed_bytes.sub(size);
                Ok(())
            }
            Err(e) => {
                self.registry_view().mark(base, shift, Region::Large);
                Err(e)
            }
        }
    }

    /// Makes a mapping of `need` bytes (a segment multiple) from the pages
    /// of `h` (smaller) and of other cached mappings: a fresh mapping of
    /// `need` bytes, `h` spliced over its start, then cached segment
    /// multiples over the rest (those that fit first, largest first; else
    /// the smallest bigger one, split to fit exactly). Only what is left is
    /// fresh memory. Returns the new mapping, `h`'s header at its start;
    /// `None` with `h` untouched (and still the caller's) if `h` is no
    /// segment multiple, or the fresh mapping or `h`'s splice fails.
    ///
    /// # Safety
    /// As for [`large_split`](Self::large_split).
    unsafe fn large_assemble(
        &self,
        local: &mut LocalLarge,
        h: *mut LargeHeader,
        need: usize,
    ) -> Option<*mut LargeHeader> {
        let seg = P::GEOMETRY.segment_size();
        // SAFETY: per the contract the header is ours.
        let old = unsafe { (*h).map_size.load(Relaxed) };
        if !old.is_multiple_of(seg) || !need.is_multiple_of(seg) {
            return None;
        }
        let r = self.os_map(need, seg).ok()?;
        let rb = r.as_ptr() as usize;
        // SAFETY: `h` is ours, `r` a fresh mapping of `need > old` bytes.
        if unsafe { self.large_splice(h, rb) }.is_err() {
            // SAFETY: our fresh mapping, unused.
            unsafe { self.os_unmap(r, need, need) };
            return None;
        }
        let mut filled = old;
        while filled < need {
            let gap = need - filled;
            let Some(d) = self.large_take_cached(
                local,
                |s| {
                    if s % seg != 0 {
                        None
                    } else if s <= gap {
                        Some(gap - s)
                    } else {
                        Some(usize::MAX / 2 + (s - gap))
                    }
                },
                |_| true,
            ) else {
                break;
            };
            // SAFETY: taken off a cache: ours, a segment multiple; `gap`
            // is one too, below its size when the branch is taken.
            unsafe {
                if (*d).map_size.load(Relaxed) > gap {
                    self.large_split(d, gap);
                }
            }
            // Read before the splice moves the header away.
            // SAFETY: ours.
            let ds = unsafe { (*d).map_size.load(Relaxed) };
            // SAFETY: ours; `[rb + filled, rb + filled + ds)` lies inside
            // `r` (ds <= gap), which nothing else uses.
            if ds > gap || unsafe { self.large_splice(d, rb + filled) }.is_err() {
                self.large_to_global(d);
                break;
            }
            filled += ds;
        }
        let hp = rb as *mut LargeHeader;
        // SAFETY: `h`'s header moved with its pages to the start of `r`.
        let hd = unsafe { &*hp };
        hd.map_base.store(rb, Relaxed);
        hd.map_size.store(need, Relaxed);
        self.registry_view()
            .mark(rb, P::GEOMETRY.segment_shift, Region::Large);
        Some(hp)
    }

    /// Takes the cached mapping closest to `need` bytes: the smallest of
    /// at least `need`, else the largest smaller one; only one that fits
    /// within 25 % unless `any`. This heap's own cache first, without a
    /// lock, and if that has a fit, it is taken; else the global cache is
    /// searched under one lock and the closer of the two taken. Searching
    /// for a fit and then, failing that, for a mapping to resize took the
    /// global lock twice, and the lock's `lock cmpxchg`, bouncing between
    /// two threads, was 12 % of mid-large.
    fn large_take_closest(
        &self,
        local: &mut LocalLarge,
        need: usize,
        any: bool,
    ) -> Option<*mut LargeHeader> {
        let rank = |s: usize| {
            let d = if s >= need {
                s - need
            } else {
                usize::MAX / 2 + (need - s)
            };
            (any || fits(s, need)).then_some(d)
        };
        // A score of at most `need / 4` is a fit (a smaller mapping scores
        // above `usize::MAX / 2`).
        self.large_take_cached(local, rank, |r| r <= need / 4)
    }

    /// For a growing block: takes the largest cached mapping (this heap's,
    /// then the global cache) of at least `need` bytes, as a live block at
    /// `off`.
    pub(crate) fn large_take_for_growth(
        &self,
        local: &mut LocalLarge,
        stats: &HeapStats,
        need: usize,
        off: usize,
    ) -> Option<NonNull<u8>> {
        let h =
            self.large_take_cached(local, |s| (s >= need).then_some(usize::MAX - s), |_| true)?;
        Some(self.large_revive(h, off, stats))
    }

    /// Takes a cached mapping: the one `rank` (of its size) scores lowest,
    /// `None` meaning not eligible. This heap's own best, without a lock,
    /// when `enough` accepts its score; else the lower scored of it and the
    /// global cache's best, under one lock.
    fn large_take_cached(
        &self,
        local: &mut LocalLarge,
        rank: impl Fn(usize) -> Option<usize>,
        enough: impl Fn(usize) -> bool,
    ) -> Option<*mut LargeHeader> {
        // SAFETY: cached headers are live mappings.
        let local_sizes = local
            .iter()
            .map(|h| (h, unsafe { (*h).map_size.load(Relaxed) }));
        let local_best = best_ranked(local_sizes, &rank);
        if let Some((h, r)) = local_best {
            if enough(r) {
                return Some(local.take_ptr(h));
            }
        }
        let global = self.large.with(|st| {
            // The sizes come from the index, not from the headers.
            let (g, gr) = best_ranked(st.entries().iter().map(|e| (e.header, e.size)), &rank)?;
            if local_best.is_some_and(|(_, lr)| lr <= gr) {
                return None;
            }
            // SAFETY: `g` is on the cached list; we hold the lock.
            unsafe { st.remove(g) };
            Some(g)
        });
        global.or_else(|| local_best.map(|(h, _)| local.take_ptr(h)))
    }

    /// Makes a mapping taken off a cache a live block at `off`: state,
    /// counters, and the whole usable block accessible (realloc copies all
    /// of it) before anyone writes it.
    fn large_revive(&self, h: *mut LargeHeader, off: usize, stats: &HeapStats) -> NonNull<u8> {
        // SAFETY: taken off a cache by the caller: ours.
        let hd = unsafe { &*h };
        hd.user_offset.store(off, Relaxed);
        hd.state.store(STATE_LIVE, Relaxed);
        stats.large_hits.bump();
        stats.large_live.bump();
        stats.large_live_bytes.bump_by(hd.map_size.load(Relaxed));
        let user = hd.base() + off;
        self.os.mark_block(user as *mut u8, hd.usable(), true);
        // SAFETY: inside a live mapping, so non-null.
        unsafe { NonNull::new_unchecked(user as *mut u8) }
    }

    /// Hands a heap's own cached mappings to the global cache (flush, exit).
    pub(crate) fn large_flush_local(&self, local: &mut LocalLarge) {
        while local.len > 0 {
            let h = local.take(0);
            self.large_to_global(h);
        }
    }

    /// # Safety
    /// `h` is a large mapping on no list that nothing refers to.
    pub(crate) unsafe fn large_unmap(&self, h: *mut LargeHeader) {
        // SAFETY: per the contract the header is readable.
        let (base, size, reg) = unsafe {
            (
                (*h).base(),
                (*h).map_size.load(Relaxed),
                (*h).registry_addr(),
            )
        };
        self.registry_view()
            .mark(reg, P::GEOMETRY.segment_shift, Region::None);
        // SAFETY: per the contract; the whole mapping is committed.
        unsafe { self.os_unmap(NonNull::new_unchecked(base as *mut u8), size, size) };
    }

    /// Empties the global large cache (trim).
    pub(crate) fn large_trim(&self) {
        loop {
            // SAFETY: cached headers are live mappings.
            let t = self.large.with(|st| unsafe { st.pop(false) });
            if t.is_null() {
                return;
            }
            // SAFETY: off every list.
            unsafe { self.large_unmap(t) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_sizes_waste_at_most_an_eighth_plus_a_page() {
        let page = 4096;
        for size in (1..(64 << 20)).step_by(12_345) {
            let m = mapping_size(size, 64, page).unwrap();
            assert!(m >= size + 64);
            assert_eq!(m % page, 0);
            assert!(
                m - (size + 64) <= (size + 64) / 8 + page,
                "size {size} -> {m}"
            );
        }
        assert_eq!(mapping_size(usize::MAX - 10, 64, page), None);
    }
}
