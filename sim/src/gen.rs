//! Seeded workload mixes: `hakmem-sim gen --seed S --ops N --mix NAME`.
//!
//! [`generate`] is deterministic (its own [`SplitMix64`]; no `rand`), and
//! every trace it makes is canonical and valid: handles `p1, p2, ...` in
//! allocation order, frees and reallocs of live handles only, no misuse
//! ops, at most 4 threads, sizes up to 1 MiB, alignments up to 64 KiB,
//! `os fail` counts 1..=3. So `bytes::encode` accepts every generated
//! trace and it can seed the fuzz corpus. A trace has exactly `ops` ops: a
//! mix runs its phases until the budget is spent and the trace is cut there
//! (a prefix of a valid trace is valid). For `random`, `larson` and
//! `producer-consumer` a shorter trace is a prefix of a longer one with the
//! same seed; `slab-churn` shrinks its cycles to fit the budget, so that a
//! short trace still completes one (fill, free, drain, trim).
//!
//! The mixes:
//! * `random`: mixed sizes, alignments, threads and every kind of op
//!   (drain, collect, exit, trim, check, injected OS failures).
//! * `larson`: 2–4 threads each hold a window of blocks and keep replacing
//!   random slots; a quarter of the new blocks are handed to another
//!   thread's window, so many frees are remote; a thread now and then exits
//!   and its successor (same `t`) inherits the window.
//! * `producer-consumer`: the producer allocates batches, the consumer
//!   frees them in FIFO order after a lag (remote frees dominate); now and
//!   then the roles swap, a side exits, the producer drains or collects.
//! * `slab-churn`: fill several tiny-geometry slabs of one class, free them
//!   all (a third remotely, in shuffled order), drain and collect every
//!   thread, trim, check; repeat with another class — slabs go empty and
//!   segments become empty.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use hakmem::Geometry;

use crate::trace::{Op, OsFailKind, Trace, DEFAULT_ALIGN};

/// A named workload shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mix {
    Random,
    Larson,
    ProducerConsumer,
    SlabChurn,
}

impl Mix {
    pub const ALL: [Mix; 4] = [
        Mix::Random,
        Mix::Larson,
        Mix::ProducerConsumer,
        Mix::SlabChurn,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mix::Random => "random",
            Mix::Larson => "larson",
            Mix::ProducerConsumer => "producer-consumer",
            Mix::SlabChurn => "slab-churn",
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Mix, String> {
        Mix::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            format!("unknown mix '{s}' (expected random, larson, producer-consumer or slab-churn)")
        })
    }
}

/// SplitMix64: a tiny, fast, well-mixed PRNG (Steele, Lea, Flood 2014).
/// The same seed gives the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-high (no modulo bias worth
    /// caring about for test workloads).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Makes a trace of exactly `ops` ops of the given mix; the same arguments
