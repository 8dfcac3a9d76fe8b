//! Ownership registry: `owns(ptr)` in O(1), without a system call and
//! without touching user memory.
//!
//! One byte per segment-sized granule of the OS layer's address range,
//! in a table mapped (lazily backed by the OS) at first use. A segment
//! marks its granule with its kind (`SEG_SMALL` or `SEG_MID`: the free path
//! takes the slab shift from this byte behind a predicted branch, instead
//! of from a load of the segment header that the slab address would depend
//! on); a large mapping marks its first granule
//! `LARGE` (its header is there), or, when its block is aligned beyond half
//! a segment, the block's own granule `LARGE_ALIGNED` (header just below). Natively the range is the 47-bit user
//! space: 2^26 granules of 2 MiB, a 64 MiB table of which only the pages
//! covering addresses in use are ever touched.
//!
//! I6 REG-MARK  a granule is marked iff a live segment or large mapping
//!              starts there, or an over-aligned large block does; a
//!              segment's byte names its current kind (checked in check.rs)

use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

use crate::geometry::SlabKind;
use crate::platform::{Os, OsError};

/// The raw byte of a granule where a segment of small slabs starts.
pub(crate) const SEG_SMALL: u8 = 1;
/// ... a large mapping (`Region::Large`).
const BYTE_LARGE: u8 = 2;
/// ... an over-aligned large block (`Region::LargeAligned`).
const BYTE_LARGE_ALIGNED: u8 = 3;
/// ... a segment of mid slabs.
pub(crate) const SEG_MID: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Region {
    None = 0,
    Segment = 1,
    /// A large mapping whose header is at the granule's start.
    Large = 2,
    /// A large block aligned beyond half a segment: the granule starts at
    /// the user block, and the header lies just below it.
    LargeAligned = 3,
}

pub(crate) struct Registry {
    /// The table; null until `init`. Written once (Release) before any
    /// granule can be marked.
    table: AtomicPtr<AtomicU8>,
    range_start: AtomicUsize,
    granules: AtomicUsize,
}

impl Registry {
    pub(crate) const fn new() -> Self {
        Registry {
            table: AtomicPtr::new(core::ptr::null_mut()),
            range_start: AtomicUsize::new(0),
            granules: AtomicUsize::new(0),
        }
    }

    /// Bytes the table needs for an OS layer's range (page rounded).
    pub(crate) fn table_size(os: &impl Os, segment_shift: u32) -> usize {
        let (start, end) = os.address_range();
        let granules = (end - start) >> segment_shift;
        (granules + os.page_size() - 1) & !(os.page_size() - 1)
    }

    /// Maps the table. Called once, under the allocator's init lock.
    pub(crate) fn init<O: Os>(&self, os: &O, segment_shift: u32) -> Result<(), OsError> {
        let (start, end) = os.address_range();
        if let Some(fixed) = O::FIXED_RANGE {
            assert_eq!(
                fixed,
                (start, end),
                "an OS layer's fixed range is its range"
            );
        }
        let size = Self::table_size(os, segment_shift);
        let table = os.map(size, os.page_size())?;
        self.range_start.store(start, Ordering::Relaxed);
        self.granules
            .store((end - start) >> segment_shift, Ordering::Relaxed);
        // ORDERING: Release pairs with the Acquire in `view`, so a reader
        // that sees the table also sees its bounds.
        self.table.store(table.as_ptr().cast(), Ordering::Release);
        Ok(())
    }

    /// The table and its bounds, or `None` before init.
    #[inline]
    pub(crate) fn view(&self) -> Option<RegistryView> {
        // ORDERING: Acquire pairs with the Release in `init`.
        let table = self.table.load(Ordering::Acquire);
        if table.is_null() {
            return None;
        }
        Some(RegistryView {
            table,
            range_start: self.range_start.load(Ordering::Relaxed),
            granules: self.granules.load(Ordering::Relaxed),
        })
    }

