//! loom model checks of what shuttle cannot check: memory orderings.
//! (shuttle runs every atomic as SeqCst; loom explores the C11 model:
//! Relaxed loads may see older stores, and only Release/Acquire pairs and
//! locks order plain memory.)
//!
//! 1. The remote-free stack (`remote.rs`) alone: two threads push while the
//!    owner takes. Each node carries a payload in a `loom::cell::UnsafeCell`
//!    written before the push — standing for the link and free tag `push`
//!    writes into the block, and for the user's last writes — and the owner
//!    reads every payload it takes. loom reports a read that the Release CAS
//!    in `push` and the Acquire swap in `take_all` do not order as a data
//!    race, and a lost or duplicated node as a failed assertion. A mutant
//!    with a Relaxed CAS shows the check has teeth.
//! 2. The slab-empty / retire hand-off on the real allocator: the owner
//!    frees its blocks and flushes (drain, collect, retire when empty) while
//!    another thread frees the slab's last block remotely; afterwards the
//!    checker runs. The atomics the allocator declares through `Sched`
//!    (slab owner, remote head) and its locks are loom's, so loom also
//!    explores stale Relaxed reads of `owner` and the hand-over through the
//!    pool lock.
//!
//! Preemption bound: `LOOM_MAX_PREEMPTIONS` (default 3). Both models are
//! small enough that larger bounds add little: at bound 3 they explore 308
//! and 30 executions, at bound 8 828 and 50 (in well under a second). With
//! `--features zoo`, the broken push (bug 7) and the retire with a remote
//! free in flight (bug 6) must be found.

use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hakmem::__model::{Block, RemoteStack};
use hakmem::{
    Allocator, AtomicUsizeOps, Config, Geometry, MutexOps, NativeOs, Platform, Sched, Zoo,
};
use loom::cell::UnsafeCell;

// ---------------------------------------------------------------------------
// The loom platform: native memory, loom atomics and lock, tiny geometry.

struct LoomSched;

impl Sched for LoomSched {
    type AtomicUsize = LoomAtomicUsize;
    type Mutex<T: Send> = LoomMutex<T>;

    fn spin_loop_hint() {
        loom::thread::yield_now();
    }
}

struct LoomTiny;

impl Platform for LoomTiny {
    type Os = NativeOs;
    type Sched = LoomSched;
    const GEOMETRY: Geometry = Geometry::TINY;
}

struct LoomAtomicUsize(loom::sync::atomic::AtomicUsize);

impl AtomicUsizeOps for LoomAtomicUsize {
    fn new(v: usize) -> Self {
        LoomAtomicUsize(loom::sync::atomic::AtomicUsize::new(v))
    }
    fn load(&self, order: Ordering) -> usize {
        self.0.load(order)
    }
    fn store(&self, v: usize, order: Ordering) {
        self.0.store(v, order)
    }
    fn swap(&self, v: usize, order: Ordering) -> usize {
        self.0.swap(v, order)
    }
    fn fetch_add(&self, v: usize, order: Ordering) -> usize {
        self.0.fetch_add(v, order)
    }
    fn fetch_sub(&self, v: usize, order: Ordering) -> usize {
        self.0.fetch_sub(v, order)
    }
    fn compare_exchange(
        &self,
        current: usize,
        new: usize,
        success: Ordering,
        failure: Ordering,
    ) -> Result<usize, usize> {
        self.0.compare_exchange(current, new, success, failure)
    }
}

struct LoomMutex<T>(loom::sync::Mutex<T>);

impl<T: Send> MutexOps<T> for LoomMutex<T> {
    fn new(v: T) -> Self {
        LoomMutex(loom::sync::Mutex::new(v))
    }
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }
}

/// Runs `f` under loom with `bound` preemptions (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise); prints the executions explored.
fn check(name: &str, default_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = std::time::Instant::now();
    let b = builder(default_bound);
    let bound = b.preemption_bound;
    let counted = move || {
        RUNS.fetch_add(1, Ordering::Relaxed);
        f()
    };
    let before = RUNS.load(Ordering::Relaxed);
    b.check(counted);
    eprintln!(
        "loom {name}: {} executions, preemption bound {bound:?}, {:.2?}",
        RUNS.load(Ordering::Relaxed) - before,
        start.elapsed()
    );
}

