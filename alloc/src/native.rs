//! The native platform: `mmap`/`munmap`/`madvise` through `libc`, `core`
//! atomics, and a futex lock. This and `global.rs` are the only places that
//! call `libc`.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::geometry::Geometry;
use crate::platform::{AtomicUsizeOps, MutexOps, Os, OsError, Platform, Sched};

/// The production platform: real memory, real threads, 2 MiB segments.
pub struct Native;

impl Platform for Native {
    type Os = NativeOs;
    type Sched = NativeSched;
    const GEOMETRY: Geometry = Geometry::PRODUCTION;
    const PANIC_ABORTS: bool = true;
}

/// `mmap`-backed OS layer. Zero-sized: the kernel keeps the books.
#[derive(Default)]
pub struct NativeOs;

/// x86_64 and aarch64 Linux user space: 47 bits.
const USER_ADDRESS_END: usize = 1 << 47;

/// Aligned mappings are first tried at hints in [2 TiB, 32 TiB): far from
/// the kernel's default placement near the top of the address space, so the
/// hinted range is almost always free and the mapping comes aligned in one
/// `mmap`.
const ALIGNED_HINT_START: usize = 2 << 40;
const ALIGNED_HINT_END: usize = 32 << 40;
static ALIGNED_HINT: AtomicUsize = AtomicUsize::new(ALIGNED_HINT_START);
const PAGE_SIZE: usize = 4096;

fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

impl NativeOs {
    pub const fn new() -> Self {
        NativeOs
    }

    fn mmap(size: usize) -> Result<NonNull<u8>, OsError> {
        Self::mmap_at(core::ptr::null_mut(), size)
    }