/// always give the same trace.
pub fn generate(mix: Mix, seed: u64, ops: usize) -> Trace {
    // Mix the name in, so that seed 0 of two mixes are unrelated streams.
    let salt = mix.name().bytes().fold(0u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut g = Gen {
        rng: SplitMix64::new(seed ^ salt),
        ops: Vec::with_capacity(ops + 64),
        budget: ops,
        next_id: 1,
    };
    if ops > 0 {
        match mix {
            Mix::Random => random(&mut g),
            Mix::Larson => larson(&mut g),
            Mix::ProducerConsumer => producer_consumer(&mut g),
            Mix::SlabChurn => slab_churn(&mut g),
        }
    }
    g.ops.truncate(ops);
    Trace::new(g.ops)
}

/// The trace being built.
struct Gen {
    rng: SplitMix64,
    ops: Vec<Op>,
    budget: usize,
    next_id: u32,
}

/// A live block as a mix tracks it.
#[derive(Clone, Copy, Debug)]
struct Block {
    id: u32,
    /// The thread that allocated it (or last reallocated it).
    owner: u8,
}

impl Gen {
    fn done(&self) -> bool {
        self.ops.len() >= self.budget
    }

    fn remaining(&self) -> usize {
        self.budget.saturating_sub(self.ops.len())
    }

    fn alloc_with(&mut self, t: u8, size: usize, align: usize, zeroed: bool) -> Block {
        let id = self.next_id;
        self.next_id += 1;
        self.ops.push(Op::Alloc {
            t,
            id,
            size,
            align,
            zeroed,
        });
        Block { id, owner: t }
    }

    fn alloc(&mut self, t: u8, size: usize) -> Block {
        self.alloc_with(t, size, DEFAULT_ALIGN, false)
    }

    fn free(&mut self, t: u8, block: Block) {
        self.ops.push(Op::Free { t, id: block.id });
    }

    /// A thread other than `t` among `0..n` (`n >= 2`).
    fn other_thread(&mut self, t: u8, n: u8) -> u8 {
        (t + 1 + self.rng.below(usize::from(n) - 1) as u8) % n
    }

    /// Mostly small, some mid, a few large sizes; edges of the tiny
    /// geometry's classes are favoured.
    fn any_size(&mut self) -> usize {
        let r = &mut self.rng;
        match r.below(100) {
            0..=44 => {
                let s = r.range(1, 256);
                if r.chance(1, 4) {
                    s.next_multiple_of(16)
                } else {
                    s
                }
            }
            45..=74 => r.range(257, 2048),
            75..=84 => {
                const EDGES: [usize; 12] = [
                    128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048,
                ];
                EDGES[r.below(EDGES.len())] + r.range(0, 2) - 1
            }
            85..=94 => r.range(2049, 65536),
            95..=98 => r.range(0, 16),
            _ => r.range(65537, 1 << 20),
        }
    }

    /// 16 mostly; sometimes 32..=4096; rarely 8 KiB..=64 KiB.
    fn any_align(&mut self) -> usize {
        match self.rng.below(100) {
            0..=89 => DEFAULT_ALIGN,
            90..=97 => 32 << self.rng.below(8),
            _ => 8192 << self.rng.below(4),
        }
    }
}

fn random(g: &mut Gen) {
    let n = 1 + g.rng.below(4) as u8;
    let mut live: Vec<Block> = Vec::new();
    while !g.done() {
        let t = g.rng.below(usize::from(n)) as u8;
        // Lean towards frees when many blocks are live, so the live set
        // stays a few hundred blocks however long the trace.
        let free_weight = if live.len() > 400 { 50 } else { 30 };
        let r = g.rng.below(70 + free_weight);
        if r < 40 || live.is_empty() {
            let size = g.any_size();
            let align = g.any_align();
            let zeroed = g.rng.chance(1, 10);
            let b = g.alloc_with(t, size, align, zeroed);
            live.push(b);
            continue;
        }
        let r = r - 40;
        if r < free_weight {
            let b = live.swap_remove(g.rng.below(live.len()));
            let by = if n > 1 && g.rng.chance(1, 3) {
                g.other_thread(b.owner, n)
            } else {
                b.owner
            };
            g.free(by, b);
            continue;
        }
        match r - free_weight {
            0..=7 => {
                let idx = g.rng.below(live.len());
                let by = if n > 1 && g.rng.chance(1, 4) {
                    g.other_thread(live[idx].owner, n)
                } else {
                    live[idx].owner
                };
                live[idx].owner = by;
                let size = g.any_size();
                g.ops.push(Op::Realloc {
                    t: by,
                    id: live[idx].id,
                    size,
                });
            }
            8..=11 => g.ops.push(Op::Drain { t }),
            12..=15 => g.ops.push(Op::Collect { t }),
            16..=17 => g.ops.push(Op::Exit { t }),
            18..=19 => g.ops.push(Op::Trim),
            20..=27 => g.ops.push(Op::Check),
            _ => {
                let what = if g.rng.chance(1, 2) {
                    OsFailKind::Map
                } else {
                    OsFailKind::Commit
                };
                let count = 1 + g.rng.below(3) as u32;
                g.ops.push(Op::OsFail { what, count });
            }
        }
    }
}

fn larson(g: &mut Gen) {
    let n = 2 + g.rng.below(3) as u8;
    let window = g.rng.range(8, 64);
    let (lo, hi) = [(16, 128), (8, 1000), (100, 2048), (16, 4096)][g.rng.below(4)];
    let mut windows: Vec<Vec<Block>> = Vec::new();
    for t in 0..n {
        let mut w = Vec::with_capacity(window);
        for _ in 0..window {
            let size = g.rng.range(lo, hi);
            w.push(g.alloc(t, size));
        }
        windows.push(w);
    }
    let mut since_check = 0;
    while !g.done() {
        let t = g.rng.below(usize::from(n)) as u8;
        let slot = g.rng.below(window);
        let old = windows[usize::from(t)][slot];
        g.free(t, old); // remote when `old` came from another thread
        let size = g.rng.range(lo, hi);
        let new = g.alloc(t, size);
        if g.rng.chance(1, 4) {
            // hand the new block to another thread, take one of its blocks
            let u = usize::from(g.other_thread(t, n));
            let other_slot = g.rng.below(window);
            windows[usize::from(t)][slot] = windows[u][other_slot];
            windows[u][other_slot] = new;
        } else {
            windows[usize::from(t)][slot] = new;
        }
        if g.rng.chance(1, 1000) {
            g.ops.push(Op::Exit { t }); // its successor inherits the window
        }
        since_check += 1;
        if since_check >= 500 {
            since_check = 0;
            g.ops.push(Op::Check);
        }
    }
}

fn producer_consumer(g: &mut Gen) {
    let mut producer: u8 = 0;
    let mut consumer: u8 = 1;
    let lag = g.rng.range(0, 64);
    let size_count = g.rng.range(1, 3);
    let sizes: Vec<usize> = (0..size_count)
        .map(|_| {
            if g.rng.chance(1, 8) {
                g.rng.range(2049, 65536)
            } else {
                g.rng.range(1, 2048)
            }
        })
        .collect();
    let mut queue: VecDeque<Block> = VecDeque::new();
    while !g.done() {
        for _ in 0..g.rng.range(1, 32) {
            let size = sizes[g.rng.below(sizes.len())];
            let b = g.alloc(producer, size);
            queue.push_back(b);
        }
        if queue.len() > lag {
            for _ in 0..g.rng.range(1, queue.len() - lag) {
                let b = queue.pop_front().expect("queue longer than lag");
                g.free(consumer, b);
            }
        }
        match g.rng.below(200) {
            0..=3 => g.ops.push(Op::Collect { t: producer }),
            4..=7 => g.ops.push(Op::Drain { t: producer }),
            8..=9 => g.ops.push(Op::Drain { t: consumer }),
            10..=13 => g.ops.push(Op::Check),
            14..=15 => std::mem::swap(&mut producer, &mut consumer),
            16 => g.ops.push(Op::Exit { t: consumer }),
            17 => g.ops.push(Op::Exit { t: producer }),
            18 => g.ops.push(Op::Trim),
            _ => {}
        }
    }
}

fn slab_churn(g: &mut Gen) {
    const SIZES: [usize; 20] = [
        16, 24, 32, 48, 64, 80, 96, 112, 128, 129, 160, 192, 224, 255, 256, 320, 512, 1000, 1024,
        2048,
    ];
    let geometry = Geometry::TINY;
    let n = 2 + g.rng.below(2) as u8;
    while !g.done() {
        let size = SIZES[g.rng.below(SIZES.len())];
        let slab_size = geometry.slab_size(geometry.kind_for(size));
        let slabs = g.rng.range(2, 6);
        // keep a whole cycle (fill, free, drain, trim) inside the budget
        let count = (slabs * slab_size / size)
            .min(g.remaining().saturating_sub(4 * usize::from(n) + 4) / 2)
            .max(1);
        let allocators = if g.rng.chance(1, 3) { 2 } else { 1 };
        let mut blocks: Vec<Block> = (0..count)
            .map(|i| g.alloc((i % allocators) as u8, size))
            .collect();
        if g.rng.chance(1, 4) {
            g.ops.push(Op::Check);
        }
        g.rng.shuffle(&mut blocks);
        let exit_owner = g.rng.chance(1, 6);
        for (i, b) in blocks.into_iter().enumerate() {
            if exit_owner && i == count / 2 {
                // the rest of t0's blocks are freed after its heap is gone
                g.ops.push(Op::Exit { t: 0 });
            }
            let by = if g.rng.chance(1, 3) {
                g.other_thread(b.owner, n)
            } else {
                b.owner
            };
            g.free(by, b);
        }
        for t in 0..n {
            g.ops.push(Op::Drain { t });
        }
        for t in 0..n {
            g.ops.push(Op::Collect { t });
            g.ops.push(Op::Drain { t });
        }
        g.ops.push(Op::Trim);
        g.ops.push(Op::Check);
    }
}

#[cfg(test)]
#[path = "gen_tests.rs"]
mod tests;
