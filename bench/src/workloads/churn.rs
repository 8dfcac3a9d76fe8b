//! Slot churn: each thread owns an array of slots and, per iteration, picks
//! a random slot and changes it. Four workloads are this shape with
//! different sizes, working sets and step rules:
//!
//! - `random-mixed`: sizes uniform in 16..=1040 B, 8192 slots; a step frees
//!   an occupied slot or fills an empty one (so about half are live).
//! - `fixed-size`: one size (`--size`, default 64 B), 4096 slots, same step.
//! - `glibc-thread` (glibc's bench-malloc-thread shape): 1024 slots per
//!   thread, sizes log-uniform in 4..=32768 B (density ∝ 1/size: small ones
//!   common), a step frees the slot's block and allocates a new one.
//! - `mid-large`: sizes log-uniform in 8 KiB..=1 MiB, 64 slots per thread,
//!   free-or-fill steps, every 4 KiB page of a block written and checked.
//!
//! Frees check the marks written at allocation (see `cabi`).

use super::{check_positive, check_sizes, Outcome, Params, Workload};
use crate::budget::{run_threads, Counts, Share};
use crate::cabi::Block;
use crate::rng::Rng;

/// How a churn picks the size of a new block.
#[derive(Clone, Copy, Debug)]
pub enum Sizes {
    /// uniform in `min..=max`
    Uniform(usize, usize),
    /// log-uniform in `min..=max`
    LogUniform(usize, usize),
}

impl Sizes {
    #[inline]
    pub fn pick(self, rng: &mut Rng) -> usize {
        match self {
            Sizes::Uniform(min, max) => rng.range(min, max),
            Sizes::LogUniform(min, max) => rng.log_uniform(min, max),
        }
    }
}

/// One churn's shape.
#[derive(Clone, Copy, Debug)]
pub struct Churn {
    /// slots per thread
    pub slots: usize,
    /// size of each new block
    pub sizes: Sizes,
    /// write and check every page, not just the ends
    pub pages: bool,
    /// a step frees and refills (true) or frees-or-fills (false)
    pub replace: bool,
}

impl Churn {
    /// Does `iters` steps on `slots`; returns the allocator calls made.
    #[inline]
    pub fn steps(&self, rng: &mut Rng, slots: &mut [Option<Block>], iters: u64) -> u64 {
        let mut ops = 0;
        for _ in 0..iters {
            let slot = &mut slots[rng.below(slots.len())];
            if let Some(block) = slot.take() {
                self.release(block);
                ops += 1;
                if !self.replace {
                    continue;
                }
            }
            *slot = Some(self.make(rng));
            ops += 1;
        }
        ops
    }

    /// Allocates and marks one block.
    #[inline]
    pub fn make(&self, rng: &mut Rng) -> Block {
        let mut block = Block::alloc(self.sizes.pick(rng));
        if self.pages {
            block.mark_pages();
        }
        block
    }

    /// Checks and frees one block.
    #[inline]
    pub fn release(&self, block: Block) {
        block.check(self.pages, "churn");
        block.free();
    }

    /// Frees every block left in `slots`; returns the calls made.
    pub fn drain(&self, slots: &mut [Option<Block>]) -> u64 {
        let mut ops = 0;
        for block in slots.iter_mut().filter_map(Option::take) {
            self.release(block);
            ops += 1;
        }
        ops
    }

    /// One thread's whole churn: optionally prefill, steps in chunks until
    /// the share runs out, then drain.
    pub fn run_share(&self, rng: &mut Rng, share: Share, prefill: bool) -> Counts {
        let mut slots: Vec<Option<Block>> = Vec::with_capacity(self.slots);
        let mut counts = Counts::default();
        for _ in 0..self.slots {
            slots.push(prefill.then(|| self.make(rng)));
        }
        if prefill {
            counts.ops += self.slots as u64;
        }
        loop {
            let chunk = share.next_chunk(counts.iters, 1024);
            if chunk == 0 {
                break;
            }
            counts.ops += self.steps(rng, &mut slots, chunk);
            counts.iters += chunk;
        }
        counts.ops += self.drain(&mut slots);
        counts
    }
}

/// Reads the common churn options, runs one churn per thread.
fn run_churn(
    p: &mut Params,
    default_slots: usize,
    default_sizes: (usize, usize),
    log_sizes: bool,
    pages: bool,
    replace: bool,
) -> Result<Outcome, String> {
    let slots = p.args.take_or("--slots", default_slots)?;
    let (min, max) = match p.args.take::<usize>("--size")? {
        Some(size) => (size, size),
        None => (
            p.args.take_or("--min", default_sizes.0)?,
            p.args.take_or("--max", default_sizes.1)?,
        ),
    };
    p.args.finish()?;
    check_sizes(min, max)?;
    check_positive("--slots", slots)?;
    let sizes = if log_sizes {
        Sizes::LogUniform(min, max)
    } else {
        Sizes::Uniform(min, max)
    };
    let churn = Churn {
        slots,
        sizes,
        pages,
        replace,
    };
    let (threads, budget, seed) = (p.threads, p.budget, p.seed);
    let mut outcome = Outcome::timed(|| {
        run_threads(threads, budget, |idx, share| {
            let mut rng = Rng::new(seed, idx as u64);
            churn.run_share(&mut rng, share, replace)
        })
    });
    outcome.extra.push(("slots", slots.to_string()));
    outcome.extra.push(("min_size", min.to_string()));
    outcome.extra.push(("max_size", max.to_string()));
    Ok(outcome)
}

pub const RANDOM_MIXED: Workload = Workload {
    name: "random-mixed",
    summary: "random sizes 16..=1040 B over 8192 slots per thread, free-or-fill steps",
    default_threads: 1,
    default_iters: 35_000_000,
    run: |p| run_churn(p, 8192, (16, 1040), false, false, false),
};

pub const FIXED_SIZE: Workload = Workload {
    name: "fixed-size",
    summary: "one size (--size, default 64 B) over 4096 slots per thread, free-or-fill steps",
    default_threads: 1,
    default_iters: 45_000_000,
    run: |p| run_churn(p, 4096, (64, 64), false, false, false),
};

pub const GLIBC_THREAD: Workload = Workload {
    name: "glibc-thread",
    summary: "glibc bench-malloc-thread shape: 1024 slots per thread, log-uniform 4..=32768 B, free+malloc steps",
    default_threads: 2,
    default_iters: 7_000_000,
    run: |p| run_churn(p, 1024, (4, 32768), true, false, true),
};

pub const MID_LARGE: Workload = Workload {
    name: "mid-large",
    summary: "log-uniform 8 KiB..=1 MiB over 64 slots per thread, every page touched",
    default_threads: 2,
    default_iters: 400_000,
    run: |p| run_churn(p, 64, (8192, 1 << 20), true, true, false),
};
