//! Delta debugging over ops: shrinks a failing trace to a short one that
//! fails with the same failure id (`I3 SLAB-USED`, `CRASH 11`, ...),
//! whatever produced it (fuzzer, explore, a hand-written trace). libFuzzer's
//! `tmin` minimizes bytes; this minimizes ops, so the result reads.
//!
//! Passes, repeated until nothing changes:
//! 1. cut everything after the failing op;
//! 2. ddmin: remove chunks of ops, halving the chunk size; then slide a
//!    window of each power-of-two size over the trace (timing-sensitive
//!    failures need a run removed that is not aligned to ddmin's chunks);
//! 3. remove every op naming one handle at once;
//! 4. move each thread's ops onto a lower thread;
//! 5. simplify sizes and alignments (smaller, default);
//! 6. remove single ops.
//!
//! Finally handles are renumbered `p1, p2, ...` in order of appearance.
//! The runner is total (ops on unknown handles are skipped), so every
//! candidate is runnable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::isolate::run_isolated;
use crate::runner::{run, RunConfig};
use crate::trace::{Op, Trace, DEFAULT_ALIGN};

pub struct MinimizeOptions {
    pub cfg: RunConfig,
    /// Run each candidate in a forked child (needed for crashes).
    pub isolate: bool,
    /// Stop after this long (the best trace so far is returned).
    pub budget: Duration,
    /// Print progress to stderr.
    pub verbose: bool,
}

pub struct Minimized {
    pub trace: Trace,
    pub runs: usize,
    pub failure_id: String,
}

struct Ctx<'a> {
    opts: &'a MinimizeOptions,
    /// The original trace's settings: every candidate keeps them.
    parked_heaps: Option<usize>,
    target: String,
    runs: usize,
    deadline: Instant,
}

impl Ctx<'_> {
    /// True if `t` fails with the target id; also returns the failing op.
    fn fails(&mut self, t: &Trace) -> Option<Option<usize>> {
        self.runs += 1;
        let r = if self.opts.isolate {
            run_isolated(t, &self.opts.cfg)
        } else {
            run(t, &self.opts.cfg).map(|r| r.ops)
        };
        match r {
            Err(f) if f.id() == self.target => Some(f.op_index),
            _ => None,
        }
    }

    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// A candidate: `ops` with the settings being kept.
    fn trace(&self, ops: Vec<Op>) -> Trace {
        Trace {
            ops,
            parked_heaps: self.parked_heaps,
        }
    }
}

/// Minimizes `trace`, which must fail under `opts.cfg`; returns `None` if
/// it does not fail at all.
pub fn minimize(trace: &Trace, opts: &MinimizeOptions) -> Option<Minimized> {
    let first = if opts.isolate {
        run_isolated(trace, &opts.cfg).err()?
    } else {
        run(trace, &opts.cfg).err()?
    };
    let mut cx = Ctx {
        opts,
        parked_heaps: trace.parked_heaps,
        target: first.id(),
        runs: 1,
        deadline: Instant::now() + opts.budget,
    };
    let mut cur = trace.ops.clone();
    if let Some(i) = first.op_index {
        cur.truncate(i + 1);
    }
    loop {
        let before = cur.len();
        let before_text = cx.trace(cur.clone()).to_string();
        ddmin(&mut cx, &mut cur);
        remove_windows(&mut cx, &mut cur);
        remove_handles(&mut cx, &mut cur);
        merge_threads(&mut cx, &mut cur);
        simplify_sizes(&mut cx, &mut cur);
        remove_single(&mut cx, &mut cur);
        if opts.verbose {
            eprintln!(
                "minimize: {} ops after {} runs ({})",
                cur.len(),
                cx.runs,
                cx.target
            );
        }
        if cx.out_of_time()
            || (cur.len() == before && cx.trace(cur.clone()).to_string() == before_text)
        {
            break;
        }
    }
    let renumbered = renumber(&cur);
    if renumbered != cur && cx.fails(&cx.trace(renumbered.clone())).is_some() {
        cur = renumbered;
    }
    // A setting the failure does not need goes too (the run then takes
    // the configuration's value).
    if cx.parked_heaps.is_some()
        && !cx.out_of_time()
        && cx.fails(&Trace::new(cur.clone())).is_some()
    {
        cx.parked_heaps = None;
    }
    Some(Minimized {
        trace: cx.trace(cur),
        runs: cx.runs,
        failure_id: cx.target,
    })
}

/// Tries a candidate; on success keeps it, cut after the failing op.
fn try_keep(cx: &mut Ctx<'_>, cur: &mut Vec<Op>, cand: Vec<Op>) -> bool {
    if cx.out_of_time() {
        return false;
    }
    match cx.fails(&cx.trace(cand.clone())) {
        Some(at) => {
            let mut cand = cand;
            if let Some(i) = at {
                cand.truncate(i + 1);
            }
            *cur = cand;
            true
        }
        None => false,
    }
}

