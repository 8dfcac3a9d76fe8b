//! Errors of the Rust API. In the C ABI they become an abort with a
//! message (misuse) or `NULL` with `errno` (allocation failure).

use core::fmt;

use crate::platform::OsError;

/// A free (or realloc, or usable_size) of a pointer that is not a live
/// block of this allocator. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Not in any segment or large mapping of this allocator (a stack
    /// address, a foreign mapping, garbage).
    NotOwned { ptr: usize },
    /// Inside this allocator's memory but not a block that was handed out
    /// (a free slab, uncarved space, metadata).
    NotAllocated { ptr: usize },
    /// Inside a block that starts at `block`, not at its start.
    Interior { ptr: usize, block: usize },
    /// The block is already free (cached, on a free list or remote queue).
    DoubleFree { ptr: usize },
}

impl FreeError {
    pub fn ptr(&self) -> usize {
        match *self {
            FreeError::NotOwned { ptr }
            | FreeError::NotAllocated { ptr }
            | FreeError::Interior { ptr, .. }
            | FreeError::DoubleFree { ptr } => ptr,
        }
    }

    /// What went wrong, in the words of the C ABI's message.
    pub fn what(&self) -> &'static str {
        match self {
            FreeError::NotOwned { .. } => "pointer not allocated by hakmem",
            FreeError::NotAllocated { .. } => "pointer to memory that is not an allocated block",
            FreeError::Interior { .. } => "pointer inside a block, not at its start",
            FreeError::DoubleFree { .. } => "double free",
        }
    }
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FreeError::Interior { ptr, block } => {
                write!(
                    f,
                    "{} {:#x} (block starts at {:#x})",
                    self.what(),
                    ptr,
                    block
                )
            }
            _ => write!(f, "{} {:#x}", self.what(), self.ptr()),
        }
    }
}

impl std::error::Error for FreeError {}

/// Why an allocation returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The OS layer refused memory.
    OutOfMemory(OsError),
    /// The size (with its alignment and header) overflows the address space.
    TooLarge { size: usize },
    /// The alignment is not a power of two, or larger than supported
    /// (half a segment).
    BadAlign { align: usize },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AllocError::OutOfMemory(e) => write!(f, "out of memory: {e}"),
            AllocError::TooLarge { size } => write!(f, "request of {size} bytes is too large"),
            AllocError::BadAlign { align } => write!(f, "unsupported alignment {align}"),
        }
    }
}

impl std::error::Error for AllocError {}

/// A failed realloc: either the old pointer was bad (nothing changed) or
/// the new block could not be had (the old block is still live).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReallocError {
    Free(FreeError),
    Alloc(AllocError),
}

impl fmt::Display for ReallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReallocError::Free(e) => write!(f, "realloc(): {e}"),
            ReallocError::Alloc(e) => write!(f, "realloc(): {e}"),
        }
    }
}

impl std::error::Error for ReallocError {}

impl From<FreeError> for ReallocError {
    fn from(e: FreeError) -> Self {
        ReallocError::Free(e)
    }
}

impl From<AllocError> for ReallocError {
    fn from(e: AllocError) -> Self {
        ReallocError::Alloc(e)
    }
}