fn builder(default_bound: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(default_bound);
    }
    b.max_branches = b.max_branches.max(100_000);
    b
}

/// Runs a model, returning the panic message of a failing one.
fn failure_of(f: impl FnOnce()) -> Option<String> {
    panic::catch_unwind(AssertUnwindSafe(f)).err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

// ---------------------------------------------------------------------------
// 1. The remote-free stack.

/// A block as the stack sees it: the two words of `Block`, then a payload
/// loom tracks.
#[repr(C, align(16))]
struct Node {
    next: *mut Node,
    tag: usize,
    payload: UnsafeCell<usize>,
}

/// The stack under test, or a mutant (for the model's own test).
trait Stack: Send + Sync + 'static {
    fn new() -> Self;
    /// # Safety
    /// `b` is a node of the caller's, not on the stack.
    unsafe fn push(&self, b: *mut Block);
    fn take_all(&self) -> *mut Block;
}

struct Real(RemoteStack<LoomTiny>, Zoo);

impl Stack for Real {
    fn new() -> Self {
        Real(RemoteStack::new(), zoo_under_test())
    }
    unsafe fn push(&self, b: *mut Block) {
        // SAFETY: forwarded contract (a block of ours, counted in `used`).
        unsafe { self.0.push(b, self.1) }
    }
    fn take_all(&self) -> *mut Block {
        let taken = self.0.take_all();
        let mut len = 0;
        let mut n = taken.list.cast::<Node>();
        while !n.is_null() && len <= 2 {
            len += 1;
            // SAFETY: taken nodes are live `Node`s owned by the taker now.
            n = unsafe { (*n).next };
        }
        assert_eq!(
            taken.count, len,
            "REMOTE-COUNT: the head word counts the nodes it links"
        );
        taken.list
    }
}

/// `ZOO_BUG` switches the zoo on for the real stack (set by the zoo test).
fn zoo_under_test() -> Zoo {
    ZOO.with(|z| z.get())
}

thread_local! {
    static ZOO: std::cell::Cell<Zoo> = const { std::cell::Cell::new(Zoo::NONE) };
}

/// The push with a Relaxed CAS: the payload write is no longer published.
struct RelaxedMutant(loom::sync::atomic::AtomicPtr<Node>);

