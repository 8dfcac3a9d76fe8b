//! The C allocator ABI, the only place the workloads touch raw memory.
//!
//! Every workload allocates through `libc::malloc/calloc/realloc/free`, so an
//! `LD_PRELOAD`ed library swaps the allocator under an unchanged binary.
//! Blocks are handed around as [`Block`]s, which remember their requested
//! size: the touch/check helpers need it, and a later `#[global_allocator]`
//! build (see the README, "A `#[global_allocator]` comparison") needs it to
//! rebuild a `Layout` on free. Swapping this module is that hook.
//!
//! Each block carries a *mark*: its first and last byte hold [`mark_of`] of
//! its size (and, when asked, every 4 KiB page holds a mark too). Whoever
//! frees the block checks the mark, so an allocator that hands out
//! overlapping or recycled-while-live memory is caught, and no allocator can
//! win by handing out memory that is never touched.

use std::ffi::c_void;
use std::ptr::NonNull;

/// Page stride used by the page-touching helpers, in bytes.
pub const PAGE_SIZE: usize = 4096;

/// Exit code of a run that found a block whose contents changed under it.
pub const CORRUPT_EXIT_CODE: i32 = 86;

/// Exit code of a run whose allocator returned NULL.
pub const OOM_EXIT_CODE: i32 = 87;

/// The byte written at a block's ends (and page starts): a function of the
/// block's size, so a freer can check it knowing only the block.
#[inline]
pub fn mark_of(size: usize) -> u8 {
    (size as u8) ^ ((size >> 8) as u8) ^ 0xA5
}

/// Reports a corrupted block and ends the process with [`CORRUPT_EXIT_CODE`].
#[cold]
#[inline(never)]
pub fn corrupt(detail: &str) -> ! {
    eprintln!("CORRUPT {detail}");
    std::process::exit(CORRUPT_EXIT_CODE)
}

#[cold]
#[inline(never)]
fn out_of_memory(call: &str, size: usize) -> ! {
    eprintln!("OOM {call}({size}) returned NULL");
    std::process::exit(OOM_EXIT_CODE)
}

/// Reports a block that lost its mark. Takes the block's address and size
/// by value, not the block by reference: a reference would make every
/// caller of [`Block::check`] keep the block in memory for this path that
/// never runs (two stack stores per check).
#[cold]
#[inline(never)]
fn corrupt_at(addr: usize, size: usize, context: &str) -> ! {
    corrupt(&format!(
        "{context}: block {addr:#x} of {size} bytes lost its mark"
    ))
}

/// One live heap block from the C allocator, with the size it was asked for.
///
/// Not `Copy`: a block is freed exactly once, by value. Dropping a `Block`
/// without freeing it leaks it (the workloads free everything explicitly).
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: a `Block` is an exclusively owned heap allocation; the C ABI allows
// freeing it from any thread, which is what the cross-thread workloads test.
unsafe impl Send for Block {}

impl Block {
    /// `malloc(size)` (size ≥ 1), marking both ends.
    #[inline]
    pub fn alloc(size: usize) -> Block {
        let mut block = Block::alloc_untouched(size);
        block.mark_ends();
        block
    }

    /// The same block, its pointer passed through an empty `asm!` that the
    /// compiler must assume changed it. LLVM knows what `malloc` and `free`
    /// do and removes a `free(malloc(n))` whose block nothing uses; after
    /// this it cannot pair the two. Unlike `std::hint::black_box`, which
    /// takes the value's address, nothing is stored to the stack and read
    /// back: for `pair`, whose loop should hold the two calls and little
    /// else.
    #[inline(always)]
    pub fn opaque(self) -> Block {
        let mut raw = self.ptr.as_ptr();
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        // The lint is for asm that dereferences a pointer it is given: this
        // one only passes the pointer through a register.
        #[allow(clippy::pointers_in_nomem_asm_block)]
        // SAFETY: the asm is empty: it reads and writes no memory, and
        // leaves the register it claims to change as it was.
        unsafe {
            core::arch::asm!("/* {0} */", inout(reg) raw, options(nomem, nostack, preserves_flags));
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            raw = std::hint::black_box(raw);
        }
        Block {
            // SAFETY: `raw` is `self.ptr`, non-null (the asm does not change it).
            ptr: unsafe { NonNull::new_unchecked(raw) },
            size: self.size,
        }
    }

