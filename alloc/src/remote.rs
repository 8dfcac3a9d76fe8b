//! The per-slab remote-free queue: a lock-free multi-producer stack.
//!
//! Any thread that frees a block of a slab it does not own pushes it here
//! with one compare-exchange; the owner takes the whole stack with one swap
//! (`collect`, in `slab.rs`). There is no single-node pop, so there is no
//! ABA problem: a node can only re-enter the stack after the owner took it
//! and handed it out again.
//!
//! REMOTE-LIVE  every node on the stack is a block of this slab that a
//!              remote thread freed and that is still counted in `used`
//!              (so a slab with `used == 0` has an empty stack and cannot
//!              receive a push: no free can be in flight to a retired slab)

use core::ptr;
use core::sync::atomic::Ordering;

use crate::block::{self, Block};
use crate::platform::{AtomicPtrOf, AtomicPtrOps, Platform, Sched};
use crate::zoo::{Bug, Zoo};

/// Public (hidden) only so that model checkers can drive it: see
/// `alloc/tests/loom_remote.rs`. Not an API.
#[doc(hidden)]
#[repr(C)]
pub struct RemoteStack<P: Platform> {
    head: AtomicPtrOf<P, Block>,
}

impl<P: Platform> RemoteStack<P> {
    #[allow(clippy::new_without_default)] // internal type, public only for loom
    pub fn new() -> Self {
        RemoteStack {
            head: AtomicPtrOps::new(ptr::null_mut()),
        }
    }

    /// Pushes a freed block whose tag is already written.
    ///
    /// # Safety
    /// `b` is a block of the slab this stack belongs to, freed by the
    /// caller, and REMOTE-LIVE holds for it (it is counted in `used`).
    /// The caller must not touch the slab after this returns: once the
    /// push is visible, the owner may collect, empty and retire the slab.
    #[inline]
    pub unsafe fn push(&self, b: *mut Block, zoo: Zoo) {
        if zoo.on(Bug::RemotePushLoadStore) {
            // Zoo bug 7: a load + store instead of a compare-exchange; a
            // push racing another loses one of them.
            let head = self.head.load(Ordering::Relaxed);
            // SAFETY: per the contract, `b` is ours to write.
            unsafe { block::set_next(b, head) };
            self.head.store(b, Ordering::Release);
            return;
        }
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: per the contract, `b` is ours until the CAS succeeds.
            unsafe { block::set_next(b, head) };
            // ORDERING: Release publishes the link and tag written to `b`
            // (and the freeing thread's earlier writes) to the Acquire swap
            // in `take_all`.
            match self
                .head
                .compare_exchange_weak(head, b, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => {
                    head = h;
                    P::Sched::spin_loop_hint();
                }
            }
        }
    }

    /// Takes every node; the result is a null-terminated list.
    #[inline]
    pub fn take_all(&self) -> *mut Block {
        // ORDERING: Acquire pairs with the Release CAS in `push`, so the
        // links and tags of every taken node are visible.
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// Reads the head without taking anything (zoo bug 2 splices from
    /// here and forgets to clear it).
    #[inline]
    pub(crate) fn peek(&self) -> *mut Block {
        // ORDERING: Acquire, as in `take_all`, so the links are readable.
        self.head.load(Ordering::Acquire)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }
}
