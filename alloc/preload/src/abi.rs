//! The exported C functions. Semantics follow glibc (Debian bookworm's
//! 2.36, with the later `aligned_alloc` check):
//!
//! * `malloc(0)`, `calloc(0, n)`, `realloc(NULL, 0)` and the aligned
//!   functions with size 0 return a unique, freeable 16-byte block.
//! * Every block is aligned to 16 (`MIN_ALIGN`) at least.
//! * `realloc(p, 0)` with `p != NULL` frees `p` and returns NULL (errno
//!   untouched), as glibc does; `reallocarray` is `realloc` after its
//!   overflow check, so `reallocarray(p, 0, n)` frees too.
//! * Failure to allocate, a `calloc`/`reallocarray`/`pvalloc` size that
//!   overflows, and sizes beyond the address space return NULL with
//!   `errno = ENOMEM`; `realloc` leaves the old block live then.
//! * Alignments: `posix_memalign` returns `EINVAL` unless the alignment is
//!   a power of two multiple of `sizeof(void *)`; `aligned_alloc` sets
//!   `EINVAL` unless it is a power of two (glibc >= 2.38); `memalign`
//!   rounds a non-power of two up, as glibc does, and sets `EINVAL` only
//!   above `SIZE_MAX / 2 + 1`. Every valid alignment is served (beyond
//!   half a segment, by a mapping of its own).
//! * `free`, `realloc` and `malloc_usable_size` validate their pointer in
//!   O(1) (see `HeapData::free`) and abort with
//!   `hakmem: <function>(): <what> 0x<pointer>` on stderr for a pointer
//!   hakmem does not own, one inside or not at the start of a block, or a
//!   block that is already free. `free(NULL)` and `realloc(NULL, n)` are
//!   fine; `malloc_usable_size(NULL)` is 0.
//! * `malloc_trim` flushes the calling thread's caches and the heaps that
//!   exited threads left parked, and returns every free page it can to the
//!   OS; it returns 1 if the committed bytes fell.

use core::ffi::{c_int, c_void};
use core::ptr::{self, NonNull};

use hakmem::geometry::MIN_ALIGN;
use hakmem::{HakMem, ReallocError};

const PAGE_SIZE: usize = 4096;

#[inline(always)]
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

#[cold]
#[inline(never)]
fn fail(e: c_int) -> *mut c_void {
    set_errno(e);
    ptr::null_mut()
}

/// `size` bytes aligned to `align` (a power of two), or NULL with errno.
/// (Out of memory, or a size beyond the address space: `ENOMEM`.)
#[inline(always)]
fn alloc_aligned(size: usize, align: usize) -> *mut c_void {
    HakMem::alloc_raw_errno(size, align).cast()
}

/// Frees `p` or, if it is not a live block of hakmem, reports the misuse
/// as one found by `op` and aborts.
#[inline(always)]
fn free_or_abort(p: NonNull<u8>, op: &str) {
    HakMem::free_or_abort(p, op)
}

// `free` and `malloc` each start a 64-byte line. Where the fast paths fell
// relative to the lines (and the decoders' 32-byte windows) moved `pair` by
// 5-9 % between builds whose code for them was the same. Aligning every
// function at 64 (`-C llvm-args=-align-all-functions=6`) gave the good
// layout, but it is a flag for the whole build, and stable Rust has no
// per-function alignment. So each of the two lives in its own section
// (`link_section`), and an empty piece of that section in the assembly
// below, emitted before any function of the crate, raises the section's
// alignment to 64: the function sits at offset 0 of it. The order of the
// pieces is the order of the sections in the library: `free` first. With
// `malloc` first, glibc-thread was 3-4 % slower (pinned medians of 11,
// twice), with no other change. The C battery (identity.c) checks the
// addresses.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
core::arch::global_asm!(
    ".pushsection .text.hakmem.free,\"ax\",@progbits",
    ".p2align 6",
    ".popsection",
    ".pushsection .text.hakmem.malloc,\"ax\",@progbits",
    ".p2align 6",
    ".popsection",
);

/// C `malloc`.
#[no_mangle]
#[cfg_attr(
    all(target_arch = "x86_64", target_os = "linux"),
    link_section = ".text.hakmem.malloc"
)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc_aligned(size, MIN_ALIGN)
}

