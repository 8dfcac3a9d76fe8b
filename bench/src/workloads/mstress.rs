//! `mstress`: multi-threaded churn with short- and long-lived objects of
//! widely varied sizes, some moved between threads (the shape of
//! mimalloc-bench's mstress, rebuilt from its description).
//!
//! The run is `--rounds` rounds (default 10); each round starts `--threads`
//! fresh threads that share the round's iterations. A thread owns `--slots`
//! data slots and a list of retained (long-lived) objects; one iteration
//! picks one action:
//!
//! | chance | action |
//! |---|---|
//! | 5 %  | allocate a long-lived object; at `--retain` of them, free them all |
//! | 45 % | allocate into a random slot (1 in 8 with calloc), freeing what was there |
//! | 10 % | realloc a random slot's object to a new size |
//! | 25 % | free a random slot's object |
//! | 15 % | swap a random slot with a random entry of a global transfer array |
//!
//! Sizes: 90 % 24..=256 B, 9 % ..=8 KiB, 0.9 % ..=256 KiB, 0.1 % ..=2 MiB
//! (log-uniform within each tier). The transfer array outlives the threads:
//! objects swapped in by a thread of one round are freed by threads of later
//! rounds, after their allocating thread exited. Every object carries marks
//! and its size, checked when it is freed.

use std::sync::atomic::{AtomicPtr, Ordering};

use super::{check_positive, Outcome, Params, Workload};
use crate::budget::{Budget, Counts, Share};
use crate::cabi::{Block, MIN_HEADER_BLOCK_SIZE};
use crate::rng::Rng;

pub const WORKLOAD: Workload = Workload {
    name: "mstress",
    summary: "rounds of threads churning short- and long-lived objects of varied sizes, some moved between threads",
    default_threads: 2,
    default_iters: 9_000_000,
    run,
};

/// One thread's options.
#[derive(Clone, Copy)]
struct Config {
    slots: usize,
    retain: usize,
}

fn pick_size(rng: &mut Rng) -> usize {
    const _: () = assert!(MIN_HEADER_BLOCK_SIZE <= 24);
    match rng.below(1000) {
        0..=899 => rng.log_uniform(24, 256),
        900..=989 => rng.log_uniform(257, 8 << 10),
        990..=998 => rng.log_uniform((8 << 10) + 1, 256 << 10),
        _ => rng.log_uniform((256 << 10) + 1, 2 << 20),
    }
}

fn run(p: &mut Params) -> Result<Outcome, String> {
    let rounds = p.args.take_or("--rounds", 10usize)?;
    let slots = p.args.take_or("--slots", 1000usize)?;
    let retain = p.args.take_or("--retain", 2000usize)?;
    let transfer_count = p.args.take_or("--transfer", 1000usize)?;
    p.args.finish()?;
    check_positive("--rounds", rounds)?;
    check_positive("--slots", slots)?;
    check_positive("--retain", retain)?;
    check_positive("--transfer", transfer_count)?;
    let config = Config { slots, retain };
    let (threads, budget, seed) = (p.threads, p.budget, p.seed);
    let transfer: Vec<AtomicPtr<u8>> = (0..transfer_count)
        .map(|_| AtomicPtr::new(std::ptr::null_mut()))
        .collect();
    let outcome = Outcome::timed(|| {
        let mut total = Counts::default();
        for round in 0..rounds {
            let round_budget = match budget {
                Budget::Iters(n) => {
                    let rounds = rounds as u64;
                    Budget::Iters(n / rounds + u64::from((round as u64) < n % rounds))
                }
                Budget::Seconds(s) => Budget::Seconds(s / rounds as f64),
            };
            let shares = round_budget.split(threads);
            let transfer = &transfer;
            total += std::thread::scope(|scope| {
                let handles: Vec<_> = shares
                    .into_iter()
                    .enumerate()
                    .map(|(idx, share)| {
                        let rng = Rng::new(seed, (round * threads + idx) as u64);
                        scope.spawn(move || worker(config, share, rng, transfer))
                    })
                    .collect();
                let mut counts = Counts::default();
                for handle in handles {
                    counts += handle.join().expect("mstress worker panicked");
                }
                counts
            });
        }
        for entry in &transfer {
            let ptr = entry.swap(std::ptr::null_mut(), Ordering::Acquire);
            if !ptr.is_null() {
                // SAFETY: non-null entries were stored by `into_raw_with_header`
                // and are owned by the array; the swap took ownership, and the
                // worker threads were joined, so their writes are visible.
                let block = unsafe { Block::from_raw_with_header(ptr) };
                block.free_checked("mstress transfer drain");
                total.ops += 1;
            }
        }
        total
    });
    Ok(outcome)
}

