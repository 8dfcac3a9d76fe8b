//! The `alloc_sched` driver: fuzz bytes choose both the per-thread op
//! traces and the scheduling decisions, so libFuzzer's coverage guidance
//! explores interleavings of the real allocator under shuttle.
//!
//! # Input
//!
//! ```text
//! input    = n_lo n_hi schedule trace
//! schedule = min(n, what is left) bytes, n = n_lo + 256 * n_hi
//! trace    = the byte form of a trace (`bytes.rs`, format v2), at most
//!            MAX_OPS ops
//! ```
//!
//! Every byte string is an input. The trace is split by thread: thread `t`
//! runs its ops in trace order on its own shuttle thread. Blocks are shared
//! through a table of handles: a free (or realloc) of a handle takes it from
//! the table, so a remote free simply finds the block if its allocation has
//! already happened in this interleaving, and is skipped otherwise. `trim`
//! and `os fail` run on thread 0; `check` and the misuse ops (double,
//! interior and foreign frees) are skipped: `alloc_ops` covers misuse, and
//! the checker needs quiescence, which comes when every thread is joined.
//! A trace's `set parked-heaps 1` (bit 2 of its first byte) reaches the
//! allocator's configuration, so an `exit` parks its heap whole and the
//! thread's next op (or another thread's first) takes it back, with
//! remote frees of its blocks racing the hand-over.
//!
//! Each schedule byte is one scheduling decision, taken only where more
//! than one task can run: bits 0..3 pick the runnable task (`b % n`), bits
//! 3..8 say for how many further decisions the chosen task keeps running
//! (0..31) if it stays runnable. When the bytes run out, the running task
//! keeps running until it blocks or ends (no more preemptions).
//!
//! # Running
//!
//! ```text
//! cargo +nightly fuzz run -O alloc_sched fuzz/corpus/alloc_sched corpus/alloc_sched  # CI: 60 s
//! HAKMEM_ZOO=remote-push-load-store \
//!   cargo +nightly fuzz run -O alloc_sched --features zoo
//! ```
//!
//! `-O` leaves debug assertions out, as `cargo test --release` does: a
//! `debug_assert!` that reads an atomic is a scheduling point, so an input
//! found with them replays differently without them. A crash input replays
//! with [`run_alloc_sched`] (`repro/shuttle/zoo/*.input` are replayed so by
//! `tests/shuttle_zoo.rs`). cargo-fuzz's default sanitizer, AddressSanitizer,
//! sees `SimOs`'s poisoning of freed and uncarved blocks, as in `alloc_ops`.

use std::sync::OnceLock;

use ::shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};
use ::shuttle::sync::Mutex;
use ::shuttle::thread;
use hakmem::{AllocError, Config, Platform, ReallocError, Stats, Zoo};

use super::explore::{parse_zoo, run_once};
use super::platform::ShuttleTiny;
use super::world::{fail, world_config, Blk, ThreadHeap, World};
use crate::bytes::decode;
use crate::trace::{Op, OsFailKind};

/// Ops taken from one input at most (longer traces are cut).
pub const MAX_OPS: usize = 256;

/// A decoded input.
#[derive(Clone, Debug)]
pub struct SchedInput {
    pub schedule: Vec<u8>,
    /// Ops per thread, in trace order.
    pub threads: Vec<Vec<Op>>,
    /// One past the largest handle id.
    pub handles: usize,
    /// The trace's `set parked-heaps` setting, if it has one.
    pub parked_heaps: Option<usize>,
}

