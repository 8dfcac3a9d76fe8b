//! The workloads: each models one allocation pattern, runs a fixed amount of
//! work (or a fixed time) through the C ABI, and reports what it did.
//!
//! Every workload documents what one *iteration* is; *ops* always counts
//! allocator calls (malloc, calloc, realloc, free).

mod cache_scratch;
mod churn;
mod glibc_simple;
mod larson;
mod malloc_large;
mod mstress;
mod pair;
mod realloc_growth;
mod xmalloc;

use std::time::Instant;

use crate::args::Args;
use crate::budget::{Budget, Counts};
use crate::cabi;
use crate::report::{peak_rss_kib, RunResult};

/// What a workload gets: its thread count, budget, seed, and its own options
/// (to be consumed with `args.take*`, then `args.finish()`).
pub struct Params {
    /// worker threads (each workload says how it uses them)
    pub threads: usize,
    /// fixed work or fixed time
    pub budget: Budget,
    /// seeds every random choice
    pub seed: u64,
    /// workload-specific options not yet consumed
    pub args: Args,
}

/// What a workload did.
pub struct Outcome {
    /// iterations and allocator calls done
    pub counts: Counts,
    /// wall-clock time of the measured part, in seconds
    pub seconds: f64,
    /// workload-specific fields for the result line
    pub extra: Vec<(&'static str, String)>,
}

impl Outcome {
    /// Times `work`, which returns its counts.
    pub fn timed(work: impl FnOnce() -> Counts) -> Outcome {
        let start = Instant::now();
        let counts = work();
        Outcome {
            counts,
            seconds: start.elapsed().as_secs_f64(),
            extra: Vec::new(),
        }
    }
}

/// One workload of the suite.
pub struct Workload {
    /// the name given to `run`
    pub name: &'static str,
    /// what it models, one line
    pub summary: &'static str,
    /// threads when `--threads` is not given
    pub default_threads: usize,
    /// iterations when neither `--iters` nor `--seconds` is given (about a
    /// second under glibc on a 2-core machine)
    pub default_iters: u64,
    /// the workload itself
    pub run: fn(&mut Params) -> Result<Outcome, String>,
}

/// Every workload, in suite order.
pub const ALL: &[Workload] = &[
    pair::WORKLOAD,
    glibc_simple::WORKLOAD,
    churn::GLIBC_THREAD,
    churn::RANDOM_MIXED,
    churn::FIXED_SIZE,
    larson::WORKLOAD,
    xmalloc::WORKLOAD,
    cache_scratch::WORKLOAD,
    mstress::WORKLOAD,
    churn::MID_LARGE,
    realloc_growth::WORKLOAD,
    malloc_large::WORKLOAD,
];

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}

/// `hakmem-bench run <workload> [options]`: runs it and returns its result.
pub fn run_cli(name: &str, words: &[String]) -> Result<RunResult, String> {
    let workload = find(name).ok_or_else(|| {
        let names: Vec<&str> = ALL.iter().map(|w| w.name).collect();
        format!("unknown workload `{name}`; one of: {}", names.join(", "))
    })?;
    let mut args = Args::parse(words)?;
    let threads = args.take_or("--threads", workload.default_threads)?;
    let seed = args.take_or("--seed", 0x5EED_u64)?;
    let scale: f64 = args.take_or("--scale", 1.0)?;
    let iters: Option<u64> = args.take("--iters")?;
    let seconds: Option<f64> = args.take("--seconds")?;
    let positive = scale > 0.0; // false for NaN too
    if threads == 0 || !positive {
        return Err("--threads and --scale must be positive".to_string());
    }
    let budget = match (iters, seconds) {
        (Some(_), Some(_)) => return Err("give --iters or --seconds, not both".to_string()),
        (Some(n), None) => Budget::Iters(n),
        (None, Some(s)) if s > 0.0 => Budget::Seconds(s),
        (None, Some(_)) => return Err("--seconds must be positive".to_string()),
        (None, None) => Budget::Iters(((workload.default_iters as f64 * scale) as u64).max(1)),
    };
    let mut params = Params {
        threads,
        budget,
        seed,
        args,
    };
    let outcome = (workload.run)(&mut params)?;

    let mut result = RunResult::new(workload.name, threads, budget.mode());
    let seconds = outcome.seconds.max(1e-9);
    result.set("iters", outcome.counts.iters);
    result.set("ops", outcome.counts.ops);
    result.set("seconds", format!("{seconds:.6}"));
    let per_sec = outcome.counts.ops as f64 / seconds;
    result.set("ops_per_sec", format!("{per_sec:.0}"));
    let ns = seconds * 1e9 / outcome.counts.ops.max(1) as f64;
    result.set("ns_per_op", format!("{ns:.3}"));
    result.set("peak_rss_kib", peak_rss_kib());
    result.set("seed", seed);
    result.set("malloc_from", cabi::malloc_provider());
    for (key, value) in outcome.extra {
        result.set(key, value);
    }
    Ok(result)
}

/// Rejects a size range the workloads cannot use.
fn check_sizes(min: usize, max: usize) -> Result<(), String> {
    if min == 0 || max < min {
        return Err(format!(
            "bad size range {min}..={max}: need 1 <= min <= max"
        ));
    }
    Ok(())
}

/// Rejects a count that must be at least one.
fn check_positive(name: &str, value: usize) -> Result<(), String> {
    if value == 0 {
        return Err(format!("{name} must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn every_workload_runs_a_tiny_budget_and_reports() {
        for workload in ALL {
            let result = run_cli(workload.name, &words("--iters 3")).unwrap();
            assert_eq!(result.fields["workload"], workload.name);
            assert_eq!(result.number("iters"), Some(3.0), "{}", workload.name);
            assert!(result.number("ops").unwrap() >= 3.0, "{}", workload.name);
            assert!(result.number("peak_rss_kib").unwrap() > 0.0);
        }
    }

    #[test]
    fn a_timed_run_counts_its_work() {
        let result = run_cli("larson", &words("--seconds 0.05 --slots 10 --handoff 100")).unwrap();
        assert_eq!(result.fields["mode"], "seconds");
        assert!(result.number("iters").unwrap() > 0.0);
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(run_cli("larson", &words("--bogus 1")).is_err());
        assert!(run_cli("xmalloc", &words("--threads 1")).is_err());
        assert!(run_cli("random-mixed", &words("--min 10 --max 5")).is_err());
        assert!(run_cli("nope", &[]).is_err());
        assert!(run_cli("pair", &words("--iters 5 --seconds 1")).is_err());
    }
}