impl Stack for RelaxedMutant {
    fn new() -> Self {
        RelaxedMutant(loom::sync::atomic::AtomicPtr::new(ptr::null_mut()))
    }
    unsafe fn push(&self, b: *mut Block) {
        let b = b.cast::<Node>();
        let mut head = self.0.load(Ordering::Relaxed);
        loop {
            // SAFETY: the node is ours until the CAS succeeds.
            unsafe { (*b).next = head };
            match self
                .0
                .compare_exchange(head, b, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }
    fn take_all(&self) -> *mut Block {
        self.0.swap(ptr::null_mut(), Ordering::Acquire).cast()
    }
}

/// Reads the payloads of a taken list; returns the nodes.
fn drain(list: *mut Block) -> Vec<usize> {
    let mut out = Vec::new();
    let mut n = list.cast::<Node>();
    while !n.is_null() {
        // SAFETY: taken nodes are live `Node`s owned by the taker now; the
        // payload read is what loom checks for a race.
        unsafe {
            let v = (*n).payload.with(|p| *p);
            assert_eq!(v, n as usize ^ 0x5a5a, "payload of a taken node");
            out.push(n as usize);
            n = (*n).next;
        }
        assert!(out.len() <= 2, "a cycle in the taken list");
    }
    out
}

fn stack_model<S: Stack>() {
    let stack = Arc::new(S::new());
    let nodes: Vec<usize> = (0..2)
        .map(|_| {
            Box::into_raw(Box::new(Node {
                next: ptr::null_mut(),
                tag: 0,
                payload: UnsafeCell::new(0),
            })) as usize
        })
        .collect();
    let pushers: Vec<_> = nodes
        .iter()
        .map(|&n| {
            let stack = stack.clone();
            loom::thread::spawn(move || {
                let node = n as *mut Node;
                // SAFETY: the node is this thread's until it is pushed.
                unsafe {
                    (*node).payload.with_mut(|p| *p = n ^ 0x5a5a);
                    (*node).tag = 1;
                    stack.push(node.cast());
                }
            })
        })
        .collect();
    let mut taken = drain(stack.take_all());
    for p in pushers {
        p.join().unwrap();
    }
    taken.extend(drain(stack.take_all()));
    taken.sort_unstable();
    let mut want = nodes.clone();
    want.sort_unstable();
    assert_eq!(taken, want, "every pushed node is taken exactly once");
    for n in nodes {
        // SAFETY: made by `Box::into_raw` above, off the stack now.
        drop(unsafe { Box::from_raw(n as *mut Node) });
    }
}

#[test]
fn remote_stack_orders_and_keeps_every_push() {
    check("remote stack", 3, stack_model::<Real>);
}

#[test]
fn a_relaxed_push_is_caught_by_the_model() {
    let f = failure_of(|| builder(3).check(stack_model::<RelaxedMutant>));
    let f = f.expect("loom must report the unsynchronised payload read of a Relaxed push");
    eprintln!("loom on the Relaxed mutant: {f}");
}

#[cfg(feature = "zoo")]
#[test]
fn the_load_store_push_of_zoo_bug_7_loses_a_node() {
    let f = failure_of(|| {
        builder(3).check(|| {
            ZOO.with(|z| z.set(Zoo::NONE.with(hakmem::Bug::RemotePushLoadStore)));
            stack_model::<Real>();
        })
    });
    let f = f.expect("loom must find the lost push");
    assert!(f.contains("exactly once"), "{f}");
}

// ---------------------------------------------------------------------------
// 2. The slab-empty / retire hand-off on the real allocator.

fn handoff_model(zoo: Zoo) {
    let a = Arc::new(Allocator::<LoomTiny>::new(
        NativeOs::new(),
        Config {
            zoo,
            ..Config::TINY
        },
    ));
    let mut owner = a.heap().unwrap();
    // 256-byte blocks: 16 to a slab, a thread cache of 2.
    let x = owner.alloc(256, 16).unwrap();
    let y = owner.alloc(256, 16).unwrap();
    let remote = {
        let a = a.clone();
        let x = x.as_ptr() as usize;
        loom::thread::spawn(move || {
            // A heap of its own: the free reads the slab's owner (a loom
            // atomic, Relaxed) to decide it is remote, then pushes.
            let mut h = a.heap().unwrap();
            h.free(NonNull::new(x as *mut u8).unwrap()).unwrap();
            drop(h);
        })
    };
    owner.free(y).unwrap();
    // Drain, collect and retire: the slab is empty only if the remote free
    // has landed; a free in flight must keep it bound. Then the class is
    // used again (a retired slab is rebound under the pool lock).
    owner.flush();
    let z = owner.alloc(256, 16).unwrap();
    owner.free(z).unwrap();
    owner.flush();
    remote.join().unwrap();
    // SAFETY: quiescent: the other thread is joined, no heap is in a call.
    if let Err(v) = unsafe { a.check() } {
        panic!("after the race: {v}");
    }
    owner.flush();
    drop(owner);
    a.trim();
    // SAFETY: as above.
    let r = unsafe { a.check() }.unwrap_or_else(|v| panic!("at quiescence: {v}"));
    assert_eq!(r.live_small, 0, "a block stayed counted as used");
}

#[test]
fn slab_empty_and_retire_wait_for_the_remote_free() {
    check("slab-empty hand-off", 3, || handoff_model(Zoo::NONE));
}

#[cfg(feature = "zoo")]
#[test]
fn retiring_with_a_remote_free_in_flight_is_caught() {
    let f = failure_of(|| {
        builder(3).check(|| handoff_model(Zoo::NONE.with(hakmem::Bug::RetireWithRemoteInFlight)))
    });
    assert!(
        f.is_some(),
        "loom must find the retire racing the remote free"
    );
}
