//! The harness catches a broken remote push (zoo bug 7, a load + store
//! instead of a compare-exchange) under `check_random`, `check_pct` and
//! the `alloc_sched` driver; the saved schedules and inputs of those
//! catches (`repro/shuttle/zoo/`) fail with the bug on and pass with it off.
//!
//! Needs the zoo:
//! `cargo test -p hakmem-sim --release --features zoo --test shuttle_zoo -- --nocapture`
//! (the output gives the schedules each scenario took).
#![cfg(feature = "zoo")]

use std::path::{Path, PathBuf};

use hakmem::{Bug, Zoo};
use hakmem_sim::shuttle::explore::repro_dir;
use hakmem_sim::shuttle::{
    explore, replay, run_alloc_sched, Options, Replayed, ReproFile, Scenario, Strategy,
};

fn bug() -> Zoo {
    Zoo::NONE.with(Bug::RemotePushLoadStore)
}

/// Fixed seeds, so the counts printed are reproducible.
const SEED: u64 = 7;
/// Schedules per scenario at most.
const BUDGET: usize = 2_000;

fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The schedules `strategy` took to catch the bug in `s`, if it did.
fn schedules_to_catch(s: Scenario, strategy: Strategy) -> Option<usize> {
    let dir = format!("zoo-{s}-{strategy}").replace([' ', '='], "-");
    let opts = Options {
        iterations: BUDGET,
        seed: SEED,
        zoo: bug(),
        persist_dir: Some(tmp_dir(&dir)),
        max_steps: 200_000,
    };
    match explore(s, strategy, &opts) {
        Ok(r) => {
            eprintln!(
                "{s} {strategy}: not caught in {} schedules ({:.2?})",
                r.executions, r.elapsed
            );
            None
        }
        Err(f) => {
            eprintln!(
                "{s} {strategy}: caught at schedule {} ({:.2?}): {}",
                f.execution, f.elapsed, f.symptom
            );
            Some(f.execution)
        }
    }
}

/// The scenarios with concurrent pushes to one slab (`large_remote` has
/// none; `slab_empty_remote_in_flight` has a single push, which a
/// load + store cannot lose).
const PUSH_RACES: [Scenario; 4] = [
    Scenario::ProducerConsumer,
    Scenario::DrainCollectRace,
    Scenario::ExitThenAdopt,
    Scenario::ShortLivedThreads,
];

#[test]
fn check_random_catches_the_broken_remote_push() {
    for s in PUSH_RACES {
        assert!(
            schedules_to_catch(s, Strategy::Random).is_some(),
            "{s}: check_random missed the broken push in {BUDGET} schedules"
        );
    }
}

#[test]
fn check_pct_catches_the_broken_remote_push() {
    let caught = PUSH_RACES
        .into_iter()
        .filter(|&s| schedules_to_catch(s, Strategy::Pct { depth: 3 }).is_some())
        .count();
    assert!(
        caught >= 2,
        "check_pct caught the broken push in {caught} scenarios"
    );
}

fn zoo_files(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repro_dir().join("zoo"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .{ext} files in repro/shuttle/zoo/");
    v
}

#[test]
fn saved_zoo_schedules_fail_with_the_bug_and_pass_without() {
    for path in zoo_files("schedule") {
        let file = ReproFile::read(&path).unwrap();
        assert_eq!(file.zoo, bug(), "{}: zoo header", path.display());
        match replay(&file, file.zoo) {
            Err(msg) => eprintln!("{}: fails with the bug on: {msg}", path.display()),
            Ok(how) => panic!("{}: passed with the bug on ({how:?})", path.display()),
        }
        match replay(&file, Zoo::NONE) {
            Ok(how) => {
                // Without the bug the code takes other steps (one CAS for a
                // load and a store), so the schedule diverges and a seeded
                // random scheduler finishes the execution.
                assert_ne!(how, Replayed::FromSeed);
                eprintln!("{}: passes with the bug off ({how:?})", path.display());
            }
            Err(msg) => panic!("{}: fails with the bug off: {msg}", path.display()),
        }
    }
}

#[test]
fn saved_alloc_sched_inputs_fail_with_the_bug_and_pass_without() {
    for path in zoo_files("input") {
        let data = std::fs::read(&path).unwrap();
        match run_alloc_sched(&data, bug()) {
            Err(msg) => eprintln!("{}: fails with the bug on: {msg}", path.display()),
            Ok(()) => panic!("{}: passed with the bug on", path.display()),
        }
        if let Err(msg) = run_alloc_sched(&data, Zoo::NONE) {
            panic!("{}: fails with the bug off: {msg}", path.display());
        }
    }
}
