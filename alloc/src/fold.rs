//! Relaxed loads folded into the instruction that consumes them.
//!
//! LLVM does not fold an atomic load, not even a `Relaxed` one, into the
//! arithmetic or compare that uses it: `x - a.load(Relaxed)` becomes a
//! `mov` and a `sub` where a plain read would be one `sub` with a memory
//! operand. On the free path that is one instruction more per load: the
//! three folds here (block test and owner compare) take a malloc+free
//! pair from 78 to 75 instructions (callgrind). The time gained is
//! smaller than that share (about 1-2 % on `pair`, within noise on the
//! batch workloads): the pair waits more on its chain of dependent loads
//! and stores than on the number of instructions.
//!
//! On x86_64 these helpers write the folded instruction by hand. An
//! aligned 8-byte memory operand of one instruction is read in one piece
//! (single-copy atomic), exactly what a `Relaxed` load gives, so they are
//! sound against concurrent atomic stores to the same word. Elsewhere
//! they are the plain `Relaxed` loads. The caller names the word by a base
//! pointer and a constant offset, so that the offset goes into the
//! instruction's displacement instead of a register of its own.
//!
//! The compares end in their own conditional jump (`asm!` with a `label`
//! operand, stable since Rust 1.87, hence the workspace's MSRV): the flags
//! cannot leave an `asm!` block any other way, and materialising them as a
//! bool would cost the instructions the fold saves.

#[cfg(target_arch = "x86_64")]
use core::arch::asm;
#[cfg(not(target_arch = "x86_64"))]
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `x - w` (wrapping), `w` the word at `base + OFF` read `Relaxed`.
///
/// # Safety
/// `base + OFF` is 8-aligned and points to a live 8-byte atomic
/// (`AtomicU64`/`AtomicUsize`) that is written only atomically.
#[inline(always)]
pub(crate) unsafe fn sub_at<const OFF: usize>(x: u64, base: *const u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut x = x;
        // SAFETY: one aligned 8-byte read of an atomic word (see the module
        // doc), per the contract; it writes nothing but `x` and the flags.
        unsafe {
            asm!(
                "sub {x}, qword ptr [{base} + {off}]",
                x = inout(reg) x,
                base = in(reg) base,
                off = const OFF,
                options(pure, readonly, nostack),
            )
        };
        x
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: per the contract.
        let w = unsafe { &*base.add(OFF).cast::<AtomicU64>() };
        x.wrapping_sub(w.load(Relaxed))
    }
}

/// A compare of `x` with the word `w` at `base + OFF`, read `Relaxed`:
/// the `cmp` and the conditional jump `$jump` (taken when `$holds` is
/// false) are one fused instruction pair, and the jump leaves through
/// the `asm!` block's label.
macro_rules! compare_at {
    ($(#[$doc:meta])* $name:ident, $jump:literal, |$x:ident, $w:ident| $holds:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As for [`sub_at`].
        #[inline(always)]
        pub(crate) unsafe fn $name<const OFF: usize>($x: u64, base: *const u8) -> bool {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: as in `sub_at`; the jump leaves through the
                // label, which returns.
                unsafe {
                    asm!(
                        "cmp {x}, qword ptr [{base} + {off}]",
                        concat!($jump, " {no}"),
                        x = in(reg) $x,
                        base = in(reg) base,
                        off = const OFF,
                        no = label { return false },
                        options(readonly, nostack),
                    )
                };
                true
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                // SAFETY: per the contract.
                let $w = unsafe { &*base.add(OFF).cast::<AtomicU64>() }.load(Relaxed);
                $holds
            }
        }
    };
}

compare_at!(
    /// `x < w` (unsigned).
    below_at, "jae", |x, w| x < w
);
compare_at!(
    /// `x == w`.
    equal_at, "jne", |x, w| x == w
);

/// `x`, unchanged, but as a value the compiler cannot see through: it
/// must hold it in a register of its own, as computed, and cannot fold it
/// into an addressing mode or rebuild it from another value it holds.
/// (The instruction selection choices this undoes are noted at each use.)
#[inline(always)]
pub(crate) fn opaque(x: usize) -> usize {
    // The same empty `asm!` as `opaque_ptr`, on an address-only pointer.
    opaque_ptr(core::ptr::without_provenance_mut::<u8>(x)).addr()
}

/// [`opaque`] for a pointer: the same pointer (address and provenance),
/// which the compiler must hold in a register of its own. (Through
/// `map_addr(opaque)` instead, LLVM rebuilt some accesses as the original
/// base plus the difference, an indexed address.)
#[inline(always)]
pub(crate) fn opaque_ptr<T>(p: *mut T) -> *mut T {
    #[allow(unused_mut)]
    let mut p = p;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an empty asm block that only claims to change `p` (it does
    // not): it reads and writes no memory, no stack and no flags. (The
    // lint warns of a pointer whose pointee the block might use: this one
    // never touches it.)
    #[allow(clippy::pointers_in_nomem_asm_block)]
    unsafe {
        asm!(
            "/* {p} */",
            p = inout(reg) p,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[repr(C)]
    struct Words([AtomicU64; 3]);

    #[test]
    fn folded_reads_agree_with_loads() {
        let values = [0u64, 1, 7, u64::MAX, 1 << 63, 0x5eed_f00f];
        let w = Words([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
        let base = (&w as *const Words).cast::<u8>();
        for &a in &values {
            for &b in &values {
                w.0[2].store(b, Relaxed);
                w.0[0].store(!b, Relaxed);
                // SAFETY: word 2 of `w` (offset 16) is an aligned AtomicU64.
                let (s, lt, eq) = unsafe {
                    (
                        sub_at::<16>(a, base),
                        below_at::<16>(a, base),
                        equal_at::<16>(a, base),
                    )
                };
                assert_eq!(s, a.wrapping_sub(b), "{a} - {b}");
                assert_eq!(lt, a < b, "{a} < {b}");
                assert_eq!(eq, a == b, "{a} == {b}");
            }
        }
    }
}
