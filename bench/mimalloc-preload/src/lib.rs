//! `libmimalloc_preload.so`: the C allocator ABI mapped onto the `mi_*`
//! functions of the mimalloc that `libmimalloc-sys` bundles (a current
//! release, unlike Debian's 2.0), so `LD_PRELOAD` can put it under an
//! unchanged binary. Built by `hakmem-bench compare` as the reference peer.
//!
//! Every function here only forwards its arguments: the caller's duties are
//! those of the C function it replaces, and mimalloc's are the same.

use std::ffi::{c_int, c_void};

use libmimalloc_sys as mi;

// Posix entry points present in the bundled library (alloc-posix.c) but not
// declared by libmimalloc-sys.
extern "C" {
    fn mi_reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void;
    fn mi_memalign(alignment: usize, size: usize) -> *mut c_void;
    fn mi_valloc(size: usize) -> *mut c_void;
    fn mi_pvalloc(size: usize) -> *mut c_void;
}

/// C `malloc`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: mi_malloc has no preconditions.
    unsafe { mi::mi_malloc(size) }
}

/// C `calloc`.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    // SAFETY: mi_calloc has no preconditions (it checks the overflow).
    unsafe { mi::mi_calloc(count, size) }
}

/// C `free`.
///
/// # Safety
/// `p` is NULL or a live block from this allocator, freed once.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the caller's contract is mi_free's.
    unsafe { mi::mi_free(p) }
}

/// C `realloc`.
///
/// # Safety
/// `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract is mi_realloc's.
    unsafe { mi::mi_realloc(p, size) }
}

/// C `reallocarray`.
///
/// # Safety
/// `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract is mi_reallocarray's (it checks overflow).
    unsafe { mi_reallocarray(p, count, size) }
}

/// C `posix_memalign`.
///
/// # Safety
/// `out` is valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: the caller's contract is mi_posix_memalign's; it validates
    // the alignment and returns EINVAL/ENOMEM as POSIX asks.
    unsafe { mi::mi_posix_memalign(out, alignment, size) }
}

/// C11 `aligned_alloc`.
#[no_mangle]
pub extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    // SAFETY: mi_aligned_alloc validates its arguments.
    unsafe { mi::mi_aligned_alloc(alignment, size) }
}

/// Legacy `memalign`.
#[no_mangle]
pub extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    // SAFETY: mi_memalign validates its arguments.
    unsafe { mi_memalign(alignment, size) }
}

/// Legacy `valloc`.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: mi_valloc has no preconditions.
    unsafe { mi_valloc(size) }
}

/// Legacy `pvalloc`.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    // SAFETY: mi_pvalloc has no preconditions.
    unsafe { mi_pvalloc(size) }
}

/// glibc `malloc_usable_size`.
///
/// # Safety
/// `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: the caller's contract is mi_usable_size's (NULL gives 0).
    unsafe { mi::mi_usable_size(p) }
}
