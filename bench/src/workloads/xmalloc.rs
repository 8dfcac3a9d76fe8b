//! `xmalloc`: producers allocate, consumers free (the shape of Lever and
//! Boreham's xmalloc-test, rebuilt from its description).
//!
//! `--threads N` (N ≥ 2) makes N/2 producer threads and N - N/2 consumers.
//! A producer allocates blocks (uniform in `--min..=--max`, default
//! 16..=1040 B), marks them, and passes them in batches of `--batch` through
//! a bounded queue to a consumer, which checks and frees them: every free is
//! a free of a block another, live, thread allocated, and the allocating
//! thread never gets a block back by itself. One iteration is one block.
//! Batches are allocated up front and recycled, so the queue itself makes no
//! allocator calls while measuring.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::{check_positive, check_sizes, Outcome, Params, Workload};
use crate::budget::{Counts, Share};
use crate::cabi::Block;
use crate::rng::Rng;

pub const WORKLOAD: Workload = Workload {
    name: "xmalloc",
    summary:
        "producer threads allocate, consumer threads free, blocks passed in batches through queues",
    default_threads: 2,
    default_iters: 6_000_000,
    run,
};

/// Batches in flight per producer: enough to keep both sides busy.
const BATCHES_PER_PRODUCER: usize = 8;

/// A queue of full batches to one consumer, and the spare batches its
/// producers refill.
struct Queue {
    state: Mutex<QueueState>,
    /// signalled when a full batch is pushed or a producer finishes
    filled: Condvar,
    /// signalled when a spare batch comes back
    emptied: Condvar,
}

struct QueueState {
    full: VecDeque<Vec<Block>>,
    spare: Vec<Vec<Block>>,
    /// producers still feeding this queue
    open_producers: usize,
}

impl Queue {
    fn new(producers: usize, batch: usize) -> Queue {
        let count = producers * BATCHES_PER_PRODUCER;
        Queue {
            state: Mutex::new(QueueState {
                full: VecDeque::with_capacity(count),
                spare: (0..count).map(|_| Vec::with_capacity(batch)).collect(),
                open_producers: producers,
            }),
            filled: Condvar::new(),
            emptied: Condvar::new(),
        }
    }

    fn take_spare(&self) -> Vec<Block> {
        let mut state = self.state.lock().expect("queue lock");
        loop {
            if let Some(batch) = state.spare.pop() {
                return batch;
            }
            state = self.emptied.wait(state).expect("queue lock");
        }
    }

    fn push_full(&self, batch: Vec<Block>) {
        self.state.lock().expect("queue lock").full.push_back(batch);
        self.filled.notify_one();
    }

    fn return_spare(&self, batch: Vec<Block>) {
        self.state.lock().expect("queue lock").spare.push(batch);
        self.emptied.notify_one();
    }

    /// The next full batch, or None once every producer finished and the
    /// queue is empty.
    fn pop_full(&self) -> Option<Vec<Block>> {
        let mut state = self.state.lock().expect("queue lock");
        loop {
            if let Some(batch) = state.full.pop_front() {
                return Some(batch);
            }
            if state.open_producers == 0 {
                return None;
            }
            state = self.filled.wait(state).expect("queue lock");
        }
    }

    fn close_one(&self) {
        self.state.lock().expect("queue lock").open_producers -= 1;
        self.filled.notify_all();
    }
}

fn run(p: &mut Params) -> Result<Outcome, String> {
    let min = p.args.take_or("--min", 16usize)?;
    let max = p.args.take_or("--max", 1040usize)?;
    let batch = p.args.take_or("--batch", 256usize)?;
    p.args.finish()?;
    check_sizes(min, max)?;
    check_positive("--batch", batch)?;
    if p.threads < 2 {
        return Err("xmalloc needs --threads of at least 2 (producers and consumers)".into());
    }
    let producers = p.threads / 2;
    let consumers = p.threads - producers;
    let feeding = |consumer: usize| (0..producers).filter(|p| p % consumers == consumer).count();
    let queues: Vec<Queue> = (0..consumers)
        .map(|c| Queue::new(feeding(c), batch))
        .collect();
    let (budget, seed) = (p.budget, p.seed);
    let mut outcome = Outcome::timed(|| {
        let shares = budget.split(producers);
        let queues = &queues;
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (idx, share) in shares.into_iter().enumerate() {
                let queue = &queues[idx % consumers];
                let rng = Rng::new(seed, idx as u64);
                handles.push(scope.spawn(move || produce(queue, share, rng, min, max, batch)));
            }
            for queue in queues {
                handles.push(scope.spawn(move || consume(queue)));
            }
            let mut total = Counts::default();
            for handle in handles {
                total += handle.join().expect("xmalloc thread panicked");
            }
            total
        })
    });
    outcome.extra.push(("producers", producers.to_string()));
    outcome.extra.push(("consumers", consumers.to_string()));
    Ok(outcome)
}

fn produce(
    queue: &Queue,
    share: Share,
    mut rng: Rng,
    min: usize,
    max: usize,
    batch: usize,
) -> Counts {
    let mut counts = Counts::default();
    loop {
        let chunk = share.next_chunk(counts.iters, batch as u64);
        if chunk == 0 {
            break;
        }
        let mut blocks = queue.take_spare();
        for _ in 0..chunk {
            blocks.push(Block::alloc(rng.range(min, max)));
        }
        queue.push_full(blocks);
        counts.iters += chunk;
        counts.ops += chunk;
    }
    queue.close_one();
    counts
}

fn consume(queue: &Queue) -> Counts {
    let mut counts = Counts::default();
    while let Some(mut blocks) = queue.pop_full() {
        counts.ops += blocks.len() as u64;
        for block in blocks.drain(..) {
            block.free_checked("xmalloc consumer");
        }
        queue.return_spare(blocks);
    }
    counts
}
