//! Size classes: 16-byte steps up to 128 bytes, then four classes per
//! power of two (160, 192, 224, 256, 320, ...). Internal waste is at most
//! 25 % of the request above 128 bytes (and at most 15 bytes below), never
//! the 50 % of power-of-two classes.
//!
//! Every class size is a multiple of 16, so every block is 16-aligned; a
//! class `2^k * {5,6,7,8}/4 * ...` is a multiple of `2^(k-2)`, which is how
//! larger alignments are served from slabs (see [`class_for`]).

use crate::geometry::{MAX_SLAB_ALIGN, MIN_ALIGN, MIN_BLOCK_SIZE};

/// Classes 0..8 are 16..=128 in steps of 16.
const LINEAR_CLASSES: usize = 8;
const LINEAR_MAX: usize = 128;
/// Classes per power of two above `LINEAR_MAX`.
const STEPS_PER_OCTAVE: usize = 4;

/// The largest class size in the table (geometries use a prefix of it).
pub const MAX_CLASS_SIZE: usize = 256 * 1024;
/// Number of classes in the table.
pub const CLASS_TABLE_LEN: usize = class_of_size(MAX_CLASS_SIZE) + 1;
/// The most classes any geometry can use; sizes the per-heap arrays.
pub const MAX_CLASSES: usize = CLASS_TABLE_LEN;

/// The block size (the stride) of class `class_idx`.
///
/// This is the one stride definition: capacity, carving, refill and the
/// checker all use it.
#[inline(always)]
pub const fn class_size(class_idx: usize) -> usize {
    if class_idx < LINEAR_CLASSES {
        (class_idx + 1) * MIN_BLOCK_SIZE
    } else {
        let k = class_idx - LINEAR_CLASSES;
        let octave = k / STEPS_PER_OCTAVE; // 0 => (128, 256]
        let step = k % STEPS_PER_OCTAVE + 1; // 1..=4
        let base = LINEAR_MAX << octave;
        base + step * (base / STEPS_PER_OCTAVE)
    }
}

/// The smallest class whose size is at least `size` (`size == 0` is class 0).
#[inline(always)]
pub const fn class_of_size(size: usize) -> usize {
    if size <= LINEAR_MAX {
        let s = if size == 0 { 1 } else { size };
        s.div_ceil(MIN_BLOCK_SIZE) - 1
    } else {
        let s = size - 1; // s >= 128
        let msb = (usize::BITS - 1 - s.leading_zeros()) as usize; // >= 7
        let quarter = (s >> (msb - 2)) & (STEPS_PER_OCTAVE - 1);
        LINEAR_CLASSES + (msb - 7) * STEPS_PER_OCTAVE + quarter
    }
}

/// Lookup table for requests up to [`SMALL_LOOKUP_MAX`] bytes, indexed by
/// `(size + 15) >> 4`: `class_of` is a shift and a byte load. (The malloc
/// fast path does not compute the class: each heap keeps a table from
/// the size to the class's cache, see `HeapData::small_cache`.)
pub const SMALL_LOOKUP_MAX: usize = 1024;
pub const SMALL_LOOKUP_LEN: usize = SMALL_LOOKUP_MAX / 16 + 1;
static SMALL_LOOKUP: [u8; SMALL_LOOKUP_LEN] = {
    let mut t = [0u8; SMALL_LOOKUP_LEN];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_of_size(i * 16) as u8;
        i += 1;
    }
    t
};

/// The class for `size` with the default alignment, by table below 1 KiB.
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    if size <= SMALL_LOOKUP_MAX {
        SMALL_LOOKUP[(size + 15) >> 4] as usize
    } else {
        class_of_size(size)
    }
}

