//! The checker: one walk over segments, slabs, lists, heaps and the large
//! tier that verifies the invariants I1–I6 of DESIGN.md (and, given the
//! caller's set of live blocks, the allocator's side of I3 and I7).
//! It is written once and used by unit tests, the native stress tests, the
//! simulation after every op, the fuzz targets and the shuttle scenarios.
//!
//! Where each invariant is stated:
//! * I1 BLOCK-ONE / BLOCK-TAG — `slab.rs`, `block.rs`; LARGE-ONE — `large.rs`
//! * I2 SLAB-BOUNDS — `slab.rs`; SEG-LAYOUT — `segment.rs`
//! * I3 SLAB-USED — `slab.rs`; REMOTE-LIVE — `remote.rs`; TC-BOUND — `thread_cache.rs`
//! * I4 SLAB-OWNER — `slab.rs`; HEAP-CLASS, HEAP-PARKED — `heap.rs`
//! * I5 HEAP-EMPTY — `heap.rs`; POOL-EMPTY — `pool.rs`
//! * I6 SEG-BOOKS — `segment.rs`; POOL-BOOKS — `pool.rs`; LARGE-BOOKS —
//!   `large.rs`; REG-MARK — `registry.rs`; OS-BOOKS — here (the sums)
//!
//! The walk never allocates: duplicates are found by flipping each visited
//! free block's tag word to `!tag` (a value no block can otherwise hold)
//! and restoring every flipped word before returning, violation or not.
//!
//! `Violation` is returned by value (it is ~200 bytes: a slab dump, no
//! pointers to heap memory) because the checker must not allocate.
#![allow(clippy::result_large_err)]

use core::fmt;
use core::sync::atomic::Ordering::Relaxed;

use crate::allocator::Allocator;
use crate::block::{self, Block};
use crate::heap::HeapData;
use crate::large::{LargeHeader, LargeState, LOCAL_SLOTS, STATE_CACHED, STATE_LIVE};
use crate::platform::{AtomicUsizeOps, MutexOps, Os, Platform};
use crate::pool::PoolState;
use crate::registry::{Region, RegistryView};
use crate::segment::{Segment, SegmentState};
use crate::size_class::class_size;
use crate::slab::{Slab, SlabState, CLASS_NONE, NO_OWNER};

/// The invariants of DESIGN.md §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// Disjointness: every block in exactly one state.
    I1,
    /// Bounds: list nodes are block starts inside their slab.
    I2,
    /// Used balance.
    I3,
    /// Class and ownership.
    I4,
    /// Emptiness is reachable.
    I5,
    /// OS books.
    I6,
    /// User contract (checked by the simulation's model).
    I7,
}

impl Invariant {
    pub const ALL: [Invariant; 7] = [
        Invariant::I1,
        Invariant::I2,
        Invariant::I3,
        Invariant::I4,
        Invariant::I5,
        Invariant::I6,
        Invariant::I7,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Invariant::I1 => "I1",
            Invariant::I2 => "I2",
            Invariant::I3 => "I3",
            Invariant::I4 => "I4",
            Invariant::I5 => "I5",
            Invariant::I6 => "I6",
            Invariant::I7 => "I7",
        }
    }

    pub fn from_id(s: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.id() == s)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A slab's metadata at the moment of a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabDump {
    pub segment: usize,
    pub index: usize,
    pub state: SlabState,
    pub class: usize,
    pub stride: usize,
    pub start: usize,
    pub capacity: u32,
    pub carved: u32,
    pub used: u32,
    pub free_count: u32,
    pub owner: usize,
    pub free_local_head: usize,
    pub remote_head: usize,
}

impl SlabDump {
    pub(crate) fn of<P: Platform>(slab_ptr: *const Slab<P>) -> SlabDump {
        // SAFETY: called on slab records of live segments.
        let slab = unsafe { &*slab_ptr };
        let seg = Segment::<P>::of(slab_ptr as usize);
        // SAFETY: as above.
        let index = unsafe { (*seg).slab_index(slab_ptr) };
        let class = slab.class();
        SlabDump {
            segment: seg as usize,
            index,
            state: slab.state.get(),
            class,
            stride: slab.stride.load(Relaxed) as usize,
            start: slab.start.load(Relaxed),
            capacity: slab.capacity.get(),
            carved: slab.carved.get(),
            used: slab.used.get(),
            free_count: slab.free_count.get(),
            owner: slab.owner.load(Relaxed),
            free_local_head: slab.free_local.get() as usize,
            remote_head: slab.remote.peek().list as usize,
        }
    }
}

impl fmt::Display for SlabDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "slab {} of segment {:#x} [{:?} class {} stride {} start {:#x} capacity {} carved {} used {} free {} owner {} free_local {:#x} remote {:#x}]",
            self.index,
            self.segment,
            self.state,
            self.class,
            self.stride,
            self.start,
            self.capacity,
            self.carved,
            self.used,
            self.free_count,
            self.owner,
            self.free_local_head,
            self.remote_head
        )
    }
}

/// A broken invariant: which, where, and what was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    /// The clause, e.g. `SLAB-USED`.
    pub clause: &'static str,
    pub detail: &'static str,
    pub slab: Option<SlabDump>,
    pub block: Option<usize>,
    pub expected: Option<usize>,
    pub found: Option<usize>,
}

impl Violation {
    pub fn new(invariant: Invariant, clause: &'static str, detail: &'static str) -> Self {
        Violation {
            invariant,
            clause,
            detail,
            slab: None,
            block: None,
            expected: None,
            found: None,
        }
    }

    pub(crate) fn at_slab<P: Platform>(mut self, slab: *const Slab<P>) -> Self {
        self.slab = Some(SlabDump::of(slab));
        self
    }

    pub fn at_block(mut self, block: usize) -> Self {
        self.block = Some(block);
        self
    }