    /// `mmap` with an address hint (never `MAP_FIXED`: an occupied hint
    /// just yields another address).
    fn mmap_at(hint: *mut u8, size: usize) -> Result<NonNull<u8>, OsError> {
        // SAFETY: an anonymous private mapping without MAP_FIXED touches no
        // existing memory, whatever the hint.
        let p = unsafe {
            libc::mmap(
                hint.cast(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(OsError {
                errno: errno(),
                size,
                injected: false,
            });
        }
        NonNull::new(p.cast()).ok_or(OsError {
            errno: libc::ENOMEM,
            size,
            injected: false,
        })
    }

    /// Unmaps a range this layer mapped; failures are impossible for a
    /// valid range, and there is nobody to report them to.
    ///
    /// # Safety
    /// The range was mapped by `mmap` above and is no longer used.
    unsafe fn munmap(ptr: *mut u8, size: usize) {
        if size != 0 {
            // SAFETY: per the caller's contract.
            unsafe { libc::munmap(ptr.cast(), size) };
        }
    }

    /// `mremap(src, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED,
    /// dst)`: moves the pages of `[src, src + old_size)` over `dst`
    /// (replacing whatever was mapped there); false if the kernel refused.
    ///
    /// # Safety
    /// `src`/`old_size` is a range of ours that nothing uses after a
    /// success, and `[dst, dst + new_size)` is ours to replace.
    unsafe fn mremap_fixed(src: *mut u8, old_size: usize, new_size: usize, dst: *mut u8) -> bool {
        // SAFETY: per the caller's contract.
        let r = unsafe {
            libc::mremap(
                src.cast(),
                old_size,
                new_size,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                dst.cast::<libc::c_void>(),
            )
        };
        r != libc::MAP_FAILED
    }
}

// SAFETY: `map` returns fresh anonymous mappings (zeroed, readable,
// writable, aligned by over-mapping and trimming), all below 2^47.
unsafe impl Os for NativeOs {
    #[inline]
    fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    fn address_range(&self) -> (usize, usize) {
        (0, USER_ADDRESS_END)
    }

    const FIXED_RANGE: Option<(usize, usize)> = Some((0, USER_ADDRESS_END));

    fn map(&self, size: usize, align: usize) -> Result<NonNull<u8>, OsError> {
        debug_assert!(size.is_multiple_of(PAGE_SIZE) && align.is_power_of_two());
        if align <= PAGE_SIZE {
            return Self::mmap(size);
        }
        // First try an aligned address hint in a region of our own: one
        // system call when the kernel honours it (it does while the region
        // is free). The hint moves on by the size, so threads do not ask
        // for the same range.
        let step = (size + align - 1) & !(align - 1);
        let hint = (ALIGNED_HINT.fetch_add(step, Ordering::Relaxed) + align - 1) & !(align - 1);
        if hint + size < ALIGNED_HINT_END {
            if let Ok(p) = Self::mmap_at(hint as *mut u8, size) {
                if (p.as_ptr() as usize).is_multiple_of(align) {
                    return Ok(p);
                }
                // SAFETY: our fresh mapping, not yet handed out.
                unsafe { Self::munmap(p.as_ptr(), size) };
            }
        } else {
            // Wrapped: start over (freed ranges are reused).
            ALIGNED_HINT.store(ALIGNED_HINT_START, Ordering::Relaxed);
        }
        // Over-map by `align` and trim both ends to get an aligned range.
        let over = size.checked_add(align).ok_or(OsError {
            errno: libc::ENOMEM,
            size,
            injected: false,
        })?;
        let raw = Self::mmap(over)?;
        let start = raw.as_ptr() as usize;
        let aligned = (start + align - 1) & !(align - 1);
        let head = aligned - start;
        let tail = over - head - size;
        // SAFETY: head and tail are the parts of our fresh mapping outside
        // the aligned range we keep; nothing uses them.
        unsafe {
            Self::munmap(raw.as_ptr(), head);
            Self::munmap((aligned + size) as *mut u8, tail);
        }
        // SAFETY: `aligned` lies inside the successful mapping, so non-null.
        Ok(unsafe { NonNull::new_unchecked(aligned as *mut u8) })
    }

    unsafe fn unmap(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: the caller passes one whole mapping made by `map`.
        unsafe { Self::munmap(ptr.as_ptr(), size) }
    }

    unsafe fn remap(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, OsError> {
        let fail = OsError {
            errno: libc::ENOMEM,
            size: new_size,
            injected: false,
        };
        // 1. Grow in place if the address space after the mapping is free.
        // SAFETY: the caller passes one whole mapping of ours; without
        // MREMAP_MAYMOVE it either grows in place or fails.
        let r = unsafe { libc::mremap(ptr.as_ptr().cast(), old_size, new_size, 0) };
        if r != libc::MAP_FAILED {
            return Ok(ptr);
        }
        // 2. Move the pages onto a fresh aligned reservation (no copy).
        let dst = self.map(new_size, align)?;
        // SAFETY: `dst` is our fresh reservation of `new_size` bytes, which
        // MREMAP_FIXED replaces with the old pages (zero beyond old_size);
        // the old range is gone afterwards, as the caller expects.
        if unsafe { Self::mremap_fixed(ptr.as_ptr(), old_size, new_size, dst.as_ptr()) } {
            return Ok(dst);
        }
        // 3. A mapping spliced together from pieces (see `large.rs`) spans
        //    several VMAs, which the kernel neither grows nor resizes while
        //    moving (EFAULT); since Linux 6.17 it does move them whole at
        //    their size: over the start of the reservation, whose rest
        //    stays fresh.
        // SAFETY: as for step 2, with the old size: the moved pages cover
        // the start of our reservation.
        if unsafe { Self::mremap_fixed(ptr.as_ptr(), old_size, old_size, dst.as_ptr()) } {
            return Ok(dst);
        }
        // SAFETY: our reservation, unused.
        unsafe { Self::munmap(dst.as_ptr(), new_size) };
        Err(fail)
    }

    unsafe fn split(&self, _ptr: NonNull<u8>, _size: usize, _at: usize) -> Result<(), OsError> {
        // The kernel unmaps and moves any page range: two mappings are two
        // ranges to us and need no call.
        Ok(())
    }

    unsafe fn splice(
        &self,
        src: NonNull<u8>,
        size: usize,
        dst: NonNull<u8>,
    ) -> Result<(), OsError> {
        // MREMAP_FIXED unmaps the pages at `dst` and moves the source's page
        // table entries there: no copy, no page fault later. The kernel
        // refuses (EFAULT) a source that spans several VMAs (before Linux
        // 6.17: one spliced together from pieces); nothing changes then.
        // SAFETY: per the contract `src`/`size` is one whole mapping of
        // ours, nothing uses it afterwards, and `[dst, dst + size)` is ours
        // to replace.
        if unsafe { Self::mremap_fixed(src.as_ptr(), size, size, dst.as_ptr()) } {
            return Ok(());
        }
        Err(OsError {
            errno: errno(),
            size,
            injected: false,
        })
    }

    unsafe fn commit(&self, _ptr: NonNull<u8>, _size: usize) -> Result<(), OsError> {
        // MADV_DONTNEED leaves the range mapped and zero-filled on next
        // touch: nothing to do.
        Ok(())
    }

    fn report_corruption(&self, what: &str, addr: usize) {
        fatal(what, addr)
    }

    fn entropy(&self) -> usize {
        let mut v: usize = 0;
        // SAFETY: getrandom writes at most `size_of::<usize>()` bytes into `v`.
        let n = unsafe {
            libc::getrandom(
                (&mut v as *mut usize).cast(),
                core::mem::size_of::<usize>(),
                0,
            )
        };
        if n != core::mem::size_of::<usize>() as isize {
            // No entropy source: mix the address-space layout instead.
            v = (&v as *const usize as usize).rotate_left(17)
                ^ (Self::mmap as fn(usize) -> _ as usize);
        }
        v
    }

    unsafe fn decommit(&self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: the caller guarantees the range is inside a live mapping
        // and unused; MADV_DONTNEED frees its pages (RSS drops now).
        unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_DONTNEED) };
    }

    /// Whole pages of a range of at least `ZERO_BY_PURGE_MIN` go back to
    /// the kernel, which hands out zero pages on the next touch; the
    /// partial pages at the ends are written. Writing a large range would
    /// fault in every page of it that is not resident (a reused mapping
    /// whose last user touched little of it) and clear every one that is.
    unsafe fn zero(&self, ptr: NonNull<u8>, size: usize) {
        let start = ptr.as_ptr() as usize;
        let end = start + size;
        let lo = (start + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let hi = end & !(PAGE_SIZE - 1);
        if hi > lo && hi - lo >= ZERO_BY_PURGE_MIN {
            // SAFETY: whole pages inside the caller's range, which is part
            // of one of our private anonymous mappings and used by no one
            // else: after MADV_DONTNEED they read as zero.
            let r = unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
            if r == 0 {
                // SAFETY: the partial pages at both ends, inside the range.
                unsafe {
                    core::ptr::write_bytes(ptr.as_ptr(), 0, lo - start);
                    core::ptr::write_bytes(hi as *mut u8, 0, end - hi);
                }
                return;
            }
        }
        // SAFETY: per the contract the range is ours and writable.
        unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size) }
    }
}