/// C `free`.
///
/// # Safety
/// None beyond C's: any pointer is accepted; one that is not a live block
/// of hakmem is reported and the process aborts.
#[no_mangle]
#[cfg_attr(
    all(target_arch = "x86_64", target_os = "linux"),
    link_section = ".text.hakmem.free"
)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // A null goes the cold way: no test for it on the fast path.
    HakMem::free_or_abort_ptr(p.cast(), "free")
}

/// The obsolete `cfree`, which is `free`.
///
/// # Safety
/// As for [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: same contract.
    unsafe { free(p) }
}

/// C `calloc`: zeroed memory for `count * size` bytes.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        return fail(libc::ENOMEM);
    };
    match HakMem::with_heap(|h| h.alloc_zeroed_raw(total, MIN_ALIGN)) {
        Some(p) if !p.is_null() => p.cast(),
        _ => fail(libc::ENOMEM),
    }
}

/// C `realloc`, with glibc's `realloc(p, 0)`: frees and returns NULL.
///
/// # Safety
/// As for [`free`]: `p` is NULL or anything; a pointer that is not a live
/// block is reported and the process aborts.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    let Some(old) = NonNull::new(p.cast::<u8>()) else {
        return malloc(size);
    };
    if size == 0 {
        free_or_abort(old, "realloc");
        return ptr::null_mut();
    }
    match HakMem::with_heap(|h| h.realloc(old, size, MIN_ALIGN)) {
        Some(Ok(q)) => q.as_ptr().cast(),
        Some(Err(ReallocError::Free(e))) => HakMem::misuse("realloc", e),
        Some(Err(ReallocError::Alloc(_))) | None => fail(libc::ENOMEM),
    }
}

/// C `reallocarray`: `realloc(p, count * size)` unless the product
/// overflows (NULL, `ENOMEM`, `p` untouched).
///
/// # Safety
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: same contract.
        Some(total) => unsafe { realloc(p, total) },
        None => fail(libc::ENOMEM),
    }
}

/// POSIX `posix_memalign`: 0, `EINVAL` or `ENOMEM` (`*out` is written
/// only on success).
///
/// # Safety
/// `out` is valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let p = alloc_aligned(size, align.max(MIN_ALIGN));
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: per the contract.
    unsafe { *out = p };
    0
}

/// C11 `aligned_alloc`: `EINVAL` unless `align` is a power of two.
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return fail(libc::EINVAL);
    }
    alloc_aligned(size, align.max(MIN_ALIGN))
}

/// The obsolete `memalign`, as glibc has it: an alignment that is not a
/// power of two is rounded up to one; `EINVAL` only beyond `SIZE_MAX/2+1`.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        return fail(libc::EINVAL);
    }
    alloc_aligned(size, align.next_power_of_two().max(MIN_ALIGN))
}

/// The obsolete `valloc`: page-aligned memory.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc_aligned(size, PAGE_SIZE)
}

/// The obsolete `pvalloc`: page-aligned, size rounded up to whole pages.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match size.checked_add(PAGE_SIZE - 1) {
        Some(s) => alloc_aligned(s & !(PAGE_SIZE - 1), PAGE_SIZE),
        None => fail(libc::ENOMEM),
    }
}

/// glibc `malloc_usable_size`: the bytes the block really has (at least
/// what was asked for); 0 for NULL.
///
/// # Safety
/// As for [`free`].
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    let Some(p) = NonNull::new(p.cast::<u8>()) else {
        return 0;
    };
    match HakMem::with_heap(|h| h.usable_size(p)) {
        Some(Ok(n)) => n,
        Some(Err(e)) => HakMem::misuse("malloc_usable_size", e),
        None => 0,
    }
}

/// glibc `malloc_trim`: returns free memory to the OS (the padding
/// argument is ignored: nothing is kept). 1 if memory was released.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    let before = HakMem::allocator().stats().committed_bytes;
    HakMem::trim();
    c_int::from(HakMem::allocator().stats().committed_bytes < before)
}

/// glibc `malloc_stats`: hakmem's counters on stderr.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    crate::lifecycle::print_stats(2);
}
