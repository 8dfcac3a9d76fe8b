//! The native global allocator: one `static` [`Allocator<Native>`], a
//! thread-local pointer to each thread's heap, a pthread-key destructor
//! that flushes and abandons the heap at thread exit, a locked fallback
//! heap for threads without one, and `fork()` handlers around every lock.
//! [`HakMem`] is its face: the `#[global_allocator]` for Rust programs and
//! the functions `libhakmem.so` (crate `hakmem-preload`) builds the C ABI
//! on.
//!
//! The thread-local slot (see `slot`) holds: `NONE` (no heap yet), `BUSY`
//! (this thread is creating its heap: a recursive call, e.g. from
//! `pthread_atfork` or `pthread_setspecific`, goes to the fallback heap),
//! `DEAD` (the thread's heap was released at exit: later calls from other
//! destructors go to the fallback heap or the remote queues), or a heap.
//!
//! Nothing here allocates through the allocator: heap records, the
//! registry and all metadata come from `mmap`, and the messages of
//! [`fatal`] are written from a stack buffer.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::allocator::{Allocator, HeapList};
use crate::config::Config;
use crate::error::{AllocError, FreeError, ReallocError};
use crate::heap::HeapData;
use crate::large::LargeState;
use crate::native::{FutexMutex, Native, NativeOs};
use crate::platform::{MutexOps, Platform};
use crate::pool::PoolState;
use crate::registry::Registry;
use crate::segment::LayoutChecks;
use crate::stats::GlobalStats;

impl Allocator<Native> {
    /// A constant-constructed native allocator (for a `static`).
    pub const fn new_native(config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = LayoutChecks::<Native>::OK;
        Allocator {
            os: NativeOs::new(),
            config,
            registry: Registry::new(),
            key: core::sync::atomic::AtomicUsize::new(0),
            pool: FutexMutex::new_const(PoolState::new()),
            large: FutexMutex::new_const(LargeState::new()),
            heaps: FutexMutex::new_const(HeapList::new()),
            stats: GlobalStats::new(),
        }
    }

    /// Takes every allocator lock (a `fork()` prepare handler).
    pub fn lock_all(&self) {
        self.heaps.raw_lock();
        self.pool.raw_lock();
        self.large.raw_lock();
    }

    /// Releases what [`lock_all`](Self::lock_all) took.
    ///
    /// # Safety
    /// The calling thread took the locks with `lock_all` (in a `fork()`
    /// child: the forking thread did, before the fork).
    pub unsafe fn unlock_all(&self) {
        // SAFETY: per the contract.
        unsafe {
            self.large.raw_unlock();
            self.pool.raw_unlock();
            self.heaps.raw_unlock();
        }
    }
}

/// The process-wide native allocator.
pub static GLOBAL: Allocator<Native> = Allocator::new_native(Config::DEFAULT);

type NativeHeap = HeapData<Native>;

/// Slot states below a heap address (`current_heap` tests `> DEAD`).
const NONE: usize = 0;
const BUSY: usize = 1;
const DEAD: usize = 2;