    pub fn values(mut self, expected: usize, found: usize) -> Self {
        self.expected = Some(expected);
        self.found = Some(found);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.invariant, self.clause, self.detail)?;
        if let (Some(e), Some(x)) = (self.expected, self.found) {
            // Addresses in hex (so tools can rewrite them), counts in decimal.
            if e > u32::MAX as usize || x > u32::MAX as usize {
                write!(f, " (expected {e:#x}, found {x:#x})")?;
            } else {
                write!(f, " (expected {e}, found {x})")?;
            }
        }
        if let Some(b) = self.block {
            write!(f, "; block {b:#x}")?;
        }
        if let Some(s) = &self.slab {
            write!(f, "; {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

type CheckResult = Result<(), Violation>;

fn fail(i: Invariant, clause: &'static str, detail: &'static str) -> Violation {
    Violation::new(i, clause, detail)
}

/// What one walk found, for callers that compare with a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub segments: usize,
    pub slabs_in_use: usize,
    pub cached_blocks: usize,
    pub remote_blocks: usize,
    pub free_local_blocks: usize,
    /// Σ over slabs of `used - cached - remote`: live small blocks.
    pub live_small: usize,
    pub live_large: usize,
    pub cached_large: usize,
}

const LISTED: u32 = 1 << 31;
const LIVE_MASK: u32 = 0xffff;

impl<P: Platform> Allocator<P> {
    /// Verifies I1–I6. See [`check_live`](Self::check_live).
    ///
    /// # Safety
    /// As for `check_live`.
    pub unsafe fn check(&self) -> Result<CheckReport, Violation> {
        // SAFETY: forwarded contract.
        unsafe { self.check_live(core::iter::empty()) }
    }

    /// Verifies I1–I6, and, for the given live blocks (every block the
    /// caller holds, as returned by alloc/realloc), that each is a live
    /// block of this allocator on no free list and that each slab's
    /// `used - cached - remote` equals the number of them in it (I3).
    /// With an empty iterator the per-slab live counts are not compared.
    ///
    /// # Safety
    /// Quiescence: no other thread may operate on this allocator or any of
    /// its heaps during the call (it reads every heap's private state and
    /// temporarily rewrites the tag word of free blocks).
    pub unsafe fn check_live(
        &self,
        live: impl IntoIterator<Item = usize>,
    ) -> Result<CheckReport, Violation> {
        let reg = self.registry_view();
        let key = self.key.load(Relaxed);
        self.heaps.with(|hl| {
            self.pool.with(|pool| {
                self.large.with(|large| {
                    let mut w = Walk {
                        a: self,
                        reg,
                        key,
                        report: CheckReport::default(),
                        model_live: None,
                        model_large: None,
                        cached_large_bytes: 0,
                    };
                    // SAFETY: quiescent per the contract; all locks held.
                    let r = unsafe { w.run(&hl.live, pool, large, live) }
                        // SAFETY: as above.
                        .and_then(|()| unsafe { w.parked(hl) });
                    // SAFETY: as above; undoes every mark made by `run`.
                    unsafe { w.restore(&hl.live, pool, large) };
                    r.map(|()| w.report)
                })
            })
        })
    }
}

struct Walk<'a, P: Platform> {
    a: &'a Allocator<P>,
    reg: RegistryView,
    key: usize,
    report: CheckReport,
    model_live: Option<usize>,
    model_large: Option<usize>,
    cached_large_bytes: usize,
}

type HeapRecords<P> = crate::list::List<HeapData<P>, crate::heap::HeapLinks>;

/// A cached large mapping's state word while the walk has visited it.
const STATE_VISITED: usize = !STATE_CACHED;

impl<P: Platform> Walk<'_, P> {
    fn seg_shift() -> u32 {
        P::GEOMETRY.segment_shift
    }

    /// The slab of a block address if it lies in a live segment.
    fn slab_of(&self, addr: usize) -> Option<*mut Slab<P>> {
        if self.reg.lookup(addr, Self::seg_shift()) != Region::Segment {
            return None;
        }
        // SAFETY: the registry marks a live segment there.
        Some(unsafe { (*Segment::<P>::of(addr)).slab_of(addr) })
    }

    /// Checks one node of a free list of `slab` (I2) and marks it visited
    /// (I1). Returns the next node.
    ///
    /// # Safety
    /// Quiescent; `slab` is a slab record of a live segment.
    unsafe fn visit(
        &self,
        slab: *mut Slab<P>,
        b: *mut Block,
        list: &'static str,
    ) -> Result<*mut Block, Violation> {
        // SAFETY: per the contract.
        let s = unsafe { &*slab };
        let addr = b as usize;
        if s.state.get() == SlabState::Free || !s.is_block(addr) {
            return Err(fail(Invariant::I2, "SLAB-BOUNDS", list)
                .at_slab(slab)
                .at_block(addr));
        }
        let tag = block::tag(addr, self.key);
        // SAFETY: a carved block start of an in-use committed slab.
        let word = unsafe { block::read_tag(b) };
        if word == !tag {
            return Err(fail(
                Invariant::I1,
                "BLOCK-ONE",
                "block is on two free lists (or twice on one)",
            )
            .at_slab(slab)
            .at_block(addr));
        }
        if word != tag {
            return Err(fail(
                Invariant::I1,
                "BLOCK-TAG",
                "block on a free list without its free tag (live data overwrote it, or a live block is listed)",
            )
            .at_slab(slab)
            .at_block(addr));
        }
        // SAFETY: as above; restored by `restore`.
        unsafe {
            (*b).tag = !tag;
            Ok(block::next(b))
        }
    }

    /// # Safety
    /// Quiescent, all locks held.
    unsafe fn run(
        &mut self,
        heaps: &HeapRecords<P>,
        pool: &PoolState<P>,
        large: &LargeState,
        live: impl IntoIterator<Item = usize>,
    ) -> CheckResult {
        // SAFETY: forwarded contract, for each phase.
        unsafe {
            self.segments(pool)?;
            self.heaps(heaps.iter())?;
            self.abandoned(pool)?;
            self.live_blocks(live)?;
            self.balance(pool)?;
            self.large(large, heaps)?;
            self.books(pool, heaps)
        }
    }

