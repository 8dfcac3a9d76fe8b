//! The model: every live block the trace holds — its pointer, size,
//! alignment, owner thread and fill pattern — the oracle the allocator is
//! checked against (the user contract, I7).
//!
//! USER-ALIGN    a block is aligned as asked
//! USER-USABLE   `usable_size >= size`
//! USER-OVERLAP  live blocks never overlap
//! USER-CONTENTS the allocator never changes a live block's bytes (each
//!               block is filled with a pattern and verified on free,
//!               realloc and at the end)
//! USER-ZERO     a zeroed allocation reads as zero

use std::collections::{BTreeMap, HashMap};

/// A live block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub ptr: usize,
    pub size: usize,
    pub align: usize,
    /// The thread that allocated it (or last reallocated it).
    pub owner: u8,
    pub seed: u8,
}

#[derive(Default)]
pub struct Model {
    live: HashMap<u32, Block>,
    by_addr: BTreeMap<usize, u32>,
    /// Last pointer of each dead handle (for double-free ops).
    dead: HashMap<u32, usize>,
}

impl Model {
    pub fn live(&self, id: u32) -> Option<&Block> {
        self.live.get(&id)
    }

    pub fn dead_ptr(&self, id: u32) -> Option<usize> {
        self.dead.get(&id).copied()
    }

    /// True if a live block starts exactly at `addr`.
    pub fn is_live_start(&self, addr: usize) -> bool {
        self.by_addr.contains_key(&addr)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn pointers(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_addr.keys().copied()
    }

    pub fn blocks(&self) -> impl Iterator<Item = (u32, Block)> + '_ {
        self.live.iter().map(|(&id, &b)| (id, b))
    }

    /// The live block a new block `[ptr, ptr + size)` would overlap.
    pub fn overlapping(&self, ptr: usize, size: usize) -> Option<(u32, Block)> {
        let end = ptr + size.max(1);
        let (&start, &id) = self.by_addr.range(..end).next_back()?;
        let b = self.live[&id];
        (start + b.size.max(1) > ptr).then_some((id, b))
    }

    pub fn insert(&mut self, id: u32, b: Block) {
        self.dead.remove(&id);
        self.by_addr.insert(b.ptr, id);
        self.live.insert(id, b);
    }

    pub fn remove(&mut self, id: u32) -> Option<Block> {
        let b = self.live.remove(&id)?;
        self.by_addr.remove(&b.ptr);
        self.dead.insert(id, b.ptr);
        Some(b)
    }
}

/// The fill pattern of the 8-byte word `w` of a block with `seed`; byte
/// `i` of the block is byte `i % 8` (little-endian) of word `i / 8`. Every
/// word differs from its neighbours and from other blocks' words, so a
/// list link or tag written into a live block is always visible.
#[inline(always)]
pub fn pattern_word(seed: u8, w: usize) -> u64 {
    (seed as u64).wrapping_mul(0x0101_0101_0101_0101)
        ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The pattern byte `i` of a block with `seed`.
#[inline]
pub fn pattern(seed: u8, i: usize) -> u8 {
    pattern_word(seed, i / 8).to_le_bytes()[i % 8]
}

pub fn seed_of(id: u32) -> u8 {
    (id.wrapping_mul(0x9e37_79b1) >> 24) as u8 | 1
}

/// Fills `size` bytes at `ptr`.
///
/// # Safety
/// `ptr` is a live block of at least `size` bytes owned by the caller.
pub unsafe fn fill(ptr: usize, size: usize, seed: u8) {
    let words = size / 8;
    for w in 0..words {
        // SAFETY: per the contract; unaligned writes are allowed.
        unsafe { ((ptr + w * 8) as *mut u64).write_unaligned(pattern_word(seed, w)) };
    }
    for i in words * 8..size {
        // SAFETY: per the contract.
        unsafe { *((ptr + i) as *mut u8) = pattern(seed, i) };
    }
}

/// The first byte (index) of `[ptr, ptr + size)` that does not hold the
/// pattern, if any.
///
/// # Safety
/// As for [`fill`].
pub unsafe fn first_mismatch(ptr: usize, size: usize, seed: u8) -> Option<usize> {
    let words = size / 8;
    for w in 0..words {
        // SAFETY: per the contract.
        let v = unsafe { ((ptr + w * 8) as *const u64).read_unaligned() };
        let want = pattern_word(seed, w);
        if v != want {
            return Some(w * 8 + ((v ^ want).trailing_zeros() / 8) as usize);
        }
    }
    (words * 8..size).find(|&i| {
        // SAFETY: per the contract.
        unsafe { *((ptr + i) as *const u8) != pattern(seed, i) }
    })
}

/// The first non-zero byte of a block, if any.
///
/// # Safety
/// As for [`fill`].
pub unsafe fn first_nonzero(ptr: usize, size: usize) -> Option<usize> {
    // SAFETY: per the contract.
    let s = unsafe { std::slice::from_raw_parts(ptr as *const u8, size) };
    s.iter().position(|&b| b != 0)
}