    /// [`RegistryView::byte`] straight from the shared table, for an OS
    /// layer with a [`FIXED_RANGE`](Os::FIXED_RANGE) (else through
    /// [`view`](Self::view)), by a thread that has seen `init` complete
    /// (it has a heap of this allocator): no bounds to load, and no
    /// per-thread state to reach first, so the load can start before the
    /// thread's heap pointer is known. Returns the byte and the start of
    /// the granule it describes.
    ///
    /// When the fixed range starts at 0 and holds a power of two of
    /// granules (natively: 2^26 granules of 2 MiB, the 47-bit user space),
    /// the index is `addr >> segment_shift` masked to the table, with no
    /// range test: an address beyond the range reads the byte of the
    /// granule its low bits name, and the start returned is that
    /// granule's, which `addr` is then not in. (The free path takes the
    /// slab record from the returned start, so it reads only our metadata,
    /// and its block-start test compares `addr` itself: an alias is at
    /// least `2^47 - 2^21` bytes from any block of that segment and fails
    /// it, and the cold path then reports the pointer as not ours. A
    /// shift, a copy and a branch fewer per free: pair, fixed-16,
    /// glibc-simple and random-mixed 0 to 1.4 % faster, pinned medians of
    /// 7, three sets of runs.) Otherwise the byte is 0 outside the range
    /// and the start is `addr`'s own granule.
    #[inline(always)]
    pub(crate) fn granule_after_init<O: Os>(&self, addr: usize, segment_shift: u32) -> (u8, usize) {
        let own = addr & !((1usize << segment_shift) - 1);
        let Some((start, end)) = O::FIXED_RANGE else {
            return (self.view().map_or(0, |v| v.byte(addr, segment_shift)), own);
        };
        // Relaxed: the caller's own earlier Acquire (through which it got
        // its heap) ordered the Release store of the table before this.
        let table = self.table.load(Ordering::Relaxed);
        let granules = (end - start) >> segment_shift;
        if start == 0 && granules.is_power_of_two() {
            let g = (addr >> segment_shift) & (granules - 1);
            // SAFETY: `g < granules`, and the table (mapped by `init`, which
            // the caller has seen) has one byte per granule.
            let byte = unsafe { (*table.add(g)).load(Ordering::Relaxed) };
            // The granule's start straight from `addr`, with one `and`
            // (the mask in a register: it does not fit an immediate),
            // rather than `g << segment_shift`, which LLVM computes from
            // `g` after its shift and mask: the free path's slab record
            // address, which all the rest of a free waits for, is then
            // two operations less deep. `opaque` keeps LLVM from turning
            // the `and` back into the shift. pair, every function 64-byte
            // aligned, pinned medians of 11-15, three sets: 0.2829 ->
            // 0.2689, 0.2856 -> 0.2746, 0.2831 -> 0.2747 s; glibc-simple
            // and fixed-size unchanged.
            let mask = crate::fold::opaque((granules - 1) << segment_shift);
            return (byte, addr & mask);
        }
        let view = RegistryView {
            table,
            range_start: 0,
            granules: 0,
        };
        (
            view.with_fixed_bounds::<O>(segment_shift)
                .byte(addr, segment_shift),
            own,
        )
    }

    /// The table mapping, for teardown and the books.
    pub(crate) fn mapping(&self) -> Option<(*mut u8, usize)> {
        self.view().map(|v| (v.table.cast::<u8>(), v.granules))
    }
}

/// A copy of the registry's pointer and bounds, cached by each heap so the
/// free path reads no shared allocator state.
#[derive(Clone, Copy)]
pub(crate) struct RegistryView {
    table: *mut AtomicU8,
    range_start: usize,
    granules: usize,
}

impl RegistryView {
    pub(crate) const EMPTY: RegistryView = RegistryView {
        table: core::ptr::null_mut(),
        range_start: 0,
        granules: 0,
    };