    /// `malloc(size)` without writing to it: only for the `pair`
    /// microbenchmark, which measures the bare call.
    #[inline]
    pub fn alloc_untouched(size: usize) -> Block {
        debug_assert!(size >= 1);
        // SAFETY: malloc has no preconditions; NULL is handled below.
        let raw = unsafe { libc::malloc(size) }.cast::<u8>();
        match NonNull::new(raw) {
            Some(ptr) => Block { ptr, size },
            None => out_of_memory("malloc", size),
        }
    }

    /// `calloc(1, size)`, checking that the ends read zero before marking them.
    #[inline]
    pub fn alloc_zeroed(size: usize) -> Block {
        debug_assert!(size >= 1);
        // SAFETY: calloc has no preconditions; NULL is handled below.
        let raw = unsafe { libc::calloc(1, size) }.cast::<u8>();
        let Some(ptr) = NonNull::new(raw) else {
            out_of_memory("calloc", size)
        };
        let mut block = Block { ptr, size };
        if block.read(0) != 0 || block.read(size - 1) != 0 {
            corrupt(&format!("calloc({size}) returned non-zero memory"));
        }
        block.mark_ends();
        block
    }

    /// The size this block was asked for, in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// The block's address (for diagnostics and cache-line arithmetic).
    #[inline]
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Reads byte `idx` (volatile, so the read really happens).
    #[inline]
    pub fn read(&self, idx: usize) -> u8 {
        assert!(idx < self.size);
        // SAFETY: idx < size, and the block is live and owned by `self`.
        unsafe { self.ptr.as_ptr().add(idx).read_volatile() }
    }

    /// Writes byte `idx` (volatile, so the write really happens).
    #[inline]
    pub fn write(&mut self, idx: usize, value: u8) {
        assert!(idx < self.size);
        // SAFETY: idx < size, and the block is live and owned by `self`.
        unsafe { self.ptr.as_ptr().add(idx).write_volatile(value) }
    }

    /// Writes a native-endian `u64` at byte `idx` (unaligned is fine).
    #[inline]
    pub fn write_word(&mut self, idx: usize, value: u64) {
        assert!(idx + 8 <= self.size);
        // SAFETY: idx..idx+8 lies inside the live block owned by `self`;
        // write_unaligned has no alignment requirement.
        unsafe {
            self.ptr
                .as_ptr()
                .add(idx)
                .cast::<u64>()
                .write_unaligned(value)
        }
    }

    /// Fills bytes `from..to` with `value` (a plain memset).
    #[inline]
    pub fn fill(&mut self, from: usize, to: usize, value: u8) {
        assert!(from <= to && to <= self.size);
        // SAFETY: from..to lies inside the live block owned by `self`.
        unsafe { self.ptr.as_ptr().add(from).write_bytes(value, to - from) }
    }

    /// Writes the mark at the first and the last byte.
    #[inline]
    pub fn mark_ends(&mut self) {
        let mark = mark_of(self.size);
        // SAFETY: 0 and size-1 are inside the live block owned by `self`.
        unsafe {
            self.ptr.as_ptr().write_volatile(mark);
            self.ptr.as_ptr().add(self.size - 1).write_volatile(mark);
        }
    }

    /// Writes the mark at the first byte of every 4 KiB page and at the ends,
    /// so every page of a large block is really faulted in.
    pub fn mark_pages(&mut self) {
        let mark = mark_of(self.size);
        let mut idx = 0;
        while idx < self.size {
            self.write(idx, mark);
            idx += PAGE_SIZE;
        }
        self.mark_ends();
    }

    /// Checks the marks written by [`Block::mark_ends`] (`pages`: and by
    /// [`Block::mark_pages`]); a mismatch ends the process as corrupt.
    #[inline]
    pub fn check(&self, pages: bool, context: &str) {
        let mark = mark_of(self.size);
        if self.read(0) != mark || self.read(self.size - 1) != mark {
            corrupt_at(self.addr(), self.size, context);
        }
        if pages {
            let mut idx = PAGE_SIZE;
            while idx < self.size {
                if self.read(idx) != mark {
                    corrupt_at(self.addr(), self.size, context);
                }
                idx += PAGE_SIZE;
            }
        }
    }