    /// I4 HEAP-PARKED: the parked list against the live list and the
    /// configured bound.
    unsafe fn parked(&mut self, hl: &crate::allocator::HeapList<P>) -> CheckResult {
        let cap = self.a.config.parked_heaps;
        let mut n = 0;
        let mut h = hl.parked;
        while !h.is_null() {
            n += 1;
            if n > hl.parked_count || n > cap {
                return Err(fail(
                    Invariant::I4,
                    "HEAP-PARKED",
                    "more parked heaps than counted or allowed (a cycle?)",
                )
                .values(hl.parked_count.min(cap), n));
            }
            // SAFETY: the heaps lock is held; live records.
            if !unsafe { hl.live.iter() }.any(|l| l == h) {
                return Err(fail(
                    Invariant::I4,
                    "HEAP-PARKED",
                    "a parked heap is not a live heap",
                )
                .values(0, h as usize));
            }
            // SAFETY: a live record.
            h = unsafe { (*h).parked_next };
        }
        if n != hl.parked_count {
            return Err(fail(
                Invariant::I4,
                "HEAP-PARKED",
                "the parked count disagrees with the parked list",
            )
            .values(n, hl.parked_count));
        }
        Ok(())
    }

    /// Segments and their slabs: layout, free lists, remote queues.
    unsafe fn segments(&mut self, pool: &PoolState<P>) -> CheckResult {
        let mut cached = 0;
        // SAFETY: segments on the all-list are live mappings.
        for seg_ptr in unsafe { pool.all.iter() } {
            // SAFETY: as above.
            let seg = unsafe { &*seg_ptr };
            self.report.segments += 1;
            let base = seg.base();
            match self.reg.segment_kind(base, Self::seg_shift()) {
                None => {
                    return Err(fail(
                        Invariant::I6,
                        "REG-MARK",
                        "segment not marked in the registry",
                    )
                    .at_block(base));
                }
                Some(k) if k != seg.kind.get() => {
                    return Err(fail(
                        Invariant::I6,
                        "REG-MARK",
                        "the registry names another kind than the segment's",
                    )
                    .at_block(base));
                }
                Some(_) => {}
            }
            if self.a.os.is_mapped(base, P::GEOMETRY.segment_size()) == Some(false) {
                return Err(fail(
                    Invariant::I6,
                    "SEG-BOOKS",
                    "segment is not a live OS mapping",
                )
                .at_block(base));
            }
            let mut used = 0;
            for i in 0..seg.slab_count() {
                let slab_ptr = seg.slab(i);
                // SAFETY: slab records of a live segment.
                let slab = unsafe { &*slab_ptr };
                let free_bit = seg.free_mask.get() & (1 << i) != 0;
                slab.scratch.set(0);
                slab.scratch2.set(0);
                if slab.corrupt_node.get() != 0 {
                    return Err(fail(
                        Invariant::I1,
                        "REMOTE-CORRUPT",
                        "a remote-queue node was not a block of its slab when collected (a push lost an update?)",
                    )
                    .at_slab(slab_ptr)
                    .at_block(slab.corrupt_node.get()));
                }
                if slab.state.get() == SlabState::Free {
                    if i == 0 && !Segment::<P>::slab0_usable(seg.kind.get()) {
                        continue;
                    }
                    if !free_bit {
                        return Err(fail(
                            Invariant::I2,
                            "SEG-LAYOUT",
                            "free slab missing from the free mask",
                        )
                        .at_slab(slab_ptr));
                    }
                    if !slab.remote.is_empty() {
                        return Err(fail(
                            Invariant::I3,
                            "REMOTE-LIVE",
                            "a free (retired) slab has blocks on its remote queue: a free landed after retirement",
                        )
                        .at_slab(slab_ptr));
                    }
                    if slab.class_idx.load(Relaxed) != CLASS_NONE
                        || slab.owner.load(Relaxed) != NO_OWNER
                    {
                        return Err(fail(
                            Invariant::I4,
                            "SLAB-OWNER",
                            "free slab with a class or an owner",
                        )
                        .at_slab(slab_ptr));
                    }
                    if slab.queued.get() && seg.unit_mask(i) & seg.committed_units.get() == 0 {
                        return Err(fail(
                            Invariant::I6,
                            "POOL-BOOKS",
                            "decommitted slab still on the decommit queue",
                        )
                        .at_slab(slab_ptr));
                    }
                    continue;
                }
                used += 1;
                self.report.slabs_in_use += 1;
                if free_bit {
                    return Err(fail(
                        Invariant::I2,
                        "SEG-LAYOUT",
                        "in-use slab marked free in the mask",
                    )
                    .at_slab(slab_ptr));
                }
                if slab.queued.get() {
                    return Err(fail(
                        Invariant::I6,
                        "POOL-BOOKS",
                        "in-use slab on the decommit queue",
                    )
                    .at_slab(slab_ptr));
                }
                if seg.unit_mask(i) & !seg.committed_units.get() != 0 {
                    return Err(fail(
                        Invariant::I6,
                        "POOL-BOOKS",
                        "in-use slab not fully committed",
                    )
                    .at_slab(slab_ptr));
                }
                // SAFETY: forwarded contract.
                unsafe { self.slab(seg, i, slab_ptr)? };
            }
            if used != seg.used_slabs.get() as usize {
                return Err(fail(
                    Invariant::I2,
                    "SEG-LAYOUT",
                    "used_slabs disagrees with the slab states",
                )
                .at_block(base)
                .values(used, seg.used_slabs.get() as usize));
            }
            let is_cached = seg.state.get() == SegmentState::Cached;
            if is_cached != (used == 0) {
                return Err(fail(
                    Invariant::I5,
                    "POOL-EMPTY",
                    "a segment is cached iff it has no used slab",
                )
                .at_block(base)
                .values(usize::from(used == 0), usize::from(is_cached)));
            }
            cached += usize::from(is_cached);
        }
        if cached != pool.lru.len {
            return Err(fail(
                Invariant::I5,
                "POOL-EMPTY",
                "empty segments and the LRU disagree",
            )
            .values(cached, pool.lru.len));
        }
        if pool.lru.len * P::GEOMETRY.segment_size() > self.a.config.segment_cache_bytes {
            return Err(fail(
                Invariant::I5,
                "POOL-EMPTY",
                "the segment LRU holds more than its cap",
            )
            .values(
                self.a.config.segment_cache_bytes,
                pool.lru.len * P::GEOMETRY.segment_size(),
            ));
        }
        Ok(())
    }

