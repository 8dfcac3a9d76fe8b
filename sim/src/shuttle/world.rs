//! What every scenario runs on: a fresh allocator over [`ShuttleTiny`], its
//! heaps wrapped so that each block is filled with a pattern when it is
//! handed out and verified when it is freed, a model of the live blocks
//! (overlap is checked on every allocation), and the checks at quiescence.
//!
//! Failures are panics whose message starts with the violated invariant in
//! brackets (`[I3 SLAB-USED] ...`, `[I7 USER-CONTENTS] ...`): the
//! exploration harness files the failing schedule under that symptom.
//!
//! The model and the seed counter are plain `std` state, not shuttle
//! primitives: they are bookkeeping of the test, not part of what is
//! explored, and shuttle runs every task on the test's one OS thread, so a
//! `std` mutex that is never held across a shuttle call cannot block.

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;

use hakmem::{AllocError, Allocator, Config, Heap, Os, Platform, ReallocError, Violation, Zoo};

use super::platform::ShuttleTiny;
use crate::model;
use crate::sim_os::{SimOs, SimOsConfig};

/// A live block as a scenario holds it: address, requested size, pattern seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blk {
    pub ptr: usize,
    pub size: usize,
    pub seed: u8,
}

/// The allocator configuration of every shuttle world: the tiny knobs
/// (caches of 2..8 blocks, a drain every 16 frees, one cached segment) with
/// `zoo` switched on.
pub fn world_config(zoo: Zoo) -> Config {
    Config {
        zoo,
        ..Config::TINY
    }
}

/// Bytes of address space each world's `SimOs` reserves.
const ARENA_SIZE: usize = 16 << 20;

/// One execution's allocator and model.
pub struct World {
    alloc: ManuallyDrop<Allocator<ShuttleTiny>>,
    arena: (usize, usize),
    next_seed: AtomicU32,
    /// Live blocks by address: size and seed.
    live: Mutex<BTreeMap<usize, (usize, u8)>>,
}

impl World {
    /// A fresh allocator (inside a shuttle execution: its locks are shuttle's).
    pub fn new(zoo: Zoo) -> World {
        World::with_config(world_config(zoo))
    }

    /// A fresh allocator configured by `config` (a variation of
    /// [`world_config`]).
    pub fn with_config(config: Config) -> World {
        let os = SimOs::new(SimOsConfig {
            arena_size: ARENA_SIZE,
            ..SimOsConfig::default()
        });
        let arena = (os.base(), os.config().arena_size);
        World {
            alloc: ManuallyDrop::new(Allocator::new(os, config)),
            arena,
            next_seed: AtomicU32::new(1),
            live: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn allocator(&self) -> &Allocator<ShuttleTiny> {
        &self.alloc
    }

    /// A heap for the calling shuttle thread.
    pub fn heap(&self) -> ThreadHeap<'_> {
        self.try_heap()
            .unwrap_or_else(|e| fail("I7 SPURIOUS-ERROR", format!("heap(): {e}")))
    }

    /// A heap, or the error (only an OS refusal is legitimate).
    pub fn try_heap(&self) -> Result<ThreadHeap<'_>, AllocError> {
        let heap = self.alloc.heap()?;
        Ok(ThreadHeap {
            world: self,
            heap: ManuallyDrop::new(heap),
        })
    }

