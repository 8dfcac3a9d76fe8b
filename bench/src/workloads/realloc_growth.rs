//! `realloc-growth`: buffers grown by repeated `realloc`, as a growing
//! string or vector does, checking that the content survives every move.
//!
//! One iteration grows one buffer from 64 B and frees it. Iterations
//! alternate two growth rules: additive (+`--step`, default 4 KiB, up to
//! `--max-add`, default 1 MiB) and geometric (×`--factor`, default 1.5, up to
//! `--max-geo`, default 8 MiB). After each realloc the first byte of every
//! old page and the old last byte are checked against the pattern written
//! before, then the new tail is filled (every byte: a growing buffer is
//! written). An allocator that can extend in place or remap pays less copy.

use super::{check_positive, Outcome, Params, Workload};
use crate::budget::{run_threads, Counts};
use crate::cabi::{corrupt, Block, PAGE_SIZE};

pub const WORKLOAD: Workload = Workload {
    name: "realloc-growth",
    summary: "buffers grown by realloc (+4 KiB to 1 MiB, or x1.5 to 8 MiB), content checked after every step",
    default_threads: 1,
    default_iters: 2_000,
    run,
};

const START_SIZE: usize = 64;

/// The byte stored in page `page` of the buffer of sequence `seq`.
fn pattern(seq: u64, page: usize) -> u8 {
    (page as u64).wrapping_mul(7).wrapping_add(seq) as u8 | 1
}

#[derive(Clone, Copy)]
struct Growth {
    step: usize,
    max_add: usize,
    factor: f64,
    max_geo: usize,
}

fn run(p: &mut Params) -> Result<Outcome, String> {
    let growth = Growth {
        step: p.args.take_or("--step", 4096usize)?,
        max_add: p.args.take_or("--max-add", 1usize << 20)?,
        factor: p.args.take_or("--factor", 1.5f64)?,
        max_geo: p.args.take_or("--max-geo", 8usize << 20)?,
    };
    p.args.finish()?;
    check_positive("--step", growth.step)?;
    let grows = growth.factor > 1.0; // false for NaN too
    if !grows || growth.max_add < START_SIZE || growth.max_geo < START_SIZE {
        return Err("--factor must exceed 1 and --max-add/--max-geo must be at least 64".into());
    }
    let (threads, budget) = (p.threads, p.budget);
    Ok(Outcome::timed(|| {
        run_threads(threads, budget, |idx, share| {
            let mut counts = Counts::default();
            loop {
                let chunk = share.next_chunk(counts.iters, 1);
                if chunk == 0 {
                    break;
                }
                let seq = counts.iters * threads as u64 + idx as u64;
                counts.ops += grow_one(&growth, seq);
                counts.iters += 1;
            }
            counts
        })
    }))
}

/// Grows one buffer to its limit and frees it; returns the calls made.
fn grow_one(growth: &Growth, seq: u64) -> u64 {
    let additive = seq.is_multiple_of(2);
    let limit = if additive {
        growth.max_add
    } else {
        growth.max_geo
    };
    let mut block = Block::alloc_untouched(START_SIZE);
    fill(&mut block, seq, 0);
    let mut ops = 1;
    while block.size() < limit {
        let old_size = block.size();
        let new_size = if additive {
            old_size + growth.step
        } else {
            ((old_size as f64 * growth.factor) as usize).max(old_size + 1)
        }
        .min(limit);
        block = block.realloc(new_size);
        ops += 1;
        verify(&block, seq, old_size);
        fill(&mut block, seq, old_size);
    }
    verify(&block, seq, block.size());
    block.free();
    ops + 1
}

/// Writes the pattern into bytes `from..size`.
fn fill(block: &mut Block, seq: u64, from: usize) {
    let mut start = from;
    while start < block.size() {
        let page = start / PAGE_SIZE;
        let end = ((page + 1) * PAGE_SIZE).min(block.size());
        block.fill(start, end, pattern(seq, page));
        start = end;
    }
}

/// Checks the first byte of every page below `old_size`, and byte
/// `old_size - 1`.
fn verify(block: &Block, seq: u64, old_size: usize) {
    let mut idx = 0;
    while idx < old_size {
        if block.read(idx) != pattern(seq, idx / PAGE_SIZE) {
            corrupt(&format!(
                "realloc-growth: byte {idx} of a block grown from {old_size} to {} changed",
                block.size()
            ));
        }
        idx += PAGE_SIZE;
    }
    let last = old_size - 1;
    if block.read(last) != pattern(seq, last / PAGE_SIZE) {
        corrupt(&format!("realloc-growth: last old byte {last} changed"));
    }
}