    /// One in-use slab: layout (I2), local free list and remote queue.
    unsafe fn slab(&mut self, seg: &Segment<P>, idx: usize, slab_ptr: *mut Slab<P>) -> CheckResult {
        // SAFETY: a slab record of a live segment.
        let slab = unsafe { &*slab_ptr };
        let class = slab.class();
        if class >= P::GEOMETRY.class_count() {
            return Err(fail(
                Invariant::I4,
                "SLAB-OWNER",
                "in-use slab without a valid class",
            )
            .at_slab(slab_ptr));
        }
        let stride = class_size(class);
        if !slab.lookup_fields_are(class) {
            return Err(fail(
                Invariant::I2,
                "SLAB-BOUNDS",
                "stride, its block-test multiplier, start_mul or the cache offset is not the class's",
            )
            .at_slab(slab_ptr));
        }
        if P::GEOMETRY.kind_for(stride) != seg.kind.get() {
            return Err(fail(
                Invariant::I2,
                "SEG-LAYOUT",
                "class of the wrong kind for its segment",
            )
            .at_slab(slab_ptr));
        }
        let (range_start, range_end) = seg.slab_range(idx);
        let start = slab.start.load(Relaxed);
        let header_end = seg.base() + Segment::<P>::header_end();
        if start < header_end || start < range_start {
            return Err(fail(
                Invariant::I2,
                "SLAB-BOUNDS",
                "block area overlaps the segment header",
            )
            .at_slab(slab_ptr)
            .values(header_end.max(range_start), start));
        }
        let cap = slab.capacity.get() as usize;
        if start + cap * stride > range_end {
            return Err(
                fail(Invariant::I2, "SLAB-BOUNDS", "capacity overruns the slab")
                    .at_slab(slab_ptr)
                    .values(range_end, start + cap * stride),
            );
        }
        let carved = slab.carved.get() as usize;
        if carved > cap || !slab.carved_limit_agrees() {
            return Err(fail(
                Invariant::I2,
                "SLAB-BOUNDS",
                "carved beyond capacity or the shared carve bound off",
            )
            .at_slab(slab_ptr)
            .values(cap, carved));
        }
        // Local free list.
        let mut n = 0usize;
        let mut b = slab.free_local.get();
        while !b.is_null() {
            if n > carved {
                return Err(fail(
                    Invariant::I1,
                    "BLOCK-ONE",
                    "local free list longer than the carved blocks (a cycle)",
                )
                .at_slab(slab_ptr));
            }
            // SAFETY: forwarded contract.
            b = unsafe {
                self.visit(
                    slab_ptr,
                    b,
                    "local free list node outside the carved block area",
                )?
            };
            n += 1;
        }
        if n != slab.free_count.get() as usize {
            return Err(fail(
                Invariant::I3,
                "SLAB-USED",
                "free_count is not the length of the local free list",
            )
            .at_slab(slab_ptr)
            .values(n, slab.free_count.get() as usize));
        }
        self.report.free_local_blocks += n;
        if carved != slab.used.get() as usize + n {
            return Err(
                fail(Invariant::I3, "SLAB-USED", "carved != used + free_count")
                    .at_slab(slab_ptr)
                    .values(carved, slab.used.get() as usize + n),
            );
        }
        // Remote queue.
        let mut r = 0usize;
        let taken = slab.remote.peek();
        let mut b = taken.list;
        while !b.is_null() {
            if r > carved {
                return Err(fail(
                    Invariant::I1,
                    "BLOCK-ONE",
                    "remote queue longer than the carved blocks (a cycle)",
                )
                .at_slab(slab_ptr));
            }
            // SAFETY: forwarded contract.
            b = unsafe {
                self.visit(
                    slab_ptr,
                    b,
                    "remote queue node outside the carved block area",
                )?
            };
            r += 1;
        }
        if r != taken.count as usize {
            return Err(fail(
                Invariant::I3,
                "REMOTE-COUNT",
                "the remote queue's head counts another number of nodes than it links",
            )
            .at_slab(slab_ptr)
            .values(taken.count as usize, r));
        }
        self.report.remote_blocks += r;
        slab.scratch.set((r as u32) << 16);
        Ok(())
    }

    /// One block of heap `heap`'s class-`c` cache: of a slab that heap owns
    /// for the class, a carved block start, tagged, seen once (I1, I2,
    /// I4). Returns its link (meaningful for a chained block only).
    ///
    /// # Safety
    /// Quiescent.
    unsafe fn cached_block(
        &self,
        heap: &HeapData<P>,
        c: usize,
        b: *mut Block,
    ) -> Result<*mut Block, Violation> {
        let addr = b as usize;
        let Some(slab_ptr) = self.slab_of(addr) else {
            return Err(fail(
                Invariant::I4,
                "HEAP-CLASS",
                "cached block outside every segment",
            )
            .at_block(addr));
        };
        // SAFETY: a slab record of a live segment.
        let slab = unsafe { &*slab_ptr };
        if !owned_for(slab, heap.id, c) {
            return Err(fail(
                Invariant::I4,
                "HEAP-CLASS",
                "cached block of a slab not owned by this heap for this class",
            )
            .at_slab(slab_ptr)
            .at_block(addr)
            .values(heap.id, slab.owner.load(Relaxed)));
        }
        // SAFETY: forwarded contract.
        let next = unsafe { self.visit(slab_ptr, b, "cached block is not a carved block start")? };
        slab.scratch.set(slab.scratch.get() + 1);
        Ok(next)
    }

