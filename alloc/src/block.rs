//! A free block's two words, and the tag that marks a block as free.
//!
//! A block that is not live (cached, free-local or remote-freed) holds its
//! list link in word 0 and its *free tag* in word 1: `addr ^ key`, where
//! `key` is a per-allocator secret. Handing a block out clears word 1, so
//!
//! BLOCK-TAG  word 1 of a block equals `tag(addr)` iff the block is on a
//!            thread cache, a slab's free list or a remote queue
//!
//! which is what makes a double free detectable in O(1): a free of a block
//! whose word 1 already holds its tag is a double free (a live block can
//! only hold it if the program wrote that exact secret-derived value there).
//! The checker verifies BLOCK-TAG as part of I1.
//!
//! These are the only accesses the allocator makes to user memory.

/// The first two words of a block that is not live. (Public, hidden, only
/// for model checkers driving `RemoteStack`.)
#[doc(hidden)]
#[repr(C)]
pub struct Block {
    pub(crate) next: *mut Block,
    pub(crate) tag: usize,
}

/// The free tag of the block at `addr`.
#[inline(always)]
pub(crate) fn tag(addr: usize, key: usize) -> usize {
    addr ^ key
}

/// Reads a free block's link.
///
/// # Safety
/// `b` is a block start inside a committed slab (at least 16 bytes).
#[inline(always)]
pub(crate) unsafe fn next(b: *mut Block) -> *mut Block {
    // SAFETY: per the caller's contract the two words are readable.
    unsafe { (*b).next }
}

/// Writes a free block's link.
///
/// # Safety
/// As for [`next`], and the block is not live.
#[inline(always)]
pub(crate) unsafe fn set_next(b: *mut Block, next: *mut Block) {
    // SAFETY: per the caller's contract the block is ours to write.
    unsafe { (*b).next = next }
}

/// Reads word 1.
///
/// # Safety
/// As for [`next`].
#[inline(always)]
pub(crate) unsafe fn read_tag(b: *mut Block) -> usize {
    // SAFETY: per the caller's contract the two words are readable.
    unsafe { (*b).tag }
}

/// Marks a block free: link and tag.
///
/// # Safety
/// As for [`set_next`].
#[inline(always)]
pub(crate) unsafe fn make_free(b: *mut Block, next: *mut Block, key: usize) {
    // SAFETY: per the caller's contract the block is ours to write.
    unsafe {
        (*b).next = next;
        (*b).tag = tag(b as usize, key);
    }
}

/// Writes the free tag alone (a block going into a cache's array, which
/// keeps no link).
///
/// # Safety
/// As for [`set_next`].
#[inline(always)]
pub(crate) unsafe fn set_tag(b: *mut Block, key: usize) {
    // SAFETY: per the contract the block is ours to write.
    unsafe { (*b).tag = tag(b as usize, key) }
}

/// Clears the tag as the block goes live.
///
/// # Safety
/// As for [`set_next`].
#[inline(always)]
pub(crate) unsafe fn make_live(b: *mut Block) {
    // SAFETY: per the caller's contract the block is ours to write.
    unsafe { (*b).tag = 0 }
}

/// Asks the CPU to start loading the line at `p` (a hint: any address is
/// fine, null and unmapped ones too, and nothing is read).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault (SSE is part of
    // the x86_64 baseline).
    unsafe {
        core::arch::x86_64::_mm_prefetch(p.cast::<i8>(), core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