/// Below this many bytes of whole pages, `NativeOs::zero` writes the
/// zeros. `madvise` flushes the TLB of every CPU running the process (in a
/// VM an interrupt and an exit per vCPU), which writing a small range does
/// not. On mstress (1 in 8 allocations a calloc, reused large mappings of
/// 32 KiB..2 MiB, 11 interleaved runs, medians): writing everything
/// 0.469 s, this threshold at 256 KiB 0.400 s, at 1 MiB 0.447 s; at 64 KiB
/// the TLB flushes took 10 % of the samples and it gained nothing.
const ZERO_BY_PURGE_MIN: usize = 256 << 10;

/// `core` atomics and a futex lock.
pub struct NativeSched;

impl Sched for NativeSched {
    type AtomicUsize = AtomicUsize;
    type Mutex<T: Send> = FutexMutex<T>;

    #[inline(always)]
    fn spin_loop_hint() {
        core::hint::spin_loop();
    }
}

impl AtomicUsizeOps for AtomicUsize {
    const PLAIN_WORD: bool = true;
    #[inline(always)]
    fn new(v: usize) -> Self {
        AtomicUsize::new(v)
    }
    #[inline(always)]
    fn load(&self, order: Ordering) -> usize {
        AtomicUsize::load(self, order)
    }
    #[inline(always)]
    fn store(&self, v: usize, order: Ordering) {
        AtomicUsize::store(self, v, order)
    }
    #[inline(always)]
    fn swap(&self, v: usize, order: Ordering) -> usize {
        AtomicUsize::swap(self, v, order)
    }
    #[inline(always)]
    fn fetch_add(&self, v: usize, order: Ordering) -> usize {
        AtomicUsize::fetch_add(self, v, order)
    }
    #[inline(always)]
    fn fetch_sub(&self, v: usize, order: Ordering) -> usize {
        AtomicUsize::fetch_sub(self, v, order)
    }
    #[inline(always)]
    fn compare_exchange(
        &self,
        current: usize,
        new: usize,
        success: Ordering,
        failure: Ordering,
    ) -> Result<usize, usize> {
        AtomicUsize::compare_exchange(self, current, new, success, failure)
    }
}

/// Writes `hakmem: <what> <ptr>` to stderr and aborts. Never allocates.
#[cold]
#[inline(never)]
pub fn fatal(what: &str, ptr: usize) -> ! {
    let mut buf = [0u8; 256];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        for &b in s {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(b"hakmem: ");
    put(what.as_bytes());
    put(b" 0x");
    let mut digits = [0u8; 16];
    let mut d = 0;
    let mut v = ptr;
    loop {
        digits[d] = b"0123456789abcdef"[v & 15];
        d += 1;
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        put(&digits[d..d + 1]);
    }
    put(b"\n");
    // SAFETY: writing our own buffer to fd 2; abort has no preconditions.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::abort();
    }
}

/// A three-state futex lock (unlocked / locked / locked with waiters):
/// never allocates, constant-constructible, sleeps in the kernel instead of
/// spinning when contended (so four threads on two cores do not collapse),
/// and can be taken and released without a guard for `fork()` handlers.
pub struct FutexMutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