    /// Heaps: thread caches and class lists (I1, I2, I4, I5).
    unsafe fn heaps(&mut self, heaps: impl Iterator<Item = *mut HeapData<P>>) -> CheckResult {
        for h in heaps {
            // SAFETY: live heap records, quiescent.
            let heap = unsafe { &*h };
            // The arrays follow the record's size table, class after class,
            // each after its guard.
            let mut array = HeapData::arrays(h);
            for c in 0..P::GEOMETRY.class_count() {
                let cache = &heap.caches[c];
                // Capacity and array first: they bound the slots read below.
                let cfg = &self.a.config;
                let size = class_size(c);
                let (lo, hi) = (cfg.cache_capacity(size), cfg.cache_capacity_max(size));
                if cache.cap < lo || cache.cap > hi {
                    return Err(fail(
                        Invariant::I3,
                        "TC-BOUND",
                        "thread cache capacity outside its class's range",
                    )
                    .values(hi as usize, cache.cap as usize));
                }
                // SAFETY: the guard slot lies in the heap's slot (see
                // `HeapData::place`), a plain word.
                let guard = unsafe { *array };
                if !guard.is_null() {
                    return Err(fail(
                        Invariant::I3,
                        "TC-BOUND",
                        "the slot below a thread cache's array is not null (its pop would take it for a block)",
                    )
                    .values(0, guard as usize));
                }
                array = array.wrapping_add(1);
                if cache.base != array {
                    return Err(fail(
                        Invariant::I3,
                        "TC-BOUND",
                        "thread cache array is not the class's own slots in the heap's slot",
                    )
                    .values(array as usize, cache.base as usize));
                }
                array = array.wrapping_add(hi as usize);
                if cache.is_over() {
                    return Err(fail(
                        Invariant::I3,
                        "TC-BOUND",
                        "thread cache over capacity (or its array's pointers out of order)",
                    )
                    .values(cache.cap as usize, cache.count() as usize));
                }
                let mut n = 0u32;
                for i in 0..cache.array_len() as usize {
                    // SAFETY: `base..top` are slots of the cache's array
                    // (`is_over` said so).
                    let b = unsafe { *cache.base.add(i) };
                    // SAFETY: forwarded contract.
                    unsafe { self.cached_block(heap, c, b)? };
                    n += 1;
                }
                let chain = cache.chain_len();
                let mut b = cache.head;
                let mut k = 0u32;
                while !b.is_null() {
                    if k > chain {
                        return Err(fail(
                            Invariant::I3,
                            "TC-BOUND",
                            "thread cache chain longer than its capacity leaves it (a cycle?)",
                        )
                        .values(chain as usize, k as usize));
                    }
                    // SAFETY: forwarded contract.
                    b = unsafe { self.cached_block(heap, c, b)? };
                    k += 1;
                }
                if k != chain {
                    return Err(fail(
                        Invariant::I3,
                        "TC-BOUND",
                        "thread cache chain length is not the capacity the array leaves",
                    )
                    .values(chain as usize, k as usize));
                }
                n += k;
                self.report.cached_blocks += n as usize;
                let hc = &heap.classes[c];
                let mut current_seen = hc.current.is_null();
                // SAFETY: slabs on a heap list are live records.
                for s in unsafe { hc.slabs.iter() } {
                    // SAFETY: as above.
                    let slab = unsafe { &*s };
                    current_seen |= s == hc.current;
                    if !owned_for(slab, heap.id, c) {
                        return Err(fail(
                            Invariant::I4,
                            "SLAB-OWNER",
                            "slab on a heap's class list not owned by it for that class",
                        )
                        .at_slab(s)
                        .values(heap.id, slab.owner.load(Relaxed)));
                    }
                    if slab.scratch2.get() & LISTED != 0 {
                        return Err(
                            fail(Invariant::I4, "SLAB-OWNER", "slab listed twice").at_slab(s)
                        );
                    }
                    slab.scratch2.set(slab.scratch2.get() | LISTED);
                    if heap.flushed && slab.used.get() == 0 {
                        return Err(fail(
                            Invariant::I5,
                            "HEAP-EMPTY",
                            "empty slab still bound to a heap after it drained and collected",
                        )
                        .at_slab(s));
                    }
                }
                if !current_seen {
                    return Err(fail(
                        Invariant::I4,
                        "HEAP-CLASS",
                        "current slab is not on the heap's class list",
                    )
                    .at_slab(hc.current));
                }
            }
        }
        Ok(())
    }

    unsafe fn abandoned(&mut self, pool: &PoolState<P>) -> CheckResult {
        for c in 0..P::GEOMETRY.class_count() {
            // SAFETY: abandoned slabs are live records.
            for s in unsafe { pool.abandoned[c].iter() } {
                // SAFETY: as above.
                let slab = unsafe { &*s };
                if slab.state.get() != SlabState::Abandoned
                    || slab.owner.load(Relaxed) != NO_OWNER
                    || slab.class() != c
                {
                    return Err(fail(
                        Invariant::I4,
                        "SLAB-OWNER",
                        "slab on an abandoned list is not abandoned for that class",
                    )
                    .at_slab(s));
                }
                if slab.scratch2.get() & LISTED != 0 {
                    return Err(fail(Invariant::I4, "SLAB-OWNER", "slab listed twice").at_slab(s));
                }
                slab.scratch2.set(slab.scratch2.get() | LISTED);
            }
        }
        Ok(())
    }