/// The class serving `size` bytes aligned to `align`, or `None` when no
/// class of the table does (too big, or an alignment slabs do not give).
///
/// A block of class `c` is aligned to `align` when `class_size(c)` is a
/// multiple of `align` and the slab's first block is aligned to the largest
/// power of two dividing the class size (capped at [`MAX_SLAB_ALIGN`]); the
/// segment layout guarantees the latter (see `segment::block_start`).
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= MIN_ALIGN {
        return if size <= MAX_CLASS_SIZE {
            Some(class_of(size))
        } else {
            None
        };
    }
    if align > MAX_SLAB_ALIGN || !align.is_power_of_two() {
        return None;
    }
    let want = if size < align { align } else { size };
    if want > MAX_CLASS_SIZE {
        return None;
    }
    let mut c = class_of_size(want);
    while c < CLASS_TABLE_LEN {
        if class_size(c).is_multiple_of(align) {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// The largest power of two dividing `class_size(c)`, capped at
/// [`MAX_SLAB_ALIGN`]: the alignment every block of the class gets.
#[inline]
pub const fn class_align(class_idx: usize) -> usize {
    let s = class_size(class_idx);
    let a = 1usize << s.trailing_zeros();
    if a > MAX_SLAB_ALIGN {
        MAX_SLAB_ALIGN
    } else {
        a
    }
}

/// The block-start test in one multiply and one compare.
///
/// Let `mul = floor(2^64 / stride) + 1`; then `stride * mul = 2^64 + step`
/// with `1 <= step <= stride`. For an offset `off = q * stride + t` from
/// the first block (`0 <= t < stride`, `q` signed: an address below the
/// block area gives a negative `q`), the residue `off * mul mod 2^64` is
/// `q * step + t * mul mod 2^64`, so:
/// - a block start (`t == 0`, `q >= 0`) has residue `q * step`, which grows
///   with the block index `q`;
/// - an address below the area (`t == 0`, `q < 0`) wraps to
///   `2^64 - |q| * step`;
/// - any other address has `mul <= t * mul <= 2^64 - mul + step`, moved by
///   at most `|q| * step <= |off| + stride`.
///
/// With `|off| < 2^22` (inside a 2 MiB segment), `stride <= 2^18` and so
/// `mul > 2^46`, the last two cases land in `[2^45, 2^64)`, far above the
/// residue of any block. So `residue < carved * step` says in one compare
/// that the address is a block start *and* inside the carved area, and the
/// block index is `residue / step`. (The divisibility half is Lemire, Kaser
/// and Kurz's "Faster remainder by direct computation", 2019; choosing
/// `mul` one above `floor(2^64 / stride)` makes `step` non-zero for powers
/// of two too, which folds the bound into the same compare.) An earlier
/// version multiplied by the inverse of the stride's odd part and rotated
/// by its power of two: the same single compare, but the rotate by a loaded
/// count cost two more instructions on every free (pair 0.297 -> 0.282 s).
/// Checked exhaustively per class over every offset below 2^22 either way,
/// in tests. Beyond that reach some addresses far from the slab do pass
/// (with `step > 1`, `carved * step` residues cannot all be block starts),
/// so a caller with an address that may lie anywhere bounds its offset
/// first (`Slab::is_block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTest {
    pub mul: u64,
    pub step: u64,
}

#[inline(always)]
pub const fn block_test(stride: usize) -> BlockTest {
    let s = stride as u64;
    // floor(2^64 / s) is floor((2^64 - 1) / s), except for a power of two,
    // which divides 2^64 and so gives one more.
    let floor = if s.is_power_of_two() {
        u64::MAX / s + 1
    } else {
        u64::MAX / s
    };
    let mul = floor + 1;
    BlockTest {
        mul,
        step: mul.wrapping_mul(s),
    }
}

/// The residue of the block test for `off = addr - start`, given
/// `start_mul = start * mul` (wrapping) instead of `start`: modulo 2^64,
/// `(addr - start) * mul` equals `addr * mul - start * mul`, and the free
/// path multiplies `addr` as it comes.
#[inline(always)]
pub const fn block_residue_at(addr: usize, start_mul: u64, mul: u64) -> u64 {
    (addr as u64).wrapping_mul(mul).wrapping_sub(start_mul)
}

/// How far from a block area's start (either way) [`block_test`] is exact:
/// the proof above takes `|off| < 2^22`, and the tests check every such
/// offset.
pub(crate) const BLOCK_TEST_REACH: usize = 1 << 22;

// `block_test`'s proof needs `mul > 2^46`, so strides of at most 2^18.
const _: () = assert!(MAX_CLASS_SIZE <= 1 << 18);
const _: () = assert!(class_size(0) == 16 && class_size(7) == 128);
const _: () = assert!(class_size(8) == 160 && class_size(11) == 256 && class_size(12) == 320);
const _: () = assert!(class_size(CLASS_TABLE_LEN - 1) == MAX_CLASS_SIZE);
const _: () = assert!(CLASS_TABLE_LEN <= u8::MAX as usize);
const _: () = assert!(MIN_BLOCK_SIZE == MIN_ALIGN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_class_that_holds_it() {
        for size in 0..=MAX_CLASS_SIZE {
            let c = class_of_size(size);
            assert!(class_size(c) >= size, "size {size} class {c}");
            if c > 0 {
                assert!(
                    class_size(c - 1) < size.max(1),
                    "size {size} class {c} not smallest"
                );
            }
            if size <= SMALL_LOOKUP_MAX {
                assert_eq!(class_of(size), c);
            }
        }
    }

    #[test]
    fn classes_are_increasing_16_aligned_and_waste_is_bounded() {
        for c in 1..CLASS_TABLE_LEN {
            let (prev, cur) = (class_size(c - 1), class_size(c));
            assert!(cur > prev);
            assert_eq!(cur % 16, 0);
            if prev >= LINEAR_MAX {
                // the worst request is prev + 1: waste (cur - prev - 1) / (prev + 1) <= 25 %
                assert!(
                    (cur - prev - 1) * 4 <= prev + 1,
                    "class {c}: {prev} -> {cur}"
                );
            } else {
                assert!(cur - prev <= 16);
            }
        }
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        let mut align = 32;
        while align <= MAX_SLAB_ALIGN {
            for size in [1, align - 1, align, align + 1, 3 * align, 10_000] {
                let c = class_for(size, align).unwrap();
                assert!(class_size(c) >= size);
                assert_eq!(class_size(c) % align, 0);
                assert!(class_align(c) >= align);
            }
            align *= 2;
        }
        assert_eq!(class_for(100, 8192), None);
        assert_eq!(class_for(100, 48), None);
        assert_eq!(class_for(MAX_CLASS_SIZE + 1, 16), None);
    }

    #[test]
    fn block_test_constants() {
        for c in 0..CLASS_TABLE_LEN {
            let stride = class_size(c);
            let BlockTest { mul, step } = block_test(stride);
            assert_eq!(mul, ((1u128 << 64) / stride as u128) as u64 + 1);
            assert_eq!(
                stride as u128 * mul as u128,
                (1u128 << 64) + step as u128,
                "stride {stride}"
            );
            assert!(
                step >= 1 && step <= stride as u64,
                "stride {stride} step {step}"
            );
            // the bound the proof needs: far residues stay above 2^45
            assert!(mul > 1 << 46, "stride {stride}");
        }
    }

    /// Every offset below 2^22 (twice a segment), either side of the first
    /// block: the residue is `q * step` exactly at block starts and at least
    /// 2^45 everywhere else (below the area included).
    #[test]
    fn block_residue_is_exact_for_every_offset_in_a_segment() {
        const SEG: i64 = BLOCK_TEST_REACH as i64;
        for c in 0..CLASS_TABLE_LEN {
            let stride = class_size(c) as i64;
            let BlockTest { mul, step } = block_test(stride as usize);
            for off in -SEG..SEG {
                let r = (off as u64).wrapping_mul(mul);
                if off >= 0 && off % stride == 0 {
                    assert_eq!(r, (off / stride) as u64 * step, "stride {stride} off {off}");
                } else {
                    assert!(r >= 1 << 45, "stride {stride} off {off}: residue {r}");
                }
            }
        }
    }

    #[test]
    fn block_residue_at_is_the_residue_of_the_offset() {
        let starts = [
            0x1000usize,
            0x2000_0004_1040,
            0x7fff_ffe0_0040,
            0x5555_5555_5550,
        ];
        for c in 0..CLASS_TABLE_LEN {
            let BlockTest { mul, .. } = block_test(class_size(c));
            for start in starts {
                let start_mul = (start as u64).wrapping_mul(mul);
                for off in (0..(1usize << 20))
                    .step_by(13)
                    .chain([usize::MAX, 1 << 47, 1 << 63])
                {
                    for addr in [start.wrapping_add(off), start.wrapping_sub(off)] {
                        assert_eq!(
                            block_residue_at(addr, start_mul, mul),
                            (addr.wrapping_sub(start) as u64).wrapping_mul(mul),
                            "class {c} start {start:#x} addr {addr:#x}"
                        );
                    }
                }
            }
        }
    }
}