    /// What starts in the granule holding `addr`.
    ///
    /// Relaxed is enough: a block is handed out only after its granule was
    /// marked, and the program's own synchronisation that passes a pointer
    /// between threads orders the mark before any free of it.
    #[inline(always)]
    pub(crate) fn lookup(&self, addr: usize, segment_shift: u32) -> Region {
        match self.byte(addr, segment_shift) {
            SEG_SMALL | SEG_MID => Region::Segment,
            BYTE_LARGE => Region::Large,
            BYTE_LARGE_ALIGNED => Region::LargeAligned,
            _ => Region::None,
        }
    }

    /// This view with its bounds replaced by the OS layer's
    /// [`FIXED_RANGE`](Os::FIXED_RANGE), if it has one: the same values
    /// (`init` asserts it) known at compile time, so [`byte`](Self::byte)
    /// compares with constants instead of loading the bounds. Only for a
    /// view of an initialised registry (a heap's, or the table read after
    /// init): the table must not be null.
    #[inline(always)]
    pub(crate) fn with_fixed_bounds<O: Os>(self, segment_shift: u32) -> RegistryView {
        match O::FIXED_RANGE {
            Some((start, end)) => {
                debug_assert!(!self.table.is_null(), "registry read before init");
                RegistryView {
                    table: self.table,
                    range_start: start,
                    granules: (end - start) >> segment_shift,
                }
            }
            None => self,
        }
    }

    /// The raw byte of the granule holding `addr` (0 outside the range):
    /// what the free fast path branches on.
    #[inline(always)]
    pub(crate) fn byte(&self, addr: usize, segment_shift: u32) -> u8 {
        let g = addr.wrapping_sub(self.range_start) >> segment_shift;
        if g >= self.granules {
            return 0;
        }
        // SAFETY: `g < granules` and the table has one byte per granule.
        unsafe { (*self.table.add(g)).load(Ordering::Relaxed) }
    }

    /// How many granules, from the first, it takes to cover every address
    /// below `end` that lies in the range.
    pub(crate) fn granules_below(&self, end: usize, segment_shift: u32) -> usize {
        if end <= self.range_start {
            return 0;
        }
        (((end - 1 - self.range_start) >> segment_shift) + 1).min(self.granules)
    }

    /// The kind of the segment starting in `addr`'s granule, if one does.
    pub(crate) fn segment_kind(&self, addr: usize, segment_shift: u32) -> Option<SlabKind> {
        match self.byte(addr, segment_shift) {
            SEG_SMALL => Some(SlabKind::Small),
            SEG_MID => Some(SlabKind::Mid),
            _ => None,
        }
    }

    /// Marks the granule of a segment at `base` with its kind.
    pub(crate) fn mark_segment(&self, base: usize, segment_shift: u32, kind: SlabKind) {
        let byte = match kind {
            SlabKind::Small => SEG_SMALL,
            SlabKind::Mid => SEG_MID,
        };
        self.mark_byte(base, segment_shift, byte);
    }

    /// Marks (or clears, with `Region::None`) the granule of `base`.
    /// Segments are marked with `mark_segment`, which knows their kind.
    pub(crate) fn mark(&self, base: usize, segment_shift: u32, region: Region) {
        let byte = match region {
            Region::None => 0,
            Region::Segment => panic!("a segment is marked with mark_segment"),
            Region::Large => BYTE_LARGE,
            Region::LargeAligned => BYTE_LARGE_ALIGNED,
        };
        self.mark_byte(base, segment_shift, byte);
    }

    fn mark_byte(&self, base: usize, segment_shift: u32, byte: u8) {
        let g = base.wrapping_sub(self.range_start) >> segment_shift;
        assert!(
            g < self.granules,
            "mapping outside the OS layer's address range"
        );
        // SAFETY: bounds checked above.
        unsafe { (*self.table.add(g)).store(byte, Ordering::Relaxed) };
    }

