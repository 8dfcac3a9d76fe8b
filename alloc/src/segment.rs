//! Segments ("SuperSlabs"): aligned mappings carved into slabs, with their
//! metadata at the start.
//!
//! Layout of a segment at `base` (aligned to the segment size):
//!
//! ```text
//! base                      header_end            slab 1           slab 2
//! | Segment | Slab[0..max] |  slab 0 blocks ...  | blocks ...      | ...
//! ```
//!
//! `segment = addr & !segment_mask`, `slab = (addr - segment) >> slab_shift`:
//! no per-block header. Slab 0 starts after the header, rounded up to the
//! class alignment; slab `i > 0` starts at `base + (i << slab_shift)`.
//!
//! Invariants (checked in check.rs):
//! I2 SEG-LAYOUT  no block area starts below `header_end()`, none ends past
//!                its slab; the free mask, the slab states and `used_slabs`
//!                agree
//! I6 SEG-BOOKS   every segment is one live OS mapping, marked in the
//!                registry

use core::cell::Cell;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::geometry::SlabKind;
use crate::platform::Platform;
use crate::size_class::class_align;
use crate::slab::{Slab, SlabState};
use crate::zoo::{Bug, Zoo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SegmentState {
    /// Holds at least one bound or abandoned slab, or has just been made.
    InUse = 0,
    /// Every slab is free; on the pool's LRU of empty segments.
    Cached = 1,
}

#[repr(C, align(64))]
pub(crate) struct Segment<P: Platform> {
    /// `slab_shift` of the current kind; read by every free (Relaxed: it
    /// only changes while the segment is empty).
    pub(crate) slab_shift: AtomicU8,
    pub(crate) kind: Cell<SlabKind>,
    pub(crate) state: Cell<SegmentState>,
    /// Bit `i`: slab `i` is free (pool lock).
    pub(crate) free_mask: Cell<u64>,
    /// Slabs not free (owned or abandoned) (pool lock).
    pub(crate) used_slabs: Cell<u32>,
    /// Bit `u`: unit `u` (a small-slab-sized stretch) is committed. Unit 0
    /// is committed from `data_floor()` on; the header page never leaves.
    pub(crate) committed_units: Cell<u64>,
    /// Links on the pool's partial list of its kind, or on the LRU.
    pub(crate) next: Cell<*mut Segment<P>>,
    pub(crate) prev: Cell<*mut Segment<P>>,
    /// Links on the list of every segment (for the checker and teardown).
    pub(crate) all_next: Cell<*mut Segment<P>>,
    pub(crate) all_prev: Cell<*mut Segment<P>>,
    /// Position on the LRU (a tick of the pool's clock) when cached.
    pub(crate) lru_tick: Cell<u64>,
}

impl<P: Platform> Segment<P> {
    const SLABS_OFFSET: usize = (size_of::<Segment<P>>() + 63) & !63;

    /// End of the header: the slab table for the most slabs any kind has.
    #[inline(always)]
    pub(crate) const fn header_end() -> usize {
        Self::SLABS_OFFSET + P::GEOMETRY.max_slab_count() * size_of::<Slab<P>>()
    }

    /// Where the block area of slab 0 may start for `class_idx`: the header
    /// end rounded up to the class alignment. Zoo bug 4 uses a hard-coded
    /// offset one slab record short of the real header.
    #[inline]
    pub(crate) fn data_offset(class_idx: usize, zoo: Zoo) -> usize {
        let end = if zoo.on(Bug::HeaderOverlap) {
            Self::header_end() - size_of::<Slab<P>>()
        } else {
            Self::header_end()
        };
        let a = class_align(class_idx);
        (end + a - 1) & !(a - 1)
    }

    /// First byte of unit 0 that can be decommitted (the header stays).
    #[inline]
    pub(crate) fn data_floor(page_size: usize) -> usize {
        (Self::header_end() + page_size - 1) & !(page_size - 1)
    }

    /// The segment holding `addr` (no check that there is one).
    #[inline(always)]
    pub(crate) fn of(addr: usize) -> *mut Segment<P> {
        (addr & !P::GEOMETRY.segment_mask()) as *mut Segment<P>
    }

    #[inline(always)]
    pub(crate) fn base(&self) -> usize {
        self as *const Self as usize
    }

    /// The metadata of slab `idx`.
    #[inline(always)]
    pub(crate) fn slab(&self, idx: usize) -> *mut Slab<P> {
        debug_assert!(idx < P::GEOMETRY.max_slab_count());
        (self.base() + Self::SLABS_OFFSET + idx * size_of::<Slab<P>>()) as *mut Slab<P>
    }

    /// Index of a slab's metadata in this segment's table.
    #[inline]
    pub(crate) fn slab_index(&self, slab: *const Slab<P>) -> usize {
        (slab as usize - self.base() - Self::SLABS_OFFSET) / size_of::<Slab<P>>()
    }

    /// The slab covering `addr`, which lies in this segment.
    #[inline(always)]
    pub(crate) fn slab_of(&self, addr: usize) -> *mut Slab<P> {
        Self::slab_at(addr, self.slab_shift.load(Relaxed) as u32)
    }

    /// The slab record covering `addr` in the segment holding it, for a
    /// slab shift known without reading the header (from the registry's
    /// kind byte): no load on the way to the record's address.
    #[inline(always)]
    pub(crate) fn slab_at(addr: usize, slab_shift: u32) -> *mut Slab<P> {
        Self::slab_in(addr & !P::GEOMETRY.segment_mask(), addr, slab_shift)
    }

    /// [`slab_at`](Self::slab_at) in the segment starting at `base`, for
    /// `addr`'s offset in a segment (its low bits): the record's address
    /// depends on `base`, so it is one of that segment's records even if
    /// `addr` lies elsewhere (see `Registry::granule_after_init`).
    ///
    /// The address is computed into a register of its own (an asm `lea`
    /// on x86_64), so that the free path reads every field of the record
    /// as `disp(reg)`: LLVM otherwise addressed the record's fields as
    /// `disp(idx,base)` and built a third pointer with `lea` and `add` for
    /// the rest.
    #[inline(always)]
    pub(crate) fn slab_in(base: usize, addr: usize, slab_shift: u32) -> *mut Slab<P> {
        let idx = ((addr & P::GEOMETRY.segment_mask()) >> slab_shift) * size_of::<Slab<P>>();
        #[cfg(target_arch = "x86_64")]
        {
            let a: usize;
            // SAFETY: computes `idx + base + SLABS_OFFSET` into a register;
            // reads and writes no memory, no stack and no flags.
            unsafe {
                core::arch::asm!(
                    "lea {a}, [{i} + {b} + {o}]",
                    a = lateout(reg) a,
                    i = in(reg) idx,
                    b = in(reg) base,
                    o = const Self::SLABS_OFFSET,
                    options(pure, nomem, nostack, preserves_flags)
                )
            };
            a as *mut Slab<P>
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            (base + Self::SLABS_OFFSET + idx) as *mut Slab<P>
        }
    }

    #[inline]
    pub(crate) fn slab_count(&self) -> usize {
        P::GEOMETRY.slab_count(self.kind.get())
    }

    /// `[start, end)` of slab `idx` as address range (slab 0 from `base`).
    #[inline]
    pub(crate) fn slab_range(&self, idx: usize) -> (usize, usize) {
        let shift = P::GEOMETRY.slab_shift(self.kind.get());
        (
            self.base() + (idx << shift),
            self.base() + ((idx + 1) << shift),
        )
    }

    /// The units (small-slab-sized stretches) slab `idx` covers, as a mask.
    #[inline]
    pub(crate) fn unit_mask(&self, idx: usize) -> u64 {
        let per =
            1usize << (P::GEOMETRY.slab_shift(self.kind.get()) - P::GEOMETRY.small_slab_shift);
        let bits = if per >= 64 {
            u64::MAX
        } else {
            (1u64 << per) - 1
        };
        bits << (idx * per)
    }

    /// Whether slab 0 can hold at least one block of every class of `kind`.
    pub(crate) fn slab0_usable(kind: SlabKind) -> bool {
        let max_block = match kind {
            SlabKind::Small => P::GEOMETRY.small_max_size,
            SlabKind::Mid => P::GEOMETRY.mid_max_size,
        };
        Self::header_end() + max_block <= P::GEOMETRY.slab_size(kind)
    }

    /// The free mask of an empty segment of `kind`.
    pub(crate) fn empty_mask(kind: SlabKind) -> u64 {
        let n = P::GEOMETRY.slab_count(kind);
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        if Self::slab0_usable(kind) {
            all
        } else {
            all & !1
        }
    }

    /// Writes a fresh header into a new mapping.
    ///
    /// # Safety
    /// `base` is a fresh, committed, segment-aligned mapping of one segment.
    pub(crate) unsafe fn init(base: usize, kind: SlabKind) -> *mut Segment<P> {
        let seg = base as *mut Segment<P>;
        let units = P::GEOMETRY.segment_size() >> P::GEOMETRY.small_slab_shift;
        let all_units = if units >= 64 {
            u64::MAX
        } else {
            (1u64 << units) - 1
        };
        // SAFETY: the mapping is ours, large enough for the header (checked
        // at compile time in `layout_checks`) and aligned.
        unsafe {
            ptr::write(
                seg,
                Segment {
                    slab_shift: AtomicU8::new(P::GEOMETRY.slab_shift(kind) as u8),
                    kind: Cell::new(kind),
                    state: Cell::new(SegmentState::InUse),
                    free_mask: Cell::new(Self::empty_mask(kind)),
                    used_slabs: Cell::new(0),
                    committed_units: Cell::new(all_units),
                    next: Cell::new(ptr::null_mut()),
                    prev: Cell::new(ptr::null_mut()),
                    all_next: Cell::new(ptr::null_mut()),
                    all_prev: Cell::new(ptr::null_mut()),
                    lru_tick: Cell::new(0),
                },
            );
            for i in 0..P::GEOMETRY.max_slab_count() {
                ptr::write((*seg).slab(i), Slab::new());
            }
        }
        seg
    }

    /// Switches an empty segment to another kind.
    pub(crate) fn set_kind(&self, kind: SlabKind) {
        debug_assert_eq!(self.used_slabs.get(), 0);
        self.kind.set(kind);
        self.slab_shift
            .store(P::GEOMETRY.slab_shift(kind) as u8, Relaxed);
        self.free_mask.set(Self::empty_mask(kind));
        for i in 0..P::GEOMETRY.max_slab_count() {
            // SAFETY: every slab record was initialised by `init`.
            let slab = unsafe { &*self.slab(i) };
            debug_assert_eq!(slab.state.get(), SlabState::Free);
            slab.unbind();
        }
    }

    /// Drops the slab records before the mapping goes away.
    ///
    /// # Safety
    /// Nothing refers to the segment any more.
    pub(crate) unsafe fn destroy(seg: *mut Segment<P>) {
        // SAFETY: per the contract; every record was written by `init`.
        unsafe {
            for i in 0..P::GEOMETRY.max_slab_count() {
                ptr::drop_in_place((*seg).slab(i));
            }
            ptr::drop_in_place(seg);
        }
    }
}

/// Compile-time layout checks for a platform; referenced from the
/// allocator constructor so every instantiation is checked.
pub(crate) struct LayoutChecks<P: Platform>(core::marker::PhantomData<P>);

impl<P: Platform> LayoutChecks<P> {
    pub(crate) const OK: () = {
        assert!(P::GEOMETRY.validate().is_ok(), "invalid geometry");
        assert!(P::GEOMETRY.max_slab_count() <= 64, "free masks are u64");
        assert!(
            (P::GEOMETRY.segment_size() >> P::GEOMETRY.small_slab_shift) <= 64,
            "committed-unit masks are u64"
        );
        assert!(
            Segment::<P>::header_end() <= P::GEOMETRY.slab_size(SlabKind::Small),
            "the segment header must fit in slab 0 of a small segment (a Sched with big atomics overlaps slab 1)"
        );
        assert!(
            P::GEOMETRY.slab_size(SlabKind::Mid) / crate::geometry::MIN_BLOCK_SIZE
                <= crate::remote::MAX_COUNT
                && P::GEOMETRY.slab_size(SlabKind::Small) / crate::geometry::MIN_BLOCK_SIZE
                    <= crate::remote::MAX_COUNT,
            "a slab's blocks must fit the remote queue's node count (REMOTE-COUNT)"
        );
        assert!(
            core::mem::offset_of!(Slab<P>, cache_offset) + size_of::<u32>() <= 64
                && core::mem::offset_of!(Slab<P>, start_mul) < 64
                && core::mem::offset_of!(Slab<P>, carved_limit) < 64
                && core::mem::offset_of!(Slab<P>, mul) < 64
                && core::mem::offset_of!(Slab<P>, owner) < 64
                && core::mem::offset_of!(Slab<P>, class_idx) < 64
                && core::mem::offset_of!(Slab<P>, remote) >= 64,
            "the fields every free reads share slab line 0, and remote pushes stay out of it"
        );
    };
}
