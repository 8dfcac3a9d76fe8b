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

use hakmem::{Allocator, Config};

use crate::bytes::decode;
use crate::runner::{run, Failure, RunConfig, RunReport, SimTiny};
use crate::sim_os::{SimOs, SimOsConfig};
use crate::trace::Trace;

/// Whether this build poisons free and uncarved blocks for AddressSanitizer
/// (`cfg(hakmem_asan)`, set by `sim/build.rs` under `-Zsanitizer=address`).
pub const ASAN: bool = cfg!(hakmem_asan);

/// Full check (`check_live`) after every `FUZZ_CHECK_EVERY` ops, and always
/// at the end and at quiescence. The user-contract checks (contents,
/// overlap, alignment, typed errors for misuse) run on every op regardless.
///
/// Measured (1132 inputs grown by a 10-minute ASan campaign, replayed by
/// the fuzz binaries; CPU time per input): a check after every op costs
/// 10.6 ms without a sanitizer and 30 ms with ASan, a check every 8 ops
/// 3.9 ms and 12.7 ms: 2.4-2.7x more inputs per second, at the same
/// coverage (cov/ft within 0.1%). A corrupted structure stays corrupted
/// until the next check in nearly every case, so the fuzzer still sees it;
/// `hakmem-sim replay` (a check after every op) then pins the exact op.
pub const FUZZ_CHECK_EVERY: usize = 8;

/// Address space reserved per run: 32 MiB holds 32 blocks of the largest
/// size a byte trace asks for (1 MiB) or 512 tiny segments; beyond it maps
/// are refused, which the runner accepts as a legitimate out-of-memory. (On
/// a corpus of 700 fuzzer-grown inputs no run came near it: their only
/// out-of-memory errors were injected ones.) A small arena keeps the
/// per-input cost down where it grows with the arena: the checker's scan of
/// the ownership registry (one byte per 64 KiB segment slot), and under
/// ASan the shadow of the arena, unpoisoned whole when the run ends.
pub const FUZZ_ARENA_SIZE: usize = 32 << 20;

/// Longest excerpt of the trace a crash message prints, in ops.
const EXCERPT_OPS: usize = 60;

/// The configuration the fuzz drivers run with: the tiny geometry and
/// caches, a full check every [`FUZZ_CHECK_EVERY`] ops, quiescence at the end.
pub fn fuzz_config() -> RunConfig {
    let mut cfg = RunConfig {
        sim_os: SimOsConfig {
            arena_size: FUZZ_ARENA_SIZE,
            ..RunConfig::tiny().sim_os
        },
        ..RunConfig::tiny()
    }
    .check_every(FUZZ_CHECK_EVERY);
    // The bug zoo runs this target with historic bugs switched on.
    cfg.alloc.zoo = crate::shuttle::sched_fuzz::zoo_from_env();
    cfg
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

/// The `asan_selftest` fuzz target: proves that the poisoning reaches
/// AddressSanitizer. It frees a 64-byte block and reads byte 32 of it,
/// which lies past the link words a free block keeps usable. Under ASan
/// this must stop the process with a `use-after-poison` report; in a build
/// without ASan the function panics instead, so a CI step that looks for
/// that report cannot pass by accident. `data` is ignored.
pub fn asan_selftest(_data: &[u8]) -> u8 {
    let alloc: Allocator<SimTiny> = Allocator::new(SimOs::new(fuzz_config().sim_os), Config::TINY);
    let mut heap = alloc.heap().expect("a heap on a fresh allocator");
    let p = heap.alloc(64, 16).expect("a block on a fresh allocator");
    heap.free(p).expect("the free of a live block");
    // SAFETY: `p + 32` lies in a committed slab of the live SimOs arena,
    // readable memory; only the allocator's contract (and ASan's shadow)
    // say the block is dead. A volatile read of a `u8` has no alignment
    // or validity requirement.
    let byte = unsafe { p.as_ptr().add(32).read_volatile() };
    if !ASAN {
        panic!(
            "asan_selftest: no AddressSanitizer in this build (cfg(hakmem_asan) unset): \
             the read of a freed block went unnoticed"
        );
    }
    byte
}

/// The text trace of a fuzz input (a crash file, a corpus file): what
/// `hakmem-sim fmt` prints. Every byte string is a trace, so this never
/// fails; the ops are numbered as the fuzz run numbered them.
pub fn input_to_text(data: &[u8]) -> String {
    decode(data).to_string()
}

/// The `alloc_text` fuzz target: `data` is a text trace (a repro file);
/// it runs with a check after every op, on the geometry its
/// `# geometry:` header names (tiny by default) and with its settings.
/// Its use is replaying `repro/*.trace` in a sanitizer build:
/// `cargo +nightly fuzz run alloc_text repro/*.trace` (libFuzzer runs each
/// file given by name once). As a fuzz target it is weak (most mutations
/// do not parse) but harmless: input that is not UTF-8 or does not parse
/// is ignored.
pub fn alloc_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(trace) = Trace::parse(text) else {
        return;
    };
    let Ok(cfg) = RunConfig::for_headers(&crate::trace::headers(text)) else {
        return;
    };
    if let Err(failure) = run(&trace, &cfg) {
        panic!("{}", crash_message(&trace, &failure));
    }
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
        Trace::new((0..n).map(|i| Op::Drain { t: (i % 4) as u8 }).collect())
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

    #[test]
    fn the_text_driver_ignores_what_does_not_parse_and_replays_what_does() {
        alloc_text(&[0xff, 0xfe]);
        alloc_text(b"t0 frob p1\n");
        alloc_text(b"# geometry: production\nt0 alloc p1 48\nt1 free p1\nt0 collect\n");
    }

    #[cfg(not(hakmem_asan))]
    #[test]
    #[should_panic(expected = "no AddressSanitizer in this build")]
    fn the_asan_selftest_fails_loudly_without_asan() {
        asan_selftest(&[]);
    }
}
