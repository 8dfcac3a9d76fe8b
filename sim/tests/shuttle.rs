//! Every shuttle scenario under `check_random` and `check_pct`, the replay
//! of every saved schedule, and the `alloc_sched` driver on its corpus.
//!
//! Iterations per scenario and scheduler: `HAKMEM_SHUTTLE_ITERS` (default
//! 3000); PCT depth: `HAKMEM_SHUTTLE_PCT_DEPTH` (default 3); base seed:
//! `HAKMEM_SHUTTLE_SEED` (default: fresh each run, printed). Soak:
//!
//! ```text
//! HAKMEM_SHUTTLE_ITERS=100000 cargo test --release -p hakmem-sim --test shuttle -- --nocapture
//! ```
//!
//! A failure writes `repro/shuttle/<scenario>--<symptom>.schedule` and
//! prints the command that replays it (`replay_one` below).

use std::path::{Path, PathBuf};

use hakmem::Zoo;
use hakmem_sim::shuttle::explore::{pct_depth_from_env, repro_dir};
use hakmem_sim::shuttle::{
    check_pct, check_random, replay, run_alloc_sched, run_alloc_sched_stats, Options, ReproFile,
    Scenario, SchedInput,
};

const DEFAULT_ITERS: usize = 3000;

fn random(s: Scenario) {
    let opts = Options::from_env(DEFAULT_ITERS);
    let r = check_random(s, &opts);
    eprintln!(
        "{s}: random: {} schedules in {:.2?} ({:.0}/s, {:.0} steps each), base seed {}",
        r.executions,
        r.elapsed,
        r.per_second(),
        r.steps_per_execution(),
        opts.seed
    );
}

fn pct(s: Scenario) {
    let opts = Options::from_env(DEFAULT_ITERS);
    let depth = pct_depth_from_env();
    let r = check_pct(s, depth, &opts);
    eprintln!(
        "{s}: pct depth {depth}: {} schedules in {:.2?} ({:.0}/s, {:.0} steps each), base seed {}",
        r.executions,
        r.elapsed,
        r.per_second(),
        r.steps_per_execution(),
        opts.seed
    );
}

macro_rules! scenario_tests {
    ($($random:ident, $pct:ident => $s:expr;)*) => {$(
        #[test]
        fn $random() {
            random($s)
        }
        #[test]
        fn $pct() {
            pct($s)
        }
    )*};
}

scenario_tests! {
    producer_consumer_random, producer_consumer_pct => Scenario::ProducerConsumer;
    drain_collect_race_random, drain_collect_race_pct => Scenario::DrainCollectRace;
    slab_empty_remote_in_flight_random, slab_empty_remote_in_flight_pct => Scenario::SlabEmptyRemoteInFlight;
    exit_then_adopt_random, exit_then_adopt_pct => Scenario::ExitThenAdopt;
    short_lived_threads_random, short_lived_threads_pct => Scenario::ShortLivedThreads;
    large_remote_random, large_remote_pct => Scenario::LargeRemote;
    parked_heaps_random, parked_heaps_pct => Scenario::ParkedHeaps;
}

#[test]
fn every_scenario_has_its_two_tests() {
    // The macro above must list every scenario.
    assert_eq!(Scenario::ALL.len(), 7);
}

fn schedule_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "schedule"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every schedule saved in `repro/shuttle/` replays without failing: a
/// fixed bug stays fixed. (Schedules of the bug zoo live in
/// `repro/shuttle/zoo/` and are replayed by `shuttle_zoo.rs`.)
#[test]
fn every_saved_schedule_replays_cleanly() {
    for path in schedule_files(&repro_dir()) {
        let file = ReproFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
        match replay(&file, Zoo::NONE) {
            Ok(how) => eprintln!("{}: passes ({how:?})", path.display()),
            Err(msg) => panic!("{} fails again: {msg}", path.display()),
        }
    }
}

/// `HAKMEM_SHUTTLE_REPLAY=<file>`: replays one repro file (a saved
/// schedule, an in-flight file of `SHUTTLE_ALWAYS_PERSIST_SEED`, or a bare
/// seed with `HAKMEM_SHUTTLE_SCENARIO`) with the bugs its `zoo` header
/// names. Does nothing without the variable.
#[test]
fn replay_one() {
    let Ok(path) = std::env::var("HAKMEM_SHUTTLE_REPLAY") else {
        return;
    };
    let mut p = PathBuf::from(&path);
    if p.is_relative() && !p.exists() {
        p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p);
    }
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let scenario = std::env::var("HAKMEM_SHUTTLE_SCENARIO")
        .ok()
        .and_then(|n| Scenario::from_name(&n));
    let file = ReproFile::parse(&text, scenario).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if file.zoo != Zoo::NONE && !Zoo::COMPILED {
        panic!("{} switches zoo bugs on: add --features zoo", p.display());
    }
    match replay(&file, file.zoo) {
        Ok(how) => eprintln!("{}: passes ({how:?})", p.display()),
        Err(msg) => panic!("{} fails: {msg}", p.display()),
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("corpus")
        .join("alloc_sched")
}