    /// `realloc` to `new_size` (≥ 1). The first `min(old, new)` bytes are
    /// preserved by the allocator; no new marks are written.
    #[inline]
    pub fn realloc(self, new_size: usize) -> Block {
        debug_assert!(new_size >= 1);
        // SAFETY: self.ptr came from this C allocator and is live; realloc
        // consumes it (self is moved in), NULL is handled below (on NULL the
        // old block stays allocated, and we exit).
        let raw = unsafe { libc::realloc(self.ptr.as_ptr().cast::<c_void>(), new_size) };
        match NonNull::new(raw.cast::<u8>()) {
            Some(ptr) => Block {
                ptr,
                size: new_size,
            },
            None => out_of_memory("realloc", new_size),
        }
    }

    /// Checks the end marks, then frees.
    #[inline]
    pub fn free_checked(self, context: &str) {
        self.check(false, context);
        self.free();
    }

    /// `free` without checking.
    #[inline]
    pub fn free(self) {
        // SAFETY: self.ptr came from this C allocator, is live, and is freed
        // once: `self` is consumed.
        unsafe { libc::free(self.ptr.as_ptr().cast::<c_void>()) }
    }

    /// Gives up ownership, returning a bare pointer with the size stored in
    /// the block itself (bytes [`HEADER_IDX`]..+8), for the lock-free
    /// transfer array of `mstress`, which holds only pointers. The block
    /// must be at least [`MIN_HEADER_BLOCK_SIZE`] bytes.
    #[inline]
    pub fn into_raw_with_header(mut self) -> *mut u8 {
        assert!(self.size >= MIN_HEADER_BLOCK_SIZE);
        self.write_word(HEADER_IDX, self.size as u64);
        self.ptr.as_ptr()
    }

    /// Takes back ownership of a block given up with
    /// [`Block::into_raw_with_header`], reading its size from the block.
    ///
    /// # Safety
    /// `ptr` comes from one `into_raw_with_header` call, the block is still
    /// allocated, and no other `Block` owns it; the caller synchronised with
    /// the thread that gave it up (so the header is visible).
    #[inline]
    pub unsafe fn from_raw_with_header(ptr: *mut u8) -> Block {
        // SAFETY: per the caller's contract the block is live, at least
        // MIN_HEADER_BLOCK_SIZE bytes, and holds its size at HEADER_IDX.
        let size = unsafe { ptr.add(HEADER_IDX).cast::<u64>().read_unaligned() } as usize;
        Block {
            // SAFETY: `into_raw_with_header` only ever returns non-null pointers.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            size,
        }
    }
}

/// Where [`Block::into_raw_with_header`] stores the size: after the first
/// byte's mark.
pub const HEADER_IDX: usize = 8;

/// The least size a block given up with a header may have: mark, header and
/// the last byte's mark do not overlap.
pub const MIN_HEADER_BLOCK_SIZE: usize = HEADER_IDX + 8 + 1;

/// The file name of the shared object whose `malloc` this process calls,
/// e.g. `libc.so.6` or `libjemalloc.so.2`: proof that a preload took effect.
pub fn malloc_provider() -> String {
    let addr = libc::malloc as *const c_void;
    // SAFETY: Dl_info is plain old data; all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads `addr` and writes `info`, which outlives it.
    let found = unsafe { libc::dladdr(addr, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return "unknown".to_string();
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader,
    // valid while the object stays loaded (for the whole process).
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = path.to_string_lossy();
    path.rsplit('/').next().unwrap_or(&path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_block_survives_realloc_and_frees_clean() {
        let mut block = Block::alloc(100);
        block.mark_pages();
        block.check(true, "test");
        let grown = block.realloc(10_000);
        assert_eq!(grown.read(0), mark_of(100));
        assert_eq!(grown.read(99), mark_of(100));
        grown.free();
    }

    #[test]
    fn zeroed_block_reads_zero_then_carries_marks() {
        let block = Block::alloc_zeroed(64);
        block.check(false, "test");
        block.free_checked("test");
    }

    #[test]
    fn malloc_provider_names_a_shared_object() {
        assert!(!malloc_provider().is_empty());
    }
}
