//! `pair`: the cost of one malloc+free pair of a cached size through the
//! real call, in a tight loop (DESIGN §6 gives the floor: about 2 ns).
//!
//! One iteration is `malloc(--size)` (default 32 B) then `free` of the same
//! pointer. The pointer passes through an empty `asm!` between the two
//! (`Block::opaque`), which keeps the compiler from removing the pair
//! without spilling anything to the stack: the loop holds the two calls, a
//! null test and the loop count. The block is not written by default, to
//! measure the bare calls (`--touch 1` writes its first byte); a cached
//! size cannot cheat anyway.
//! The result line adds `ns_per_pair`.

use super::{check_positive, Outcome, Params, Workload};
use crate::budget::{run_threads, Counts};
use crate::cabi::Block;

pub const WORKLOAD: Workload = Workload {
    name: "pair",
    summary: "malloc+free of one cached size (32 B) in a tight loop; reports ns per pair",
    default_threads: 1,
    default_iters: 80_000_000,
    run,
};

fn run(p: &mut Params) -> Result<Outcome, String> {
    let size = p.args.take_or("--size", 32usize)?;
    let touch = p.args.take_or("--touch", 0u8)? != 0;
    p.args.finish()?;
    check_positive("--size", size)?;
    let (threads, budget) = (p.threads, p.budget);
    let mut outcome = Outcome::timed(|| {
        // `move`: the closure holds its own copies of `size` and `touch`.
        // By reference, the loop would reload the size after every call.
        // (It comes from the arguments: the calls cannot be specialised on
        // it.)
        run_threads(threads, budget, move |_, share| {
            let mut counts = Counts::default();
            loop {
                let chunk = share.next_chunk(counts.iters, 1 << 16);
                if chunk == 0 {
                    break;
                }
                if touch {
                    for _ in 0..chunk {
                        let mut block = Block::alloc_untouched(size);
                        block.write(0, 1);
                        block.opaque().free();
                    }
                } else {
                    for _ in 0..chunk {
                        Block::alloc_untouched(size).opaque().free();
                    }
                }
                counts.iters += chunk;
                counts.ops += 2 * chunk;
            }
            counts
        })
    });
    // Per thread: the threads run side by side.
    let per_thread = outcome.counts.iters as f64 / threads as f64;
    let ns = outcome.seconds * 1e9 / per_thread.max(1.0);
    outcome.extra.push(("ns_per_pair", format!("{ns:.3}")));
    outcome.extra.push(("size", size.to_string()));
    Ok(outcome)
}