/// The thread-local heap pointer, read on every malloc and free.
///
/// On x86_64 Linux it is an 8-byte `.tbss` variable defined below in
/// assembly and accessed with the initial-exec model (a `mov` of its
/// offset from the GOT, then a `%fs`-relative `mov`): no `__tls_get_addr`
/// call even inside a shared library, where rustc's `thread_local!` uses
/// the general-dynamic model. The price is static TLS: a library holding
/// this crate takes 8 bytes of glibc's surplus static TLS if it is
/// `dlopen`ed; under `LD_PRELOAD` or in an executable the slot is part of
/// the initial TLS block. The symbol is hidden, so every executable or
/// library that links this crate has its own slot, as it has its own
/// `GLOBAL`. Elsewhere: a `const`-initialised `thread_local!`.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod slot {
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __hakmem_heap_slot",
        ".hidden __hakmem_heap_slot",
        ".type __hakmem_heap_slot,@object",
        ".size __hakmem_heap_slot,8",
        "__hakmem_heap_slot:",
        ".zero 8",
        ".popsection",
    );

    /// This thread's slot value (`.tbss` starts zeroed: `NONE`).
    #[inline(always)]
    pub(super) fn get() -> usize {
        let v: usize;
        // SAFETY: reads this thread's 8-byte slot at its static TLS offset
        // (from the GOT entry the linker fills); touches nothing else.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr [rip + __hakmem_heap_slot@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
        v
    }

    #[inline(always)]
    pub(super) fn set(v: usize) {
        // SAFETY: writes this thread's slot, as `get` reads it.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + __hakmem_heap_slot@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod slot {
    use core::cell::Cell;

    std::thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(0) };
    }

    #[inline(always)]
    pub(super) fn get() -> usize {
        SLOT.with(Cell::get)
    }

    #[inline(always)]
    pub(super) fn set(v: usize) {
        SLOT.with(|c| c.set(v))
    }
}

/// The fallback heap, used under its lock by threads without a heap.
static FALLBACK: FutexMutex<usize> = FutexMutex::new_const(0);

/// 0: nothing registered; 1: registering; 2: pthread key and atfork
/// handlers registered (the key is in `EXIT_KEY`); 3: the key could not
/// be created (heaps are then never released at thread exit).
static SETUP: AtomicU32 = AtomicU32::new(0);
static EXIT_KEY: AtomicU32 = AtomicU32::new(0);

/// This thread's heap, if it has a usable one.
#[inline(always)]
pub fn current_heap() -> Option<&'static mut NativeHeap> {
    let h = slot::get();
    if h > DEAD {
        // SAFETY: a heap address in our slot is this thread's live heap,
        // used only by this thread, and only by one call at a time (the
        // allocator never calls back into itself).
        Some(unsafe { &mut *(h as *mut NativeHeap) })
    } else {
        None
    }
}

/// Runs `f` on this thread's heap, creating it on first use, or on the
/// locked fallback heap when this thread cannot have one right now. `None`
/// only when not even a heap record could be mapped (out of memory).
#[inline(always)]
pub fn with_heap<R>(f: impl FnOnce(&mut NativeHeap) -> R) -> Option<R> {
    match current_heap() {
        Some(h) => Some(f(h)),
        None => with_heap_slow(f),
    }
}

/// A thread's first call: registers the hooks (once per process), creates
/// its heap and registers it for release at thread exit. Anything those
/// steps allocate through the C ABI (glibc's atfork list, a second-level
/// pthread-specific array) finds the slot `BUSY` and is served by the
/// fallback heap: nothing recurses into a half-made heap.
#[cold]
#[inline(never)]
fn with_heap_slow<R>(f: impl FnOnce(&mut NativeHeap) -> R) -> Option<R> {
    if slot::get() == NONE {
        slot::set(BUSY);
        setup_once();
        match GLOBAL.create_heap() {
            Ok(h) => {
                register_exit_hook(h.as_ptr());
                slot::set(h.as_ptr() as usize);
                // SAFETY: just created for this thread, used only by it.
                return Some(f(unsafe { &mut *h.as_ptr() }));
            }
            Err(_) => slot::set(NONE),
        }
    }
    with_fallback(f)
}

/// Runs `f` on the shared fallback heap, under its lock.
pub fn with_fallback<R>(f: impl FnOnce(&mut NativeHeap) -> R) -> Option<R> {
    FALLBACK.with(|slot| {
        if *slot == 0 {
            *slot = GLOBAL.create_heap().ok()?.as_ptr() as usize;
        }
        // SAFETY: the fallback heap lives forever and the lock we hold is
        // its only way in.
        Some(f(unsafe { &mut *(*slot as *mut NativeHeap) }))
    })
}

