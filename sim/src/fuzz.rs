//! Fuzz drivers: the bodies of the `fuzz/` targets, shared with the tests
//! that replay the corpus and with the property tests (as dlmalloc-rs
//! shares its fuzz drivers with `tests/smoke.rs`).
//!
//! A target is five lines that hand libFuzzer's bytes to a driver here:
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| {
//!     hakmem_sim::fuzz::alloc_ops(data);
//! });
//! ```
//!
//! A driver panics on a failure, which is what libFuzzer records as a crash.
//! The panic message is the [`Failure`] (op, invariant, detail) and the
//! text trace up to the failing op, shortened; the crash file itself holds
//! the bytes, which `hakmem-sim fmt` turns back into the text trace (see
//! `repro/README.md` for the whole path from a crash to a repro file).
//!
//! Under `cargo fuzz` with AddressSanitizer (the default on nightly),
//! `sim/build.rs` sets `cfg(hakmem_asan)` and [`SimOs`](crate::SimOs)
//! poisons free and uncarved blocks, so a stray read or write of one is an
//! ASan report even where the checker would not look.

use crate::bytes::decode;
use crate::runner::{run, Failure, RunConfig, RunReport};
use crate::sim_os::SimOsConfig;
use crate::trace::Trace;

/// Full check (`check_live`) after every `FUZZ_CHECK_EVERY` ops, and always
/// at the end and at quiescence. The user-contract checks (contents,
/// overlap, alignment, typed errors for misuse) run on every op regardless.
///
/// Measured on the seeded corpus (tiny geometry, one core): a check after
/// every op costs about 2.6x the run time of a check every 8 ops; a bug the
/// checker sees stays visible until the next check in nearly every case, so
/// a fuzzer finds it as well and executes ~2x more inputs. `hakmem-sim
/// replay` (check every op) then pins the exact op.
pub const FUZZ_CHECK_EVERY: usize = 8;

/// Address space reserved per run: 256 MiB is room for 256 blocks of the
/// largest size a byte trace asks for (1 MiB); beyond it maps are refused,
/// which the runner accepts as a legitimate out-of-memory. A smaller arena
/// than `RunConfig::tiny()`'s 1 GiB keeps the per-input setup cheap, under
/// ASan especially (its shadow of the arena is cleared on every drop).
pub const FUZZ_ARENA_SIZE: usize = 256 << 20;

/// Longest excerpt of the trace a crash message prints, in ops.
const EXCERPT_OPS: usize = 60;

/// The configuration the fuzz drivers run with: the tiny geometry and
/// caches, a full check every [`FUZZ_CHECK_EVERY`] ops, quiescence at the end.
pub fn fuzz_config() -> RunConfig {
    RunConfig {
        sim_os: SimOsConfig {
            arena_size: FUZZ_ARENA_SIZE,
            ..RunConfig::tiny().sim_os
        },
        ..RunConfig::tiny()
    }
    .check_every(FUZZ_CHECK_EVERY)
}

/// Decodes `data` and runs it under [`fuzz_config`]: what [`alloc_ops`] does,
/// without the panic (for tests that report many inputs at once).
pub fn run_alloc_ops(data: &[u8]) -> (Trace, Result<RunReport, Failure>) {
    let trace = decode(data);
    let result = run(&trace, &fuzz_config());
    (trace, result)
}

/// The `alloc_ops` fuzz target: any bytes are a trace (see
/// [`bytes`](crate::bytes)); a failing run panics with [`crash_message`].
pub fn alloc_ops(data: &[u8]) {
    let (trace, result) = run_alloc_ops(data);
    if let Err(failure) = result {
        panic!("{}", crash_message(&trace, &failure));
    }
}

/// The text trace of a fuzz input (a crash file, a corpus file): what
/// `hakmem-sim fmt` prints. Every byte string is a trace, so this never
/// fails; the ops are numbered as the fuzz run numbered them.
pub fn input_to_text(data: &[u8]) -> String {
    decode(data).to_string()
}

/// What a driver prints when a run fails: the failure, the trace around the
/// failing op, and how to get from the crash file to a repro.
pub fn crash_message(trace: &Trace, failure: &Failure) -> String {
    format!(
        "hakmem-sim: {failure}\n\
         --- trace ({} ops), shortened ---\n{}\
         --- next: minimize the crash file (cargo fuzz tmin), turn it into text \
         (hakmem-sim fmt CRASH > x.trace) and follow repro/README.md\n",
        trace.ops.len(),
        excerpt(trace, failure.op_index, EXCERPT_OPS),
    )
}

/// The ops of `trace` up to `upto` (the last op when `None`), one per line,
/// with the middle cut out when there are more than `max` of them: the
/// first `max / 3` and the last `max - max / 3` lines stay.
pub fn excerpt(trace: &Trace, upto: Option<usize>, max: usize) -> String {
    let end = upto.map_or(trace.ops.len(), |i| (i + 1).min(trace.ops.len()));
    let ops = &trace.ops[..end];
    let mut out = String::new();
    let line = |out: &mut String, i: usize| out.push_str(&format!("{}\n", ops[i]));
    if ops.len() <= max {
        (0..ops.len()).for_each(|i| line(&mut out, i));
    } else {
        let head = max / 3;
        let tail = max - head;
        (0..head).for_each(|i| line(&mut out, i));
        out.push_str(&format!("# ... {} ops left out ...\n", ops.len() - max));
        (ops.len() - tail..ops.len()).for_each(|i| line(&mut out, i));
    }
    if end < trace.ops.len() {
        out.push_str(&format!(
            "# ... {} ops after the failing one left out\n",
            trace.ops.len() - end
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Op;

    fn drains(n: usize) -> Trace {
        Trace {
            ops: (0..n).map(|i| Op::Drain { t: (i % 4) as u8 }).collect(),
        }
    }

    #[test]
    fn a_short_trace_is_printed_whole() {
        let t = drains(5);
        assert_eq!(excerpt(&t, None, 10), t.to_string());
    }

    #[test]
    fn a_long_trace_keeps_its_head_and_the_ops_before_the_failure() {
        let t = drains(100);
        let e = excerpt(&t, Some(49), 9);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 9 + 2);
        assert_eq!(lines[0], "t0 drain");
        assert_eq!(lines[3], "# ... 41 ops left out ...");
        assert_eq!(lines[9], "t1 drain"); // op 49
        assert_eq!(lines[10], "# ... 50 ops after the failing one left out");
    }

    #[test]
    fn the_empty_input_passes() {
        alloc_ops(&[]);
    }
}
