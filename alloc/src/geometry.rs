//! Sizes, shifts and masks: the one place they are defined.
//!
//! A [`Geometry`] is part of a [`Platform`](crate::Platform) (an associated
//! `const`), so the native build folds every shift and mask into the code
//! while the simulation and shuttle use tiny segments and slabs, where the
//! slab-empty and segment-empty transitions happen within a few ops.

/// The two kinds of segment: one holds many small slabs, the other fewer,
/// larger slabs for mid-sized blocks. A segment has one kind at a time
/// (it may change kind after it has been empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SlabKind {
    Small = 0,
    Mid = 1,
}

impl SlabKind {
    pub const ALL: [SlabKind; 2] = [SlabKind::Small, SlabKind::Mid];

    #[inline(always)]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Sizes of segments, slabs and the class limits.
///
/// Invariants (checked by [`Geometry::validate`], at compile time for the
/// built-in geometries):
/// GEO-NEST  slab sizes divide the segment size; a segment holds at least 2 slabs of each kind
/// GEO-CLASS `small_max_size <= mid_max_size`, both are class sizes, every
///           class of a kind fits at least [`MIN_SLAB_BLOCKS`] times in its
///           slab, and `mid_max_size >= SMALL_LOOKUP_MAX` (the heap's size
///           table sends every size up to that to a class with a cache
///           array, whose pop reads the slot below `top`)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// log2 of the segment size; segments are aligned to their size.
    pub segment_shift: u32,
    /// log2 of the slab size in small-kind segments.
    pub small_slab_shift: u32,
    /// log2 of the slab size in mid-kind segments.
    pub mid_slab_shift: u32,
    /// Largest block size (bytes) served from small slabs.
    pub small_max_size: usize,
    /// Largest block size (bytes) served from slabs at all; bigger requests
    /// get a mapping of their own (the large tier).
    pub mid_max_size: usize,
}

/// Every class of a kind fits this many times in one slab of that kind.
pub const MIN_SLAB_BLOCKS: usize = 8;

/// Smallest block, and the alignment every block has at least.
pub const MIN_BLOCK_SIZE: usize = 16;
pub const MIN_ALIGN: usize = 16;

/// Largest alignment served from slabs; bigger alignments go to the large tier.
pub const MAX_SLAB_ALIGN: usize = 4096;

impl Geometry {
    /// Production: 2 MiB segments, 64 KiB small slabs, 512 KiB mid slabs,
    /// blocks up to 32 KiB in slabs.
    pub const PRODUCTION: Geometry = Geometry {
        segment_shift: 21,
        small_slab_shift: 16,
        mid_slab_shift: 19,
        small_max_size: 4096,
        mid_max_size: 32 * 1024,
    };

    /// Tests: 64 KiB segments, 4 KiB small slabs, 16 KiB mid slabs, blocks up
    /// to 2 KiB in slabs; a slab empties or fills within a handful of ops.
    pub const TINY: Geometry = Geometry {
        segment_shift: 16,
        small_slab_shift: 12,
        mid_slab_shift: 14,
        small_max_size: 256,
        mid_max_size: 2048,
    };

    #[inline(always)]
    pub const fn segment_size(&self) -> usize {
        1 << self.segment_shift
    }

    #[inline(always)]
    pub const fn segment_mask(&self) -> usize {
        self.segment_size() - 1
    }

    #[inline(always)]
    pub const fn slab_shift(&self, kind: SlabKind) -> u32 {
        match kind {
            SlabKind::Small => self.small_slab_shift,
            SlabKind::Mid => self.mid_slab_shift,
        }
    }

    #[inline(always)]
    pub const fn slab_size(&self, kind: SlabKind) -> usize {
        1 << self.slab_shift(kind)
    }

    /// Slabs per segment of a kind.
    #[inline(always)]
    pub const fn slab_count(&self, kind: SlabKind) -> usize {
        1 << (self.segment_shift - self.slab_shift(kind))
    }

    /// The most slabs any segment has (sizes the slab table in the header).
    #[inline(always)]
    pub const fn max_slab_count(&self) -> usize {
        let a = self.slab_count(SlabKind::Small);
        let b = self.slab_count(SlabKind::Mid);
        if a > b {
            a
        } else {
            b
        }
    }

    /// Which kind of slab serves blocks of `block_size` bytes.
    #[inline(always)]
    pub const fn kind_for(&self, block_size: usize) -> SlabKind {
        if block_size <= self.small_max_size {
            SlabKind::Small
        } else {
            SlabKind::Mid
        }
    }