    /// The caller's live blocks: each a live block of ours, on no list.
    unsafe fn live_blocks(&mut self, live: impl IntoIterator<Item = usize>) -> CheckResult {
        let mut n_small = 0usize;
        let mut n_large = 0usize;
        let mut any = false;
        for addr in live {
            any = true;
            match self.reg.lookup(addr, Self::seg_shift()) {
                Region::Segment => {
                    // SAFETY: a live segment.
                    let slab_ptr = unsafe { (*Segment::<P>::of(addr)).slab_of(addr) };
                    // SAFETY: as above.
                    let slab = unsafe { &*slab_ptr };
                    if slab.state.get() == SlabState::Free || !slab.is_block(addr) {
                        return Err(fail(
                            Invariant::I1,
                            "BLOCK-ONE",
                            "a live block is not a carved block of an in-use slab",
                        )
                        .at_slab(slab_ptr)
                        .at_block(addr));
                    }
                    let tag = block::tag(addr, self.key);
                    // SAFETY: a carved block start.
                    let word = unsafe { block::read_tag(addr as *mut Block) };
                    if word == tag || word == !tag {
                        return Err(fail(
                            Invariant::I1,
                            "BLOCK-ONE",
                            "a live block is also on a free list or cache",
                        )
                        .at_slab(slab_ptr)
                        .at_block(addr));
                    }
                    let s2 = slab.scratch2.get();
                    if s2 & LIVE_MASK == LIVE_MASK {
                        return Err(fail(
                            Invariant::I3,
                            "SLAB-USED",
                            "too many live blocks in one slab",
                        )
                        .at_slab(slab_ptr));
                    }
                    slab.scratch2.set(s2 + 1);
                    n_small += 1;
                }
                r @ (Region::Large | Region::LargeAligned) => {
                    let granule = addr & !P::GEOMETRY.segment_mask();
                    let hp = if r == Region::LargeAligned {
                        granule - crate::large::LARGE_HEADER_SIZE
                    } else {
                        granule
                    };
                    // SAFETY: the registry marks a live large mapping.
                    let h = unsafe { &*(hp as *const LargeHeader) };
                    if h.state.load(Relaxed) != STATE_LIVE
                        || h.base() + h.user_offset.load(Relaxed) != addr
                    {
                        return Err(fail(
                            Invariant::I1,
                            "LARGE-ONE",
                            "a live large block's mapping is not live",
                        )
                        .at_block(addr));
                    }
                    n_large += 1;
                }
                Region::None => {
                    return Err(fail(
                        Invariant::I6,
                        "SEG-BOOKS",
                        "a live block lies in memory the allocator does not hold",
                    )
                    .at_block(addr));
                }
            }
        }
        if any {
            self.model_live = Some(n_small);
            self.model_large = Some(n_large);
            self.report.live_large = n_large;
        }
        Ok(())
    }

    /// Per-slab balance (I3) and that every in-use slab is listed (I4).
    unsafe fn balance(&mut self, pool: &PoolState<P>) -> CheckResult {
        let mut live_total = 0usize;
        // SAFETY: live segments.
        for seg_ptr in unsafe { pool.all.iter() } {
            // SAFETY: as above.
            let seg = unsafe { &*seg_ptr };
            for i in 0..seg.slab_count() {
                let slab_ptr = seg.slab(i);
                // SAFETY: slab records of a live segment.
                let slab = unsafe { &*slab_ptr };
                if slab.state.get() == SlabState::Free {
                    continue;
                }
                if slab.scratch2.get() & LISTED == 0 {
                    return Err(fail(
                        Invariant::I4,
                        "SLAB-OWNER",
                        "in-use slab on no heap's list and not abandoned (lost)",
                    )
                    .at_slab(slab_ptr));
                }
                let cached = (slab.scratch.get() & 0xffff) as usize;
                let remote = (slab.scratch.get() >> 16) as usize;
                let used = slab.used.get() as usize;
                if used < cached + remote {
                    return Err(fail(
                        Invariant::I3,
                        "SLAB-USED",
                        "used < cached + remote-freed blocks",
                    )
                    .at_slab(slab_ptr)
                    .values(cached + remote, used));
                }
                let live = used - cached - remote;
                live_total += live;
                if self.model_live.is_some() {
                    let model = (slab.scratch2.get() & LIVE_MASK) as usize;
                    if model != live {
                        return Err(fail(
                            Invariant::I3,
                            "SLAB-USED",
                            "used - cached - remote != the caller's live blocks in this slab",
                        )
                        .at_slab(slab_ptr)
                        .values(model, live));
                    }
                }
            }
        }
        self.report.live_small = live_total;
        if let Some(m) = self.model_live {
            if m != live_total {
                return Err(fail(
                    Invariant::I3,
                    "SLAB-USED",
                    "Σ used disagrees with the caller's live blocks",
                )
                .values(m, live_total));
            }
        }
        Ok(())
    }

    /// Marks a cached large mapping visited (its state word), so a mapping
    /// in two caches, or twice in one, is found.
    unsafe fn visit_large(&self, h: *mut LargeHeader) -> CheckResult {
        // SAFETY: a mapping on one of the caches: a live mapping.
        let hd = unsafe { &*h };
        match hd.state.load(Relaxed) {
            STATE_CACHED => hd.state.store(STATE_VISITED, Relaxed),
            STATE_VISITED => {
                return Err(fail(
                    Invariant::I1,
                    "LARGE-ONE",
                    "large mapping cached twice (handed out twice)",
                )
                .at_block(h as usize));
            }
            _ => {
                return Err(fail(
                    Invariant::I1,
                    "LARGE-ONE",
                    "large mapping in a cache but not in the cached state",
                )
                .at_block(h as usize));
            }
        }
        // SAFETY: forwarded.
        unsafe { self.large_books(hd) }
    }