/// `extern "C"`: cannot unwind, so `HakMem::alloc_raw` tail-calls it.
#[cold]
#[inline(never)]
extern "C" fn alloc_raw_slow(size: usize, align: usize) -> *mut u8 {
    with_heap_slow(|h| h.alloc_raw(size, align)).unwrap_or(ptr::null_mut())
}

/// Frees `p` from this thread: through its heap (created on a thread's
/// first call, so that a thread that only frees counts its remote frees
/// in its own heap rather than in a shared atomic), or, while it has none
/// (being set up, or exited), straight onto the remote queue.
#[inline(always)]
pub fn free_here(p: NonNull<u8>) -> Result<(), FreeError> {
    match current_heap() {
        Some(h) => h.free(p),
        None => free_slow(p),
    }
}

/// Frees `p` from this thread or, if it is not a live block of hakmem,
/// reports the misuse as found by `op` and aborts.
#[inline(always)]
pub fn free_or_abort(p: NonNull<u8>, op: &str) {
    free_or_abort_ptr(p.as_ptr(), op)
}

/// [`free_or_abort`] of a pointer that may be null (nothing to do then).
/// The fast path returns no `Result` and tests no null: every refusal (a
/// null, no heap yet, a large block, a misuse) goes to one cold call that
/// settles it, so the error never costs the common case a stack slot.
#[inline(always)]
pub fn free_or_abort_ptr(p: *mut u8, op: &str) {
    let addr = p as usize;
    if let Some(h) = current_heap() {
        // The registry byte from the static allocator's table, not through
        // the heap: its load does not wait for the thread-local chain
        // (GOT, %fs, heap) that finding the heap is. Address 0's granule
        // never holds a segment, so a null goes to the cold call.
        let (byte, granule) = GLOBAL
            .registry
            .granule_after_init::<NativeOs>(addr, Native::GEOMETRY.segment_shift);
        if h.free_fast_byte(addr, granule, byte) {
            return;
        }
    }
    free_or_abort_cold(p, op)
}

/// `extern "C"`: cannot unwind (a panic here aborts, as it would in the C
/// `free` anyway), so its callers need no unwind frame and tail-call it.
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)] // called from Rust only
extern "C" fn free_or_abort_cold(p: *mut u8, op: &str) {
    let Some(p) = NonNull::new(p) else { return };
    if let Err(e) = free_here(p) {
        misuse(op, e);
    }
}

/// `size` bytes aligned to `align` (a power of two) for the C ABI: null
/// with `errno = ENOMEM` on failure. The slow paths set `errno`
/// themselves, so the fast path ends in tail calls and needs no frame.
#[inline(always)]
pub fn alloc_raw_errno(size: usize, align: usize) -> *mut u8 {
    match current_heap() {
        Some(h) => h.alloc_raw_or(size, align, |h| alloc_miss_errno(size, align, h)),
        None => alloc_raw_slow_errno(size, align),
    }
}

#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)] // called from Rust only
extern "C" fn alloc_miss_errno(size: usize, align: usize, h: &mut NativeHeap) -> *mut u8 {
    enomem_if_null(h.alloc_raw_slow(size, align))
}

#[cold]
#[inline(never)]
extern "C" fn alloc_raw_slow_errno(size: usize, align: usize) -> *mut u8 {
    enomem_if_null(alloc_raw_slow(size, align))
}

fn enomem_if_null(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        // SAFETY: `__errno_location` returns this thread's errno slot.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
    }
    p
}

#[cold]
#[inline(never)]
fn free_slow(p: NonNull<u8>) -> Result<(), FreeError> {
    if slot::get() == NONE {
        if let Some(r) = with_heap_slow(|h| h.free(p)) {
            return r;
        }
    }
    GLOBAL.free_unowned(p)
}

fn register_exit_hook(heap: *mut NativeHeap) {
    // ORDERING: Acquire pairs with the Release store of 2 in `setup_once`:
    // seeing 2 makes the key visible.
    if SETUP.load(Ordering::Acquire) == 2 {
        // SAFETY: a key we created; the value is this thread's heap, given
        // back to `exit_hook` at thread exit.
        unsafe {
            libc::pthread_setspecific(
                EXIT_KEY.load(Ordering::Relaxed),
                heap as *const libc::c_void,
            )
        };
    }
}

