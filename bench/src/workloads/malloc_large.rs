//! `malloc-large`: large buffers allocated, touched and freed in a loop (the
//! shape of mimalloc-bench's malloc-large, rebuilt from its description).
//!
//! A thread keeps `--slots` (default 20) buffers of random size in
//! `--min..=--max` (default 5..=25 MiB). One iteration frees the buffer in
//! the next slot (round robin) and allocates a new one, writing one byte in
//! every 4 KiB page, checked again when it is freed. An allocator that
//! returns every freed buffer to the OS pays a page fault per page again
//! (DESIGN §6: about 2 µs each here); one that keeps and reuses them does not.

use super::{check_positive, check_sizes, Outcome, Params, Workload};
use crate::budget::{run_threads, Counts};
use crate::cabi::Block;
use crate::rng::Rng;

pub const WORKLOAD: Workload = Workload {
    name: "malloc-large",
    summary: "5..25 MiB buffers in 20 round-robin slots, allocated, every page touched, freed",
    default_threads: 1,
    default_iters: 400,
    run,
};

fn run(p: &mut Params) -> Result<Outcome, String> {
    let slots = p.args.take_or("--slots", 20usize)?;
    let min = p.args.take_or("--min", 5usize << 20)?;
    let max = p.args.take_or("--max", 25usize << 20)?;
    p.args.finish()?;
    check_positive("--slots", slots)?;
    check_sizes(min, max)?;
    let (threads, budget, seed) = (p.threads, p.budget, p.seed);
    Ok(Outcome::timed(|| {
        run_threads(threads, budget, |idx, share| {
            let mut rng = Rng::new(seed, idx as u64);
            let mut buffers: Vec<Option<Block>> = (0..slots).map(|_| None).collect();
            let mut counts = Counts::default();
            loop {
                let chunk = share.next_chunk(counts.iters, 1);
                if chunk == 0 {
                    break;
                }
                let slot = &mut buffers[(counts.iters % slots as u64) as usize];
                if let Some(old) = slot.take() {
                    old.check(true, "malloc-large");
                    old.free();
                    counts.ops += 1;
                }
                let mut block = Block::alloc_untouched(rng.range(min, max));
                block.mark_pages();
                *slot = Some(block);
                counts.ops += 1;
                counts.iters += 1;
            }
            for block in buffers.iter_mut().filter_map(Option::take) {
                block.check(true, "malloc-large drain");
                block.free();
                counts.ops += 1;
            }
            counts
        })
    }))
}