fn worker(config: Config, share: Share, mut rng: Rng, transfer: &[AtomicPtr<u8>]) -> Counts {
    let mut slots: Vec<Option<Block>> = (0..config.slots).map(|_| None).collect();
    let mut retained: Vec<Block> = Vec::with_capacity(config.retain);
    let mut counts = Counts::default();
    loop {
        let chunk = share.next_chunk(counts.iters, 256);
        if chunk == 0 {
            break;
        }
        for _ in 0..chunk {
            counts.ops += step(&config, &mut rng, &mut slots, &mut retained, transfer);
        }
        counts.iters += chunk;
    }
    for block in retained
        .drain(..)
        .chain(slots.iter_mut().filter_map(Option::take))
    {
        block.free_checked("mstress thread exit");
        counts.ops += 1;
    }
    counts
}

/// One action; returns the allocator calls it made.
fn step(
    config: &Config,
    rng: &mut Rng,
    slots: &mut [Option<Block>],
    retained: &mut Vec<Block>,
    transfer: &[AtomicPtr<u8>],
) -> u64 {
    let action = rng.below(100);
    if action < 5 {
        if retained.len() >= config.retain {
            let freed = retained.len() as u64;
            for block in retained.drain(..) {
                block.free_checked("mstress retained");
            }
            return freed;
        }
        retained.push(Block::alloc(pick_size(rng)));
        return 1;
    }
    let slot = &mut slots[rng.below(slots.len())];
    match action {
        5..=49 => {
            let mut ops = 1;
            if let Some(old) = slot.take() {
                old.free_checked("mstress slot");
                ops += 1;
            }
            let size = pick_size(rng);
            *slot = Some(if rng.below(8) == 0 {
                Block::alloc_zeroed(size)
            } else {
                Block::alloc(size)
            });
            ops
        }
        50..=59 => match slot.take() {
            Some(old) => {
                old.check(false, "mstress before realloc");
                let kept_mark = old.read(0);
                let mut grown = old.realloc(pick_size(rng));
                if grown.read(0) != kept_mark {
                    crate::cabi::corrupt("mstress: realloc lost the first byte");
                }
                grown.mark_ends();
                *slot = Some(grown);
                1
            }
            None => 0,
        },
        60..=84 => match slot.take() {
            Some(old) => {
                old.free_checked("mstress free");
                1
            }
            None => 0,
        },
        _ => {
            let mine = slot
                .take()
                .map_or(std::ptr::null_mut(), Block::into_raw_with_header);
            let entry = &transfer[rng.below(transfer.len())];
            // ORDERING: AcqRel. Release publishes our block's header and
            // marks to whichever thread swaps it out; Acquire pairs with that
            // thread's Release swap so its block's contents are visible here.
            let theirs = entry.swap(mine, Ordering::AcqRel);
            if !theirs.is_null() {
                // SAFETY: non-null entries come from `into_raw_with_header`
                // and are owned by the array; the swap moved ownership to us,
                // and the Acquire above made the header visible.
                *slot = Some(unsafe { Block::from_raw_with_header(theirs) });
            }
            0
        }
    }
}