    /// The global large cache and every heap's own.
    unsafe fn large(&mut self, large: &LargeState, heaps: &HeapRecords<P>) -> CheckResult {
        let mut bytes = 0;
        let mut n = 0;
        // SAFETY: headers on the cache are live mappings.
        for h in unsafe { large.cached.iter() } {
            // SAFETY: as above.
            unsafe { self.visit_large(h)? };
            // SAFETY: as above.
            let (size, slot) = unsafe { ((*h).map_size.load(Relaxed), (*h).slot.get()) };
            // Each (distinct, visited) mapping finds itself at its own
            // slot below the index length, which must equal the count: the
            // index is then exactly the list.
            let entry = large.entries().get(slot);
            if entry.is_none_or(|e| e.header != h || e.size != size) {
                return Err(fail(
                    Invariant::I6,
                    "LARGE-BOOKS",
                    "a cached large mapping is not at its slot of the size index, with its size",
                )
                .at_block(h as usize)
                .values(size, entry.map_or(0, |e| e.size)));
            }
            bytes += size;
            n += 1;
        }
        if large.index_len != n {
            return Err(fail(
                Invariant::I6,
                "LARGE-BOOKS",
                "the large cache's size index has another length than its list",
            )
            .values(n, large.index_len));
        }
        if n != large.cached.len || bytes != large.cached_bytes {
            return Err(fail(
                Invariant::I1,
                "LARGE-ONE",
                "large cache list disagrees with its count or bytes (a cycle?)",
            )
            .values(large.cached.len, n));
        }
        // The byte cap is the one in force at the last insertion, never
        // below the configured one (see `Allocator::large_cap_bytes`).
        if n > self.a.config.large_cache_cap()
            || bytes > large.cap_bytes
            || (n > 0 && large.cap_bytes < self.a.config.large_cache_bytes)
        {
            return Err(
                fail(Invariant::I6, "LARGE-BOOKS", "large cache over its caps")
                    .values(large.cap_bytes, bytes),
            );
        }
        // SAFETY: live heap records, quiescent.
        for heap in unsafe { heaps.iter() } {
            // SAFETY: as above.
            let local = unsafe { &(*heap).large };
            let mut lb = 0;
            for h in local.iter() {
                // SAFETY: forwarded.
                unsafe { self.visit_large(h)? };
                // SAFETY: a live mapping.
                lb += unsafe { (*h).map_size.load(Relaxed) };
                n += 1;
            }
            if lb != local.bytes || local.len > LOCAL_SLOTS || lb > self.a.config.large_local_bytes
            {
                return Err(fail(
                    Invariant::I6,
                    "LARGE-BOOKS",
                    "a heap's own large cache disagrees with its bytes or caps",
                )
                .values(local.bytes, lb));
            }
            bytes += lb;
        }
        self.report.cached_large = n;
        self.cached_large_bytes = bytes;
        Ok(())
    }

    unsafe fn large_books(&self, h: &LargeHeader) -> CheckResult {
        let base = h.base();
        if h.is_over_aligned() {
            return Err(fail(
                Invariant::I1,
                "LARGE-ONE",
                "an over-aligned large mapping is cached (they never are)",
            )
            .at_block(base));
        }
        if self.reg.lookup(base, Self::seg_shift()) != Region::Large {
            return Err(fail(
                Invariant::I6,
                "REG-MARK",
                "large mapping not marked in the registry",
            )
            .at_block(base));
        }
        if self.a.os.is_mapped(base, h.map_size.load(Relaxed)) == Some(false) {
            return Err(fail(
                Invariant::I6,
                "LARGE-BOOKS",
                "large mapping is not a live OS mapping",
            )
            .at_block(base));
        }
        let size = h.map_size.load(Relaxed);
        if size >= self.a.share_min() && !size.is_multiple_of(P::GEOMETRY.segment_size()) {
            return Err(fail(
                Invariant::I6,
                "LARGE-BOOKS",
                "a large mapping of at least two segments is no segment multiple",
            )
            .values(P::GEOMETRY.segment_size(), size)
            .at_block(base));
        }
        Ok(())
    }

    /// The sums: what we hold equals what the OS layer says it gave us.
    unsafe fn books(&self, pool: &PoolState<P>, heaps: &HeapRecords<P>) -> CheckResult {
        let s = &self.a.stats;
        let page = self.a.os.page_size();
        let mut mapped = s.meta_bytes.get();
        let mut committed = s.meta_bytes.get();
        let mut segments = 0usize;
        // SAFETY: live segments.
        for seg in unsafe { pool.all.iter() } {
            mapped += P::GEOMETRY.segment_size();
            // SAFETY: as above.
            committed += PoolState::<P>::committed_size(unsafe { &*seg }, page);
            segments += 1;
        }
        if segments != s.segments_live.get() {
            return Err(fail(
                Invariant::I6,
                "SEG-BOOKS",
                "segment list disagrees with the live-segment counter",
            )
            .values(s.segments_live.get(), segments));
        }
        // Large mappings: the cached ones (walked above) and the live ones
        // (the heaps' counters, summed; each may wrap, the sum is exact).
        let mut snap = crate::Stats::default();
        s.exited.add_to(&mut snap);
        // SAFETY: live heap records, quiescent.
        for h in unsafe { heaps.iter() } {
            // SAFETY: as above.
            unsafe { (*h).stats.add_to(&mut snap) };
        }
        if let Some(n) = self.model_large {
            if n != snap.large_live {
                return Err(fail(
                    Invariant::I6,
                    "LARGE-BOOKS",
                    "live large mappings counted by the heaps differ from the caller's",
                )
                .values(n, snap.large_live));
            }
        }
        let large_bytes = self.cached_large_bytes.wrapping_add(snap.large_live_bytes);
        mapped = mapped.wrapping_add(large_bytes);
        committed = committed.wrapping_add(large_bytes);
        if mapped != s.mapped_bytes.get() {
            return Err(fail(
                Invariant::I6,
                "OS-BOOKS",
                "mapped bytes != segments + large mappings + metadata",
            )
            .values(mapped, s.mapped_bytes.get()));
        }
        if committed != s.committed_bytes.get() {
            return Err(fail(
                Invariant::I6,
                "OS-BOOKS",
                "committed bytes counter disagrees with the committed units",
            )
            .values(committed, s.committed_bytes.get()));
        }
        let our_maps = s.maps.get() - s.unmaps.get();
        let books = self.a.os.books();
        if let Some(books) = books {
            if books.misuse_count != 0 {
                return Err(fail(
                    Invariant::I6,
                    "OS-BOOKS",
                    "the OS layer saw a misuse (double unmap, unmap of a partial mapping, ...)",
                )
                .values(0, books.misuse_count));
            }
            if books.mapped_size != mapped {
                return Err(fail(
                    Invariant::I6,
                    "OS-BOOKS",
                    "the OS layer's mapped bytes differ from ours",
                )
                .values(mapped, books.mapped_size));
            }
            if books.map_count != our_maps {
                return Err(fail(
                    Invariant::I6,
                    "OS-BOOKS",
                    "the OS layer's mapping count differs from ours",
                )
                .values(our_maps, books.map_count));
            }
            if books.committed_size != committed {
                return Err(fail(
                    Invariant::I6,
                    "OS-BOOKS",
                    "the OS layer's committed bytes differ from ours",
                )
                .values(committed, books.committed_size));
            }
        }
        if self.reg.granules() != 0 && self.reg.granules() <= 1 << 20 {
            // Every mark lies in a mapping the OS layer made, so granules
            // past the end of all it ever mapped are not scanned.
            let limit = books.map_or(usize::MAX, |b| {
                self.reg
                    .granules_below(b.mapped_end, P::GEOMETRY.segment_shift)
            });
            // SAFETY: the checker runs quiescent (its contract): nothing
            // marks the registry meanwhile.
            let marked = unsafe { self.reg.count_marked(limit) };
            let expect = segments + self.report.cached_large + snap.large_live;
            if marked != expect {
                return Err(fail(
                    Invariant::I6,
                    "REG-MARK",
                    "registry marks disagree with the mappings",
                )
                .values(expect, marked));
            }
        }
        Ok(())
    }

