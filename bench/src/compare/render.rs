//! The comparison as text: the console tables and `results.md`.

use super::summary::{Summary, EXTRAS};
use crate::stats::RatioTable;

/// Rows of cells; the first row is the header.
pub type Grid = Vec<Vec<String>>;

/// What a cell shows when its median is missing.
fn missing(summary: &Summary, row: usize, col: usize) -> String {
    match summary.failures[row][col].first() {
        Some((_, failure)) => failure.short().to_string(),
        None => "-".to_string(),
    }
}

/// A grid of `value unit (ratio×)` cells plus a geometric-mean row.
fn ratio_grid(summary: &Summary, table: &RatioTable, format_value: impl Fn(f64) -> String) -> Grid {
    let mut header = vec!["workload".to_string()];
    for (col, name) in table.cols.iter().enumerate() {
        let is_ref = table.reference == Some(col);
        header.push(if is_ref {
            format!("{name} (ref)")
        } else {
            name.clone()
        });
    }
    let mut grid = vec![header];
    for (row, label) in table.rows.iter().enumerate() {
        let mut line = vec![label.clone()];
        for col in 0..table.cols.len() {
            let cell = match table.value(row, col) {
                None => missing(summary, row, col),
                Some(value) => {
                    let flaky = if summary.failures[row][col].is_empty() {
                        ""
                    } else {
                        "*"
                    };
                    match table.ratio(row, col) {
                        Some(ratio) if table.reference != Some(col) => {
                            format!("{}{flaky} ({ratio:.2}×)", format_value(value))
                        }
                        _ => format!("{}{flaky}", format_value(value)),
                    }
                }
            };
            line.push(cell);
        }
        grid.push(line);
    }
    let mut geo = vec!["geomean ratio".to_string()];
    for col in 0..table.cols.len() {
        geo.push(match table.geomean_ratio(col) {
            Some((g, n)) if n == table.rows.len() => format!("{g:.3}×"),
            Some((g, n)) => format!("{g:.3}× (over {n})"),
            None => "-".to_string(),
        });
    }
    grid.push(geo);
    grid
}

/// Median time of the fixed work per workload and allocator.
pub fn time_grid(summary: &Summary) -> Grid {
    ratio_grid(summary, &summary.time, |s| format!("{s:.3} s"))
}

/// Median peak RSS per workload and allocator.
pub fn rss_grid(summary: &Summary) -> Grid {
    ratio_grid(summary, &summary.rss, |m| format!("{m:.1} MiB"))
}

/// Medians of the workload-specific fields (ns per pair, false sharing).
pub fn extras_grid(summary: &Summary) -> Option<Grid> {
    if summary.extras.is_empty() {
        return None;
    }
    let mut header = vec!["workload".to_string(), "measure".to_string()];
    header.extend(summary.time.cols.iter().cloned());
    let mut grid = vec![header];
    for (entry, key, values) in &summary.extras {
        let unit = EXTRAS
            .iter()
            .find(|(k, _)| k == key)
            .map_or(*key, |(_, u)| u);
        let mut line = vec![summary.time.rows[*entry].clone(), unit.to_string()];
        line.extend(
            values
                .iter()
                .map(|v| v.map_or("-".to_string(), |v| format!("{v:.2}"))),
        );
        grid.push(line);
    }
    Some(grid)
}

/// Candidates that are ours, not peers: never "the best peer".
const OURS: [&str; 2] = ["hakmem", "hakmem-unchecked"];

