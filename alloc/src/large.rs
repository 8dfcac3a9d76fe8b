//! Large allocations: beyond the slab classes (or with an alignment slabs
//! do not give), one mapping each, aligned to the segment size so that
//! `ptr & !segment_mask` finds the header, marked `LARGE` in the registry.
//! Freed mappings go to a bounded cache (count and bytes, most recent
//! first) and are reused by best fit, so alloc/free loops of big blocks do
//! not call mmap/munmap, and fresh mappings are known to be zero.
//!
//! Invariants (checked in check.rs):
//! I1 LARGE-ONE    a mapping is on exactly one of the live and cached lists,
//!                 once, and its state word says which
//! I6 LARGE-BOOKS  every mapping on the lists is live in the OS books and
//!                 marked in the registry; the cache holds at most its caps

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::allocator::Allocator;
use crate::error::{AllocError, FreeError};
use crate::list::{Links, List};
use crate::platform::{MutexOps, Os, Platform};
use crate::registry::Region;
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
    pub(crate) next: Cell<*mut LargeHeader>,
    pub(crate) prev: Cell<*mut LargeHeader>,
}

const _: () = assert!(core::mem::size_of::<LargeHeader>() <= LARGE_HEADER_SIZE);

impl LargeHeader {
    #[inline]
    pub(crate) fn base(&self) -> usize {
        self as *const Self as usize
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

pub(crate) struct LargeState {
    pub(crate) live: List<LargeHeader, LargeLinks>,
    /// Most recently freed first.
    pub(crate) cached: List<LargeHeader, LargeLinks>,
    pub(crate) cached_bytes: usize,
}

impl LargeState {
    pub(crate) const fn new() -> Self {
        LargeState {
            live: List::new(),
            cached: List::new(),
            cached_bytes: 0,
        }
    }
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

impl<P: Platform> Allocator<P> {
    /// Allocates a large block. `zeroed`: the caller needs zero bytes.
    pub(crate) fn large_alloc(
        &self,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        let seg = P::GEOMETRY.segment_size();
        if !align.is_power_of_two() || align > seg / 2 {
            return Err(AllocError::BadAlign { align });
        }
        let user_offset = align.max(LARGE_HEADER_SIZE);
        let page = self.os.page_size();
        let map_size =
            mapping_size(size, user_offset, page).ok_or(AllocError::TooLarge { size })?;
        if map_size > isize::MAX as usize {
            return Err(AllocError::TooLarge { size });
        }
        self.stats.large_allocs.add(1);
        let reused = self.large.with(|st| {
            // Best fit among mappings at most 25 % bigger than needed.
            let mut best: *mut LargeHeader = ptr::null_mut();
            let mut best_size = usize::MAX;
            // SAFETY: cached headers are live mappings; we hold the lock.
            for h in unsafe { st.cached.iter() } {
                // SAFETY: as above.
                let s = unsafe { (*h).map_size.load(Relaxed) };
                if s >= map_size && s - map_size <= map_size / 4 && s < best_size {
                    best = h;
                    best_size = s;
                }
            }
            if !best.is_null() {
                // SAFETY: `best` is on the cached list.
                unsafe {
                    st.cached.remove(best);
                    st.cached_bytes -= best_size;
                    (*best).user_offset.store(user_offset, Relaxed);
                    (*best).state.store(STATE_LIVE, Relaxed);
                    st.live.push_front(best);
                }
            }
            best
        });
        if !reused.is_null() {
            self.stats.large_cache_hits.add(1);
            self.stats.large_cached.sub(1);
            self.stats.large_live.add(1);
            // SAFETY: the header is live and ours now.
            let user = unsafe { (*reused).base() } + user_offset;
            if zeroed {
                // SAFETY: the user block lies inside the mapping.
                unsafe { ptr::write_bytes(user as *mut u8, 0, size) };
            }
            self.os.mark_block(user as *mut u8, size, true);
            // SAFETY: inside a live mapping, so non-null.
            return Ok(unsafe { NonNull::new_unchecked(user as *mut u8) });
        }
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
                    next: Cell::new(ptr::null_mut()),
                    prev: Cell::new(ptr::null_mut()),
                },
            );
        }
        self.registry_view().mark(
            base.as_ptr() as usize,
            P::GEOMETRY.segment_shift,
            Region::Large,
        );
        // SAFETY: the new header is on no list.
        self.large.with(|st| unsafe { st.live.push_front(h) });
        self.stats.large_live.add(1);
        let user = base.as_ptr() as usize + user_offset;
        // Fresh from the OS: already zero.
        // SAFETY: inside the mapping.
        Ok(unsafe { NonNull::new_unchecked(user as *mut u8) })
    }