impl SchedInput {
    pub fn decode(data: &[u8]) -> SchedInput {
        let (n, rest) = match data {
            [lo, hi, rest @ ..] => (usize::from(*lo) | usize::from(*hi) << 8, rest),
            _ => (0, &[][..]),
        };
        let n = n.min(rest.len());
        let (schedule, trace_bytes) = rest.split_at(n);
        let mut trace = decode(trace_bytes);
        trace.ops.truncate(MAX_OPS);
        let n_threads = trace
            .ops
            .iter()
            .filter_map(Op::thread)
            .map(|t| usize::from(t) + 1)
            .max()
            .unwrap_or(1);
        let mut threads = vec![Vec::new(); n_threads];
        let mut handles = 0;
        for op in &trace.ops {
            if let Some(id) = op.handle() {
                handles = handles.max(id as usize + 1);
            }
            if is_misuse(op) {
                continue;
            }
            let t = op.thread().map_or(0, usize::from);
            threads[t].push(op.clone());
        }
        SchedInput {
            schedule: schedule.to_vec(),
            threads,
            handles,
            parked_heaps: trace.parked_heaps,
        }
    }

    /// The input bytes of a schedule and a trace's byte form.
    pub fn encode(schedule: &[u8], trace_bytes: &[u8]) -> Vec<u8> {
        let n = schedule.len().min(u16::MAX as usize);
        let mut out = vec![n as u8, (n >> 8) as u8];
        out.extend_from_slice(&schedule[..n]);
        out.extend_from_slice(trace_bytes);
        out
    }
}

fn is_misuse(op: &Op) -> bool {
    matches!(
        op,
        Op::Check | Op::FreeInterior { .. } | Op::FreeForeign { .. }
    )
}

/// Scheduling decisions from bytes (see the module docs).
pub struct BytesScheduler {
    bytes: Vec<u8>,
    pos: usize,
    stay: u32,
    started: bool,
}

impl BytesScheduler {
    pub fn new(bytes: Vec<u8>) -> BytesScheduler {
        BytesScheduler {
            bytes,
            pos: 0,
            stay: 0,
            started: false,
        }
    }
}

impl Scheduler for BytesScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if std::mem::replace(&mut self.started, true) {
            return None;
        }
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let cur = current.filter(|c| runnable.iter().any(|t| t.id() == *c));
        if runnable.len() == 1 {
            return Some(runnable[0].id());
        }
        if let (Some(c), false) = (cur, is_yielding) {
            if self.stay > 0 {
                self.stay -= 1;
                return Some(c);
            }
        }
        if let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            self.stay = u32::from(b >> 3);
            return Some(runnable[usize::from(b & 7) % runnable.len()].id());
        }
        match cur {
            // Out of bytes: no more preemptions; a task that yields in a
            // retry loop lets the next one run.
            Some(c) if !is_yielding => Some(c),
            Some(c) => runnable.iter().map(|t| t.id()).find(|&t| t != c),
            None => Some(runnable[0].id()),
        }
    }

    fn next_u64(&mut self) -> u64 {
        0
    }
}

/// The bugs `HAKMEM_ZOO` switches on (comma-separated names), read once.
pub fn zoo_from_env() -> Zoo {
    static ZOO: OnceLock<Zoo> = OnceLock::new();
    *ZOO.get_or_init(|| match std::env::var("HAKMEM_ZOO") {
        Ok(names) => parse_zoo(&names).unwrap_or_else(|e| panic!("HAKMEM_ZOO: {e}")),
        Err(_) => Zoo::NONE,
    })
}

/// The fuzz target's body: runs one input with the bugs of `HAKMEM_ZOO`;
/// panics (which libFuzzer reports as a crash) on any failure.
pub fn fuzz_alloc_sched(data: &[u8]) {
    if let Err(msg) = run_alloc_sched(data, zoo_from_env()) {
        panic!("alloc_sched: {msg}");
    }
}

/// Runs one input; `Err` is the failure message.
pub fn run_alloc_sched(data: &[u8], zoo: Zoo) -> Result<(), String> {
    run_alloc_sched_stats(data, zoo).map(drop)
}

/// [`run_alloc_sched`], returning the allocator's stats as the threads
/// left them (before the final frees, exit and checks).
pub fn run_alloc_sched_stats(data: &[u8], zoo: Zoo) -> Result<Stats, String> {
    let input = std::sync::Arc::new(SchedInput::decode(data));
    let sched = BytesScheduler::new(input.schedule.clone());
    let stats = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = std::sync::Arc::clone(&stats);
    run_once(sched, move || {
        let s = execute(&input, zoo);
        *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    })?;
    let s = stats.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(s.expect("a passing execution records its stats"))
}