    /// Number of size classes served from slabs under this geometry.
    pub const fn class_count(&self) -> usize {
        crate::size_class::class_of_size(self.mid_max_size) + 1
    }

    /// Checks GEO-NEST and GEO-CLASS; `Err` names the broken one.
    pub const fn validate(&self) -> Result<(), &'static str> {
        if self.small_slab_shift >= self.segment_shift || self.mid_slab_shift >= self.segment_shift
        {
            return Err("GEO-NEST: a slab is not smaller than its segment");
        }
        if self.slab_count(SlabKind::Small) < 2 || self.slab_count(SlabKind::Mid) < 2 {
            return Err("GEO-NEST: a segment must hold at least two slabs of each kind");
        }
        if self.small_slab_shift < 12 {
            return Err("GEO-NEST: slabs must be at least a 4 KiB page");
        }
        if self.small_max_size > self.mid_max_size {
            return Err("GEO-CLASS: small_max_size > mid_max_size");
        }
        if self.mid_max_size > crate::size_class::MAX_CLASS_SIZE {
            return Err("GEO-CLASS: mid_max_size beyond the class table");
        }
        if self.mid_max_size < crate::size_class::SMALL_LOOKUP_MAX {
            return Err("GEO-CLASS: mid_max_size below SMALL_LOOKUP_MAX");
        }
        let small_class = crate::size_class::class_of_size(self.small_max_size);
        if crate::size_class::class_size(small_class) != self.small_max_size {
            return Err("GEO-CLASS: small_max_size is not a class size");
        }
        let mid_class = crate::size_class::class_of_size(self.mid_max_size);
        if crate::size_class::class_size(mid_class) != self.mid_max_size {
            return Err("GEO-CLASS: mid_max_size is not a class size");
        }
        if self.small_max_size * MIN_SLAB_BLOCKS > self.slab_size(SlabKind::Small) {
            return Err(
                "GEO-CLASS: small_max_size does not fit MIN_SLAB_BLOCKS times in a small slab",
            );
        }
        if self.mid_max_size * MIN_SLAB_BLOCKS > self.slab_size(SlabKind::Mid) {
            return Err("GEO-CLASS: mid_max_size does not fit MIN_SLAB_BLOCKS times in a mid slab");
        }
        Ok(())
    }
}

const _: () = assert!(Geometry::PRODUCTION.validate().is_ok());
const _: () = assert!(Geometry::TINY.validate().is_ok());
const _: () = assert!(Geometry::PRODUCTION.segment_size() == 2 * 1024 * 1024);
const _: () = assert!(Geometry::PRODUCTION.slab_size(SlabKind::Small) == 64 * 1024);
const _: () = assert!(MIN_BLOCK_SIZE == MIN_ALIGN && MIN_ALIGN.is_power_of_two());
const _: () = assert!(MIN_BLOCK_SIZE >= 2 * core::mem::size_of::<usize>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_has_32_small_and_4_mid_slabs_per_segment() {
        let g = Geometry::PRODUCTION;
        assert_eq!(g.slab_count(SlabKind::Small), 32);
        assert_eq!(g.slab_count(SlabKind::Mid), 4);
        assert_eq!(g.max_slab_count(), 32);
        assert_eq!(g.segment_mask(), (2 << 20) - 1);
    }

    #[test]
    fn validate_rejects_a_slab_as_large_as_its_segment() {
        let g = Geometry {
            small_slab_shift: 21,
            ..Geometry::PRODUCTION
        };
        assert!(g.validate().unwrap_err().starts_with("GEO-NEST"));
    }

    #[test]
    fn validate_rejects_a_class_limit_that_is_not_a_class() {
        let g = Geometry {
            mid_max_size: 30000,
            ..Geometry::PRODUCTION
        };
        assert!(g.validate().unwrap_err().starts_with("GEO-CLASS"));
    }

    #[test]
    fn validate_rejects_classes_that_stop_below_the_size_table() {
        let g = Geometry {
            small_max_size: 512,
            mid_max_size: 512,
            ..Geometry::PRODUCTION
        };
        assert_eq!(
            g.validate(),
            Err("GEO-CLASS: mid_max_size below SMALL_LOOKUP_MAX")
        );
    }

    #[test]
    fn kinds_split_at_small_max() {
        let g = Geometry::PRODUCTION;
        assert_eq!(g.kind_for(4096), SlabKind::Small);
        assert_eq!(g.kind_for(5120), SlabKind::Mid);
    }
}
