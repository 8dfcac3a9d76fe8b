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

use hakmem::{Bug, Zoo};

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

/// The shuttle scenarios against one bug: each scenario in turn under the
/// random scheduler, up to `iterations` schedules, in a forked child (a
/// crash is a catch too), until one fails or `budget` is spent.
pub fn shuttle_tool(bug: Bug, budget: Duration, iterations: usize, seed: u64) -> ToolResult {
    use crate::shuttle::explore::{explore as shuttle_explore, Options, Strategy};
    use crate::shuttle::Scenario;
    let start = std::time::Instant::now();
    let mut schedules = 0u64;
    for scenario in Scenario::ALL {
        if start.elapsed() >= budget {
            break;
        }
        let line = crate::isolate::in_child(|| {
            let opts = Options {
                iterations,
                seed,
                zoo: Zoo::NONE.with(bug),
                persist_dir: None,
                max_steps: 200_000,
            };
            match shuttle_explore(scenario, Strategy::Random, &opts) {
                Ok(r) => format!("OK {}", r.executions),
                Err(f) => format!(
                    "FAIL {} {}\t{}",
                    f.execution + 1,
                    f.symptom,
                    f.message.replace('\n', " ")
                ),
            }
        });
        match line {
            Ok(l) if l.starts_with("OK ") => {
                schedules += l[3..].trim().parse::<u64>().unwrap_or(0);
            }
            Ok(l) => {
                let rest = l.trim_start_matches("FAIL ");
                let (head, _msg) = rest.split_once('\t').unwrap_or((rest, ""));
                let (n, symptom) = head.split_once(' ').unwrap_or((head, ""));
                return ToolResult {
                    tool: "shuttle",
                    caught: Some(true),
                    time: start.elapsed(),
                    runs: schedules + n.parse::<u64>().unwrap_or(0),
                    failure_id: Some(symptom.to_string()),
                    minimized: None,
                    note: format!("scenario {scenario}, seed {seed}"),
                };
            }
            Err(sig) => {
                return ToolResult {
                    tool: "shuttle",
                    caught: Some(true),
                    time: start.elapsed(),
                    runs: schedules,
                    failure_id: Some(format!("CRASH {sig}")),
                    minimized: None,
                    note: format!("scenario {scenario} crashed (signal {sig})"),
                };
            }
        }
    }
    ToolResult {
        tool: "shuttle",
        caught: Some(false),
        time: start.elapsed(),
        runs: schedules,
        failure_id: None,
        minimized: None,
        note: format!("{schedules} schedules over the scenarios, no failure"),
    }
}

/// Where the zoo builds and finds the libFuzzer binary of `alloc_ops`.
pub struct FuzzBinary {
    pub path: PathBuf,
}

/// Builds `alloc_ops` with the zoo compiled in (`cargo +nightly fuzz build
/// -O -s none --features zoo`; no sanitizer: the harness's own checks are
/// what is measured). `Err` says why the tool cannot run here.
pub fn build_fuzz_binary(root: &Path) -> Result<FuzzBinary, String> {
    let target_dir = root.join("target").join("zoo-fuzz");
    let status = std::process::Command::new("cargo")
        .current_dir(root)
        .args([
            "+nightly",
            "fuzz",
            "build",
            "-O",
            "-s",
            "none",
            "--features",
            "zoo",
            "--target-dir",
        ])
        .arg(&target_dir)
        .arg("alloc_ops")
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    if !status.success() {
        return Err("cargo +nightly fuzz build failed (is cargo-fuzz installed?)".into());
    }
    let path = target_dir
        .join("x86_64-unknown-linux-gnu")
        .join("release")
        .join("alloc_ops");
    if !path.exists() {
        return Err(format!("no fuzz binary at {}", path.display()));
    }
    Ok(FuzzBinary { path })
}

/// The `alloc_ops` libFuzzer target against one bug (`HAKMEM_ZOO`), from the
/// committed seed corpus, for `budget`; a crash input is minimized.
pub fn fuzz_tool(bin: &FuzzBinary, root: &Path, bug: Bug, budget: Duration) -> ToolResult {
    let scratch =
        std::env::temp_dir().join(format!("hakmem-zoo-{}-{}", bug.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let corpus = scratch.join("corpus");
    if let Err(e) = std::fs::create_dir_all(&corpus) {
        return ToolResult::skipped("alloc_ops", format!("scratch dir: {e}"));
    }
    let start = std::time::Instant::now();
    let out = std::process::Command::new(&bin.path)
        .current_dir(root)
        .env("HAKMEM_ZOO", bug.name())
        .arg(&corpus)
        .arg(root.join("corpus").join("alloc_ops"))
        .arg(format!("-max_total_time={}", budget.as_secs().max(1)))
        .arg("-print_final_stats=1")
        .arg("-timeout=20")
        .arg(format!("-artifact_prefix={}/", scratch.display()))
        .output();
    let time = start.elapsed();
    let Ok(out) = out else {
        return ToolResult::skipped("alloc_ops", "could not run the fuzz binary");
    };
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let execs = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let artifact = std::fs::read_dir(&scratch).ok().and_then(|d| {
        d.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("crash-"))
        })
    });
    let result = match artifact {
        None => ToolResult {
            tool: "alloc_ops",
            caught: Some(false),
            time,
            runs: execs,
            failure_id: None,
            minimized: None,
            note: format!("{execs} execs, no crash"),
        },
        Some(path) => {
            let data = std::fs::read(&path).unwrap_or_default();
            let trace = crate::bytes::decode(&data);
            let m = crate::minimize::minimize(
                &trace,
                &crate::minimize::MinimizeOptions {
                    cfg: zoo_config(bug),
                    isolate: true,
                    budget: Duration::from_secs(30),
                    verbose: false,
                },
            );
            ToolResult {
                tool: "alloc_ops",
                caught: Some(true),
                time,
                runs: execs,
                failure_id: m.as_ref().map(|m| m.failure_id.clone()),
                minimized: m.map(|m| m.trace),
                note: format!("fuzz input {}", path.display()),
            }
        }
    };
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