    /// The header of the large block at `addr`, validated: a live block
    /// starting exactly at `addr`.
    pub(crate) fn large_lookup(&self, addr: usize) -> Result<&LargeHeader, FreeError> {
        let base = addr & !P::GEOMETRY.segment_mask();
        // SAFETY: the registry marks `base` LARGE, so a live large mapping
        // with its header starts there.
        let h = unsafe { &*(base as *const LargeHeader) };
        let off = h.user_offset.load(Relaxed);
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
        if h.state.load(Relaxed) != STATE_LIVE && !self.config.zoo.on(Bug::LargeCacheDoubleInsert) {
            return Err(FreeError::DoubleFree { ptr: addr });
        }
        Ok(h)
    }

    /// Frees a large block: into the cache, or back to the OS when it
    /// would not fit the cache's caps.
    pub(crate) fn large_free(&self, addr: usize) -> Result<(), FreeError> {
        let h = self.large_lookup(addr)?;
        let size = h.map_size.load(Relaxed);
        self.os.mark_block(addr as *mut u8, h.usable(), false);
        let hp = h as *const LargeHeader as *mut LargeHeader;
        let cap_bytes = self.config.large_cache_bytes;
        let cap_count = self.config.large_cache_count;
        // Evicted mappings are chained through their `next` link and
        // unmapped after the lock is released.
        let mut evicted: *mut LargeHeader = ptr::null_mut();
        let cached = self.large.with(|st| {
            if h.state.load(Relaxed) == STATE_LIVE {
                // SAFETY: a live header is on the live list.
                unsafe { st.live.remove(hp) };
            }
            // Zoo bug 9 skips the state check above in `large_lookup`: a
            // second free of the same mapping inserts it a second time.
            if size > cap_bytes || cap_count == 0 {
                return false;
            }
            h.state.store(STATE_CACHED, Relaxed);
            // SAFETY: the header is on no list now (or, under zoo bug 9,
            // already on the cached list: the corruption the bug is about).
            unsafe { st.cached.push_front(hp) };
            st.cached_bytes += size;
            while st.cached_bytes > cap_bytes || st.cached.len > cap_count {
                // SAFETY: cached headers are live mappings; a popped one is
                // on no list, so its link is free for the chain.
                unsafe {
                    let t = st.cached.pop_back();
                    st.cached_bytes -= (*t).map_size.load(Relaxed);
                    (*t).next.set(evicted);
                    evicted = t;
                }
            }
            true
        });
        self.stats.large_live.sub(1);
        if cached {
            self.stats.large_cached.add(1);
        } else {
            // SAFETY: the mapping is off every list and nothing refers to it.
            unsafe { self.large_unmap(hp) };
        }
        while !evicted.is_null() {
            // SAFETY: evicted headers are off every list; read the chain
            // link before the mapping goes away.
            let next = unsafe { (*evicted).next.get() };
            self.stats.large_cached.sub(1);
            // SAFETY: as above.
            unsafe { self.large_unmap(evicted) };
            evicted = next;
        }
        Ok(())
    }

    /// # Safety
    /// `h` is a large mapping on no list that nothing refers to.
    pub(crate) unsafe fn large_unmap(&self, h: *mut LargeHeader) {
        // SAFETY: per the contract the header is readable.
        let (base, size) = unsafe { ((*h).base(), (*h).map_size.load(Relaxed)) };
        self.registry_view()
            .mark(base, P::GEOMETRY.segment_shift, Region::None);
        // SAFETY: per the contract; the whole mapping is committed.
        unsafe { self.os_unmap(NonNull::new_unchecked(base as *mut u8), size, size) };
    }

    /// Empties the large cache (trim).
    pub(crate) fn large_trim(&self) {
        loop {
            // SAFETY: cached headers are live mappings.
            let t = self.large.with(|st| unsafe {
                let t = st.cached.pop_front();
                if !t.is_null() {
                    st.cached_bytes -= (*t).map_size.load(Relaxed);
                }
                t
            });
            if t.is_null() {
                return;
            }
            self.stats.large_cached.sub(1);
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
