//! The path from a fuzzer's crash file to a repro file, as
//! `repro/README.md` documents it, step by step on a real byte input:
//!
//! 1. libFuzzer writes the input as `crash-<sha1>` (here: written by the
//!    test; `cargo fuzz tmin` would shrink it first and keep the format);
//! 2. `hakmem-sim fmt crash-<sha1>` prints its text trace
//!    ([`input_to_text`]: `decode` + `Display`);
//! 3. the trace gets the repro headers ([`with_headers`]) and is saved as
//!    `repro/<area>-<symptom>.trace`;
//! 4. `cargo test` reads it back ([`headers`], [`Trace::parse`]) and
//!    replays it with a check after every op.
//!
//! The replay must see exactly what the fuzz run saw. In a normal build the
//! allocator has no bug to crash on, so the input here makes misuse reports
//! (typed errors, recorded per op) and the test asserts the replay
//! reproduces the same list.
//!
//! TODO(lead): once `hakmem-sim` has `--features zoo`, switch this test (or
//! add a `#[cfg(feature = "zoo")]` twin) to a real crash: an input that
//! fails with a zoo bug switched on (e.g. `drain-forgets-used` →
//! `I3 SLAB-USED` at quiescence), asserting that the replayed repro fails
//! with the same `Failure::id()` at the same op.

use std::fs;
use std::path::PathBuf;

use hakmem_sim::fuzz::{fuzz_config, input_to_text, run_alloc_ops};
use hakmem_sim::{encode, headers, run, with_headers, RunConfig, RunReport, Trace};

/// A fuzz input with a double free, an interior free and a foreign free
/// among ordinary ops (built from text so the test reads as a trace).
fn crash_input() -> Vec<u8> {
    let trace = Trace::parse(
        "t0 alloc p1 48\n\
         t1 alloc p2 300\n\
         t0 alloc p3 4096\n\
         t0 free p1\n\
         t1 free p1\n\
         t1 free p2+7\n\
         t2 free foreign\n\
         t0 free p3\n\
         t0 free p3\n\
         t1 free p2\n\
         t0 drain\n\
         trim\n",
    )
    .unwrap();
    encode(&trace).expect("the byte form carries the trace")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hakmem-crash-to-repro-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a replay must reproduce: each misuse op's index and kind of error
/// (addresses differ between arenas, so they are left out).
fn misuse_kinds(r: &RunReport) -> Vec<(usize, &'static str)> {
    r.misuse.iter().map(|(op, e)| (*op, e.what())).collect()
}

#[test]
fn a_crash_file_becomes_a_repro_file_that_replays_the_same_reports() {
    let dir = scratch_dir();

    // 1. The crash file, as libFuzzer writes it.
    let crash = dir.join("crash-0123456789abcdef");
    fs::write(&crash, crash_input()).unwrap();
    let data = fs::read(&crash).unwrap();
    let (fuzzed, result) = run_alloc_ops(&data);
    let seen = result.unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(
        misuse_kinds(&seen).len(),
        4,
        "the input should make four misuse reports: {:?}",
        seen.misuse
    );

    // 2. `hakmem-sim fmt`.
    let text = input_to_text(&data);

    // 3. Headers, saved under repro/'s naming scheme.
    let head = vec![
        (
            "found-by".to_string(),
            format!(
                "fuzz alloc_ops ({})",
                crash.file_name().unwrap().to_string_lossy()
            ),
        ),
        (
            "violates".to_string(),
            "I7 misuse reports (test of the crash-to-repro path)".to_string(),
        ),
        (
            "fixed-by".to_string(),
            "nothing to fix: misuse is reported, not a bug".to_string(),
        ),
    ];
    let trace = Trace::parse(&text).expect("fmt output parses");
    let repro = dir.join("free-misuse-reported.trace");
    fs::write(&repro, with_headers(&head, &trace)).unwrap();

    // 4. Read back and replay as sim/tests/repro.rs does.
    let saved = fs::read_to_string(&repro).unwrap();
    assert_eq!(headers(&saved), head);
    let replayed_trace = Trace::parse(&saved).expect("the repro file parses");
    assert_eq!(replayed_trace, fuzzed, "the text form kept every op");
    let cfg = RunConfig::tiny();
    assert_ne!(
        cfg.check_every,
        fuzz_config().check_every,
        "the replay checks more often than the fuzzer"
    );
    let replayed = run(&replayed_trace, &cfg).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(misuse_kinds(&replayed), misuse_kinds(&seen));
    assert_eq!(replayed.skipped, seen.skipped);
    assert_eq!(replayed.oom, seen.oom);

    fs::remove_dir_all(&dir).unwrap();
}
