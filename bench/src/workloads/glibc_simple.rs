//! `glibc-simple`: tight malloc/free loops of small sizes (the shape of
//! glibc's bench-malloc-simple, rebuilt from its description).
//!
//! Round after round, a thread allocates a batch of blocks of one small size
//! and then frees them all in the same order. Rounds cycle through sizes
//! 16, 32, 64 and 128 B and batch lengths 25, 100, 400 and 1600, so the
//! allocator sees short LIFO-ish bursts and longer FIFO runs that overflow
//! small per-thread caches. One iteration is one malloc (and its free).
//! Run single-threaded by default, where glibc takes its no-atomics path;
//! `--threads N` runs N independent copies.

use super::{Outcome, Params, Workload};
use crate::budget::{run_threads, Counts};
use crate::cabi::Block;

pub const WORKLOAD: Workload = Workload {
    name: "glibc-simple",
    summary: "batches of 25..1600 small blocks (16..128 B) allocated then freed in order, single-threaded",
    default_threads: 1,
    default_iters: 28_000_000,
    run,
};

const SIZES: [usize; 4] = [16, 32, 64, 128];
const BATCHES: [u64; 4] = [25, 100, 400, 1600];

fn run(p: &mut Params) -> Result<Outcome, String> {
    p.args.finish()?;
    let (threads, budget) = (p.threads, p.budget);
    Ok(Outcome::timed(|| {
        run_threads(threads, budget, |_, share| {
            let mut blocks: Vec<Block> = Vec::with_capacity(BATCHES[3] as usize);
            let mut counts = Counts::default();
            let mut round = 0usize;
            loop {
                let size = SIZES[round % SIZES.len()];
                let batch = BATCHES[(round / SIZES.len()) % BATCHES.len()];
                let chunk = share.next_chunk(counts.iters, batch);
                if chunk == 0 {
                    break;
                }
                for _ in 0..chunk {
                    blocks.push(Block::alloc(size));
                }
                for block in blocks.drain(..) {
                    block.free_checked("glibc-simple");
                }
                counts.iters += chunk;
                counts.ops += 2 * chunk;
                round += 1;
            }
            counts
        })
    }))
}
