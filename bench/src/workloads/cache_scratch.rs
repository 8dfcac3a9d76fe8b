//! `cache-scratch`: passive false sharing (the shape of Hoard's
//! cache-scratch, rebuilt from its description).
//!
//! The main thread allocates one small object (`--size`, default 8 B) per
//! worker, back to back, so they likely share a cache line, and hands one to
//! each worker. Each worker frees the object it was given, then repeats: an
//! iteration allocates an object of the same size, writes every byte of it
//! `--reps` times (default 1000), and frees it. An allocator that gives a
//! worker the block another thread's object sits next to (for instance by
//! reusing the freed foreign block locally) makes the workers write to one
//! cache line from two cores, and the run slows down many times. The result
//! line reports `shared_line_pct`: the share of iterations whose object sat
//! on the cache line of another worker's original object.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{check_positive, Outcome, Params, Workload};
use crate::budget::Counts;
use crate::cabi::Block;

pub const WORKLOAD: Workload = Workload {
    name: "cache-scratch",
    summary: "objects allocated by one thread are freed by workers that then allocate, write hard and free (false sharing)",
    default_threads: 2,
    default_iters: 500_000,
    run,
};

const CACHE_LINE_SIZE: usize = 64;

fn run(p: &mut Params) -> Result<Outcome, String> {
    let size = p.args.take_or("--size", 8usize)?;
    let reps = p.args.take_or("--reps", 1000usize)?;
    p.args.finish()?;
    check_positive("--size", size)?;
    check_positive("--reps", reps)?;
    let (threads, budget) = (p.threads, p.budget);
    let shared = AtomicU64::new(0);
    let mut outcome = Outcome::timed(|| {
        let firsts: Vec<Block> = (0..threads).map(|_| Block::alloc(size)).collect();
        let lines: Vec<usize> = firsts.iter().map(|b| b.addr() / CACHE_LINE_SIZE).collect();
        let lines = &lines;
        let shared = &shared;
        let shares = budget.split(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = firsts
                .into_iter()
                .zip(shares)
                .enumerate()
                .map(|(idx, (first, share))| {
                    scope.spawn(move || {
                        first.free_checked("cache-scratch first object");
                        let mut counts = Counts { iters: 0, ops: 1 };
                        let mut on_shared_line = 0;
                        loop {
                            let chunk = share.next_chunk(counts.iters, 64);
                            if chunk == 0 {
                                break;
                            }
                            for _ in 0..chunk {
                                let mut block = Block::alloc(size);
                                let line = block.addr() / CACHE_LINE_SIZE;
                                let foreign = lines
                                    .iter()
                                    .enumerate()
                                    .any(|(other, &l)| other != idx && l == line);
                                on_shared_line += u64::from(foreign);
                                for rep in 0..reps {
                                    for byte in 0..size {
                                        block.write(byte, (rep + byte) as u8);
                                    }
                                }
                                block.mark_ends();
                                block.free_checked("cache-scratch");
                            }
                            counts.iters += chunk;
                            counts.ops += 2 * chunk;
                        }
                        shared.fetch_add(on_shared_line, Ordering::Relaxed);
                        counts
                    })
                })
                .collect();
            let mut total = Counts::default();
            for handle in handles {
                total += handle.join().expect("cache-scratch worker panicked");
            }
            total
        })
    });
    let pct = 100.0 * shared.into_inner() as f64 / outcome.counts.iters.max(1) as f64;
    outcome.extra.push(("shared_line_pct", format!("{pct:.1}")));
    outcome.extra.push(("size", size.to_string()));
    outcome.extra.push(("reps", reps.to_string()));
    Ok(outcome)
}