/// The `alloc_sched` driver passes on its whole seed corpus.
#[test]
fn alloc_sched_corpus_runs_cleanly() {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(corpus_dir()) {
        for e in rd.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            if let Err(msg) = run_alloc_sched(&data, Zoo::NONE) {
                panic!(
                    "corpus/alloc_sched/{}: {msg}",
                    e.file_name().to_string_lossy()
                );
            }
            n += 1;
        }
    }
    eprintln!("alloc_sched: {n} corpus inputs pass");
}

/// And on seeded random inputs (what the fuzzer starts from).
#[test]
fn alloc_sched_random_inputs_run_cleanly() {
    let n = std::env::var("HAKMEM_SHUTTLE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERS);
    let mut rng = hakmem_sim::SplitMix64::new(0xa110c_5c4ed);
    let start = std::time::Instant::now();
    for i in 0..n {
        let len = 16 + rng.below(400);
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if let Err(msg) = run_alloc_sched(&data, Zoo::NONE) {
            panic!("random input {i} ({data:02x?}): {msg}");
        }
    }
    eprintln!(
        "alloc_sched: {n} random inputs in {:.2?} ({:.0}/s)",
        start.elapsed(),
        n as f64 / start.elapsed().as_secs_f64()
    );
}

/// A trace's `set parked-heaps 1` reaches the `alloc_sched` world: the
/// thread's heap parks at `exit` and its next op takes it back whole;
/// without the setting the heap is flushed and the next one adopts the
/// abandoned slab.
#[test]
fn alloc_sched_inputs_park_heaps_when_the_trace_says_so() {
    let ops = "t1 alloc p1 16\nt1 exit\nt1 alloc p2 16\nt1 free p1\nt1 free p2\n";
    let reused = |text: &str| {
        let t = hakmem_sim::Trace::parse(text).unwrap();
        let input = SchedInput::encode(&[], &hakmem_sim::encode(&t).expect("a byte form"));
        assert_eq!(SchedInput::decode(&input).parked_heaps, t.parked_heaps);
        let s = run_alloc_sched_stats(&input, Zoo::NONE).unwrap_or_else(|e| panic!("{text}: {e}"));
        (s.heaps_reused, s.adoptions, s.heaps_created)
    };
    assert_eq!(reused(&format!("set parked-heaps 1\n{ops}")), (1, 0, 1));
    assert_eq!(reused(ops), (0, 1, 2));
}

/// Regenerates the seed corpus of `alloc_sched` (`corpus/alloc_sched/`):
/// seeded traces of every workload mix, each with no schedule bytes (no
/// preemption) and with a few random ones. Run with `--ignored`.
#[test]
#[ignore]
fn write_alloc_sched_seed_corpus() {
    use hakmem_sim::shuttle::SchedInput;
    use hakmem_sim::{encode, generate, Mix, SplitMix64};
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = SplitMix64::new(0x5eed_c0de);
    for mix in Mix::ALL {
        for seed in 0..3u64 {
            let trace = generate(mix, seed, 80);
            let Some(bytes) = encode(&trace) else {
                continue;
            };
            for sched_len in [0usize, 48] {
                let schedule: Vec<u8> = (0..sched_len).map(|_| rng.next_u64() as u8).collect();
                let input = SchedInput::encode(&schedule, &bytes);
                let name = format!("{mix}-{seed}-s{sched_len}");
                std::fs::write(dir.join(name), &input).unwrap();
            }
        }
    }
    // The same traces of seed 0 with one exited heap parked (their own
    // schedule bytes, so the inputs above stay as they were).
    let mut rng = SplitMix64::new(0x5eed_9a4c);
    for mix in Mix::ALL {
        let trace = hakmem_sim::Trace {
            parked_heaps: Some(1),
            ..generate(mix, 0, 80)
        };
        let Some(bytes) = encode(&trace) else {
            continue;
        };
        for sched_len in [0usize, 48] {
            let schedule: Vec<u8> = (0..sched_len).map(|_| rng.next_u64() as u8).collect();
            let input = SchedInput::encode(&schedule, &bytes);
            std::fs::write(dir.join(format!("{mix}-0-s{sched_len}-parked")), &input).unwrap();
        }
    }
}