    /// Number of marked granules among the first `limit` (at most all of
    /// them; scans the table: checker use, small tables only). Eight
    /// granules per load: the checker runs after every op of a simulated
    /// trace, and a byte at a time this scan was half of `hakmem-sim
    /// explore`'s time.
    ///
    /// # Safety
    /// Nothing marks or clears a granule during the call (the checker's
    /// quiescence): whole words of the table are read non-atomically.
    pub(crate) unsafe fn count_marked(&self, limit: usize) -> usize {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const ONES: u64 = 0x0101_0101_0101_0101;
        let limit = limit.min(self.granules);
        let words = limit / 8;
        let base = self.table.cast::<u64>().cast_const();
        // The table is mapped page-aligned (`init`).
        debug_assert!(base.is_aligned());
        let mut n = 0;
        for i in 0..words {
            // SAFETY: word `i` lies in the table (`8 * i + 8 <= limit`)
            // and is aligned; per the contract nobody writes it meanwhile.
            let w = unsafe { base.add(i).read() };
            // Bit 7 of each byte: set iff the byte is not zero (its low
            // seven bits add up to bit 7, or bit 7 is its own); no carry
            // leaves a byte. Then the byte sum of those bits, in the top
            // byte of the product.
            let nonzero = (((w & LOW7) + LOW7) | w) & !LOW7;
            n += ((nonzero >> 7).wrapping_mul(ONES) >> 56) as usize;
        }
        for g in words * 8..limit {
            // SAFETY: `g < limit <= granules`.
            if unsafe { (*self.table.add(g)).load(Ordering::Relaxed) } != 0 {
                n += 1;
            }
        }
        n
    }

    pub(crate) fn granules(&self) -> usize {
        self.granules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_marked_counts_every_nonzero_byte_of_the_table() {
        // 301 granules: 37 whole words and a tail of 5.
        let granules: usize = 8 * 37 + 5;
        let mut words = vec![0u64; granules.div_ceil(8)];
        let view = RegistryView {
            table: words.as_mut_ptr().cast(),
            range_start: 0,
            granules,
        };
        let naive = |limit: usize| {
            (0..limit.min(granules))
                // SAFETY: `g < granules`, inside `words`.
                .filter(|&g| unsafe { (*view.table.add(g)).load(Ordering::Relaxed) } != 0)
                .count()
        };
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200 {
            // Every byte value a granule can hold, and others (0x80 and
            // 0xff test the top bit), at random granules, ends included.
            for _ in 0..round % 40 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let g = match rng % 5 {
                    0 => 0,
                    1 => granules - 1,
                    _ => (rng >> 8) as usize % granules,
                };
                let byte = [
                    0,
                    SEG_SMALL,
                    BYTE_LARGE,
                    BYTE_LARGE_ALIGNED,
                    SEG_MID,
                    0x80,
                    0xff,
                    0x7f,
                ][(rng >> 40) as usize % 8];
                // SAFETY: `g < granules`.
                unsafe { (*view.table.add(g)).store(byte, Ordering::Relaxed) };
            }
            // A prefix ending anywhere: in a word, on its edge, in the tail.
            let limit = [usize::MAX, granules, 0, 8, (rng >> 20) as usize % granules][round % 5];
            assert_eq!(
                // SAFETY: single-threaded.
                unsafe { view.count_marked(limit) },
                naive(limit),
                "round {round}, limit {limit}"
            );
        }
        assert!(naive(usize::MAX) > 0);
        drop(words);
    }

    #[test]
    fn granules_below_covers_exactly_the_addresses_below_the_end() {
        let view = RegistryView {
            table: core::ptr::null_mut(),
            range_start: 0x4000_0000,
            granules: 64,
        };
        let shift = 16;
        assert_eq!(view.granules_below(0, shift), 0);
        assert_eq!(view.granules_below(0x4000_0000, shift), 0);
        assert_eq!(view.granules_below(0x4000_0001, shift), 1);
        assert_eq!(view.granules_below(0x4001_0000, shift), 1);
        assert_eq!(view.granules_below(0x4001_0001, shift), 2);
        assert_eq!(view.granules_below(0x4040_0000, shift), 64);
        assert_eq!(view.granules_below(usize::MAX, shift), 64);
    }
}
