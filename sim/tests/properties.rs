//! Randomized properties over traces, bounded for CI and replayable.
//!
//! proptest (inputs: fuzz byte strings, decoded into traces):
//! * any decoded trace runs without a failure on the tiny geometry with a
//!   check after every op;
//! * a run is deterministic: the same trace twice gives the same report;
//! * every decoded trace survives the text round trip.
//!
//! bolero: random byte strings through the `alloc_ops` fuzz driver, the
//! very function `cargo fuzz run alloc_ops` calls.
//!
//! Budgets and replay:
//! * `PROPTEST_CASES` (default 32) cases per property; the seed is printed
//!   at the start (`PROPTEST_RNG_SEED=...`; set it to rerun the same
//!   cases), and proptest also stores the seed of every failure in
//!   `sim/tests/properties.proptest-regressions`, replayed first on the
//!   next run. A failure message holds the shrunk trace as text: save it
//!   as `x.trace` and `hakmem-sim replay x.trace`.
//! * `BOLERO_RANDOM_ITERATIONS` (default 256) inputs for the bolero
//!   property; a failure prints `BOLERO_RANDOM_SEED=...`, which reruns
//!   exactly that input (`BOLERO_RANDOM_SEED=N cargo test --test
//!   properties bolero`). `BOLERO_RANDOM_MAX_LEN` bounds the input length
//!   (default 4096, libFuzzer's default too).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, RngSeed};

use hakmem::Stats;
use hakmem_sim::fuzz::{alloc_ops, excerpt, fuzz_config};
use hakmem_sim::{decode, run, Failure, RunConfig, RunReport, Trace};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Cases from `PROPTEST_CASES` (default 32), the seed from
/// `PROPTEST_RNG_SEED` or fresh, printed so that the run can be repeated.
fn config(property: &str) -> ProptestConfig {
    let seed = env::<u64>("PROPTEST_RNG_SEED").unwrap_or_else(fresh_seed);
    let cases = env::<u32>("PROPTEST_CASES").unwrap_or(32);
    eprintln!(
        "{property}: {cases} cases, PROPTEST_RNG_SEED={seed} \
         (rerun: PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases} cargo test -p hakmem-sim --test properties {property})"
    );
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // Relative to the package root, the working directory of `cargo test`.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/properties.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// A seed from the clock and the process id: different every run.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut s = hakmem_sim::SplitMix64::new(nanos ^ u64::from(std::process::id()) << 32);
    s.next_u64()
}

/// The message of a failed property: the failure, the trace as text, and
/// how to replay it.
fn replay_hint(trace: &Trace, f: &Failure) -> String {
    format!(
        "{f}\n--- trace (save as x.trace; replay: hakmem-sim replay x.trace) ---\n{}---",
        excerpt(trace, f.op_index, 400)
    )
}

/// What two runs of one trace must agree on. Misuse errors are compared by
/// op and kind: their addresses differ between arenas.
#[derive(Debug, PartialEq)]
struct Summary {
    ops: usize,
    skipped: usize,
    oom: usize,
    checks: usize,
    misuse: Vec<(usize, &'static str)>,
    stats: Stats,
}

fn summary(r: Result<RunReport, Failure>) -> Result<Summary, String> {
    r.map(|r| Summary {
        ops: r.ops,
        skipped: r.skipped,
        oom: r.oom,
        checks: r.checks,
        misuse: r.misuse.iter().map(|(i, e)| (*i, e.what())).collect(),
        stats: r.stats,
    })
    .map_err(|f| f.to_string())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

#[test]
fn any_decoded_trace_runs_without_a_failure_on_the_tiny_geometry() {
    proptest!(config("any_decoded_trace"), |(data in bytes(2048))| {
        let trace = decode(&data);
        if let Err(f) = run(&trace, &RunConfig::tiny()) {
            prop_assert!(false, "{}", replay_hint(&trace, &f));
        }
    });
}

#[test]
fn the_same_trace_twice_gives_the_same_report() {
    proptest!(config("same_trace_twice"), |(data in bytes(2048))| {
        let trace = decode(&data);
        let first = summary(run(&trace, &fuzz_config()));
        let second = summary(run(&trace, &fuzz_config()));
        prop_assert_eq!(
            &first, &second,
            "two runs of one trace differ\n--- trace ---\n{}", excerpt(&trace, None, 400)
        );
    });
}

#[test]
fn every_decoded_trace_survives_the_text_round_trip() {
    proptest!(config("text_round_trip"), |(data in bytes(4096))| {
        let trace = decode(&data);
        prop_assert_eq!(trace.validate(), Ok(()));
        prop_assert_eq!(Trace::parse(&trace.to_string()), Ok(trace));
    });
}

#[test]
fn bolero_inputs_pass_the_alloc_ops_fuzz_driver() {
    let iterations = env::<usize>("BOLERO_RANDOM_ITERATIONS").unwrap_or(256);
    eprintln!(
        "bolero: {iterations} inputs (BOLERO_RANDOM_ITERATIONS); a failure prints \
         BOLERO_RANDOM_SEED=..., which replays it"
    );
    bolero::check!()
        .with_type::<Vec<u8>>()
        .with_iterations(iterations)
        .for_each(|data| alloc_ops(data));
}
