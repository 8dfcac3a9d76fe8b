//! The bug zoo: each historic bug of the seeds switched on in turn, the
//! harness tools run against it with a fixed budget each, and a table of
//! what caught it, how fast, with how short a trace, and which invariant.
//!
//! Tools: `explore` (deterministic random traces, in-process workers),
//! `alloc_ops` (the libFuzzer target, when cargo-fuzz and nightly are
//! available) and `shuttle` (the randomized-schedule scenarios). Each
//! caught bug's minimized trace is kept under `repro/zoo/<bug>.trace` and
//! replayed by `cargo test --features zoo` (with the bug on it must fail
//! with the recorded invariant; with it off it must pass).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hakmem::Bug;

use crate::explore::{explore, ExploreOptions};
use crate::runner::RunConfig;
use crate::trace::{with_headers, Trace};

/// What one tool did against one bug.
#[derive(Clone, Debug)]
pub struct ToolResult {
    pub tool: &'static str,
    /// `None`: the tool could not run here (the note says why).
    pub caught: Option<bool>,
    pub time: Duration,
    /// Traces, fuzz execs or schedules until detection (or in total).
    pub runs: u64,
    pub failure_id: Option<String>,
    pub minimized: Option<Trace>,
    pub note: String,
}

impl ToolResult {
    pub fn skipped(tool: &'static str, note: impl Into<String>) -> ToolResult {
        ToolResult {
            tool,
            caught: None,
            time: Duration::ZERO,
            runs: 0,
            failure_id: None,
            minimized: None,
            note: note.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ZooRow {
    pub bug: Bug,
    pub results: Vec<ToolResult>,
}

impl ZooRow {
    pub fn caught(&self) -> bool {
        self.results.iter().any(|r| r.caught == Some(true))
    }

    /// The shortest minimized trace any tool produced.
    pub fn best_trace(&self) -> Option<(&ToolResult, &Trace)> {
        self.results
            .iter()
            .filter_map(|r| r.minimized.as_ref().map(|t| (r, t)))
            .min_by_key(|(_, t)| t.ops.len())
    }
}

/// A run configuration with `bug` switched on (tiny geometry).
pub fn zoo_config(bug: Bug) -> RunConfig {
    let mut cfg = RunConfig::tiny();
    cfg.alloc.zoo = cfg.alloc.zoo.with(bug);
    cfg
}

/// The deterministic explorer against one bug.
pub fn explore_tool(bug: Bug, budget: Duration, seed: u64) -> ToolResult {
    let r = explore(&ExploreOptions {
        seconds: budget.as_secs_f64(),
        seed,
        max_ops: 400,
        cfg: zoo_config(bug),
        out_dir: None,
        minimize_budget: Duration::from_secs(30),
        progress: false,
        isolate: true,
        extra_headers: Vec::new(),
    });
    match r.found {
        Some(f) => ToolResult {
            tool: "explore",
            caught: Some(true),
            time: f.time_to_detection,
            runs: f.trace_index + 1,
            failure_id: Some(f.failure.id()),
            minimized: Some(f.minimized),
            note: f.source,
        },
        None => ToolResult {
            tool: "explore",
            caught: Some(false),
            time: r.elapsed,
            runs: r.traces,
            failure_id: None,
            minimized: None,
            note: format!("{} traces, {} ops, no failure", r.traces, r.ops),
        },
    }
}

/// Writes a caught bug's shortest trace to `dir/<bug>.trace`.
pub fn write_zoo_repro(dir: &Path, row: &ZooRow) -> std::io::Result<Option<PathBuf>> {
    let Some((r, t)) = row.best_trace() else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.trace", row.bug.name()));
    let headers = vec![
        ("zoo".to_string(), row.bug.name().to_string()),
        (
            "found-by".to_string(),
            format!("hakmem-sim zoo ({}: {})", r.tool, r.note),
        ),
        (
            "violates".to_string(),
            r.failure_id.clone().unwrap_or_default(),
        ),
        (
            "fixed-by".to_string(),
            "the bug is off in normal builds (feature zoo, Config::zoo)".to_string(),
        ),
    ];
    std::fs::write(&path, with_headers(&headers, t))?;
    Ok(Some(path))
}

/// The table, as markdown.
pub fn table(rows: &[ZooRow]) -> String {
    let tools: Vec<&str> = rows
        .first()
        .map(|r| r.results.iter().map(|t| t.tool).collect())
        .unwrap_or_default();
    let mut s = String::new();
    let _ = write!(s, "| bug |");
    for t in &tools {
        let _ = write!(s, " {t} |");
    }
    let _ = writeln!(s, " minimized trace | invariant |");
    let _ = write!(s, "|---|");
    for _ in &tools {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s, "---|---|");
    for row in rows {
        let _ = write!(s, "| {} |", row.bug.name());
        for r in &row.results {
            let cell = match r.caught {
                Some(true) => format!(
                    "caught in {:.2} s ({} {})",
                    r.time.as_secs_f64(),
                    r.runs,
                    unit(r.tool)
                ),
                Some(false) => format!(
                    "not caught ({:.0} s, {} {})",
                    r.time.as_secs_f64(),
                    r.runs,
                    unit(r.tool)
                ),
                None => format!("— ({})", r.note),
            };
            let _ = write!(s, " {cell} |");
        }
        let (len, id) = match row.best_trace() {
            Some((r, t)) => (
                format!("{} ops", t.ops.len()),
                r.failure_id.clone().unwrap_or_default(),
            ),
            None => (
                "—".into(),
                row.results
                    .iter()
                    .find_map(|r| r.failure_id.clone())
                    .unwrap_or_else(|| "—".into()),
            ),
        };
        let _ = writeln!(s, " {len} | {id} |");
    }
    s
}

fn unit(tool: &str) -> &'static str {
    match tool {
        "explore" => "traces",
        "shuttle" => "schedules",
        _ => "execs",
    }
}