/// Creates the exit key and registers the fork handlers, once per process,
/// before the first heap exists (so no allocator lock can be held across a
/// `fork()` without the handlers in place).
fn setup_once() {
    // ORDERING: Acquire pairs with the Release store below.
    if SETUP.load(Ordering::Acquire) >= 2 {
        return;
    }
    // ORDERING: Acquire/Release pair with the store of 2 or 3 below, so a
    // thread that sees it also sees the key.
    if SETUP
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Another thread is registering; it will be done in microseconds.
        // (The registering thread itself never comes back here: its slot
        // is BUSY, so its recursive calls go to the fallback heap.)
        // ORDERING: Acquire, as above.
        while SETUP.load(Ordering::Acquire) == 1 {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
        return;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `exit_hook` has the destructor signature; the key is ours.
    let ok = unsafe { libc::pthread_key_create(&mut key, Some(exit_hook)) } == 0;
    // SAFETY: the handlers only take and release our own locks.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    EXIT_KEY.store(key, Ordering::Relaxed);
    // ORDERING: Release pairs with the Acquire loads above and in
    // `register_exit_hook`.
    SETUP.store(if ok { 2 } else { 3 }, Ordering::Release);
}

/// Thread exit (a pthread key destructor, so it runs after the thread's
/// C++ and Rust thread-local destructors, which may still free): flush
/// the caches and abandon the slabs. Later calls from this thread (other
/// key destructors) find the slot `DEAD` and use the fallback heap or the
/// remote queues.
unsafe extern "C" fn exit_hook(heap: *mut libc::c_void) {
    slot::set(DEAD);
    if let Some(h) = NonNull::new(heap.cast::<NativeHeap>()) {
        // SAFETY: the value registered for this thread: its live heap, not
        // used after this point (the slot now says DEAD).
        unsafe { GLOBAL.release_heap(h) };
    }
}

/// `fork()` prepare: takes every lock, in the one order all paths use
/// (fallback → heaps → pool → large), so the child starts with none held
/// by a thread it does not have.
unsafe extern "C" fn fork_prepare() {
    FALLBACK.raw_lock();
    GLOBAL.lock_all();
}

unsafe extern "C" fn fork_parent() {
    // SAFETY: taken by `fork_prepare` on this thread.
    unsafe {
        GLOBAL.unlock_all();
        FALLBACK.raw_unlock();
    }
}

unsafe extern "C" fn fork_child() {
    // SAFETY: the forking thread took them in `fork_prepare`; in the child
    // it is the only thread.
    unsafe {
        GLOBAL.unlock_all();
        FALLBACK.raw_unlock();
    }
}

pub use crate::native::fatal;

/// Reports a misuse found by `free`/`realloc`/`usable_size` and aborts:
/// `hakmem: <op>(): <what> <ptr>`.
#[cold]
#[inline(never)]
pub fn misuse(op: &str, e: FreeError) -> ! {
    let mut msg = [0u8; 128];
    let mut n = 0;
    for &b in op
        .as_bytes()
        .iter()
        .chain(b"(): ")
        .chain(e.what().as_bytes())
    {
        if n < msg.len() {
            msg[n] = b;
            n += 1;
        }
    }
    fatal(
        core::str::from_utf8(&msg[..n]).unwrap_or("free(): misuse"),
        e.ptr(),
    )
}

/// The `#[global_allocator]` for Rust programs:
///
/// ```ignore
/// #[global_allocator]
/// static A: hakmem::HakMem = hakmem::HakMem;
/// ```
pub struct HakMem;

impl HakMem {
    /// The process-wide allocator behind `HakMem` (stats, trim, check).
    pub fn allocator() -> &'static Allocator<Native> {
        &GLOBAL
    }

    /// Runs `f` on the calling thread's heap (created on first use, with
    /// the exit and fork hooks), or on the locked fallback heap while the
    /// thread cannot have one. `None`: out of memory for a heap record.
    #[inline(always)]
    pub fn with_heap<R>(f: impl FnOnce(&mut HeapData<Native>) -> R) -> Option<R> {
        with_heap(f)
    }

    /// `size` bytes aligned to `align` (a power of two) from the calling
    /// thread's heap, null on failure: `malloc`'s fast path, with the
    /// heap-less cases kept off it.
    #[inline(always)]
    pub fn alloc_raw(size: usize, align: usize) -> *mut u8 {
        match current_heap() {
            Some(h) => h.alloc_raw(size, align),
            None => alloc_raw_slow(size, align),
        }
    }

    /// Frees a block from the calling thread, validated as by
    /// [`HeapData::free`] (nothing changes on an error).
    #[inline(always)]
    pub fn free(p: NonNull<u8>) -> Result<(), FreeError> {
        free_here(p)
    }

    /// Sets up the calling thread's heap and the process's exit and fork
    /// hooks now rather than at the first allocation (for a library
    /// constructor, which runs before any other thread exists).
    pub fn init() {
        with_heap(|_| ());
    }

    /// Gives back to the OS what can be given: flushes the calling
    /// thread's caches, then [`Allocator::trim`] (which retires the heaps
    /// parked by exited threads). Blocks cached by other live threads stay
    /// where they are.
    pub fn trim() {
        if let Some(h) = current_heap() {
            h.flush();
        }
        GLOBAL.trim();
    }

    /// Frees a block from the calling thread; a pointer that is not a live
    /// block is reported as found by `op` (`free`, `realloc`, ...) and the
    /// process aborts.
    #[inline(always)]
    pub fn free_or_abort(p: NonNull<u8>, op: &str) {
        free_or_abort(p, op)
    }

    /// [`free_or_abort`](Self::free_or_abort) of a pointer that may be
    /// null (the C `free`: nothing to do then).
    #[inline(always)]
    pub fn free_or_abort_ptr(p: *mut u8, op: &str) {
        free_or_abort_ptr(p, op)
    }

    /// [`alloc_raw`](Self::alloc_raw) for the C ABI: null with
    /// `errno = ENOMEM` on failure.
    #[inline(always)]
    pub fn alloc_raw_errno(size: usize, align: usize) -> *mut u8 {
        alloc_raw_errno(size, align)
    }

    /// Reports a misuse found by `op` (`free`, `realloc`, ...) on stderr as
    /// `hakmem: <op>(): <what> 0x<ptr>` and aborts. Never allocates.
    #[cold]
    pub fn misuse(op: &str, e: FreeError) -> ! {
        misuse(op, e)
    }
}

#[inline(always)]
fn ptr_or_null(r: Option<Result<NonNull<u8>, AllocError>>) -> *mut u8 {
    match r {
        Some(Ok(p)) => p.as_ptr(),
        _ => ptr::null_mut(),
    }
}

// SAFETY: every block handed out is `layout.size()` bytes (at least)
// aligned to `layout.align()`, from memory no other live block overlaps
// (the allocator's I1/I7); dealloc/realloc accept exactly what alloc gave.
unsafe impl GlobalAlloc for HakMem {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HakMem::alloc_raw(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ptr_or_null(with_heap(|h| h.alloc_zeroed(layout.size(), layout.align())))
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        let Some(p) = NonNull::new(p) else { return };
        free_or_abort(p, "free");
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(old) = NonNull::new(p) else {
            return ptr_or_null(with_heap(|h| h.alloc_pow2(new_size, layout.align())));
        };
        match with_heap(|h| h.realloc(old, new_size, layout.align())) {
            Some(Ok(q)) => q.as_ptr(),
            Some(Err(ReallocError::Alloc(_))) | None => ptr::null_mut(),
            Some(Err(ReallocError::Free(e))) => misuse("realloc", e),
        }
    }
}
