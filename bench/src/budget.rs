//! How much work a run does, and the threads that do it.
//!
//! The default is a fixed amount of work (`--iters`), timed: the time ratio
//! between two allocators is then the ratio of their costs for the same job.
//! `--seconds` instead runs for a fixed duration and counts the work done.

use std::time::{Duration, Instant};

/// The whole run's budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// A fixed number of workload iterations, shared among the threads.
    Iters(u64),
    /// A fixed duration, in seconds; each thread does as much as it can.
    Seconds(f64),
}

impl Budget {
    /// Starts the clock and splits the budget into `parts` shares (the first
    /// shares take the remainder of an uneven split).
    pub fn split(self, parts: usize) -> Vec<Share> {
        let parts = parts.max(1) as u64;
        match self {
            Budget::Iters(total) => (0..parts)
                .map(|idx| Share {
                    limit: total / parts + u64::from(idx < total % parts),
                    deadline: None,
                })
                .collect(),
            Budget::Seconds(seconds) => {
                let deadline = Instant::now() + Duration::from_secs_f64(seconds);
                (0..parts)
                    .map(|_| Share {
                        limit: u64::MAX,
                        deadline: Some(deadline),
                    })
                    .collect()
            }
        }
    }

    /// `iters` or `seconds`, for the result line.
    pub fn mode(self) -> &'static str {
        match self {
            Budget::Iters(_) => "iters",
            Budget::Seconds(_) => "seconds",
        }
    }
}

/// One worker's part of the budget.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    /// iterations this share may do (`u64::MAX` when timed)
    limit: u64,
    /// when a timed share ends
    deadline: Option<Instant>,
}

impl Share {
    /// How many iterations to do next (at most `max`), given `done` so far;
    /// 0 means stop. Workers loop in chunks so the clock is read rarely.
    #[inline]
    pub fn next_chunk(&self, done: u64, max: u64) -> u64 {
        if let Some(deadline) = self.deadline {
            if Instant::now() >= deadline {
                return 0;
            }
        }
        max.min(self.limit - done.min(self.limit))
    }

    /// The iteration limit of an untimed share (`u64::MAX` when timed).
    #[cfg(test)]
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Work done by a worker: workload iterations and allocator calls.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// workload iterations (each workload documents what one is)
    pub iters: u64,
    /// calls to malloc, calloc, realloc or free
    pub ops: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.iters += other.iters;
        self.ops += other.ops;
    }
}

/// Runs `work(idx, share)` on `threads` threads and sums their counts
/// (with one thread, on the calling thread).
pub fn run_threads<F>(threads: usize, budget: Budget, work: F) -> Counts
where
    F: Fn(usize, Share) -> Counts + Sync,
{
    let shares = budget.split(threads);
    if threads <= 1 {
        // On the calling thread: a single-threaded run stays single-threaded
        // (glibc, for one, takes a lock-free path until a thread is created).
        return work(0, shares[0]);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(idx, share)| scope.spawn(move || work(idx, share)))
            .collect();
        let mut total = Counts::default();
        for handle in handles {
            total += handle.join().expect("worker thread panicked");
        }
        total
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uneven_split_hands_out_every_iteration() {
        let shares = Budget::Iters(10).split(3);
        let limits: Vec<u64> = shares.iter().map(Share::limit).collect();
        assert_eq!(limits, vec![4, 3, 3]);
    }

    #[test]
    fn chunks_stop_exactly_at_the_limit() {
        let share = Budget::Iters(10).split(1)[0];
        assert_eq!(share.next_chunk(0, 4), 4);
        assert_eq!(share.next_chunk(8, 4), 2);
        assert_eq!(share.next_chunk(10, 4), 0);
    }

    #[test]
    fn threads_sum_their_counts() {
        let total = run_threads(3, Budget::Iters(30), |_, share| Counts {
            iters: share.limit(),
            ops: 2 * share.limit(),
        });
        assert_eq!(total, Counts { iters: 30, ops: 60 });
    }
}
