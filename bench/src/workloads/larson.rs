//! `larson`: a server under load (Larson & Krishnan's benchmark, rebuilt
//! from its description).
//!
//! Each of `--threads` lineages owns an array of `--slots` blocks (sizes
//! uniform in `--min..=--max`, default 16..=1040 B). One iteration frees a
//! random slot's block and allocates a new one of a random size. Every
//! `--handoff` iterations the lineage hands its array to a freshly spawned
//! thread and the old thread exits, as a server hands connections to new
//! worker threads: from then on every free of an older block is a free of a
//! block allocated by another (now exited) thread.

use super::{check_positive, check_sizes, Outcome, Params, Workload};
use crate::budget::{run_threads, Counts, Share};
use crate::cabi::Block;
use crate::rng::Rng;
use crate::workloads::churn::{Churn, Sizes};

pub const WORKLOAD: Workload = Workload {
    name: "larson",
    summary: "server-like: random free+malloc over a slot array that moves to a new thread every --handoff iterations",
    default_threads: 2,
    default_iters: 28_000_000,
    run,
};

/// What a lineage carries from one thread to the next.
struct Lineage {
    slots: Vec<Option<Block>>,
    rng: Rng,
    counts: Counts,
}

fn run(p: &mut Params) -> Result<Outcome, String> {
    let slots = p.args.take_or("--slots", 1000usize)?;
    let min = p.args.take_or("--min", 16usize)?;
    let max = p.args.take_or("--max", 1040usize)?;
    let handoff = p.args.take_or("--handoff", 20_000u64)?;
    p.args.finish()?;
    check_sizes(min, max)?;
    check_positive("--slots", slots)?;
    check_positive("--handoff", handoff as usize)?;
    let churn = Churn {
        slots,
        sizes: Sizes::Uniform(min, max),
        pages: false,
        replace: true,
    };
    let (threads, budget, seed) = (p.threads, p.budget, p.seed);
    let generations = std::sync::atomic::AtomicU64::new(0);
    let mut outcome = Outcome::timed(|| {
        run_threads(threads, budget, |idx, share| {
            let (counts, gens) = lineage(&churn, share, Rng::new(seed, idx as u64), handoff);
            generations.fetch_add(gens, std::sync::atomic::Ordering::Relaxed);
            counts
        })
    });
    outcome
        .extra
        .push(("handoffs", generations.into_inner().to_string()));
    outcome.extra.push(("slots", slots.to_string()));
    Ok(outcome)
}

/// Runs one lineage to the end of its share: fill, then generations of
/// threads, each doing up to `handoff` iterations; finally frees the array.
/// Returns the counts and the number of handoffs.
fn lineage(churn: &Churn, share: Share, mut rng: Rng, handoff: u64) -> (Counts, u64) {
    let mut state = Lineage {
        slots: (0..churn.slots)
            .map(|_| Some(churn.make(&mut rng)))
            .collect(),
        rng,
        counts: Counts {
            iters: 0,
            ops: churn.slots as u64,
        },
    };
    let mut handoffs = 0;
    loop {
        let generation = share.next_chunk(state.counts.iters, handoff);
        if generation == 0 {
            break;
        }
        let churn = *churn;
        // A new thread per generation; this one only waits for it.
        state = std::thread::spawn(move || {
            let mut state = state;
            let mut done = 0;
            while done < generation {
                let chunk = share.next_chunk(0, (generation - done).min(1024));
                if chunk == 0 {
                    break;
                }
                state.counts.ops += churn.steps(&mut state.rng, &mut state.slots, chunk);
                state.counts.iters += chunk;
                done += chunk;
            }
            state
        })
        .join()
        .expect("larson generation thread panicked");
        handoffs += 1;
    }
    // The last generation's thread has exited: these frees are remote too.
    state.counts.ops += churn.drain(&mut state.slots);
    (state.counts, handoffs)
}
