//! From the runs to the tables: medians per workload and allocator, ratios
//! to the reference, failures kept beside them.

use super::child::Failure;
use crate::report::RunResult;
use crate::stats::{median, RatioTable};

/// One child run.
pub struct Run {
    /// 1-based round
    pub round: usize,
    /// index into the suite entries being run
    pub entry: usize,
    /// index into the candidates
    pub candidate: usize,
    /// what it reported, or why it did not
    pub outcome: Result<RunResult, Failure>,
}

/// Result-line fields worth a table of their own, with their units.
pub const EXTRAS: &[(&str, &str)] = &[
    ("ns_per_pair", "ns per malloc+free pair"),
    (
        "shared_line_pct",
        "% of objects on another thread's cache line",
    ),
];

/// Everything the report shows.
pub struct Summary {
    /// median seconds for the fixed work, per [entry][candidate]
    pub time: RatioTable,
    /// median peak RSS in MiB, per [entry][candidate]
    pub rss: RatioTable,
    /// failed runs, per [entry][candidate], with their round
    pub failures: Vec<Vec<Vec<(usize, Failure)>>>,
    /// median extra fields: (entry, key, value per candidate)
    pub extras: Vec<(usize, &'static str, Vec<Option<f64>>)>,
    /// slowest over fastest successful round, minus 1, per [entry][candidate]
    /// (None below two rounds): how far one cell's rounds disagree
    pub spread: Vec<Vec<Option<f64>>>,
}

impl Summary {
    /// Medians of every (entry, candidate) cell over its successful runs.
    pub fn build(
        entries: &[String],
        candidates: &[String],
        reference: Option<usize>,
        runs: &[Run],
    ) -> Summary {
        let mut time = RatioTable::new(entries.to_vec(), candidates.to_vec(), reference);
        let mut rss = RatioTable::new(entries.to_vec(), candidates.to_vec(), reference);
        let mut failures = vec![vec![Vec::new(); candidates.len()]; entries.len()];
        let cell_runs = |e: usize, c: usize| {
            runs.iter()
                .filter(move |r| r.entry == e && r.candidate == c)
                .filter_map(|r| r.outcome.as_ref().ok())
        };
        let mut spread = Vec::with_capacity(entries.len());
        for e in 0..entries.len() {
            let mut row = Vec::with_capacity(candidates.len());
            for c in 0..candidates.len() {
                let seconds: Vec<f64> = cell_runs(e, c)
                    .filter_map(|r| r.number("seconds"))
                    .collect();
                let mib: Vec<f64> = cell_runs(e, c)
                    .filter_map(|r| r.number("peak_rss_kib"))
                    .map(|kib| kib / 1024.0)
                    .collect();
                time.set(e, c, median(&seconds));
                rss.set(e, c, median(&mib));
                row.push(spread_of(&seconds));
            }
            spread.push(row);
        }
        for run in runs {
            if let Err(failure) = &run.outcome {
                failures[run.entry][run.candidate].push((run.round, failure.clone()));
            }
        }
        let mut extras = Vec::new();
        for e in 0..entries.len() {
            for &(key, _) in EXTRAS {
                let values: Vec<Option<f64>> = (0..candidates.len())
                    .map(|c| {
                        median(
                            &cell_runs(e, c)
                                .filter_map(|r| r.number(key))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                if values.iter().any(Option::is_some) {
                    extras.push((e, key, values));
                }
            }
        }
        Summary {
            time,
            rss,
            failures,
            extras,
            spread,
        }
    }
}

/// `max / min - 1` of positive values, None for fewer than two.
fn spread_of(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min > 0.0).then(|| max / min - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(seconds: f64, rss_kib: u64) -> Result<RunResult, Failure> {
        let mut r = RunResult::new("w", 1, "iters");
        r.set("seconds", seconds);
        r.set("peak_rss_kib", rss_kib);
        Ok(r)
    }

    #[test]
    fn medians_skip_failed_rounds_and_keep_the_failures() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let runs = vec![
            Run {
                round: 1,
                entry: 0,
                candidate: 0,
                outcome: ok(1.0, 1024),
            },
            Run {
                round: 1,
                entry: 0,
                candidate: 1,
                outcome: ok(2.0, 2048),
            },
            Run {
                round: 2,
                entry: 0,
                candidate: 0,
                outcome: ok(3.0, 1024),
            },
            Run {
                round: 2,
                entry: 0,
                candidate: 1,
                outcome: Err(Failure::Crashed("SIGSEGV".into())),
            },
            Run {
                round: 3,
                entry: 0,
                candidate: 0,
                outcome: ok(2.0, 3072),
            },
            Run {
                round: 3,
                entry: 0,
                candidate: 1,
                outcome: ok(4.0, 2048),
            },
        ];
        let s = Summary::build(&names(&["w"]), &names(&["a", "ref"]), Some(1), &runs);
        assert_eq!(s.time.value(0, 0), Some(2.0));
        assert_eq!(s.time.value(0, 1), Some(3.0));
        assert_eq!(s.time.ratio(0, 0), Some(2.0 / 3.0));
        assert_eq!(s.rss.value(0, 0), Some(1.0));
        assert_eq!(s.rss.ratio(0, 0), Some(0.5));
        assert_eq!(
            s.failures[0][1],
            vec![(2, Failure::Crashed("SIGSEGV".into()))]
        );
        assert!(s.failures[0][0].is_empty());
    }
}
