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
//! With `--features zoo`, a twin test takes the same path with a real
//! crash: an input that fails with zoo bug 1 (`drain-forgets-used`)
//! switched on. The fuzz run (a check every `FUZZ_CHECK_EVERY` ops) sees
//! it at its next check; the replay of the `fmt` text pins the op where the
//! bug breaks the books; `hakmem-sim minimize` shrinks it; saved as
//! `repro/zoo/` keeps its traces and read back, it must fail with the same
//! `Failure::id()` at the same op, and pass with the bug off.

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

/// A directory of this test's own (the tests run side by side in one
/// process, and each removes its directory at the end).
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hakmem-crash-to-repro-{}-{test}",
        std::process::id()
    ));
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
    let dir = scratch_dir("misuse");

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

/// The twin with a real crash (see the module docs): zoo bug 1, a drain
/// that forgets to count the blocks it returns, breaks I3 SLAB-USED at
/// the drain.
#[cfg(feature = "zoo")]
#[test]
fn a_zoo_crash_file_becomes_a_repro_that_fails_the_same_way() {
    use hakmem::Bug;
    use hakmem_sim::decode;
    use hakmem_sim::fuzz::{crash_message, fuzz_config, FUZZ_CHECK_EVERY};
    use hakmem_sim::minimize::{minimize, MinimizeOptions};

    let bug = Bug::DrainForgetsUsed;
    // Ops 0..=4 build the state the bug breaks at the drain (index 4); the
    // rest is padding that the minimizer must drop.
    let trace = Trace::parse(
        "t0 alloc p1 48\n\
         t0 alloc p2 48\n\
         t0 free p1\n\
         t1 alloc p3 300\n\
         t0 drain\n\
         t1 alloc p4 4096\n\
         t1 free p4\n\
         t0 alloc p5 48\n\
         t0 free p2\n\
         t1 free p3\n\
         t0 free p5\n",
    )
    .unwrap();
    const DRAIN: usize = 4;
    assert_eq!(trace.ops[DRAIN].to_string(), "t0 drain");
    let mut fuzz_cfg = fuzz_config();
    fuzz_cfg.alloc.zoo = fuzz_cfg.alloc.zoo.with(bug);
    let mut replay_cfg = RunConfig::tiny();
    replay_cfg.alloc.zoo = replay_cfg.alloc.zoo.with(bug);

    // 1. The crash file, and what the fuzz target (with the bug on) saw:
    //    the failure at its first check after the drain.
    let dir = scratch_dir("zoo");
    let crash = dir.join("crash-fedcba9876543210");
    fs::write(
        &crash,
        encode(&trace).expect("the byte form carries the trace"),
    )
    .unwrap();
    let data = fs::read(&crash).unwrap();
    let fuzzed = decode(&data);
    assert_eq!(fuzzed, trace);
    let seen = run(&fuzzed, &fuzz_cfg).expect_err("the fuzz run fails with the bug on");
    assert_eq!(seen.id(), "I3 SLAB-USED", "{seen}");
    let seen_at = seen.op_index.expect("found at a check between ops");
    assert!(
        (DRAIN..DRAIN + FUZZ_CHECK_EVERY).contains(&seen_at),
        "the fuzz run saw it at op {seen_at}, not within a check period after the drain"
    );
    let message = crash_message(&fuzzed, &seen);
    assert!(message.contains("I3 SLAB-USED"), "{message}");
    assert!(message.contains("t0 drain"), "{message}");
    // Without the bug the same input passes: the crash is the bug's.
    let mut clean = fuzz_cfg.clone();
    clean.alloc.zoo = hakmem::Zoo::NONE;
    run(&fuzzed, &clean).unwrap_or_else(|f| panic!("the input fails without the bug: {f}"));

    // 3. `hakmem-sim fmt`; `hakmem-sim replay` of it (a check after every
    //    op) pins the exact op: the drain.
    let text = input_to_text(&data);
    let parsed = Trace::parse(&text).expect("fmt output parses");
    assert_eq!(parsed, fuzzed);
    let pinned = run(&parsed, &replay_cfg).expect_err("the replay fails with the bug on");
    assert_eq!(pinned.id(), seen.id());
    assert_eq!(pinned.op_index, Some(DRAIN), "{pinned}");

    // 4. `hakmem-sim minimize`, with the bug on, keeping the failure's id.
    //    (It goes further than the drain: a lone alloc fails at
    //    quiescence, whose drain the bug breaks the same way.)
    let opts = MinimizeOptions {
        cfg: replay_cfg.clone(),
        isolate: false,
        budget: std::time::Duration::from_secs(30),
        verbose: false,
    };
    let m = minimize(&parsed, &opts).expect("the trace fails with the bug on");
    assert_eq!(m.failure_id, seen.id());
    assert!(m.trace.ops.len() <= DRAIN, "the minimizer kept {}", m.trace);
    let minimized = run(&m.trace, &replay_cfg).expect_err("the minimized trace fails");

    // 5. Saved with the headers `repro/zoo/` traces carry.
    let head = vec![
        ("zoo".to_string(), bug.name().to_string()),
        (
            "found-by".to_string(),
            format!(
                "fuzz alloc_ops with HAKMEM_ZOO={} ({}); hakmem-sim minimize",
                bug.name(),
                crash.file_name().unwrap().to_string_lossy()
            ),
        ),
        ("violates".to_string(), m.failure_id.clone()),
        (
            "fixed-by".to_string(),
            "the bug is off in normal builds (feature zoo, Config::zoo)".to_string(),
        ),
    ];
    let repro = dir.join(format!("{}.trace", bug.name()));
    fs::write(&repro, with_headers(&head, &m.trace)).unwrap();

    // 6. Read back and replayed as tests/zoo.rs replays repro/zoo/: it
    //    fails with the `violates` id where the minimized trace failed;
    //    with the bug off it passes.
    let saved = fs::read_to_string(&repro).unwrap();
    assert_eq!(headers(&saved), head);
    let replayed_trace = Trace::parse(&saved).expect("the repro file parses");
    assert_eq!(replayed_trace, m.trace);
    let f = run(&replayed_trace, &replay_cfg).expect_err("the repro fails with the bug on");
    assert_eq!(f.id(), m.failure_id);
    assert_eq!(f.op_index, minimized.op_index, "{f}");
    run(&replayed_trace, &RunConfig::tiny())
        .unwrap_or_else(|f| panic!("the repro fails without the bug: {f}"));

    fs::remove_dir_all(&dir).unwrap();
}