fn ddmin(cx: &mut Ctx<'_>, cur: &mut Vec<Op>) {
    let mut n = 2usize;
    while cur.len() >= 2 && !cx.out_of_time() {
        let chunk = cur.len().div_ceil(n);
        let mut removed = false;
        let mut start = 0;
        while start < cur.len() {
            let end = (start + chunk).min(cur.len());
            let mut cand = cur[..start].to_vec();
            cand.extend_from_slice(&cur[end..]);
            if try_keep(cx, cur, cand) {
                removed = true;
                n = (n - 1).max(2);
                break;
            }
            start = end;
        }
        if !removed {
            if chunk <= 1 {
                break;
            }
            n = (n * 2).min(cur.len());
        }
    }
}

/// Removes contiguous runs of ops. Timing-sensitive failures (a slab must
/// run out exactly at some op) survive only the removal of a run of the
/// right length, which neither ddmin's aligned chunks nor single removals
/// reach. Short traces get every run, longest first; longer ones a sliding
/// window of each power-of-two size. Bounded by a run budget.
fn remove_windows(cx: &mut Ctx<'_>, cur: &mut Vec<Op>) {
    const MAX_RUNS: usize = 4000;
    const EXHAUSTIVE_BELOW: usize = 120;
    let budget_end = cx.runs + MAX_RUNS;
    let mut size = cur.len().saturating_sub(1);
    while size >= 2 && cx.runs < budget_end && !cx.out_of_time() {
        let mut start = 0;
        let mut removed = false;
        while start + size <= cur.len() && cx.runs < budget_end && !cx.out_of_time() {
            let mut cand = cur[..start].to_vec();
            cand.extend_from_slice(&cur[start + size..]);
            if try_keep(cx, cur, cand) {
                removed = true;
            } else {
                start += 1;
            }
        }
        size = if removed {
            size.min(cur.len().saturating_sub(1))
        } else if cur.len() < EXHAUSTIVE_BELOW {
            size - 1
        } else {
            size / 2
        };
    }
}

fn remove_handles(cx: &mut Ctx<'_>, cur: &mut Vec<Op>) {
    let mut ids: Vec<u32> = cur.iter().filter_map(Op::handle).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let cand: Vec<Op> = cur
            .iter()
            .filter(|op| op.handle() != Some(id))
            .cloned()
            .collect();
        if cand.len() < cur.len() {
            try_keep(cx, cur, cand);
        }
    }
}

fn with_thread(op: &Op, nt: u8) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Alloc { t, .. }
        | Op::Free { t, .. }
        | Op::FreeInterior { t, .. }
        | Op::FreeForeign { t }
        | Op::Realloc { t, .. }
        | Op::Drain { t }
        | Op::Collect { t }
        | Op::Exit { t } => *t = nt,
        Op::Trim | Op::OsFail { .. } | Op::Check => {}
    }
    op
}

fn merge_threads(cx: &mut Ctx<'_>, cur: &mut Vec<Op>) {
    let mut threads: Vec<u8> = cur.iter().filter_map(Op::thread).collect();
    threads.sort_unstable();
    threads.dedup();
    for &t in threads.iter().rev() {
        for &lower in threads.iter().filter(|&&l| l < t) {
            let cand: Vec<Op> = cur
                .iter()
                .map(|op| {
                    if op.thread() == Some(t) {
                        with_thread(op, lower)
                    } else {
                        op.clone()
                    }
                })
                .collect();
            if try_keep(cx, cur, cand) {
                break;
            }
        }
    }
}

fn simplify_sizes(cx: &mut Ctx<'_>, cur: &mut Vec<Op>) {
    let mut i = 0;
    while i < cur.len() && !cx.out_of_time() {
        if let Op::Alloc {
            t,
            id,
            size,
            align,
            zeroed,
        } = cur[i]
        {
            let mut options = Vec::new();
            if zeroed {
                options.push(Op::Alloc {
                    t,
                    id,
                    size,
                    align,
                    zeroed: false,
                });
            }
            if align != DEFAULT_ALIGN {
                options.push(Op::Alloc {
                    t,
                    id,
                    size,
                    align: DEFAULT_ALIGN,
                    zeroed,
                });
            }
            for s in [16, size / 2] {
                if s < size {
                    options.push(Op::Alloc {
                        t,
                        id,
                        size: s,
                        align,
                        zeroed,
                    });
                }
            }
            for o in options {
                let mut cand = cur.clone();
                cand[i] = o;
                if try_keep(cx, cur, cand) {
                    break;
                }
            }
        }
        i += 1;
    }
}

fn remove_single(cx: &mut Ctx<'_>, cur: &mut Vec<Op>) {
    let mut i = cur.len();
    while i > 0 && !cx.out_of_time() {
        i -= 1;
        if i >= cur.len() {
            continue;
        }
        let mut cand = cur.clone();
        cand.remove(i);
        try_keep(cx, cur, cand);
    }
}

/// Handles renumbered p1, p2, ... in order of first appearance.
fn renumber(ops: &[Op]) -> Vec<Op> {
    let mut map = BTreeMap::new();
    let mut next = 1u32;
    ops.iter()
        .map(|op| {
            let mut op = op.clone();
            let id = match &mut op {
                Op::Alloc { id, .. }
                | Op::Free { id, .. }
                | Op::FreeInterior { id, .. }
                | Op::Realloc { id, .. } => Some(id),
                _ => None,
            };
            if let Some(id) = id {
                *id = *map.entry(*id).or_insert_with(|| {
                    next += 1;
                    next - 1
                });
            }
            op
        })
        .collect()
}
