//! The per-slab remote-free queue: a lock-free multi-producer stack.
//!
//! Any thread that frees a block of a slab it does not own pushes it here
//! with one compare-exchange; the owner takes the whole stack with one swap
//! (`collect` and `take`, in `slab.rs`). There is no single-node pop, so
//! there is no ABA problem: a node can only re-enter the stack after the
//! owner took it and handed it out again.
//!
//! The head word holds the top node's address in its low 48 bits and the
//! number of nodes in its high 16, so the owner learns how many blocks it
//! took from the swap alone: a taken stack that fits the thread cache goes
//! there whole, without walking it. That walk was a chain of dependent
//! misses on blocks the freeing threads' cores wrote last (on the xmalloc
//! benchmark, 92 % of the producer's refill time).
//!
//! REMOTE-LIVE   every node on the stack is a block of this slab that a
//!               remote thread freed and that is still counted in `used`
//!               (so a slab with `used == 0` has an empty stack and cannot
//!               receive a push: no free can be in flight to a retired slab)
//! REMOTE-COUNT  the count in the head word is the number of nodes on the
//!               stack

use core::sync::atomic::Ordering;

use crate::block::{self, Block};
use crate::platform::{AtomicUsizeOf, AtomicUsizeOps, Platform, Sched};
use crate::zoo::{Bug, Zoo};

/// Where the node count starts in the head word. Block addresses are
/// below 2^48: natively the registry covers the 47-bit user space (a block
/// outside it is not ours and never reaches a push), and the simulation's
/// and model checkers' memory comes from the same user space.
const COUNT_SHIFT: u32 = 48;
const ADDR_MASK: usize = (1 << COUNT_SHIFT) - 1;
/// The most nodes the count can hold; no slab has more blocks (asserted
/// in `LayoutChecks`), so by REMOTE-LIVE no stack has more nodes.
pub(crate) const MAX_COUNT: usize = usize::MAX >> COUNT_SHIFT;

const _: () = assert!(
    usize::BITS == 64,
    "the remote stack packs a count above a 48-bit address"
);

/// A taken (or peeked) stack: its top node and how many nodes the head
/// word counted (REMOTE-COUNT).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Taken {
    pub list: *mut Block,
    pub count: u32,
}

impl Taken {
    #[inline(always)]
    fn of(word: usize) -> Taken {
        Taken {
            list: (word & ADDR_MASK) as *mut Block,
            count: (word >> COUNT_SHIFT) as u32,
        }
    }
}

/// The head word of a stack whose top is `b` with `count` nodes.
#[inline(always)]
fn pack(b: *mut Block, count: u32) -> usize {
    debug_assert!(b as usize & !ADDR_MASK == 0, "block address above 2^48");
    b as usize | (count as usize) << COUNT_SHIFT
}

/// Public (hidden) only so that model checkers can drive it: see
/// `alloc/tests/loom_remote.rs`. Not an API.
#[doc(hidden)]
#[repr(C)]
pub struct RemoteStack<P: Platform> {
    /// `pack(top, count)`; 0 when empty.
    head: AtomicUsizeOf<P>,
}

impl<P: Platform> RemoteStack<P> {
    #[allow(clippy::new_without_default)] // internal type, public only for loom
    pub fn new() -> Self {
        RemoteStack {
            head: AtomicUsizeOps::new(0),
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
            let head = Taken::of(self.head.load(Ordering::Relaxed));
            // SAFETY: per the contract, `b` is ours to write.
            unsafe { block::set_next(b, head.list) };
            // ORDERING: Release, as in the real push below.
            self.head.store(pack(b, head.count + 1), Ordering::Release);
            return;
        }
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let top = Taken::of(head);
            // SAFETY: per the contract, `b` is ours until the CAS succeeds.
            unsafe { block::set_next(b, top.list) };
            // ORDERING: Release publishes the link and tag written to `b`
            // (and the freeing thread's earlier writes) to the Acquire swap
            // in `take_all`.
            match self.head.compare_exchange(
                head,
                pack(b, top.count + 1),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => {
                    head = h;
                    P::Sched::spin_loop_hint();
                }
            }
        }
    }

    /// Takes every node: a null-terminated list and its length.
    #[inline]
    pub fn take_all(&self) -> Taken {
        // ORDERING: Acquire pairs with the Release CAS in `push`, so the
        // links and tags of every taken node are visible.
        Taken::of(self.head.swap(0, Ordering::Acquire))
    }

    /// Reads the head without taking anything (the checker; zoo bug 2
    /// splices from here and forgets to clear it).
    #[inline]
    pub(crate) fn peek(&self) -> Taken {
        // ORDERING: Acquire, as in `take_all`, so the links are readable.
        Taken::of(self.head.load(Ordering::Acquire))
    }

    /// Adds `delta` to the head's count without touching the nodes: a
    /// broken count for the checker's test of REMOTE-COUNT.
    #[cfg(test)]
    pub(crate) fn skew_count(&self, delta: isize) {
        let w = self.head.load(Ordering::Relaxed);
        self.head.store(
            w.wrapping_add_signed(delta << COUNT_SHIFT),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed) == 0
    }
}