fn execute(input: &SchedInput, zoo: Zoo) -> Stats {
    let base = world_config(zoo);
    let w = World::with_config(Config {
        parked_heaps: input.parked_heaps.unwrap_or(base.parked_heaps),
        ..base
    });
    let table = Mutex::new(vec![None::<Blk>; input.handles]);
    thread::scope(|s| {
        for ops in &input.threads {
            let (w, table) = (&w, &table);
            s.spawn(move || run_thread(w, table, ops));
        }
    });
    let os = w.allocator().os();
    os.fail_next_maps(0);
    os.fail_next_commits(0);
    let live: Vec<Blk> = table
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let stats = w.allocator().stats();
    w.finish(live);
    stats
}

/// Whether an allocation error is legitimate: the OS refused something
/// while it ran (any thread's refusal counts: the books are shared), or
/// the request cannot be served at all.
fn legit(w: &World, e: AllocError, refusals_before: usize, align: usize) -> bool {
    match e {
        AllocError::OutOfMemory(_) => w.allocator().os().refusal_count() > refusals_before,
        AllocError::TooLarge { .. } => true,
        AllocError::BadAlign { .. } => align > ShuttleTiny::GEOMETRY.segment_size() / 2,
    }
}

fn run_thread(w: &World, table: &Mutex<Vec<Option<Blk>>>, ops: &[Op]) {
    let mut heap: Option<ThreadHeap<'_>> = None;
    let take = |id: u32| table.lock().unwrap()[id as usize].take();
    let put = |id: u32, b: Blk| table.lock().unwrap()[id as usize] = Some(b);
    for op in ops {
        let before = w.allocator().os().refusal_count();
        if heap.is_none() && op.thread().is_some() {
            match w.try_heap() {
                Ok(h) => heap = Some(h),
                Err(AllocError::OutOfMemory(_)) if w.allocator().os().refusal_count() > before => {
                    continue
                }
                Err(e) => fail("I7 SPURIOUS-ERROR", format!("heap(): {e}")),
            }
        }
        match *op {
            Op::Alloc {
                id,
                size,
                align,
                zeroed,
                ..
            } => {
                let h = heap.as_mut().expect("created above");
                match h.try_alloc(size, align, zeroed) {
                    Ok(b) => put(id, b),
                    Err(e) if legit(w, e, before, align) => {}
                    Err(e) => fail(
                        "I7 SPURIOUS-ERROR",
                        format!("alloc({size}, {align}) failed without cause: {e}"),
                    ),
                }
            }
            Op::Free { id, .. } => {
                if let Some(b) = take(id) {
                    heap.as_mut().expect("created above").free(b);
                }
            }
            Op::Realloc { id, size, .. } => {
                if let Some(b) = take(id) {
                    let h = heap.as_mut().expect("created above");
                    match h.try_realloc(b, size) {
                        Ok(nb) => put(id, nb),
                        Err(ReallocError::Alloc(e)) if legit(w, e, before, 16) => put(id, b),
                        Err(e) => fail(
                            "I7 SPURIOUS-ERROR",
                            format!("realloc to {size} failed without cause: {e}"),
                        ),
                    }
                }
            }
            Op::Drain { .. } => heap.as_mut().expect("created above").flush(),
            Op::Collect { .. } => heap.as_mut().expect("created above").collect(),
            Op::Exit { .. } => heap = None,
            Op::Trim => w.allocator().trim(),
            Op::OsFail { what, count } => match what {
                OsFailKind::Map => w.allocator().os().fail_next_maps(count),
                OsFailKind::Commit => w.allocator().os().fail_next_commits(count),
            },
            Op::Check | Op::FreeInterior { .. } | Op::FreeForeign { .. } => {}
        }
    }
}