/// Per workload, hakmem's median time against the fastest peer's, with
/// each cell's spread over the rounds (a ratio inside the spreads is
/// noise). None unless both hakmem and a peer ran.
pub fn versus_best_grid(summary: &Summary) -> Option<Grid> {
    let t = &summary.time;
    let ours = t.cols.iter().position(|c| c == "hakmem")?;
    let peers: Vec<usize> = (0..t.cols.len())
        .filter(|&c| !OURS.contains(&t.cols[c].as_str()))
        .collect();
    if peers.is_empty() {
        return None;
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0} %", v * 100.0));
    let mut grid = vec![[
        "workload",
        "best peer",
        "its time",
        "hakmem",
        "hakmem / best",
        "spread (hakmem)",
        "spread (best)",
    ]
    .map(String::from)
    .to_vec()];
    let mut ratios = Vec::new();
    for row in 0..t.rows.len() {
        let best = peers
            .iter()
            .filter_map(|&c| t.value(row, c).map(|v| (c, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let mine = t.value(row, ours);
        let ratio = match (mine, best) {
            (Some(m), Some((_, b))) if b > 0.0 => Some(m / b),
            _ => None,
        };
        ratios.extend(ratio);
        grid.push(vec![
            t.rows[row].clone(),
            best.map_or("-".to_string(), |(c, _)| t.cols[c].clone()),
            best.map_or("-".to_string(), |(_, v)| format!("{v:.3} s")),
            mine.map_or("-".to_string(), |v| format!("{v:.3} s")),
            ratio.map_or("-".to_string(), |r| format!("{r:.2}×")),
            pct(summary.spread[row][ours]),
            pct(best.and_then(|(c, _)| summary.spread[row][c])),
        ]);
    }
    let within = ratios.iter().filter(|&&r| r <= 1.05).count();
    let mut last = vec![String::new(); 7];
    last[0] = format!("within 1.05×: {within} of {}", ratios.len());
    grid.push(last);
    Some(grid)
}

/// Every failed run, one line each.
pub fn failure_lines(summary: &Summary) -> Vec<String> {
    let mut lines = Vec::new();
    for (row, cells) in summary.failures.iter().enumerate() {
        for (col, failures) in cells.iter().enumerate() {
            for (round, failure) in failures {
                lines.push(format!(
                    "{} under {}, round {round}: {failure}",
                    summary.time.rows[row], summary.time.cols[col]
                ));
            }
        }
    }
    lines
}

/// A grid as a Markdown table (first column left-aligned, the rest right).
pub fn markdown(grid: &Grid) -> String {
    let mut text = String::new();
    for (idx, row) in grid.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
        if idx == 0 {
            let align: Vec<&str> = (0..row.len())
                .map(|i| if i == 0 { ":---" } else { "---:" })
                .collect();
            text.push_str(&format!("| {} |\n", align.join(" | ")));
        }
    }
    text
}

/// A grid as aligned plain text.
pub fn plain(grid: &Grid) -> String {
    let columns = grid.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            grid.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in grid {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<width$}", width = widths[c])
                } else {
                    format!("{cell:>width$}", width = widths[c])
                }
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::child::Failure;
    use crate::compare::summary::Run;
    use crate::report::RunResult;

    /// A successful run of `seconds` and 2 MiB of peak RSS.
    fn ok(seconds: f64) -> Result<RunResult, Failure> {
        let mut r = RunResult::new("w", 1, "iters");
        r.set("seconds", seconds);
        r.set("peak_rss_kib", 2048);
        Ok(r)
    }

    #[test]
    fn the_time_grid_shows_values_ratios_failures_and_the_geomean() {
        let runs = vec![
            Run {
                round: 1,
                entry: 0,
                candidate: 0,
                outcome: ok(2.0),
            },
            Run {
                round: 1,
                entry: 0,
                candidate: 1,
                outcome: ok(1.0),
            },
            Run {
                round: 1,
                entry: 1,
                candidate: 0,
                outcome: Err(Failure::TimedOut(60.0)),
            },
            Run {
                round: 1,
                entry: 1,
                candidate: 1,
                outcome: ok(1.0),
            },
        ];
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let summary = Summary::build(&names(&["w1", "w2"]), &names(&["a", "b"]), Some(1), &runs);
        let grid = time_grid(&summary);
        assert_eq!(grid[0], ["workload", "a", "b (ref)"]);
        assert_eq!(grid[1], ["w1", "2.000 s (2.00×)", "1.000 s"]);
        assert_eq!(grid[2], ["w2", "timeout", "1.000 s"]);
        assert_eq!(grid[3], ["geomean ratio", "2.000× (over 1)", "1.000×"]);
        let md = markdown(&grid);
        assert!(md.starts_with("| workload | a | b (ref) |\n| :--- | ---: | ---: |\n"));
        assert_eq!(
            failure_lines(&summary),
            ["w2 under a, round 1: timed out after 60 s"]
        );
    }

    #[test]
    fn hakmem_is_set_against_its_fastest_peer_with_the_spreads() {
        // Columns: hakmem, hakmem-unchecked (ours, never the best peer),
        // p1, p2. Two rounds of one workload.
        let times = [[1.2, 1.0, 0.5, 2.0], [1.0, 1.0, 0.6, 2.0]];
        let mut runs = Vec::new();
        for (round, row) in times.iter().enumerate() {
            for (candidate, &s) in row.iter().enumerate() {
                runs.push(Run {
                    round: round + 1,
                    entry: 0,
                    candidate,
                    outcome: ok(s),
                });
            }
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let summary = Summary::build(
            &names(&["w1"]),
            &names(&["hakmem", "hakmem-unchecked", "p1", "p2"]),
            Some(2),
            &runs,
        );
        let grid = versus_best_grid(&summary).expect("hakmem and peers ran");
        assert_eq!(grid[0][1], "best peer");
        // Medians of two rounds: hakmem 1.1 s, p1 0.55 s.
        assert_eq!(
            grid[1],
            ["w1", "p1", "0.550 s", "1.100 s", "2.00×", "20 %", "20 %"]
        );
        assert_eq!(grid[2][0], "within 1.05×: 0 of 1");
        // Without hakmem there is nothing to set against.
        let others = Summary::build(&names(&["w1"]), &names(&["p1"]), Some(0), &[]);
        assert!(versus_best_grid(&others).is_none());
    }
}