    /// `addr` as an offset into the arena, so messages read the same in
    /// every run and replay.
    pub fn rel(&self, addr: usize) -> String {
        match addr.checked_sub(self.arena.0) {
            Some(off) if off < self.arena.1 => format!("@+{off:#x}"),
            _ => format!("{addr:#x}"),
        }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, (usize, u8)>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a fresh block, checking it overlaps no live one, and fills it.
    fn accept(&self, ptr: usize, size: usize, seed: u8) -> Blk {
        {
            let mut live = self.model();
            let end = ptr + size.max(1);
            if let Some((&start, &(len, _))) = live.range(..end).next_back() {
                if start + len.max(1) > ptr {
                    fail(
                        "I7 USER-OVERLAP",
                        format!(
                            "new block {} (+{size}) overlaps live {} (+{len})",
                            self.rel(ptr),
                            self.rel(start)
                        ),
                    );
                }
            }
            live.insert(ptr, (size, seed));
        }
        // SAFETY: a fresh live block of at least `size` bytes, ours.
        unsafe { fill(ptr, size, seed) };
        Blk { ptr, size, seed }
    }

    /// Verifies the first `len` bytes of a live block hold its pattern.
    fn verify(&self, b: &Blk, len: usize, when: &str) {
        // SAFETY: `b` is live (the caller holds it), at least `len` bytes.
        if let Some(at) = unsafe { first_mismatch(b.ptr, len, b.seed) } {
            fail(
                "I7 USER-CONTENTS",
                format!(
                    "{when}: live block {} (+{}) changed at byte {at}",
                    self.rel(b.ptr),
                    b.size
                ),
            );
        }
    }

    fn forget(&self, b: &Blk) {
        self.model().remove(&b.ptr);
    }

    /// The full checker at quiescence, with the blocks the scenario still
    /// holds, and their contents.
    ///
    /// Call only when every other shuttle thread has been joined and no heap
    /// is inside a call (check_live's contract).
    pub fn check(&self, live: &[Blk]) {
        // SAFETY: quiescence, per this function's contract.
        let r = unsafe { self.alloc.check_live(live.iter().map(|b| b.ptr)) };
        if let Err(v) = r {
            fail_violation(self, v);
        }
        for b in live {
            self.verify(b, b.size, "at quiescence");
        }
        let held = self.model().len();
        if held != live.len() {
            fail(
                "I7 MODEL",
                format!(
                    "the scenario holds {} blocks, the model {held}: a block was dropped without a free",
                    live.len()
                ),
            );
        }
    }

    /// The end of every scenario (all threads joined): checks, frees what is
    /// left (remotely, from a fresh heap), exits it, trims, and checks that
    /// the books balance and only metadata stays mapped.
    pub fn finish(self, live: Vec<Blk>) {
        self.check(&live);
        {
            let mut h = self.heap();
            for b in live {
                h.free(b);
            }
            h.exit();
        }
        self.check(&[]);
        self.alloc.trim();
        // SAFETY: quiescent: every thread joined, every heap gone.
        let report = unsafe { self.alloc.check() }.unwrap_or_else(|v| fail_violation(&self, v));
        if report.live_small + report.live_large != 0 {
            fail(
                "I3 SLAB-USED",
                format!(
                    "after every block was freed and every heap exited, slabs still count {} blocks as used (lost or leaked)",
                    report.live_small + report.live_large
                ),
            );
        }
        let s = self.alloc.stats();
        let cfg = self.alloc.config();
        let retained = s.segments_cached * ShuttleTiny::GEOMETRY.segment_size();
        let allowed = self.alloc.meta_bytes() + retained.min(cfg.retain_bytes);
        let books = self.alloc.os().books().expect("SimOs keeps books");
        if s.mapped_bytes != allowed || books.mapped_size != allowed || books.misuse_count != 0 {
            fail(
                "I5 QUIESCENCE",
                format!(
                    "after freeing everything, exiting every heap and trim: {} bytes mapped (OS books {}, {} misuses), {allowed} allowed",
                    s.mapped_bytes, books.mapped_size, books.misuse_count
                ),
            );
        }
    }

    fn next_seed(&self) -> u8 {
        model::seed_of(self.next_seed.fetch_add(1, Relaxed))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The allocator may be corrupt: running its destructor could
            // crash over the failure being reported. Leak it and give the
            // arena back wholesale.
            // SAFETY: the allocator is leaked and never used again; every
            // heap of it is leaked too (see `ThreadHeap::drop`).
            unsafe { libc::munmap(self.arena.0 as *mut libc::c_void, self.arena.1) };
        } else {
            // SAFETY: dropped once, here.
            unsafe { ManuallyDrop::drop(&mut self.alloc) };
        }
    }
}

/// A shuttle thread's heap. Dropping it is the thread's exit.
pub struct ThreadHeap<'w> {
    world: &'w World,
    heap: ManuallyDrop<Heap<'w, ShuttleTiny>>,
}