// SAFETY: the lock gives one thread at a time access to `value`.
unsafe impl<T: Send> Sync for FutexMutex<T> {}
// SAFETY: moving the lock moves the value.
unsafe impl<T: Send> Send for FutexMutex<T> {}

impl<T> FutexMutex<T> {
    pub const fn new_const(v: T) -> Self {
        FutexMutex {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(v),
        }
    }

    /// Takes the lock without a guard (for `fork()` handlers).
    #[inline]
    pub fn raw_lock(&self) {
        // ORDERING: Acquire pairs with the Release in `raw_unlock`, so the
        // previous holder's writes to `value` are visible.
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        // A short spin first: most critical sections here are tiny.
        for _ in 0..64 {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                // ORDERING: Acquire, as in `raw_lock`.
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        // ORDERING: Acquire, as in `raw_lock`; CONTENDED tells the holder
        // to wake us.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // SAFETY: FUTEX_WAIT on our own aligned u32; it returns at once
            // if the value is no longer CONTENDED.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.state.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    CONTENDED,
                    core::ptr::null::<libc::timespec>(),
                );
            }
        }
    }

    /// Releases the lock taken by `raw_lock`.
    ///
    /// # Safety
    /// The calling thread holds the lock (or, in a `fork()` child, the
    /// parent's holder was the forking thread).
    #[inline]
    pub unsafe fn raw_unlock(&self) {
        // ORDERING: Release pairs with the Acquire in `raw_lock`.
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            // SAFETY: FUTEX_WAKE on our own aligned u32.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.state.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1,
                );
            }
        }
    }
}

impl<T: Send> MutexOps<T> for FutexMutex<T> {
    fn new(v: T) -> Self {
        Self::new_const(v)
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        struct Unlock<'a, T>(&'a FutexMutex<T>);
        impl<T> Drop for Unlock<'_, T> {
            fn drop(&mut self) {
                // SAFETY: constructed right after taking the lock below.
                unsafe { self.0.raw_unlock() }
            }
        }
        self.raw_lock();
        let _unlock = Unlock(self);
        // SAFETY: we hold the lock, so this is the only access to `value`.
        f(unsafe { &mut *self.value.get() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_returns_aligned_zeroed_memory() {
        let os = NativeOs;
        let p = os.map(3 * PAGE_SIZE, 1 << 21).unwrap();
        assert_eq!(p.as_ptr() as usize % (1 << 21), 0);
        // SAFETY: the mapping is 3 pages long and ours.
        unsafe {
            assert_eq!(*p.as_ptr().add(3 * PAGE_SIZE - 1), 0);
            *p.as_ptr() = 7;
            os.decommit(p, PAGE_SIZE);
            assert_eq!(*p.as_ptr(), 0, "MADV_DONTNEED gives zero pages back");
            os.unmap(p, 3 * PAGE_SIZE);
        }
    }

    #[test]
    fn zero_clears_exactly_its_range_by_pages_or_by_writes() {
        let os = NativeOs;
        let len = 2 * ZERO_BY_PURGE_MIN;
        let p = os.map(len, PAGE_SIZE).unwrap();
        // Unaligned ranges: one with whole pages past the threshold
        // (purged), one below it (written).
        for (start, size) in [
            (100, ZERO_BY_PURGE_MIN + 3 * PAGE_SIZE),
            (5000, PAGE_SIZE * 3 + 7),
        ] {
            // SAFETY: the mapping is `len` bytes and ours; both ranges lie
            // inside it.
            let all = unsafe {
                core::ptr::write_bytes(p.as_ptr(), 0xab, len);
                os.zero(NonNull::new_unchecked(p.as_ptr().add(start)), size);
                core::slice::from_raw_parts(p.as_ptr(), len)
            };
            let (before, rest) = all.split_at(start);
            let (range, after) = rest.split_at(size);
            assert!(
                before.iter().all(|&b| b == 0xab),
                "bytes before the range kept"
            );
            assert!(range.iter().all(|&b| b == 0), "the range reads zero");
            assert!(
                after.iter().all(|&b| b == 0xab),
                "bytes after the range kept"
            );
        }
        // SAFETY: ours, unused from here on.
        unsafe { os.unmap(p, len) };
    }

    #[test]
    fn map_reports_exhaustion_as_a_value() {
        let err = NativeOs.map(1 << 62, PAGE_SIZE).unwrap_err();
        assert_eq!(err.errno, libc::ENOMEM);
        assert!(!err.injected);
    }

    #[test]
    fn futex_mutex_serialises_four_threads() {
        static M: FutexMutex<usize> = FutexMutex::new_const(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        M.with(|v| *v += 1);
                    }
                });
            }
        });
        assert_eq!(M.with(|v| *v), 80_000);
    }
}
