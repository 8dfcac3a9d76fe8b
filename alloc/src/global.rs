//! The native global allocator: one `static` [`Allocator<Native>`], a
//! thread-local pointer to each thread's heap, a pthread-key destructor
//! that flushes and abandons the heap at thread exit, a locked fallback
//! heap for threads without one, and `fork()` handlers around every lock.
//!
//! The thread-local is a `const`-initialised `Cell` without `Drop`, so an
//! access is a direct `%fs`-relative load in an executable. States of the
//! pointer: null (no heap yet), `BUSY` (this thread is creating its heap:
//! a recursive call, e.g. from the loader or `pthread_setspecific`, goes to
//! the fallback heap), `DEAD` (the thread's heap was released at exit:
//! later calls from other destructors go to the fallback heap), or a heap.
//!
//! Nothing here allocates through the allocator: heap records, the
//! registry and all metadata come from `mmap`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::allocator::{Allocator, HeapList};
use crate::config::Config;
use crate::error::{AllocError, FreeError, ReallocError};
use crate::heap::HeapData;
use crate::large::LargeState;
use crate::native::{FutexMutex, Native, NativeOs};
use crate::platform::MutexOps;
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

const BUSY: usize = 1;
const DEAD: usize = 2;

thread_local! {
    static HEAP: Cell<*mut NativeHeap> = const { Cell::new(ptr::null_mut()) };
}

/// The fallback heap, used under its lock by threads without a heap.
static FALLBACK: FutexMutex<usize> = FutexMutex::new_const(0);

/// 0: nothing registered; 1: registering; 2: pthread key and atfork
/// handlers registered (the key is in `EXIT_KEY`).
static SETUP: AtomicU32 = AtomicU32::new(0);
static EXIT_KEY: AtomicU32 = AtomicU32::new(0);

/// This thread's heap, if it has a usable one.
#[inline(always)]
pub fn current_heap() -> Option<&'static mut NativeHeap> {
    let h = HEAP.with(Cell::get);
    if h as usize > DEAD {
        // SAFETY: a heap pointer in our thread-local is this thread's live
        // heap, used only by this thread.
        Some(unsafe { &mut *h })
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

#[cold]
#[inline(never)]
fn with_heap_slow<R>(f: impl FnOnce(&mut NativeHeap) -> R) -> Option<R> {
    let state = HEAP.with(Cell::get) as usize;
    if state == 0 {
        HEAP.with(|c| c.set(BUSY as *mut NativeHeap));
        match GLOBAL.create_heap() {
            Ok(h) => {
                register_exit_hook(h.as_ptr());
                HEAP.with(|c| c.set(h.as_ptr()));
                // SAFETY: just created for this thread, used only by it.
                return Some(f(unsafe { &mut *h.as_ptr() }));
            }
            Err(_) => HEAP.with(|c| c.set(ptr::null_mut())),
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

/// Frees `p` from this thread: through its heap, or, for a thread without
/// one (it only frees, or has exited), straight onto the remote queue.
#[inline(always)]
pub fn free_here(p: NonNull<u8>) -> Result<(), FreeError> {
    match current_heap() {
        Some(h) => h.free(p),
        None => GLOBAL.free_unowned(p),
    }
}

fn register_exit_hook(heap: *mut NativeHeap) {
    if SETUP.load(Ordering::Acquire) != 2 {
        setup_once();
    }
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

#[cold]
fn setup_once() {
    // ORDERING: Acquire/Release pair with the store of 2 below, so a
    // thread that sees 2 also sees the key.
    if SETUP
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Another thread is registering; it will be done in microseconds.
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
    // ORDERING: Release pairs with the Acquire loads above.
    SETUP.store(if ok { 2 } else { 3 }, Ordering::Release);
}

/// Thread exit: flush the caches and abandon the slabs.
unsafe extern "C" fn exit_hook(heap: *mut libc::c_void) {
    HEAP.with(|c| c.set(DEAD as *mut NativeHeap));
    if let Some(h) = NonNull::new(heap.cast::<NativeHeap>()) {
        // SAFETY: the value registered for this thread: its live heap, not
        // used after this point (the thread-local now says DEAD).
        unsafe { GLOBAL.release_heap(h) };
    }
}

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
        ptr_or_null(with_heap(|h| h.alloc_pow2(layout.size(), layout.align())))
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ptr_or_null(with_heap(|h| h.alloc_zeroed(layout.size(), layout.align())))
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        let Some(p) = NonNull::new(p) else { return };
        if let Err(e) = free_here(p) {
            misuse("free", e);
        }
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