impl ThreadHeap<'_> {
    /// Allocates `size` bytes (16-aligned) and fills them with a fresh pattern.
    pub fn alloc(&mut self, size: usize) -> Blk {
        self.alloc_aligned(size, 16)
    }

    pub fn alloc_aligned(&mut self, size: usize, align: usize) -> Blk {
        self.try_alloc(size, align, false).unwrap_or_else(|e| {
            fail(
                "I7 SPURIOUS-ERROR",
                format!("alloc({size}, {align}) failed: {e}"),
            )
        })
    }

    /// Allocates (zero-filled if asked, which is checked), checks alignment
    /// and usable size, fills the block with a fresh pattern. The caller
    /// judges whether an error is legitimate.
    pub fn try_alloc(
        &mut self,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<Blk, AllocError> {
        let p = if zeroed {
            self.heap.alloc_zeroed(size, align)?
        } else {
            self.heap.alloc(size, align)?
        };
        let ptr = p.as_ptr() as usize;
        if !ptr.is_multiple_of(align) {
            fail(
                "I7 USER-ALIGN",
                format!("{} is not aligned to {align}", self.world.rel(ptr)),
            );
        }
        if zeroed {
            // SAFETY: a fresh block of at least `size` bytes.
            if let Some(at) = unsafe { model::first_nonzero(ptr, size) } {
                fail(
                    "I7 USER-ZERO",
                    format!(
                        "zeroed block {} has a non-zero byte at {at}",
                        self.world.rel(ptr)
                    ),
                );
            }
        }
        let usable = self.heap.usable_size(p).unwrap_or_else(|e| {
            fail(
                "I7 USER-USABLE",
                format!("usable_size of a fresh block: {e}"),
            )
        });
        if usable < size {
            fail(
                "I7 USER-USABLE",
                format!("usable size {usable} < requested {size}"),
            );
        }
        let seed = self.world.next_seed();
        Ok(self.world.accept(ptr, size, seed))
    }

    /// Verifies the block's pattern and frees it (a remote free when another
    /// heap owns its slab).
    pub fn free(&mut self, b: Blk) {
        self.world.verify(&b, b.size, "before free");
        self.world.forget(&b);
        let p = NonNull::new(b.ptr as *mut u8).expect("blocks are non-null");
        if let Err(e) = self.heap.free(p) {
            fail(
                "I7 FREE-REJECTED",
                format!("free of live {}: {e}", self.world.rel(b.ptr)),
            );
        }
    }

    /// Resizes a block: the kept prefix must survive, the whole new size is
    /// then filled with the block's pattern.
    pub fn realloc(&mut self, b: Blk, new_size: usize) -> Blk {
        self.try_realloc(b, new_size).unwrap_or_else(|e| {
            fail(
                "I7 SPURIOUS-ERROR",
                format!(
                    "realloc of live {} to {new_size}: {e}",
                    self.world.rel(b.ptr)
                ),
            )
        })
    }

    /// [`realloc`](Self::realloc), or the error (the old block is then
    /// still live, and verified).
    pub fn try_realloc(&mut self, b: Blk, new_size: usize) -> Result<Blk, ReallocError> {
        self.world.verify(&b, b.size, "before realloc");
        // Out of the model first: a moving realloc frees the old block
        // inside the call, and its owner may hand it out again before the
        // call returns.
        self.world.forget(&b);
        let p = NonNull::new(b.ptr as *mut u8).expect("blocks are non-null");
        let q = match self.heap.realloc(p, new_size, 16) {
            Ok(q) => q,
            Err(e) => {
                self.world.verify(&b, b.size, "after a failed realloc");
                self.world.model().insert(b.ptr, (b.size, b.seed));
                return Err(e);
            }
        };
        let moved = Blk {
            ptr: q.as_ptr() as usize,
            ..b
        };
        self.world
            .verify(&moved, b.size.min(new_size), "after realloc");
        Ok(self.world.accept(moved.ptr, new_size, b.seed))
    }

    /// Drains every cache, collects every remote queue, retires empty slabs.
    pub fn flush(&mut self) {
        self.heap.flush();
    }

    /// Collects every remote queue.
    pub fn collect(&mut self) {
        self.heap.collect();
    }

    /// Thread exit: the heap flushes and abandons its slabs.
    pub fn exit(self) {
        drop(self)
    }
}

impl Drop for ThreadHeap<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: dropped once, here.
            unsafe { ManuallyDrop::drop(&mut self.heap) };
        }
        // Panicking: leaked, as the allocator is (see `World::drop`).
    }
}

/// [`model::fill`] (word-wise already: cheap even in the instrumented
/// fuzz build).
///
/// # Safety
/// `ptr` is a live block of at least `size` bytes owned by the caller.
unsafe fn fill(ptr: usize, size: usize, seed: u8) {
    // SAFETY: per the contract.
    unsafe { model::fill(ptr, size, seed) }
}

/// [`model::first_mismatch`].
///
/// # Safety
/// As for [`fill`].
unsafe fn first_mismatch(ptr: usize, size: usize, seed: u8) -> Option<usize> {
    // SAFETY: per the contract.
    unsafe { model::first_mismatch(ptr, size, seed) }
}

/// Fails the execution with `[id] detail`.
pub fn fail(id: &str, detail: String) -> ! {
    panic!("[{id}] {detail}")
}

fn fail_violation(w: &World, v: Violation) -> ! {
    // Addresses become arena offsets, so the message replays identically.
    let out = crate::runner::relative_addresses(&v.to_string(), w.arena);
    fail(&format!("{} {}", v.invariant, v.clause), out)
}