    /// Turns `b`'s visit mark (`!tag`) back into its tag, if `b` is a
    /// carved block start of the in-use slab at `slab_ptr`; returns false,
    /// touching nothing, if it is not.
    ///
    /// # Safety
    /// Quiescent; `slab_ptr` is a slab record of a live segment.
    unsafe fn unmark(&self, slab_ptr: *mut Slab<P>, b: *mut Block) -> bool {
        // SAFETY: per the contract.
        let slab = unsafe { &*slab_ptr };
        let addr = b as usize;
        if slab.state.get() == SlabState::Free || !slab.is_block(addr) {
            return false;
        }
        let tag = block::tag(addr, self.key);
        // SAFETY: a carved block start of an in-use committed slab.
        unsafe {
            if block::read_tag(b) == !tag {
                (*b).tag = tag;
            }
        }
        true
    }

    /// Turns every `!tag` mark back into the tag, walking the same lists
    /// and stopping at the first node that is not a block start.
    unsafe fn restore(&self, heaps: &HeapRecords<P>, pool: &PoolState<P>, large: &LargeState) {
        let unvisit = |h: *mut LargeHeader| {
            // SAFETY: a cached mapping: live.
            let hd = unsafe { &*h };
            if hd.state.load(Relaxed) == STATE_VISITED {
                hd.state.store(STATE_CACHED, Relaxed);
            }
        };
        // SAFETY: as in `large`.
        unsafe {
            large.cached.iter().for_each(unvisit);
            for heap in heaps.iter() {
                (*heap).large.iter().for_each(unvisit);
            }
        }
        let fix = |slab_ptr: *mut Slab<P>, mut b: *mut Block, limit: usize| {
            let mut n = 0;
            // SAFETY: a slab record of a live segment; `b` is read only
            // once `unmark` found it a carved block start.
            while !b.is_null() && n <= limit && unsafe { self.unmark(slab_ptr, b) } {
                // SAFETY: as above.
                b = unsafe { block::next(b) };
                n += 1;
            }
        };
        // SAFETY: live segments.
        for seg_ptr in unsafe { pool.all.iter() } {
            // SAFETY: as above.
            let seg = unsafe { &*seg_ptr };
            for i in 0..seg.slab_count() {
                let slab_ptr = seg.slab(i);
                // SAFETY: slab records of a live segment.
                let slab = unsafe { &*slab_ptr };
                if slab.state.get() == SlabState::Free || !slab.record_consistent() {
                    continue;
                }
                let limit = slab.carved.get() as usize;
                fix(slab_ptr, slab.free_local.get(), limit);
                fix(slab_ptr, slab.remote.peek().list, limit);
            }
        }
        // SAFETY: live heap records.
        for h in unsafe { heaps.iter() } {
            // SAFETY: as above.
            let heap = unsafe { &*h };
            for c in 0..P::GEOMETRY.class_count() {
                let cache = &heap.caches[c];
                if !cache.is_over() {
                    for i in 0..cache.array_len() as usize {
                        // SAFETY: slots of the cache's array, as checked.
                        let b = unsafe { *cache.base.add(i) };
                        if let Some(slab_ptr) = self.slab_of(b as usize) {
                            // SAFETY: a slab record of a live segment.
                            unsafe { self.unmark(slab_ptr, b) };
                        }
                    }
                }
                let mut b = cache.head;
                let mut n = 0;
                while !b.is_null() && n <= cache.count() {
                    let Some(slab_ptr) = self.slab_of(b as usize) else {
                        break;
                    };
                    // SAFETY: a slab record of a live segment.
                    if !unsafe { self.unmark(slab_ptr, b) } {
                        break;
                    }
                    // SAFETY: a carved block start (`unmark` said so).
                    b = unsafe { block::next(b) };
                    n += 1;
                }
            }
        }
    }
}

/// Whether `slab` is owned by the heap with id `id`, for class `c` (what a
/// heap's class list and its cache of the class require of each slab).
fn owned_for<P: Platform>(slab: &Slab<P>, id: usize, c: usize) -> bool {
    slab.state.get() == SlabState::Owned && slab.owner.load(Relaxed) == id && slab.class() == c
}
